//! The in-memory store runs the whole conformance suite, on a manual clock (instant) and, for
//! a few cases, on the real monotonic clock.

use std::sync::Arc;

use tokenward_ratelimit::conformance::{RealClock, TestClock};
use tokenward_ratelimit::{LimiterClock, ManualLimiterClock, MemoryRateLimitStore, RateLimitStore};

async fn make_env() -> (Arc<dyn RateLimitStore>, Arc<dyn TestClock>) {
    let clock = ManualLimiterClock::new();
    let store = MemoryRateLimitStore::with_clock(LimiterClock::manual(&clock));
    (Arc::new(store), Arc::new(clock))
}

tokenward_ratelimit::ratelimit_conformance_tests!(make_env);

/// The same store on its production clock, with real sleeps: the cases must not depend on
/// an exact clock.
mod real_clock {
    use super::*;

    async fn make_env() -> (Arc<dyn RateLimitStore>, Arc<dyn TestClock>) {
        let store = MemoryRateLimitStore::with_clock(LimiterClock::monotonic());
        (Arc::new(store), Arc::new(RealClock::new()))
    }

    tokenward_ratelimit::ratelimit_conformance_tests!(make_env);
}

#[test]
fn cases_are_listed() {
    assert_eq!(tokenward_ratelimit::conformance::CASES.len(), 16);
}
