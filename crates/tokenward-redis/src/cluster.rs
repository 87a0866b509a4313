//! Redis Cluster: the backend's cluster connection ([`ClusterSource`]).

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, RedisError};
use tokio::sync::OnceCell;

use crate::config::{RedisConfig, parse_url, redact_url};
use crate::error::RedisConfigError;

/// A cluster client and the one cluster connection opened from it on first use: redis-rs's
/// async cluster connection keeps a multiplexed connection per node, routes every command
/// by its first key's slot, follows `MOVED` / `ASK` and refreshes the slot map when the
/// topology changes, so it is shared by every call and never replaced here.
pub(crate) struct ClusterSource {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl ClusterSource {
    pub(crate) fn new(client: ClusterClient) -> Self {
        ClusterSource {
            client,
            conn: OnceCell::new(),
        }
    }

    /// The cluster connection, connecting (to a seed node, and reading the slot map) if
    /// there is none yet. A failed connect is retried by the next call.
    pub(crate) async fn connection(&self) -> Result<ClusterConnection, RedisError> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }

    /// Whether the connection has been opened (for `Debug`).
    pub(crate) fn connected(&self) -> bool {
        self.conn.initialized()
    }
}

/// The cluster client for [`RedisConfig::cluster`]'s seed nodes, with the operation timeout
/// as its connection and response timeouts, and the endpoint for messages (`cluster
/// host:port,host:port`, never a password). `rediss://` seeds are refused: this crate's TLS
/// is its own (rustls on ring) and does not reach redis-rs's cluster connections yet.
pub(crate) fn client_for(
    config: &RedisConfig,
) -> Result<(ClusterClient, String), RedisConfigError> {
    let mut nodes = Vec::with_capacity(config.cluster.len());
    let mut shown = Vec::with_capacity(config.cluster.len());
    for url in &config.cluster {
        let invalid = |source| RedisConfigError::InvalidUrl {
            url: redact_url(url),
            source,
        };
        let (info, tls) = parse_url(url).map_err(invalid)?;
        if tls {
            return Err(invalid(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "TLS (rediss://) to a Redis Cluster is not supported yet; use redis:// seeds",
            ))));
        }
        if !matches!(info.addr(), ConnectionAddr::Tcp(..)) {
            return Err(invalid(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "Redis Cluster seed nodes are host:port addresses",
            ))));
        }
        shown.push(info.addr().to_string());
        nodes.push(info);
    }
    let timeout: Duration = config.operation_timeout;
    let client = ClusterClientBuilder::new(nodes)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .map_err(|source| RedisConfigError::InvalidUrl {
            url: config
                .cluster
                .iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(","),
            source,
        })?;
    Ok((client, format!("cluster {}", shown.join(","))))
}
