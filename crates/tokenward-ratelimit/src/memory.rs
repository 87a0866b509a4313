//! The in-memory store: GCRA on `governor`'s lock-free per-key state, failure bans in a
//! sharded, self-expiring map, both bounded.

use std::cell::Cell;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock as GovernorClock, QuantaClock, QuantaInstant, Reference};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use siphasher::sip128::SipHasher13;
use strength_reduce::StrengthReducedU64;
use tokenward_core::StoreError;

use crate::store::{BanQuota, Decision, GcraQuota, RateLimitStore, validate_key};

// ---- clock -------------------------------------------------------------------------------

/// The monotonic clock of a [`MemoryRateLimitStore`]: time since the clock was created, which
/// never runs backwards (wall-clock changes, NTP steps and leap seconds do not affect it).
///
/// [`LimiterClock::monotonic`] (the default) reads `governor`'s quanta clock (TSC or
/// `CLOCK_MONOTONIC`); [`LimiterClock::manual`] reads a [`ManualLimiterClock`] that tests
/// advance instantly.
#[derive(Clone)]
pub struct LimiterClock {
    inner: ClockInner,
}

#[derive(Clone)]
enum ClockInner {
    Monotonic {
        clock: QuantaClock,
        start: QuantaInstant,
    },
    Manual(ManualLimiterClock),
}

impl LimiterClock {
    /// The production clock: monotonic, starting now.
    pub fn monotonic() -> Self {
        let clock = QuantaClock::default();
        let start = clock.now();
        LimiterClock {
            inner: ClockInner::Monotonic { clock, start },
        }
    }

    /// A clock that reads `manual` (share the handle with the test that advances it).
    pub fn manual(manual: &ManualLimiterClock) -> Self {
        LimiterClock {
            inner: ClockInner::Manual(manual.clone()),
        }
    }

    /// Time since the clock started.
    pub fn elapsed(&self) -> Duration {
        GovernorClock::now(self).into()
    }
}

impl Default for LimiterClock {
    fn default() -> Self {
        Self::monotonic()
    }
}

impl fmt::Debug for LimiterClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            ClockInner::Monotonic { .. } => f.write_str("LimiterClock::Monotonic"),
            ClockInner::Manual(m) => f.debug_tuple("LimiterClock::Manual").field(m).finish(),
        }
    }
}

impl GovernorClock for LimiterClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match &self.inner {
            ClockInner::Monotonic { clock, start } => clock.now().duration_since(*start),
            ClockInner::Manual(m) => Nanos::from(m.nanos.load(Ordering::Acquire)),
        }
    }
}

/// A manually advanced clock for tests: starts at zero, moves only forward, only when told.
/// Clones share the same time.
#[derive(Clone, Default)]
pub struct ManualLimiterClock {
    nanos: Arc<AtomicU64>,
}

impl ManualLimiterClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `d` (saturating at about 584 years).
    pub fn advance(&self, d: Duration) {
        let by = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update with a closure that always returns Some cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Time since the clock started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

impl fmt::Debug for ManualLimiterClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManualLimiterClock({:?})", self.elapsed())
    }
}

// ---- configuration -----------------------------------------------------------------------

/// Configuration of a [`MemoryRateLimitStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryStoreConfig {
    /// Most GCRA keys tracked at once, over all quotas (default 1 000 000).
    pub capacity: usize,
    /// Most failure-ban keys tracked at once (default 1 000 000).
    pub ban_capacity: usize,
    /// Most distinct [`GcraQuota`]s (one governor state map each; default 1024, at most
    /// 65 536). The store's table of quotas takes 32 bytes per allowed quota.
    pub max_quotas: usize,
    /// How often stale state is pruned, at the latest (default 10 s); also the least time
    /// between two prunes forced by a full store.
    pub prune_interval: Duration,
    /// The clock (default: [`LimiterClock::monotonic`]).
    pub clock: LimiterClock,
}

impl MemoryStoreConfig {
    /// The defaults.
    pub fn new() -> Self {
        MemoryStoreConfig {
            capacity: 1_000_000,
            ban_capacity: 1_000_000,
            max_quotas: 1024,
            prune_interval: Duration::from_secs(10),
            clock: LimiterClock::monotonic(),
        }
    }

    /// Sets [`capacity`](Self::capacity).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets [`ban_capacity`](Self::ban_capacity).
    pub fn ban_capacity(mut self, ban_capacity: usize) -> Self {
        self.ban_capacity = ban_capacity;
        self
    }

    /// Sets [`max_quotas`](Self::max_quotas).
    pub fn max_quotas(mut self, max_quotas: usize) -> Self {
        self.max_quotas = max_quotas;
        self
    }

    /// Sets [`prune_interval`](Self::prune_interval).
    pub fn prune_interval(mut self, prune_interval: Duration) -> Self {
        self.prune_interval = prune_interval;
        self
    }

    /// Sets [`clock`](Self::clock).
    pub fn clock(mut self, clock: LimiterClock) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self::new()
    }
}

// ---- GCRA state --------------------------------------------------------------------------

/// Keys GCRA state by a keyed 128-bit hash of the key: SipHash-1-3 with a 128-bit output,
/// under a random key drawn per store.
///
/// Two distinct keys share state only if their hashes collide. SipHash is a keyed
/// pseudorandom function: without the store's secret 128-bit key (never exposed; its
/// hashes are never shown either), an attacker can neither compute nor search for a
/// collision offline, and online each guess is one request; by the birthday bound, even
/// 2³² tracked keys collide by chance with probability about 2⁻⁶⁵. In exchange, a call neither
/// allocates nor compares the key's bytes, and a tracked key takes 24 bytes of table (hash
/// and state) instead of a heap-allocated `String` of its own.
#[derive(Clone)]
struct KeyHasher(SipHasher13);

impl KeyHasher {
    fn new() -> Self {
        // std's `RandomState` is seeded from the OS's randomness; its SipHash of two
        // constants gives two unpredictable 64-bit words.
        let seed = RandomState::new();
        KeyHasher(SipHasher13::new_with_keys(
            seed.hash_one(0u8),
            seed.hash_one(1u8),
        ))
    }

    fn hash(&self, key: &str) -> u128 {
        self.0.hash(key.as_bytes()).as_u128()
    }
}

/// The DashMap's hasher for keys that are already keyed hashes: it folds the 128 bits to 64
/// instead of hashing them again.
#[derive(Clone, Copy, Default)]
struct PreHashed;

#[derive(Default)]
struct PreHashedHasher(u64);

impl BuildHasher for PreHashed {
    type Hasher = PreHashedHasher;

    fn build_hasher(&self) -> PreHashedHasher {
        PreHashedHasher(0)
    }
}

impl Hasher for PreHashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, i: u128) {
        // Truncation intended: both halves of a uniformly random value, folded.
        self.0 ^= (i as u64) ^ ((i >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u128` keys are hashed here (`write_u128`); this path is never taken, but
        // must still be a hash (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// GCRA keys tracked, over all quotas, against the hard cap. A key's slot is reserved
/// before its entry is inserted (under the DashMap shard's write lock) and released when a
/// prune removes the entry, so the count is exact and the cap holds under concurrency.
#[derive(Debug)]
struct KeyBudget {
    tracked: AtomicUsize,
    capacity: usize,
}

impl KeyBudget {
    fn try_reserve(&self) -> bool {
        self.tracked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.tracked.fetch_sub(n, Ordering::AcqRel);
    }

    fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Acquire)
    }
}

type StateMap = DashMapStateStore<u128, PreHashed>;

/// The key of a GCRA state lookup: the key's hash, and a flag the state store sets when the
/// key is new and the store is full (its state is then neither created nor changed).
/// (Governor's `StateStore` asks keys for `Clone` and `Eq` too; equality is the hash's.)
#[derive(Clone)]
struct GcraKey {
    hash: u128,
    refused: Cell<bool>,
}

impl PartialEq for GcraKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for GcraKey {}

impl Hash for GcraKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash.hash(state);
    }
}

/// One quota's keyed GCRA state: governor's DashMap (keyed by hash), with new keys admitted
/// only under the store's [`KeyBudget`].
struct SharedState {
    map: StateMap,
    budget: Arc<KeyBudget>,
}

impl StateStore for SharedState {
    type Key = GcraKey;

    #[inline(always)]
    fn measure_and_replace<T, F, E>(&self, key: &GcraKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // governor's DashMap store, less the key clone, and with new keys under the cap.
        if let Some(state) = self.map.get(&key.hash) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.budget.tracked() >= self.budget.capacity {
            // Full (a flood of new keys): refused without taking the shard's write lock.
            return Self::refuse(key, f);
        }
        let inserted = self.map.entry(key.hash).or_try_insert_with(|| {
            if self.budget.try_reserve() {
                Ok(InMemoryState::default())
            } else {
                Err(())
            }
        });
        match inserted {
            Ok(state) => state.measure_and_replace(&NotKeyed::NonKey, f),
            Err(()) => Self::refuse(key, f),
        }
    }
}

impl SharedState {
    /// A new key met a full store: no state is created. The decision governor would take
    /// for a fresh key is returned, but the caller sees the flag and answers
    /// `CapacityExceeded` instead.
    fn refuse<T, F, E>(key: &GcraKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        key.refused.set(true);
        f(None).map(|(t, _)| t)
    }
}

impl ShrinkableKeyedStateStore<GcraKey> for SharedState {
    fn retain_recent(&self, drop_below: Nanos) {
        // governor's `retain_recent`, counting what it drops. Reading a state: a closure
        // that refuses to replace it returns the value it was shown.
        let mut dropped = 0;
        self.map.retain(|_, state| {
            let tat = state.measure_and_replace(&NotKeyed::NonKey, |tat| {
                Err::<((), Nanos), _>(tat.unwrap_or_default())
            });
            let keep = tat.is_err_and(|tat| tat > drop_below);
            if !keep {
                dropped += 1;
            }
            keep
        });
        self.budget.release(dropped);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One quota's GCRA: its parameters in clock nanoseconds, and its keys' state.
struct QuotaLimiter {
    state: SharedState,
    quota: GcraQuota,
    /// `T`, the emission interval `period / limit` in nanoseconds (at least 1).
    emission_nanos: u64,
    /// `T`, prepared for division by multiplication (a 64-bit division was an eighth of an
    /// admitted check in a profile).
    emission_div: StrengthReducedU64,
    /// `τ`, the delay tolerance: `T × (burst − 1)`.
    tau_nanos: u64,
    /// `T × burst`: the time a full burst takes to come back (`τ + T`).
    burst_nanos: u64,
}

/// A GCRA step's answer: admitted, with the theoretical arrival time (TAT) stored; or denied
/// until the given instant. Both in clock nanoseconds.
type Outcome = Result<u64, u64>;

impl QuotaLimiter {
    /// The GCRA step of governor's limiter (`Gcra::test_and_update` /
    /// `test_n_all_and_update`) for `cost` cells (validated: `1..=burst`) at `now`: with a
    /// TAT (a fresh key's is `now`), the request conforms unless `now` is before
    /// `TAT + T × (cost − 1) − τ`; if it conforms, the TAT becomes
    /// `max(TAT, now) + T × cost`. The update is governor's lock-free compare-and-swap on
    /// the key's state.
    ///
    /// The step is done here rather than through governor's `RateLimiter`, which would read
    /// the clock a second time (the store reads it once per call for its pruning schedule
    /// and answers) and hands back a snapshot from which `remaining` costs a division.
    #[inline(always)]
    fn check(&self, key: &GcraKey, now: u64, cost: u32) -> Outcome {
        let additional = self
            .emission_nanos
            .saturating_mul(u64::from(cost.saturating_sub(1)));
        let increment = self.emission_nanos.saturating_add(additional);
        self.state.measure_and_replace(key, |tat| {
            let tat = tat.map_or(now, Nanos::as_u64);
            let earliest = tat
                .saturating_add(additional)
                .saturating_sub(self.tau_nanos);
            if now < earliest {
                Err(earliest)
            } else {
                let next = tat.max(now).saturating_add(increment);
                Ok((next, Nanos::from(next)))
            }
        })
    }
}

/// The most distinct quotas a store accepts, whatever [`MemoryStoreConfig::max_quotas`] says.
const MAX_QUOTAS: usize = 1 << 16;

/// The quotas' limiters: an open-addressing table (linear probing, at most half full) of
/// write-once slots, so finding a quota's limiter takes no lock, no `Arc` clone and no
/// SipHash. Limiters are created under `filled` and never removed.
struct QuotaTable {
    slots: Box<[OnceLock<Box<QuotaLimiter>>]>,
    /// Held while creating a limiter: the slots filled, in creation order.
    filled: Mutex<Vec<usize>>,
    max: usize,
}

impl QuotaTable {
    fn new(max_quotas: usize) -> Self {
        let max = max_quotas.min(MAX_QUOTAS);
        let len = (max * 2).next_power_of_two();
        QuotaTable {
            slots: (0..len).map(|_| OnceLock::new()).collect(),
            filled: Mutex::new(Vec::new()),
            max,
        }
    }

    /// The probe sequence of `quota`: every slot once (with its index), starting at its hash.
    fn probe(
        &self,
        quota: &GcraQuota,
    ) -> impl Iterator<Item = (usize, &OnceLock<Box<QuotaLimiter>>)> {
        // Quotas are the application's configuration, not attacker input: a multiplicative
        // mix of the fields spreads them well enough.
        let x = u64::from(quota.limit)
            ^ quota.period.as_secs().rotate_left(13)
            ^ (u64::from(quota.period.subsec_nanos()) << 32)
            ^ u64::from(quota.burst).rotate_left(47);
        let h = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize;
        // The length is a power of two.
        let start = h & (self.slots.len() - 1);
        let (before, after) = self.slots.split_at(start);
        (start..).zip(after).chain((0..).zip(before))
    }

    fn get(&self, quota: &GcraQuota) -> Option<&QuotaLimiter> {
        for (_, slot) in self.probe(quota) {
            match slot.get() {
                Some(l) if l.quota == *quota => return Some(l),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    fn get_or_create(
        &self,
        quota: &GcraQuota,
        create: impl FnOnce() -> Result<QuotaLimiter, StoreError>,
    ) -> Result<&QuotaLimiter, StoreError> {
        if let Some(l) = self.get(quota) {
            return Ok(l);
        }
        let mut filled = lock(&self.filled);
        for (i, slot) in self.probe(quota) {
            match slot.get() {
                Some(l) if l.quota == *quota => return Ok(l),
                Some(_) => {}
                None => {
                    if filled.len() >= self.max {
                        break;
                    }
                    let limiter = create()?;
                    filled.push(i);
                    // Only this thread, under `filled`, fills slots: this one is empty.
                    return Ok(slot.get_or_init(|| Box::new(limiter)));
                }
            }
        }
        Err(StoreError::CapacityExceeded { capacity: self.max })
    }

    /// The limiters created so far.
    fn limiters(&self) -> Vec<&QuotaLimiter> {
        lock(&self.filled)
            .iter()
            .filter_map(|&i| self.slots.get(i)?.get().map(|l| &**l))
            .collect()
    }
}

// ---- ban state ---------------------------------------------------------------------------

const BAN_SHARDS: usize = 16;

#[derive(Debug, Default)]
struct BanShard {
    map: HashMap<String, BanEntry>,
    /// Clock nanos before which a full shard is not swept again.
    next_sweep: u64,
}

#[derive(Debug)]
struct BanEntry {
    /// Times (clock nanos) of the failures counted, oldest first; at most `maxretry`.
    failures: VecDeque<u64>,
    /// When set and in the future: banned until then.
    banned_until: Option<u64>,
    /// When nothing in this entry matters any more (pruned from then on).
    expires_at: u64,
}

// ---- the store ---------------------------------------------------------------------------

/// The in-memory [`RateLimitStore`]: nanoseconds per check, state local to one process.
///
/// GCRA state lives in `governor`'s keyed state store (its `DashMap` of lock-free
/// `InMemoryState` cells, one map per distinct [`GcraQuota`], created on first use), updated
/// by governor's GCRA step (`max(TAT, now) + T`, conforming unless `now < TAT − τ`; done by
/// the store itself so that a check reads the clock once and computes `remaining` without a
/// division); failure bans live in a sharded map of their own.
///
/// # Bounded memory
///
/// - **Pruning**: at most every [`prune_interval`](MemoryStoreConfig::prune_interval), the
///   next call drops every GCRA key whose state is indistinguishable from a fresh one
///   (`retain_recent` + `shrink_to_fit`) and every ban entry whose ban and counted failures
///   have run out. No background task: the store's own calls do it.
/// - **Hard cap**: at most [`capacity`](MemoryStoreConfig::capacity) GCRA keys and
///   [`ban_capacity`](MemoryStoreConfig::ban_capacity) ban keys. When full, a *new* key is
///   first met with a prune (for GCRA keys at most once per tenth of `prune_interval`, so a
///   flood cannot turn every call into a full scan; for ban keys, a sweep of its shard, as
///   rarely); if the store is still full,
///   [`gcra`](RateLimitStore::gcra) / [`record_failure`](RateLimitStore::record_failure)
///   for that key fail with [`StoreError::CapacityExceeded`]. Keys already tracked keep
///   working, and nothing live is evicted: evicting a GCRA key would hand its owner a fresh
///   burst, evicting a ban entry would lift a ban. What the error means for the request is
///   the policy's [`FailurePolicy`](tokenward_core::FailurePolicy): a
///   [`SubjectLimit`](crate::SubjectLimit) fails open by default (filling a million live
///   subject keys takes a million valid tokens), a [`FailureBan`](crate::FailureBan) check
///   never meets the cap (checking an unknown key stores nothing), and a failure that cannot
///   be recorded is reported to the caller. The GCRA cap is exact, concurrent first calls
///   included (a key's slot is reserved before its state is created).
/// - **Per key**: GCRA state is keyed by a keyed 128-bit SipHash-1-3 of the key (random
///   secret per store), not by the key itself: 24 bytes of table per tracked key, and no
///   allocation per call. Distinct keys share state only on a hash collision, which an
///   attacker cannot compute without the secret and which happens by chance with
///   probability about 2⁻⁶⁵ even among 2³² tracked keys.
///
/// # Clock
///
/// A [`LimiterClock`]: monotonic in production, [`ManualLimiterClock`] in tests
/// ([`MemoryRateLimitStore::with_clock`]).
pub struct MemoryRateLimitStore {
    config: MemoryStoreConfig,
    quotas: QuotaTable,
    key_hasher: KeyHasher,
    /// GCRA keys tracked, over all limiters, against the cap.
    budget: Arc<KeyBudget>,
    ban_shards: Box<[Mutex<BanShard>]>,
    ban_hasher: RandomState,
    ban_shard_capacity: usize,
    /// Clock nanos before which no time-triggered prune runs.
    next_prune: AtomicU64,
}

impl fmt::Debug for MemoryRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimitStore")
            .field("config", &self.config)
            .field("tracked_keys", &self.tracked_keys())
            .field("ban_keys", &self.ban_keys())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryRateLimitStore {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state under the lock stays consistent at every await-free step; a panic elsewhere
    // must not turn into a permanent outage of the limiter.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl MemoryRateLimitStore {
    /// A store with the default [configuration](MemoryStoreConfig::new).
    pub fn new() -> Self {
        Self::with_config(MemoryStoreConfig::new())
    }

    /// A store with the default configuration reading `clock` (tests:
    /// `LimiterClock::manual(&manual)`).
    pub fn with_clock(clock: LimiterClock) -> Self {
        Self::with_config(MemoryStoreConfig::new().clock(clock))
    }

    /// A store with the given configuration.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        let ban_shards = (0..BAN_SHARDS)
            .map(|_| Mutex::new(BanShard::default()))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let ban_shard_capacity = config.ban_capacity.div_ceil(BAN_SHARDS);
        let next_prune = nanos(config.clock.elapsed().saturating_add(config.prune_interval));
        MemoryRateLimitStore {
            quotas: QuotaTable::new(config.max_quotas),
            key_hasher: KeyHasher::new(),
            budget: Arc::new(KeyBudget {
                tracked: AtomicUsize::new(0),
                capacity: config.capacity,
            }),
            config,
            ban_shards,
            ban_hasher: RandomState::new(),
            ban_shard_capacity,
            next_prune: AtomicU64::new(next_prune),
        }
    }

    /// GCRA keys currently tracked (at most [`capacity`](MemoryStoreConfig::capacity)),
    /// counted in the limiters' tables.
    pub fn tracked_keys(&self) -> usize {
        self.quotas.limiters().iter().map(|l| l.state.len()).sum()
    }

    /// Failure-ban keys currently tracked.
    pub fn ban_keys(&self) -> usize {
        self.ban_shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Drops all stale state now (what the periodic pruning does).
    pub fn prune(&self) {
        let now = self.now();
        self.prune_at(now);
    }

    fn now(&self) -> u64 {
        GovernorClock::now(&self.config.clock).as_u64()
    }

    fn prune_at(&self, now: u64) {
        for l in self.quotas.limiters() {
            // Releases the dropped keys' slots in the budget.
            // governor's `RateLimiter::retain_recent`: a key whose TAT is at most `now − T`
            // is indistinguishable from a fresh one.
            l.state
                .retain_recent(Nanos::from(now.saturating_sub(l.emission_nanos)));
            l.state.shrink_to_fit();
        }
        for shard in self.ban_shards.iter() {
            let mut shard = lock(shard);
            shard.map.retain(|_, e| e.expires_at > now);
            shard.map.shrink_to_fit();
        }
        self.next_prune.store(
            now.saturating_add(nanos(self.config.prune_interval)),
            Ordering::Relaxed,
        );
    }

    /// Prunes if the interval has passed; one caller wins the race, the others go on.
    fn maybe_prune(&self, now: u64) {
        let due = self.next_prune.load(Ordering::Relaxed);
        if now >= due {
            let next = now.saturating_add(nanos(self.config.prune_interval));
            if self
                .next_prune
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.prune_at(now);
            }
        }
    }

    /// The limiter of `quota`, created on first use.
    fn limiter_for(&self, quota: &GcraQuota) -> Result<&QuotaLimiter, StoreError> {
        if let Some(l) = self.quotas.get(quota) {
            return Ok(l);
        }
        self.quotas.get_or_create(quota, || {
            // `validate_cost` has checked limit, period and burst > 0; the interval is at
            // least 1 ns.
            let emission_nanos = nanos(quota.emission_interval());
            if emission_nanos == 0 || quota.burst == 0 {
                return Err(StoreError::invalid_input(
                    "emission interval and burst must be > 0",
                ));
            }
            Ok(QuotaLimiter {
                state: SharedState {
                    map: StateMap::with_hasher(PreHashed),
                    budget: Arc::clone(&self.budget),
                },
                quota: *quota,
                emission_nanos,
                emission_div: StrengthReducedU64::new(emission_nanos),
                tau_nanos: emission_nanos.saturating_mul(u64::from(quota.burst.saturating_sub(1))),
                burst_nanos: emission_nanos.saturating_mul(u64::from(quota.burst)),
            })
        })
    }

    /// A new key met a full store: prunes if allowed (rate-limited like the periodic prune,
    /// at most once per tenth of `prune_interval`); whether that made room.
    fn forced_prune(&self, now: u64) -> bool {
        let interval = nanos(self.config.prune_interval);
        let due = self.next_prune.load(Ordering::Relaxed);
        let earliest = due.saturating_sub(interval);
        let forced_ok = now >= earliest.saturating_add(interval / 10);
        if forced_ok
            && self
                .next_prune
                .compare_exchange(
                    due,
                    now.saturating_add(interval),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.prune_at(now);
        }
        self.budget.tracked() < self.budget.capacity
    }

    fn gcra_sync(&self, key: &str, quota: &GcraQuota, cost: u32) -> Result<Decision, StoreError> {
        validate_key(key)?;
        quota.validate_cost(cost)?;
        let now = self.now();
        self.maybe_prune(now);
        let l = self.limiter_for(quota)?;
        let key = GcraKey {
            hash: self.key_hasher.hash(key),
            refused: Cell::new(false),
        };
        let mut outcome = l.check(&key, now, cost);
        if key.refused.get() {
            // A new key and a full store: nothing was stored. Try once more after a prune.
            if !self.forced_prune(now) {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.budget.capacity,
                });
            }
            key.refused.set(false);
            outcome = l.check(&key, now, cost);
            if key.refused.get() {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.budget.capacity,
                });
            }
        }
        // Decisions are computed in nanoseconds and become `Duration`s once.
        let t = l.emission_nanos;
        Ok(match outcome {
            Ok(tat) => {
                // governor's `StateSnapshot::remaining_burst_capacity`: the whole cells
                // between now and the stored TAT, out of the burst.
                let left = now
                    .saturating_add(l.burst_nanos)
                    .saturating_sub(tat)
                    .min(l.burst_nanos);
                let remaining = u32::try_from(left / l.emission_div)
                    .unwrap_or(u32::MAX)
                    .min(l.quota.burst);
                // Time until all cells are back, to a whole emission interval (rounded up).
                let reset = t.saturating_mul(u64::from(l.quota.burst.saturating_sub(remaining)));
                Decision::allowed(l.quota.limit, remaining, Duration::from_nanos(reset))
            }
            Err(earliest) => {
                let retry = earliest.saturating_sub(now);
                let refill = t.saturating_mul(u64::from(l.quota.burst.saturating_sub(cost)));
                Decision::denied(
                    l.quota.limit,
                    Duration::from_nanos(retry.saturating_add(refill)),
                    Duration::from_nanos(retry),
                )
            }
        })
    }

    fn shard(&self, key: &str) -> Result<&Mutex<BanShard>, StoreError> {
        let i = (self.ban_hasher.hash_one(key) % BAN_SHARDS as u64) as usize;
        self.ban_shards
            .get(i)
            .ok_or_else(|| StoreError::corrupt("ban shard index out of range"))
    }

    fn ban_decision(entry: Option<&BanEntry>, quota: &BanQuota, now: u64) -> Decision {
        let findtime = nanos(quota.findtime);
        if let Some(e) = entry {
            if let Some(until) = e.banned_until.filter(|&u| u > now) {
                let left = Duration::from_nanos(until - now);
                return Decision::denied(quota.maxretry, left, left);
            }
            let counted: Vec<u64> = e
                .failures
                .iter()
                .copied()
                .filter(|&f| f.saturating_add(findtime) > now)
                .collect();
            let count = u32::try_from(counted.len()).unwrap_or(u32::MAX);
            let reset = counted
                .first()
                .map(|&f| Duration::from_nanos(f.saturating_add(findtime) - now))
                .unwrap_or(Duration::ZERO);
            return Decision::allowed(quota.maxretry, quota.maxretry.saturating_sub(count), reset);
        }
        Decision::allowed(quota.maxretry, quota.maxretry, Duration::ZERO)
    }

    fn ban_status_sync(&self, key: &str, quota: &BanQuota) -> Result<Decision, StoreError> {
        validate_key(key)?;
        quota.validate()?;
        let now = self.now();
        self.maybe_prune(now);
        let shard = lock(self.shard(key)?);
        Ok(Self::ban_decision(shard.map.get(key), quota, now))
    }

    fn record_failure_sync(&self, key: &str, quota: &BanQuota) -> Result<Decision, StoreError> {
        validate_key(key)?;
        quota.validate()?;
        let now = self.now();
        self.maybe_prune(now);
        let findtime = nanos(quota.findtime);
        let mut shard = lock(self.shard(key)?);
        if !shard.map.contains_key(key) && shard.map.len() >= self.ban_shard_capacity {
            if now >= shard.next_sweep {
                shard.map.retain(|_, e| e.expires_at > now);
                shard.next_sweep = now.saturating_add(nanos(self.config.prune_interval) / 10);
            }
            if shard.map.len() >= self.ban_shard_capacity {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.config.ban_capacity,
                });
            }
        }
        let entry = match shard.map.entry(key.to_owned()) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(BanEntry {
                failures: VecDeque::new(),
                banned_until: None,
                expires_at: now,
            }),
        };
        match entry.banned_until {
            // Banned: the failure neither counts nor extends the ban.
            Some(until) if until > now => {}
            Some(_) => {
                // The ban ended: counting starts afresh.
                entry.banned_until = None;
                entry.failures.clear();
            }
            None => {}
        }
        if entry.banned_until.is_none() {
            while entry
                .failures
                .front()
                .is_some_and(|&f| f.saturating_add(findtime) <= now)
            {
                entry.failures.pop_front();
            }
            entry.failures.push_back(now);
            let max = usize::try_from(quota.maxretry).unwrap_or(usize::MAX);
            while entry.failures.len() > max {
                entry.failures.pop_front();
            }
            if entry.failures.len() >= max {
                entry.failures.clear();
                entry.failures.shrink_to_fit();
                let until = now.saturating_add(nanos(quota.bantime));
                entry.banned_until = Some(until);
                entry.expires_at = until;
            } else {
                entry.expires_at = now.saturating_add(findtime);
            }
        }
        Ok(Self::ban_decision(Some(entry), quota, now))
    }

    fn lift_ban_sync(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        lock(self.shard(key)?).map.remove(key);
        Ok(())
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimitStore {
    async fn gcra(&self, key: &str, quota: &GcraQuota, cost: u32) -> Result<Decision, StoreError> {
        self.gcra_sync(key, quota, cost)
    }

    async fn ban_status(&self, key: &str, quota: &BanQuota) -> Result<Decision, StoreError> {
        self.ban_status_sync(key, quota)
    }

    async fn record_failure(&self, key: &str, quota: &BanQuota) -> Result<Decision, StoreError> {
        self.record_failure_sync(key, quota)
    }

    async fn lift_ban(&self, key: &str) -> Result<(), StoreError> {
        self.lift_ban_sync(key)
    }

    fn gcra_now(
        &self,
        key: &str,
        quota: &GcraQuota,
        cost: u32,
    ) -> Option<Result<Decision, StoreError>> {
        Some(self.gcra_sync(key, quota, cost))
    }

    fn ban_status_now(&self, key: &str, quota: &BanQuota) -> Option<Result<Decision, StoreError>> {
        Some(self.ban_status_sync(key, quota))
    }
}
