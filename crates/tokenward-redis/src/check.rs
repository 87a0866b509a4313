//! The startup check of a Redis server: [`RedisBackend::check_server`].

use std::sync::atomic::Ordering;

use redis::RedisError;
use tokenward_core::StoreError;

use crate::backend::RedisBackend;

/// What [`RedisBackend::check_server`] found out about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerCheck {
    /// The server's `maxmemory-policy`, or `None` when `CONFIG GET` is not allowed (renamed
    /// or disabled, as managed services often do, or denied by an ACL).
    pub maxmemory_policy: Option<String>,
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
    pub async fn check_server(&self) -> Result<ServerCheck, ServerCheckError> {
        let policy = self
            .run(async |conn| {
                let reply: Result<Vec<String>, RedisError> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(conn)
                    .await;
                match reply {
                    Ok(pair) => Ok(Some(pair)),
                    Err(e) if config_unavailable(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let inner = self.inner();
        let Some(pair) = policy else {
            if !inner.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "tokenward::redis",
                    endpoint = inner.endpoint(),
                    "cannot read maxmemory-policy (CONFIG is renamed, disabled or denied); make \
                     sure it is noeviction, or Redis may evict revocations and bans when full"
                );
            }
            return Ok(ServerCheck {
                maxmemory_policy: None,
            });
        };
        let policy = match pair.as_slice() {
            [name, value] if name == "maxmemory-policy" => value.clone(),
            _ => {
                return Err(StoreError::corrupt(format!(
                    "redis at {}: unexpected reply to CONFIG GET maxmemory-policy",
                    inner.endpoint()
                ))
                .into());
            }
        };
        if policy != SAFE_POLICY {
            if !inner.allow_eviction {
                return Err(ServerCheckError::EvictionPolicy {
                    endpoint: inner.endpoint().to_owned(),
                    policy,
                });
            }
            if !inner.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "tokenward::redis",
                    endpoint = inner.endpoint(),
                    policy = policy.as_str(),
                    "maxmemory-policy may evict revocations and bans when memory is full \
                     (allowed by dangerous_allow_eviction); set it to noeviction"
                );
            }
        }
        Ok(ServerCheck {
            maxmemory_policy: Some(policy),
        })
    }
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
