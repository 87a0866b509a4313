//! The in-memory store runs the whole conformance suite: on a manual clock it shares with the
//! suite (time jumps, nothing sleeps), standing off the millisecond grid; and on the system
//! clock (the cases sleep, as they do on Redis).

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{ManualClock, UnixTime};
use tokenward_refresh::MemoryRefreshStore;
use tokenward_refresh::conformance::RefreshEnv;

async fn make_env() -> RefreshEnv {
    let start = UnixTime::from_duration(Duration::new(1_700_000_000, 123_456_789));
    let clock = ManualClock::new(start);
    let store = Arc::new(MemoryRefreshStore::with_clock(Arc::new(clock.clone())));
    RefreshEnv::new(store.clone(), Arc::new(clock), store)
}

tokenward_refresh::refresh_conformance_tests!(make_env);

/// The same suite on the system clock (the cases sleep, as they will on Redis).
mod real_clock {
    use super::*;
    use tokenward_refresh::conformance::RealClock;

    async fn make_env() -> RefreshEnv {
        let store = Arc::new(MemoryRefreshStore::new());
        RefreshEnv::new(store.clone(), Arc::new(RealClock::new()), store)
    }

    tokenward_refresh::refresh_conformance_tests!(make_env);
}
