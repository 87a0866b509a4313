//! Bringing your own connection: [`BackendOptions`], and the connection a call runs on.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokenward_core::SettingError;

use crate::backend::{RedisBackend, Slots, Source};
use crate::cluster::ClusterSource;
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

/// Bring your own connection: the constructors on what the application already has.
impl RedisBackend {
    /// A backend on the application's `client`: `options.pool_size` multiplexed connections
    /// opened from it (its address, credentials, database and protocol), shared and kept
    /// healthy exactly like those of [`RedisBackend::new`]. Never connects here. Fails only on
    /// invalid `options`.
    ///
    /// To a `redis://` or `unix://` address the backend opens the socket itself with the
    /// client's connection settings. To an address only the client can reach (its own TLS,
    /// with a redis-rs TLS feature enabled by the application) the client opens the
    /// connections; redis-rs then runs their driver tasks, so a connection the server closed
    /// is replaced after the call that finds it closed fails, not before.
    pub fn from_client(
        client: redis::Client,
        options: BackendOptions,
    ) -> Result<Self, RedisConfigError> {
        options.validate()?;
        let info = client.get_connection_info().clone();
        let endpoint = info.addr().to_string();
        let source = Source::Slots(Box::new(Slots::new(
            info,
            None,
            Some(client),
            options.pool_size,
        )));
        Ok(Self::with_source(source, endpoint, false, &options))
    }

    /// A backend on the application's multiplexed connection: every call sends its command
    /// on a handle of `conn`, alongside the application's own requests.
    ///
    /// A plain `MultiplexedConnection` never reconnects: once Redis closes it (a restart, a
    /// failover), every call fails with
    /// [`StoreError::Unavailable`](tokenward_core::StoreError::Unavailable) until the
    /// application builds a new backend. Use [`RedisBackend::from_connection_manager`] or
    /// [`RedisBackend::from_client`] to recover by themselves. `options.pool_size` is not
    /// used.
    pub fn from_multiplexed(
        conn: MultiplexedConnection,
        options: BackendOptions,
    ) -> Result<Self, RedisConfigError> {
        options.validate()?;
        let source = Source::Multiplexed(conn);
        Ok(Self::with_source(
            source,
            "application connection".to_owned(),
            false,
            &options,
        ))
    }

    /// A backend on the application's connection manager: every call sends its command on a
    /// handle of `manager`, alongside the application's own requests; the manager reconnects
    /// by itself after a failure (a call made while it does fails, or waits for it within the
    /// operation timeout). `options.pool_size` is not used.
    pub fn from_connection_manager(
        manager: ConnectionManager,
        options: BackendOptions,
    ) -> Result<Self, RedisConfigError> {
        options.validate()?;
        let source = Source::Manager(manager);
        Ok(Self::with_source(
            source,
            "application connection manager".to_owned(),
            false,
            &options,
        ))
    }

    /// A backend on the application's deadpool: every call checks a connection out of
    /// `pool` (waiting for one within the operation timeout: an exhausted pool is a
    /// [`StoreError::Timeout`](tokenward_core::StoreError::Timeout)), sends its command and
    /// puts the connection back. A connection whose command failed at the connection level is taken out of the pool; the pool's
    /// recycle check (`PING`) vets the others. `options.pool_size` is not used: the pool's
    /// size is.
    ///
    /// A checked-out connection serves one call at a time, so at most the pool's size of
    /// calls are in flight — slower under concurrency than the shared multiplexed
    /// connections of the other kinds (see [bring your own](#bring-your-own-connection)).
    #[cfg(feature = "deadpool")]
    pub fn from_deadpool(
        pool: deadpool_redis::Pool,
        options: BackendOptions,
    ) -> Result<Self, RedisConfigError> {
        options.validate()?;
        let source = Source::Pool(pool);
        Ok(Self::with_source(
            source,
            "application pool".to_owned(),
            false,
            &options,
        ))
    }

    /// A backend on the application's Redis Cluster client: one cluster connection opened
    /// from it on first use (its seed nodes, credentials, retries and timeouts), shared by
    /// every call. Each script goes to the primary that owns its keys' slot; `MOVED`, `ASK`
    /// and topology changes are redis-rs's to follow; a call whose keys are in several slots
    /// sends one script per slot, concurrently (see `docs/architecture.md`, "Redis Cluster:
    /// slot layout"). `options.pool_size` is not used (the cluster connection multiplexes one
    /// connection per node). Never connects here.
    pub fn from_cluster_client(
        client: redis::cluster::ClusterClient,
        options: BackendOptions,
    ) -> Result<Self, RedisConfigError> {
        options.validate()?;
        let source = Source::Cluster(Box::new(ClusterSource::new(client)));
        Ok(Self::with_source(
            source,
            "application cluster client".to_owned(),
            false,
            &options,
        ))
    }

    /// A backend on the application's deadpool cluster pool (`deadpool_redis::cluster`):
    /// every call checks a cluster connection out of `pool`, as
    /// [`from_deadpool`](Self::from_deadpool) does with a single server's pool, and runs
    /// on the cluster as [`from_cluster_client`](Self::from_cluster_client) does.
    #[cfg(feature = "deadpool")]
    pub fn from_deadpool_cluster(
        pool: deadpool_redis::cluster::Pool,
        options: BackendOptions,
    ) -> Result<Self, RedisConfigError> {
        options.validate()?;
        let source = Source::ClusterPool(pool);
        Ok(Self::with_source(
            source,
            "application cluster pool".to_owned(),
            false,
            &options,
        ))
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
    /// A handle of a Redis Cluster connection: every command goes to the node that owns its
    /// first key's slot.
    Cluster(redis::cluster_async::ClusterConnection),
    /// A cluster connection checked out of the application's cluster pool.
    #[cfg(feature = "deadpool")]
    ClusterPooled(deadpool_redis::cluster::Connection),
}

impl Conn {
    /// The cluster connection, if this is one (for commands routed to every primary).
    pub(crate) fn cluster(&mut self) -> Option<&mut redis::cluster_async::ClusterConnection> {
        match self {
            Conn::Cluster(conn) => Some(conn),
            #[cfg(feature = "deadpool")]
            Conn::ClusterPooled(conn) => Some(conn),
            _ => None,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Multiplexed(conn) => conn.req_packed_command(cmd),
            Conn::Manager(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "deadpool")]
            Conn::Pooled(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "deadpool")]
            Conn::ClusterPooled(conn) => conn.req_packed_command(cmd),
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
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "deadpool")]
            Conn::ClusterPooled(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Multiplexed(conn) => conn.get_db(),
            Conn::Manager(conn) => conn.get_db(),
            #[cfg(feature = "deadpool")]
            Conn::Pooled(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
            #[cfg(feature = "deadpool")]
            Conn::ClusterPooled(conn) => conn.get_db(),
        }
    }
}
