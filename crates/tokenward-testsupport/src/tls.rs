//! A `redis-server` of the test's own that speaks TLS: [`ThrowawayTlsRedis`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::throwaway::{REDIS_SERVER_HINT, answers_ping};

/// How long a server may take to answer `PING` after it was started.
const STARTUP: Duration = Duration::from_secs(10);

/// Runs `redis-server "$@"` and kills it as soon as the test process closes the pipe on the
/// shell's standard input — when the [`ThrowawayTlsRedis`] is dropped, or when the process
/// ends (also by a crash or SIGKILL), so a server kept in a `static` is never left behind.
/// The shell exits when the server does (a wrong argument is then seen at once).
pub(crate) const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null &
server=$!
(read line <&3; kill "$server" 2>/dev/null) &
wait "$server""#;

/// A `redis-server` child process on 127.0.0.1 with a TLS port, certificates from a throwaway
/// CA (made with rcgen on ring, in a temp dir), and a plain-text port for the test's own
/// administration (redis-rs is built without TLS here); no persistence. Killed when dropped,
/// or when the test process ends: it may live in a `static` shared by a test binary's cases.
///
/// ```
/// use tokenward_testsupport::ThrowawayTlsRedis;
///
/// // Client certificates required (mutual TLS); the server certificate is for
/// // `localhost` and 127.0.0.1 unless `server_names` says otherwise.
/// let server = ThrowawayTlsRedis::builder().require_client_certs().start();
/// assert!(server.tls_url().starts_with("rediss://127.0.0.1:"));
/// assert!(server.ca_file().exists() && server.client_cert_file().exists());
/// ```
#[derive(Debug)]
pub struct ThrowawayTlsRedis {
    child: Option<Child>,
    /// Closing it stops the server (see [`WATCHDOG`]).
    stdin: Option<ChildStdin>,
    port: u16,
    tls_port: u16,
    dir: TempDir,
}

/// How to start a [`ThrowawayTlsRedis`]; from [`ThrowawayTlsRedis::builder`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `start`"]
pub struct ThrowawayTlsRedisBuilder {
    server_names: Option<Vec<String>>,
    require_client_certs: bool,
    args: Vec<OsString>,
}

impl ThrowawayTlsRedisBuilder {
    /// The names (DNS names or IP addresses) the server's certificate is valid for; default
    /// `localhost` and `127.0.0.1`. A certificate for another name only is what a test of a
    /// wrong hostname needs.
    pub fn server_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.server_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Refuses clients without a certificate from the CA (`--tls-auth-clients yes`); by
    /// default they are optional (`no`).
    pub fn require_client_certs(mut self) -> Self {
        self.require_client_certs = true;
        self
    }

    /// One more command-line argument for `redis-server`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Writes the certificates, starts the server and waits (at most 10 s) until it answers
    /// `PING`. Fails the calling test, saying how to install it, when `redis-server` is
    /// missing.
    pub fn start(self) -> ThrowawayTlsRedis {
        let dir = tempfile::Builder::new()
            .prefix("tokenward-redis-tls-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no temp dir for the TLS certificates: {e}"));
        let names = self
            .server_names
            .unwrap_or_else(|| vec!["localhost".to_owned(), "127.0.0.1".to_owned()]);
        write_certificates(dir.path(), names);
        let [port, tls_port] = crate::free_ports();
        let file = |name: &str| dir.path().join(name).into_os_string();
        let mut args: Vec<OsString> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string().into(),
            "--tls-port".into(),
            tls_port.to_string().into(),
            "--tls-cert-file".into(),
            file("server.pem"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            (if self.require_client_certs {
                "yes"
            } else {
                "no"
            })
            .into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
        ];
        args.extend(self.args);
        spawn(args, port, tls_port, dir)
    }
}

impl ThrowawayTlsRedis {
    /// How to start one with more than the defaults.
    pub fn builder() -> ThrowawayTlsRedisBuilder {
        ThrowawayTlsRedisBuilder::default()
    }

    /// Starts one with the defaults (certificate for `localhost` and 127.0.0.1, client
    /// certificates optional).
    pub fn start() -> ThrowawayTlsRedis {
        Self::builder().start()
    }

    /// `rediss://127.0.0.1:TLS_PORT`.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// `redis://127.0.0.1:PORT`: the plain-text port of the same server, for the test's own
    /// administration (and for tests of a TLS client talking to a plain-text port).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The plain-text port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The throwaway CA's certificate (PEM), which signed the server's and the client's.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A client certificate (PEM) the throwaway CA signed, for mutual TLS.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// The private key (PEM, PKCS#8) of [`Self::client_cert_file`].
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    /// The certificate (PEM) of another CA, which signed nothing this server presents: what
    /// a test of a wrong CA trusts.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }
}

impl Drop for ThrowawayTlsRedis {
    fn drop(&mut self) {
        // EOF on the watchdog's stdin: it kills the server, then exits.
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// Starts the watchdog shell with `redis-server` and `args`, and waits for `PING`.
fn spawn(args: Vec<OsString>, port: u16, tls_port: u16, dir: TempDir) -> ThrowawayTlsRedis {
    if let Err(e) = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!("{REDIS_SERVER_HINT}: starting it failed: {e}");
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg("redis-server")
        .args(&args)
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
                "redis-server with TLS on ports {port}/{tls_port} exited at startup ({status}): \
                 is a port taken, an argument wrong, or redis-server built without TLS? {args:?}"
            );
        }
        if Instant::now() >= deadline {
            drop(stdin);
            let _ = child.wait();
            panic!("redis-server with TLS on port {port} did not answer PING within {STARTUP:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ThrowawayTlsRedis {
        child: Some(child),
        stdin,
        port,
        tls_port,
        dir,
    }
}

/// Writes `ca.pem`, `server.pem` + `server.key` (for `names`), `client.pem` + `client.key`
/// (all signed by the CA) and `other-ca.pem` (a CA that signed nothing) into `dir`.
pub(crate) fn write_certificates(dir: &Path, names: Vec<String>) {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        panic!("throwaway TLS certificates: {what}: {e}")
    };
    let key = || rcgen::KeyPair::generate().unwrap_or_else(|e| fail("key generation", &e));
    let ca = |name: &str| {
        let key = key();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| fail("CA parameters", &e));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| fail("CA certificate", &e));
        (cert.pem(), rcgen::Issuer::new(params, key))
    };
    let leaf = |names: Vec<String>, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>| {
        let key = key();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap_or_else(|e| fail("certificate parameters", &e))
            .signed_by(&key, issuer)
            .unwrap_or_else(|e| fail("signing a certificate", &e));
        (cert.pem(), key.serialize_pem())
    };
    let (ca_pem, issuer) = ca("tokenward throwaway test CA");
    let (other_ca_pem, _) = ca("tokenward other test CA");
    let (server_pem, server_key) = leaf(names, &issuer);
    let (client_pem, client_key) = leaf(vec!["tokenward-test-client".to_owned()], &issuer);
    for (name, content) in [
        ("ca.pem", ca_pem),
        ("other-ca.pem", other_ca_pem),
        ("server.pem", server_pem),
        ("server.key", server_key),
        ("client.pem", client_pem),
        ("client.key", client_key),
    ] {
        std::fs::write(dir.join(name), content).unwrap_or_else(|e| fail(name, &e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_tls_writes_the_certificates_and_dies_on_drop() {
        let server = ThrowawayTlsRedis::builder()
            .require_client_certs()
            .server_names(["redis.test"])
            .start();
        for file in [
            server.ca_file(),
            server.other_ca_file(),
            server.client_cert_file(),
            server.client_key_file(),
        ] {
            let pem = std::fs::read_to_string(&file).unwrap();
            assert!(pem.starts_with("-----BEGIN"), "{}", file.display());
        }
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let auth: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("tls-auth-clients")
            .query(&mut conn)
            .unwrap();
        assert_eq!(auth, ["tls-auth-clients", "yes"]);
        let tls_port: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("tls-port")
            .query(&mut conn)
            .unwrap();
        assert_eq!(tls_port[1], server.tls_port().to_string());
        let (port, tls) = (server.port(), server.tls_port());
        drop(server);
        assert!(!answers_ping(port));
        assert!(std::net::TcpStream::connect(("127.0.0.1", tls)).is_err());
    }
}
