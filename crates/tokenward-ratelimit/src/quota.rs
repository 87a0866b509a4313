//! Quotas and charges: what a [`RateLimitStore`](crate::RateLimitStore) is asked to enforce,
//! checked where they are made, so a store only ever sees valid ones.

use std::num::NonZeroU32;
use std::time::Duration;

use tokenward_core::SettingError;

/// The longest span a quota may have — period, findtime, bantime, and the time a whole burst
/// takes to come back (`burst × T`): 2⁵⁰ µs, about 35.7 years.
///
/// Longer spans are refused when the quota is made ([`SettingError`]), never clamped. The
/// bound lets every backend compute its times exactly: the Redis scripts add at most two such
/// spans to the server's `TIME` in microseconds and stay within the integers a Lua double
/// holds exactly (2⁵³).
pub const MAX_SPAN: Duration = Duration::from_micros(1 << 50);

/// A GCRA quota: `limit` requests per `period`, at most `burst` at once.
///
/// GCRA (the generic cell rate algorithm) spaces requests by the emission interval
/// `T = period / limit` ([`emission_interval`](Self::emission_interval)) and lets `burst`
/// requests arrive together; [the trait's contract](crate::RateLimitStore#gcra) states the
/// admission rule and every number of a decision exactly. Over any window of length `w`, it
/// admits at most `burst + ⌈w / T⌉` requests.
///
/// Every field is checked when the quota is made: `limit` and `burst` are at least 1 (their
/// types say so), `period` is more than zero and at most [`MAX_SPAN`], and so is `burst × T`.
/// A store never sees an invalid quota.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use tokenward_ratelimit::GcraQuota;
///
/// const PER_SUBJECT: GcraQuota = GcraQuota::per_minute(NonZeroU32::new(300).unwrap());
/// assert_eq!(PER_SUBJECT.emission_interval(), Duration::from_millis(200));
///
/// let narrow = PER_SUBJECT.with_burst(NonZeroU32::new(10).unwrap())?;
/// assert_eq!((narrow.limit(), narrow.burst()), (300, 10));
/// // Out-of-range settings are errors, never clamped.
/// let one = NonZeroU32::new(1).unwrap();
/// assert!(GcraQuota::new(one, Duration::ZERO).is_err());
/// assert!(GcraQuota::per_hour(one).with_burst(NonZeroU32::MAX).is_err()); // 490 000 years
/// # Ok::<(), tokenward_core::SettingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GcraQuota {
    limit: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
}

impl GcraQuota {
    /// `limit` requests per `period`, with a burst of `limit`. `period` must be more than
    /// zero and at most [`MAX_SPAN`]: a [`SettingError`] naming `period` otherwise.
    pub fn new(limit: NonZeroU32, period: Duration) -> Result<Self, SettingError> {
        check_span("period", period)?;
        GcraQuota {
            limit,
            period,
            burst: limit,
        }
        .checked()
    }

    /// `limit` requests per second, burst `limit`.
    pub const fn per_second(limit: NonZeroU32) -> Self {
        Self::fixed(limit, 1)
    }

    /// `limit` requests per minute, burst `limit`.
    pub const fn per_minute(limit: NonZeroU32) -> Self {
        Self::fixed(limit, 60)
    }

    /// `limit` requests per hour, burst `limit`.
    pub const fn per_hour(limit: NonZeroU32) -> Self {
        Self::fixed(limit, 3600)
    }

    /// A period of at most an hour: every span is far below [`MAX_SPAN`] (`limit × T` is at
    /// most the period plus `limit` nanoseconds).
    const fn fixed(limit: NonZeroU32, secs: u64) -> Self {
        GcraQuota {
            limit,
            period: Duration::from_secs(secs),
            burst: limit,
        }
    }

    /// The same rate with another burst. `burst × T` must stay within [`MAX_SPAN`]: a
    /// [`SettingError`] naming `burst` otherwise.
    pub fn with_burst(self, burst: NonZeroU32) -> Result<Self, SettingError> {
        GcraQuota { burst, ..self }.checked()
    }

    fn checked(self) -> Result<Self, SettingError> {
        let refill = self.emission_interval().as_nanos() * u128::from(self.burst.get());
        if refill > MAX_SPAN.as_nanos() {
            return Err(SettingError::new(
                "burst",
                format!(
                    "a burst of {} at one request per {:?} takes longer than {MAX_SPAN:?} to \
                     come back",
                    self.burst,
                    self.emission_interval()
                ),
            ));
        }
        Ok(self)
    }

    /// Requests per period (at least 1).
    pub const fn limit(&self) -> u32 {
        self.limit.get()
    }

    /// The period (more than zero, at most [`MAX_SPAN`]).
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// Requests admitted at once (at least 1).
    pub const fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The emission interval `T = period / limit`, rounded **up** to the nanosecond (at least
    /// 1 ns): the time one request's cell takes to come back. Rounding up means a quota never
    /// admits more than `limit` per `period`; a store keeping coarser time rounds it up to its
    /// own unit ([contract](crate::RateLimitStore#gcra)).
    pub fn emission_interval(&self) -> Duration {
        let nanos = self
            .period
            .as_nanos()
            .div_ceil(u128::from(self.limit.get()));
        // At most the period, which is at most MAX_SPAN (< 2^64 ns).
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// A charge of `cost` cells of this quota, for a request that costs more than one (a
    /// per-route cost). `cost` must be `1..=burst` — a cost above the burst could never be
    /// admitted: a [`SettingError`] naming `cost` otherwise.
    pub fn charge(self, cost: u32) -> Result<GcraCharge, SettingError> {
        match NonZeroU32::new(cost) {
            Some(cost) if cost <= self.burst => Ok(GcraCharge { quota: self, cost }),
            _ => Err(SettingError::new(
                "cost",
                format!("must be within 1..={} (the burst), got {cost}", self.burst),
            )),
        }
    }
}

/// What one GCRA call asks of a store: `cost` cells of a [`GcraQuota`], with
/// `1 <= cost <= burst` guaranteed by construction.
///
/// Made by [`GcraCharge::single`] (one cell, what an ordinary request costs; also
/// `GcraCharge::from(quota)`) or by the checked [`GcraQuota::charge`].
///
/// ```
/// use std::num::NonZeroU32;
/// use tokenward_ratelimit::{GcraCharge, GcraQuota};
///
/// let quota = GcraQuota::per_minute(NonZeroU32::new(10).unwrap());
/// assert_eq!(GcraCharge::single(quota).cost(), 1);
/// assert_eq!(quota.charge(4)?.cost(), 4);
/// assert!(quota.charge(0).is_err());
/// assert!(quota.charge(11).is_err()); // more than the burst: never admissible
/// # Ok::<(), tokenward_core::SettingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GcraCharge {
    quota: GcraQuota,
    cost: NonZeroU32,
}

impl GcraCharge {
    /// One cell of `quota`.
    pub const fn single(quota: GcraQuota) -> Self {
        GcraCharge {
            quota,
            cost: NonZeroU32::MIN,
        }
    }

    /// The quota.
    pub const fn quota(&self) -> &GcraQuota {
        &self.quota
    }

    /// The cells taken (`1..=burst`).
    pub const fn cost(&self) -> u32 {
        self.cost.get()
    }
}

impl From<GcraQuota> for GcraCharge {
    /// [`GcraCharge::single`].
    fn from(quota: GcraQuota) -> Self {
        GcraCharge::single(quota)
    }
}

/// fail2ban-style ban: `maxretry` failures within `findtime` ban the key for `bantime`.
///
/// Checked when made: `maxretry` is at least 1 (its type says so), `findtime` and `bantime`
/// are more than zero and at most [`MAX_SPAN`]. A store never sees an invalid quota.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use tokenward_ratelimit::BanQuota;
///
/// let strict = BanQuota::new(
///     NonZeroU32::new(3).unwrap(),
///     Duration::from_secs(600),
///     Duration::from_secs(3600),
/// )?;
/// assert_eq!(strict.maxretry(), 3);
/// assert_eq!(BanQuota::default(), BanQuota::fail2ban_default());
/// # Ok::<(), tokenward_core::SettingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BanQuota {
    maxretry: NonZeroU32,
    findtime: Duration,
    bantime: Duration,
}

impl BanQuota {
    /// `maxretry` failures within `findtime` ban for `bantime`. Both spans must be more than
    /// zero and at most [`MAX_SPAN`]: a [`SettingError`] naming `findtime` or `bantime`
    /// otherwise.
    pub fn new(
        maxretry: NonZeroU32,
        findtime: Duration,
        bantime: Duration,
    ) -> Result<Self, SettingError> {
        check_span("findtime", findtime)?;
        check_span("bantime", bantime)?;
        Ok(BanQuota {
            maxretry,
            findtime,
            bantime,
        })
    }

    /// fail2ban's and tokenward's default: 5 failures within 60 s ban for 300 s.
    pub const fn fail2ban_default() -> Self {
        // Evaluated at compile time: a zero would not build.
        const FIVE: NonZeroU32 = NonZeroU32::new(5).unwrap();
        BanQuota {
            maxretry: FIVE,
            findtime: Duration::from_secs(60),
            bantime: Duration::from_secs(300),
        }
    }

    /// Failures within `findtime` that ban (at least 1).
    pub const fn maxretry(&self) -> u32 {
        self.maxretry.get()
    }

    /// The counting window (more than zero, at most [`MAX_SPAN`]).
    pub const fn findtime(&self) -> Duration {
        self.findtime
    }

    /// How long a ban lasts once triggered (more than zero, at most [`MAX_SPAN`]); may
    /// outlast `findtime`.
    pub const fn bantime(&self) -> Duration {
        self.bantime
    }
}

impl Default for BanQuota {
    /// [`BanQuota::fail2ban_default`].
    fn default() -> Self {
        Self::fail2ban_default()
    }
}

fn check_span(setting: &'static str, span: Duration) -> Result<(), SettingError> {
    if span.is_zero() || span > MAX_SPAN {
        return Err(SettingError::new(
            setting,
            format!("must be more than 0 and at most {MAX_SPAN:?}, got {span:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn spans_out_of_range_name_the_setting() {
        let cases: &[(Result<(), SettingError>, Option<&str>)] = &[
            (
                GcraQuota::new(nz(1), Duration::ZERO).map(drop),
                Some("period"),
            ),
            (
                GcraQuota::new(nz(1), MAX_SPAN + Duration::from_nanos(1)).map(drop),
                Some("period"),
            ),
            (GcraQuota::new(nz(1), MAX_SPAN).map(drop), None),
            (
                GcraQuota::new(nz(7), Duration::from_nanos(1)).map(drop),
                None,
            ),
            (
                GcraQuota::per_hour(nz(1)).with_burst(nz(9_000)).map(drop),
                None,
            ),
            (
                GcraQuota::per_hour(nz(1)).with_burst(nz(400_000)).map(drop),
                Some("burst"),
            ),
            (
                BanQuota::new(nz(1), Duration::ZERO, Duration::from_secs(1)).map(drop),
                Some("findtime"),
            ),
            (
                BanQuota::new(nz(1), Duration::from_secs(1), Duration::MAX).map(drop),
                Some("bantime"),
            ),
            (
                GcraQuota::per_minute(nz(10)).charge(0).map(drop),
                Some("cost"),
            ),
            (
                GcraQuota::per_minute(nz(10)).charge(11).map(drop),
                Some("cost"),
            ),
            (GcraQuota::per_minute(nz(10)).charge(10).map(drop), None),
        ];
        for (i, (got, setting)) in cases.iter().enumerate() {
            assert_eq!(
                got.as_ref().err().map(SettingError::setting),
                *setting,
                "case {i}: {got:?}"
            );
        }
    }

    #[test]
    fn emission_interval_rounds_up() {
        let cases = [
            (GcraQuota::per_minute(nz(300)), Duration::from_millis(200)),
            (
                GcraQuota::per_second(nz(3)),
                Duration::from_nanos(333_333_334),
            ),
            (GcraQuota::per_second(nz(u32::MAX)), Duration::from_nanos(1)),
            (
                GcraQuota::new(nz(2), Duration::from_nanos(3)).unwrap(),
                Duration::from_nanos(2),
            ),
        ];
        for (quota, t) in cases {
            assert_eq!(quota.emission_interval(), t, "{quota:?}");
            // Never more than `limit` per period.
            assert!(t * quota.limit() >= quota.period(), "{quota:?}");
        }
    }

    #[test]
    fn single_charge_and_defaults() {
        let q = GcraQuota::per_second(nz(5));
        assert_eq!(GcraCharge::from(q), GcraCharge::single(q));
        assert_eq!(GcraCharge::single(q).quota(), &q);
        let b = BanQuota::default();
        assert_eq!(
            (b.maxretry(), b.findtime(), b.bantime()),
            (5, Duration::from_secs(60), Duration::from_secs(300))
        );
    }
}
