//! A tiny HTTP/1.1 server on 127.0.0.1:0 that the tests control: per-path replies that can be
//! swapped at any time, request counts, delays, trickled and chunked bodies, and stop.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server answers on one path.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before sending anything.
    pub delay: Duration,
    /// Send the head, then wait this long before the body.
    pub body_delay: Duration,
    /// Chunked transfer encoding (no `content-length`).
    pub chunked: bool,
}

impl Reply {
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
            body_delay: Duration::ZERO,
            chunked: false,
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn body_delay(mut self, delay: Duration) -> Self {
        self.body_delay = delay;
        self
    }

    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

#[derive(Debug, Default)]
struct Shared {
    replies: Mutex<HashMap<String, Reply>>,
    hits: Mutex<HashMap<String, usize>>,
}

/// The server; dropping it (or [`TestServer::stop`]) closes the listening socket.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::serve_with(serve).await
    }

    /// The same server over TLS, with this certificate chain and PKCS#8 key (DER).
    pub async fn start_tls(chain: Vec<Vec<u8>>, pkcs8: Vec<u8>) -> TestServer {
        use tokio_rustls::rustls;
        let chain = chain.into_iter().map(Into::into).collect();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8).into();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        TestServer::serve_with(move |socket, shared| {
            let acceptor = acceptor.clone();
            async move {
                if let Ok(stream) = acceptor.accept(socket).await {
                    serve(stream, shared).await;
                }
            }
        })
        .await
    }

    /// Listens on 127.0.0.1:0 and hands every connection to `handle`, in a task of its own.
    async fn serve_with<F, Fut>(handle: F) -> TestServer
    where
        F: Fn(TcpStream, Arc<Shared>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let for_task = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(handle(socket, Arc::clone(&for_task)));
            }
        });
        TestServer { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.shared
            .replies
            .lock()
            .unwrap()
            .insert(path.into(), reply);
    }

    /// Requests seen on `path` (query strings ignored).
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Stops accepting connections and closes the listening socket.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: impl AsyncRead + AsyncWrite + Unpin, shared: Arc<Shared>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 64 * 1024 {
            return;
        }
    }
    let line = String::from_utf8_lossy(&request);
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let path = target.split('?').next().unwrap_or("/").to_owned();
    *shared.hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
    let reply = shared.replies.lock().unwrap().get(&path).cloned();
    let reply = reply.unwrap_or_else(|| Reply::json("{}").status(404));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut head = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
    }
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let _ = socket.flush().await;
    if !reply.body_delay.is_zero() {
        tokio::time::sleep(reply.body_delay).await;
    }
    if reply.chunked {
        for chunk in reply.body.chunks(8 * 1024) {
            let framed = [
                format!("{:x}\r\n", chunk.len()).as_bytes(),
                chunk,
                b"\r\n".as_slice(),
            ]
            .concat();
            if socket.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    } else {
        let _ = socket.write_all(&reply.body).await;
    }
    let _ = socket.shutdown().await;
}
