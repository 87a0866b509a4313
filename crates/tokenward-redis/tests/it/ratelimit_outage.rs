//! Rate-limit outages: a Redis that dies and comes back, one that never answers (black hole),
//! and one that is not there. Every call must come back within the operation timeout with
//! `Unavailable` or `Timeout` — never hang, never a made-up decision — and the store must
//! recover by itself.

use std::num::NonZeroU32;
use std::time::Duration;

use tokenward_core::StoreErrorKind;
use tokenward_ratelimit::{BanQuota, GcraCharge, GcraQuota, LimitKey, RateLimitStore};
use tokenward_redis::RedisRateLimitStore;

use tokenward_testsupport::{BlackHole, ThrowawayRedis, free_port};

use crate::common::{
    Call, EveryMethod, MARGIN, OUTAGE, TIMEOUT, all_calls_fail, black_hole_times_out,
    outage_config, shows_the_address_not_the_password,
};

/// One cell of 10 per second.
const GCRA: GcraCharge = GcraCharge::single(GcraQuota::per_second(NonZeroU32::new(10).unwrap()));

fn ban() -> BanQuota {
    BanQuota::new(
        NonZeroU32::new(3).unwrap(),
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .unwrap()
}

fn key(k: &str) -> LimitKey<'static> {
    LimitKey::new(k.to_owned()).unwrap()
}

fn store_at(url: &str) -> RedisRateLimitStore {
    RedisRateLimitStore::connect(&outage_config("rl-outage", url))
        .expect("connect never needs Redis to be up")
}

impl EveryMethod for RedisRateLimitStore {
    fn every_method(&self) -> Vec<Call<'_>> {
        vec![
            (
                "gcra",
                Box::pin(async move { self.gcra(&key("k"), &GCRA).await.map(drop) }),
            ),
            (
                "ban_status",
                Box::pin(async move { self.ban_status(&key("k"), &ban()).await.map(drop) }),
            ),
            (
                "record_failure",
                Box::pin(async move { self.record_failure(&key("k"), &ban()).await.map(drop) }),
            ),
            (
                "lift_ban",
                Box::pin(async move { self.lift_ban(&key("k")).await }),
            ),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_without_rebuilding_the_store() {
    let mut server = ThrowawayRedis::start();
    let store = store_at(&server.url());
    assert!(store.gcra(&key("k"), &GCRA).await.unwrap().allowed);
    store.record_failure(&key("k"), &ban()).await.unwrap();

    server.kill();
    let slowest = all_calls_fail(&store, OUTAGE, 3).await;
    eprintln!("redis killed: slowest failing call took {slowest:?}");

    // Back on the same port (without persistence: the state is gone); the same store works.
    server.restart();
    let d = store.gcra(&key("k"), &GCRA).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 9));
    let d = store.record_failure(&key("k"), &ban()).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_times_out_within_the_deadline() {
    let hole = BlackHole::start();
    let store = store_at(&hole.redis_url());
    // Many callers at once too: each one still gets its answer within the deadline.
    black_hole_times_out(&store, TIMEOUT + MARGIN, |i| {
        let store = store.clone();
        async move {
            let key_name = format!("sub:{i}");
            store.gcra(&key(&key_name), &GCRA).await.map(|_| ())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable() {
    let port = free_port();
    let store = store_at(&format!("redis://:hunter2@127.0.0.1:{port}"));
    let slowest = all_calls_fail(&store, &[StoreErrorKind::Unavailable], 2).await;
    eprintln!("connection refused: slowest call took {slowest:?}");
    let err = store.gcra(&key("k"), &GCRA).await.unwrap_err();
    shows_the_address_not_the_password(&err, port);
}
