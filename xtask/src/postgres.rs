//! PostgreSQL for the tests: tests that need PostgreSQL use a real server and never skip.
//!
//! Order of preference:
//! 1. `DATABASE_URL` from the environment, as given;
//! 2. `postgres://postgres@127.0.0.1:5432/postgres`, when a PostgreSQL there lets `postgres`
//!    in without a password (a real startup handshake, [`probe`]);
//! 3. a throwaway cluster, started here and stopped when xtask exits: `initdb` into a fresh
//!    temp dir, `postgres` on a free port of 127.0.0.1 (its socket in that dir, `fsync`
//!    off), `pg_ctl stop` at the end. Debian's `postgresql` package is installed first when
//!    `initdb` is missing and xtask runs as root; as root, the server runs as the `postgres`
//!    system user (initdb refuses root).
//!
//! Otherwise xtask fails and says what to install. Tests get the URL as `DATABASE_URL`;
//! each works in a schema of its own (`tokenward_testsupport::TestSchema`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::{apt_install, can_apt_install, free_port, is_root, which};
use crate::workdir::WorkDir;
use crate::{Result, cmd};

/// The environment variable the tests read the server's URL from.
pub(crate) const DATABASE_URL_VAR: &str = "DATABASE_URL";

/// Where a local PostgreSQL is looked for when `DATABASE_URL` is not set.
const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5432);

const INSTALL_HINT: &str = "install PostgreSQL's server (Debian/Ubuntu: `sudo apt-get install \
     postgresql`, whose initdb and pg_ctl are in /usr/lib/postgresql/<version>/bin; macOS: `brew \
     install postgresql`) or set DATABASE_URL to a server the tests may use";

/// How long a throwaway server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL the tests use; a server started by xtask is stopped when this is dropped.
pub(crate) struct Postgres {
    pub(crate) url: String,
    /// Held for its drop: stops the throwaway server, if xtask started one.
    _server: Option<Server>,
}

/// Finds or starts the PostgreSQL the tests use.
pub(crate) fn provision() -> Result<Postgres> {
    provision_with(std::env::var(DATABASE_URL_VAR).ok(), DEFAULT_ADDR)
}

/// [`provision`] with the environment's `DATABASE_URL` and the local address to try given.
fn provision_with(from_env: Option<String>, local: SocketAddr) -> Result<Postgres> {
    if let Some(url) = from_env {
        eprintln!("using {DATABASE_URL_VAR} from the environment");
        return Ok(Postgres { url, _server: None });
    }
    match probe(local) {
        Probe::Ready => {
            eprintln!("using the PostgreSQL answering on {local}");
            return Ok(Postgres {
                url: url_of(local),
                _server: None,
            });
        }
        Probe::Refused(why) => eprintln!(
            "the PostgreSQL on {local} does not let `postgres` in without a password ({why}); \
             starting a throwaway one (set {DATABASE_URL_VAR} to use that server)"
        ),
        Probe::NotReady => eprintln!(
            "the PostgreSQL on {local} is starting up or shutting down; starting a throwaway one"
        ),
        Probe::NoServer => {}
    }
    let postgres = start_throwaway()?;
    eprintln!("started a throwaway PostgreSQL on {}", postgres.url);
    Ok(postgres)
}

/// `postgres://postgres@ADDR/postgres`.
fn url_of(addr: SocketAddr) -> String {
    format!("postgres://postgres@{addr}/postgres")
}

/// A throwaway server: `postgres` in the foreground (so a Ctrl-C reaches it too, where
/// `pg_ctl start` would detach it), stopped by `pg_ctl stop` on drop, its directory removed
/// after that.
struct Server {
    child: Child,
    bin: PathBuf,
    data: PathBuf,
    /// The user it runs as, when xtask is root.
    user: Option<String>,
    dir: WorkDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Quietly, like killing a throwaway redis-server: fast shutdown, then immediate.
        let stopped = ["fast", "immediate"].iter().any(|mode| {
            let mut stop = self.command("pg_ctl");
            stop.arg("stop")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", mode, "-w", "-t", "10"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            stop.status().is_ok_and(|status| status.success())
        });
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Server {
    /// The PostgreSQL program `name`, run as the server's user, in its directory.
    fn command(&self, name: &str) -> Command {
        as_user(self.user.as_deref(), &self.bin.join(name), self.dir.path())
    }

    /// The last lines of the server's log, for an error message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines
            .get(lines.len().saturating_sub(20)..)
            .unwrap_or_default()
            .join("\n")
    }
}

/// `program`, run as `user` (through `runuser`) when given, in `dir`.
fn as_user(user: Option<&str>, program: &Path, dir: &Path) -> Command {
    let mut command = match user {
        Some(user) => {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", user, "--"]).arg(program);
            runuser
        }
        None => Command::new(program),
    };
    command.current_dir(dir).stdin(Stdio::null());
    command
}

/// Starts a throwaway cluster on a free port and waits until it lets `postgres` in.
fn start_throwaway() -> Result<Postgres> {
    let bin = ensure_binaries()?;
    let user = if is_root() {
        Some(ensure_user()?)
    } else {
        None
    };
    let dir = WorkDir::create("xtask-postgres")?;
    if let Some(user) = &user {
        cmd::run(Command::new("chown").arg(user).arg(dir.path()))?;
    }
    let data = dir.path().join("data");
    let mut initdb = as_user(user.as_deref(), &bin.join("initdb"), dir.path());
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
        .arg("--no-sync")
        .stdout(Stdio::null());
    cmd::run(&mut initdb)?;

    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log_path = dir.path().join("postgres.log");
    let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut postgres = as_user(user.as_deref(), &bin.join("postgres"), dir.path());
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.path().display()))
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        .stdout(log.try_clone()?)
        .stderr(log);
    eprintln!("$ {}", cmd::display(&postgres));
    let child = postgres
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.join("postgres").display()))?;
    let mut server = Server {
        child,
        bin,
        data,
        user,
        dir,
    };
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "the throwaway PostgreSQL exited ({status}); its log ({}):\n{}",
                log_path.display(),
                server.log_tail()
            )
            .into());
        }
        if probe(addr) == Probe::Ready {
            return Ok(Postgres {
                url: url_of(addr),
                _server: Some(server),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "the throwaway PostgreSQL on {addr} did not accept connections within {}s; its log:\n{}",
        STARTUP_TIMEOUT.as_secs(),
        server.log_tail()
    )
    .into())
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, installing Debian's package when
/// they are missing and we are root.
fn ensure_binaries() -> Result<PathBuf> {
    if let Some(dir) = find_binaries() {
        return Ok(dir);
    }
    if !can_apt_install() {
        return Err(format!("PostgreSQL's initdb is not installed: {INSTALL_HINT}").into());
    }
    eprintln!("`initdb` is missing; installing Debian's postgresql package");
    apt_install("postgresql")?;
    find_binaries()
        .ok_or_else(|| format!("initdb still missing after apt-get install: {INSTALL_HINT}").into())
}

/// `initdb`'s directory, where `pg_ctl` and `postgres` must be too: the `initdb` on `PATH`
/// (links followed: /usr/local/bin may link to one), else Debian's newest
/// /usr/lib/postgresql/<version>/bin.
fn find_binaries() -> Option<PathBuf> {
    let on_path = which("initdb").map(|initdb| std::fs::canonicalize(&initdb).unwrap_or(initdb));
    let mut debian: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<std::result::Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin/initdb")))
        })
        .collect();
    debian.sort_by(|a, b| b.0.cmp(&a.0));
    on_path
        .into_iter()
        .chain(debian.into_iter().map(|(_, initdb)| initdb))
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
        .find(|dir| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|p| dir.join(p).is_file())
        })
}

/// The unprivileged user a throwaway server runs as when xtask is root: `postgres` (Debian's
/// package creates it), created as a system user if missing.
fn ensure_user() -> Result<String> {
    const USER: &str = "postgres";
    if which("runuser").is_none() {
        return Err(format!(
            "xtask runs as root and initdb refuses root: a throwaway PostgreSQL needs `runuser` \
             (util-linux) to run as `{USER}`; or set {DATABASE_URL_VAR}"
        )
        .into());
    }
    if cmd::read(Command::new("id").args(["-u", USER])).is_err() {
        eprintln!("creating the system user `{USER}` for a throwaway PostgreSQL");
        cmd::run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ]))?;
    }
    Ok(USER.to_owned())
}

/// What answered a PostgreSQL startup handshake.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Nothing, or something that is not PostgreSQL.
    NoServer,
    /// A PostgreSQL starting up or shutting down (SQLSTATE 57P03).
    NotReady,
    /// A PostgreSQL that would not let `postgres` into `postgres` without a password: why.
    Refused(String),
    /// A PostgreSQL that let `postgres` into `postgres` (authentication OK).
    Ready,
}

/// The largest message [`probe`] reads; the handshake's are far smaller.
const MAX_MESSAGE: usize = 8192;

/// Sends a protocol 3.0 startup message for user and database `postgres` to `addr` and
/// reads the answer, each step bounded by a second (what `pg_isready` does, without it).
fn probe(addr: SocketAddr) -> Probe {
    let timeout = Duration::from_secs(1);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return Probe::NoServer;
    };
    let mut params = Vec::new();
    for text in ["user", "postgres", "database", "postgres", ""] {
        params.extend_from_slice(text.as_bytes());
        params.push(0);
    }
    let Ok(len) = u32::try_from(8 + params.len()) else {
        return Probe::NoServer;
    };
    let mut startup = Vec::with_capacity(8 + params.len());
    startup.extend_from_slice(&len.to_be_bytes());
    startup.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    startup.extend_from_slice(&params);
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
        || stream.write_all(&startup).is_err()
    {
        return Probe::NoServer;
    }
    let Some((kind, body)) = read_message(&mut stream) else {
        return Probe::NoServer;
    };
    let probe = answer(kind, &body);
    if probe == Probe::Ready {
        // Terminate, so the server logs no unexpected end of file.
        let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
    }
    probe
}

/// One backend message: its type byte and body.
fn read_message(stream: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).ok()?;
    let [kind, len @ ..] = header;
    let len = usize::try_from(u32::from_be_bytes(len))
        .ok()?
        .checked_sub(4)?;
    if len > MAX_MESSAGE {
        return None;
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some((kind, body))
}

/// What the first answer to a startup message says.
fn answer(kind: u8, body: &[u8]) -> Probe {
    match kind {
        // AuthenticationOk is code 0; any other code asks for a password or more.
        b'R' => match body
            .first_chunk::<4>()
            .map(|code| u32::from_be_bytes(*code))
        {
            Some(0) => Probe::Ready,
            Some(_) => Probe::Refused("it asks for a password".to_owned()),
            None => Probe::NoServer,
        },
        b'E' => {
            let (mut code, mut message) = ("", "");
            for field in body.split(|&b| b == 0) {
                if let Some((&tag, text)) = field.split_first() {
                    let text = std::str::from_utf8(text).unwrap_or_default();
                    match tag {
                        b'C' => code = text,
                        b'M' => message = text,
                        _ => {}
                    }
                }
            }
            match code {
                "" => Probe::NoServer,
                "57P03" => Probe::NotReady,
                code => Probe::Refused(format!("{message} ({code})")),
            }
        }
        _ => Probe::NoServer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn error_body(fields: &[(u8, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (tag, text) in fields {
            body.push(*tag);
            body.extend_from_slice(text.as_bytes());
            body.push(0);
        }
        body.push(0);
        body
    }

    #[test]
    fn answers_are_read_as_postgres_would_mean_them() {
        assert_eq!(answer(b'R', &[0, 0, 0, 0]), Probe::Ready);
        assert!(matches!(answer(b'R', &[0, 0, 0, 10]), Probe::Refused(_)));
        assert_eq!(answer(b'R', &[0]), Probe::NoServer);
        let starting = error_body(&[(b'S', "FATAL"), (b'C', "57P03"), (b'M', "starting up")]);
        assert_eq!(answer(b'E', &starting), Probe::NotReady);
        let refused = error_body(&[(b'C', "28000"), (b'M', "no pg_hba.conf entry")]);
        assert_eq!(
            answer(b'E', &refused),
            Probe::Refused("no pg_hba.conf entry (28000)".to_owned())
        );
        assert_eq!(answer(b'E', &[]), Probe::NoServer);
        assert_eq!(answer(b'H', b"TTP/1.1 400"), Probe::NoServer);
        // A length beyond the cap, or shorter than itself, is not read.
        assert_eq!(read_message(&mut &[b'R', 0, 1, 0, 0][..]), None);
        assert_eq!(read_message(&mut &[b'R', 0, 0, 0, 3][..]), None);
        assert_eq!(
            read_message(&mut &[b'R', 0, 0, 0, 8, 0, 0, 0, 0][..]),
            Some((b'R', vec![0, 0, 0, 0]))
        );
    }

    #[test]
    fn probe_is_no_server_for_a_silent_closed_or_foreign_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts but never answers.
        assert_eq!(probe(addr), Probe::NoServer);
        drop(listener);
        assert_eq!(probe(addr), Probe::NoServer);
        // Answers, but not as PostgreSQL.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let http = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        });
        assert_eq!(probe(addr), Probe::NoServer);
        http.join().unwrap();
    }

    #[test]
    fn the_environment_url_is_used_as_given() {
        let url = "postgres://u:p@db.invalid:1/x?sslmode=require";
        let closed = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let postgres = provision_with(Some(url.to_owned()), closed).unwrap();
        assert_eq!(postgres.url, url);
        assert!(postgres._server.is_none());
    }

    /// Nothing on the local address: a throwaway cluster is started (as `postgres` when
    /// root), answers, is then found on its address like a local server, and is stopped and
    /// removed on drop.
    #[test]
    fn throwaway_cluster_starts_is_found_and_stops() {
        let closed = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let throwaway = provision_with(None, closed).unwrap();
        let server = throwaway._server.as_ref().unwrap();
        let dir = server.dir.path().to_owned();
        let addr: SocketAddr = throwaway
            .url
            .trim_start_matches("postgres://postgres@")
            .trim_end_matches("/postgres")
            .parse()
            .unwrap();
        assert_ne!(addr, closed);
        assert_eq!(probe(addr), Probe::Ready);

        let found = provision_with(None, addr).unwrap();
        assert_eq!(found.url, throwaway.url);
        assert!(found._server.is_none(), "a second server was started");

        drop(throwaway);
        assert_eq!(probe(addr), Probe::NoServer, "still running after drop");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
