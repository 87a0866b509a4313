//! Test support for the Redis fault-injection tests: a TCP [`FaultProxy`] between the stores
//! and Redis whose behaviour is switched at run time, and a throwaway `redis-server` with an
//! append-only file, so that it can be SIGKILLed and restarted on the same port with its data.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything as it comes.
    Pass,
    /// Forward every chunk, in order, this long after it was read (each direction: a round
    /// trip gains twice the delay). Added latency, not a throughput cap.
    Delay(Duration),
    /// Close every connection and stop listening: new connections are refused.
    Drop,
    /// Accept connections and read what clients send, but never forward or answer anything —
    /// no FIN, no RST. A connection that saw a black hole stays one for good (as behind a
    /// firewall that lost its state): bytes are never lost *inside* a live TCP stream, so it
    /// cannot resume. Only connections opened after [`Mode::Pass`] is back work again.
    BlackHole,
}

/// A TCP proxy on `127.0.0.1:<random port>` in front of `upstream`.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    supervisor: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding to `upstream` in [`Mode::Pass`].
    pub async fn start(upstream: SocketAddr) -> Self {
        let std = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = std.local_addr().unwrap();
        drop(std);
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let listener = listen(addr).await;
        let supervisor = tokio::spawn(supervise(listener, addr, upstream, mode_rx));
        FaultProxy {
            addr,
            mode,
            supervisor,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Switches the mode (existing connections follow at once).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Back to [`Mode::Pass`].
    pub fn recover(&self) {
        self.set(Mode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

async fn listen(addr: SocketAddr) -> tokio::net::TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(listener) => return listener,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "proxy cannot listen on {addr}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Accepts connections while the mode is not `Drop`; in `Drop` the listener is closed (new
/// connections are refused) until the mode changes again.
async fn supervise(
    mut listener: tokio::net::TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    loop {
        if *mode.borrow_and_update() == Mode::Drop {
            drop(listener);
            while *mode.borrow_and_update() == Mode::Drop {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            listener = listen(addr).await;
        }
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                conns.retain(|c| !c.is_finished());
                conns.push(tokio::spawn(serve(client, upstream, mode.clone())));
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    for c in conns {
        c.abort();
    }
}

/// One client connection.
async fn serve(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let _ = client.set_nodelay(true);
    let (mut client_r, client_w) = client.into_split();
    let mut holed = *mode.borrow_and_update() == Mode::BlackHole;
    let mut buf_c = vec![0u8; 16 * 1024];
    if holed {
        // Read and discard forever; never connect upstream, never answer.
        let _keep_open = client_w;
        loop {
            tokio::select! {
                r = client_r.read(&mut buf_c) => if matches!(r, Ok(0) | Err(_)) { return },
                changed = mode.changed() => {
                    if changed.is_err() || *mode.borrow_and_update() == Mode::Drop {
                        return;
                    }
                }
            }
        }
    }
    let Ok(Ok(server)) =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(upstream)).await
    else {
        return; // Upstream down: the client sees its connection closed.
    };
    let _ = server.set_nodelay(true);
    let (mut server_r, server_w) = server.into_split();
    let (to_server, rx) = mpsc::unbounded_channel();
    let up = tokio::spawn(writer(rx, server_w));
    let (to_client, rx) = mpsc::unbounded_channel();
    let down = tokio::spawn(writer(rx, client_w));
    let mut buf_s = vec![0u8; 16 * 1024];
    loop {
        let (read, to) = tokio::select! {
            r = client_r.read(&mut buf_c) => (r.map(|n| buf_c[..n].to_vec()), &to_server),
            r = server_r.read(&mut buf_s) => (r.map(|n| buf_s[..n].to_vec()), &to_client),
            changed = mode.changed() => {
                if changed.is_err() {
                    break;
                }
                match *mode.borrow_and_update() {
                    Mode::Drop => break,
                    Mode::BlackHole => holed = true,
                    Mode::Pass | Mode::Delay(_) => {}
                }
                continue;
            }
        };
        let Ok(chunk) = read else { break };
        if chunk.is_empty() {
            break;
        }
        let now = Instant::now();
        let at = match *mode.borrow() {
            Mode::Drop => break,
            Mode::BlackHole => {
                holed = true;
                continue;
            }
            _ if holed => continue,
            Mode::Pass => now,
            Mode::Delay(d) => now + d,
        };
        if to.send((at, chunk)).is_err() {
            break;
        }
    }
    // Dropping both read halves and the writers closes both sockets.
    up.abort();
    down.abort();
}

async fn writer(mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>, mut w: OwnedWriteHalf) {
    while let Some((at, chunk)) = rx.recv().await {
        tokio::time::sleep_until(at.into()).await;
        if w.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop (for the Redis data).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "tokenward-faults-{}-{nanos:x}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` child with an append-only file in a directory the test owns, killed on
/// drop. `appendfsync everysec`: Redis `write()`s the AOF before it answers, so every write
/// it acknowledged survives a SIGKILL of the process (only a machine crash loses up to 1 s).
pub struct ThrowawayRedis {
    child: Child,
    pub port: u16,
    reaped: bool,
}

impl ThrowawayRedis {
    /// Starts one on `port` with its data in `dir` (reloading what is there) and waits (at
    /// most 10 s) until it answers PING.
    pub fn start(port: u16, dir: &Path) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the fault tests start throwaway Redis servers and need `redis-server` on \
                     PATH (Debian/Ubuntu: `apt-get install redis-server`): {e}"
                )
            });
        let server = ThrowawayRedis {
            child,
            port,
            reaped: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping_blocking(port) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.reaped = true;
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn freeze(&self, stop: bool) {
        let sig = if stop { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a Redis on `port` answers PING (by hand, sharing nothing with the test).
pub fn ping_blocking(port: u16) -> bool {
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
