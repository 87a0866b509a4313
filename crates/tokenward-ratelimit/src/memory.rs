//! The in-memory store: GCRA on `governor` keyed limiters, failure bans in a sharded,
//! self-expiring map, both bounded.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock as GovernorClock, QuantaClock, QuantaInstant, Reference};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};
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
    /// Most distinct [`GcraQuota`]s (one governor limiter each; default 1024).
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

/// governor's DashMap state store behind an `Arc`, so the store can ask whether a key is
/// tracked (for the capacity check) while the limiter owns it.
#[derive(Clone, Default)]
struct SharedState(Arc<DashMapStateStore<String>>);

impl StateStore for SharedState {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<String> for SharedState {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Limiter = RateLimiter<String, SharedState, LimiterClock, StateInformationMiddleware>;

struct QuotaLimiter {
    limiter: Limiter,
    state: SharedState,
    quota: GcraQuota,
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
/// GCRA runs on `governor` keyed limiters (one per distinct [`GcraQuota`], created on first
/// use); failure bans live in a sharded map of their own.
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
///   flood cannot turn every call into a full scan; for ban keys, a sweep of its shard, as rarely); if the
///   store is still full,
///   [`gcra`](RateLimitStore::gcra) / [`record_failure`](RateLimitStore::record_failure)
///   for that key fail with [`StoreError::CapacityExceeded`]. Keys already tracked keep
///   working, and nothing live is evicted: evicting a GCRA key would hand its owner a fresh
///   burst, evicting a ban entry would lift a ban. What the error means for the request is
///   the policy's [`FailurePolicy`](tokenward_core::FailurePolicy): a
///   [`SubjectLimit`](crate::SubjectLimit) fails open by default (filling a million live
///   subject keys takes a million valid tokens), a [`FailureBan`](crate::FailureBan) check
///   never meets the cap (checking an unknown key stores nothing), and a failure that cannot
///   be recorded is reported to the caller. Concurrent first calls for new keys may overshoot
///   the cap by at most the number of callers.
///
/// # Clock
///
/// A [`LimiterClock`]: monotonic in production, [`ManualLimiterClock`] in tests
/// ([`MemoryRateLimitStore::with_clock`]).
pub struct MemoryRateLimitStore {
    config: MemoryStoreConfig,
    limiters: RwLock<HashMap<GcraQuota, Arc<QuotaLimiter>>>,
    /// GCRA keys tracked, over all limiters (exact after a prune; may over-count between).
    tracked: AtomicUsize,
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
            config,
            limiters: RwLock::new(HashMap::new()),
            tracked: AtomicUsize::new(0),
            ban_shards,
            ban_hasher: RandomState::new(),
            ban_shard_capacity,
            next_prune: AtomicU64::new(next_prune),
        }
    }

    /// GCRA keys currently tracked (at most [`capacity`](MemoryStoreConfig::capacity), plus
    /// concurrent overshoot).
    pub fn tracked_keys(&self) -> usize {
        self.limiters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|l| l.state.0.len())
            .sum()
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
        let limiters: Vec<Arc<QuotaLimiter>> = self
            .limiters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut total = 0;
        for l in &limiters {
            l.limiter.retain_recent();
            l.limiter.shrink_to_fit();
            total += l.state.0.len();
        }
        self.tracked.store(total, Ordering::Relaxed);
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

    fn limiter_for(&self, quota: &GcraQuota) -> Result<Arc<QuotaLimiter>, StoreError> {
        if let Some(l) = self
            .limiters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(quota)
        {
            return Ok(Arc::clone(l));
        }
        let mut limiters = self
            .limiters
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = limiters.get(quota) {
            return Ok(Arc::clone(l));
        }
        if limiters.len() >= self.config.max_quotas {
            return Err(StoreError::CapacityExceeded {
                capacity: self.config.max_quotas,
            });
        }
        let burst = NonZeroU32::new(quota.burst)
            .ok_or_else(|| StoreError::invalid_input("burst must be > 0"))?;
        let governor_quota = Quota::with_period(quota.emission_interval())
            .ok_or_else(|| StoreError::invalid_input("emission interval must be > 0"))?
            .allow_burst(burst);
        let state = SharedState::default();
        let limiter = RateLimiter::<String, SharedState, LimiterClock, NoOpMiddleware<Nanos>>::new(
            governor_quota,
            state.clone(),
            self.config.clock.clone(),
        )
        .with_middleware::<StateInformationMiddleware>();
        let l = Arc::new(QuotaLimiter {
            limiter,
            state,
            quota: *quota,
        });
        limiters.insert(*quota, Arc::clone(&l));
        Ok(l)
    }

    /// Admits a new GCRA key under the cap, pruning first if the store is full.
    fn admit_new_key(&self, now: u64) -> Result<(), StoreError> {
        let capacity = self.config.capacity;
        if self.tracked.load(Ordering::Relaxed) >= capacity {
            // A forced prune, rate-limited like the periodic one.
            let due = self.next_prune.load(Ordering::Relaxed);
            let earliest = due.saturating_sub(nanos(self.config.prune_interval));
            let forced_ok = now >= earliest.saturating_add(nanos(self.config.prune_interval) / 10);
            if forced_ok
                && self
                    .next_prune
                    .compare_exchange(
                        due,
                        now.saturating_add(nanos(self.config.prune_interval)),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                self.prune_at(now);
            }
            if self.tracked.load(Ordering::Relaxed) >= capacity {
                return Err(StoreError::CapacityExceeded { capacity });
            }
        }
        self.tracked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn gcra_sync(&self, key: &str, quota: &GcraQuota, cost: u32) -> Result<Decision, StoreError> {
        validate_key(key)?;
        quota.validate_cost(cost)?;
        let now = self.now();
        self.maybe_prune(now);
        let l = self.limiter_for(quota)?;
        if !l.state.0.contains_key(key) {
            self.admit_new_key(now)?;
        }
        let n = NonZeroU32::new(cost).ok_or_else(|| StoreError::invalid_input("cost 0"))?;
        let t = l.quota.emission_interval();
        let key = key.to_owned();
        match l.limiter.check_key_n(&key, n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity().min(l.quota.burst);
                // Time until all cells are back, to a whole emission interval (rounded up).
                let reset = t.saturating_mul(l.quota.burst.saturating_sub(remaining));
                Ok(Decision::allowed(l.quota.limit, remaining, reset))
            }
            Ok(Err(not_until)) => {
                let retry = not_until.wait_time_from(GovernorClock::now(&self.config.clock));
                let reset =
                    retry.saturating_add(t.saturating_mul(l.quota.burst.saturating_sub(cost)));
                Ok(Decision::denied(l.quota.limit, reset, retry))
            }
            Err(_insufficient) => Err(StoreError::invalid_input(format!(
                "cost {cost} exceeds the burst {}",
                l.quota.burst
            ))),
        }
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
}
