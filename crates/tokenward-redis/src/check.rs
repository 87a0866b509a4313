//! The startup check of a Redis server: [`RedisBackend::check_server`].

use std::sync::atomic::Ordering;

use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{RedisError, Value};
use tokenward_core::StoreError;

use crate::backend::RedisBackend;

/// What [`RedisBackend::check_server`] found out about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerCheck {
    /// The server's `maxmemory-policy`, or `None` when `CONFIG GET` is not allowed (renamed
    /// or disabled, as managed services often do, or denied by an ACL).
    /// On a Redis Cluster the policy of the first primary that has an evicting one, else of
    /// any primary whose `CONFIG GET` answered (see [`primaries`](Self::primaries)).
    pub maxmemory_policy: Option<String>,
    /// On a Redis Cluster, every primary (`host:port`) and its `maxmemory-policy` (`None`
    /// where `CONFIG GET` is not allowed): the check runs on each of them. Empty for one
    /// server.
    pub primaries: Vec<(String, Option<String>)>,
}

/// Why [`RedisBackend::check_server`] refuses the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerCheckError {
    /// Redis could not be used: unreachable, too slow, a TLS handshake or authentication
    /// that failed (the message names the server, never the password).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server may evict keys that have a TTL — every revocation, ban and refresh family
    /// has one — when its memory is full: revoked tokens would silently become valid again.
    #[error(
        "redis at {endpoint}: maxmemory-policy is {policy}, which may evict revocations and \
         bans when memory is full; set it to noeviction (`CONFIG SET maxmemory-policy \
         noeviction` and in redis.conf, or the managed service's parameter group / \
         eviction setting), or accept the risk with dangerous_allow_eviction"
    )]
    EvictionPolicy {
        /// The server, as `host:port` (never the password).
        endpoint: String,
        /// Its `maxmemory-policy` (`allkeys-lru`, `volatile-ttl`, ...).
        policy: String,
    },
}

/// The one `maxmemory-policy` that never deletes a live key.
const SAFE_POLICY: &str = "noeviction";

impl RedisBackend {
    /// The startup check: one round trip (`CONFIG GET maxmemory-policy`) within the operation
    /// timeout, which also proves that Redis answers (TLS, authentication and database
    /// included). Call it once where the application starts; the per-request path never
    /// repeats it.
    ///
    /// - `noeviction`: fine.
    /// - Any other policy (`allkeys-*`, `volatile-*`): Redis may delete keys with a TTL when
    ///   its memory is full, silently un-revoking tokens and lifting bans — refused with
    ///   [`ServerCheckError::EvictionPolicy`], unless
    ///   [`RedisConfig::dangerous_allow_eviction`](crate::RedisConfig::dangerous_allow_eviction)
    ///   is set (then a warning is logged, target `tokenward::redis`, once per backend).
    /// - `CONFIG` renamed, disabled or denied (an `ERR unknown command` or `NOPERM` reply): a
    ///   warning is logged once ("make sure maxmemory-policy is noeviction") and the check
    ///   passes with [`ServerCheck::maxmemory_policy`] `None`.
    /// - Redis unreachable, too slow, or refusing the connection (TLS, authentication):
    ///   [`ServerCheckError::Store`].
    ///
    /// On a Redis Cluster the `CONFIG GET` goes to every primary (one round trip, all at
    /// once), each answer is judged as above, and an evicting primary is named in the error
    /// ([`ServerCheck::primaries`] lists them all).
    pub async fn check_server(&self) -> Result<ServerCheck, ServerCheckError> {
        let answers = self
            .run(async |conn| {
                let mut cmd = redis::cmd("CONFIG");
                cmd.arg("GET").arg("maxmemory-policy");
                if let Some(cluster) = conn.cluster() {
                    // Every primary answers for itself: `{address: reply or error}`.
                    let routing =
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                    let reply = cluster.route_command(cmd, routing).await?;
                    return per_primary(reply);
                }
                let reply: Result<Vec<String>, RedisError> = cmd.query_async(conn).await;
                Ok(vec![(None, policy_reply(reply)?)])
            })
            .await?;
        let inner = self.inner();
        let mut check = ServerCheck {
            maxmemory_policy: None,
            primaries: Vec::new(),
        };
        let mut unreadable = false;
        for (node, pair) in answers {
            let endpoint = node.clone().unwrap_or_else(|| inner.endpoint().to_owned());
            let policy = match pair.as_deref() {
                None => None,
                Some([name, value]) if name == "maxmemory-policy" => Some(value.clone()),
                Some(_) => {
                    return Err(StoreError::corrupt(format!(
                        "redis at {endpoint}: unexpected reply to CONFIG GET maxmemory-policy"
                    ))
                    .into());
                }
            };
            if let Some(node) = node {
                check.primaries.push((node, policy.clone()));
            }
            match policy {
                None => unreadable = true,
                Some(policy) if policy != SAFE_POLICY => {
                    if !inner.allow_eviction {
                        return Err(ServerCheckError::EvictionPolicy { endpoint, policy });
                    }
                    if !inner.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            target: "tokenward::redis",
                            endpoint = endpoint.as_str(),
                            policy = policy.as_str(),
                            "maxmemory-policy may evict revocations and bans when memory is \
                             full (allowed by dangerous_allow_eviction); set it to noeviction"
                        );
                    }
                    check.maxmemory_policy = Some(policy);
                }
                Some(policy) => {
                    if check.maxmemory_policy.is_none() {
                        check.maxmemory_policy = Some(policy);
                    }
                }
            }
        }
        if unreadable && !inner.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "tokenward::redis",
                endpoint = inner.endpoint(),
                "cannot read maxmemory-policy (CONFIG is renamed, disabled or denied); make \
                 sure it is noeviction, or Redis may evict revocations and bans when full"
            );
        }
        Ok(check)
    }
}

/// A `CONFIG GET maxmemory-policy` reply: the `[name, value]` pair, or `None` when `CONFIG`
/// is not available to this client.
fn policy_reply(reply: Result<Vec<String>, RedisError>) -> Result<Option<Vec<String>>, RedisError> {
    match reply {
        Ok(pair) => Ok(Some(pair)),
        Err(e) if config_unavailable(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The per-primary answers of a cluster's `CONFIG GET maxmemory-policy` (a map of node
/// address to its reply or error), each as [`policy_reply`].
#[allow(clippy::type_complexity)]
fn per_primary(reply: Value) -> Result<Vec<(Option<String>, Option<Vec<String>>)>, RedisError> {
    let unexpected = || {
        RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "CONFIG GET on every primary did not answer per node",
        ))
    };
    let Value::Map(nodes) = reply else {
        return Err(unexpected());
    };
    let mut out = Vec::with_capacity(nodes.len());
    for (node, answer) in nodes {
        let node: String = redis::from_redis_value(node).map_err(|_| unexpected())?;
        let answer = match answer {
            Value::ServerError(e) => Err(RedisError::from(e)),
            other => redis::from_redis_value::<Vec<String>>(other).map_err(RedisError::from),
        };
        out.push((Some(node), policy_reply(answer)?));
    }
    out.sort();
    Ok(out)
}

/// Whether `e` says `CONFIG` is not available to this client: renamed or disabled
/// (`ERR unknown command`) or denied by an ACL (`NOPERM`).
fn config_unavailable(e: &RedisError) -> bool {
    match e.code() {
        Some("NOPERM") => true,
        Some("ERR") => e
            .to_string()
            .to_ascii_lowercase()
            .contains("unknown command"),
        _ => false,
    }
}
