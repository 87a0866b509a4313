//! Bringing your own connection: [`BackendOptions`], and the connection a call runs on.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokenward_core::SettingError;

use crate::config::RedisConfig;
use crate::error::RedisConfigError;

/// The settings of a [`RedisBackend`](crate::RedisBackend) on a connection the application
/// already has ([`from_client`](crate::RedisBackend::from_client),
/// [`from_multiplexed`](crate::RedisBackend::from_multiplexed),
/// [`from_connection_manager`](crate::RedisBackend::from_connection_manager),
/// `from_deadpool`): everything of [`RedisConfig`] that is not about *reaching* Redis — the
/// address, credentials and TLS are the application's connection's.
///
/// The defaults are [`RedisConfig`]'s.
///
/// ```
/// use std::time::Duration;
/// use tokenward_redis::BackendOptions;
///
/// let options = BackendOptions::new()
///     .key_prefix("{orders-api}:")
///     .operation_timeout(Duration::from_millis(100));
/// assert_eq!(options.pool_size, 8);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendOptions {
    /// [`RedisConfig::key_prefix`]: the prefix of every key.
    pub key_prefix: String,
    /// [`RedisConfig::operation_timeout`]: the deadline of every call, waiting for the
    /// application's connection (a pool checkout, a reconnect) included.
    pub operation_timeout: Duration,
    /// [`RedisConfig::pool_size`]: how many multiplexed connections
    /// [`from_client`](crate::RedisBackend::from_client) opens from the client. The other
    /// constructors use the application's connection(s) as they are and ignore it.
    pub pool_size: usize,
    /// [`RedisConfig::dangerous_allow_eviction`].
    pub dangerous_allow_eviction: bool,
}

impl BackendOptions {
    /// The defaults (those of [`RedisConfig`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`BackendOptions::key_prefix`].
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`BackendOptions::operation_timeout`].
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`BackendOptions::pool_size`].
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets [`BackendOptions::dangerous_allow_eviction`].
    pub fn dangerous_allow_eviction(mut self, allow: bool) -> Self {
        self.dangerous_allow_eviction = allow;
        self
    }

    /// Checks the values: an `operation_timeout` above zero and a `pool_size` of at least 1.
    /// The constructors run it.
    pub fn validate(&self) -> Result<(), RedisConfigError> {
        if self.operation_timeout.is_zero() {
            return Err(SettingError::new("operation_timeout", "must be greater than zero").into());
        }
        if self.pool_size == 0 {
            return Err(SettingError::new("pool_size", "must be at least 1").into());
        }
        Ok(())
    }
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            key_prefix: RedisConfig::DEFAULT_KEY_PREFIX.to_owned(),
            operation_timeout: RedisConfig::DEFAULT_OPERATION_TIMEOUT,
            pool_size: RedisConfig::DEFAULT_POOL_SIZE,
            dangerous_allow_eviction: false,
        }
    }
}

impl From<&RedisConfig> for BackendOptions {
    /// The options of `config`, without its URL and TLS files.
    fn from(config: &RedisConfig) -> Self {
        BackendOptions {
            key_prefix: config.key_prefix.clone(),
            operation_timeout: config.operation_timeout,
            pool_size: config.pool_size,
            dangerous_allow_eviction: config.dangerous_allow_eviction,
        }
    }
}

/// The connection one call runs on, whatever kind the backend has.
pub(crate) enum Conn {
    /// A handle of a shared multiplexed connection (the backend's own, or the
    /// application's).
    Multiplexed(MultiplexedConnection),
    /// A handle of the application's connection manager.
    Manager(ConnectionManager),
    /// A connection checked out of the application's pool, exclusively this call's.
    #[cfg(feature = "deadpool")]
    Pooled(deadpool_redis::Connection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Multiplexed(conn) => conn.req_packed_command(cmd),
            Conn::Manager(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "deadpool")]
            Conn::Pooled(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Multiplexed(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Manager(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "deadpool")]
            Conn::Pooled(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Multiplexed(conn) => conn.get_db(),
            Conn::Manager(conn) => conn.get_db(),
            #[cfg(feature = "deadpool")]
            Conn::Pooled(conn) => conn.get_db(),
        }
    }
}
