//! The `CombinedCheck` conformance suite (`tokenward_guard::conformance`) on Redis:
//! `RedisStores` as the one-round-trip combined check, compared with the separate Redis stores
//! of a second key prefix.

use std::sync::Arc;

use tokenward_guard::conformance::{CombinedEnv, RealClock, SeparateStores};
use tokenward_redis::RedisStores;

use crate::common::{config, raw_connection};

fn separate(stores: &RedisStores) -> SeparateStores {
    SeparateStores {
        revocation: Arc::new(stores.revocation()),
        ratelimit: Arc::new(stores.ratelimit()),
    }
}

async fn make_env() -> CombinedEnv {
    raw_connection().await; // fails, saying how to get one, if there is no Redis
    let backend = RedisStores::connect(&config("combined")).unwrap();
    let reference = RedisStores::connect(&config("combined-reference")).unwrap();
    CombinedEnv::new(
        Arc::new(backend.clone()),
        separate(&backend),
        separate(&reference),
        Arc::new(RealClock::new()),
    )
}

tokenward_guard::combined_conformance_tests!(make_env);
