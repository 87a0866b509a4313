//! A throwaway Redis Cluster: three `redis-server` primaries of the test's own.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::throwaway::answers_ping;
use crate::tls::WATCHDOG;
use crate::{REDIS_SERVER_HINT, free_ports};

/// The environment variable naming the seed nodes of a Redis Cluster the tests may use
/// (comma-separated `redis://host:port` URLs); `cargo xtask ci` sets it.
pub const CLUSTER_URLS_VAR: &str = "REDIS_CLUSTER_URLS";

/// How long the cluster may take to start and agree on its slots.
const STARTUP: Duration = Duration::from_secs(20);

/// A Redis Cluster of three primaries (no replicas) on free loopback ports, every slot
/// assigned (`redis-cli --cluster create`), `cluster-require-full-coverage no` (a dead primary
/// fails only its own slots) and a 2 s node timeout; no persistence. Its nodes are killed when
/// it is dropped, or when the test process ends: it may live in a `static` shared by a test
/// binary's cases ([`cluster_urls`] does that). A fault test kills a primary
/// ([`kill_node`](Self::kill_node)) and brings it back ([`restart_node`](Self::restart_node)).
///
/// ```no_run
/// use tokenward_testsupport::ThrowawayCluster;
///
/// let cluster = ThrowawayCluster::start();
/// assert_eq!(cluster.urls().len(), 3);
/// ```
#[derive(Debug)]
pub struct ThrowawayCluster {
    nodes: Vec<Node>,
    /// The nodes' `nodes-PORT.conf` files (and append-only files).
    dir: TempDir,
    /// Whether the nodes keep an append-only file ([`ThrowawayCluster::start_append_only`]).
    append_only: bool,
    /// The nodes' TLS ports ([`ThrowawayCluster::start_tls`]), in node order; empty without.
    tls_ports: Vec<u16>,
}

/// One primary: its watchdog shell (closing its stdin kills the server), its port and the
/// arguments that start it again.
#[derive(Debug)]
struct Node {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    port: u16,
    args: Vec<OsString>,
}

impl ThrowawayCluster {
    /// Starts three primaries, makes them a cluster and waits (at most 20 s) until every node
    /// says `cluster_state:ok`. Fails the calling test, saying how to install them, when
    /// `redis-server` or `redis-cli` is missing.
    pub fn start() -> ThrowawayCluster {
        Self::start_with(false, false)
    }

    /// [`start`](Self::start), with every node keeping an append-only file (fsync every
    /// second; a node stopped by [`kill_node`](Self::kill_node) shuts down cleanly), so a
    /// [restarted](Self::restart_node) node comes back with its keys, as a persistent
    /// production node would.
    pub fn start_append_only() -> ThrowawayCluster {
        Self::start_with(true, false)
    }

    /// [`start`](Self::start), the nodes also speaking TLS (`tls-cluster yes`: the cluster bus
    /// too) with a certificate for `localhost` and 127.0.0.1 from a throwaway CA
    /// ([`ca_file`](Self::ca_file)); clients reach them at [`tls_urls`](Self::tls_urls), and
    /// a TLS client is told the nodes' TLS ports. The plain ports stay, for administration.
    pub fn start_tls() -> ThrowawayCluster {
        Self::start_with(false, true)
    }

    fn start_with(append_only: bool, tls: bool) -> ThrowawayCluster {
        let dir = tempfile::Builder::new()
            .prefix("tokenward-redis-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no temp dir for the cluster's node files: {e}"));
        if tls {
            crate::tls::write_certificates(
                dir.path(),
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            );
        }
        let mut cluster = ThrowawayCluster {
            nodes: Vec::new(),
            dir,
            append_only,
            tls_ports: Vec::new(),
        };
        for _ in 0..3 {
            // The node's ports picked together, so that none is picked twice (its bus once
            // took its TLS port, and the node could not start).
            let [port, bus, tls_port] = free_ports();
            if tls {
                cluster.tls_ports.push(tls_port);
            }
            let args = cluster.node_args(port, bus);
            let mut node = Node {
                child: None,
                stdin: None,
                port,
                args,
            };
            node.spawn();
            cluster.nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        let create_ports = if tls {
            create.arg("--tls").arg("--cacert").arg(cluster.ca_file());
            cluster.tls_ports.clone()
        } else {
            cluster.ports()
        };
        create.arg("--cluster").arg("create");
        for port in create_ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = create
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{REDIS_SERVER_HINT} (and redis-cli): {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + STARTUP;
        while !cluster.ports().into_iter().all(cluster_ok) {
            assert!(
                Instant::now() < deadline,
                "the throwaway cluster on {:?} did not reach cluster_state:ok within {STARTUP:?}",
                cluster.ports()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// The nodes' `redis://127.0.0.1:PORT` URLs (seed nodes for a cluster client).
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The nodes' `rediss://127.0.0.1:TLS_PORT` URLs ([`start_tls`](Self::start_tls); empty
    /// otherwise).
    pub fn tls_urls(&self) -> Vec<String> {
        self.tls_ports
            .iter()
            .map(|port| format!("rediss://127.0.0.1:{port}"))
            .collect()
    }

    /// The throwaway CA's certificate (PEM) of a [`start_tls`](Self::start_tls) cluster.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// Kills primary `index` (0..3): its slots fail until it is
    /// [restarted](Self::restart_node); with `cluster-require-full-coverage no` the other
    /// primaries keep serving theirs.
    pub fn kill_node(&mut self, index: usize) {
        if let Some(node) = self.nodes.get_mut(index) {
            node.stop();
        }
    }

    /// Starts primary `index` again on its port, with its node file: it rejoins the cluster
    /// with its slots (empty, unless the cluster was started
    /// [append-only](Self::start_append_only)). Waits until every node says
    /// `cluster_state:ok` again.
    pub fn restart_node(&mut self, index: usize) {
        if let Some(node) = self.nodes.get_mut(index) {
            node.stop();
            node.spawn();
        }
        let deadline = Instant::now() + STARTUP;
        while !self.ports().into_iter().all(cluster_ok) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not recover within {STARTUP:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The arguments of a node on `port`, its cluster bus on `bus` (a free port of its own:
    /// `port + 10000` may not exist).
    fn node_args(&self, port: u16, bus: u16) -> Vec<OsString> {
        let file = |name: &str| self.dir.path().join(name).into_os_string();
        let tls: Vec<OsString> = match self.tls_ports.get(self.nodes.len()) {
            Some(tls_port) => vec![
                "--tls-port".into(),
                tls_port.to_string().into(),
                "--tls-cert-file".into(),
                file("server.pem"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
                "--tls-cluster".into(),
                "yes".into(),
            ],
            None => Vec::new(),
        };
        [
            "--port",
            &port.to_string(),
            "--cluster-port",
            &bus.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &format!("nodes-{port}.conf"),
            "--cluster-node-timeout",
            "2000",
            "--cluster-require-full-coverage",
            "no",
            "--save",
            "",
            "--appendonly",
            if self.append_only { "yes" } else { "no" },
            // One append-only directory per node: they share `dir`.
            "--appenddirname",
            &format!("appendonly-{port}"),
            "--dir",
        ]
        .into_iter()
        .map(OsString::from)
        .chain([self.dir.path().as_os_str().to_owned()])
        .chain(tls)
        .collect()
    }
}

impl Node {
    /// Starts the server under its watchdog and waits for `PING`.
    fn spawn(&mut self) {
        let port = self.port;
        let args = &self.args;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg("redis-server")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh to start redis-server: {e}"));
        let stdin = child.stdin.take();
        let deadline = Instant::now() + STARTUP;
        while !answers_ping(port) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "cluster node on port {port} exited at startup ({status}): is redis-server \
                     installed ({REDIS_SERVER_HINT}) and the port free? {args:?}"
                );
            }
            if Instant::now() >= deadline {
                drop(stdin);
                let _ = child.wait();
                panic!("cluster node on port {port} did not answer PING within {STARTUP:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        self.stdin = stdin;
    }

    /// Kills the server (EOF on its watchdog's stdin) and waits until it is gone.
    fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        let deadline = Instant::now() + STARTUP;
        while answers_ping(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            // EOF on the watchdog's stdin: it kills the server, then exits.
            drop(node.stdin.take());
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.wait();
            }
        }
    }
}

/// Whether the node on 127.0.0.1:`port` reports `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query::<String>(&mut conn)
        .is_ok_and(|info| info.lines().any(|line| line.trim() == "cluster_state:ok"))
}

/// The seed nodes of the Redis Cluster the tests use: [`CLUSTER_URLS_VAR`] (comma-separated
/// URLs) when set — `cargo xtask ci` sets it — or else a [`ThrowawayCluster`] started on first
/// use and shared by the whole test binary (it ends with the process). Tests never skip.
pub fn cluster_urls() -> Vec<String> {
    if let Ok(urls) = std::env::var(CLUSTER_URLS_VAR) {
        let urls: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        if !urls.is_empty() {
            return urls;
        }
    }
    static CLUSTER: OnceLock<ThrowawayCluster> = OnceLock::new();
    CLUSTER.get_or_init(ThrowawayCluster::start).urls()
}

/// Deletes every key under `prefix` on every node of `urls` (the cluster's primaries), one
/// key per `UNLINK` (keys of several slots in one command would be `CROSSSLOT`); returns
/// how many were deleted.
pub async fn delete_prefix_on_cluster(urls: &[String], prefix: &str) -> redis::RedisResult<usize> {
    let mut deleted = 0;
    for url in urls {
        let mut conn = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        for key in crate::keys_under(&mut conn, prefix).await? {
            let n: usize = redis::cmd("UNLINK")
                .arg(&key)
                .query_async(&mut conn)
                .await?;
            deleted += n;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_three_primaries_that_own_every_slot_and_stops() {
        let cluster = ThrowawayCluster::start();
        let ports = cluster.ports();
        assert_eq!(ports.len(), 3);
        let client = redis::Client::open(cluster.urls()[0].as_str()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
        drop(cluster);
        assert!(!ports.into_iter().any(answers_ping));
    }
}
