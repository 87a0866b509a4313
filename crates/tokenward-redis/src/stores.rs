//! [`RedisStores`]: every store on one Redis, and the per-request check in one round trip.

use std::sync::LazyLock;

use redis::{Script, Value};
use tokenward_core::{StoreError, TokenRef};
use tokenward_ratelimit::{BanCheck, BanQuota, Decision, GcraCharge, GcraQuota, LimitKey};
use tokenward_revocation::RevocationStatus;

use crate::backend::RedisBackend;
use crate::byo::Conn;
use crate::config::RedisConfig;
use crate::error::RedisConfigError;
use crate::ratelimit::{
    BAN_STATUS_FN_LUA, GCRA_FN_LUA, NOW_FN_LUA, RedisRateLimitStore, ban_decision, gcra_decision,
};
use crate::refresh::RedisRefreshStore;
use crate::revocation::{REVOCATION_FN_LUA, RedisRevocationStore, Rule, decide};
use crate::slot::by_slot;

/// The per-request check: the ban status of the client's address key and of its network key
/// (each if asked), the revocation check of a token and, only if the client is banned by
/// neither and the token is active, one GCRA step.
///
/// `KEYS[1..n]`: the revocation keys in precedence order; then, with the address ban, its
/// failures key and ban marker; then, with the network ban, its failures key and ban marker;
/// then, with a limit, the GCRA key. `ARGV[1]`: one rule letter per revocation key (so
/// `n = #ARGV[1]`), `ARGV[2]`: the token's `iat` (ms, decimal) or `-`, `ARGV[3]`: the ban's
/// findtime (µs) or `-` for no address ban, `ARGV[4]`: the same for the network ban,
/// `ARGV[5..7]`: the GCRA arguments (only with a limit).
///
/// Returns `{gcra reply or {}, address ban reply or {}, network ban reply or {}, value 1,
/// …, value n}` (a missing key's value is `false`, i.e. nil): the caller reads each ban reply
/// as `ban_status` does, decides the revocation status from the values exactly as
/// `RevocationStore::check` does, and reads the GCRA reply as `gcra` does. A corrupt ban
/// marker (`{-1}`) charges nothing either.
const CHECK_REQUEST_CALL_LUA: &str = r"
local n = #ARGV[1]
local k = n
local ban = {}
if ARGV[3] ~= '-' then
  ban = ban_status(KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[3]))
  k = k + 2
end
local net = {}
if ARGV[4] ~= '-' then
  net = ban_status(KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[4]))
  k = k + 2
end
local active, raw = revocation_active(n, ARGV[1], ARGV[2])
local limit = {}
if active and (ban[1] == nil or ban[1] == 0) and (net[1] == nil or net[1] == 0)
    and #KEYS > k then
  limit = gcra(KEYS[k + 1], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
end
local reply = {limit, ban, net}
for i = 1, n do reply[i + 3] = raw[i] end
return reply
";

static CHECK_REQUEST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REVOCATION_FN_LUA}{NOW_FN_LUA}{BAN_STATUS_FN_LUA}{GCRA_FN_LUA}{CHECK_REQUEST_CALL_LUA}"
    ))
});

/// What one [`RedisStores::check_request`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestCheck {
    /// The client's ban status, when one was asked: the address key's and (if asked) the
    /// network key's `ban_status`, combined by [`BanCheck::combine`] (denied when either is
    /// banned, with the longer ban).
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
/// use tokenward_ratelimit::{BanCheck, BanQuota, GcraCharge, GcraQuota, LimitKey};
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
/// // With the client's failure ban — its address and its network — too: still one round
/// // trip.
/// let ban = BanQuota::fail2ban_default();
/// let client = LimitKey::new("ip:203.0.113.7")?;
/// let network = LimitKey::new("net:203.0.113.0/24")?;
/// let check = stores
///     .check_request(
///         &token,
///         Some((&subject, &one)),
///         Some(BanCheck::new(&client, &ban).network(&network)),
///     )
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
/// A call's keys — the token's revocation keys, the client address's failures and ban keys
/// (one slot: the ban key is their hash tag), its network's failures and ban keys (another
/// slot, likewise), the subject's GCRA key — are in different hash slots unless the key
/// prefix carries a hash tag. On a Redis Cluster the call groups them by slot and sends the
/// same script once per slot, all at once: one round trip of latency (and
/// [`RedisBackend::round_trips`] counts one), each script atomic on its node and timed by
/// that node's clock. The script that holds the GCRA key takes its step unless the keys *of
/// its own slot* refuse the request; if the other slots' answers refuse it (a revoked `jti`
/// or `sid`, a banned client address or network) or another slot's script failed (its node
/// is down), the cell is given back at once (one more call, only on that path, within what is left of the
/// operation timeout and finished in the background after it), so a revoked token, a
/// banned client or a failed check still ends up consuming nothing. With
/// a hash-tagged prefix (`{tw}:`; Redis uses the *first* `{…}` of a key, every key starts
/// with the prefix, and ids and rate-limit keys that contain braces are hex-encoded) every
/// key is in the slot of `tw` and the call is one script, as on one server — at the price
/// of putting the whole application on one node. Standalone and Sentinel-managed Redis
/// need nothing. The slot layout is in `docs/architecture.md` ("Redis Cluster: slot
/// layout").
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

    /// The ban status of `ban` (the client's address key and, if it has one, its network
    /// key, under its quota), the revocation check of `token` and — only when the client is
    /// not banned and the token is active — one GCRA step for `limit` = `(key, charge)`, in
    /// **one script call** (one `EVALSHA`, one round trip, atomic): everything a request
    /// needs from the stores, for the Guard.
    ///
    /// - [`ban`](RequestCheck::ban) is exactly
    ///   [`RateLimitStore::ban_status`](tokenward_ratelimit::RateLimitStore::ban_status)'s on
    ///   [`ratelimit`](Self::ratelimit) for the address key and for the network key (same
    ///   keys, same read-only logic — the same Lua — and the same reply parsing; it never
    ///   records a failure), combined by [`BanCheck::combine`]: banned when either is.
    ///   `None` when no ban was asked.
    /// - [`revocation`](RequestCheck::revocation) is exactly what
    ///   [`check_token`](Self::check_token) reports.
    /// - [`limit`](RequestCheck::limit) is the GCRA decision as `check_token` reports it, but
    ///   `None` — and **no cell consumed** — when the client is banned, by address or by
    ///   network (as well as when no
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
    /// On a Redis Cluster the keys of different slots go to their nodes in concurrent
    /// scripts (see [Redis Cluster](Self#redis-cluster)).
    pub async fn check_request(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
        ban: Option<BanCheck<'_>>,
    ) -> Result<RequestCheck, StoreError> {
        let started = tokio::time::Instant::now();
        let keys = self.revocation.check_keys(token);
        let limit =
            limit.map(|(key, charge)| (charge.quota(), self.ratelimit.gcra_call(key, charge)));
        let network = ban.and_then(|b| b.network.map(|key| self.ratelimit.ban_call(key, b.quota)));
        let ban = ban.map(|b| (b.quota, self.ratelimit.ban_call(b.address, b.quota)));
        if keys.is_empty() && limit.is_none() && ban.is_none() {
            return Ok(RequestCheck {
                ban: None,
                revocation: RevocationStatus::Active,
                limit: None,
            });
        }
        let parts = plan(
            &keys,
            ban.as_ref().map(|(_, call)| call.failures.as_str()),
            network.as_ref().map(|call| call.failures.as_str()),
            limit.as_ref().map(|(_, call)| call.key.as_str()),
            self.backend().is_cluster(),
        );
        let split = parts.len() > 1;
        let ops: Vec<_> = parts
            .iter()
            .map(|part| {
                let mut invocation = CHECK_REQUEST.prepare_invoke();
                let mut rules = String::with_capacity(part.revocation.len());
                for &i in &part.revocation {
                    if let Some((rule, key)) = keys.get(i) {
                        invocation.key(key);
                        rules.push(rule.letter());
                    }
                }
                invocation.arg(rules);
                match token.iat {
                    Some(iat) => invocation.arg(iat.as_millis()),
                    None => invocation.arg("-"),
                };
                match (&ban, part.ban) {
                    (Some((_, call)), true) => invocation
                        .key(&call.failures)
                        .key(&call.ban)
                        .arg(call.findtime),
                    _ => invocation.arg("-"),
                };
                match (&network, part.network) {
                    (Some(call), true) => invocation
                        .key(&call.failures)
                        .key(&call.ban)
                        .arg(call.findtime),
                    _ => invocation.arg("-"),
                };
                if let (Some((_, call)), true) = (&limit, part.limit) {
                    invocation
                        .key(&call.key)
                        .arg(call.emission)
                        .arg(call.tau)
                        .arg(call.weight);
                }
                async move |conn: &mut Conn| invocation.invoke_async::<Vec<Value>>(conn).await
            })
            .collect();
        // Each part's own result: one may have taken a GCRA cell while another failed.
        let replies = self.backend().run_all(ops).await?;
        // Each part's reply: `{gcra, ban, network ban, its revocation values…}`, merged back
        // in order.
        let mut gcra_reply = Vec::new();
        let mut ban_reply = Vec::new();
        let mut network_reply = Vec::new();
        let mut values = vec![Value::Nil; keys.len()];
        let mut merged = Ok(());
        for (part, reply) in parts.iter().zip(replies) {
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    merged = merged.and(Err(e));
                    continue;
                }
            };
            let mut reply = reply.into_iter();
            let (gcra, banned, net) = match (
                int_list(reply.next(), "GCRA"),
                int_list(reply.next(), "ban"),
                int_list(reply.next(), "network ban"),
            ) {
                (Ok(gcra), Ok(banned), Ok(net)) => (gcra, banned, net),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    merged = merged.and(Err(e));
                    continue;
                }
            };
            let got: Vec<Value> = reply.collect();
            if (!gcra.is_empty() && !part.limit)
                || (!banned.is_empty() && !part.ban)
                || (!net.is_empty() && !part.network)
                || got.len() != part.revocation.len()
            {
                merged = merged.and(Err(StoreError::corrupt(
                    "a part of the per-request script answered for keys it was not given",
                )));
                continue;
            }
            if part.limit {
                gcra_reply = gcra;
            }
            if part.ban {
                ban_reply = banned;
            }
            if part.network {
                network_reply = net;
            }
            for (&i, value) in part.revocation.iter().zip(got) {
                if let Some(slot) = values.get_mut(i) {
                    *slot = value;
                }
            }
        }
        let verdict = merged.and_then(|()| {
            verdict(
                token,
                &keys,
                values,
                ban.as_ref().map(|(quota, _)| (*quota, network.is_some())),
                limit.as_ref().map(|(quota, _)| *quota),
                [ban_reply.as_slice(), network_reply.as_slice()],
                &gcra_reply,
                split,
            )
        });
        // Split over slots, the limit's script may have taken a cell for a request the
        // other slots' keys refuse (revoked, banned) or whose other parts failed: give it
        // back: waited for within what is left of the operation timeout, finished in the
        // background after.
        if split
            && !gcra_reply.is_empty()
            && let Some((_, call)) = &limit
            && !verdict.as_ref().is_ok_and(|check| check.limit.is_some())
        {
            let (store, call) = (self.ratelimit.clone(), call.clone());
            let refund = tokio::spawn(async move { store.refund(&call).await });
            let left = self
                .backend()
                .operation_timeout()
                .saturating_sub(started.elapsed());
            let _ = tokio::time::timeout(left, refund).await;
        }
        verdict
    }
}

/// The keys of one per-request call, grouped by Redis Cluster hash slot: one script per
/// part (a single part — one script, atomic — unless the backend is a cluster and the keys
/// are in several slots).
pub(crate) struct Part {
    /// Indices into the token's revocation keys.
    pub(crate) revocation: Vec<usize>,
    /// Whether the address ban's two keys (one slot) are this part's.
    pub(crate) ban: bool,
    /// Whether the network ban's two keys (one slot) are this part's.
    pub(crate) network: bool,
    /// Whether the GCRA key is this part's.
    pub(crate) limit: bool,
}

/// What a key of a per-request call is, for [`plan`].
#[derive(Clone, Copy)]
enum Item {
    Revocation(usize),
    Ban,
    Network,
    Limit,
}

/// The [`Part`]s of a call reading `keys`, the address ban's keys (`ban`: its failures key;
/// the marker shares its slot), the network ban's (`network`, likewise) and the GCRA key
/// `limit`.
pub(crate) fn plan(
    keys: &[(Rule, String)],
    ban: Option<&str>,
    network: Option<&str>,
    limit: Option<&str>,
    cluster: bool,
) -> Vec<Part> {
    let mut items: Vec<(Item, &str)> = keys
        .iter()
        .enumerate()
        .map(|(i, (_, key))| (Item::Revocation(i), key.as_str()))
        .collect();
    items.extend(ban.map(|key| (Item::Ban, key)));
    items.extend(network.map(|key| (Item::Network, key)));
    items.extend(limit.map(|key| (Item::Limit, key)));
    by_slot(items, cluster, |(_, key)| key.as_bytes())
        .into_iter()
        .map(|group| {
            let mut part = Part {
                revocation: Vec::new(),
                ban: false,
                network: false,
                limit: false,
            };
            for (item, _) in group {
                match item {
                    Item::Revocation(i) => part.revocation.push(i),
                    Item::Ban => part.ban = true,
                    Item::Network => part.network = true,
                    Item::Limit => part.limit = true,
                }
            }
            part
        })
        .collect()
}

/// The [`RequestCheck`] of the merged replies: each ban as `ban_status` reads it (`ban`: the
/// quota and whether the network was asked too; `ban_replies`: the address's and the
/// network's), combined by [`BanCheck::combine`]; the status
/// as `RevocationStore::check` decides it, the GCRA reply as `gcra` reads it. One script
/// (`split` false) must agree with the entries exactly; split over slots, the limit's
/// script may have taken a cell the other slots refuse (`limit` then `None`; the caller
/// gives the cell back).
#[allow(clippy::too_many_arguments)]
fn verdict(
    token: &TokenRef<'_>,
    keys: &[(Rule, String)],
    values: Vec<Value>,
    ban: Option<(&BanQuota, bool)>,
    limit: Option<&GcraQuota>,
    ban_replies: [&[i64]; 2],
    gcra_reply: &[i64],
    split: bool,
) -> Result<RequestCheck, StoreError> {
    let [ban_reply, network_reply] = ban_replies;
    let unasked = |reply: &[i64]| {
        StoreError::corrupt(format!(
            "the per-request script answered a ban status nobody asked for: {reply:?}"
        ))
    };
    let ban = match ban {
        Some((quota, network_asked)) => {
            let address = ban_decision(quota, ban_reply)?;
            let network = if network_asked {
                Some(ban_decision(quota, network_reply)?)
            } else if network_reply.is_empty() {
                None
            } else {
                return Err(unasked(network_reply));
            };
            Some(BanCheck::combine(address, network))
        }
        None if ban_reply.is_empty() && network_reply.is_empty() => None,
        None if ban_reply.is_empty() => return Err(unasked(network_reply)),
        None => return Err(unasked(ban_reply)),
    };
    let status = decide(token, keys, values)?;
    let banned = ban.is_some_and(|d| !d.allowed);
    let refused = banned || status != RevocationStatus::Active;
    let limit = match (status, limit) {
        (_, None) if gcra_reply.is_empty() => None,
        (_, Some(_)) if refused && (gcra_reply.is_empty() || split) => None,
        (RevocationStatus::Active, Some(quota)) if !banned && !gcra_reply.is_empty() => {
            Some(gcra_decision(quota, gcra_reply)?)
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
        // Without a tag in the prefix the keys spread over slots: on a Cluster the call is
        // then split into one script per slot (`plan`), or the node would refuse it
        // (CROSSSLOT).
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
