//! [`RedisStores`]: every store on one Redis, and the per-request check in one round trip.

use std::sync::LazyLock;

use redis::{Script, Value};
use tokenward_core::{StoreError, TokenRef};
use tokenward_ratelimit::{BanQuota, Decision, GcraCharge, LimitKey};
use tokenward_revocation::RevocationStatus;

use crate::backend::RedisBackend;
use crate::config::RedisConfig;
use crate::error::RedisConfigError;
use crate::ratelimit::{
    BAN_STATUS_FN_LUA, GCRA_FN_LUA, RedisRateLimitStore, ban_decision, gcra_decision,
};
use crate::refresh::RedisRefreshStore;
use crate::revocation::{REVOCATION_FN_LUA, RedisRevocationStore, decide};

/// The per-request check: the ban status of the client's key (if asked), the revocation check
/// of a token and, only if the client is not banned and the token is active, one GCRA step.
///
/// `KEYS[1..n]`: the revocation keys in precedence order; then, with a ban, the failures key
/// and the ban marker; then, with a limit, the GCRA key. `ARGV[1]`: one rule letter per
/// revocation key (so `n = #ARGV[1]`), `ARGV[2]`: the token's `iat` (ms, decimal) or `-`,
/// `ARGV[3]`: the ban's findtime (µs) or `-` for no ban, `ARGV[4..6]`: the GCRA arguments
/// (only with a limit).
///
/// Returns `{gcra reply or {}, ban reply or {}, value 1, …, value n}` (a missing key's value
/// is `false`, i.e. nil): the caller reads the ban reply as `ban_status` does, decides the
/// revocation status from the values exactly as `RevocationStore::check` does, and reads the
/// GCRA reply as `gcra` does. A corrupt ban marker (`{-1}`) charges nothing either.
const CHECK_REQUEST_CALL_LUA: &str = r"
local n = #ARGV[1]
local k = n
local ban = {}
if ARGV[3] ~= '-' then
  ban = ban_status(KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[3]))
  k = k + 2
end
local active, raw = revocation_active(n, ARGV[1], ARGV[2])
local limit = {}
if active and (ban[1] == nil or ban[1] == 0) and #KEYS > k then
  limit = gcra(KEYS[k + 1], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
end
local reply = {limit, ban}
for i = 1, n do reply[i + 2] = raw[i] end
return reply
";

static CHECK_REQUEST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REVOCATION_FN_LUA}{BAN_STATUS_FN_LUA}{GCRA_FN_LUA}{CHECK_REQUEST_CALL_LUA}"
    ))
});

/// What one [`RedisStores::check_request`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestCheck {
    /// The ban status of the `ban` key (as `ban_status` reports it), when one was asked.
    pub ban: Option<Decision>,
    /// The token's revocation status (as `RevocationStore::check`).
    pub revocation: RevocationStatus,
    /// The limit decision: None when no limit was asked, the client is banned, or the token is revoked.
    pub limit: Option<Decision>,
}

/// Every Redis store on one [`RedisBackend`] (one set of connections, one key prefix), and
/// [`check_request`](Self::check_request): the client's failure-ban status, the revocation
/// check and the per-subject limit of a request in **one round trip**
/// ([`check_token`](Self::check_token) is the same without the ban).
///
/// ```no_run
/// use std::num::NonZeroU32;
/// use tokenward_core::{TokenRef, UnixTime};
/// use tokenward_ratelimit::{BanQuota, GcraCharge, GcraQuota, LimitKey};
/// use tokenward_redis::{RedisConfig, RedisStores};
/// use tokenward_revocation::RevocationStatus;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let stores = RedisStores::connect(&RedisConfig::new("redis://127.0.0.1:6379"))?;
/// let token = TokenRef::from_parts(
///     Some("0f3a9c"),
///     Some("fam_81"),
///     Some("alice"),
///     Some(UnixTime::from_secs(1_999_999_100)),
///     UnixTime::from_secs(2_000_000_000),
/// )?;
/// let one = GcraCharge::single(GcraQuota::per_minute(NonZeroU32::new(300).ok_or("zero")?));
/// let subject = LimitKey::new("subject:alice")?;
/// let (status, decision) = stores.check_token(&token, Some((&subject, &one))).await?;
/// if status == RevocationStatus::Active {
///     assert!(decision.is_some_and(|d| d.allowed));
/// }
///
/// // With the client's failure ban too: still one round trip.
/// let ban = BanQuota::fail2ban_default();
/// let client = LimitKey::new("ip:203.0.113.7")?;
/// let check = stores
///     .check_request(&token, Some((&subject, &one)), Some((&client, &ban)))
///     .await?;
/// if check.ban.is_some_and(|b| !b.allowed) {
///     assert_eq!(check.limit, None); // banned: no cell consumed
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Redis Cluster
///
/// One `check_request` (or `check_token`) call is one script, and its keys (the token's
/// revocation keys, the client's failures and ban keys, the subject's GCRA key) are in
/// different hash slots unless the key prefix carries a hash tag:
/// with a prefix like `{tw}:` every key of the application hashes to the slot of `tw`
/// (Redis uses the *first* `{…}` of a key, and every key starts with the prefix; ids and
/// rate-limit keys that contain braces are hex-encoded). Standalone and Sentinel-managed
/// Redis need nothing.
#[derive(Clone, Debug)]
pub struct RedisStores {
    revocation: RedisRevocationStore,
    ratelimit: RedisRateLimitStore,
    refresh: RedisRefreshStore,
}

impl RedisStores {
    /// The stores on one new backend for `config`. Never talks to Redis; see
    /// [`RedisBackend::new`] for the errors.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisConfigError> {
        Ok(Self::new(RedisBackend::new(config)?))
    }

    /// The stores on `backend` (its connections and key prefix).
    pub fn new(backend: RedisBackend) -> Self {
        RedisStores {
            revocation: RedisRevocationStore::new(backend.clone()),
            ratelimit: RedisRateLimitStore::new(backend.clone()),
            refresh: RedisRefreshStore::new(backend),
        }
    }

    /// The backend all the stores share (for [`RedisBackend::ping`] in readiness probes).
    pub fn backend(&self) -> &RedisBackend {
        self.revocation.backend()
    }

    /// The revocation store, on the shared backend.
    pub fn revocation(&self) -> RedisRevocationStore {
        self.revocation.clone()
    }

    /// The rate-limit store, on the shared backend.
    pub fn ratelimit(&self) -> RedisRateLimitStore {
        self.ratelimit.clone()
    }

    /// The refresh store, on the shared backend.
    pub fn refresh(&self) -> RedisRefreshStore {
        self.refresh.clone()
    }

    /// The revocation check of `token` and — only if the token is not revoked — one GCRA
    /// step for `limit` = `(key, charge)`, in **one script call** (one `EVALSHA`, one
    /// round trip, atomic).
    ///
    /// Returns the revocation status and the limit's decision (`None` when no limit was asked
    /// for or the token is revoked). The status is exactly
    /// [`RevocationStore::check`](tokenward_revocation::RevocationStore::check)'s on
    /// [`revocation`](Self::revocation) (same keys; token before session before subject; a
    /// subject cutoff revokes tokens issued before it and tokens without `iat`), and the
    /// decision exactly
    /// [`RateLimitStore::gcra`](tokenward_ratelimit::RateLimitStore::gcra)'s on
    /// [`ratelimit`](Self::ratelimit) (same key, same server-clock GCRA). A revoked token —
    /// or one whose revocation entries do not parse — consumes **no** rate-limit cell: a
    /// stolen, revoked token cannot drain its subject's budget.
    ///
    /// Every input is valid by construction (`StoreId`s, a `LimitKey`, a `GcraCharge`).
    /// Any failure fails the whole call: an outage is `Unavailable` / `Timeout`
    /// within the operation timeout, unparseable state (revocation entries *or* the GCRA
    /// state) is `Corrupt` — never "active", never a made-up decision. A token without
    /// `jti`, `sid` or `sub` and without a limit is `Active` without a round trip. It is
    /// [`check_request`](Self::check_request) without a ban (the same script).
    pub async fn check_token(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
    ) -> Result<(RevocationStatus, Option<Decision>), StoreError> {
        let check = self.check_request(token, limit, None).await?;
        Ok((check.revocation, check.limit))
    }

    /// The ban status of `ban` = `(key, quota)`, the revocation check of `token` and — only
    /// when the client is not banned and the token is active — one GCRA step for `limit` =
    /// `(key, charge)`, in **one script call** (one `EVALSHA`, one round trip, atomic):
    /// everything a request needs from the stores, for the Guard.
    ///
    /// - [`ban`](RequestCheck::ban) is exactly
    ///   [`RateLimitStore::ban_status`](tokenward_ratelimit::RateLimitStore::ban_status)'s on
    ///   [`ratelimit`](Self::ratelimit) (same keys, same read-only logic — the same Lua — and
    ///   the same reply parsing; it never records a failure), `None` when no ban was asked.
    /// - [`revocation`](RequestCheck::revocation) is exactly what
    ///   [`check_token`](Self::check_token) reports.
    /// - [`limit`](RequestCheck::limit) is the GCRA decision as `check_token` reports it, but
    ///   `None` — and **no cell consumed** — when the client is banned (as well as when no
    ///   limit was asked or the token is revoked): a banned client cannot drain a subject's
    ///   budget either.
    ///
    /// Every input is valid by construction (ids, rate-limit and ban keys, the charge and the
    /// ban quota are typed and checked where they are made). Any failure fails the whole
    /// call: an outage is `Unavailable` / `Timeout` within
    /// the operation timeout; unparseable state — revocation entries, GCRA state, or a ban
    /// marker without a TTL (as `ban_status` reports it) — is `Corrupt`, and then no cell is
    /// consumed. A token without `jti`, `sid` or `sub`, without a limit and without a ban is
    /// `Active` without a round trip.
    ///
    /// On Redis Cluster the ban keys join the script's keys: like the others, they share a
    /// slot only under a hash-tagged key prefix (see [Redis Cluster](Self#redis-cluster)).
    pub async fn check_request(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
        ban: Option<(&LimitKey<'_>, &BanQuota)>,
    ) -> Result<RequestCheck, StoreError> {
        let keys = self.revocation.check_keys(token);
        let limit =
            limit.map(|(key, charge)| (charge.quota(), self.ratelimit.gcra_call(key, charge)));
        let ban = ban.map(|(key, quota)| (quota, self.ratelimit.ban_call(key, quota)));
        if keys.is_empty() && limit.is_none() && ban.is_none() {
            return Ok(RequestCheck {
                ban: None,
                revocation: RevocationStatus::Active,
                limit: None,
            });
        }
        let mut invocation = CHECK_REQUEST.prepare_invoke();
        let mut rules = String::with_capacity(keys.len());
        for (rule, key) in &keys {
            invocation.key(key);
            rules.push(rule.letter());
        }
        invocation.arg(rules);
        match token.iat {
            Some(iat) => invocation.arg(iat.as_millis()),
            None => invocation.arg("-"),
        };
        match &ban {
            Some((_, call)) => invocation
                .key(&call.failures)
                .key(&call.ban)
                .arg(call.findtime),
            None => invocation.arg("-"),
        };
        if let Some((_, call)) = &limit {
            invocation
                .key(&call.key)
                .arg(call.emission)
                .arg(call.tau)
                .arg(call.weight);
        }
        let reply: Vec<Value> = self
            .backend()
            .run(async move |conn| invocation.invoke_async(conn).await)
            .await?;
        let mut reply = reply.into_iter();
        let gcra_reply = int_list(reply.next(), "GCRA")?;
        let ban_reply = int_list(reply.next(), "ban")?;
        let ban = match ban {
            Some((quota, _)) => Some(ban_decision(quota, &ban_reply)?),
            None if ban_reply.is_empty() => None,
            None => {
                return Err(StoreError::corrupt(format!(
                    "the per-request script answered a ban status nobody asked for: {ban_reply:?}"
                )));
            }
        };
        let status = decide(token, &keys, reply.collect())?;
        let banned = ban.is_some_and(|d| !d.allowed);
        let limit = match (status, limit) {
            (_, None) if gcra_reply.is_empty() => None,
            (RevocationStatus::Revoked(_), Some(_)) if gcra_reply.is_empty() => None,
            (RevocationStatus::Active, Some(_)) if banned && gcra_reply.is_empty() => None,
            (RevocationStatus::Active, Some((quota, _))) if !banned && !gcra_reply.is_empty() => {
                Some(gcra_decision(quota, &gcra_reply)?)
            }
            // The script's verdict and ours differ: never guess which one is right.
            _ => {
                return Err(StoreError::corrupt(format!(
                    "the per-request script's verdict disagrees with the entries \
                     ({status:?}, ban {ban:?}, GCRA reply {gcra_reply:?})"
                )));
            }
        };
        Ok(RequestCheck {
            ban,
            revocation: status,
            limit,
        })
    }
}

/// One of the per-request script's integer-list replies (`what`: the GCRA or ban reply).
fn int_list(value: Option<Value>, what: &str) -> Result<Vec<i64>, StoreError> {
    match value {
        Some(Value::Array(values)) => values
            .into_iter()
            .map(|v| match v {
                Value::Int(i) => Ok(i),
                _ => Err(StoreError::corrupt(format!(
                    "the per-request script's {what} reply is not a list of integers"
                ))),
            })
            .collect(),
        _ => Err(StoreError::corrupt(format!(
            "the per-request script answered without a {what} reply"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenward_core::UnixTime;

    /// The part of `key` Redis Cluster hashes: the content of the first `{…}` if it is not
    /// empty, else the whole key (the Redis Cluster specification's `HASH_SLOT`).
    fn hash_tag(key: &str) -> &str {
        if let Some(open) = key.find('{')
            && let Some(len) = key[open + 1..].find('}')
            && len > 0
        {
            return &key[open + 1..open + 1 + len];
        }
        key
    }

    /// Every key one `check_request` call sends (`check_token`'s and the ban's).
    fn call_keys(
        stores: &RedisStores,
        token: &TokenRef<'_>,
        limit_key: &str,
        ban_key: &str,
    ) -> Vec<String> {
        let quota = tokenward_ratelimit::GcraQuota::per_minute(std::num::NonZeroU32::MIN);
        let limit_key = LimitKey::new(limit_key).unwrap();
        let ban_key = LimitKey::new(ban_key).unwrap();
        let ban = stores
            .ratelimit
            .ban_call(&ban_key, &BanQuota::fail2ban_default());
        let mut keys: Vec<String> = stores
            .revocation
            .check_keys(token)
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        keys.push(
            stores
                .ratelimit
                .gcra_call(&limit_key, &GcraCharge::single(quota))
                .key,
        );
        keys.push(ban.failures);
        keys.push(ban.ban);
        keys
    }

    fn stores(prefix: &str) -> RedisStores {
        RedisStores::connect(&RedisConfig::default().key_prefix(prefix)).unwrap()
    }

    #[test]
    fn hash_tag_rule() {
        assert_eq!(hash_tag("{tw}:rv:j:a"), "tw");
        assert_eq!(hash_tag("tw:rl:{sub:a}:g"), "sub:a");
        assert_eq!(hash_tag("{}:rl:{sub}:g"), "{}:rl:{sub}:g");
        assert_eq!(hash_tag("plain"), "plain");
    }

    #[test]
    fn a_hash_tagged_prefix_puts_every_key_of_a_call_in_one_slot() {
        let exp = UnixTime::from_secs(2_000_000_000);
        // Ids and limit keys with braces of their own (an attacker's `sub`, say) cannot
        // override the prefix's tag: the prefix's `{…}` always comes first.
        let ids = ["alice", "{evil}", "}x{", "a{b}c", "{}", "fam_81"];
        for prefix in ["{tw}:", "{orders-api}:tokenward:", "app:{tw}:"] {
            let s = stores(prefix);
            let tag = hash_tag(prefix);
            for id in ids {
                let token = TokenRef::from_parts(Some(id), Some(id), Some(id), None, exp).unwrap();
                for limit_key in ["subject:alice", "{evil}", "x}", &format!("subject:{id}")] {
                    for ban_key in ["ip:203.0.113.7", "{evil}", "}ip{", &format!("ip:{id}")] {
                        for key in call_keys(&s, &token, limit_key, ban_key) {
                            assert!(key.starts_with(prefix), "{key}");
                            assert_eq!(
                                hash_tag(&key),
                                tag,
                                "{prefix} / {id} / {limit_key} / {ban_key}: {key}"
                            );
                        }
                    }
                }
            }
        }
        // Without a tag in the prefix the keys spread over slots: a Cluster would refuse the
        // script (CROSSSLOT), which is why the docs ask for a tagged prefix there.
        let s = stores("tw:");
        let token = TokenRef::from_parts(Some("j"), Some("s"), Some("u"), None, exp).unwrap();
        let tags: std::collections::BTreeSet<String> =
            call_keys(&s, &token, "subject:u", "ip:10.0.0.1")
                .iter()
                .map(|k| hash_tag(k).to_owned())
                .collect();
        // The failures and ban keys of one ban key share their own tag.
        assert_eq!(tags.len(), 5, "{tags:?}");
    }
}
