//! Outages: a Redis that dies and comes back, one that accepts connections and never answers
//! (black hole), and one that is not there. Every call must come back within the operation
//! timeout with `Unavailable` or `Timeout` — never hang, never "active" — and the store must
//! recover by itself.

use std::time::{Duration, Instant};

use tokenward_core::{Clock, StoreErrorKind, StoreId, SystemClock, TokenRef, UnixTime};
use tokenward_redis::RedisRevocationStore;
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use tokenward_testsupport::{BlackHole, ThrowawayRedis, free_port};

use crate::common::{
    Call, EveryMethod, MARGIN, OUTAGE, TIMEOUT, all_calls_fail, black_hole_times_out,
    outage_config, shows_the_address_not_the_password,
};

fn store_at(url: &str) -> RedisRevocationStore {
    RedisRevocationStore::connect(&outage_config("outage", url))
        .expect("connect never needs Redis to be up")
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

impl EveryMethod for RedisRevocationStore {
    fn every_method(&self) -> Vec<Call<'_>> {
        let id = |id: &'static str| StoreId::new(id).unwrap();
        vec![
            (
                "revoke_token",
                Box::pin(async move { self.revoke_token(&id("j"), until()).await }),
            ),
            (
                "revoke_session",
                Box::pin(async move { self.revoke_session(&id("s"), until()).await }),
            ),
            (
                "revoke_subject",
                Box::pin(async move {
                    self.revoke_subject(&id("u"), SystemClock.now(), until())
                        .await
                }),
            ),
            (
                "check",
                Box::pin(async move { self.check(&token("j")).await.map(drop) }),
            ),
            ("ping", Box::pin(self.backend().ping())),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_without_rebuilding_the_store() {
    let mut server = ThrowawayRedis::start();
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
    server.restart();
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
    server.restart();
    store
        .revoke_token(&StoreId::new("j3").unwrap(), until())
        .await
        .unwrap();
    assert!(store.check(&token("j3")).await.unwrap().is_revoked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_times_out_within_the_deadline() {
    let hole = BlackHole::start();
    let store = store_at(&hole.redis_url());
    // Many callers at once too: each one still gets its answer within the deadline.
    black_hole_times_out(&store, TIMEOUT + MARGIN, |i| {
        let store = store.clone();
        async move {
            let jti = format!("j{i}");
            store.check(&token(&jti)).await.map(|_| ())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable_and_the_password_stays_secret() {
    let port = free_port();
    let store = store_at(&format!("redis://:hunter2@127.0.0.1:{port}"));
    let slowest = all_calls_fail(&store, &[StoreErrorKind::Unavailable], 2).await;
    eprintln!("connection refused: slowest call took {slowest:?}");
    let err = store.check(&token("j")).await.unwrap_err();
    shows_the_address_not_the_password(&err, port);
}
