//! Redis for the tests: tests that need Redis use a real server and never skip.
//!
//! Order of preference:
//! 1. `REDIS_URL` from the environment, as given;
//! 2. a server answering `PING` on 127.0.0.1:6379;
//! 3. a throwaway `redis-server` on a free port, started here and stopped when xtask exits
//!    (Debian's `redis-server` package is installed first when the binary is missing and
//!    xtask runs as root).
//!
//! Otherwise xtask fails and says what to install. The `redis-server` binary itself is
//! always required: the outage tests start and kill their own throwaway servers.
//!
//! `cargo xtask ci` also provisions a Redis Cluster ([`provision_cluster`]):
//! `REDIS_CLUSTER_URLS` from the environment, or three throwaway primaries (`redis-server
//! --cluster-enabled yes`, joined by `redis-cli --cluster create`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, cmd};

/// The Redis the tests use; a server started by xtask is stopped when this is dropped.
pub(crate) struct Redis {
    pub(crate) url: String,
    child: Option<Child>,
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const DEFAULT_ADDR: &str = "127.0.0.1:6379";
const INSTALL_HINT: &str = "install Redis (Debian/Ubuntu: `sudo apt-get install redis-server`; \
     macOS: `brew install redis`) or set REDIS_URL to a server the tests may use";

/// Finds or starts the Redis the tests use.
pub(crate) fn provision() -> Result<Redis> {
    let binary = ensure_binary()?;
    eprintln!("redis-server binary: {}", binary.display());
    if let Ok(url) = std::env::var("REDIS_URL") {
        eprintln!("using REDIS_URL from the environment");
        return Ok(Redis { url, child: None });
    }
    if let Ok(addr) = DEFAULT_ADDR.parse::<SocketAddr>()
        && ping(addr)
    {
        eprintln!("using the Redis answering on {DEFAULT_ADDR}");
        return Ok(Redis {
            url: format!("redis://{DEFAULT_ADDR}"),
            child: None,
        });
    }
    start_throwaway(&binary)
}

fn start_throwaway(binary: &Path) -> Result<Redis> {
    let port = free_port()?;
    let redis = start_server(binary, port, &[])?;
    eprintln!("started a throwaway redis-server on {}", redis.url);
    Ok(redis)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Two distinct free ports for one server: the first is held while the second is picked
/// (two [`free_port`] calls can return the same port, and the server then cannot start).
fn free_port_pair() -> Result<(u16, u16)> {
    let first = TcpListener::bind("127.0.0.1:0")?;
    let second = TcpListener::bind("127.0.0.1:0")?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

/// Starts `binary` listening on 127.0.0.1:`port` (plain text) with `extra` arguments, no
/// persistence, and waits until it answers `PING` there.
fn start_server(binary: &Path, port: u16, extra: &[std::ffi::OsString]) -> Result<Redis> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(binary);
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(extra)
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    eprintln!("$ {}", cmd::display(&command));
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let redis = Redis {
        url: format!("redis://{addr}"),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ping(addr) {
            return Ok(redis);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("the throwaway redis-server on {addr} did not answer PING within 10 s").into())
}

/// The `redis-server` binary, installing Debian's package when it is missing and we are root.
fn ensure_binary() -> Result<PathBuf> {
    if let Some(path) = which("redis-server") {
        return Ok(path);
    }
    if !can_apt_install() {
        return Err(format!("`redis-server` is not installed: {INSTALL_HINT}").into());
    }
    eprintln!("`redis-server` is missing; installing Debian's redis-server package");
    apt_install("redis-server")?;
    which("redis-server").ok_or_else(|| {
        format!("redis-server still missing after apt-get install: {INSTALL_HINT}").into()
    })
}

/// Whether xtask runs as root.
pub(crate) fn is_root() -> bool {
    cmd::read(Command::new("id").arg("-u")).is_ok_and(|out| out.trim() == "0")
}

/// Whether xtask may install a missing server with [`apt_install`]: as root, with `apt-get`.
pub(crate) fn can_apt_install() -> bool {
    is_root() && which("apt-get").is_some()
}

/// Installs Debian's `package` (`apt-get update`, then `apt-get install`).
pub(crate) fn apt_install(package: &str) -> Result {
    cmd::run(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// `program` on `PATH`.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A throwaway `redis-server` speaking TLS, for `cargo xtask demo --redis-tls`: a fresh CA and
/// a server certificate for 127.0.0.1 and `localhost` (rcgen) in `dir`, a TLS port, and a
/// plain-text port on 127.0.0.1 only to see that it is up. Stopped when dropped.
pub(crate) struct TlsRedis {
    /// `rediss://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The CA that signed the server's certificate (PEM), for `--redis-ca`.
    pub(crate) ca_file: PathBuf,
    _server: Redis,
}

/// Starts a [`TlsRedis`] with its certificates in `dir`.
pub(crate) fn start_tls(dir: &Path) -> Result<TlsRedis> {
    let binary = ensure_binary()?;
    let (ca_pem, cert_pem, key_pem) = tls_certificates()?;
    let ca_file = dir.join("redis-ca.pem");
    let (cert_file, key_file) = (dir.join("redis-server.pem"), dir.join("redis-server.key"));
    for (path, content) in [
        (&ca_file, ca_pem),
        (&cert_file, cert_pem),
        (&key_file, key_pem),
    ] {
        std::fs::write(path, content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let (port, tls_port) = free_port_pair()?;
    let mut tls_args: Vec<std::ffi::OsString> = ["--tls-port", &tls_port.to_string()]
        .iter()
        .map(Into::into)
        .collect();
    for (flag, path) in [
        ("--tls-cert-file", &cert_file),
        ("--tls-key-file", &key_file),
        ("--tls-ca-cert-file", &ca_file),
    ] {
        tls_args.extend([flag.into(), path.into()]);
    }
    tls_args.extend(["--tls-auth-clients".into(), "no".into()]);
    let server = start_server(&binary, port, &tls_args)?;
    Ok(TlsRedis {
        url: format!("rediss://127.0.0.1:{tls_port}"),
        ca_file,
        _server: server,
    })
}

/// A fresh CA, and a server certificate it signed for 127.0.0.1 and `localhost`: (CA PEM,
/// certificate PEM, key PEM).
fn tls_certificates() -> Result<(String, String, String)> {
    fn fail(what: &'static str) -> impl Fn(rcgen::Error) -> String {
        move |e| format!("TLS certificates: {what}: {e}")
    }
    let ca_key = rcgen::KeyPair::generate().map_err(fail("CA key"))?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail("CA"))?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tokenward xtask demo CA");
    let ca_pem = ca
        .self_signed(&ca_key)
        .map_err(fail("CA certificate"))?
        .pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().map_err(fail("server key"))?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(fail("server certificate"))?
        .signed_by(&key, &issuer)
        .map_err(fail("signing"))?;
    Ok((ca_pem, cert.pem(), key.serialize_pem()))
}

/// A throwaway Redis Cluster for the tests: three primaries on free loopback ports, every
/// slot assigned, `cluster-require-full-coverage no`; killed when dropped.
pub(crate) struct Cluster {
    /// The seed nodes, `redis://127.0.0.1:PORT,...` (what `REDIS_CLUSTER_URLS` holds).
    pub(crate) urls: String,
    _nodes: Vec<Redis>,
}

/// The environment variable the tests read the cluster's seed nodes from.
pub(crate) const CLUSTER_URLS_VAR: &str = "REDIS_CLUSTER_URLS";

/// The Redis Cluster the tests use: `REDIS_CLUSTER_URLS` from the environment, as given, or
/// a throwaway [`Cluster`] with its node files in `dir`.
pub(crate) fn provision_cluster(dir: &Path) -> Result<Cluster> {
    if let Ok(urls) = std::env::var(CLUSTER_URLS_VAR) {
        eprintln!("using {CLUSTER_URLS_VAR} from the environment");
        return Ok(Cluster {
            urls,
            _nodes: Vec::new(),
        });
    }
    let cluster = start_cluster(dir)?;
    eprintln!("started a throwaway Redis Cluster: {}", cluster.urls);
    Ok(cluster)
}

/// Starts three `redis-server --cluster-enabled yes` primaries (node files in `dir`), joins
/// them with `redis-cli --cluster create` and waits until every node reports
/// `cluster_state:ok`.
pub(crate) fn start_cluster(dir: &Path) -> Result<Cluster> {
    let binary = ensure_binary()?;
    let cli = binary.with_file_name("redis-cli");
    let cli = if cli.is_file() {
        cli
    } else {
        which("redis-cli").ok_or_else(|| format!("`redis-cli` is not installed: {INSTALL_HINT}"))?
    };
    let mut nodes = Vec::with_capacity(3);
    let mut ports = Vec::with_capacity(3);
    for _ in 0..3 {
        // The cluster bus gets a free port of its own (PORT + 10000 may not exist).
        let (port, bus) = free_port_pair()?;
        let args: Vec<std::ffi::OsString> = vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-port".into(),
            bus.to_string().into(),
            "--cluster-config-file".into(),
            format!("nodes-{port}.conf").into(),
            "--cluster-node-timeout".into(),
            "2000".into(),
            "--cluster-require-full-coverage".into(),
            "no".into(),
            "--dir".into(),
            dir.as_os_str().to_owned(),
        ];
        nodes.push(start_server(&binary, port, &args)?);
        ports.push(port);
    }
    let mut create = Command::new(&cli);
    create.args(["--cluster", "create"]);
    for port in &ports {
        create.arg(format!("127.0.0.1:{port}"));
    }
    create.args(["--cluster-replicas", "0", "--cluster-yes"]);
    create.stdout(Stdio::null());
    cmd::run(&mut create)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ports.iter().all(|port| cluster_ok(&cli, *port)) {
        if Instant::now() >= deadline {
            return Err(format!(
                "the throwaway Redis Cluster on ports {ports:?} did not reach cluster_state:ok \
                 within 20 s"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let urls = ports
        .iter()
        .map(|port| format!("redis://127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok(Cluster {
        urls,
        _nodes: nodes,
    })
}

/// Whether the cluster node on 127.0.0.1:`port` says `cluster_state:ok`.
fn cluster_ok(cli: &Path, port: u16) -> bool {
    cmd::read(
        Command::new(cli)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["CLUSTER", "INFO"]),
    )
    .is_ok_and(|info| info.lines().any(|line| line.trim() == "cluster_state:ok"))
}

/// Whether a Redis server answers `PING` at `addr` within half a second.
pub(crate) fn ping(addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err()
    {
        return false;
    }
    let mut reply = [0u8; 16];
    match stream.read(&mut reply) {
        // `+PONG`, or `-NOAUTH` from a server that wants a password: either way it is Redis.
        Ok(n) => reply
            .get(..n)
            .is_some_and(|r| r.starts_with(b"+PONG") || r.starts_with(b"-NOAUTH")),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_pair_is_two_ports() {
        for _ in 0..200 {
            let (a, b) = free_port_pair().unwrap();
            assert_ne!(a, b);
        }
    }

    #[test]
    fn ping_is_false_for_a_silent_or_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts but never answers.
        assert!(!ping(addr));
        drop(listener);
        assert!(!ping(addr));
    }

    #[test]
    fn throwaway_server_starts_answers_and_stops() {
        let binary = ensure_binary().unwrap();
        let redis = start_throwaway(&binary).unwrap();
        let addr: SocketAddr = redis.url.trim_start_matches("redis://").parse().unwrap();
        assert!(ping(addr));
        drop(redis);
        assert!(!ping(addr), "the throwaway server must be stopped on drop");
    }

    #[test]
    fn tls_server_starts_with_its_certificates() {
        let dir = std::env::temp_dir().join(format!("xtask-tls-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let redis = start_tls(&dir).unwrap();
        assert!(
            redis.url.starts_with("rediss://127.0.0.1:"),
            "{}",
            redis.url
        );
        let ca = std::fs::read_to_string(&redis.ca_file).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        drop(redis);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cluster_starts_with_three_primaries_and_stops() {
        let dir = std::env::temp_dir().join(format!("xtask-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = start_cluster(&dir).unwrap();
        let addrs: Vec<SocketAddr> = cluster
            .urls
            .split(',')
            .map(|url| url.trim_start_matches("redis://").parse().unwrap())
            .collect();
        assert_eq!(addrs.len(), 3);
        assert!(addrs.iter().all(|addr| ping(*addr)));
        drop(cluster);
        assert!(!addrs.iter().any(|addr| ping(*addr)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn which_finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("definitely-not-a-program-tokenward").is_none());
    }
}
