//! `RedisBackend`'s shared connections, counted by a throwaway Redis of our own: concurrent
//! calls share `pool_size` connections, error replies keep them, a connection the server
//! closes is replaced before a call uses it.

use std::num::NonZeroU32;
use std::time::Duration;

use tokenward_core::{StoreErrorKind, TokenRef, UnixTime};
use tokenward_ratelimit::{GcraCharge, GcraQuota, LimitKey, RateLimitStore};
use tokenward_revocation::RevocationStatus;

use tokenward_testsupport::ThrowawayRedis;

use crate::common::{info, own_server_stores, stat};

/// One cell of `limit` per second.
fn per_second(limit: u32) -> GcraCharge {
    GcraCharge::single(GcraQuota::per_second(NonZeroU32::new(limit).unwrap()))
}

fn key(k: &str) -> LimitKey<'_> {
    LimitKey::new(k).unwrap()
}

/// How many connections the server has accepted so far.
async fn connections_received(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    stat(&info(conn).await, "total_connections_received")
}

fn token(i: usize) -> (String, u64) {
    (format!("t{i}"), 1_700_000_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_pool_size_connections() {
    let server = ThrowawayRedis::start();
    let (stores, mut conn) = own_server_stores(&server, "backend:", 2).await;
    let before = connections_received(&mut conn).await;
    let quota = per_second(1_000_000);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let stores = stores.clone();
        tasks.spawn(async move {
            let (jti, iat) = token(i);
            let t = TokenRef::from_parts(
                Some(&jti),
                None,
                Some("u"),
                Some(UnixTime::from_millis(iat)),
                UnixTime::from_secs(4_000_000_000),
            )
            .unwrap();
            for _ in 0..20 {
                let (status, d) = stores
                    .check_token(&t, Some((&key("subject:u"), &quota)))
                    .await
                    .unwrap();
                assert_eq!(status, RevocationStatus::Active);
                assert!(d.unwrap().allowed);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // 1 280 calls, 64 at a time, over exactly two connections.
    let after = connections_received(&mut conn).await;
    assert_eq!(after - before, 2);
    assert!(
        format!("{stores:?}").contains("open_connections: 2"),
        "{stores:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_replies_keep_the_connection() {
    let server = ThrowawayRedis::start();
    let (stores, mut conn) = own_server_stores(&server, "backend:", 1).await;
    let rl = stores.ratelimit();
    let quota = per_second(10);
    rl.gcra(&key("k"), &quota).await.unwrap();
    let before = connections_received(&mut conn).await;

    // WRONGTYPE from inside a script: a corrupt-state error, the connection stays.
    let _: () = redis::cmd("HSET")
        .arg(rl.gcra_key(&key("hash")))
        .arg("f")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..3 {
        let got = rl.gcra(&key("hash"), &quota).await;
        assert_eq!(
            got.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Corrupt)
        );
    }
    // NOSCRIPT after SCRIPT FLUSH: reloaded on the same connection.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    rl.gcra(&key("k"), &quota).await.unwrap();
    stores.backend().ping().await.unwrap();
    assert_eq!(connections_received(&mut conn).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closes_is_replaced_before_a_call_uses_it() {
    let server = ThrowawayRedis::start();
    let (stores, mut conn) = own_server_stores(&server, "backend:", 2).await;
    for _ in 0..4 {
        stores.backend().ping().await.unwrap();
    }
    let before = connections_received(&mut conn).await;
    // The server drops every client but this one (what a restart, a failover or an idle
    // timeout does to the store's connections while nobody uses them).
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 2);
    // The store notices on its own (the driver task sees the connection end); give it the
    // moment the close takes to arrive, polling rather than sleeping a guessed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !format!("{stores:?}").contains("open_connections: 0") {
        assert!(std::time::Instant::now() < deadline, "{stores:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // No call fails: each picks a fresh connection.
    for _ in 0..4 {
        stores.backend().ping().await.unwrap();
    }
    assert_eq!(connections_received(&mut conn).await - before, 2);
}
