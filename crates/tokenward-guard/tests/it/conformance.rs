//! The `CombinedCheck` conformance suite on the in-memory combination: `SequentialCheck`
//! over in-memory stores, against in-memory stores of a second namespace. (The Redis run is
//! in tokenward-redis's `tests/it/combined.rs`.)

use std::sync::Arc;

use tokenward_core::{ManualClock, UnixTime};
use tokenward_guard::SequentialCheck;
use tokenward_guard::conformance::{CombinedEnv, SeparateStores};
use tokenward_ratelimit::{LimiterClock, MemoryRateLimitConfig, MemoryRateLimitStore};
use tokenward_revocation::MemoryRevocationStore;

fn memory(clock: &ManualClock) -> SeparateStores {
    let limits = MemoryRateLimitConfig::new().clock(LimiterClock::manual(clock));
    SeparateStores {
        revocation: Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone()))),
        ratelimit: Arc::new(MemoryRateLimitStore::with_config(limits).unwrap()),
    }
}

async fn make_env() -> CombinedEnv {
    let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
    let backend = memory(&clock);
    let combined = SequentialCheck::new(backend.revocation.clone(), backend.ratelimit.clone());
    CombinedEnv::new(Arc::new(combined), backend, memory(&clock), Arc::new(clock))
}

tokenward_guard::combined_conformance_tests!(make_env);
