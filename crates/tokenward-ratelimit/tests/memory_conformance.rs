//! The in-memory store runs the whole conformance suite, on a core `ManualClock` it shares
//! with the suite (time jumps, nothing sleeps) and, once more, on its production monotonic
//! clock with real sleeps (the cases must not depend on an exact clock).
//!
//! Both prune every second instead of every ten: the suite's `expired_state_leaves_the_store`
//! counts what the store holds a second after everything expired (the default schedule is
//! covered by `tests/memory.rs`).
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::conformance::{RealClock, TestClock};
use tokenward_core::{ManualClock, UnixTime};
use tokenward_ratelimit::conformance::RateLimitEnv;
use tokenward_ratelimit::{LimiterClock, MemoryRateLimitConfig, MemoryRateLimitStore};

fn env(clock: LimiterClock, test_clock: Arc<dyn TestClock>) -> RateLimitEnv {
    let config = MemoryRateLimitConfig::new()
        .clock(clock)
        .prune_interval(Duration::from_secs(1));
    let store = Arc::new(MemoryRateLimitStore::with_config(config).expect("a valid config"));
    RateLimitEnv::new(store.clone(), test_clock, store)
}

async fn make_env() -> RateLimitEnv {
    // Off the whole second: nothing in the cases may depend on a round start.
    let clock = ManualClock::new(UnixTime::from_millis(1_700_000_000_123));
    env(LimiterClock::manual(&clock), Arc::new(clock))
}

tokenward_ratelimit::ratelimit_conformance_tests!(make_env);

/// The same store on its production clock, with real sleeps.
mod real_clock {
    use super::*;

    async fn make_env() -> RateLimitEnv {
        env(LimiterClock::monotonic(), Arc::new(RealClock::new()))
    }

    tokenward_ratelimit::ratelimit_conformance_tests!(make_env);
}
