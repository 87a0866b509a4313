//! Helpers for the tests that need Redis: the server under test (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`), a fresh key prefix per test, throwaway servers for outages.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokenward_core::{StoreError, StoreErrorKind};

use tokenward_redis::{RedisConfig, RedisRateLimitStore, RedisRefreshStore, RedisRevocationStore};

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| RedisConfig::DEFAULT_URL.to_owned())
}

/// A key prefix no other test (in this run or a concurrent one) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("twtest:{test}:{}-{nanos:x}-{n}:", std::process::id())
}

/// A raw connection to the test Redis, failing the test with instructions if there is none.
pub async fn raw_connection() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let attempt = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok::<_, redis::RedisError>(conn)
    };
    let why = match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(conn)) => return conn,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    let shown = RedisConfig::new(url).redacted_url();
    panic!(
        "these tests need a Redis >= 7.0 at {shown} (set REDIS_URL to use another one), and \
         none answered: {why}. Start one with `redis-server` (Debian/Ubuntu: \
         `apt-get install redis-server`) or `docker run --rm -p 6379:6379 redis:7`."
    )
}

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

/// Every key under `prefix` and its whole value (GET / HGETALL / SMEMBERS / ZRANGE / LRANGE
/// by type), each as one buffer. Fails on a type it does not know.
pub async fn dump_prefix(prefix: &str) -> Vec<Vec<u8>> {
    let mut conn = raw_connection().await;
    let mut out = Vec::new();
    for key in keys_under(prefix).await {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "none" => continue, // expired between SCAN and TYPE
            "string" => {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                v.into_iter().collect()
            }
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("key {key} has type {other}, which the dump does not know"),
        };
        out.push(key.into_bytes());
        out.extend(values);
    }
    out
}

/// Deletes every key under `prefix` (this test's own keys only).
pub async fn delete_under(prefix: &str) {
    let keys = keys_under(prefix).await;
    if keys.is_empty() {
        return;
    }
    let mut conn = raw_connection().await;
    let _: i64 = redis::cmd("UNLINK")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// The keys under `prefix` (SCAN, never KEYS).
pub async fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = raw_connection().await;
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` child process without persistence, killed on drop.
pub struct ThrowawayRedis {
    child: Child,
    pub port: u16,
}

impl ThrowawayRedis {
    /// Starts one on `port` and waits (at most 10 s) until it accepts connections.
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the outage tests start throwaway Redis servers and need `redis-server` \
                     on PATH (Debian/Ubuntu: `apt-get install redis-server`): {e}"
                )
            });
        let server = ThrowawayRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping_blocking(port) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id (to SIGSTOP/SIGCONT it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a Redis on `port` answers PING, by hand (no client state shared with the test).
fn ping_blocking(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The operation timeout the outage tests configure.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// Scheduling slack on a shared 2-core machine on top of [`TIMEOUT`].
pub const MARGIN: Duration = Duration::from_millis(200);

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
