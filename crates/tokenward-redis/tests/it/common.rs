//! What these tests share on top of `tokenward-testsupport` (the shared test Redis, key
//! prefixes, throwaway servers): stores under a fresh prefix, a dump of a prefix's keys and
//! values, and the bounded failure every outage test asserts.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokenward_core::{StoreError, StoreErrorKind};
use tokenward_redis::{
    RedisConfig, RedisRateLimitStore, RedisRefreshStore, RedisRevocationStore, RedisStores,
};
use tokenward_testsupport::{ThrowawayRedis, redis_url, unique_prefix};

/// A raw connection to the shared test Redis, failing the test with instructions if there is
/// none.
pub use tokenward_testsupport::shared_redis as raw_connection;

/// The config for the test Redis under a fresh prefix. The timeout is generous: the
/// machine running the tests may be busy, and these tests are not about timeouts.
pub fn config(test: &str) -> RedisConfig {
    RedisConfig::new(redis_url())
        .key_prefix(unique_prefix(test))
        .operation_timeout(Duration::from_secs(2))
}

/// A store on the test Redis under a fresh prefix, after checking Redis is there.
pub async fn store(test: &str) -> RedisRevocationStore {
    raw_connection().await;
    RedisRevocationStore::connect(&config(test)).unwrap()
}

/// A rate-limit store on the test Redis under a fresh prefix, after checking Redis is there.
pub async fn ratelimit_store(test: &str) -> RedisRateLimitStore {
    raw_connection().await;
    RedisRateLimitStore::connect(&config(test)).unwrap()
}

/// A refresh store on the test Redis under a fresh prefix, after checking Redis is there.
pub async fn refresh_store(test: &str) -> RedisRefreshStore {
    raw_connection().await;
    RedisRefreshStore::connect(&config(test)).unwrap()
}

/// The keys under `prefix` on the test Redis (SCAN, never KEYS).
pub async fn keys_under(prefix: &str) -> Vec<String> {
    tokenward_testsupport::keys_under(&mut raw_connection().await, prefix)
        .await
        .unwrap()
}

/// Deletes every key under `prefix` on the test Redis (this test's own keys only).
pub async fn delete_under(prefix: &str) {
    tokenward_testsupport::delete_prefix(&mut raw_connection().await, prefix)
        .await
        .unwrap();
}

/// How [`dump_prefix`] reads a key of each type: the command, and its arguments after the key.
const READERS: &[(&str, &str, &[&str])] = &[
    ("string", "GET", &[]),
    ("hash", "HGETALL", &[]),
    ("set", "SMEMBERS", &[]),
    ("zset", "ZRANGE", &["0", "-1", "WITHSCORES"]),
    ("list", "LRANGE", &["0", "-1"]),
];

/// Every key under `prefix` and its whole value (GET / HGETALL / SMEMBERS / ZRANGE / LRANGE
/// by type), each as one buffer. Fails on a type it does not know.
pub async fn dump_prefix(prefix: &str) -> Vec<Vec<u8>> {
    dump_prefix_on(&mut raw_connection().await, prefix).await
}

/// [`dump_prefix`] on the server behind `conn`.
pub async fn dump_prefix_on(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let keys = tokenward_testsupport::keys_under(conn, prefix)
        .await
        .unwrap();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        if kind == "none" {
            continue; // expired between SCAN and TYPE
        }
        let (_, command, rest) = READERS
            .iter()
            .find(|(name, ..)| *name == kind)
            .unwrap_or_else(|| panic!("key {key} has type {kind}, which the dump does not know"));
        let mut read = redis::cmd(command);
        read.arg(&key).arg(*rest);
        // A string is one value (none if it expired meanwhile), the other types lists.
        let values: Vec<Vec<u8>> = if kind == "string" {
            let value: Option<Vec<u8>> = read.query_async(conn).await.unwrap();
            value.into_iter().collect()
        } else {
            read.query_async(conn).await.unwrap()
        };
        out.push(key.into_bytes());
        out.extend(values);
    }
    out
}

/// `RedisStores` under `prefix` with `pool_size` connections on a server of the test's own (no other client's commands in
/// its counters), and an admin connection to that server.
pub async fn own_server_stores(
    server: &ThrowawayRedis,
    prefix: &str,
    pool_size: usize,
) -> (RedisStores, redis::aio::MultiplexedConnection) {
    let stores = RedisStores::connect(
        &RedisConfig::new(server.url())
            .key_prefix(prefix)
            .operation_timeout(Duration::from_secs(2))
            .pool_size(pool_size),
    )
    .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    (
        stores,
        client.get_multiplexed_async_connection().await.unwrap(),
    )
}

/// `INFO` of a server of the test's own (`stats`, `commandstats`, `memory`).
pub async fn info(conn: &mut redis::aio::MultiplexedConnection) -> redis::InfoDict {
    redis::cmd("INFO")
        .arg("stats")
        .arg("commandstats")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap()
}

pub fn stat(info: &redis::InfoDict, name: &str) -> u64 {
    info.get(name)
        .unwrap_or_else(|| panic!("no {name} in INFO"))
}

/// Writes `value` under `key` (with a TTL), past the store: a hand-made or corrupt entry.
pub async fn set_raw(key: &str, value: &str) {
    let mut conn = raw_connection().await;
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(600)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Puts a hash (with a TTL) under `key`: the wrong type for the string keys the stores
/// write, which they must report as corrupt, never as a verdict.
pub async fn set_wrong_type(key: &str) {
    let mut conn = raw_connection().await;
    let () = redis::pipe()
        .cmd("HSET")
        .arg(key)
        .arg("f")
        .arg("v")
        .ignore()
        .cmd("EXPIRE")
        .arg(key)
        .arg(600)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// The operation timeout the outage tests configure.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// Scheduling slack on a shared 2-core machine on top of [`TIMEOUT`].
pub const MARGIN: Duration = Duration::from_millis(200);

/// The errors of a store whose Redis is down (refused, or killed mid-call) or silent.
pub const OUTAGE: &[StoreErrorKind] = &[StoreErrorKind::Unavailable, StoreErrorKind::Timeout];

/// The config of an outage test's store at `url`: a fresh prefix and [`TIMEOUT`].
pub fn outage_config(test: &str, url: &str) -> RedisConfig {
    RedisConfig::new(url)
        .key_prefix(unique_prefix(test))
        .operation_timeout(TIMEOUT)
}

/// Runs `call`, asserts it failed with one of `kinds` within [`TIMEOUT`] (+ [`MARGIN`]), and
/// returns how long it took.
pub async fn bounded_failure<T: std::fmt::Debug>(
    what: &str,
    kinds: &[StoreErrorKind],
    call: impl Future<Output = Result<T, StoreError>>,
) -> Duration {
    let start = Instant::now();
    let result = call.await;
    let took = start.elapsed();
    match &result {
        Err(e) if kinds.contains(&e.kind()) => {}
        other => panic!("{what}: expected one of {kinds:?}, got {other:?}"),
    }
    assert!(
        took < TIMEOUT + MARGIN,
        "{what} took {took:?}, more than the {TIMEOUT:?} timeout (+{MARGIN:?})"
    );
    took
}

/// One call of a store method, by name, its answer reduced to success or the error.
pub type Call<'a> = (
    &'static str,
    Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>,
);

/// A store an outage test calls every method of.
pub trait EveryMethod {
    /// One call of each method; without a server, none of them can succeed.
    fn every_method(&self) -> Vec<Call<'_>>;
}

/// Every method of `store` fails with one of `kinds` within [`TIMEOUT`] (+ [`MARGIN`]),
/// `rounds` times over; returns the slowest call.
pub async fn all_calls_fail(
    store: &impl EveryMethod,
    kinds: &[StoreErrorKind],
    rounds: usize,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        for (method, call) in store.every_method() {
            let took = bounded_failure(&format!("round {round}: {method}"), kinds, call).await;
            slowest = slowest.max(took);
        }
    }
    slowest
}

/// `store` talks to a [`BlackHole`](tokenward_testsupport::BlackHole): every method times out
/// within the deadline (twice over), and so does each of 32 calls at once (`call(i)`), all
/// within `concurrent_bound`.
pub async fn black_hole_times_out<F, Fut>(
    store: &impl EveryMethod,
    concurrent_bound: Duration,
    call: F,
) where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let slowest = all_calls_fail(store, &[StoreErrorKind::Timeout], 2).await;
    eprintln!("black hole: slowest call took {slowest:?}");
    concurrent_calls_time_out(concurrent_bound, call).await;
}

/// Starts 32 calls at once (`call(i)`) against a server that never answers: each must fail
/// with `Timeout`, and all of them within `bound`.
async fn concurrent_calls_time_out<F, Fut>(bound: Duration, call: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        tasks.spawn(call(i));
    }
    while let Some(result) = tasks.join_next().await {
        let kind = result.unwrap().unwrap_err().kind();
        assert_eq!(kind, StoreErrorKind::Timeout);
    }
    let took = start.elapsed();
    assert!(took < bound, "32 concurrent calls took {took:?}");
    eprintln!("black hole: 32 concurrent calls took {took:?}");
}

/// The error of a call to nobody at 127.0.0.1:`port` (URL with the password `hunter2`), with
/// its sources, names the address and never the password.
pub fn shows_the_address_not_the_password(err: &StoreError, port: u16) {
    let mut shown = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        shown.push_str(&format!(" / {e}"));
        source = e.source();
    }
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// The conformance suites' [`StoreProbe`](tokenward_core::conformance::StoreProbe) into a
/// Redis store: a `SCAN` of its key prefix, and its backend's round-trip counter.
pub struct RedisProbe {
    pub backend: tokenward_redis::RedisBackend,
}

#[async_trait::async_trait]
impl tokenward_core::conformance::StoreProbe for RedisProbe {
    async fn stored_entries(&self) -> Result<u64, tokenward_core::StoreError> {
        Ok(keys_under(self.backend.key_prefix()).await.len() as u64)
    }

    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, tokenward_core::StoreError> {
        Ok(dump_prefix(self.backend.key_prefix()).await)
    }

    fn round_trips(&self) -> u64 {
        self.backend.round_trips()
    }
}

/// [`RedisProbe`] for a store on another server than the shared test Redis (a TLS server):
/// its keys are read over `admin`, a connection of the test's own to that server.
pub struct ServerProbe {
    pub backend: tokenward_redis::RedisBackend,
    pub admin: redis::aio::MultiplexedConnection,
}

#[async_trait::async_trait]
impl tokenward_core::conformance::StoreProbe for ServerProbe {
    async fn stored_entries(&self) -> Result<u64, tokenward_core::StoreError> {
        let keys =
            tokenward_testsupport::keys_under(&mut self.admin.clone(), self.backend.key_prefix())
                .await
                .unwrap();
        Ok(keys.len() as u64)
    }

    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, tokenward_core::StoreError> {
        Ok(dump_prefix_on(&mut self.admin.clone(), self.backend.key_prefix()).await)
    }

    fn round_trips(&self) -> u64 {
        self.backend.round_trips()
    }
}
