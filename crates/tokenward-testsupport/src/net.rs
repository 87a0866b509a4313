//! Loopback networking for tests: free ports and a server that never answers.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A TCP port on 127.0.0.1 that was free a moment ago: nothing listens on it (connections are
/// refused) until a test starts something there.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// `N` distinct [free ports](free_port), for one server that listens on several (a TLS
/// Redis: its plain and TLS ports; a cluster node: those and its bus). Each is held while
/// the next is picked, so the OS cannot hand out the same port twice; calling
/// [`free_port`] `N` times can, since a port it returned is free again at once.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [TcpListener; N] = std::array::from_fn(|_| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
    });
    listeners.map(|listener| {
        listener
            .local_addr()
            .map(|addr| addr.port())
            .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
    })
}

/// A server on 127.0.0.1 that accepts every connection and never answers: no byte, no FIN, no
/// RST, for as long as it lives — a peer behind a firewall that drops its packets. What a
/// client's timeout is tested against. Dropping it closes the connections it holds.
#[derive(Debug)]
pub struct BlackHole {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    /// Starts listening on a free port.
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("black hole: cannot listen on 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("black hole: no local address: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::Acquire) {
                    break;
                }
                match stream {
                    Ok(stream) => held.push(stream),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        BlackHole {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://` URL of it.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocked `accept`; the thread then drops every connection it holds.
        if TcpStream::connect(self.addr).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_free_port_refuses_connections() {
        let port = free_port();
        let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }

    #[test]
    fn free_ports_are_distinct_and_free() {
        for _ in 0..200 {
            let ports: [u16; 3] = free_ports();
            assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
            for port in ports {
                let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
            }
        }
    }

    #[test]
    fn a_black_hole_accepts_never_answers_and_closes_when_dropped() {
        let hole = BlackHole::start();
        assert_eq!(
            hole.redis_url(),
            format!("redis://127.0.0.1:{}", hole.port())
        );
        let mut conn = TcpStream::connect(hole.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 8];
        let err = conn.read(&mut buf).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err:?}"
        );
        let addr = hole.addr();
        drop(hole);
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The held connection is closed: end of stream (or a reset), not a timeout.
        match conn.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}"),
        }
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }
}
