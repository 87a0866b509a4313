//! [`RedisStores`]: every store on one Redis, and the per-request check in one round trip.

use std::sync::LazyLock;

use redis::{Script, Value};
use tokenward_core::{StoreError, TokenRef};
use tokenward_ratelimit::{Decision, GcraQuota};
use tokenward_revocation::RevocationStatus;

use crate::backend::RedisBackend;
use crate::config::RedisConfig;
use crate::error::Error;
use crate::ratelimit::{GCRA_FN_LUA, RedisRateLimitStore, gcra_decision};
use crate::refresh::RedisRefreshStore;
use crate::revocation::{REVOCATION_FN_LUA, RedisRevocationStore, decide};

/// The per-request check: the revocation check of a token and, only if it is active, one GCRA
/// step. `KEYS[1..n]`: the revocation keys in precedence order, `KEYS[n + 1]`: the GCRA key
/// (only with a limit); `ARGV[1]`: one rule letter per revocation key (so `n = #ARGV[1]`),
/// `ARGV[2]`: the token's `iat` (ms, decimal) or `-`, `ARGV[3..5]`: the GCRA arguments.
///
/// Returns `{gcra reply or {}, value 1, …, value n}` (a missing key's value is `false`, i.e.
/// nil): the caller decides the revocation status from the values exactly as
/// `RevocationStore::check` does, and reads the GCRA reply as `gcra` does.
const CHECK_TOKEN_CALL_LUA: &str = r"
local n = #ARGV[1]
local active, raw = revocation_active(n, ARGV[1], ARGV[2])
local limit = {}
if active and #KEYS > n then
  limit = gcra(KEYS[n + 1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
end
local reply = {limit}
for i = 1, n do reply[i + 1] = raw[i] end
return reply
";

static CHECK_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REVOCATION_FN_LUA}{GCRA_FN_LUA}{CHECK_TOKEN_CALL_LUA}"
    ))
});

/// Every Redis store on one [`RedisBackend`] (one set of connections, one key prefix), and
/// [`check_token`](Self::check_token): the revocation check and the per-subject limit of a
/// request in **one round trip**.
///
/// ```no_run
/// use std::time::Duration;
/// use tokenward_core::{TokenRef, UnixTime};
/// use tokenward_ratelimit::GcraQuota;
/// use tokenward_redis::{RedisConfig, RedisStores};
/// use tokenward_revocation::RevocationStatus;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let stores = RedisStores::connect(&RedisConfig::new("redis://127.0.0.1:6379"))?;
/// let token = TokenRef { jti: Some("0f3a9c"), sid: Some("fam_81"), sub: Some("alice"),
///                        iat: Some(UnixTime::from_secs(1_999_999_100)),
///                        exp: UnixTime::from_secs(2_000_000_000) };
/// let quota = GcraQuota::per_minute(300);
/// let (status, decision) =
///     stores.check_token(&token, Some(("subject:alice", &quota, 1))).await?;
/// if status == RevocationStatus::Active {
///     assert!(decision.is_some_and(|d| d.allowed));
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Redis Cluster
///
/// One `check_token` call is one script, and its keys (the token's revocation keys and the
/// subject's GCRA key) are in different hash slots unless the key prefix carries a hash tag:
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
    pub fn connect(config: &RedisConfig) -> Result<Self, Error> {
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
    /// step for `limit` = `(key, quota, cost)`, in **one script call** (one `EVALSHA`, one
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
    /// Everything is validated before anything is sent: an invalid id, rate-limit key,
    /// quota or cost is an `InvalidInput` error even for a token that would turn out to be
    /// revoked. Any failure fails the whole call: an outage is `Unavailable` / `Timeout`
    /// within the operation timeout, unparseable state (revocation entries *or* the GCRA
    /// state) is `Corrupt` — never "active", never a made-up decision. A token without
    /// `jti`, `sid` or `sub` and without a limit is `Active` without a round trip.
    pub async fn check_token(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&str, &GcraQuota, u32)>,
    ) -> Result<(RevocationStatus, Option<Decision>), StoreError> {
        let keys = self.revocation.check_keys(token)?;
        let limit = match limit {
            Some((key, quota, cost)) => Some((quota, self.ratelimit.gcra_call(key, quota, cost)?)),
            None => None,
        };
        if keys.is_empty() && limit.is_none() {
            return Ok((RevocationStatus::Active, None));
        }
        let mut invocation = CHECK_TOKEN.prepare_invoke();
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
        let gcra_reply = match reply.next() {
            Some(Value::Array(values)) => values
                .into_iter()
                .map(|v| match v {
                    Value::Int(i) => Ok(i),
                    _ => Err(StoreError::corrupt(
                        "the per-request script's GCRA reply is not a list of integers",
                    )),
                })
                .collect::<Result<Vec<i64>, StoreError>>()?,
            _ => {
                return Err(StoreError::corrupt(
                    "the per-request script answered without a GCRA reply",
                ));
            }
        };
        let status = decide(token, &keys, reply.collect())?;
        match (status, limit) {
            (_, None) if gcra_reply.is_empty() => Ok((status, None)),
            (RevocationStatus::Revoked(_), Some(_)) if gcra_reply.is_empty() => Ok((status, None)),
            (RevocationStatus::Active, Some((quota, _))) if !gcra_reply.is_empty() => {
                Ok((status, Some(gcra_decision(quota, &gcra_reply)?)))
            }
            // The script's verdict and ours differ: never guess which one is right.
            _ => Err(StoreError::corrupt(format!(
                "the per-request script's revocation verdict disagrees with the entries \
                 ({status:?}, GCRA reply {gcra_reply:?})"
            ))),
        }
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

    /// Every key one `check_token` call sends.
    fn call_keys(stores: &RedisStores, token: &TokenRef<'_>, limit_key: &str) -> Vec<String> {
        let quota = GcraQuota::per_minute(10);
        let mut keys: Vec<String> = stores
            .revocation
            .check_keys(token)
            .unwrap()
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        keys.push(
            stores
                .ratelimit
                .gcra_call(limit_key, &quota, 1)
                .unwrap()
                .key,
        );
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
                let token = TokenRef {
                    jti: Some(id),
                    sid: Some(id),
                    sub: Some(id),
                    iat: None,
                    exp,
                };
                for limit_key in ["subject:alice", "{evil}", "x}", &format!("subject:{id}")] {
                    for key in call_keys(&s, &token, limit_key) {
                        assert!(key.starts_with(prefix), "{key}");
                        assert_eq!(hash_tag(&key), tag, "{prefix} / {id} / {limit_key}: {key}");
                    }
                }
            }
        }
        // Without a tag in the prefix the keys spread over slots: a Cluster would refuse the
        // script (CROSSSLOT), which is why the docs ask for a tagged prefix there.
        let s = stores("tw:");
        let token = TokenRef {
            jti: Some("j"),
            sid: Some("s"),
            sub: Some("u"),
            iat: None,
            exp,
        };
        let tags: std::collections::BTreeSet<String> = call_keys(&s, &token, "subject:u")
            .iter()
            .map(|k| hash_tag(k).to_owned())
            .collect();
        assert_eq!(tags.len(), 4, "{tags:?}");
    }
}
