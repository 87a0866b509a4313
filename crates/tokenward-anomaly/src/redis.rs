//! [`RedisAnomalyStore`]: the detectors' state on Redis, shared by every instance.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tokenward_core::StoreError;
use tokenward_redis::RedisBackend;

use crate::state::{AnomalyStore, SetAnswer};

/// `KEYS[1]` the set, `ARGV[1]` the member, `ARGV[2]` the window (ms), `ARGV[3]` the cap.
/// Returns `{added, count}`.
const ADD_LUA: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return {0, redis.call('SCARD', KEYS[1])}
end
local n = redis.call('SCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  return {0, n}
end
redis.call('SADD', KEYS[1], ARGV[1])
if n == 0 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {1, n + 1}
";

/// `KEYS[1]` the counter, `ARGV[1]` the window (ms). Returns the count.
const COUNT_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

static ADD: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_LUA));
static COUNT: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT_LUA));

/// The detectors' state on Redis, shared by every instance. Cheap to clone.
///
/// | state | key | value | expiry |
/// |---|---|---|---|
/// | a bounded set | `{prefix}an:{<key>}` | set of members | `window` from its creation |
/// | a counter | `{prefix}an:{<key>}` | integer | `window` from its creation |
///
/// Each operation is one script on one key (one slot on a cluster). The detectors' keys are
/// `ts:<scoped sid or jti>` (a token's networks), `rr:<network>` (replays), `fb:<network>`
/// (forgeries), `nn:<scoped sub>` (a subject's networks) and `rf:<family id>` (a refresh
/// family's networks). Every script touches its one key only, so on a cluster any slot
/// will do.
#[derive(Debug, Clone)]
pub struct RedisAnomalyStore {
    backend: RedisBackend,
}

impl RedisAnomalyStore {
    /// The state on `backend`, under its key prefix.
    pub fn new(backend: RedisBackend) -> Self {
        RedisAnomalyStore { backend }
    }

    /// The Redis key of a detector's `key`.
    pub fn redis_key(&self, key: &str) -> String {
        let prefix = self.backend.key_prefix();
        let mut out = String::with_capacity(prefix.len() + key.len() + 5);
        out.push_str(prefix);
        out.push_str("an:{");
        out.push_str(key);
        out.push('}');
        out
    }
}

fn millis(d: Duration) -> Vec<u8> {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
        .to_string()
        .into_bytes()
}

#[async_trait]
impl AnomalyStore for RedisAnomalyStore {
    async fn add_member(
        &self,
        key: &str,
        member: &str,
        window: Duration,
        cap: u32,
    ) -> Result<SetAnswer, StoreError> {
        let key = self.redis_key(key);
        let (window, cap) = (millis(window), cap.to_string());
        let (added, count): (i64, i64) = self
            .backend
            .invoke_script(&ADD, &[&key], &[member.as_bytes(), &window, cap.as_bytes()])
            .await?;
        Ok(SetAnswer::new(
            added == 1,
            u32::try_from(count).unwrap_or(u32::MAX),
        ))
    }

    async fn members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        static MEMBERS: LazyLock<Script> =
            LazyLock::new(|| Script::new("return redis.call('SMEMBERS', KEYS[1])"));
        let key = self.redis_key(key);
        self.backend.invoke_script(&MEMBERS, &[&key], &[]).await
    }

    async fn count(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let key = self.redis_key(key);
        let n: i64 = self
            .backend
            .invoke_script(&COUNT, &[&key], &[&millis(window)])
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
