use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A point in time, as the duration elapsed since the Unix epoch (1970-01-01T00:00:00Z).
///
/// JWT `NumericDate`s are whole seconds ([`UnixTime::from_secs`], [`UnixTime::as_secs`]);
/// the full precision is kept for rate limiting. Arithmetic saturates instead of
/// overflowing, so attacker-chosen values (`"exp": 18446744073709551615`) cannot panic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(Duration);

impl UnixTime {
    /// The Unix epoch itself.
    pub const EPOCH: UnixTime = UnixTime(Duration::ZERO);

    /// A time `secs` whole seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        UnixTime(Duration::from_secs(secs))
    }

    /// A time `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        UnixTime(Duration::from_millis(millis))
    }

    /// A time the given duration after the epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        UnixTime(since_epoch)
    }

    /// Whole seconds since the epoch (rounded down), as used by JWT `NumericDate`s.
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Milliseconds since the epoch (rounded down, saturating at `u64::MAX`).
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    /// Milliseconds since the epoch, rounded **up** (saturating at `u64::MAX`): what a store
    /// keeping millisecond precision writes for an expiry or a cutoff, so that it never
    /// revokes less than it was asked to.
    pub fn as_millis_ceil(self) -> u64 {
        let millis = self.as_millis();
        if self.0.subsec_nanos().is_multiple_of(1_000_000) {
            millis
        } else {
            millis.saturating_add(1)
        }
    }

    /// The duration since the epoch.
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// `self + d`, saturating at the largest representable time.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        UnixTime(self.0.saturating_add(d))
    }

    /// `self - d`, saturating at the epoch.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        UnixTime(self.0.saturating_sub(d))
    }

    /// How long after `earlier` this time is; zero if it is not later.
    pub fn saturating_duration_since(self, earlier: UnixTime) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<SystemTime> for UnixTime {
    /// Times before the epoch map to the epoch.
    fn from(t: SystemTime) -> Self {
        UnixTime(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
        )
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UnixTime({}.{:03})",
            self.0.as_secs(),
            self.0.subsec_millis()
        )
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs())
    }
}

/// Where "now" comes from.
///
/// Everything in tokenward that depends on time takes a clock instead of calling
/// `SystemTime::now()`, so tests advance a [`ManualClock`] instead of sleeping.
/// Implementations must be cheap (called on every request) and thread-safe.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> UnixTime;
}

/// A clock shared between components (`Arc<dyn Clock>`).
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::from(SystemTime::now())
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use tokenward_core::{Clock, ManualClock, UnixTime};
///
/// let clock = ManualClock::new(UnixTime::from_secs(100));
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(1_500));
/// assert_eq!(shared.now(), UnixTime::from_millis(101_500));
/// clock.set(UnixTime::from_secs(50)); // a manual clock may go backwards when a test says so
/// assert_eq!(shared.now().as_secs(), 50);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Nanoseconds since the epoch (u64 nanoseconds reach the year 2554).
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: UnixTime) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(to_nanos(start.as_duration()))),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let add = to_nanos(d);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(add))
            });
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: UnixTime) {
        self.nanos
            .store(to_nanos(t.as_duration()), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(Duration::from_nanos(self.nanos.load(Ordering::SeqCst)))
    }
}

fn to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let max = UnixTime::from_secs(u64::MAX);
        assert_eq!(
            max.saturating_add(Duration::from_secs(10)).as_secs(),
            u64::MAX
        );
        assert_eq!(
            UnixTime::EPOCH.saturating_sub(Duration::from_secs(1)),
            UnixTime::EPOCH
        );
        assert_eq!(
            UnixTime::from_secs(5).saturating_duration_since(UnixTime::from_secs(9)),
            Duration::ZERO
        );
    }

    #[test]
    fn millis_round_down_or_up() {
        let t = UnixTime::from_duration(Duration::new(5, 1_000_001));
        assert_eq!(t.as_millis(), 5_001);
        assert_eq!(t.as_millis_ceil(), 5_002);
        assert_eq!(UnixTime::from_millis(5_001).as_millis_ceil(), 5_001);
        assert_eq!(UnixTime::from_secs(u64::MAX).as_millis_ceil(), u64::MAX);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_secs() > 1_577_836_800);
    }

    #[test]
    fn pre_epoch_system_time_maps_to_epoch() {
        let t = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(UnixTime::from(t), UnixTime::EPOCH);
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new(UnixTime::from_secs(10));
        let b = a.clone();
        a.advance(Duration::from_secs(5));
        assert_eq!(b.now().as_secs(), 15);
        let shared: SharedClock = Arc::new(b);
        a.set(UnixTime::from_millis(1));
        assert_eq!(shared.now().as_millis(), 1);
    }
}
