//! The in-memory store runs the whole conformance suite, on a manual clock it shares with the
//! suite (time jumps, nothing sleeps).

use std::sync::Arc;

use tokenward_core::{ManualClock, UnixTime};
use tokenward_revocation::conformance::TestClock;
use tokenward_revocation::{MemoryRevocationStore, MemoryStoreConfig, RevocationStore};

async fn make_env() -> (Arc<dyn RevocationStore>, Arc<dyn TestClock>) {
    let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
    let store =
        MemoryRevocationStore::with_config(MemoryStoreConfig::new().clock(Arc::new(clock.clone())));
    (Arc::new(store), Arc::new(clock))
}

tokenward_revocation::revocation_conformance_tests!(make_env);

/// The same suite on a single shard (every id shares it) with a capacity just above what the
/// largest case holds, on a clock that is not on a whole second.
mod one_shard {
    use super::*;

    async fn make_env() -> (Arc<dyn RevocationStore>, Arc<dyn TestClock>) {
        let clock = ManualClock::new(UnixTime::from_millis(1_700_000_000_123));
        let config = MemoryStoreConfig::new()
            .shards(1)
            .capacity(600)
            .clock(Arc::new(clock.clone()));
        (
            Arc::new(MemoryRevocationStore::with_config(config)),
            Arc::new(clock),
        )
    }

    tokenward_revocation::revocation_conformance_tests!(make_env);
}

#[test]
fn every_case_is_listed() {
    assert_eq!(tokenward_revocation::conformance::CASES.len(), 15);
    assert!(tokenward_revocation::conformance::CASES.contains(&"concurrent_revokes_and_checks"));
}
