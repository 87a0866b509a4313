//! The in-memory [`RefreshStore`]: sharded, atomic per family, self-expiring, bounded.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::{StoreError, UnixTime};

use crate::store::{
    FamilyInfo, IdempotencyRecord, MAX_SUB_LEN, MIN_REUSE_HISTORY, NewFamily, RefreshStore,
    ReuseKind, RotationRequest, RotationResult,
};
use crate::token::{FamilyId, Sealed, TokenHash};

/// A [`RefreshStore`] in process memory.
///
/// - **Atomic.** Families are spread over 32 shards by a keyed hash of their id, each
///   behind one `Mutex`; a rotation is one critical section on its family's shard.
/// - **Self-expiring.** A family stops existing at `min(absolute expiry, last_used + idle
///   timeout)`. Each shard keeps its families ordered by expiry; every write to a shard first
///   drops its expired families (and their subject-index entries), so no cleanup job is
///   needed. [`purge_expired`](Self::purge_expired) sweeps all shards at once.
/// - **Bounded.** At most [`capacity`](Self::with_capacity) families (default one million).
///   A create that would exceed it purges expired families first, then fails with
///   [`StoreError::CapacityExceeded`]: live families are never evicted.
/// - **History.** Each family remembers its last [`MIN_REUSE_HISTORY`] rotated hashes
///   (32 bytes each, so at most 32 KiB per family) for reuse detection.
///
/// `Debug` shows the number of families only.
pub struct MemoryRefreshStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Live and not-yet-reclaimed families. Changed only under the family's shard lock.
    stored: AtomicUsize,
    capacity: usize,
    /// `sub` → its family ids. Lock order: a shard, then this; never the other way round.
    subjects: Mutex<HashMap<String, HashSet<FamilyId>>>,
}

const SHARDS: usize = 32;

struct Previous {
    hash: TokenHash,
    rotated_at: UnixTime,
    sealed_successor: Sealed,
    /// The rotating request's idempotency key hash, if it had one.
    key_hash: Option<TokenHash>,
    /// Its sealed response, once [`RefreshStore::record_response`] wrote it.
    sealed_response: Option<Sealed>,
}

impl Previous {
    fn idempotency(&self) -> Option<IdempotencyRecord> {
        match (&self.key_hash, &self.sealed_response) {
            (Some(key_hash), Some(sealed)) => {
                Some(IdempotencyRecord::new(*key_hash, sealed.clone()))
            }
            _ => None,
        }
    }
}

struct Family {
    sub: String,
    created: UnixTime,
    last_used: UnixTime,
    absolute_expiry: UnixTime,
    idle_timeout: Duration,
    current: TokenHash,
    previous: Option<Previous>,
    history_order: VecDeque<TokenHash>,
    history: HashSet<TokenHash>,
    revoked: bool,
}

impl Family {
    fn expires_at(&self) -> UnixTime {
        self.absolute_expiry
            .min(self.last_used.saturating_add(self.idle_timeout))
    }

    fn info(&self, id: &FamilyId) -> FamilyInfo {
        FamilyInfo::new(
            id.clone(),
            self.sub.clone(),
            self.created,
            self.last_used,
            self.expires_at(),
            self.revoked,
        )
    }

    fn remember(&mut self, hash: TokenHash) {
        if self.history.insert(hash) {
            self.history_order.push_back(hash);
        }
        while self.history_order.len() > MIN_REUSE_HISTORY {
            if let Some(old) = self.history_order.pop_front() {
                self.history.remove(&old);
            }
        }
    }
}

#[derive(Default)]
struct Shard {
    families: HashMap<FamilyId, Family>,
    /// Invariant: one `(expires_at, id)` per family, with its current `expires_at`.
    expiry: BTreeSet<(UnixTime, FamilyId)>,
}

impl Shard {
    /// Drops expired families; returns them (id, sub) for the subject index.
    fn pop_expired(&mut self, now: UnixTime) -> Vec<(FamilyId, String)> {
        let mut gone = Vec::new();
        while let Some((at, _)) = self.expiry.first() {
            if *at > now {
                break;
            }
            let Some((_, id)) = self.expiry.pop_first() else {
                break;
            };
            if let Some(family) = self.families.remove(&id) {
                gone.push((id, family.sub));
            }
        }
        gone
    }

    /// The live family `id`, if any.
    fn live(&mut self, id: &FamilyId, now: UnixTime) -> Option<&mut Family> {
        self.families
            .get_mut(id)
            .filter(|family| family.expires_at() > now)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a family half-rotated (every critical
    // section mutates after all checks), so the data is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryRefreshStore {
    /// The default capacity: one million families.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// A store with the default capacity.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` families.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryRefreshStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            stored: AtomicUsize::new(0),
            capacity,
            subjects: Mutex::new(HashMap::new()),
        }
    }

    /// Families held in memory (live, revoked, or expired and not yet reclaimed).
    pub fn stored(&self) -> usize {
        self.stored.load(Ordering::Acquire)
    }

    /// Drops every expired family now; returns how many. Never needed for correctness.
    pub fn purge_expired(&self, now: UnixTime) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                self.sweep(&mut shard, now)
            })
            .sum()
    }

    /// Every byte the store holds (ids, subjects, hashes, sealed blobs), one buffer per
    /// field — for tests asserting that no plaintext token is at rest.
    pub fn stored_bytes(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for (id, family) in &shard.families {
                out.push(id.as_str().as_bytes().to_vec());
                out.push(family.sub.as_bytes().to_vec());
                out.push(family.current.as_bytes().to_vec());
                if let Some(previous) = &family.previous {
                    out.push(previous.hash.as_bytes().to_vec());
                    out.push(previous.sealed_successor.as_bytes().to_vec());
                    if let Some(key_hash) = &previous.key_hash {
                        out.push(key_hash.as_bytes().to_vec());
                    }
                    if let Some(sealed) = &previous.sealed_response {
                        out.push(sealed.as_bytes().to_vec());
                    }
                }
                out.extend(family.history_order.iter().map(|h| h.as_bytes().to_vec()));
            }
        }
        for (sub, ids) in lock(&self.subjects).iter() {
            out.push(sub.as_bytes().to_vec());
            out.extend(ids.iter().map(|id| id.as_str().as_bytes().to_vec()));
        }
        out
    }

    #[expect(clippy::indexing_slicing, reason = "the index is reduced modulo len")]
    fn shard(&self, id: &FamilyId) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one(id.as_str());
        let index = usize::try_from(hash % self.shards.len() as u64).unwrap_or_default();
        &self.shards[index]
    }

    /// Drops a locked shard's expired families and their subject-index entries.
    fn sweep(&self, shard: &mut Shard, now: UnixTime) -> usize {
        let gone = shard.pop_expired(now);
        if gone.is_empty() {
            return 0;
        }
        self.stored.fetch_sub(gone.len(), Ordering::AcqRel);
        let mut subjects = lock(&self.subjects);
        for (id, sub) in &gone {
            if let Some(ids) = subjects.get_mut(sub) {
                ids.remove(id);
                if ids.is_empty() {
                    subjects.remove(sub);
                }
            }
        }
        gone.len()
    }

    fn try_reserve(&self) -> bool {
        self.stored
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }
}

impl Default for MemoryRefreshStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRefreshStore")
            .field("stored", &self.stored())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Re-indexes a family whose expiry moved from `old` to its current one.
fn reindex(shard: &mut Shard, id: &FamilyId, old: UnixTime, new: UnixTime) {
    if old != new {
        shard.expiry.remove(&(old, id.clone()));
        shard.expiry.insert((new, id.clone()));
    }
}

#[async_trait]
impl RefreshStore for MemoryRefreshStore {
    async fn create(&self, new: NewFamily) -> Result<(), StoreError> {
        if new.sub.is_empty() || new.sub.len() > MAX_SUB_LEN {
            return Err(StoreError::invalid_input(format!(
                "sub must be 1 to {MAX_SUB_LEN} bytes"
            )));
        }
        let mut shard = lock(self.shard(&new.id));
        self.sweep(&mut shard, new.created);
        if shard.families.contains_key(&new.id) {
            return Err(StoreError::invalid_input("family id already exists"));
        }
        if !self.try_reserve() {
            drop(shard);
            self.purge_expired(new.created);
            if !self.try_reserve() {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.capacity,
                });
            }
            shard = lock(self.shard(&new.id));
        }
        let family = Family {
            sub: new.sub.clone(),
            created: new.created,
            last_used: new.created,
            absolute_expiry: new.absolute_expiry,
            idle_timeout: new.idle_timeout,
            current: new.token_hash,
            previous: None,
            history_order: VecDeque::new(),
            history: HashSet::new(),
            revoked: false,
        };
        shard.expiry.insert((family.expires_at(), new.id.clone()));
        shard.families.insert(new.id.clone(), family);
        lock(&self.subjects)
            .entry(new.sub)
            .or_default()
            .insert(new.id);
        Ok(())
    }

    async fn get(&self, id: &FamilyId, now: UnixTime) -> Result<Option<FamilyInfo>, StoreError> {
        let mut shard = lock(self.shard(id));
        Ok(shard.live(id, now).map(|family| family.info(id)))
    }

    async fn rotate(&self, req: RotationRequest) -> Result<RotationResult, StoreError> {
        let id = &req.family_id;
        let now = req.now;
        let mut shard = lock(self.shard(id));
        self.sweep(&mut shard, now);
        let Some(family) = shard.live(id, now) else {
            return Ok(RotationResult::Invalid);
        };
        if family.revoked {
            return Ok(RotationResult::Revoked(family.info(id)));
        }
        let old_expiry = family.expires_at();
        if family.current.ct_eq(&req.presented) {
            let previous = family.previous.replace(Previous {
                hash: family.current,
                rotated_at: now,
                sealed_successor: req.sealed_successor,
                key_hash: req.idempotency_key,
                sealed_response: None,
            });
            if let Some(previous) = previous {
                family.remember(previous.hash);
            }
            family.current = req.successor;
            family.last_used = now;
            let info = family.info(id);
            reindex(&mut shard, id, old_expiry, info.expires_at);
            return Ok(RotationResult::Rotated(info));
        }
        let reused = match &family.previous {
            Some(previous) if previous.hash.ct_eq(&req.presented) => {
                if now < previous.rotated_at.saturating_add(req.grace) {
                    return Ok(RotationResult::Grace {
                        family: family.info(id),
                        sealed_successor: previous.sealed_successor.clone(),
                        idempotency: previous.idempotency(),
                    });
                }
                Some(ReuseKind::PredecessorAfterWindow)
            }
            _ => family
                .history
                .contains(&req.presented)
                .then_some(ReuseKind::OlderToken),
        };
        let Some(kind) = reused else {
            return Ok(RotationResult::Invalid);
        };
        family.revoked = true;
        Ok(RotationResult::Reused {
            family: family.info(id),
            kind,
        })
    }

    async fn record_response(
        &self,
        id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut shard = lock(self.shard(id));
        let Some(family) = shard.live(id, now) else {
            return Ok(false);
        };
        if family.revoked {
            return Ok(false);
        }
        let Some(previous) = family.previous.as_mut() else {
            return Ok(false);
        };
        let matches = previous.hash.ct_eq(presented)
            && previous
                .key_hash
                .is_some_and(|key_hash| key_hash.ct_eq(&record.key_hash));
        if !matches || previous.sealed_response.is_some() {
            return Ok(false);
        }
        previous.sealed_response = Some(record.sealed_response);
        Ok(true)
    }

    async fn revoke(&self, id: &FamilyId, now: UnixTime) -> Result<Option<FamilyInfo>, StoreError> {
        let mut shard = lock(self.shard(id));
        self.sweep(&mut shard, now);
        Ok(shard.live(id, now).map(|family| {
            family.revoked = true;
            family.info(id)
        }))
    }

    async fn families_of(&self, sub: &str, now: UnixTime) -> Result<Vec<FamilyInfo>, StoreError> {
        let ids: Vec<FamilyId> = lock(&self.subjects)
            .get(sub)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut shard = lock(self.shard(&id));
            if let Some(family) = shard.live(&id, now).filter(|f| !f.revoked) {
                out.push(family.info(&id));
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}
