//! [`RedisRateLimitStore`]: GCRA limits and fail2ban-style bans shared by every application
//! instance through Redis, timed by the Redis server's clock.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tokenward_core::StoreError;
use tokenward_ratelimit::{BanQuota, Decision, GcraCharge, GcraQuota, LimitKey, RateLimitStore};

use crate::backend::RedisBackend;
use crate::config::RedisConfig;
use crate::error::RedisConfigError;

/// The longest span (emission interval, burst tolerance, findtime, bantime) the scripts see:
/// [`MAX_SPAN`](tokenward_ratelimit::MAX_SPAN) (2^50 µs, about 35.7 years), which the quotas guarantee when they are made
/// (a longer one is a `SettingError` there, never clamped here). That keeps every time the
/// scripts compute (the server's `TIME` in µs, ≈ 1.8 × 10^15, plus at most two such spans,
/// each rounded up by at most `burst` µs) an exact integer in Lua's doubles (< 2^53).
#[cfg(test)]
const MAX_SPAN_US: u64 = tokenward_ratelimit::MAX_SPAN.as_micros() as u64;

/// The server's clock, read once per script run: `server_now()` is `TIME` in µs, the same
/// instant for every function of one script that asks (the per-request script's ban status
/// and GCRA step read it once between them, not twice). Prepended to every script that uses
/// [`GCRA_FN_LUA`] or [`BAN_STATUS_FN_LUA`].
pub(crate) const NOW_FN_LUA: &str = r"
local now_us = nil
local function server_now()
  if now_us == nil then
    local t = redis.call('TIME')
    now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return now_us
end
";

/// GCRA, one check, as a Lua function `gcra(key, period, tau, weight)` shared by the GCRA
/// script and by the combined per-request script of [`RedisStores`](crate::RedisStores):
/// `key` is the TAT key, `period` the emission interval `T` (µs), `tau` the burst tolerance
/// `burst × T` (µs), `weight` the request's weight `n × T` (µs) for a cost `n`, with
/// `n × T ≤ tau` (the caller checks `n ≤ burst`).
///
/// With `now` the server's `TIME` in µs ([`NOW_FN_LUA`]) and `tat` the stored theoretical
/// arrival time (`now` if there is none, or if it is in the past):
///
/// - `new_tat = tat + n × T`; admitted iff `new_tat − tau ≤ now`;
/// - admitted: store `new_tat` with `PX ⌈(new_tat − now) / 1000⌉` (the key vanishes when the
///   TAT falls back to now, i.e. the quota is full again) and return
///   `remaining = ⌊(now + tau − new_tat) / T⌋`, `reset = new_tat − now`;
/// - denied: nothing is written; `retry_after = new_tat − tau − now`, `reset = tat − now`.
///
/// Returns `{admitted (1/0), remaining, reset µs, retry_after µs}`, or `{-1}` if the stored
/// value is not a decimal integer ([`gcra_decision`] reads the reply).
pub(crate) const GCRA_FN_LUA: &str = r"
local function gcra(key, period, tau, weight)
  local now = server_now()
  local tat = now
  local raw = redis.call('GET', key)
  if raw then
    if not string.match(raw, '^%d+$') then return {-1} end
    tat = tonumber(raw)
    if tat < now then tat = now end
  end
  local new_tat = tat + weight
  local allow_at = new_tat - tau
  if allow_at > now then
    return {0, 0, tat - now, allow_at - now}
  end
  local ttl_ms = math.ceil((new_tat - now) / 1000)
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
  return {1, math.floor((now + tau - new_tat) / period), new_tat - now, 0}
end
";

/// The GCRA script: [`GCRA_FN_LUA`] on `KEYS[1]` with `ARGV[1..3]` = `T`, `tau`, `n × T`
/// (the arguments of [`GcraCall`]).
const GCRA_CALL_LUA: &str = r"
return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
";

/// Gives back one GCRA step of weight `ARGV[1]` (µs) on the TAT key `KEYS[1]`: the TAT
/// moves back by the weight (the key goes when it falls to the server's now, keeps its
/// "until the TAT falls back to now" TTL otherwise). Only for a step the Guard's
/// per-request check took in one hash slot for a request that keys in other slots refuse
/// (Redis Cluster; see [`RedisStores`](crate::RedisStores)). Returns 1 if it gave back,
/// 0 if there was nothing (or garbage) to give back.
const GCRA_REFUND_LUA: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw or not string.match(raw, '^%d+$') then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(raw) - tonumber(ARGV[1])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  local ttl_ms = math.ceil((tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl_ms))
end
return 1
";

/// Records one failure. `KEYS[1]`: the failures (a sorted set: score = the failure's time
/// in µs by the server's clock), `KEYS[2]`: the ban marker (same hash slot); `ARGV[1]`:
/// maxretry, `ARGV[2]`: findtime (µs), `ARGV[3]`: bantime (ms).
///
/// While banned, nothing is counted (and the ban is not extended). Otherwise failures older
/// than `now − findtime` are dropped (a failure at `f` counts while `now < f + findtime`: a
/// sliding window, as fail2ban's), this one is added, and the set gets `PEXPIRE findtime`
/// (it vanishes when its newest failure leaves the window). Reaching maxretry sets the ban
/// marker with `PX bantime` and deletes the failures, so counting starts afresh after the
/// ban. The set never holds more than maxretry − 1 failures.
///
/// Returns `{1, ban ttl ms}` when banned, `{0, failures, µs until the oldest leaves the
/// window}` otherwise, `{-1}` for a ban marker without a TTL.
const RECORD_FAILURE_LUA: &str = r"
local ban = redis.call('PTTL', KEYS[2])
if ban > 0 then return {1, ban} end
if ban == -1 then return {-1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local findtime = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - findtime))
local count = redis.call('ZCARD', KEYS[1])
local at = string.format('%.0f', now)
redis.call('ZADD', KEYS[1], at, at .. '-' .. count)
count = count + 1
if count >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {1, tonumber(ARGV[3])}
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(findtime / 1000)))
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, tonumber(oldest[2]) + findtime - now}
";

/// A key's ban state, read-only, as a Lua function `ban_status(failures, ban, findtime)`
/// shared by the ban-status script and by the combined per-request script of
/// [`RedisStores`](crate::RedisStores): `failures` and `ban` are the keys of
/// [`RECORD_FAILURE_LUA`] (same hash slot), `findtime` the window (µs). Writes nothing.
///
/// Returns the replies of [`RECORD_FAILURE_LUA`] (`{1, ban ttl ms}` when banned, `{0,
/// failures, µs until the oldest leaves the window}` otherwise — `{0, 0, 0}` when no failure
/// counts — and `{-1}` for a ban marker without a TTL); [`ban_decision`] reads them.
pub(crate) const BAN_STATUS_FN_LUA: &str = r"
local function ban_status(failures, ban, findtime)
  local ttl = redis.call('PTTL', ban)
  if ttl > 0 then return {1, ttl} end
  if ttl == -1 then return {-1} end
  local now = server_now()
  local after = '(' .. string.format('%.0f', now - findtime)
  local count = redis.call('ZCOUNT', failures, after, '+inf')
  if count == 0 then return {0, 0, 0} end
  local oldest = redis.call('ZRANGEBYSCORE', failures, after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return {0, count, tonumber(oldest[2]) + findtime - now}
end
";

/// The ban-status script: [`BAN_STATUS_FN_LUA`] with the keys and arguments of
/// [`RECORD_FAILURE_LUA`] (only findtime, `ARGV[2]`, is used).
const BAN_STATUS_CALL_LUA: &str = r"
return ban_status(KEYS[1], KEYS[2], tonumber(ARGV[2]))
";

static GCRA: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{NOW_FN_LUA}{GCRA_FN_LUA}{GCRA_CALL_LUA}")));
static GCRA_REFUND: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA_REFUND_LUA));
static RECORD_FAILURE: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_FAILURE_LUA));
static BAN_STATUS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW_FN_LUA}{BAN_STATUS_FN_LUA}{BAN_STATUS_CALL_LUA}"
    ))
});

/// A [`RateLimitStore`] on Redis (or Valkey) ≥ 7.0, shared by every application instance
/// that uses the same server and key prefix.
///
/// Every decision is one `EVALSHA` (re-sent as `SCRIPT LOAD` + `EVALSHA` after a `NOSCRIPT`,
/// e.g. after a restart or failover) that reads the Redis server's `TIME`: the application
/// instances' clocks never matter, and concurrent callers in any number of processes are
/// serialised by Redis, so together they admit exactly what the quota allows.
///
/// ```no_run
/// use std::num::NonZeroU32;
/// use tokenward_ratelimit::{BanQuota, GcraCharge, GcraQuota, LimitKey, RateLimitStore};
/// use tokenward_redis::{RedisConfig, RedisRateLimitStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisRateLimitStore::connect(&RedisConfig::new("redis://127.0.0.1:6379"))?;
///
/// let per_minute = GcraQuota::per_minute(NonZeroU32::new(300).ok_or("zero")?);
/// let key = LimitKey::new("subject:alice")?;
/// let decision = store.gcra(&key, &GcraCharge::single(per_minute)).await?;
/// assert!(decision.allowed);
///
/// let ban = BanQuota::fail2ban_default(); // 5 failures within 60 s ban for 300 s
/// let after = store.record_failure(&LimitKey::new("ip:203.0.113.7")?, &ban).await?;
/// assert_eq!(after.remaining, 4);
/// # Ok(())
/// # }
/// ```
///
/// # Key layout
///
/// | state                 | key                          | value                          | TTL                         |
/// |-----------------------|------------------------------|--------------------------------|-----------------------------|
/// | GCRA TAT              | `{prefix}rl:{<key>}:g`       | theoretical arrival time, µs since the epoch (server clock) | until the TAT falls back to now |
/// | failures in window    | `{prefix}rl:{<key>}:f`       | sorted set: one member per failure, scored by its time (µs, server clock) | `findtime`, from the latest failure |
/// | ban                   | `{prefix}rl:{<key>}:b`       | `1`                            | `bantime`                   |
///
/// The key sits inside a Redis Cluster hash tag, so the failures and the ban marker that one
/// script touches are in one slot (a hash tag in the prefix itself, `{tw}:`, takes
/// precedence and puts all of the application's keys in one slot). A key containing `{` or `}` is stored
/// hex-encoded, as `{prefix}rl:x:{<hex>}:…`, so it can neither pick its own slot nor split a
/// script's keys across slots; raw keys always have `{` right after `rl:`, so the two forms
/// cannot collide. Keys are [`LimitKey`]s (1 to 1024 bytes, no NUL). Every key has a
/// TTL: Redis memory stays proportional to the keys active within their quota's period (or
/// findtime / bantime), however many distinct keys a flood brings.
///
/// # GCRA
///
/// The [contract's formulas](RateLimitStore#gcra) in microseconds of the server's clock:
/// emission interval `T` = [`GcraQuota::emission_interval`] rounded *up* to whole
/// microseconds, `tau = burst × T`. A request of cost `n` with stored TAT `tat` (or `now`
/// when absent or past) is admitted iff `tat + n × T − tau ≤ now`; then the TAT becomes
/// `new_tat = tat + n × T` and
///
/// - `remaining = ⌊(now + tau − new_tat) / T⌋`, `reset = new_tat − now`;
/// - when denied (nothing written): `remaining = 0`, `reset = tat − now`,
///   `retry_after = tat + n × T − tau − now`.
///
/// So a fresh key admits exactly `burst` unit requests at once and one more every `T`. The
/// TAT key's TTL is `⌈(new_tat − now) / 1 ms⌉`: it vanishes exactly when the quota is full
/// again, when its absence means the same as its presence. A cost above `burst` cannot be
/// asked for ([`GcraCharge`] is checked when made). Rounding `T` up means a non-µs interval
/// admits marginally *less* than `limit` per period, never more. Every span is at most
/// [`MAX_SPAN`](tokenward_ratelimit::MAX_SPAN) (the quotas refuse longer ones), which keeps all script arithmetic exact in
/// Lua's doubles.
///
/// # Failure bans (fail2ban)
///
/// A **sliding window**, as fail2ban's: a failure at time `f` (the server's clock) counts
/// while `now < f + findtime`. The failures are a sorted set scored by time; the
/// `maxretry`-th failure within the window sets the ban marker (`PX bantime`, which may
/// outlast the window) and clears the set, so counting starts afresh when the ban ends.
/// While banned, failures are neither counted nor extend the ban. The set holds at most
/// `maxretry − 1` members and expires `findtime` after its latest failure. Not banned: the
/// decision's `reset` is the time until the oldest counted failure leaves the window.
/// [`lift_ban`](RateLimitStore::lift_ban) deletes both keys.
///
/// # Failures
///
/// Every call returns within the configured operation timeout: outages are
/// [`StoreError::Unavailable`] or [`StoreError::Timeout`], state that does not parse is
/// [`StoreError::Corrupt`] — never a made-up decision. Whether a request is then admitted
/// (fail open) or refused (fail closed) is the rate-limit policy's `FailurePolicy`; the
/// default is documented in `tokenward-ratelimit`. The store recovers on its own when Redis
/// is back.
#[derive(Debug, Clone)]
pub struct RedisRateLimitStore {
    backend: RedisBackend,
}

impl RedisRateLimitStore {
    /// A store on its own [`RedisBackend`] (its own connections). Never talks to Redis, so it succeeds while Redis
    /// is down (calls then fail until it is back); see [`RedisBackend::new`] for the errors.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisConfigError> {
        Ok(Self::new(RedisBackend::new(config)?))
    }

    /// A store sharing `backend`'s connections and key prefix with other stores.
    pub fn new(backend: RedisBackend) -> Self {
        RedisRateLimitStore { backend }
    }

    /// The backend this store uses (for [`RedisBackend::ping`] in readiness probes).
    pub fn backend(&self) -> &RedisBackend {
        &self.backend
    }

    /// The Redis key holding `key`'s GCRA state, for operators.
    pub fn gcra_key(&self, key: &LimitKey<'_>) -> String {
        self.key(key, 'g')
    }

    /// The Redis key counting `key`'s failures, for operators.
    pub fn failures_key(&self, key: &LimitKey<'_>) -> String {
        self.key(key, 'f')
    }

    /// The Redis key marking `key` as banned, for operators.
    pub fn ban_key(&self, key: &LimitKey<'_>) -> String {
        self.key(key, 'b')
    }

    /// A GCRA request as the script's key and arguments.
    pub(crate) fn gcra_call(&self, key: &LimitKey<'_>, charge: &GcraCharge) -> GcraCall {
        let Gcra { emission, tau } = Gcra::new(charge.quota());
        // cost ≤ burst (a GcraCharge's promise), so this is at most tau.
        let weight = u64::from(charge.cost()).saturating_mul(emission);
        GcraCall {
            key: self.gcra_key(key),
            emission,
            tau,
            weight,
        }
    }

    /// Gives back the step `call` took ([`GCRA_REFUND_LUA`]), best effort: a failure is
    /// logged (the cell then comes back by itself within the quota's period).
    pub(crate) async fn refund(&self, call: &GcraCall) {
        let result = self
            .backend
            .run(async |conn| {
                GCRA_REFUND
                    .key(&call.key)
                    .arg(call.weight)
                    .invoke_async::<i64>(conn)
                    .await
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(
                target: "tokenward::redis",
                endpoint = self.backend.endpoint(),
                %error,
                "could not give back a rate-limit cell taken for a refused request"
            );
        }
    }

    fn key(&self, key: &LimitKey<'_>, kind: char) -> String {
        let key = key.as_str();
        let prefix = self.backend.key_prefix();
        let mut out = String::with_capacity(prefix.len() + 10 + 2 * key.len());
        out.push_str(prefix);
        out.push_str("rl:");
        if key.contains(['{', '}']) {
            out.push_str("x:{");
            for byte in key.bytes() {
                let _ = write!(out, "{byte:02x}");
            }
        } else {
            out.push('{');
            out.push_str(key);
        }
        out.push_str("}:");
        out.push(kind);
        out
    }

    /// A ban request as the ban scripts' keys and arguments.
    pub(crate) fn ban_call(&self, key: &LimitKey<'_>, quota: &BanQuota) -> BanCall {
        BanCall {
            failures: self.failures_key(key),
            ban: self.ban_key(key),
            maxretry: quota.maxretry(),
            findtime: span_us(quota.findtime()),
            bantime: span_ms(quota.bantime()),
        }
    }

    async fn ban_script(
        &self,
        script: &'static Script,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        let call = self.ban_call(key, quota);
        let reply: Vec<i64> = self
            .backend
            .run(async move |conn| {
                script
                    .key(&call.failures)
                    .key(&call.ban)
                    .arg(call.maxretry)
                    .arg(call.findtime)
                    .arg(call.bantime)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        ban_decision(quota, &reply)
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    async fn gcra(&self, key: &LimitKey<'_>, charge: &GcraCharge) -> Result<Decision, StoreError> {
        let call = self.gcra_call(key, charge);
        let reply: Vec<i64> = self
            .backend
            .run(async move |conn| {
                GCRA.key(&call.key)
                    .arg(call.emission)
                    .arg(call.tau)
                    .arg(call.weight)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        gcra_decision(charge.quota(), &reply)
    }

    async fn ban_status(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        self.ban_script(&BAN_STATUS, key, quota).await
    }

    async fn record_failure(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        self.ban_script(&RECORD_FAILURE, key, quota).await
    }

    async fn lift_ban(&self, key: &LimitKey<'_>) -> Result<(), StoreError> {
        let (failures, ban) = (self.failures_key(key), self.ban_key(key));
        // One command, two keys in one slot: atomic, Cluster safe.
        self.backend
            .run(async move |conn| {
                let _deleted: i64 = redis::cmd("DEL")
                    .arg(&failures)
                    .arg(&ban)
                    .query_async(conn)
                    .await?;
                Ok(())
            })
            .await
    }
}

/// One GCRA request: the TAT key and the arguments of [`GCRA_FN_LUA`]'s `gcra`.
#[derive(Debug, Clone)]
pub(crate) struct GcraCall {
    /// The TAT key ([`RedisRateLimitStore::gcra_key`]).
    pub(crate) key: String,
    /// `T`, µs.
    pub(crate) emission: u64,
    /// `tau`, µs.
    pub(crate) tau: u64,
    /// `n × T`, µs.
    pub(crate) weight: u64,
}

/// One ban request: the keys and arguments of [`RECORD_FAILURE_LUA`] and
/// [`BAN_STATUS_FN_LUA`]'s `ban_status`.
#[derive(Debug, Clone)]
pub(crate) struct BanCall {
    /// The failures key ([`RedisRateLimitStore::failures_key`]).
    pub(crate) failures: String,
    /// The ban marker ([`RedisRateLimitStore::ban_key`]).
    pub(crate) ban: String,
    /// Failures that trigger a ban.
    pub(crate) maxretry: u32,
    /// The window, µs.
    pub(crate) findtime: u64,
    /// The ban's length, ms.
    pub(crate) bantime: u64,
}

/// The decision in a reply of [`RECORD_FAILURE_LUA`] or [`BAN_STATUS_FN_LUA`]'s
/// `ban_status`; anything unexpected is corrupt.
pub(crate) fn ban_decision(quota: &BanQuota, reply: &[i64]) -> Result<Decision, StoreError> {
    match *reply {
        [1, ban_ms] if ban_ms > 0 => {
            let left = ms(ban_ms);
            Ok(Decision::denied(quota.maxretry(), left, left))
        }
        [0, count, window_us] if count >= 0 && window_us >= 0 => {
            let remaining = u64::from(quota.maxretry()).saturating_sub(count.unsigned_abs());
            Ok(Decision::allowed(
                quota.maxretry(),
                u32::try_from(remaining).unwrap_or(u32::MAX),
                us(window_us),
            ))
        }
        _ => Err(corrupt("ban", reply)),
    }
}

/// The decision in a reply of [`GCRA_FN_LUA`]'s `gcra`; anything unexpected is corrupt.
pub(crate) fn gcra_decision(quota: &GcraQuota, reply: &[i64]) -> Result<Decision, StoreError> {
    match *reply {
        [1, remaining, reset_us, _] if remaining >= 0 && reset_us >= 0 => Ok(Decision::allowed(
            quota.limit(),
            u32::try_from(remaining).unwrap_or(u32::MAX),
            us(reset_us),
        )),
        [0, _, reset_us, retry_us] if reset_us >= 0 && retry_us > 0 => {
            Ok(Decision::denied(quota.limit(), us(reset_us), us(retry_us)))
        }
        _ => Err(corrupt("GCRA", reply)),
    }
}

/// A GCRA quota in the scripts' units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gcra {
    /// `T = period / limit`, µs, rounded up.
    emission: u64,
    /// `tau = burst × T`, µs.
    tau: u64,
}

impl Gcra {
    fn new(quota: &GcraQuota) -> Self {
        let emission = span_us(quota.emission_interval());
        let tau = emission.saturating_mul(u64::from(quota.burst()));
        Gcra { emission, tau }
    }
}

/// A span (at most [`MAX_SPAN`](tokenward_ratelimit::MAX_SPAN), more than zero: the quotas' promise) in whole µs, rounded
/// up.
fn span_us(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// A span (at most [`MAX_SPAN`](tokenward_ratelimit::MAX_SPAN), more than zero) in whole ms for `PX` / `PEXPIRE`, rounded
/// up.
fn span_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

fn us(v: i64) -> Duration {
    Duration::from_micros(v.unsigned_abs())
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.unsigned_abs())
}

fn corrupt(what: &str, reply: &[i64]) -> StoreError {
    if reply.first() == Some(&-1) {
        StoreError::corrupt(format!("{what} state in Redis does not parse"))
    } else {
        StoreError::corrupt(format!("{what} script answered {reply:?}"))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use tokenward_ratelimit::MAX_SPAN;

    use super::*;

    fn store(prefix: &str) -> RedisRateLimitStore {
        RedisRateLimitStore::connect(&RedisConfig::default().key_prefix(prefix)).unwrap()
    }

    fn key(k: &str) -> LimitKey<'_> {
        LimitKey::new(k).unwrap()
    }

    #[test]
    fn key_layout() {
        let s = store("app:");
        assert_eq!(s.gcra_key(&key("sub:alice")), "app:rl:{sub:alice}:g");
        assert_eq!(
            s.failures_key(&key("ip:10.0.0.1")),
            "app:rl:{ip:10.0.0.1}:f"
        );
        assert_eq!(s.ban_key(&key("ip:10.0.0.1")), "app:rl:{ip:10.0.0.1}:b");
        // Hash tags in keys are defused, in a namespace of their own.
        assert_eq!(s.ban_key(&key("{a}")), "app:rl:x:{7b617d}:b");
        assert_ne!(s.ban_key(&key("x:{7b617d}")), s.ban_key(&key("{a}")));
    }

    #[test]
    fn quota_units() {
        let nz = |n| NonZeroU32::new(n).unwrap();
        let q = |limit, period, burst| {
            GcraQuota::new(nz(limit), period)
                .and_then(|q| q.with_burst(nz(burst)))
                .unwrap()
        };
        let g = Gcra::new(&q(300, Duration::from_secs(60), 300));
        assert_eq!(
            g,
            Gcra {
                emission: 200_000,
                tau: 60_000_000
            }
        );
        // 1 s / 3 = 333 333.33 µs: rounded up, never over-admitting.
        let g = Gcra::new(&q(3, Duration::from_secs(1), 2));
        assert_eq!(
            g,
            Gcra {
                emission: 333_334,
                tau: 666_668
            }
        );
        // Sub-µs intervals still cost something.
        let g = Gcra::new(&q(u32::MAX, Duration::from_nanos(1), 1));
        assert_eq!(g.emission, 1);
        // The longest quota stays within the span the scripts compute exactly with.
        let g = Gcra::new(&q(1, MAX_SPAN, 1));
        assert_eq!(
            g,
            Gcra {
                emission: MAX_SPAN_US,
                tau: MAX_SPAN_US
            }
        );
        assert_eq!(span_us(Duration::from_nanos(1)), 1);
        assert_eq!(span_ms(Duration::from_micros(1)), 1);
        assert_eq!(span_ms(Duration::from_micros(1500)), 2);
        assert_eq!(span_ms(MAX_SPAN), MAX_SPAN_US.div_ceil(1000));
    }
}
