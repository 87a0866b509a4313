//! The in-memory store runs the whole conformance suite, on a manual clock it shares with the
//! engine (time jumps, nothing sleeps).

use std::sync::Arc;

use tokenward_core::{ManualClock, UnixTime};
use tokenward_refresh::MemoryRefreshStore;
use tokenward_refresh::conformance::RefreshEnv;

async fn make_env() -> RefreshEnv {
    let clock = ManualClock::new(UnixTime::from_millis(1_700_000_000_123));
    let store = Arc::new(MemoryRefreshStore::new());
    RefreshEnv::new(
        store.clone(),
        Arc::new(clock.clone()),
        Arc::new(clock),
        store,
    )
}

tokenward_refresh::refresh_conformance_tests!(make_env);

/// The same suite on the system clock (the cases sleep, as they will on Redis).
mod real_clock {
    use super::*;
    use tokenward_core::SystemClock;
    use tokenward_refresh::conformance::RealClock;

    async fn make_env() -> RefreshEnv {
        let store = Arc::new(MemoryRefreshStore::new());
        RefreshEnv::new(
            store.clone(),
            Arc::new(RealClock::new()),
            Arc::new(SystemClock),
            store,
        )
    }

    tokenward_refresh::refresh_conformance_tests!(make_env);
}

#[test]
fn every_case_is_listed() {
    assert_eq!(tokenward_refresh::conformance::CASES.len(), 16);
    assert!(
        tokenward_refresh::conformance::CASES.contains(&"concurrent_rotations_share_one_successor")
    );
    assert!(tokenward_refresh::conformance::CASES.contains(&"one_store_call_per_rotation"));
}
