//! The in-memory store runs the whole conformance suite, on a manual clock it shares with the
//! suite (time jumps, nothing sleeps).

use std::sync::Arc;

use tokenward_core::{ManualClock, UnixTime};
use tokenward_revocation::conformance::RevocationEnv;
use tokenward_revocation::{MemoryRevocationConfig, MemoryRevocationStore};

#[expect(clippy::expect_used, reason = "a test helper")]
fn env(clock: ManualClock, config: MemoryRevocationConfig) -> RevocationEnv {
    let store = MemoryRevocationStore::with_config(config.clock(Arc::new(clock.clone())))
        .expect("a valid config");
    let store = Arc::new(store);
    RevocationEnv::new(store.clone(), Arc::new(clock), store)
}

async fn make_env() -> RevocationEnv {
    let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
    env(clock, MemoryRevocationConfig::new())
}

tokenward_revocation::revocation_conformance_tests!(make_env);

/// The same suite on a single shard (every id shares it) with a capacity just above what the
/// largest case holds, on a clock that is not on a whole second.
mod one_shard {
    use super::*;

    async fn make_env() -> RevocationEnv {
        let clock = ManualClock::new(UnixTime::from_millis(1_700_000_000_123));
        env(clock, MemoryRevocationConfig::new().shards(1).capacity(600))
    }

    tokenward_revocation::revocation_conformance_tests!(make_env);
}
