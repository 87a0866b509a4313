//! [`RedisRefreshStore`]: refresh-token families on Redis, each rotation one atomic Lua
//! script on one hash slot, timed by the Redis server's clock.

use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, Value};
use tokenward_core::{StoreError, StoreId, UnixTime};
use tokenward_refresh::{
    FamilyId, FamilyInfo, IdempotencyRecord, MIN_REUSE_HISTORY, NewFamily, RefreshStore,
    RotationRequest, RotationResult, TokenHash,
};

use crate::backend::RedisBackend;
use crate::byo::Conn;
use crate::config::RedisConfig;
use crate::error::RedisConfigError;
use crate::slot::by_slot;

mod reply;
mod scripts;

use reply::{Reply, parse_family_reply, parse_rotation};
use scripts::{
    CREATE, GET, GET_LUA, INDEX_ADD, INDEX_READ, PRELUDE_LUA, RAISE, RECORD, REVOKE, ROTATE,
};

/// The longest span (lifetime, idle timeout, grace window) the scripts work with: 2^50 ms
/// (35 000 years; the engine refuses lifetimes over 10 years). Longer ones are clamped, which
/// keeps every time the scripts compute (server `TIME` in ms plus such a span) an exact
/// integer in Lua's doubles (< 2^53).
const MAX_SPAN_MS: u64 = 1 << 50;

/// The latest access-token expiry the family records: 2^52 ms (the year 144 000). A later
/// `exp` (attacker-chosen or absurd) is recorded as this, still an exact integer in Lua.
const MAX_INSTANT_MS: u64 = 1 << 52;

/// How many rotated hashes a family's history keeps (the oldest are dropped beyond it).
const HISTORY_CAP: usize = MIN_REUSE_HISTORY;

/// A [`RefreshStore`] on Redis (or Valkey) ≥ 7.0, shared by every application instance
/// that uses the same server and key prefix.
///
/// ```no_run
/// use std::sync::Arc;
/// use tokenward_core::IssuerScope;
/// use tokenward_redis::{RedisConfig, RedisRefreshStore, RedisRevocationStore};
/// use tokenward_refresh::{RefreshConfig, RefreshEngine};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisConfig::new("redis://127.0.0.1:6379");
/// let engine = RefreshEngine::with_config(
///     Arc::new(RedisRefreshStore::connect(&config)?),
///     Arc::new(RedisRevocationStore::connect(&config)?),
///     IssuerScope::new("https://api.example.com"),
///     RefreshConfig::new(),
/// )?;
/// # let _ = engine;
/// # Ok(())
/// # }
/// ```
///
/// # Key layout
///
/// | state            | key                           | value | TTL |
/// |------------------|-------------------------------|-------|-----|
/// | family           | `{prefix}rf:{<family id>}:f`  | hash: `sub`, `created`, `last`, `abs` (absolute expiry), `idle` (ms), `aexp` (latest access-token `exp`, ms rounded up; a family written before this field existed reads as its own expiry), `cur` (current token hash), `prev`, `rot` (its rotation time), `seal` (successor sealed under `prev`), `ikey` (idempotency key hash, written by the rotation) / `iresp` (sealed response, added by `record_response`), `rev` (`0`/`1`), `n` (history counter), `ret` (revoked retention, ms), `tomb` (a revoked family's end, ms) | `PEXPIREAT min(abs, last + idle)`; revoked: `tomb` |
/// | history          | `{prefix}rf:{<family id>}:h`  | sorted set of older token hashes, scored by rotation number; at most [`MIN_REUSE_HISTORY`] (the oldest are dropped); deleted when the family is revoked | same as the family |
/// | subject index    | `{prefix}rf:u:{<hex of sub>}` | sorted set of the subject's family ids, scored by their absolute expiry; a family leaves it when `revoke` revokes it, at the next `families_of` after a reuse revoked it, or at its absolute expiry | the latest absolute expiry |
///
/// A revoked family (by `revoke`, or on reuse in `rotate`) is a **tombstone**: the script
/// that revokes it deletes `cur`, `prev`, `rot`, `seal`, `ikey`, `iresp` and the history,
/// sets `rev = 1` and `tomb` = min(its expiry,
/// the server's now + `ret`), and moves the key's expiry there. What stays (a few dozen
/// bytes) answers `Revoked` until then; a family written before `ret` existed keeps 180 s.
///
/// Times are milliseconds since the epoch by the **Redis server's clock** (`TIME`), as the
/// `RefreshStore` contract says (the store keeps its own time): `create` anchors the family's
/// absolute lifetime and idle timeout at the server's time, every script reads `TIME` for
/// expiry and the grace window, and no application instance's clock decides anything. The
/// one instant the store is given, an access token's `exp`, is only recorded (`aexp`, never
/// compared with the clock).
///
/// A [`FamilyId`] is always URL-safe base64 (the type cannot hold anything else), so the
/// family id in braces is the Redis Cluster hash tag: a family's two keys are in one slot,
/// and every family script declares and touches exactly those keys. The subject index is
/// tagged by the hex of the subject (which can never pick a slot or break the key): it is
/// in the subject's slot, and only `create`, `revoke` and `families_of` touch it, each with
/// a call of its own. The slot layout of every store is in `docs/architecture.md`
/// ("Redis Cluster: slot layout").
///
/// # Scripts
///
/// - `rotate` is **one `EVALSHA`** (one round trip, atomic): it reads the family, takes the
///   server's `TIME`, and classifies exactly as the contract (and `MemoryRefreshStore`) says —
///   absent/expired → `Invalid`; revoked → `Revoked`; current hash (compared in constant
///   time, byte XOR) → install the successor, old current becomes previous with the sealed
///   successor and the idempotency key hash (any recorded response is dropped), old previous
///   joins the history, `aexp` rises to the request's if later, TTLs move to
///   `min(abs, now + idle)` → `Rotated`; previous within the grace window → `Grace` with the
///   stored blobs, only `aexp` raised; previous after the window or in the history → set
///   revoke it as `revoke` does (a tombstone) → `Reused` (saying which of the two); anything
///   else → `Invalid`, nothing written.
///   It replies with the family (`sub` included), so the engine makes no other call for a
///   rotation without an idempotency key. A family it revokes on reuse stays listed in its
///   subject's index (another slot) until the next `families_of` takes it out (or its
///   absolute expiry): reuse detection stays one round trip.
/// - `record_response` (rotations with an idempotency key only) is one more small script on
///   the family's slot: it sets `iresp` only if `prev` is still the presented hash, `ikey`
///   matches and no response is there yet; the family's TTL is unchanged.
/// - `record_access_exp`, `revoke` and `get` are one script each on the family's slot.
///   `revoke` then takes the family out of its subject's index (`ZREM`, a second call, on
///   the subject's slot; the script told it the `sub`): a logout leaves only the tombstone.
/// - `create` is two scripts: first the subject index (`ZADD`, on the subject's slot), then
///   the family (on its own slot). The index comes first so a live family is never missing
///   from it (`revoke_subject` must find it); an entry left by a failed create is skipped on
///   read (no family, or one of another subject).
/// - `families_of` reads the index (dropping entries past their absolute expiry — those
///   families are certainly gone), then each family — one pipeline, or on a cluster one
///   pipeline per slot, sent concurrently — and takes the families revoked on reuse out of
///   the index (one more call, only when there are some). Idle-expired families are
///   filtered out on read, and their entries go when their absolute expiry passes. These
///   multi-key operations span slots and are **not atomic** across them: a family created
///   concurrently may be missed (as the engine documents for `revoke_subject`).
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
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisConfigError> {
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

    /// Runs a family script on `id`'s record with `args`; `None` if there is no live family.
    async fn family_script(
        &self,
        script: &'static Script,
        id: &FamilyId,
        args: &[u64],
    ) -> Result<Option<FamilyInfo>, StoreError> {
        let key = self.family_key(id);
        let reply: Value = self
            .backend
            .run(async move |conn| {
                let mut invocation = script.key(&key);
                for arg in args {
                    invocation.arg(*arg);
                }
                invocation.invoke_async(conn).await
            })
            .await?;
        parse_family_reply(id, reply)
    }
}

impl RedisRefreshStore {
    /// Takes `ids` out of `sub`'s index (`ZREM`, one call on the subject's slot).
    async fn unindex(&self, sub: &str, ids: &[FamilyId]) -> Result<(), StoreError> {
        let index_key = self.subject_key(sub);
        self.backend
            .run(async |conn| {
                let mut zrem = redis::cmd("ZREM");
                zrem.arg(&index_key);
                for id in ids {
                    zrem.arg(id.as_str());
                }
                zrem.query_async::<i64>(conn).await
            })
            .await?;
        Ok(())
    }
}

fn span_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_SPAN_MS)
}

/// An access-token `exp` as the family records it: milliseconds rounded up (never revoking
/// less than asked), at most [`MAX_INSTANT_MS`].
fn instant_ms(t: UnixTime) -> u64 {
    t.as_millis_ceil().min(MAX_INSTANT_MS)
}

#[async_trait]
impl RefreshStore for RedisRefreshStore {
    async fn create(&self, new: NewFamily) -> Result<(), StoreError> {
        let family_key = self.family_key(&new.id);
        let index_key = self.subject_key(new.sub.as_str());
        let lifetime = span_ms(new.absolute_lifetime);
        let idle = span_ms(new.idle_timeout);
        let id = new.id.as_str();
        // The server's time, so the index entry and the family expire together.
        let created: u64 = self
            .backend
            .run(async |conn| {
                INDEX_ADD
                    .key(&index_key)
                    .arg(id)
                    .arg(lifetime)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        let absolute = created.saturating_add(lifetime);
        let fresh: i64 = self
            .backend
            .run(async |conn| {
                CREATE
                    .key(&family_key)
                    .arg(new.sub.as_str().as_bytes())
                    .arg(new.token_hash.as_bytes().as_slice())
                    .arg(created)
                    .arg(absolute)
                    .arg(idle)
                    .arg(instant_ms(new.access_exp))
                    .arg(span_ms(new.revoked_retention))
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

    async fn get(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        self.family_script(&GET, id, &[]).await
    }

    async fn rotate(&self, req: RotationRequest) -> Result<RotationResult, StoreError> {
        let family_key = self.family_key(&req.family_id);
        let history_key = self.history_key(&req.family_id);
        let ikey = match &req.idempotency_key {
            Some(key_hash) => key_hash.as_bytes().to_vec(),
            None => Vec::new(),
        };
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
                    .arg(span_ms(req.grace))
                    .arg(HISTORY_CAP)
                    .arg(instant_ms(req.access_exp))
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
    ) -> Result<bool, StoreError> {
        let family_key = self.family_key(id);
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

    async fn record_access_exp(
        &self,
        id: &FamilyId,
        exp: UnixTime,
    ) -> Result<Option<FamilyInfo>, StoreError> {
        self.family_script(&RAISE, id, &[instant_ms(exp)]).await
    }

    async fn revoke(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        let family_key = self.family_key(id);
        let history_key = self.history_key(id);
        let reply: Value = self
            .backend
            .run(async |conn| {
                REVOKE
                    .key(&family_key)
                    .key(&history_key)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        let info = parse_family_reply(id, reply)?;
        if let Some(info) = &info {
            // The index is in the subject's slot, not the family's: a second call.
            self.unindex(info.sub.as_str(), std::slice::from_ref(id))
                .await?;
        }
        Ok(info)
    }

    async fn families_of(&self, sub: &StoreId<'_>) -> Result<Vec<FamilyInfo>, StoreError> {
        let index_key = self.subject_key(sub.as_str());
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
        // One pipeline of family reads; on a cluster, one per hash slot, all at once.
        let groups = by_slot(
            ids.iter().map(|id| (id, self.family_key(id))).collect(),
            self.backend.is_cluster(),
            |(_, key)| key.as_bytes(),
        );
        let ops: Vec<_> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                for (_, key) in group {
                    // EVAL, not EVALSHA: a pipeline cannot recover from NOSCRIPT one
                    // command at a time.
                    pipe.cmd("EVAL")
                        .arg(format!("{PRELUDE_LUA}{GET_LUA}"))
                        .arg(1)
                        .arg(key);
                }
                async move |conn: &mut Conn| pipe.query_async::<Vec<Value>>(conn).await
            })
            .collect();
        let replies = self.backend.run_each(ops).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut stale = Vec::new();
        for (group, replies) in groups.iter().zip(replies) {
            if replies.len() != group.len() {
                return Err(StoreError::corrupt("pipeline reply of the wrong length"));
            }
            for ((id, _), reply) in group.iter().zip(replies) {
                match parse_family_reply(id, reply)? {
                    Some(info) if info.sub == *sub && !info.revoked => out.push(info),
                    // Revoked on reuse (in the family's slot only): its entry goes. A
                    // missing family's stays — it may be a `create` still under way — until
                    // its absolute expiry.
                    Some(info) if info.sub == *sub => stale.push((*id).clone()),
                    _ => {}
                }
            }
        }
        if !stale.is_empty() {
            self.unindex(sub.as_str(), &stale).await?;
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
}
