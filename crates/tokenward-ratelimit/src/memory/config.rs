//! [`MemoryRateLimitConfig`]: the in-memory store's capacities, pruning and clock.

use std::time::Duration;

use tokenward_core::SettingError;

use super::LimiterClock;

/// Configuration of a [`MemoryRateLimitStore`](crate::MemoryRateLimitStore).
///
/// Out-of-range settings are refused when the store is built
/// ([`MemoryRateLimitStore::with_config`](crate::MemoryRateLimitStore::with_config) returns
/// a [`SettingError`] naming the setting), never clamped.
///
/// ```
/// use std::time::Duration;
/// use tokenward_ratelimit::{MemoryRateLimitConfig, MemoryRateLimitStore};
///
/// let config = MemoryRateLimitConfig::new()
///     .capacity(100_000)
///     .prune_interval(Duration::from_secs(1));
/// let store = MemoryRateLimitStore::with_config(config)?;
/// assert_eq!(store.tracked_keys(), 0);
/// let too_many = MemoryRateLimitConfig::new().max_quotas(MemoryRateLimitConfig::MAX_QUOTAS + 1);
/// assert!(MemoryRateLimitStore::with_config(too_many).is_err());
/// # Ok::<(), tokenward_core::SettingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRateLimitConfig {
    pub(super) capacity: usize,
    pub(super) ban_capacity: usize,
    pub(super) max_quotas: usize,
    pub(super) prune_interval: Duration,
    pub(super) clock: LimiterClock,
}

impl MemoryRateLimitConfig {
    /// The default [`capacity`](Self::capacity) and [`ban_capacity`](Self::ban_capacity): one
    /// million keys each.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;
    /// The default [`max_quotas`](Self::max_quotas).
    pub const DEFAULT_MAX_QUOTAS: usize = 1024;
    /// The largest accepted [`max_quotas`](Self::max_quotas).
    pub const MAX_QUOTAS: usize = 1 << 16;
    /// The default [`prune_interval`](Self::prune_interval): 10 s.
    pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(10);

    /// The defaults: a million GCRA keys and a million ban keys, 1024 quotas, pruning every
    /// 10 s, the monotonic clock.
    pub fn new() -> Self {
        MemoryRateLimitConfig {
            capacity: Self::DEFAULT_CAPACITY,
            ban_capacity: Self::DEFAULT_CAPACITY,
            max_quotas: Self::DEFAULT_MAX_QUOTAS,
            prune_interval: Self::DEFAULT_PRUNE_INTERVAL,
            clock: LimiterClock::monotonic(),
        }
    }

    /// The most GCRA keys tracked at once, over all quotas (at least 1).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The most failure-ban keys tracked at once (at least 1).
    #[must_use]
    pub fn ban_capacity(mut self, ban_capacity: usize) -> Self {
        self.ban_capacity = ban_capacity;
        self
    }

    /// The most distinct [`GcraQuota`](crate::GcraQuota)s, `1..=`[`MAX_QUOTAS`](Self::MAX_QUOTAS)
    /// (one governor state map each). The store's table of quotas takes 32 bytes per allowed
    /// quota.
    #[must_use]
    pub fn max_quotas(mut self, max_quotas: usize) -> Self {
        self.max_quotas = max_quotas;
        self
    }

    /// How often expired state is pruned, at the latest (more than zero): the first call after
    /// the interval has passed does it. Also the least time between two prunes forced by a
    /// full store, divided by ten.
    #[must_use]
    pub fn prune_interval(mut self, prune_interval: Duration) -> Self {
        self.prune_interval = prune_interval;
        self
    }

    /// The clock (default: [`LimiterClock::monotonic`]; in tests
    /// [`LimiterClock::manual`]).
    #[must_use]
    pub fn clock(mut self, clock: LimiterClock) -> Self {
        self.clock = clock;
        self
    }

    /// Every setting in its range, or the first one that is not.
    pub(super) fn check(&self) -> Result<(), SettingError> {
        SettingError::check_range("capacity", self.capacity, 1..=usize::MAX)?;
        SettingError::check_range("ban_capacity", self.ban_capacity, 1..=usize::MAX)?;
        SettingError::check_range("max_quotas", self.max_quotas, 1..=Self::MAX_QUOTAS)?;
        if self.prune_interval.is_zero() {
            return Err(SettingError::new("prune_interval", "must be more than 0"));
        }
        Ok(())
    }
}

impl Default for MemoryRateLimitConfig {
    fn default() -> Self {
        Self::new()
    }
}
