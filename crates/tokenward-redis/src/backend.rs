//! The connection pool shared by the Redis stores: [`RedisBackend`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleResult, Timeouts};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, IntoConnectionInfo, RedisError};
use tokenward_core::StoreError;

use crate::config::{RedisConfig, redact_url};
use crate::error::Error;

/// A connection checked out within this long of its previous checkout is handed out again
/// without a `PING` (HikariCP's "alive bypass window"): under load every request costs exactly
/// its own round trip. A connection idle for longer is pinged first, so one that died while
/// idle (Redis restarted) is replaced before a request sees it.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// deadpool-redis's manager (connect with timeouts; recycle with `PING`), with the recycle
/// `PING` skipped for connections in active use.
struct Manager {
    inner: deadpool_redis::Manager,
}

impl managed::Manager for Manager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        managed::Manager::create(&self.inner).await
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < PING_IF_IDLE_FOR {
            return Ok(());
        }
        managed::Manager::recycle(&self.inner, conn, metrics).await
    }
}

/// A pool of connections to one Redis server, with the deadline every store call obeys.
///
/// Cheap to clone (the pool is shared): build one per server and hand it to each store that
/// lives there. Building it never talks to Redis — connections are opened on first use, and
/// re-opened after failures — so an application starts while Redis is down and its calls fail
/// with [`StoreError::Unavailable`] / [`StoreError::Timeout`] until Redis is back.
///
/// Needs a Tokio runtime with its time driver enabled (`#[tokio::main]`,
/// `Builder::enable_all()`), like every Tokio timeout.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool<Manager>,
    timeouts: Timeouts,
    operation_timeout: Duration,
    /// `host:port` or the socket path: never the password.
    endpoint: String,
    key_prefix: String,
}

impl RedisBackend {
    /// A pool for `config`. Fails only on a configuration mistake
    /// ([`RedisConfig::validate`]), never because Redis is unreachable.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        config.validate()?;
        let invalid_url = |source| Error::InvalidUrl {
            url: redact_url(&config.url),
            source,
        };
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(invalid_url)?;
        let endpoint = info.addr().to_string();
        let timeout = config.operation_timeout;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let manager = deadpool_redis::Manager::new_with_config(info, connection_config)
            .map_err(invalid_url)?;
        let timeouts = Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        };
        let pool = Pool::builder(Manager { inner: manager })
            .max_size(config.pool_size)
            .timeouts(timeouts)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                pool,
                timeouts,
                operation_timeout: timeout,
                endpoint,
                key_prefix: config.key_prefix.clone(),
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

    /// Runs `op` on a pooled connection, all of it (checkout included) within the operation
    /// timeout, and maps failures onto [`StoreError`]. A connection whose command failed at
    /// the connection level, or that was abandoned at the deadline with a request in flight,
    /// is dropped from the pool instead of being handed to the next caller.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    {
        let inner = &*self.inner;
        let attempt = async {
            let obj = inner
                .pool
                .timeout_get(&inner.timeouts)
                .await
                .map_err(|e| inner.pool_error(e))?;
            let mut guard = Checkout {
                obj: Some(obj),
                healthy: false,
            };
            let Some(conn) = guard.obj.as_deref_mut() else {
                return Err(StoreError::corrupt("pooled connection vanished"));
            };
            match op(conn).await {
                Ok(value) => {
                    guard.healthy = true;
                    Ok(value)
                }
                Err(e) => {
                    // A server error reply (WRONGTYPE, NOSCRIPT after reload, ...) leaves the
                    // connection usable; anything else may have left it out of sync.
                    guard.healthy = matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension);
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

/// A checked-out connection that goes back to the pool only if it is known to be healthy:
/// dropped mid-request (the deadline passed) or after a connection-level error, it is
/// detached from the pool and closed.
struct Checkout {
    obj: Option<Object<Manager>>,
    healthy: bool,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.healthy
            && let Some(obj) = self.obj.take()
        {
            drop(Object::take(obj));
        }
    }
}

impl Inner {
    fn pool_error(&self, e: PoolError<RedisError>) -> StoreError {
        match e {
            PoolError::Timeout(_) => StoreError::Timeout {
                after: self.operation_timeout,
            },
            PoolError::Backend(e) => self.redis_error(e),
            PoolError::Closed => self.unavailable("connection pool closed", None),
            PoolError::NoRuntimeSpecified => self.unavailable("no async runtime", None),
            PoolError::PostCreateHook(e) => {
                self.unavailable(format!("connection setup failed: {e}"), None)
            }
        }
    }

    fn redis_error(&self, e: RedisError) -> StoreError {
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
            _ if e.is_connection_dropped() => "connection lost",
            _ if e.is_io_error() => "I/O error",
            ErrorKind::Server(_) | ErrorKind::Extension => "server error",
            _ => "client error",
        };
        self.unavailable(what, Some(e))
    }

    fn unavailable(&self, what: impl fmt::Display, source: Option<RedisError>) -> StoreError {
        StoreError::Unavailable {
            message: format!("redis at {}: {what}", self.endpoint),
            source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
        }
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
        let status = self.inner.pool.status();
        f.debug_struct("RedisBackend")
            .field("endpoint", &self.inner.endpoint)
            .field("key_prefix", &self.inner.key_prefix)
            .field("operation_timeout", &self.inner.operation_timeout)
            .field("pool_size", &status.max_size)
            .field("open_connections", &status.size)
            .finish()
    }
}
