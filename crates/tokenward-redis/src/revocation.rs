//! [`RedisRevocationStore`]: revocations as self-expiring Redis keys.

use std::fmt::Write as _;
use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{Script, Value};
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use crate::backend::RedisBackend;
use crate::byo::Conn;
use crate::config::RedisConfig;
use crate::error::RedisConfigError;
use crate::slot::by_slot;

/// The latest expiry written (9999-12-31T23:59:59.999Z, in ms): later `until`s are clamped to
/// it, which keeps every value an exact integer for Lua (doubles) and for `PXAT`.
const MAX_MS: u64 = 253_402_300_799_999;

/// Stores or extends one entry. `KEYS[1]`: the entry; `ARGV[1]`: its value (decimal ms);
/// `ARGV[2]`: until when it must live (ms since the epoch).
///
/// Revocations only extend: the stored value only grows (max of old and new) and the expiry
/// only moves later (`PEXPIREAT … GT`, Redis ≥ 7.0). An `until` that has already passed by
/// the *server's* clock is a no-op, so application clocks do not matter. Returns 1 when it
/// wrote, 0 for the no-op.
const REVOKE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= now then return 0 end
local value = ARGV[1]
local raw = redis.call('GET', KEYS[1])
if raw and string.match(raw, '^%d+$') and tonumber(raw) > tonumber(value) then
  value = raw
end
if redis.call('PTTL', KEYS[1]) > 0 then
  redis.call('SET', KEYS[1], value, 'KEEPTTL')
  redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
else
  redis.call('SET', KEYS[1], value, 'PXAT', ARGV[2])
end
return 1
";

static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(REVOKE_LUA));

/// A [`RevocationStore`] on Redis (or Valkey) ≥ 7.0.
///
/// # Key layout
///
/// Every entry is one string key with a TTL (`PXAT until`), so Redis deletes it when nothing
/// it could match can still be valid — no cleanup job:
///
/// | rule    | key                     | value                               |
/// |---------|-------------------------|-------------------------------------|
/// | token   | `{prefix}rv:j:{jti}`    | `until`, ms since the epoch         |
/// | session | `{prefix}rv:s:{sid}`    | `until`, ms since the epoch         |
/// | subject | `{prefix}rv:u:{sub}`    | the cutoff `before`, ms since epoch |
/// | subject, tokens without `sid` | `{prefix}rv:n:{sub}` | the cutoff `before`, ms since epoch |
///
/// An id containing `{` or `}` is stored hex-encoded under `rv:jx:`, `rv:sx:`, `rv:ux:` or `rv:nx:`
/// instead, so no id can carry a Redis Cluster hash tag of its own (which would pin its key
/// to a chosen slot). The id always comes last and after a fixed marker, so ids cannot reach
/// into each other's namespaces; their length is bounded by [`StoreId`]. A hash tag in
/// the prefix itself (`{tw}:`) is honoured: it puts all of the application's keys in one slot.
///
/// Times are written in whole milliseconds rounded **up** (`until` and the cutoff), so an
/// entry never expires, and a cutoff never falls, before the instant it was given.
///
/// Every revoke is one `EVALSHA` on one key (re-sent as `SCRIPT LOAD` + `EVALSHA` after a
/// `NOSCRIPT`, e.g. after a restart), so it runs on a Redis Cluster as on one server;
/// [`check`](RevocationStore::check) is one pipelined round trip of up to three `GET`s (four
/// for a token without a `sid`). On a Redis Cluster the keys have no common hash tag (each
/// is hashed whole), so `check` sends one pipeline per slot its keys fall in, all at once:
/// still one round trip of latency. A hash tag in the prefix (`{tw}:`) puts them all in one
/// slot (and the whole application on one node). See `docs/architecture.md`, "Redis
/// Cluster: slot layout".
///
/// # Failures
///
/// Every call returns within the configured operation timeout: outages are
/// [`StoreError::Unavailable`] (refused, reset, authentication) or [`StoreError::Timeout`],
/// a value that is not a decimal integer is [`StoreError::Corrupt`] — never "active". The
/// caller's `FailurePolicy` decides what that means for the request (fail closed by default).
/// The store recovers on its own when Redis is back.
#[derive(Debug, Clone)]
pub struct RedisRevocationStore {
    backend: RedisBackend,
}

impl RedisRevocationStore {
    /// A store on its own [`RedisBackend`] (its own connections). Never talks to Redis, so it succeeds while Redis
    /// is down (calls then fail until it is back); see [`RedisBackend::new`] for the errors.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisConfigError> {
        Ok(Self::new(RedisBackend::new(config)?))
    }

    /// A store sharing `backend`'s connections and key prefix with other stores.
    pub fn new(backend: RedisBackend) -> Self {
        RedisRevocationStore { backend }
    }

    /// The backend this store uses (for [`RedisBackend::ping`] in readiness probes).
    pub fn backend(&self) -> &RedisBackend {
        &self.backend
    }

    /// The Redis key of a token (`jti`) revocation, for operators.
    pub fn token_key(&self, jti: &str) -> String {
        self.key('j', jti)
    }

    /// The Redis key of a session (`sid`) revocation, for operators.
    pub fn session_key(&self, sid: &str) -> String {
        self.key('s', sid)
    }

    /// The Redis key of a subject (`sub`) cutoff, for operators.
    pub fn subject_key(&self, sub: &str) -> String {
        self.key('u', sub)
    }

    /// The Redis key of a subject's cutoff for tokens without a `sid`
    /// ([`revoke_subject_without_session`](RevocationStore::revoke_subject_without_session)),
    /// for operators.
    pub fn sessionless_subject_key(&self, sub: &str) -> String {
        self.key('n', sub)
    }

    fn key(&self, rule: char, id: &str) -> String {
        let prefix = self.backend.key_prefix();
        let mut key = String::with_capacity(prefix.len() + 6 + 2 * id.len());
        key.push_str(prefix);
        key.push_str("rv:");
        key.push(rule);
        if id.contains(['{', '}']) {
            key.push_str("x:");
            for byte in id.bytes() {
                let _ = write!(key, "{byte:02x}");
            }
        } else {
            key.push(':');
            key.push_str(id);
        }
        key
    }

    /// Writes `value` (ms) under `key` until `until`, rounded up to the millisecond.
    async fn revoke(&self, key: String, value: u64, until: UnixTime) -> Result<(), StoreError> {
        let value = value.min(MAX_MS);
        let until = until.as_millis_ceil().min(MAX_MS);
        self.backend
            .run(async move |conn| {
                let _wrote: i64 = REVOKE
                    .key(&key)
                    .arg(value)
                    .arg(until)
                    .invoke_async(conn)
                    .await?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl RevocationStore for RedisRevocationStore {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        let key = self.token_key(jti.as_str());
        self.revoke(key, until.as_millis_ceil(), until).await
    }

    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        let key = self.session_key(sid.as_str());
        self.revoke(key, until.as_millis_ceil(), until).await
    }

    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        let key = self.subject_key(sub.as_str());
        self.revoke(key, before.as_millis_ceil(), until).await
    }

    async fn revoke_subject_without_session(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        let key = self.sessionless_subject_key(sub.as_str());
        self.revoke(key, before.as_millis_ceil(), until).await
    }

    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        let keys = self.check_keys(token);
        if keys.is_empty() {
            return Ok(RevocationStatus::Active);
        }
        // One pipeline of GETs; on a cluster, one per hash slot, all at once.
        let groups = by_slot(
            keys.iter().enumerate().collect(),
            self.backend.is_cluster(),
            |(_, (_, key))| key.as_bytes(),
        );
        let ops: Vec<_> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                for (_, (_, key)) in group {
                    pipe.cmd("GET").arg(key);
                }
                async move |conn: &mut Conn| pipe.query_async::<Vec<Value>>(conn).await
            })
            .collect();
        let replies = self.backend.run_each(ops).await?;
        let mut values = vec![Value::Nil; keys.len()];
        for (group, reply) in groups.iter().zip(replies) {
            if reply.len() != group.len() {
                return Err(StoreError::corrupt(format!(
                    "{} revocation keys read back as {} replies",
                    group.len(),
                    reply.len()
                )));
            }
            for ((i, _), value) in group.iter().zip(reply) {
                if let Some(slot) = values.get_mut(*i) {
                    *slot = value;
                }
            }
        }
        decide(token, &keys, values)
    }
}

impl RedisRevocationStore {
    /// The keys a check of `token` reads, in precedence order (token, session, subject, and
    /// for a token without a session the subject's cutoff for such tokens).
    pub(crate) fn check_keys(&self, token: &TokenRef<'_>) -> Vec<(Rule, String)> {
        let mut keys: Vec<(Rule, String)> = Vec::with_capacity(4);
        if let Some(jti) = &token.jti {
            keys.push((Rule::Token, self.token_key(jti.as_str())));
        }
        if let Some(sid) = &token.sid {
            keys.push((Rule::Session, self.session_key(sid.as_str())));
        }
        if let Some(sub) = &token.sub {
            keys.push((Rule::Subject, self.subject_key(sub.as_str())));
            if token.sid.is_none() {
                keys.push((
                    Rule::SubjectWithoutSession,
                    self.sessionless_subject_key(sub.as_str()),
                ));
            }
        }
        keys
    }
}

/// The status of `token` from the `GET` replies of its [`check_keys`](RedisRevocationStore::check_keys):
/// the first matching rule in precedence order wins; a subject cutoff matches a token issued
/// before it (or without `iat`). Every reply is parsed before deciding, so garbage is never
/// outranked into "active".
pub(crate) fn decide(
    token: &TokenRef<'_>,
    keys: &[(Rule, String)],
    values: Vec<Value>,
) -> Result<RevocationStatus, StoreError> {
    if values.len() != keys.len() {
        return Err(StoreError::corrupt(format!(
            "{} revocation keys read back as {} replies",
            keys.len(),
            values.len()
        )));
    }
    let mut status = RevocationStatus::Active;
    for ((rule, _), value) in keys.iter().zip(values) {
        let Some(ms) = parse_ms(value)? else { continue };
        let matched = match rule {
            Rule::Token => Some(RevokedBy::Token),
            Rule::Session => Some(RevokedBy::Session),
            Rule::Subject | Rule::SubjectWithoutSession => {
                let revoked = token.iat.is_none_or(|iat| iat.as_millis() < ms);
                revoked.then_some(RevokedBy::Subject {
                    before: UnixTime::from_millis(ms),
                })
            }
        };
        if let (RevocationStatus::Active, Some(by)) = (status, matched) {
            status = RevocationStatus::Revoked(by);
        }
    }
    Ok(status)
}

/// The revocation check as a Lua function, for scripts that must act only on an active token
/// (the combined per-request script of [`RedisStores`](crate::RedisStores)):
/// `revocation_active(n, rules, iat)` reads `KEYS[1..n]` (a check's keys, in order), where
/// `rules` has one letter per key (`j`, `s`, `u`, `n`, as [`Rule::letter`]) and `iat` is the
/// token's `iat` in ms as a decimal string, or `-` for none. It returns whether the token is
/// certainly active, and the raw values (`false` for a missing key) for [`decide`], which
/// stays the one that decides the status.
///
/// It follows [`decide`] and [`parse_ms`] exactly, without Lua's doubles: a value is a
/// decimal integer that fits in a `u64` (leading zeros allowed; anything else is corrupt and
/// the token is not active), and the subject rules (`u`, `n`) compare `iat < cutoff` as
/// decimal strings.
pub(crate) const REVOCATION_FN_LUA: &str = r"
local function rv_ms(raw)
  if not raw then return nil end
  if not string.match(raw, '^%d+$') then return false end
  local d = string.match(raw, '^0*(%d*)$')
  if #d > 20 or (#d == 20 and d > '18446744073709551615') then return false end
  return d
end
local function dec_lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function revocation_active(n, rules, iat)
  local raw = {}
  local active = true
  if iat == '-' then iat = false else iat = string.match(iat, '^0*(%d*)$') end
  for i = 1, n do
    local v = redis.call('GET', KEYS[i])
    raw[i] = v
    local ms = rv_ms(v)
    if ms == false then
      active = false
    elseif ms ~= nil then
      local rule = string.sub(rules, i, i)
      if (rule ~= 'u' and rule ~= 'n') or not iat or dec_lt(iat, ms) then active = false end
    end
  end
  return active, raw
end
";

/// A revocation rule, in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    Token,
    Session,
    Subject,
    SubjectWithoutSession,
}

impl Rule {
    /// The rule's letter in [`REVOCATION_FN_LUA`]'s `rules`.
    pub(crate) fn letter(self) -> char {
        match self {
            Rule::Token => 'j',
            Rule::Session => 's',
            Rule::Subject => 'u',
            Rule::SubjectWithoutSession => 'n',
        }
    }
}

/// A `GET` reply: nothing, or a decimal number of milliseconds. Anything else is corrupt.
fn parse_ms(value: Value) -> Result<Option<u64>, StoreError> {
    let bytes = match value {
        Value::Nil => return Ok(None),
        Value::BulkString(bytes) => bytes,
        other => {
            return Err(StoreError::corrupt(format!(
                "revocation entry read back as {:?}, not a string",
                kind_of(&other)
            )));
        }
    };
    std::str::from_utf8(&bytes)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            StoreError::corrupt(format!(
                "revocation entry is not a decimal number of milliseconds ({} bytes)",
                bytes.len()
            ))
        })
}

/// The shape of a reply, without its content (which may be anything).
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a bulk string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) => "a simple string",
        Value::Okay => "OK",
        Value::Map(_) => "a map",
        Value::Set(_) => "a set",
        Value::Double(_) => "a double",
        Value::Boolean(_) => "a boolean",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> RedisRevocationStore {
        RedisRevocationStore::connect(&RedisConfig::default().key_prefix(prefix)).unwrap()
    }

    #[test]
    fn key_layout() {
        let s = store("app:");
        assert_eq!(s.token_key("0f3a"), "app:rv:j:0f3a");
        assert_eq!(s.session_key("fam_81"), "app:rv:s:fam_81");
        assert_eq!(
            s.subject_key("alice@example.com"),
            "app:rv:u:alice@example.com"
        );
        // Hash tags in ids are defused; the encoded form lives in its own namespace.
        assert_eq!(s.subject_key("{a}"), "app:rv:ux:7b617d");
        assert_eq!(s.token_key("x}"), "app:rv:jx:787d");
        // A raw id that looks like an encoded one cannot collide with it.
        assert_ne!(s.subject_key("x:7b617d"), s.subject_key("{a}"));
    }

    #[test]
    fn replies() {
        assert_eq!(parse_ms(Value::Nil).unwrap(), None);
        assert_eq!(
            parse_ms(Value::BulkString(b"1700000000000".to_vec())).unwrap(),
            Some(1_700_000_000_000)
        );
        for bad in [
            Value::BulkString(b"".to_vec()),
            Value::BulkString(b"-1".to_vec()),
            Value::BulkString(b"+5".to_vec()),
            Value::BulkString(b"1e3".to_vec()),
            Value::BulkString(b"99999999999999999999999".to_vec()),
            Value::BulkString(vec![0xff, 0x31]),
            Value::Int(5),
            Value::Okay,
            Value::Array(vec![]),
        ] {
            assert_eq!(
                parse_ms(bad).unwrap_err().kind(),
                tokenward_core::StoreErrorKind::Corrupt
            );
        }
    }
}
