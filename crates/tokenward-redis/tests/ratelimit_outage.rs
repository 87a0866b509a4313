//! Rate-limit outages: a Redis that dies and comes back, one that never answers (black hole),
//! and one that is not there. Every call must come back within the operation timeout with
//! `Unavailable` or `Timeout` — never hang, never a made-up decision — and the store must
//! recover by itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use tokenward_core::StoreErrorKind;
use tokenward_ratelimit::{BanQuota, GcraCharge, GcraQuota, LimitKey, RateLimitStore};
use tokenward_redis::{RedisConfig, RedisRateLimitStore};

use common::{MARGIN, TIMEOUT, ThrowawayRedis, bounded_failure, free_port, unique_prefix};

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
    let config = RedisConfig::new(url)
        .key_prefix(unique_prefix("rl-outage"))
        .operation_timeout(TIMEOUT);
    RedisRateLimitStore::connect(&config).expect("connect never needs Redis to be up")
}

/// Every store method fails within the timeout, `rounds` times over; returns the slowest.
async fn all_calls_fail(
    store: &RedisRateLimitStore,
    kinds: &[StoreErrorKind],
    rounds: usize,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let took = [
            bounded_failure(
                &format!("round {round}: gcra"),
                kinds,
                store.gcra(&key("k"), &GCRA),
            )
            .await,
            bounded_failure(
                &format!("round {round}: ban_status"),
                kinds,
                store.ban_status(&key("k"), &ban()),
            )
            .await,
            bounded_failure(
                &format!("round {round}: record_failure"),
                kinds,
                store.record_failure(&key("k"), &ban()),
            )
            .await,
            bounded_failure(
                &format!("round {round}: lift_ban"),
                kinds,
                store.lift_ban(&key("k")),
            )
            .await,
        ];
        slowest = took.into_iter().fold(slowest, Duration::max);
    }
    slowest
}

const OUTAGE: &[StoreErrorKind] = &[StoreErrorKind::Unavailable, StoreErrorKind::Timeout];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_without_rebuilding_the_store() {
    let port = free_port();
    let server = ThrowawayRedis::start(port);
    let store = store_at(&server.url());
    assert!(store.gcra(&key("k"), &GCRA).await.unwrap().allowed);
    store.record_failure(&key("k"), &ban()).await.unwrap();

    server.kill();
    let slowest = all_calls_fail(&store, OUTAGE, 3).await;
    eprintln!("redis killed: slowest failing call took {slowest:?}");

    // Back on the same port (without persistence: the state is gone); the same store works.
    let _server = ThrowawayRedis::start(port);
    let d = store.gcra(&key("k"), &GCRA).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 9));
    let d = store.record_failure(&key("k"), &ban()).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_times_out_within_the_deadline() {
    // Accepts connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let store = store_at(&format!("redis://127.0.0.1:{port}"));
    let slowest = all_calls_fail(&store, &[StoreErrorKind::Timeout], 2).await;
    eprintln!("black hole: slowest call took {slowest:?}");

    // Many callers at once: each one still gets its answer within the deadline.
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.spawn(async move {
            let key = format!("sub:{i}");
            store
                .gcra(&LimitKey::new(key).unwrap(), &GCRA)
                .await
                .map(|_| ())
        });
    }
    while let Some(result) = tasks.join_next().await {
        let kind = result.unwrap().unwrap_err().kind();
        assert_eq!(kind, StoreErrorKind::Timeout);
    }
    let took = start.elapsed();
    assert!(
        took < TIMEOUT + MARGIN,
        "32 concurrent checks took {took:?}"
    );
    eprintln!("black hole: 32 concurrent checks took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable() {
    let port = free_port();
    let store = store_at(&format!("redis://:hunter2@127.0.0.1:{port}"));
    let slowest = all_calls_fail(&store, &[StoreErrorKind::Unavailable], 2).await;
    eprintln!("connection refused: slowest call took {slowest:?}");
    let err = store.gcra(&key("k"), &GCRA).await.unwrap_err();
    let shown = format!("{err} / {err:?}");
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
