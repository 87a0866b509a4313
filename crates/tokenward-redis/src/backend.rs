//! The connections shared by the Redis stores: [`RedisBackend`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, RedisError};
use tokenward_core::StoreError;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::byo::{BackendOptions, Conn};
use crate::cluster::{ClusterReplace, ClusterSource, client_for};
use crate::config::{RedisConfig, parse_url, redact_url};
use crate::error::RedisConfigError;
use crate::tls::{Tls, rustls_error};

/// The connections to one Redis server the stores share — by default `pool_size` multiplexed
/// connections of its own, or the application's ([bring your own](#bring-your-own-connection))
/// — with the deadline every store call obeys.
///
/// Cheap to clone (the connections are shared): build one per server and hand it to each
/// store that lives there. Building it (from a [`RedisConfig`] or a client) never talks to
/// Redis — connections are opened on first use, and re-opened after failures — so an
/// application starts while Redis is down and its calls fail with
/// [`StoreError::Unavailable`] / [`StoreError::Timeout`] until Redis is back.
///
/// On its own connections, each call takes the next connection round-robin and sends its command on it *without*
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
///
/// # Bring your own connection
///
/// An application that already talks to Redis can hand the stores what it has, so they use
/// its connections and their settings (address, credentials, TLS, RESP version, pool
/// limits) instead of a [`RedisConfig`]; [`BackendOptions`] carries the rest (key prefix,
/// operation timeout, …). Every kind obeys the operation timeout — waiting for the
/// application's connection included — and maps failures the same way.
///
/// | constructor | what the calls run on | health, reconnection |
/// |---|---|---|
/// | [`new`](Self::new) ([`RedisConfig`]) | `pool_size` multiplexed connections of its own, round-robin, each shared by every call | replaced as described above |
/// | [`from_client`](Self::from_client) (`redis::Client`) | the same, opened from the client (its address, credentials, database, protocol) | the same (a connection the client opens over its own TLS is noticed closed by a failing call) |
/// | [`from_multiplexed`](Self::from_multiplexed) (`MultiplexedConnection`) | that one connection, shared with the application | **none**: a plain multiplexed connection does not reconnect — once the server closes it, every call fails until the application replaces the backend. Prefer a `ConnectionManager` or a client |
/// | [`from_connection_manager`](Self::from_connection_manager) (`ConnectionManager`) | that manager's connection, shared with the application | the manager's: it reconnects by itself (with its own retry settings) |
/// | `from_deadpool` (`deadpool_redis::Pool`, feature `deadpool`) | a connection checked out of the pool per call, exclusively | the pool's (its recycle check), and a connection that failed at the connection level is taken out of the pool |
/// | [`from_cluster_client`](Self::from_cluster_client) (`redis::cluster::ClusterClient`) | one cluster connection opened from it (a multiplexed connection per node), each script sent to the primary owning its keys | redis-rs's: it reconnects to nodes and follows `MOVED` / `ASK` and topology changes |
/// | `from_deadpool_cluster` (`deadpool_redis::cluster::Pool`, feature `deadpool`) | a cluster connection checked out of the pool per call | the pool's, as `from_deadpool` |
///
/// Multiplexed connections (every kind but the pool) let any number of calls be in flight
/// at once; a pool's exclusive checkout allows at most its size, and the other calls wait
/// for a connection (within the operation timeout). Measured on one host with 64 concurrent
/// tasks (`docs/benchmarks.md`, "Redis stores after sharing connections"), the exclusive
/// checkout answered a revocation check in p50 634–658 µs at 71–78 k checks/s, the shared
/// multiplexed connections in p50 309–337 µs at 127–133 k checks/s — which is why the
/// default is the shared multiplexed connections, and why a pool is only worth it to share
/// the application's pool limits.
///
/// ```no_run
/// use std::time::Duration;
/// use tokenward_redis::{BackendOptions, RedisBackend, RedisStores};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // The application's client, with its own settings.
/// let client = redis::Client::open("redis://:s3cret@redis.internal:6379/0")?;
/// let options = BackendOptions::new()
///     .key_prefix("{orders-api}:")
///     .operation_timeout(Duration::from_millis(100));
/// let stores = RedisStores::new(RedisBackend::from_client(client, options)?);
/// stores.backend().check_server().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// What the calls run on.
    source: Source,
    /// Whether the connections are TLS connections of the backend's own (for messages).
    tls: bool,
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

/// What the calls run on.
pub(crate) enum Source {
    /// Connections of the backend's own ([`RedisBackend::new`], [`RedisBackend::from_client`]).
    Slots(Box<Slots>),
    /// The application's multiplexed connection.
    Multiplexed(MultiplexedConnection),
    /// The application's connection manager.
    Manager(ConnectionManager),
    /// The application's pool.
    #[cfg(feature = "deadpool")]
    Pool(deadpool_redis::Pool),
    /// A Redis Cluster ([`RedisConfig::cluster`], or the application's cluster client).
    Cluster(Box<ClusterSource>),
    /// The application's cluster pool.
    #[cfg(feature = "deadpool")]
    ClusterPool(deadpool_redis::cluster::Pool),
}

/// `pool_size` shared connections, opened lazily.
pub(crate) struct Slots {
    info: ConnectionInfo,
    /// `Some` for `rediss://`.
    tls: Option<Tls>,
    /// The application's client ([`RedisBackend::from_client`]): opens the connections to
    /// addresses the backend cannot reach itself (the client's own TLS).
    client: Option<redis::Client>,
    slots: Box<[Slot]>,
    /// The slot the next call uses (modulo the slot count).
    next: AtomicUsize,
    /// Numbers connections, so a failing call replaces only the connection it used.
    opened: AtomicU64,
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
/// server went away, or the socket failed); aborted when the last handle is dropped. `None`
/// for a connection opened by the application's client (redis-rs runs its driver).
struct Driver {
    closed: Arc<AtomicBool>,
    task: Option<tokio::task::AbortHandle>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl RedisBackend {
    /// The backend for `config`. Fails only on a configuration mistake
    /// ([`RedisConfig::validate`], an unreadable or unusable `tls_*` file), never because
    /// Redis is unreachable.
    pub fn new(config: &RedisConfig) -> Result<Self, RedisConfigError> {
        config.validate()?;
        if !config.cluster.is_empty() {
            let (client, endpoint) = client_for(config)?;
            let source = Source::Cluster(Box::new(ClusterSource::new(client)));
            // `rediss://` seeds (all or none): connection failures then say what TLS said.
            let tls = config
                .cluster
                .first()
                .is_some_and(|seed| seed.starts_with("rediss://"));
            return Ok(Self::with_source(
                source,
                endpoint,
                tls,
                &BackendOptions::from(config),
            ));
        }
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
        let tls_used = tls.is_some();
        let source = Source::Slots(Box::new(Slots::new(info, tls, None, config.pool_size)));
        Ok(Self::with_source(
            source,
            endpoint,
            tls_used,
            &BackendOptions::from(config),
        ))
    }

    pub(crate) fn with_source(
        source: Source,
        endpoint: String,
        tls: bool,
        options: &BackendOptions,
    ) -> Self {
        RedisBackend {
            inner: Arc::new(Inner {
                source,
                tls,
                calls: AtomicU64::new(0),
                operation_timeout: options.operation_timeout,
                endpoint,
                key_prefix: options.key_prefix.clone(),
                allow_eviction: options.dangerous_allow_eviction,
                warned: AtomicBool::new(false),
            }),
        }
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

    /// The server, as `host:port` (or a socket path), for messages; for an application's
    /// connection, manager or pool, which tokenward cannot see into, `application
    /// connection`, `application connection manager` or `application pool`.
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
    /// the `SCRIPT LOAD` of a script the server forgot). On a Redis Cluster, the scripts or
    /// pipelines one call sends to several slots *at once* count as one: they cost one
    /// round trip of latency, though several commands. The stores' "one round trip per
    /// check / rotation" promises are counted with it (conformance suites, benchmarks).
    pub fn round_trips(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// How many connections the backend has opened so far, for a backend on connections of
    /// its own to one server ([`RedisBackend::new`] without a cluster,
    /// [`from_client`](Self::from_client)); `None` otherwise. A restarted server closes every
    /// connection, so a call answered on a connection opened since some earlier reading may
    /// have reached a server that restarted in between: `tokenward_guard::hybrid` checks,
    /// then, that Redis still holds what it was given.
    pub fn connections_opened(&self) -> Option<u64> {
        match &self.inner.source {
            Source::Slots(slots) => Some(slots.opened.load(Ordering::Relaxed)),
            _ => None,
        }
    }

    /// Runs a Lua `script` with `keys` and `args` on the backend's connections, within its
    /// operation timeout and with its error mapping, as the stores of this crate run theirs:
    /// for stores built on this backend outside the crate (`tokenward-anomaly`'s). `EVALSHA`,
    /// loading the script on `NOSCRIPT`. The keys are used as given: put them under
    /// [`key_prefix`](Self::key_prefix) yourself.
    pub async fn invoke_script<T>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T, StoreError>
    where
        T: redis::FromRedisValue + Send,
    {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        self.run(async move |conn| invocation.invoke_async(conn).await)
            .await
    }

    /// Runs `op` on a connection (the next shared one, or the application's), all of it
    /// (opening or checking out the connection included) within the operation timeout, and
    /// maps failures onto [`StoreError`]. A connection of the backend's own is replaced if
    /// the command failed at the connection level or was abandoned at the deadline with a
    /// request in flight; a pooled one that failed at the connection level leaves the pool.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    {
        let inner = &*self.inner;
        inner.calls.fetch_add(1, Ordering::Relaxed);
        with_deadline(inner.operation_timeout, inner.attempt(op)).await
    }

    /// Runs every one of `ops` as [`run`](Self::run) does, all at once (on a cluster, each
    /// on the node that owns its keys), within **one** operation timeout, counted as one
    /// round trip: they wait for each other's answers, not for each other. Their results
    /// in order, or the first failure.
    pub(crate) async fn run_each<T, F>(&self, ops: Vec<F>) -> Result<Vec<T>, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    {
        self.run_all(ops).await?.into_iter().collect()
    }

    /// [`run_each`](Self::run_each), but every op's own result: one may have succeeded while
    /// another failed or passed the deadline (each op has the same deadline, so this too
    /// returns within the operation timeout).
    pub(crate) async fn run_all<T, F>(
        &self,
        ops: Vec<F>,
    ) -> Result<Vec<Result<T, StoreError>>, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    {
        let inner = &*self.inner;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        inner.calls.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + inner.operation_timeout;
        let each = ops.into_iter().map(|op| async move {
            tokio::time::timeout_at(deadline, inner.attempt(op))
                .await
                .unwrap_or(Err(StoreError::Timeout {
                    after: inner.operation_timeout,
                }))
        });
        Ok(futures_util::future::join_all(each).await)
    }

    /// Whether the backend talks to a Redis Cluster: a call's keys must then be grouped by
    /// hash slot, one script per slot.
    pub(crate) fn is_cluster(&self) -> bool {
        match &self.inner.source {
            Source::Cluster(_) => true,
            #[cfg(feature = "deadpool")]
            Source::ClusterPool(_) => true,
            _ => false,
        }
    }
}

impl Inner {
    /// One call of `op` on a connection, its failures mapped onto [`StoreError`]; no
    /// deadline (the caller's).
    async fn attempt<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    {
        let inner = self;
        {
            match &inner.source {
                Source::Slots(slots) => inner.run_on_slot(slots, op).await,
                Source::Multiplexed(conn) => op(&mut Conn::Multiplexed(conn.clone()))
                    .await
                    .map_err(|e| inner.redis_error(e)),
                Source::Manager(manager) => op(&mut Conn::Manager(manager.clone()))
                    .await
                    .map_err(|e| inner.redis_error(e)),
                #[cfg(feature = "deadpool")]
                Source::Pool(pool) => {
                    let pooled = pool.get().await.map_err(|e| inner.pool_error(e))?;
                    let mut conn = Conn::Pooled(pooled);
                    let result = op(&mut conn).await;
                    if let (Err(e), Conn::Pooled(pooled)) = (&result, conn)
                        && !is_reply_error(e)
                    {
                        // Out of the pool (and closed): it may be out of sync or dead.
                        drop(deadpool_redis::Connection::take(pooled));
                    }
                    result.map_err(|e| inner.redis_error(e))
                }
                Source::Cluster(cluster) => {
                    let (id, conn) = cluster
                        .connection()
                        .await
                        .map_err(|e| inner.redis_error(e))?;
                    // Dropped before `op` completes (the deadline passed): replaced.
                    let mut guard = ClusterReplace {
                        source: cluster,
                        id,
                        armed: true,
                    };
                    let result = op(&mut Conn::Cluster(conn)).await;
                    guard.armed = matches!(&result, Err(e) if !is_reply_error(e));
                    result.map_err(|e| inner.redis_error(e))
                }
                #[cfg(feature = "deadpool")]
                Source::ClusterPool(pool) => {
                    let pooled = pool.get().await.map_err(|e| inner.pool_error(e))?;
                    let mut conn = Conn::ClusterPooled(pooled);
                    let result = op(&mut conn).await;
                    if let (Err(e), Conn::ClusterPooled(pooled)) = (&result, conn)
                        && !is_reply_error(e)
                    {
                        drop(deadpool_redis::cluster::Connection::take(pooled));
                    }
                    result.map_err(|e| inner.redis_error(e))
                }
            }
        }
    }
}

impl Inner {
    /// [`RedisBackend::run`] on the next of `slots`.
    async fn run_on_slot<T, F>(&self, slots: &Slots, op: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    {
        let n = slots.next.fetch_add(1, Ordering::Relaxed) % slots.slots.len().max(1);
        let Some(slot) = slots.slots.get(n) else {
            return Err(self.unavailable("no connection slots", None));
        };
        let live = self.connection(slots, slot).await?;
        let mut conn = Conn::Multiplexed(live.conn.clone());
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
                guard.armed = !is_reply_error(&e);
                Err(self.redis_error(e))
            }
        }
    }

    /// [`StoreError`] for a failed checkout from the application's pool.
    #[cfg(feature = "deadpool")]
    fn pool_error(&self, e: deadpool_redis::PoolError) -> StoreError {
        match e {
            deadpool_redis::PoolError::Backend(e) => self.redis_error(e),
            deadpool_redis::PoolError::Timeout(_) => StoreError::Timeout {
                after: self.operation_timeout,
            },
            other => self.unavailable(format!("connection pool: {other}"), None),
        }
    }
}

/// Whether `e` is a server's error *reply* (WRONGTYPE, NOSCRIPT after a restart, ...), which
/// leaves the connection usable; anything else may have left it out of sync.
fn is_reply_error(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
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

impl Slots {
    pub(crate) fn new(
        info: ConnectionInfo,
        tls: Option<Tls>,
        client: Option<redis::Client>,
        size: usize,
    ) -> Self {
        Slots {
            info,
            tls,
            client,
            slots: (0..size).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
        }
    }
}

impl Inner {
    /// The slot's connection, opening one if it has none.
    async fn connection(&self, slots: &Slots, slot: &Slot) -> Result<Live, StoreError> {
        if let Some(live) = slot.current() {
            return Ok(live);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(live) = slot.current() {
            return Ok(live);
        }
        let live = self.connect(slots).await?;
        *slot.lock() = Some(live.clone());
        Ok(live)
    }

    async fn connect(&self, slots: &Slots) -> Result<Live, StoreError> {
        let redis_error = |e: RedisError| self.redis_error(e);
        // Before the TLS handshake: a plain TCP failure (refused, unreachable).
        let io_error = |e: std::io::Error| self.classify(e.into(), false);
        match slots.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_error)?;
                // Requests are small and latency is the point: no Nagle delays.
                stream.set_nodelay(true).map_err(io_error)?;
                match &slots.tls {
                    Some(tls) => {
                        let stream = tls.handshake(stream).await.map_err(|e| {
                            let why = match rustls_error(&e) {
                                Some(tls_error) => tls_error.to_string(),
                                None => e.to_string(),
                            };
                            self.unavailable(format!("TLS handshake failed: {why}"), Some(e.into()))
                        })?;
                        self.start(slots, stream).await.map_err(redis_error)
                    }
                    None => self.start(slots, stream).await.map_err(redis_error),
                }
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(io_error)?;
                self.start(slots, stream).await.map_err(redis_error)
            }
            // The application's client connects on its own (its TLS, ...); the driver task
            // is the client's, so a closed connection is noticed by a failing call.
            _ if slots.client.is_some() => self.connect_client(slots).await.map_err(redis_error),
            other => Err(redis_error(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "this build cannot connect to this kind of address",
                other.to_string(),
            )))),
        }
    }

    fn connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_response_timeout(Some(self.operation_timeout))
            .set_connection_timeout(Some(self.operation_timeout))
    }

    /// A connection opened by the application's client.
    async fn connect_client(&self, slots: &Slots) -> Result<Live, RedisError> {
        let Some(client) = &slots.client else {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "no client to connect with",
            )));
        };
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.connection_config())
            .await?;
        // Its driver task is redis-rs's, which cannot be watched: never marked closed.
        Ok(Live {
            id: slots.opened.fetch_add(1, Ordering::Relaxed),
            conn,
            driver: Arc::new(Driver {
                closed: Arc::new(AtomicBool::new(false)),
                task: None,
            }),
        })
    }

    /// Authenticates / selects the database on `stream` and starts its driver task.
    async fn start<S>(&self, slots: &Slots, stream: S) -> Result<Live, RedisError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (conn, driver) = MultiplexedConnection::new_with_config(
            slots.info.redis_settings(),
            stream,
            self.connection_config(),
        )
        .await?;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&closed);
        let task = tokio::spawn(async move {
            driver.await;
            flag.store(true, Ordering::Release);
        });
        Ok(Live {
            id: slots.opened.fetch_add(1, Ordering::Relaxed),
            conn,
            driver: Arc::new(Driver {
                closed,
                task: Some(task.abort_handle()),
            }),
        })
    }

    pub(crate) fn redis_error(&self, e: RedisError) -> StoreError {
        self.classify(e, self.tls)
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
        let mut out = f.debug_struct("RedisBackend");
        out.field("endpoint", &self.inner.endpoint)
            .field("key_prefix", &self.inner.key_prefix)
            .field("operation_timeout", &self.inner.operation_timeout);
        match &self.inner.source {
            Source::Slots(slots) => {
                let open = slots
                    .slots
                    .iter()
                    .filter(|slot| slot.current().is_some())
                    .count();
                out.field("connections", &"own")
                    .field("pool_size", &slots.slots.len())
                    .field("tls", &slots.tls.is_some())
                    .field("from_client", &slots.client.is_some())
                    .field("open_connections", &open);
            }
            Source::Multiplexed(_) => {
                out.field("connections", &"application multiplexed connection");
            }
            Source::Manager(_) => {
                out.field("connections", &"application connection manager");
            }
            #[cfg(feature = "deadpool")]
            Source::Pool(pool) => {
                out.field("connections", &"application deadpool")
                    .field("pool_status", &pool.status());
            }
            Source::Cluster(cluster) => {
                out.field("connections", &"cluster")
                    .field("connected", &cluster.connected());
            }
            #[cfg(feature = "deadpool")]
            Source::ClusterPool(pool) => {
                out.field("connections", &"application deadpool cluster pool")
                    .field("pool_status", &pool.status());
            }
        }
        out.finish()
    }
}
