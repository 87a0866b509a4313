//! Serving the demo: an HTTP/1.1 server that slow or greedy clients cannot starve (a
//! header-read timeout, an idle timeout, a request deadline, a cap on open connections and
//! on each client network's share of them), graceful shutdown, and a background server for
//! tests.
//!
//! The Guard checks requests; it never sees a connection that has not finished sending its
//! headers. Holding connections open is the cheapest attack on a server (slowloris), so the
//! limits live here, around the accept loop.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use tokenward_claims::KeySet;
use tokenward_core::SettingError;
use tokenward_ratelimit::{ClientIp, client_network};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::Service as _;

use super::{Demo, DemoConfig, StartError, json_error};

/// How long the accept loop pauses after `accept` fails (out of file descriptors, ...).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The connection-level limits of [`DemoConfig`], checked at startup.
#[derive(Debug, Clone)]
pub(super) struct ServerLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    request_timeout: Duration,
    max_connections: usize,
    max_connections_per_ip: usize,
    /// Connections are counted per client network, as the failure ban counts failures.
    ipv6_prefix: u8,
}

impl ServerLimits {
    pub(super) fn new(config: &DemoConfig, ipv6_prefix: u8) -> Result<Self, StartError> {
        let positive = |setting: &'static str, d: Duration| {
            if d.is_zero() {
                Err(StartError::Limits(SettingError::new(
                    setting,
                    "must be more than 0",
                )))
            } else {
                Ok(d)
            }
        };
        let at_least_one = |setting: &'static str, n: usize| {
            SettingError::check_range(setting, n, 1..=usize::MAX).map_err(StartError::Limits)
        };
        Ok(ServerLimits {
            header_read_timeout: positive("header_read_timeout", config.header_read_timeout)?,
            idle_timeout: positive("idle_timeout", config.idle_timeout)?,
            request_timeout: positive("request_timeout", config.request_timeout)?,
            // The semaphore's own bound is far above any descriptor limit.
            max_connections: at_least_one("max_connections", config.max_connections)?
                .min(Semaphore::MAX_PERMITS),
            max_connections_per_ip: at_least_one(
                "max_connections_per_ip",
                config.max_connections_per_ip,
            )?,
            ipv6_prefix,
        })
    }
}

/// Binds `config.bind` and serves `demo` until `shutdown` resolves, then finishes the
/// requests in flight. `on_listening` gets the bound address before the first request is
/// accepted.
pub async fn serve(
    demo: &Demo,
    bind: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| StartError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr: bind, source })?;
    on_listening(addr);
    accept_loop(listener, demo, shutdown).await;
    Ok(())
}

/// Accepts connections while fewer than `max_connections` are open (the rest wait in the
/// listen backlog), closes a connection at once when its client network already holds
/// `max_connections_per_ip` (trusted proxies are exempt: every client behind them shares
/// their address), and serves each with the timeouts. On `shutdown`: stops accepting, lets
/// each connection finish its request in flight, and returns when all are closed.
async fn accept_loop(
    listener: TcpListener,
    demo: &Demo,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = demo.limits.clone();
    let router = demo.router();
    let client_ip = demo.guard().client_ip().clone();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_network = Arc::new(NetworkCounts::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(target: "tokenward_demo", error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match claim(&per_network, &client_ip, &limits, peer) {
            Ok(slot) => slot,
            Err(network) => {
                tracing::info!(
                    target: "tokenward_demo",
                    %network,
                    limit = limits.max_connections_per_ip,
                    "connection refused: too many open connections from this network"
                );
                continue; // `stream` is dropped: the connection is closed.
            }
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            stream,
            activity: Arc::clone(&activity),
        });
        let service = request_service(router.clone(), peer, limits.request_timeout);
        let conn = graceful.watch(http.serve_connection(io, service));
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _held = (permit, slot);
            tokio::select! {
                served = conn => if let Err(e) = served {
                    tracing::debug!(target: "tokenward_demo", %peer, error = %e, "connection ended");
                },
                () = activity.idle_for(idle) => {
                    tracing::debug!(target: "tokenward_demo", %peer, "connection closed: idle");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The router as a hyper service for one connection: the peer address in `ConnectInfo`
/// (the Guard's client address), and a deadline on each request, body included.
fn request_service(
    router: Router,
    peer: SocketAddr,
    deadline: Duration,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let call = router.clone().call(req);
        async move {
            match tokio::time::timeout(deadline, call).await {
                Ok(answered) => answered,
                Err(_elapsed) => Ok(json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request took too long",
                )),
            }
        }
    })
}

/// Open connections per client network.
#[derive(Default)]
struct NetworkCounts(Mutex<HashMap<IpNet, usize>>);

/// One connection's share of its network's allowance, given back on drop.
struct NetworkSlot {
    counts: Arc<NetworkCounts>,
    network: IpNet,
}

/// Counts a connection from `peer` against its network, or names the network when that
/// is full. Trusted proxies are not counted.
fn claim(
    counts: &Arc<NetworkCounts>,
    client_ip: &ClientIp,
    limits: &ServerLimits,
    peer: SocketAddr,
) -> Result<Option<NetworkSlot>, IpNet> {
    if client_ip.is_trusted(peer.ip()) {
        return Ok(None);
    }
    let network = client_network(peer.ip(), limits.ipv6_prefix);
    let mut open = counts.0.lock().unwrap_or_else(PoisonError::into_inner);
    let n = open.entry(network).or_insert(0);
    if *n >= limits.max_connections_per_ip {
        return Err(network);
    }
    *n += 1;
    Ok(Some(NetworkSlot {
        counts: Arc::clone(counts),
        network,
    }))
}

impl Drop for NetworkSlot {
    fn drop(&mut self) {
        let mut open = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.network) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.network);
            }
        }
    }
}

/// When a connection last moved a byte either way.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A TCP stream that records its activity.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A demo served on a background task (tests, embedding): stops when dropped.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown, waiting for the server task to end.
    pub async fn stop(mut self) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Builds the demo for `config` with `keys` and serves it on a background task (on
/// `config.bind`; use port 0 for a free port). Runs [`Demo::check_stores`] first: a Redis
/// that cannot be used is a [`StartError`].
pub async fn spawn(config: &DemoConfig, keys: KeySet) -> Result<Running, StartError> {
    let demo = Demo::new(config, keys)?;
    demo.check_stores().await?;
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        accept_loop(listener, &demo, async move {
            let _ = stopped.await;
        })
        .await;
    });
    Ok(Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
