//! The in-memory store's clock: monotonic in production, a core `ManualClock` in tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, QuantaClock, QuantaInstant, Reference as _};
use tokenward_core::{Clock as _, ManualClock, UnixTime};

use super::nanos;

/// The clock of a [`MemoryRateLimitStore`](crate::MemoryRateLimitStore): the time since the
/// clock was made, which **never runs backwards** (wall-clock changes, NTP steps and leap
/// seconds do not affect it).
///
/// [`LimiterClock::monotonic`] (the default) reads `governor`'s quanta clock (TSC or
/// `CLOCK_MONOTONIC`); [`LimiterClock::manual`] reads a [`ManualClock`] — the clock every
/// tokenward test and conformance suite drives — so a test moves the store's time instantly.
/// A `ManualClock` set back does not move a `LimiterClock` back: it stands still until the
/// manual clock passes the latest time it has read.
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
    Manual(Arc<Manual>),
}

struct Manual {
    clock: ManualClock,
    start: UnixTime,
    /// The latest elapsed time read, in nanoseconds: a floor for the next reading.
    latest: AtomicU64,
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

    /// A clock that reads `clock` (share it with the test that advances it), starting at its
    /// current time.
    pub fn manual(clock: &ManualClock) -> Self {
        LimiterClock {
            inner: ClockInner::Manual(Arc::new(Manual {
                start: clock.now(),
                clock: clock.clone(),
                latest: AtomicU64::new(0),
            })),
        }
    }

    /// Time since the clock started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    /// Nanoseconds since the clock started, never less than a previous reading.
    #[inline]
    pub(super) fn now_nanos(&self) -> u64 {
        match &self.inner {
            ClockInner::Monotonic { clock, start } => clock.now().duration_since(*start).as_u64(),
            ClockInner::Manual(m) => {
                let now = nanos(m.clock.now().saturating_duration_since(m.start));
                let latest = m.latest.fetch_max(now, Ordering::AcqRel);
                latest.max(now)
            }
        }
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
            ClockInner::Manual(m) => f
                .debug_tuple("LimiterClock::Manual")
                .field(&m.clock)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_drives_it_and_never_moves_it_back() {
        let manual = ManualClock::new(UnixTime::from_secs(1_700_000_000));
        let clock = LimiterClock::manual(&manual);
        assert_eq!(clock.elapsed(), Duration::ZERO);
        manual.advance(Duration::from_millis(1_500));
        assert_eq!(clock.elapsed(), Duration::from_millis(1_500));
        // Set back (before the clock's start, even): time stands still...
        manual.set(UnixTime::from_secs(1_600_000_000));
        assert_eq!(clock.elapsed(), Duration::from_millis(1_500));
        manual.set(UnixTime::from_secs(1_700_000_001));
        assert_eq!(clock.elapsed(), Duration::from_millis(1_500));
        // ...until the manual clock passes the latest reading.
        manual.set(UnixTime::from_secs(1_700_000_002));
        assert_eq!(clock.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let clock = LimiterClock::monotonic();
        let a = clock.elapsed();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.elapsed() > a);
    }
}
