//! `RedisBackend`'s shared connections, counted by a throwaway Redis of our own: concurrent
//! calls share `pool_size` connections, error replies keep them, a connection the server
//! closes is replaced before a call uses it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use tokenward_core::{StoreErrorKind, TokenRef, UnixTime};
use tokenward_ratelimit::{GcraCharge, GcraQuota, LimitKey, RateLimitStore};
use tokenward_redis::{RedisConfig, RedisStores};
use tokenward_revocation::RevocationStatus;

use common::{ThrowawayRedis, free_port};

/// One cell of `limit` per second.
fn per_second(limit: u32) -> GcraCharge {
    GcraCharge::single(GcraQuota::per_second(NonZeroU32::new(limit).unwrap()))
}

fn key(k: &str) -> LimitKey<'_> {
    LimitKey::new(k).unwrap()
}

fn stores_at(server: &ThrowawayRedis, pool_size: usize) -> RedisStores {
    RedisStores::connect(
        &RedisConfig::new(server.url())
            .key_prefix("backend:")
            .operation_timeout(Duration::from_secs(2))
            .pool_size(pool_size),
    )
    .unwrap()
}

async fn admin(server: &ThrowawayRedis) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn stat(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let text: String = redis::cmd("INFO").query_async(conn).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

fn token(i: usize) -> (String, u64) {
    (format!("t{i}"), 1_700_000_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_pool_size_connections() {
    let server = ThrowawayRedis::start(free_port());
    let mut conn = admin(&server).await;
    let before = stat(&mut conn, "total_connections_received").await;
    let stores = stores_at(&server, 2);
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
    let after = stat(&mut conn, "total_connections_received").await;
    assert_eq!(after - before, 2);
    assert!(
        format!("{stores:?}").contains("open_connections: 2"),
        "{stores:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_replies_keep_the_connection() {
    let server = ThrowawayRedis::start(free_port());
    let mut conn = admin(&server).await;
    let stores = stores_at(&server, 1);
    let rl = stores.ratelimit();
    let quota = per_second(10);
    rl.gcra(&key("k"), &quota).await.unwrap();
    let before = stat(&mut conn, "total_connections_received").await;

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
    assert_eq!(stat(&mut conn, "total_connections_received").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closes_is_replaced_before_a_call_uses_it() {
    let server = ThrowawayRedis::start(free_port());
    let mut conn = admin(&server).await;
    let stores = stores_at(&server, 2);
    for _ in 0..4 {
        stores.backend().ping().await.unwrap();
    }
    let before = stat(&mut conn, "total_connections_received").await;
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
    assert_eq!(
        stat(&mut conn, "total_connections_received").await - before,
        2
    );
}
