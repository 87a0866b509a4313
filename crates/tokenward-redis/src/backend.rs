//! The connections shared by the Redis stores: [`RedisBackend`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, RedisError};
use tokenward_core::StoreError;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::{RedisConfig, parse_url, redact_url};
use crate::error::RedisConfigError;
use crate::tls::{Tls, rustls_error};

/// `pool_size` multiplexed connections to one Redis server, shared by every call, with the
/// deadline every store call obeys.
///
/// Cheap to clone (the connections are shared): build one per server and hand it to each
/// store that lives there. Building it never talks to Redis — connections are opened on first
/// use, and re-opened after failures — so an application starts while Redis is down and its
/// calls fail with [`StoreError::Unavailable`] / [`StoreError::Timeout`] until Redis is back.
///
/// Each call takes the next connection round-robin and sends its command on it *without*
/// taking it away from other callers: a multiplexed connection pipelines the requests of
/// every caller using it, so any number of calls can be in flight at once, and concurrent
/// requests share `write`s and wake-ups instead of queueing for a connection.
///
/// Health: a connection is dropped and replaced by a fresh one (opened by the next call that
/// picks it) when a command on it fails at the connection level (refused, reset, I/O error),
/// when a call is abandoned at its deadline with a request in flight (a frozen or unreachable
/// server), and — without any call having to fail first — as soon as the server closes it
/// (Redis restarted or killed while the connection sat idle). An error *reply* (`WRONGTYPE`,
/// `NOSCRIPT`, …) leaves it in use.
///
/// TLS (`rediss://`): every connection is wrapped in rustls (the *ring* provider), its
/// certificate checked against the platform's trust store or
/// [`RedisConfig::tls_ca_file`], and for the URL's host; a failed handshake is a
/// [`StoreError::Unavailable`] saying why (`redis at HOST:PORT: TLS handshake failed: invalid
/// peer certificate: UnknownIssuer`).
///
/// At startup, call [`RedisBackend::check_server`]: it fails when Redis cannot be used
/// (unreachable, TLS or authentication failures) or may evict keys.
///
/// Needs a Tokio runtime with its I/O and time drivers enabled (`#[tokio::main]`,
/// `Builder::enable_all()`).
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    info: ConnectionInfo,
    /// `Some` for `rediss://`.
    tls: Option<Tls>,
    slots: Box<[Slot]>,
    /// The slot the next call uses (modulo the slot count).
    next: AtomicUsize,
    /// Numbers connections, so a failing call replaces only the connection it used.
    opened: AtomicU64,
    /// Calls made ([`RedisBackend::round_trips`]).
    calls: AtomicU64,
    operation_timeout: Duration,
    /// `host:port` or the socket path: never the password.
    endpoint: String,
    key_prefix: String,
    /// [`RedisConfig::dangerous_allow_eviction`].
    pub(crate) allow_eviction: bool,
    /// Whether [`RedisBackend::check_server`] has warned already (it warns once).
    pub(crate) warned: AtomicBool,
}

/// One shared connection, opened lazily, replaced when it fails.
#[derive(Default)]
struct Slot {
    live: Mutex<Option<Live>>,
    /// Held while opening a connection, so the callers of an empty slot wait for one connect
    /// instead of each opening their own.
    connecting: tokio::sync::Mutex<()>,
}

/// An open connection: a handle to clone per call, and its driver task.
#[derive(Clone)]
struct Live {
    id: u64,
    conn: MultiplexedConnection,
    driver: Arc<Driver>,
}

/// The task that moves a connection's bytes. Set `closed` when the connection ends (the
/// server went away, or the socket failed); aborted when the last handle is dropped.
struct Driver {
    closed: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisBackend {
    /// The backend for `config`. Fails only on a configuration mistake
    /// ([`RedisConfig::validate`], an unreadable or unusable `tls_*` file), never because
    /// Redis is unreachable.
    pub fn new(config: &RedisConfig) -> Result<Self, RedisConfigError> {
        config.validate()?;
        let (info, tls) =
            parse_url(&config.url).map_err(|source| RedisConfigError::InvalidUrl {
                url: redact_url(&config.url),
                source,
            })?;
        let tls = match (tls, info.addr()) {
            (true, ConnectionAddr::Tcp(host, _)) => Some(Tls::new(config, host)?),
            _ => None,
        };
        let endpoint = info.addr().to_string();
        let slots = (0..config.pool_size).map(|_| Slot::default()).collect();
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                info,
                tls,
                slots,
                next: AtomicUsize::new(0),
                opened: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                operation_timeout: config.operation_timeout,
                endpoint,
                key_prefix: config.key_prefix.clone(),
                allow_eviction: config.dangerous_allow_eviction,
                warned: AtomicBool::new(false),
            }),
        })
    }

    /// Checks that Redis answers (`PING`) within the operation timeout: for readiness probes
    /// and for applications that want to refuse to start without Redis.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(async |conn| {
            let pong: String = redis::cmd("PING").query_async(conn).await?;
            Ok(pong)
        })
        .await
        .and_then(|pong| {
            if pong == "PONG" {
                Ok(())
            } else {
                Err(StoreError::corrupt("PING was not answered with PONG"))
            }
        })
    }

    /// The shared state (for the startup check).
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The server, as `host:port` (or a socket path), for messages.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    /// The deadline of every call.
    pub fn operation_timeout(&self) -> Duration {
        self.inner.operation_timeout
    }

    /// How many calls this backend (and its clones) has made: each is one round trip to
    /// Redis — one command, one pipeline or one script (plus, once after a server restart,
    /// the `SCRIPT LOAD` of a script the server forgot). The stores' "one round trip per
    /// check / rotation" promises are counted with it (conformance suites, benchmarks).
    pub fn round_trips(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// Runs `op` on the next shared connection, all of it (opening the connection included)
    /// within the operation timeout, and maps failures onto [`StoreError`]. The connection is
    /// replaced if the command failed at the connection level or was abandoned at the
    /// deadline with a request in flight.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    {
        let inner = &*self.inner;
        inner.calls.fetch_add(1, Ordering::Relaxed);
        let attempt = async {
            let n = inner.next.fetch_add(1, Ordering::Relaxed) % inner.slots.len().max(1);
            let Some(slot) = inner.slots.get(n) else {
                return Err(inner.unavailable("no connection slots", None));
            };
            let live = inner.connection(slot).await?;
            let mut conn = live.conn.clone();
            // Dropped before `op` completes (the deadline passed): the connection goes.
            let mut guard = Replace {
                slot,
                id: live.id,
                armed: true,
            };
            match op(&mut conn).await {
                Ok(value) => {
                    guard.armed = false;
                    Ok(value)
                }
                Err(e) => {
                    // A server error reply (WRONGTYPE, NOSCRIPT after a restart, ...) leaves
                    // the connection usable; anything else may have left it out of sync.
                    guard.armed = !matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension);
                    Err(inner.redis_error(e))
                }
            }
        };
        with_deadline(inner.operation_timeout, attempt).await
    }
}

/// `fut`, or [`StoreError::Timeout`] once `after` has passed.
async fn with_deadline<T>(
    after: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(after, fut)
        .await
        .unwrap_or(Err(StoreError::Timeout { after }))
}

/// Replaces the slot's connection `id` on drop, unless disarmed (the call went well).
struct Replace<'a> {
    slot: &'a Slot,
    id: u64,
    armed: bool,
}

impl Drop for Replace<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.slot.discard(self.id);
        }
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Live>> {
        // The critical sections only move an `Option` around: a panic cannot leave it torn.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open connection, if there is one that has not been closed.
    fn current(&self) -> Option<Live> {
        let mut live = self.lock();
        match &*live {
            Some(l) if !l.driver.closed.load(Ordering::Acquire) => Some(l.clone()),
            Some(_) => {
                *live = None;
                None
            }
            None => None,
        }
    }

    /// Forgets connection `id` (if it is still this slot's): the next call opens a new one.
    /// Calls in flight on it finish (or time out) on their own handles.
    fn discard(&self, id: u64) {
        let mut live = self.lock();
        if live.as_ref().is_some_and(|l| l.id == id) {
            *live = None;
        }
    }
}

impl Inner {
    /// The slot's connection, opening one if it has none.
    async fn connection(&self, slot: &Slot) -> Result<Live, StoreError> {
        if let Some(live) = slot.current() {
            return Ok(live);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(live) = slot.current() {
            return Ok(live);
        }
        let live = self.connect().await?;
        *slot.lock() = Some(live.clone());
        Ok(live)
    }

    async fn connect(&self) -> Result<Live, StoreError> {
        let redis_error = |e: RedisError| self.redis_error(e);
        // Before the TLS handshake: a plain TCP failure (refused, unreachable).
        let io_error = |e: std::io::Error| self.classify(e.into(), false);
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_error)?;
                // Requests are small and latency is the point: no Nagle delays.
                stream.set_nodelay(true).map_err(io_error)?;
                match &self.tls {
                    Some(tls) => {
                        let stream = tls.handshake(stream).await.map_err(|e| {
                            let why = match rustls_error(&e) {
                                Some(tls_error) => tls_error.to_string(),
                                None => e.to_string(),
                            };
                            self.unavailable(format!("TLS handshake failed: {why}"), Some(e.into()))
                        })?;
                        self.start(stream).await.map_err(redis_error)
                    }
                    None => self.start(stream).await.map_err(redis_error),
                }
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(io_error)?;
                self.start(stream).await.map_err(redis_error)
            }
            other => Err(redis_error(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "this build cannot connect to this kind of address",
                other.to_string(),
            )))),
        }
    }

    /// Authenticates / selects the database on `stream` and starts its driver task.
    async fn start<S>(&self, stream: S) -> Result<Live, RedisError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config =
            AsyncConnectionConfig::new().set_response_timeout(Some(self.operation_timeout));
        let (conn, driver) =
            MultiplexedConnection::new_with_config(self.info.redis_settings(), stream, config)
                .await?;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&closed);
        let task = tokio::spawn(async move {
            driver.await;
            flag.store(true, Ordering::Release);
        });
        Ok(Live {
            id: self.opened.fetch_add(1, Ordering::Relaxed),
            conn,
            driver: Arc::new(Driver {
                closed,
                task: task.abort_handle(),
            }),
        })
    }

    pub(crate) fn redis_error(&self, e: RedisError) -> StoreError {
        self.classify(e, self.tls.is_some())
    }

    /// [`StoreError`] for `e`; `tls`: it happened on an established TLS connection.
    fn classify(&self, e: RedisError, tls: bool) -> StoreError {
        if e.is_timeout() {
            return StoreError::Timeout {
                after: self.operation_timeout,
            };
        }
        let what = match e.kind() {
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
                return StoreError::corrupt(format!(
                    "redis at {}: unexpected reply: {e}",
                    self.endpoint
                ));
            }
            _ if is_wrong_type(&e) => {
                return StoreError::corrupt(format!(
                    "redis at {}: a key holds a value of the wrong type",
                    self.endpoint
                ));
            }
            ErrorKind::AuthenticationFailed => "authentication failed",
            _ if e.is_connection_refusal() => "connection refused",
            // On TLS, what the server said (a client certificate it refused, ...).
            _ if tls && (e.is_io_error() || e.is_connection_dropped()) => {
                return self.unavailable(format!("TLS connection failed: {e}"), Some(e));
            }
            _ if e.is_connection_dropped() => "connection lost",
            _ if e.is_io_error() => "I/O error",
            ErrorKind::Server(_) | ErrorKind::Extension => "server error",
            _ => "client error",
        };
        self.unavailable(what, Some(e))
    }

    pub(crate) fn unavailable(
        &self,
        what: impl fmt::Display,
        source: Option<RedisError>,
    ) -> StoreError {
        StoreError::Unavailable {
            message: format!("redis at {}: {what}", self.endpoint),
            source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
        }
    }

    /// The endpoint, for messages.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Whether a key held another type than the command expects (`WRONGTYPE`), directly or in a
/// pipeline.
fn is_wrong_type(e: &RedisError) -> bool {
    const CODE: &str = "WRONGTYPE";
    e.code() == Some(CODE)
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, error)| error.code() == CODE))
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = self
            .inner
            .slots
            .iter()
            .filter(|slot| slot.current().is_some())
            .count();
        f.debug_struct("RedisBackend")
            .field("endpoint", &self.inner.endpoint)
            .field("key_prefix", &self.inner.key_prefix)
            .field("operation_timeout", &self.inner.operation_timeout)
            .field("pool_size", &self.inner.slots.len())
            .field("tls", &self.inner.tls.is_some())
            .field("open_connections", &open)
            .finish()
    }
}
