//! The Lua scripts of [`RedisRefreshStore`](super::RedisRefreshStore): every one reads the
//! family (or index) and the server's `TIME` and applies its step atomically on one slot:
//! every key a script touches is one of its `KEYS`, and they share a hash tag (the family
//! id, or the hex of the subject) — see `docs/architecture.md`, "Redis Cluster: slot layout".

use std::sync::LazyLock;

use redis::Script;

/// Shared by every family script: the server clock, a constant-time comparison, the parsing
/// of the family hash (`nil` if absent; `nil, reason` if it does not parse), the family as a
/// reply (`{kind, sub, created, last, expiry, revoked, access exp}`), raising the recorded
/// access-token expiry, and revoking (`bury`: the family becomes a tombstone).
///
/// A tombstone keeps `sub`, `created`, `last`, `abs`, `idle`, `aexp`, `n`, `ret`, `rev = 1`
/// and `tomb` (its end, ms); its token fields and history are deleted, and its key expires
/// at `tomb` = min(its expiry, revocation + `ret`). A
/// family written before `ret` existed is kept 180 s once revoked (`LEGACY_RETENTION_MS`: the
/// longest capped grace window, 120 s, plus the engine's 60 s margin).
pub(super) const PRELUDE_LUA: &str = r"
local LEGACY_RETENTION_MS = 180000
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
  for _, name in ipairs({'ret', 'tomb'}) do
    local v = f[name]
    if v ~= nil then
      if not string.match(v, '^%d+$') then return nil, 'bad ' .. name end
      f[name] = tonumber(v)
    end
  end
  if type(f.sub) ~= 'string' or #f.sub == 0 then return nil, 'bad sub' end
  if f.rev ~= '0' and f.rev ~= '1' then return nil, 'bad revoked flag' end
  if f.rev == '0' and (type(f.cur) ~= 'string' or #f.cur ~= 32) then
    return nil, 'bad current hash'
  end
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
  if f.tomb ~= nil then f.exp = math.min(f.exp, f.tomb) end
  if f.aexp == nil then
    f.aexp = f.exp
  elseif string.match(f.aexp, '^%d+$') then
    f.aexp = tonumber(f.aexp)
  else
    return nil, 'bad access expiry'
  end
  return f
end
local function info(kind, f)
  local rev = 0
  if f.rev == '1' then rev = 1 end
  return {kind, f.sub, f.created, f.last, f.exp, rev, f.aexp}
end
local function raise_aexp(key, f, aexp)
  aexp = tonumber(aexp)
  if aexp > f.aexp then
    redis.call('HSET', key, 'aexp', s(aexp))
    f.aexp = aexp
  end
end
local function bury(fkey, hkey, f, now)
  if f.rev == '1' then return end
  local till = math.min(f.exp, now + (f.ret or LEGACY_RETENTION_MS))
  redis.call('HDEL', fkey, 'cur', 'prev', 'rot', 'seal', 'ikey', 'iresp')
  redis.call('HSET', fkey, 'rev', '1', 'tomb', s(till))
  redis.call('PEXPIREAT', fkey, s(till))
  redis.call('DEL', hkey)
  f.rev = '1'
  f.tomb = till
  f.exp = till
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

/// Creates a family. `KEYS[1]`: the family hash; `ARGV`: sub, token hash, created (ms, the
/// server time [`INDEX_ADD_LUA`] returned), absolute expiry (ms), idle timeout (ms), access
/// expiry (ms), revoked retention (ms). Returns 0 if the key exists, 1 when created.
const CREATE_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local exp = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) + tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'cur', ARGV[2], 'created', ARGV[3],
  'last', ARGV[3], 'abs', ARGV[4], 'idle', ARGV[5], 'aexp', ARGV[6], 'rev', '0', 'n', '0',
  'ret', ARGV[7])
redis.call('PEXPIREAT', KEYS[1], s(exp))
return 1
";

/// Reads a family: `KEYS[1]` the family hash. `{'invalid'}` if absent or expired,
/// `{'family', info…}` otherwise, `{'corrupt', why}` if it does not parse.
pub(super) const GET_LUA: &str = r"
local f, err = load(KEYS[1])
if err then return {'corrupt', err} end
if not f or now_ms() >= f.exp then return {'invalid'} end
return info('family', f)
";

/// Raises a live family's access expiry to `ARGV[1]` (ms) if that is later, keeping its
/// expiry; revoked families too. Replies as [`GET_LUA`].
const RAISE_LUA: &str = r"
local f, err = load(KEYS[1])
if err then return {'corrupt', err} end
if not f or now_ms() >= f.exp then return {'invalid'} end
raise_aexp(KEYS[1], f, ARGV[1])
return info('family', f)
";

/// Revokes a live family: a tombstone (see [`PRELUDE_LUA`]; a tombstone stays as it is).
/// `KEYS[1]`: the family hash, `KEYS[2]`: its history (same slot). Replies as [`GET_LUA`];
/// the caller then takes the family out of its subject's index (another slot).
const REVOKE_LUA: &str = r"
local f, err = load(KEYS[1])
if err then return {'corrupt', err} end
local now = now_ms()
if not f or now >= f.exp then return {'invalid'} end
bury(KEYS[1], KEYS[2], f, now)
return info('family', f)
";

/// One rotation. `KEYS[1]`: the family hash, `KEYS[2]`: its history (same slot);
/// `ARGV`: presented hash, successor hash, sealed successor, idempotency key hash (or
/// empty), grace (ms), history cap, access expiry (ms). See the type's docs. It touches no
/// other key: on reuse the family's entry stays in its subject's index (another slot) until
/// `families_of` or its absolute expiry removes it. A rotation
/// stores the key hash only; [`RECORD_LUA`] adds the sealed response.
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
  raise_aexp(KEYS[1], f, ARGV[7])
  f.last = now
  f.exp = math.min(f.abs, now + f.idle)
  redis.call('PEXPIREAT', KEYS[1], s(f.exp))
  redis.call('PEXPIREAT', KEYS[2], s(f.exp))
  return info('rotated', f)
end
local reused
if f.prev ~= nil and ct_eq(f.prev, ARGV[1]) then
  if now < f.rot + tonumber(ARGV[5]) then
    raise_aexp(KEYS[1], f, ARGV[7])
    local r = info('grace', f)
    r[8] = f.seal
    r[9] = ''
    r[10] = ''
    if f.iresp ~= nil then
      r[9] = f.ikey
      r[10] = f.iresp
    end
    return r
  end
  reused = 'previous'
elseif redis.call('ZSCORE', KEYS[2], ARGV[1]) ~= false then
  reused = 'history'
end
if not reused then return {'invalid'} end
bury(KEYS[1], KEYS[2], f, now)
local r = info('reused', f)
r[8] = reused
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

pub(super) static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| script(INDEX_ADD_LUA));
pub(super) static INDEX_READ: LazyLock<Script> = LazyLock::new(|| script(INDEX_READ_LUA));
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| script(CREATE_LUA));
pub(super) static GET: LazyLock<Script> = LazyLock::new(|| script(GET_LUA));
pub(super) static REVOKE: LazyLock<Script> = LazyLock::new(|| script(REVOKE_LUA));
pub(super) static RAISE: LazyLock<Script> = LazyLock::new(|| script(RAISE_LUA));
pub(super) static ROTATE: LazyLock<Script> = LazyLock::new(|| script(ROTATE_LUA));
pub(super) static RECORD: LazyLock<Script> = LazyLock::new(|| script(RECORD_LUA));
