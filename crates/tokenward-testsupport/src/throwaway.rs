//! `redis-server` processes of a test's own.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// What to do when `redis-server` is missing: tests that need their own server never skip.
pub const REDIS_SERVER_HINT: &str = "these tests start throwaway Redis servers of their own and \
     need `redis-server` (Redis >= 7.0) on PATH: Debian/Ubuntu `apt-get install redis-server`, \
     macOS `brew install redis` (`cargo xtask ci` installs Debian's package when run as root)";

/// How long a server may take to answer `PING` after it was started.
const STARTUP: Duration = Duration::from_secs(10);

/// A `redis-server` child process of the test's own on 127.0.0.1, without RDB snapshots;
/// killed (and thawed first if frozen) when dropped.
///
/// For what the shared test Redis cannot give: counting every command the server processed,
/// `SCRIPT FLUSH`, killing, freezing or restarting the server.
///
/// ```
/// use tokenward_testsupport::ThrowawayRedis;
///
/// // An append-only file (in a temp dir the server owns) keeps acknowledged writes across
/// // a SIGKILL and a restart on the same port.
/// let mut server = ThrowawayRedis::builder().append_only().start();
/// let url = server.url();
/// server.kill();
/// server.restart();
/// assert_eq!(server.url(), url);
/// ```
#[derive(Debug)]
pub struct ThrowawayRedis {
    /// `None` after [`ThrowawayRedis::kill`].
    child: Option<Child>,
    port: u16,
    args: Vec<OsString>,
    /// The append-only file's directory, if any; outlives restarts.
    dir: Option<TempDir>,
}

/// How to start a [`ThrowawayRedis`]; from [`ThrowawayRedis::builder`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `start`"]
pub struct ThrowawayRedisBuilder {
    port: Option<u16>,
    append_only: bool,
    args: Vec<OsString>,
}

impl ThrowawayRedisBuilder {
    /// Listens on `port` instead of a [free one](crate::free_port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Persists to an append-only file (`appendfsync everysec`: Redis writes it before it
    /// answers, so every acknowledged write survives a SIGKILL of the process) in a temp dir
    /// that lives as long as the [`ThrowawayRedis`], across [restarts](ThrowawayRedis::restart).
    /// Without it the server keeps nothing: a restart starts empty.
    pub fn append_only(mut self) -> Self {
        self.append_only = true;
        self
    }

    /// One more command-line argument for `redis-server` (`"--maxmemory"`, then `"1mb"`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the server and waits (at most 10 s) until it answers `PING`. Fails the calling
    /// test, saying how to install it, when `redis-server` is missing.
    pub fn start(self) -> ThrowawayRedis {
        let port = self.port.unwrap_or_else(crate::free_port);
        let mut args: Vec<OsString> = ["--bind", "127.0.0.1", "--save", ""]
            .into_iter()
            .map(OsString::from)
            .collect();
        let dir = if self.append_only {
            let dir = tempfile::Builder::new()
                .prefix("tokenward-redis-")
                .tempdir()
                .unwrap_or_else(|e| panic!("no temp dir for the append-only file: {e}"));
            args.extend(
                ["--appendonly", "yes", "--appendfsync", "everysec", "--dir"].map(Into::into),
            );
            args.push(dir.path().as_os_str().to_owned());
            Some(dir)
        } else {
            args.extend(["--appendonly", "no"].map(Into::into));
            None
        };
        args.extend(self.args);
        let mut server = ThrowawayRedis {
            child: None,
            port,
            args,
            dir,
        };
        server.spawn();
        server
    }
}

impl ThrowawayRedis {
    /// How to start one with more than the defaults.
    pub fn builder() -> ThrowawayRedisBuilder {
        ThrowawayRedisBuilder::default()
    }

    /// Starts one on a free port with the defaults (no persistence).
    pub fn start() -> ThrowawayRedis {
        Self::builder().start()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// SIGKILL, and wait until the process is gone (nothing listens on the port after this).
    /// Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal(&child, "-CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same arguments (and the same append-only
    /// file), killing it first if it still runs; waits until it answers `PING`.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the process stops answering (connections stay open) until [`Self::thaw`].
    pub fn freeze(&self) {
        self.running("freeze", |this, child| {
            assert!(this.signal(child, "-STOP"), "kill -STOP failed");
        });
    }

    /// SIGCONT after [`Self::freeze`].
    pub fn thaw(&self) {
        self.running("thaw", |this, child| {
            assert!(this.signal(child, "-CONT"), "kill -CONT failed");
        });
    }

    fn running(&self, what: &str, f: impl FnOnce(&Self, &Child)) {
        match &self.child {
            Some(child) => f(self, child),
            None => panic!(
                "cannot {what} the redis-server on port {}: it was killed",
                self.port
            ),
        }
    }

    /// Sends `sig` with `kill(1)` (no `unsafe` `libc::kill` here); whether it was delivered.
    fn signal(&self, child: &Child, sig: &str) -> bool {
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn spawn(&mut self) {
        let mut child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{REDIS_SERVER_HINT}: starting it failed: {e}"));
        let deadline = Instant::now() + STARTUP;
        while !answers_ping(self.port) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "redis-server on port {} exited at startup ({status}): is the port taken, \
                     or an argument wrong? {:?}",
                    self.port, self.args
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} did not answer PING within {STARTUP:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.kill();
        // The temp dir (if any) is removed after the process is gone.
        drop(self.dir.take());
    }
}

/// Whether a Redis on 127.0.0.1:`port` answers `PING` (a connection of its own, shared with
/// nothing the test uses).
pub(crate) fn answers_ping(port: u16) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(timeout) else {
        return false;
    };
    conn.set_read_timeout(Some(timeout)).is_ok()
        && redis::cmd("PING")
            .query::<String>(&mut conn)
            .is_ok_and(|pong| pong == "PONG")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(server: &ThrowawayRedis, key: &str) -> Option<String> {
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        redis::cmd("GET").arg(key).query(&mut conn).unwrap()
    }

    fn set(server: &ThrowawayRedis, key: &str) {
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let () = redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query(&mut conn)
            .unwrap();
    }

    #[test]
    fn restart_keeps_data_only_with_an_append_only_file() {
        for (append_only, kept) in [(false, None), (true, Some("v".to_owned()))] {
            let builder = ThrowawayRedis::builder();
            let builder = if append_only {
                builder.append_only()
            } else {
                builder
            };
            let mut server = builder.start();
            set(&server, "k");
            let port = server.port();
            server.kill();
            assert!(!answers_ping(port), "still answering after kill");
            server.kill(); // idempotent
            server.restart();
            assert_eq!(server.port(), port);
            assert_eq!(get(&server, "k"), kept, "append_only {append_only}");
        }
    }

    #[test]
    fn extra_arguments_reach_the_server_and_drop_kills_it() {
        let server = ThrowawayRedis::builder()
            .arg("--maxmemory-policy")
            .arg("noeviction")
            .start();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let policy: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query(&mut conn)
            .unwrap();
        assert_eq!(policy, ["maxmemory-policy", "noeviction"]);
        let port = server.port();
        drop(server);
        assert!(!answers_ping(port));
    }

    #[test]
    fn a_frozen_server_does_not_answer_until_thawed() {
        let server = ThrowawayRedis::start();
        server.freeze();
        assert!(!answers_ping(server.port()));
        server.thaw();
        assert!(answers_ping(server.port()));
        // Dropped while frozen: thawed and killed, not left behind.
        server.freeze();
    }
}
