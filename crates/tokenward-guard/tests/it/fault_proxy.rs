//! A TCP [`FaultProxy`] between the stores and Redis whose behaviour is switched at run time,
//! for the fault-injection tests (`faults`). The throwaway `redis-server` behind it is
//! `tokenward_testsupport::ThrowawayRedis`.

use std::net::SocketAddr;
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
        let addr = SocketAddr::from(([127, 0, 0, 1], tokenward_testsupport::free_port()));
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let listener = listen(addr).await;
        let supervisor = tokio::spawn(supervise(listener, addr, upstream, mode_rx));
        FaultProxy {
            addr,
            mode,
            supervisor,
        }
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
