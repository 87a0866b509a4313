//! [`RedisRefreshStore`]: refresh-token families on Redis, each rotation one atomic Lua
//! script on one hash slot, timed by the Redis server's clock.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, Value};
use tokenward_core::{StoreError, UnixTime};
use tokenward_refresh::{
    FamilyId, FamilyInfo, IdempotencyRecord, MAX_SUB_LEN, MIN_REUSE_HISTORY, NewFamily,
    RefreshStore, ReuseKind, RotationRequest, RotationResult, Sealed, TokenHash,
};

use crate::backend::RedisBackend;
use crate::config::RedisConfig;
use crate::error::Error;

/// The longest span (lifetime, idle timeout, grace window) the scripts work with: 2^50 ms.
/// Longer ones are clamped, which keeps every time the scripts compute (server `TIME` in ms
/// plus such a span) an exact integer in Lua's doubles (< 2^53).
const MAX_SPAN_MS: u64 = 1 << 50;

/// How many rotated hashes a family's history keeps (the oldest are dropped beyond it).
const HISTORY_CAP: usize = MIN_REUSE_HISTORY;

/// Shared by every family script: the server clock, a constant-time comparison, and the
/// parsing of the family hash (`nil` if absent; `nil, reason` if it does not parse).
const PRELUDE_LUA: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function s(x) return string.format('%.0f', x) end
local function ct_eq(a, b)
  if type(a) ~= 'string' or type(b) ~= 'string' or #a ~= #b then return false end
  local d = 0
  for i = 1, #a do d = bit.bor(d, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return d == 0
end
local function load(key)
  local raw = redis.call('HGETALL', key)
  if #raw == 0 then return nil end
  local f = {}
  for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
  for _, name in ipairs({'created', 'last', 'abs', 'idle', 'n'}) do
    local v = f[name]
    if type(v) ~= 'string' or not string.match(v, '^%d+$') then return nil, 'bad ' .. name end
    f[name] = tonumber(v)
  end
  if type(f.sub) ~= 'string' or #f.sub == 0 then return nil, 'bad sub' end
  if type(f.cur) ~= 'string' or #f.cur ~= 32 then return nil, 'bad current hash' end
  if f.rev ~= '0' and f.rev ~= '1' then return nil, 'bad revoked flag' end
  if f.prev ~= nil then
    if #f.prev ~= 32 or type(f.seal) ~= 'string' or type(f.rot) ~= 'string'
        or not string.match(f.rot, '^%d+$') then
      return nil, 'bad previous token'
    end
    f.rot = tonumber(f.rot)
    if (f.iresp ~= nil and f.ikey == nil) or (f.ikey ~= nil and #f.ikey ~= 32) then
      return nil, 'bad idempotency record'
    end
  end
  f.exp = math.min(f.abs, f.last + f.idle)
  return f
end
local function info(kind, f)
  local rev = 0
  if f.rev == '1' then rev = 1 end
  return {kind, f.sub, f.created, f.last, f.exp, rev}
end
";

/// Adds a family to its subject's index. `KEYS[1]`: the index (sorted set: family id scored
/// by its absolute expiry, ms, server clock); `ARGV[1]`: the family id, `ARGV[2]`: its
/// absolute lifetime (ms). Drops entries past their absolute expiry, sets the index's expiry
/// to its latest entry's. Returns the server time (ms): the family's creation time.
const INDEX_ADD_LUA: &str = r"
local now = now_ms()
redis.call('ZADD', KEYS[1], s(now + tonumber(ARGV[2])), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', s(now))
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 2 then redis.call('PEXPIREAT', KEYS[1], top[2]) end
return now
";

/// A subject's family ids: `KEYS[1]` the index. Drops entries past their absolute expiry
/// (those families are certainly gone) and returns the rest.
const INDEX_READ_LUA: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', s(now_ms()))
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// Creates a family. `KEYS[1]`: the family hash; `ARGV`: sub, token hash, created (ms),
/// absolute expiry (ms), idle timeout (ms). Returns 0 if the key exists, 1 when created.
const CREATE_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local exp = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) + tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'cur', ARGV[2], 'created', ARGV[3],
  'last', ARGV[3], 'abs', ARGV[4], 'idle', ARGV[5], 'rev', '0', 'n', '0')
redis.call('PEXPIREAT', KEYS[1], s(exp))
return 1
";

/// Reads a family: `KEYS[1]` the family hash. `{'invalid'}` if absent or expired,
/// `{'family', info…}` otherwise, `{'corrupt', why}` if it does not parse.
const GET_LUA: &str = r"
local f, err = load(KEYS[1])
if err then return {'corrupt', err} end
if not f or now_ms() >= f.exp then return {'invalid'} end
return info('family', f)
";

/// Marks a live family revoked (keeping its expiry). Replies as [`GET_LUA`].
const REVOKE_LUA: &str = r"
local f, err = load(KEYS[1])
if err then return {'corrupt', err} end
if not f or now_ms() >= f.exp then return {'invalid'} end
redis.call('HSET', KEYS[1], 'rev', '1')
f.rev = '1'
return info('family', f)
";

/// One rotation. `KEYS[1]`: the family hash, `KEYS[2]`: its history (same slot);
/// `ARGV`: presented hash, successor hash, sealed successor, idempotency key hash (or
/// empty), grace (ms), history cap. See the type's docs. A rotation stores the key hash
/// only; [`RECORD_LUA`] adds the sealed response.
const ROTATE_LUA: &str = r"
local f, err = load(KEYS[1])
if err then return {'corrupt', err} end
local now = now_ms()
if not f or now >= f.exp then return {'invalid'} end
if f.rev == '1' then return info('revoked', f) end
if ct_eq(f.cur, ARGV[1]) then
  if f.prev and redis.call('ZSCORE', KEYS[2], f.prev) == false then
    f.n = f.n + 1
    redis.call('ZADD', KEYS[2], s(f.n), f.prev)
    local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
    if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1) end
  end
  redis.call('HSET', KEYS[1], 'prev', f.cur, 'rot', s(now), 'seal', ARGV[3],
    'cur', ARGV[2], 'last', s(now), 'n', s(f.n))
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'ikey', ARGV[4])
    redis.call('HDEL', KEYS[1], 'iresp')
  else
    redis.call('HDEL', KEYS[1], 'ikey', 'iresp')
  end
  f.last = now
  f.exp = math.min(f.abs, now + f.idle)
  redis.call('PEXPIREAT', KEYS[1], s(f.exp))
  redis.call('PEXPIREAT', KEYS[2], s(f.exp))
  return info('rotated', f)
end
local reused
if f.prev ~= nil and ct_eq(f.prev, ARGV[1]) then
  if now < f.rot + tonumber(ARGV[5]) then
    local r = info('grace', f)
    r[7] = f.seal
    r[8] = ''
    r[9] = ''
    if f.iresp ~= nil then
      r[8] = f.ikey
      r[9] = f.iresp
    end
    return r
  end
  reused = 'previous'
elseif redis.call('ZSCORE', KEYS[2], ARGV[1]) ~= false then
  reused = 'history'
end
if not reused then return {'invalid'} end
redis.call('HSET', KEYS[1], 'rev', '1')
f.rev = '1'
local r = info('reused', f)
r[7] = reused
return r
";

/// Records an idempotent response. `KEYS[1]`: the family hash; `ARGV`: presented hash,
/// idempotency key hash, sealed response. Writes `iresp` (keeping the key's expiry) only if
/// the family is live and not revoked, `prev` is the presented hash, `ikey` is the key hash
/// and no response is recorded yet; returns 1 if it wrote, 0 otherwise.
const RECORD_LUA: &str = r"
local f, err = load(KEYS[1])
if err then return {'corrupt', err} end
if not f or now_ms() >= f.exp or f.rev == '1' then return 0 end
if f.prev == nil or not ct_eq(f.prev, ARGV[1]) then return 0 end
if f.ikey == nil or not ct_eq(f.ikey, ARGV[2]) or f.iresp ~= nil then return 0 end
redis.call('HSET', KEYS[1], 'iresp', ARGV[3])
return 1
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE_LUA}{body}"))
}

static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| script(INDEX_ADD_LUA));
static INDEX_READ: LazyLock<Script> = LazyLock::new(|| script(INDEX_READ_LUA));
static CREATE: LazyLock<Script> = LazyLock::new(|| script(CREATE_LUA));
static GET: LazyLock<Script> = LazyLock::new(|| script(GET_LUA));
static REVOKE: LazyLock<Script> = LazyLock::new(|| script(REVOKE_LUA));
static ROTATE: LazyLock<Script> = LazyLock::new(|| script(ROTATE_LUA));
static RECORD: LazyLock<Script> = LazyLock::new(|| script(RECORD_LUA));

/// A [`RefreshStore`] on Redis (or Valkey) ≥ 7.0, shared by every application instance
/// that uses the same server and key prefix.
///
/// ```no_run
/// use std::sync::Arc;
/// use tokenward_redis::{RedisConfig, RedisRefreshStore, RedisRevocationStore};
/// use tokenward_refresh::{RefreshConfig, RefreshEngine};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisConfig::new("redis://127.0.0.1:6379");
/// let engine = RefreshEngine::new(
///     Arc::new(RedisRefreshStore::connect(&config)?),
///     Arc::new(RedisRevocationStore::connect(&config)?),
///     RefreshConfig::new(),
/// );
/// # let _ = engine;
/// # Ok(())
/// # }
/// ```
///
/// # Key layout
///
/// | state            | key                           | value | TTL |
/// |------------------|-------------------------------|-------|-----|
/// | family           | `{prefix}rf:{<family id>}:f`  | hash: `sub`, `created`, `last`, `abs` (absolute expiry), `idle` (ms), `cur` (current token hash), `prev`, `rot` (its rotation time), `seal` (successor sealed under `prev`), `ikey` (idempotency key hash, written by the rotation) / `iresp` (sealed response, added by `record_response`), `rev` (`0`/`1`), `n` (history counter) | `PEXPIREAT min(abs, last + idle)` |
/// | history          | `{prefix}rf:{<family id>}:h`  | sorted set of older token hashes, scored by rotation number; at most [`MIN_REUSE_HISTORY`] (the oldest are dropped) | same as the family |
/// | subject index    | `{prefix}rf:u:{<hex of sub>}` | sorted set of family ids, scored by their absolute expiry | the latest absolute expiry |
///
/// Times are milliseconds since the epoch by the **Redis server's clock** (`TIME`): the
/// `now` the trait passes is ignored (the contract allows it), so the application
/// instances' clocks never matter. `create` keeps the engine's absolute *lifetime*
/// (`absolute_expiry − created`) and idle timeout and anchors them at the server's time.
///
/// Family ids are URL-safe base64 (checked again here), so the family id in braces is the
/// Redis Cluster hash tag: a family's two keys are in one slot and every family script is
/// single-slot. The subject is hex-encoded, so it can never pick a slot or break the key.
///
/// # Scripts
///
/// - `rotate` is **one `EVALSHA`** (one round trip, atomic): it reads the family, takes the
///   server's `TIME`, and classifies exactly as the contract (and `MemoryRefreshStore`) says —
///   absent/expired → `Invalid`; revoked → `Revoked`; current hash (compared in constant
///   time, byte XOR) → install the successor, old current becomes previous with the sealed
///   successor and the idempotency key hash (any recorded response is dropped), old previous
///   joins the history, TTLs move to
///   `min(abs, now + idle)` → `Rotated`; previous within the grace window → `Grace` with the
///   stored blobs, nothing written; previous after the window or in the history → set
///   `rev` → `Reused` (saying which of the two); anything else → `Invalid`, nothing written.
///   It replies with the family (`sub` included), so the engine makes no other call for a
///   rotation without an idempotency key.
/// - `record_response` (rotations with an idempotency key only) is one more small script on
///   the family's slot: it sets `iresp` only if `prev` is still the presented hash, `ikey`
///   matches and no response is there yet; the family's TTL is unchanged.
/// - `revoke` and `get` are one script each on the family's slot.
/// - `create` is two scripts: first the subject index (`ZADD`, on the subject's slot), then
///   the family (on its own slot). The index comes first so a live family is never missing
///   from it (`revoke_subject` must find it); an entry left by a failed create is skipped on
///   read (no family, or one of another subject).
/// - `families_of` reads the index (dropping entries past their absolute expiry — those
///   families are certainly gone) and then each family in one pipeline. Revoked and
///   idle-expired families are filtered out on read; their entries go when their absolute
///   expiry passes. These multi-key operations span slots and are **not atomic** across
///   them: a family created concurrently may be missed (as the engine documents for
///   `revoke_subject`). Run against a standalone Redis (or one primary); the pipeline is not
///   cluster-routed.
///
/// # Failures
///
/// Every call returns within the configured operation timeout: outages are
/// [`StoreError::Unavailable`] or [`StoreError::Timeout`] (the engine answers "try again",
/// never reuse detection, never a revocation), a family that does not parse is
/// [`StoreError::Corrupt`] — never `Rotated`.
#[derive(Debug, Clone)]
pub struct RedisRefreshStore {
    backend: RedisBackend,
}

impl RedisRefreshStore {
    /// A store on its own [`RedisBackend`] (its own connections). Never talks to Redis, so it succeeds while Redis
    /// is down (calls then fail until it is back); see [`RedisBackend::new`] for the errors.
    pub fn connect(config: &RedisConfig) -> Result<Self, Error> {
        Ok(Self::new(RedisBackend::new(config)?))
    }

    /// A store sharing `backend`'s connections and key prefix with other stores.
    pub fn new(backend: RedisBackend) -> Self {
        RedisRefreshStore { backend }
    }

    /// The backend this store uses (for [`RedisBackend::ping`] in readiness probes).
    pub fn backend(&self) -> &RedisBackend {
        &self.backend
    }

    /// The Redis key of `id`'s family record, for operators.
    pub fn family_key(&self, id: &FamilyId) -> String {
        self.family_key_kind(id, 'f')
    }

    /// The Redis key of `id`'s history of rotated token hashes, for operators.
    pub fn history_key(&self, id: &FamilyId) -> String {
        self.family_key_kind(id, 'h')
    }

    /// The Redis key of `sub`'s family index, for operators.
    pub fn subject_key(&self, sub: &str) -> String {
        let prefix = self.backend.key_prefix();
        let mut key = String::with_capacity(prefix.len() + 8 + 2 * sub.len());
        key.push_str(prefix);
        key.push_str("rf:u:{");
        for byte in sub.bytes() {
            let _ = write!(key, "{byte:02x}");
        }
        key.push('}');
        key
    }

    fn family_key_kind(&self, id: &FamilyId, kind: char) -> String {
        let prefix = self.backend.key_prefix();
        format!("{prefix}rf:{{{}}}:{kind}", id.as_str())
    }

    /// `id`'s keys, after checking it cannot escape its hash tag.
    fn keys(&self, id: &FamilyId) -> Result<(String, String), StoreError> {
        let s = id.as_str();
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(StoreError::invalid_input(
                "family id is not URL-safe base64",
            ));
        }
        Ok((self.family_key(id), self.history_key(id)))
    }

    async fn family_script(
        &self,
        script: &'static Script,
        id: &FamilyId,
    ) -> Result<Option<FamilyInfo>, StoreError> {
        let (key, _) = self.keys(id)?;
        let reply: Value = self
            .backend
            .run(async move |conn| script.key(&key).invoke_async(conn).await)
            .await?;
        parse_family_reply(id, reply)
    }
}

fn span_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_SPAN_MS)
}

/// A family-script reply: `{'invalid'}` → `None`, `{'family', info…}` → the family.
fn parse_family_reply(id: &FamilyId, reply: Value) -> Result<Option<FamilyInfo>, StoreError> {
    let items = Reply::new(reply)?;
    match items.kind()? {
        "invalid" => Ok(None),
        "family" => items.info(id).map(Some),
        other => Err(StoreError::corrupt(format!(
            "unexpected family script reply {other:?}"
        ))),
    }
}

/// A script's array reply, decoded field by field; anything off is `Corrupt`.
struct Reply(Vec<Value>);

impl Reply {
    fn new(value: Value) -> Result<Self, StoreError> {
        match value {
            Value::Array(items) => Ok(Reply(items)),
            _ => Err(StoreError::corrupt(
                "a refresh script did not return an array",
            )),
        }
    }

    fn bytes(&self, i: usize) -> Result<&[u8], StoreError> {
        match self.0.get(i) {
            Some(Value::BulkString(b)) => Ok(b),
            Some(Value::SimpleString(s)) => Ok(s.as_bytes()),
            _ => Err(StoreError::corrupt(format!(
                "refresh script reply: field {i} is not a string"
            ))),
        }
    }

    fn int(&self, i: usize) -> Result<u64, StoreError> {
        match self.0.get(i) {
            Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| {
                StoreError::corrupt(format!("refresh script reply: field {i} is negative"))
            }),
            _ => Err(StoreError::corrupt(format!(
                "refresh script reply: field {i} is not an integer"
            ))),
        }
    }

    fn kind(&self) -> Result<&str, StoreError> {
        let kind = std::str::from_utf8(self.bytes(0)?)
            .map_err(|_| StoreError::corrupt("refresh script reply: kind is not UTF-8"))?;
        if kind == "corrupt" {
            let why = self
                .bytes(1)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Err(StoreError::corrupt(format!("refresh family record: {why}")));
        }
        Ok(kind)
    }

    /// Fields 1..=5: sub, created, last used, expiry, revoked.
    fn info(&self, id: &FamilyId) -> Result<FamilyInfo, StoreError> {
        let sub = String::from_utf8(self.bytes(1)?.to_vec())
            .map_err(|_| StoreError::corrupt("refresh family record: sub is not UTF-8"))?;
        let revoked = match self.int(5)? {
            0 => false,
            1 => true,
            _ => {
                return Err(StoreError::corrupt(
                    "refresh family record: bad revoked flag",
                ));
            }
        };
        Ok(FamilyInfo::new(
            id.clone(),
            sub,
            UnixTime::from_millis(self.int(2)?),
            UnixTime::from_millis(self.int(3)?),
            UnixTime::from_millis(self.int(4)?),
            revoked,
        ))
    }

    fn hash(&self, i: usize) -> Result<TokenHash, StoreError> {
        <[u8; 32]>::try_from(self.bytes(i)?)
            .map(TokenHash)
            .map_err(|_| StoreError::corrupt("refresh family record: a hash is not 32 bytes"))
    }
}

fn parse_rotation(id: &FamilyId, reply: Value) -> Result<RotationResult, StoreError> {
    let reply = Reply::new(reply)?;
    Ok(match reply.kind()? {
        "invalid" => RotationResult::Invalid,
        "rotated" => RotationResult::Rotated(reply.info(id)?),
        "revoked" => RotationResult::Revoked(reply.info(id)?),
        "reused" => RotationResult::Reused {
            family: reply.info(id)?,
            kind: match reply.bytes(6)? {
                b"previous" => ReuseKind::PredecessorAfterWindow,
                b"history" => ReuseKind::OlderToken,
                _ => return Err(StoreError::corrupt("refresh script reply: bad reuse kind")),
            },
        },
        "grace" => {
            let sealed_successor = Sealed(reply.bytes(6)?.to_vec());
            let idempotency = if reply.bytes(7)?.is_empty() {
                None
            } else {
                Some(IdempotencyRecord::new(
                    reply.hash(7)?,
                    Sealed(reply.bytes(8)?.to_vec()),
                ))
            };
            RotationResult::Grace {
                family: reply.info(id)?,
                sealed_successor,
                idempotency,
            }
        }
        other => {
            return Err(StoreError::corrupt(format!(
                "unexpected rotation reply {other:?}"
            )));
        }
    })
}

#[async_trait]
impl RefreshStore for RedisRefreshStore {
    async fn create(&self, new: NewFamily) -> Result<(), StoreError> {
        if new.sub.is_empty() || new.sub.len() > MAX_SUB_LEN {
            return Err(StoreError::invalid_input(format!(
                "sub must be 1 to {MAX_SUB_LEN} bytes"
            )));
        }
        let (family_key, _) = self.keys(&new.id)?;
        let index_key = self.subject_key(&new.sub);
        let lifetime = span_ms(new.absolute_expiry.saturating_duration_since(new.created));
        let idle = span_ms(new.idle_timeout);
        let id = new.id.as_str().to_owned();
        let created: u64 = self
            .backend
            .run(async |conn| {
                INDEX_ADD
                    .key(&index_key)
                    .arg(&id)
                    .arg(lifetime)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        let absolute = created.saturating_add(lifetime);
        let token_hash = new.token_hash.as_bytes().to_vec();
        let fresh: i64 = self
            .backend
            .run(async |conn| {
                CREATE
                    .key(&family_key)
                    .arg(new.sub.as_bytes())
                    .arg(&token_hash)
                    .arg(created)
                    .arg(absolute)
                    .arg(idle)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        if fresh == 1 {
            Ok(())
        } else {
            Err(StoreError::invalid_input("family id already exists"))
        }
    }

    async fn get(&self, id: &FamilyId, _now: UnixTime) -> Result<Option<FamilyInfo>, StoreError> {
        self.family_script(&GET, id).await
    }

    async fn rotate(&self, req: RotationRequest) -> Result<RotationResult, StoreError> {
        let (family_key, history_key) = self.keys(&req.family_id)?;
        let ikey = match &req.idempotency_key {
            Some(key_hash) => key_hash.as_bytes().to_vec(),
            None => Vec::new(),
        };
        let grace = span_ms(req.grace);
        let reply: Value = self
            .backend
            .run(async |conn| {
                ROTATE
                    .key(&family_key)
                    .key(&history_key)
                    .arg(req.presented.as_bytes().as_slice())
                    .arg(req.successor.as_bytes().as_slice())
                    .arg(req.sealed_successor.as_bytes())
                    .arg(&ikey)
                    .arg(grace)
                    .arg(HISTORY_CAP)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        parse_rotation(&req.family_id, reply)
    }

    async fn record_response(
        &self,
        id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
        _now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (family_key, _) = self.keys(id)?;
        let reply: Value = self
            .backend
            .run(async |conn| {
                RECORD
                    .key(&family_key)
                    .arg(presented.as_bytes().as_slice())
                    .arg(record.key_hash.as_bytes().as_slice())
                    .arg(record.sealed_response.as_bytes())
                    .invoke_async(conn)
                    .await
            })
            .await?;
        match reply {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            other => {
                Reply::new(other)?.kind()?;
                Err(StoreError::corrupt("unexpected record_response reply"))
            }
        }
    }

    async fn revoke(
        &self,
        id: &FamilyId,
        _now: UnixTime,
    ) -> Result<Option<FamilyInfo>, StoreError> {
        self.family_script(&REVOKE, id).await
    }

    async fn families_of(&self, sub: &str, _now: UnixTime) -> Result<Vec<FamilyInfo>, StoreError> {
        if sub.is_empty() || sub.len() > MAX_SUB_LEN {
            return Ok(Vec::new());
        }
        let index_key = self.subject_key(sub);
        let raw_ids: Vec<String> = self
            .backend
            .run(async |conn| INDEX_READ.key(&index_key).invoke_async(conn).await)
            .await?;
        let mut ids = Vec::with_capacity(raw_ids.len());
        for raw in raw_ids {
            let id = FamilyId::parse(&raw)
                .ok_or_else(|| StoreError::corrupt("subject index holds a malformed family id"))?;
            ids.push(id);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            // EVAL, not EVALSHA: a pipeline cannot recover from NOSCRIPT one command at a time.
            pipe.cmd("EVAL")
                .arg(format!("{PRELUDE_LUA}{GET_LUA}"))
                .arg(1)
                .arg(self.family_key(id));
        }
        let replies: Vec<Value> = self
            .backend
            .run(async |conn| pipe.query_async(conn).await)
            .await?;
        if replies.len() != ids.len() {
            return Err(StoreError::corrupt("pipeline reply of the wrong length"));
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, reply) in ids.iter().zip(replies) {
            if let Some(info) = parse_family_reply(id, reply)?
                && info.sub == sub
                && !info.revoked
            {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout() {
        let backend = RedisBackend::new(&RedisConfig::default().key_prefix("app:")).unwrap();
        let store = RedisRefreshStore::new(backend);
        let id = FamilyId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(store.family_key(&id), "app:rf:{AAAAAAAAAAAAAAAAAAAAAA}:f");
        assert_eq!(store.history_key(&id), "app:rf:{AAAAAAAAAAAAAAAAAAAAAA}:h");
        assert_eq!(store.subject_key("a{b}"), "app:rf:u:{617b627d}");
    }

    #[test]
    fn malformed_replies_are_corrupt() {
        let id = FamilyId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        for reply in [
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![Value::BulkString(b"rotated".to_vec())]),
            Value::Array(vec![Value::BulkString(b"other".to_vec())]),
            Value::Array(vec![
                Value::BulkString(b"corrupt".to_vec()),
                Value::BulkString(b"bad cur".to_vec()),
            ]),
            Value::Array(vec![
                Value::BulkString(b"reused".to_vec()),
                Value::BulkString(b"alice".to_vec()),
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Int(1),
                Value::BulkString(b"sideways".to_vec()),
            ]),
        ] {
            let r = parse_rotation(&id, reply);
            assert!(
                matches!(&r, Err(e) if e.kind() == tokenward_core::StoreErrorKind::Corrupt),
                "{r:?}"
            );
        }
    }
}
