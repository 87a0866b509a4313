//! The rate-limit store trait and the types its methods exchange.

use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::StoreError;

/// A GCRA quota: `limit` requests per `period`, admitted at most `burst` at once.
///
/// GCRA (the generic cell rate algorithm) spaces requests `period / limit` apart
/// (the emission interval) and tolerates `burst` requests arriving together.
/// [`GcraQuota::per_minute(300)`](GcraQuota::per_minute) is 300 requests per minute with a
/// burst of 300; [`with_burst`](GcraQuota::with_burst) narrows the burst.
///
/// Over any window of length `w`, GCRA admits at most `burst + limit * w / period` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GcraQuota {
    /// Requests per period (> 0).
    pub limit: u32,
    /// The period (> 0).
    pub period: Duration,
    /// Requests that may arrive at once (1..=limit is typical; > 0).
    pub burst: u32,
}

/// fail2ban-style ban: `maxretry` failures within `findtime` ban the key for `bantime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BanQuota {
    /// Failures within `findtime` that trigger a ban (> 0).
    pub maxretry: u32,
    /// The counting window (> 0).
    pub findtime: Duration,
    /// How long a ban lasts once triggered (> 0); may outlast `findtime`.
    pub bantime: Duration,
}

/// The outcome of one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The quota's limit (for `RateLimit-Policy` / `RateLimit` headers).
    pub limit: u32,
    /// Requests still admissible right now after this one (0 when denied).
    pub remaining: u32,
    /// Time until the quota is fully replenished (or, for a ban, until it ends).
    pub reset: Duration,
    /// When denied: how long until a request would be admitted.
    pub retry_after: Option<Duration>,
}

/// The longest key a store accepts, in bytes ([`validate_key`]).
pub const MAX_KEY_LEN: usize = 1024;

impl GcraQuota {
    /// `limit` requests per `period`, with a burst of `limit`.
    pub const fn new(limit: u32, period: Duration) -> Self {
        GcraQuota {
            limit,
            period,
            burst: limit,
        }
    }

    /// `limit` requests per second, burst `limit`.
    pub const fn per_second(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` requests per minute, burst `limit`.
    pub const fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` requests per hour, burst `limit`.
    pub const fn per_hour(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }

    /// The same rate with another burst.
    pub const fn with_burst(self, burst: u32) -> Self {
        GcraQuota { burst, ..self }
    }

    /// The emission interval `period / limit`: the time one request's cell takes to
    /// replenish (at least 1 ns). `Duration::ZERO` only for an invalid quota (`limit == 0`).
    pub fn emission_interval(&self) -> Duration {
        match self.period.checked_div(self.limit) {
            Some(t) => t.max(Duration::from_nanos(1)),
            None => Duration::ZERO,
        }
    }

    /// Checks `limit > 0`, `period > 0`, `burst > 0`: an
    /// [`InvalidInput`](StoreError::InvalidInput) error otherwise. Every backend calls this.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.limit == 0 || self.period.is_zero() || self.burst == 0 {
            return Err(StoreError::invalid_input(format!(
                "invalid GCRA quota {self:?}: limit, period and burst must be > 0"
            )));
        }
        Ok(())
    }

    /// Checks the quota ([`validate`](Self::validate)) and that `1 <= cost <= burst` (a cost
    /// above the burst could never be admitted): an [`InvalidInput`](StoreError::InvalidInput)
    /// error otherwise. Every backend calls this before [`RateLimitStore::gcra`] does anything.
    pub fn validate_cost(&self, cost: u32) -> Result<(), StoreError> {
        self.validate()?;
        if cost == 0 || cost > self.burst {
            return Err(StoreError::invalid_input(format!(
                "cost {cost} outside 1..={} (the quota's burst)",
                self.burst
            )));
        }
        Ok(())
    }
}

impl BanQuota {
    /// `maxretry` failures within `findtime` ban for `bantime`.
    pub const fn new(maxretry: u32, findtime: Duration, bantime: Duration) -> Self {
        BanQuota {
            maxretry,
            findtime,
            bantime,
        }
    }

    /// fail2ban's and tokenward's default: 5 failures within 60 s ban for 300 s.
    pub const fn fail2ban_default() -> Self {
        Self::new(5, Duration::from_secs(60), Duration::from_secs(300))
    }

    /// Checks `maxretry > 0`, `findtime > 0`, `bantime > 0`: an
    /// [`InvalidInput`](StoreError::InvalidInput) error otherwise. Every backend calls this.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.maxretry == 0 || self.findtime.is_zero() || self.bantime.is_zero() {
            return Err(StoreError::invalid_input(format!(
                "invalid ban quota {self:?}: maxretry, findtime and bantime must be > 0"
            )));
        }
        Ok(())
    }
}

impl Default for BanQuota {
    /// [`BanQuota::fail2ban_default`].
    fn default() -> Self {
        Self::fail2ban_default()
    }
}

/// Checks a store key: non-empty and at most [`MAX_KEY_LEN`] bytes; an
/// [`InvalidInput`](StoreError::InvalidInput) error otherwise. Every backend calls this.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError::invalid_input(format!(
            "rate-limit key must be 1..={MAX_KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

/// Where rate-limit state lives. Keys are opaque strings built by the policies (they already
/// include the policy name); a store must keep different keys independent.
///
/// Build [`Decision`]s with [`Decision::allowed`] and [`Decision::denied`] (the type is
/// `#[non_exhaustive]`).
///
/// # Contract
/// - `gcra` is atomic per key: concurrent callers (tasks, threads, processes for shared
///   stores) never admit more than the quota allows.
/// - All state expires on its own (TTL / pruning); memory stays bounded under floods of
///   distinct keys (documented per backend).
/// - Time never runs backwards for a key's decision (in-memory: a monotonic clock; Redis: the
///   server's `TIME`).
/// - Bounded waiting; typed `StoreError`s; never panic.
/// - Input is checked first with [`validate_key`], [`GcraQuota::validate_cost`] and
///   [`BanQuota::validate`]; invalid input is an [`InvalidInput`](StoreError::InvalidInput)
///   error and changes no state.
///
/// # Decisions
/// - `gcra`: `limit` is `quota.limit`; allowed: `remaining` is the cells still available
///   at once after this request, `reset` the time until all `burst` cells are back (to
///   within one emission interval, rounded up);
///   denied: nothing is consumed, `remaining` is 0, `retry_after` is when `cost` cells will
///   be available (> 0), `reset` when all will be.
/// - Ban decisions: `limit` is `quota.maxretry`. Not banned: allowed, `remaining` is the
///   failures still tolerated before a ban (`maxretry` minus those within `findtime`),
///   `reset` the time until the oldest counted failure leaves the window (zero if none),
///   `retry_after` `None`. Banned: denied, `remaining` 0, `reset` = `retry_after` = the time
///   until the ban ends.
/// - A failure at time `f` counts while `now < f + findtime` (a sliding window: keep the
///   last `maxretry` failure times, not a counter per fixed window); a ban from `b` holds while
///   `now < b + bantime`, however `findtime` compares. Failures recorded during a ban do not
///   extend it, and the counting starts afresh once it ends.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Takes `cost` (≥ 1) cells for `key` under `quota`.
    async fn gcra(&self, key: &str, quota: &GcraQuota, cost: u32) -> Result<Decision, StoreError>;
    /// Whether `key` is banned now under `quota` (a denied decision carries the ban's end).
    async fn ban_status(&self, key: &str, quota: &BanQuota) -> Result<Decision, StoreError>;
    /// Records one authentication failure for `key`; the returned decision is denied if the
    /// key is (now) banned.
    async fn record_failure(&self, key: &str, quota: &BanQuota) -> Result<Decision, StoreError>;
    /// Lifts a ban and forgets the failures counted for `key` (operator action).
    async fn lift_ban(&self, key: &str) -> Result<(), StoreError>;

    /// The synchronous fast path of [`gcra`](Self::gcra), for stores that answer without I/O
    /// (in process): `Some(answer)` is the call itself — the cells are taken — and `None` (the
    /// default, and what network stores return) means "call `gcra`".
    ///
    /// It exists because an `async_trait` call allocates its future: for an in-memory check
    /// that costs about as much as the check. [`SubjectLimit`](crate::SubjectLimit) and the
    /// Guard try it first.
    ///
    /// Contract: a store that returns `Some` gives exactly the answer `gcra` would have given
    /// at that moment, with the same accounting (both paths share one state).
    fn gcra_now(
        &self,
        key: &str,
        quota: &GcraQuota,
        cost: u32,
    ) -> Option<Result<Decision, StoreError>> {
        let _ = (key, quota, cost);
        None
    }

    /// The synchronous fast path of [`ban_status`](Self::ban_status), with the contract of
    /// [`gcra_now`](Self::gcra_now).
    fn ban_status_now(&self, key: &str, quota: &BanQuota) -> Option<Result<Decision, StoreError>> {
        let _ = (key, quota);
        None
    }
}
