//! Helpers for the demo's end-to-end tests: servers on ephemeral ports, the test Redis, and
//! throwaway `redis-server`s for outages.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokenward_claims::KeySet;
use tokenward_demo::lifecycle::Options;
use tokenward_demo::server::{DemoConfig, Running, spawn};

/// The servers' settings in the lifecycle tests (small, so the 429 steps are quick).
pub const SUBJECT_LIMIT: u32 = 10;
pub const GRACE: Duration = Duration::from_secs(2);
pub const MAXRETRY: u32 = 3;

/// A config on an ephemeral port with the lifecycle tests' small limits.
pub fn config() -> DemoConfig {
    let mut config = DemoConfig::default();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.subject_limit = SUBJECT_LIMIT;
    config.refresh_grace = GRACE;
    config.ban_maxretry = MAXRETRY;
    // Generous: the machine may be busy; these tests are not about timeouts.
    config.redis_timeout = Duration::from_secs(2);
    config
}

/// The driver's options for `servers`.
pub fn options(servers: &[&Running]) -> Options {
    Options::new(servers.iter().map(|s| s.url()).collect())
        .refresh_grace(GRACE)
        .subject_limit(SUBJECT_LIMIT)
        .ban_maxretry(MAXRETRY)
}

/// One key set for every instance of a test (what a shared `--keys` gives).
pub fn keys() -> KeySet {
    tokenward_demo::keys::ephemeral().unwrap()
}

/// Starts a demo for `config` with `keys`.
pub async fn start(config: &DemoConfig, keys: KeySet) -> Running {
    spawn(config, keys).await.unwrap()
}

/// The Redis the tests use: `REDIS_URL`, else `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Fails the test, saying how to get one, unless the test Redis answers PING.
pub fn require_redis() -> String {
    let url = redis_url();
    let addr = url
        .strip_prefix("redis://")
        .and_then(|rest| rest.rsplit('@').next())
        .map(|hostport| hostport.split('/').next().unwrap_or(hostport).to_owned());
    let reachable = addr
        .as_deref()
        .and_then(|a| std::net::ToSocketAddrs::to_socket_addrs(a).ok())
        .and_then(|mut addrs| addrs.next())
        .is_some_and(ping);
    assert!(
        reachable,
        "these tests need a Redis at {url} (set REDIS_URL to use another one), and none \
         answered PING. Start one with `redis-server` (Debian/Ubuntu: `apt-get install \
         redis-server`), or run `cargo xtask ci`, which provides one."
    );
    url
}

/// A key prefix no other test (in this run or a concurrent one) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("twdemo-test:{test}:{}-{nanos:x}-{n}:", std::process::id())
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a Redis answers PING at `addr` (by hand: no client state shared with the test).
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A `redis-server` child process without persistence, killed on drop.
pub struct ThrowawayRedis {
    child: Child,
    pub port: u16,
}

impl ThrowawayRedis {
    /// Starts one on `port` and waits (at most 10 s) until it answers PING.
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the outage test starts throwaway Redis servers and needs `redis-server` \
                     on PATH (Debian/Ubuntu: `apt-get install redis-server`): {e}"
                )
            });
        let server = ThrowawayRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(SocketAddr::from(([127, 0, 0, 1], port))) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
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

/// Deletes every key under `prefix` (this test's own keys only: SCAN, never KEYS or
/// FLUSHALL), so refresh families do not linger on a shared server for their idle timeout.
pub async fn delete_under(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    let mut keys: Vec<String> = Vec::new();
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
    assert!(
        !keys.is_empty(),
        "no keys under {prefix}: was Redis used at all?"
    );
    keys.sort();
    keys.dedup();
    let _: i64 = redis::cmd("UNLINK")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
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
