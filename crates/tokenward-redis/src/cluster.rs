//! Redis Cluster: the backend's cluster connection ([`ClusterSource`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{ClientTlsConfig, ConnectionAddr, RedisError, TlsCertificates};

use crate::config::{RedisConfig, parse_url, redact_url};
use crate::error::RedisConfigError;

/// A cluster client and the cluster connection opened from it: redis-rs's async cluster
/// connection keeps a multiplexed connection per node, routes every command by its first
/// key's slot, follows `MOVED` / `ASK` and refreshes the slot map when the topology changes,
/// so it is shared by every call.
///
/// It is replaced — like a single server's connection — when a call on it fails at the
/// connection level or is abandoned at its deadline, but at most once per
/// [`MIN_LIFETIME`]: measured under load (32 tasks through one Guard), a connection that
/// had lost a primary kept timing out for every key of that primary after it was back
/// (10 s and more), while a new connection answered at once.
pub(crate) struct ClusterSource {
    client: ClusterClient,
    live: Mutex<Option<Live>>,
    /// Held while connecting, so the callers without a connection wait for one connect.
    connecting: tokio::sync::Mutex<()>,
    /// Numbers connections, so a failed call replaces only the connection it used.
    opened: AtomicU64,
}

/// How long a cluster connection is kept at least, failures or not: a dead primary fails
/// every call routed to it, and a new connection per failure would flood the seed nodes.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Live {
    id: u64,
    conn: ClusterConnection,
    since: Instant,
}

impl ClusterSource {
    pub(crate) fn new(client: ClusterClient) -> Self {
        ClusterSource {
            client,
            live: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            opened: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Live>> {
        // The critical sections only move an `Option` around: a panic cannot leave it torn.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cluster connection and its number, connecting (to a seed node, and reading the
    /// slot map) if there is none. A failed connect is retried by the next call.
    pub(crate) async fn connection(&self) -> Result<(u64, ClusterConnection), RedisError> {
        if let Some(live) = self.lock().clone() {
            return Ok((live.id, live.conn));
        }
        let _connecting = self.connecting.lock().await;
        if let Some(live) = self.lock().clone() {
            return Ok((live.id, live.conn));
        }
        let conn = self.client.get_async_connection().await?;
        let id = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        *self.lock() = Some(Live {
            id,
            conn: conn.clone(),
            since: Instant::now(),
        });
        Ok((id, conn))
    }

    /// A call on connection `id` failed at the connection level or was abandoned: the next
    /// call opens a new connection, unless this one is younger than [`MIN_LIFETIME`] or was
    /// replaced already.
    pub(crate) fn discard(&self, id: u64) {
        let mut live = self.lock();
        if live
            .as_ref()
            .is_some_and(|l| l.id == id && l.since.elapsed() >= MIN_LIFETIME)
        {
            *live = None;
        }
    }

    /// Whether a connection is open (for `Debug`).
    pub(crate) fn connected(&self) -> bool {
        self.lock().is_some()
    }
}

/// Discards a cluster connection when dropped armed: a call that did not complete (its
/// deadline passed) or failed at the connection level.
pub(crate) struct ClusterReplace<'a> {
    pub(crate) source: &'a ClusterSource,
    pub(crate) id: u64,
    pub(crate) armed: bool,
}

impl Drop for ClusterReplace<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.source.discard(self.id);
        }
    }
}

/// The cluster client for [`RedisConfig::cluster`]'s seed nodes, with the operation timeout
/// as its connection and response timeouts, and the endpoint for messages (`cluster
/// host:port,host:port`, never a password). `rediss://` seeds make every node connection TLS
/// through redis-rs's rustls support (ring, the only provider in the graph): the CA of
/// `tls_ca_file` if set, else the system's roots, and the client certificate if set.
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
        let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            return Err(invalid(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "Redis Cluster seed nodes are host:port addresses",
            ))));
        };
        shown.push(format!("{host}:{port}"));
        nodes.push(if tls {
            info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            })
        } else {
            info
        });
    }
    let timeout: Duration = config.operation_timeout;
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(timeout)
        .response_timeout(timeout);
    if config.tls_ca_file.is_some() || config.tls_client_cert_file.is_some() {
        builder = builder.certs(certificates(config)?);
    }
    let client = builder
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

/// The `tls_*` files of `config` as redis-rs's certificates (PEM bytes).
fn certificates(config: &RedisConfig) -> Result<TlsCertificates, RedisConfigError> {
    fn read(setting: &'static str, path: &std::path::Path) -> Result<Vec<u8>, RedisConfigError> {
        std::fs::read(path).map_err(|e| RedisConfigError::Tls {
            setting,
            reason: format!("{}: {e}", path.display()),
        })
    }
    let root_cert = match &config.tls_ca_file {
        Some(path) => Some(read("tls_ca_file", path)?),
        None => None,
    };
    let client_tls = match (&config.tls_client_cert_file, &config.tls_client_key_file) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read("tls_client_cert_file", cert)?,
            client_key: read("tls_client_key_file", key)?,
        }),
        _ => None,
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}
