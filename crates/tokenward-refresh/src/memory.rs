//! The in-memory [`RefreshStore`]: sharded, atomic per family, self-expiring, bounded.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::memory::{Capacity, Shards};
use tokenward_core::{SettingError, SharedClock, StoreError, StoreId, SystemClock, UnixTime};

use crate::store::{
    FamilyInfo, IdempotencyRecord, MIN_REUSE_HISTORY, NewFamily, RefreshStore, ReuseKind,
    RotationRequest, RotationResult,
};
use crate::token::{FamilyId, Sealed, TokenHash};

/// Configuration of a [`MemoryRefreshStore`]: capacity and clock.
///
/// ```
/// use std::sync::Arc;
/// use tokenward_core::{ManualClock, UnixTime};
/// use tokenward_refresh::{MemoryRefreshConfig, MemoryRefreshStore};
///
/// let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
/// let store = MemoryRefreshStore::with_config(
///     MemoryRefreshConfig::new().capacity(10_000).clock(Arc::new(clock)),
/// )?;
/// assert_eq!(store.capacity(), 10_000);
/// // Out-of-range settings are refused when the store is built, never clamped.
/// assert!(MemoryRefreshStore::with_config(MemoryRefreshConfig::new().capacity(0)).is_err());
/// # Ok::<(), tokenward_core::SettingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRefreshConfig {
    capacity: usize,
    clock: SharedClock,
}

impl MemoryRefreshConfig {
    /// The default [`capacity`](Self::capacity): one million families.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// The defaults: [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) families, the
    /// [`SystemClock`].
    pub fn new() -> Self {
        MemoryRefreshConfig {
            capacity: Self::DEFAULT_CAPACITY,
            clock: Arc::new(SystemClock),
        }
    }

    /// The most families the store holds (at least 1; 0 makes
    /// [`MemoryRefreshStore::with_config`] fail). A create that would exceed it purges
    /// expired families first, then fails with [`StoreError::CapacityExceeded`].
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The store's clock: where its "now" comes from (a `ManualClock` in tests). Every
    /// expiry and grace-window decision reads it.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for MemoryRefreshConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`RefreshStore`] in process memory.
///
/// - **Atomic.** Families are spread over 32 shards by a keyed hash of their id, each
///   behind one `Mutex`; a rotation is one critical section on its family's shard.
/// - **Its own time.** Every decision reads the store's clock
///   ([`MemoryRefreshConfig::clock`]; the system clock by default).
/// - **Self-expiring.** A family stops existing at `min(absolute expiry, last_used + idle
///   timeout)`. Each shard keeps its families ordered by expiry; every write first drops the
///   expired families (and their subject-index entries) of its own shard and of one more
///   shard in turn, so no cleanup job is needed: after a burst, at most one write per shard
///   returns the store to its live size. [`purge_expired`](Self::purge_expired) sweeps all
///   shards at once.
/// - **Bounded.** At most [`capacity`](MemoryRefreshConfig::capacity) families (default one
///   million). A create that would exceed it purges expired families first, then fails with
///   [`StoreError::CapacityExceeded`]: live families are never evicted.
/// - **Revoked families free their slot.** Revoking a family (logout, reuse, the per-subject
///   cap) drops its tokens and history and its subject-index entry at once; what is left (a
///   tombstone of a few dozen bytes answering `Revoked`) counts against the capacity until
///   its [retention](crate::NewFamily::revoked_retention) ends (90 s with the engine's
///   defaults), then goes like an expired family.
/// - **History.** Each family remembers its last [`MIN_REUSE_HISTORY`] rotated hashes
///   (32 bytes each, so at most 32 KiB per family) for reuse detection.
///
/// `Debug` shows the number of families and the capacity only.
pub struct MemoryRefreshStore {
    shards: Shards<Mutex<Shard>>,
    /// Live and not-yet-reclaimed families. Changed only under the family's shard lock.
    stored: Capacity,
    clock: SharedClock,
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

/// The token state of a live family; a revoked one (a tombstone) has none.
struct Tokens {
    current: TokenHash,
    previous: Option<Previous>,
    history_order: VecDeque<TokenHash>,
    history: HashSet<TokenHash>,
}

/// The tokens are boxed: a tombstone keeps only the few bytes of `Revoked`.
enum State {
    Live(Box<Tokens>),
    /// Revoked: a tombstone, gone at `until` (or at the family's expiry, if earlier).
    Revoked {
        until: UnixTime,
    },
}

struct Family {
    sub: StoreId<'static>,
    created: UnixTime,
    last_used: UnixTime,
    absolute_expiry: UnixTime,
    idle_timeout: Duration,
    revoked_retention: Duration,
    access_exp: UnixTime,
    state: State,
}

impl Family {
    fn expires_at(&self) -> UnixTime {
        let lived = self
            .absolute_expiry
            .min(self.last_used.saturating_add(self.idle_timeout));
        match self.state {
            State::Live(_) => lived,
            State::Revoked { until } => lived.min(until),
        }
    }

    fn revoked(&self) -> bool {
        matches!(self.state, State::Revoked { .. })
    }

    fn info(&self, id: &FamilyId) -> FamilyInfo {
        FamilyInfo::new(id.clone(), self.sub.clone(), self.created)
            .with_last_used(self.last_used)
            .with_expires_at(self.expires_at())
            .with_access_exp(self.access_exp)
            .with_revoked(self.revoked())
    }

    fn raise_access_exp(&mut self, exp: UnixTime) {
        self.access_exp = self.access_exp.max(exp);
    }

    /// Makes the family a tombstone (dropping its tokens) until `now` + its retention; a
    /// tombstone stays as it is.
    fn revoke(&mut self, now: UnixTime) {
        if !self.revoked() {
            self.state = State::Revoked {
                until: now.saturating_add(self.revoked_retention),
            };
        }
    }
}

impl Tokens {
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

    /// Installs `req.successor` (the presented token was current).
    fn rotate(&mut self, req: RotationRequest, now: UnixTime) {
        let previous = self.previous.replace(Previous {
            hash: self.current,
            rotated_at: now,
            sealed_successor: req.sealed_successor,
            key_hash: req.idempotency_key,
            sealed_response: None,
        });
        if let Some(previous) = previous {
            self.remember(previous.hash);
        }
        self.current = req.successor;
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
    fn pop_expired(&mut self, now: UnixTime) -> Vec<(FamilyId, StoreId<'static>)> {
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
    /// A store with the default configuration ([`MemoryRefreshConfig::new`]).
    pub fn new() -> Self {
        Self::build(MemoryRefreshConfig::new())
    }

    /// A store with the default capacity, reading time from `clock` (a `ManualClock` in
    /// tests).
    pub fn with_clock(clock: SharedClock) -> Self {
        Self::build(MemoryRefreshConfig::new().clock(clock))
    }

    /// A store with the given configuration; a setting out of range is an error.
    pub fn with_config(config: MemoryRefreshConfig) -> Result<Self, SettingError> {
        SettingError::check_range("capacity", config.capacity, 1..=usize::MAX)?;
        Ok(Self::build(config))
    }

    fn build(config: MemoryRefreshConfig) -> Self {
        MemoryRefreshStore {
            shards: Shards::new(SHARDS, || Mutex::new(Shard::default())),
            stored: Capacity::new(config.capacity),
            clock: config.clock,
            subjects: Mutex::new(HashMap::new()),
        }
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.stored.limit()
    }

    /// Families held in memory (live, revoked, or expired and not yet reclaimed).
    pub fn stored(&self) -> usize {
        self.stored.stored()
    }

    /// Drops every expired family now; returns how many. Never needed for correctness or
    /// bounded memory (writes reclaim as they go).
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|shard| self.sweep(&mut lock(shard), now))
            .sum()
    }

    /// Every byte the store holds (ids, subjects, hashes, sealed blobs), one buffer per
    /// field: the conformance probe's `stored_bytes`.
    #[cfg(feature = "conformance")]
    pub(crate) fn stored_bytes(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for (id, family) in &shard.families {
                out.push(id.as_str().as_bytes().to_vec());
                out.push(family.sub.as_str().as_bytes().to_vec());
                let State::Live(family) = &family.state else {
                    continue;
                };
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

    /// Subject-index entries held (one per family of each subject): with
    /// [`stored`](Self::stored), what the conformance probe counts.
    #[cfg(feature = "conformance")]
    pub(crate) fn indexed(&self) -> usize {
        lock(&self.subjects).values().map(HashSet::len).sum()
    }

    fn shard(&self, id: &FamilyId) -> &Mutex<Shard> {
        self.shards.of(id.as_str()).1
    }

    /// Locks `id`'s shard after sweeping it and one more shard in turn (never two shard locks
    /// at once), so expired families go away even in shards no write hashes to.
    fn write_lock(&self, id: &FamilyId, now: UnixTime) -> MutexGuard<'_, Shard> {
        let (index, own) = self.shards.of(id.as_str());
        let (other, next) = self.shards.next_to_sweep();
        if other != index {
            self.sweep(&mut lock(next), now);
        }
        let mut shard = lock(own);
        self.sweep(&mut shard, now);
        shard
    }

    /// Drops a locked shard's expired families and their subject-index entries.
    fn sweep(&self, shard: &mut Shard, now: UnixTime) -> usize {
        let gone = shard.pop_expired(now);
        if gone.is_empty() {
            return 0;
        }
        self.stored.release(gone.len());
        for (id, sub) in &gone {
            self.unindex(id, sub);
        }
        gone.len()
    }

    /// Applies `f` to the live family `id` under its shard's lock (after sweeping), keeping
    /// the expiry index in step with the family's expiry, and the subject index without a
    /// family `f` revoked.
    fn update<T>(&self, id: &FamilyId, f: impl FnOnce(&mut Family, UnixTime) -> T) -> Option<T> {
        let now = self.clock.now();
        let mut shard = self.write_lock(id, now);
        let family = shard.live(id, now)?;
        let old = family.expires_at();
        let was_revoked = family.revoked();
        let out = f(family, now);
        let new = family.expires_at();
        if !was_revoked && family.revoked() {
            let sub = family.sub.clone();
            self.unindex(id, &sub);
        }
        if old != new {
            shard.expiry.remove(&(old, id.clone()));
            shard.expiry.insert((new, id.clone()));
        }
        Some(out)
    }

    /// Drops `id` from `sub`'s index (under its shard's lock: a shard, then the index).
    fn unindex(&self, id: &FamilyId, sub: &StoreId<'_>) {
        let mut subjects = lock(&self.subjects);
        if let Some(ids) = subjects.get_mut(sub.as_str()) {
            ids.remove(id);
            if ids.is_empty() {
                subjects.remove(sub.as_str());
            }
        }
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
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Classifies `req` against a live family and applies it (steps 2 to 6 of the contract).
fn classify(
    family: &mut Family,
    id: &FamilyId,
    req: RotationRequest,
    now: UnixTime,
) -> RotationResult {
    let State::Live(tokens) = &mut family.state else {
        return RotationResult::Revoked(family.info(id));
    };
    if tokens.current.ct_eq(&req.presented) {
        let access_exp = req.access_exp;
        tokens.rotate(req, now);
        family.last_used = now;
        family.raise_access_exp(access_exp);
        return RotationResult::Rotated(family.info(id));
    }
    let kind = match &tokens.previous {
        Some(previous) if previous.hash.ct_eq(&req.presented) => {
            if now < previous.rotated_at.saturating_add(req.grace) {
                let sealed_successor = previous.sealed_successor.clone();
                let idempotency = previous.idempotency();
                family.raise_access_exp(req.access_exp);
                return RotationResult::Grace {
                    family: family.info(id),
                    sealed_successor,
                    idempotency,
                };
            }
            ReuseKind::PredecessorAfterWindow
        }
        _ if tokens.history.contains(&req.presented) => ReuseKind::OlderToken,
        _ => return RotationResult::Invalid,
    };
    family.revoke(now);
    RotationResult::Reused {
        family: family.info(id),
        kind,
    }
}

#[async_trait]
impl RefreshStore for MemoryRefreshStore {
    async fn create(&self, new: NewFamily) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut shard = self.write_lock(&new.id, now);
        if shard.families.contains_key(&new.id) {
            return Err(StoreError::invalid_input("family id already exists"));
        }
        if !self.stored.try_reserve() {
            drop(shard);
            self.purge_expired();
            if !self.stored.try_reserve() {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.capacity(),
                });
            }
            shard = lock(self.shard(&new.id));
        }
        let family = Family {
            sub: new.sub.clone(),
            created: now,
            last_used: now,
            absolute_expiry: now.saturating_add(new.absolute_lifetime),
            idle_timeout: new.idle_timeout,
            revoked_retention: new.revoked_retention,
            access_exp: new.access_exp,
            state: State::Live(Box::new(Tokens {
                current: new.token_hash,
                previous: None,
                history_order: VecDeque::new(),
                history: HashSet::new(),
            })),
        };
        shard.expiry.insert((family.expires_at(), new.id.clone()));
        shard.families.insert(new.id.clone(), family);
        lock(&self.subjects)
            .entry(new.sub.as_str().to_owned())
            .or_default()
            .insert(new.id);
        Ok(())
    }

    async fn get(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        let now = self.clock.now();
        let mut shard = lock(self.shard(id));
        Ok(shard.live(id, now).map(|family| family.info(id)))
    }

    async fn rotate(&self, req: RotationRequest) -> Result<RotationResult, StoreError> {
        let id = req.family_id.clone();
        Ok(self
            .update(&id, |family, now| classify(family, &id, req, now))
            .unwrap_or(RotationResult::Invalid))
    }

    async fn record_response(
        &self,
        id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
    ) -> Result<bool, StoreError> {
        let wrote = self.update(id, |family, _| {
            let State::Live(tokens) = &mut family.state else {
                return false;
            };
            let Some(previous) = tokens.previous.as_mut() else {
                return false;
            };
            let matches = previous.hash.ct_eq(presented)
                && previous
                    .key_hash
                    .is_some_and(|key_hash| key_hash.ct_eq(&record.key_hash));
            if !matches || previous.sealed_response.is_some() {
                return false;
            }
            previous.sealed_response = Some(record.sealed_response);
            true
        });
        Ok(wrote.unwrap_or(false))
    }

    async fn record_access_exp(
        &self,
        id: &FamilyId,
        exp: UnixTime,
    ) -> Result<Option<FamilyInfo>, StoreError> {
        Ok(self.update(id, |family, _| {
            family.raise_access_exp(exp);
            family.info(id)
        }))
    }

    async fn revoke(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        Ok(self.update(id, |family, now| {
            family.revoke(now);
            family.info(id)
        }))
    }

    async fn families_of(&self, sub: &StoreId<'_>) -> Result<Vec<FamilyInfo>, StoreError> {
        let now = self.clock.now();
        let ids: Vec<FamilyId> = lock(&self.subjects)
            .get(sub.as_str())
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut shard = lock(self.shard(&id));
            if let Some(family) = shard.live(&id, now).filter(|f| !f.revoked()) {
                out.push(family.info(&id));
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}
