//! Outages: a Redis that dies and comes back, one that accepts connections and never answers
//! (black hole), and one that is not there. Every call must come back within the operation
//! timeout with `Unavailable` or `Timeout` — never hang, never "active" — and the store must
//! recover by itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tokenward_core::{Clock, StoreErrorKind, StoreId, SystemClock, TokenRef, UnixTime};
use tokenward_redis::{RedisConfig, RedisRevocationStore};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use common::{MARGIN, TIMEOUT, ThrowawayRedis, bounded_failure, free_port, unique_prefix};

fn store_at(url: &str) -> RedisRevocationStore {
    let config = RedisConfig::new(url)
        .key_prefix(unique_prefix("outage"))
        .operation_timeout(TIMEOUT);
    RedisRevocationStore::connect(&config).expect("connect never needs Redis to be up")
}

fn until() -> UnixTime {
    SystemClock.now().saturating_add(Duration::from_secs(600))
}

fn token(jti: &str) -> TokenRef<'_> {
    TokenRef::from_parts(
        Some(jti),
        Some("s"),
        Some("u"),
        Some(SystemClock.now()),
        until(),
    )
    .unwrap()
}

/// Every store method fails within the timeout, `rounds` times over; returns the slowest.
async fn all_calls_fail(
    store: &RedisRevocationStore,
    kinds: &[StoreErrorKind],
    rounds: usize,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let took = [
            bounded_failure(
                &format!("round {round}: revoke_token"),
                kinds,
                store.revoke_token(&StoreId::new("j").unwrap(), until()),
            )
            .await,
            bounded_failure(
                &format!("round {round}: revoke_session"),
                kinds,
                store.revoke_session(&StoreId::new("s").unwrap(), until()),
            )
            .await,
            bounded_failure(
                &format!("round {round}: revoke_subject"),
                kinds,
                store.revoke_subject(&StoreId::new("u").unwrap(), SystemClock.now(), until()),
            )
            .await,
            bounded_failure(
                &format!("round {round}: check"),
                kinds,
                store.check(&token("j")),
            )
            .await,
            bounded_failure(
                &format!("round {round}: ping"),
                kinds,
                store.backend().ping(),
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
    store
        .revoke_token(&StoreId::new("j").unwrap(), until())
        .await
        .unwrap();
    assert_eq!(
        store.check(&token("j")).await.unwrap(),
        RevocationStatus::Revoked(RevokedBy::Token)
    );

    server.kill();
    let slowest = all_calls_fail(&store, OUTAGE, 3).await;
    eprintln!("redis killed: slowest failing call took {slowest:?}");

    // Back on the same port: the same store works again, without being rebuilt.
    let server = ThrowawayRedis::start(port);
    let start = Instant::now();
    // This server has no persistence: the revocation is gone, and the token is active again.
    // (Which is why a production revocation store needs AOF: docs/operations.md.)
    assert_eq!(
        store.check(&token("j")).await.unwrap(),
        RevocationStatus::Active
    );
    eprintln!("first call after the restart took {:?}", start.elapsed());
    store
        .revoke_token(&StoreId::new("j2").unwrap(), until())
        .await
        .unwrap();
    assert!(store.check(&token("j2")).await.unwrap().is_revoked());

    // A restart while the connections sit idle is noticed before a request uses them (each
    // connection's driver task sees the server close it, and the next call opens a new one):
    // no call fails.
    server.kill();
    let _server = ThrowawayRedis::start(port);
    store
        .revoke_token(&StoreId::new("j3").unwrap(), until())
        .await
        .unwrap();
    assert!(store.check(&token("j3")).await.unwrap().is_revoked());
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
            let jti = format!("j{i}");
            store.check(&token(&jti)).await.map(|_| ())
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
async fn nothing_listening_is_unavailable_and_the_password_stays_secret() {
    let port = free_port();
    let store = store_at(&format!("redis://:hunter2@127.0.0.1:{port}"));
    let slowest = all_calls_fail(&store, &[StoreErrorKind::Unavailable], 2).await;
    eprintln!("connection refused: slowest call took {slowest:?}");
    let err = store.check(&token("j")).await.unwrap_err();
    let mut shown = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        shown.push_str(&format!(" / {e}"));
        source = e.source();
    }
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
