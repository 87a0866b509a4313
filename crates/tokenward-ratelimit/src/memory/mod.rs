//! The in-memory store: GCRA on `governor`'s lock-free per-key state ([`gcra`]), failure
//! bans in a sharded, self-expiring map ([`ban`]), both bounded, on a monotonic clock
//! ([`clock`]); configured by [`MemoryRateLimitConfig`] ([`config`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::{SettingError, StoreError};

use crate::key::LimitKey;
use crate::quota::{BanQuota, GcraCharge};
use crate::store::{Decision, RateLimitStore};

mod ban;
mod clock;
mod config;
mod gcra;

pub use clock::LimiterClock;
pub use config::MemoryRateLimitConfig;

/// The in-memory [`RateLimitStore`]: nanoseconds per check, state local to one process.
///
/// GCRA state lives in `governor`'s keyed state store (its `DashMap` of lock-free
/// `InMemoryState` cells, one map per distinct [`GcraQuota`](crate::GcraQuota), created on
/// first use), updated by governor's GCRA step (`max(TAT, now) + n·T`, admitted iff
/// `TAT + n·T − B·T ≤ now`; done by the store itself so that a check reads the clock once
/// and computes `remaining` without a division); failure bans live in a sharded map of their
/// own. Decisions follow the [trait's formulas](RateLimitStore#gcra) to the nanosecond.
///
/// # Bounded memory
///
/// - **Pruning**: at most every
///   [`prune_interval`](MemoryRateLimitConfig::prune_interval) (10 s by default), the next
///   call drops every GCRA key whose state is indistinguishable from a fresh one
///   (`retain_recent` + `shrink_to_fit`) and every ban entry whose ban and counted failures
///   have run out. No background task: the store's own calls do it.
/// - **Hard cap**: at most [`capacity`](MemoryRateLimitConfig::capacity) GCRA keys and
///   [`ban_capacity`](MemoryRateLimitConfig::ban_capacity) ban keys. When full, a *new* key
///   is first met with a prune (for GCRA keys at most once per tenth of `prune_interval`, so
///   a flood cannot turn every call into a full scan; for ban keys, a sweep of its shard, as
///   rarely); if the store is still full,
///   [`gcra`](RateLimitStore::gcra) / [`record_failure`](RateLimitStore::record_failure)
///   for that key fail with [`StoreError::CapacityExceeded`]. Keys already tracked keep
///   working, and nothing live is evicted: evicting a GCRA key would hand its owner a fresh
///   burst, evicting a ban entry would lift a ban. What the error means for the request is
///   the policy's [`FailurePolicy`](tokenward_core::FailurePolicy): a
///   [`SubjectLimit`](crate::SubjectLimit) fails closed by default (503; filling a million
///   live subject keys takes a million valid tokens, and the limit can be set to
///   `DangerousOpen`), a [`FailureBan`](crate::FailureBan) check never meets the cap
///   (checking an unknown key stores nothing), and a failure that cannot be recorded is
///   reported to the caller. The GCRA cap is exact, concurrent first calls included (a key's
///   slot is reserved before its state is created).
/// - **Per key**: GCRA state is keyed by a keyed 128-bit SipHash-1-3 of the key (random
///   secret per store), not by the key itself: 24 bytes of table per tracked key, and no
///   allocation per call. Distinct keys share state only on a hash collision, which an
///   attacker cannot compute without the secret and which happens by chance with
///   probability about 2⁻⁶⁵ even among 2³² tracked keys.
///
/// # Clock
///
/// The store keeps its own time, as the [trait's contract](RateLimitStore#contract) asks: a
/// [`LimiterClock`], monotonic in production; in tests a core
/// [`ManualClock`](tokenward_core::ManualClock) through [`LimiterClock::manual`]. Each call
/// reads it once.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use tokenward_core::{ManualClock, UnixTime};
/// use tokenward_ratelimit::{
///     GcraCharge, GcraQuota, LimitKey, LimiterClock, MemoryRateLimitStore, RateLimitStore,
/// };
///
/// let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
/// let store = MemoryRateLimitStore::with_clock(LimiterClock::manual(&clock));
/// let one = GcraCharge::single(GcraQuota::per_second(NonZeroU32::new(1).unwrap()));
/// let key = LimitKey::new("subject:alice")?;
/// let first = store.gcra_now(&key, &one).expect("in process")?;
/// assert!(first.allowed);
/// assert!(!store.gcra_now(&key, &one).expect("in process")?.allowed);
/// clock.advance(Duration::from_secs(1));
/// assert!(store.gcra_now(&key, &one).expect("in process")?.allowed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemoryRateLimitStore {
    config: MemoryRateLimitConfig,
    gcra: gcra::GcraTable,
    bans: ban::BanTable,
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
    /// A store with the default [configuration](MemoryRateLimitConfig::new).
    pub fn new() -> Self {
        Self::with_clock(LimiterClock::monotonic())
    }

    /// A store with the default configuration reading `clock` (tests:
    /// `LimiterClock::manual(&manual_clock)`).
    pub fn with_clock(clock: LimiterClock) -> Self {
        Self::build(MemoryRateLimitConfig::new().clock(clock))
    }

    /// A store with the given configuration, or the [`SettingError`] of its first setting
    /// out of range.
    pub fn with_config(config: MemoryRateLimitConfig) -> Result<Self, SettingError> {
        config.check()?;
        Ok(Self::build(config))
    }

    /// For a checked configuration (the defaults are).
    fn build(config: MemoryRateLimitConfig) -> Self {
        let next_prune = config
            .clock
            .now_nanos()
            .saturating_add(nanos(config.prune_interval));
        MemoryRateLimitStore {
            gcra: gcra::GcraTable::new(config.capacity, config.max_quotas),
            bans: ban::BanTable::new(config.ban_capacity),
            config,
            next_prune: AtomicU64::new(next_prune),
        }
    }

    /// GCRA keys currently tracked (at most [`capacity`](MemoryRateLimitConfig::capacity)),
    /// counted in the limiters' tables.
    pub fn tracked_keys(&self) -> usize {
        self.gcra.tracked_keys()
    }

    /// Failure-ban keys currently tracked.
    pub fn ban_keys(&self) -> usize {
        self.bans.len()
    }

    /// What the store holds, as bytes: each tracked GCRA key's keyed hash (the keys
    /// themselves are not kept) and each ban key (for conformance probes).
    #[cfg(feature = "conformance")]
    pub(crate) fn stored_bytes(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self
            .gcra
            .tracked_hashes()
            .into_iter()
            .map(|h| h.to_be_bytes().to_vec())
            .collect();
        out.extend(self.bans.keys());
        out
    }

    /// Drops all stale state now (what the periodic pruning does).
    pub fn prune(&self) {
        self.prune_at(self.config.clock.now_nanos());
    }

    fn prune_at(&self, now: u64) {
        self.gcra.prune(now);
        self.bans.prune(now);
        self.next_prune.store(
            now.saturating_add(nanos(self.config.prune_interval)),
            Ordering::Relaxed,
        );
    }

    /// The store's time, after the periodic prune if it is due: one caller wins the race,
    /// the others go on.
    #[inline]
    fn now(&self) -> u64 {
        let now = self.config.clock.now_nanos();
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
        now
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
        self.gcra.has_room()
    }

    #[inline]
    fn gcra_sync(&self, key: &LimitKey<'_>, charge: &GcraCharge) -> Result<Decision, StoreError> {
        let now = self.now();
        match self.gcra.check(key, charge, now)? {
            Some(decision) => Ok(decision),
            None => self.gcra_when_full(key, charge, now),
        }
    }

    /// A new key met a full store, and nothing was stored: try once more after a prune.
    #[cold]
    #[inline(never)]
    fn gcra_when_full(
        &self,
        key: &LimitKey<'_>,
        charge: &GcraCharge,
        now: u64,
    ) -> Result<Decision, StoreError> {
        if self.forced_prune(now)
            && let Some(decision) = self.gcra.check(key, charge, now)?
        {
            return Ok(decision);
        }
        Err(StoreError::CapacityExceeded {
            capacity: self.gcra.capacity(),
        })
    }

    fn ban_status_sync(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        self.bans.status(key, quota, self.now())
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimitStore {
    async fn gcra(&self, key: &LimitKey<'_>, charge: &GcraCharge) -> Result<Decision, StoreError> {
        self.gcra_sync(key, charge)
    }

    async fn ban_status(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        self.ban_status_sync(key, quota)
    }

    async fn record_failure(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        let sweep_every = nanos(self.config.prune_interval) / 10;
        self.bans.record(key, quota, self.now(), sweep_every)
    }

    async fn lift_ban(&self, key: &LimitKey<'_>) -> Result<(), StoreError> {
        self.bans.lift(key)
    }

    fn gcra_now(
        &self,
        key: &LimitKey<'_>,
        charge: &GcraCharge,
    ) -> Option<Result<Decision, StoreError>> {
        Some(self.gcra_sync(key, charge))
    }

    fn ban_status_now(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Option<Result<Decision, StoreError>> {
        Some(self.ban_status_sync(key, quota))
    }

    #[inline]
    fn holds_no_ban(&self) -> bool {
        self.bans.holds_no_ban()
    }
}
