//! Redis backends for tokenward's stores, on a few shared multiplexed redis-rs connections
//! ([`RedisBackend`]) — the backend's own, or the application's.
//!
//! - [`RedisRevocationStore`] — a [`RevocationStore`](tokenward_revocation::RevocationStore)
//!   whose entries are keys with TTLs (`PXAT until`): Redis forgets a revocation on its own
//!   once nothing it could match can still be valid. Revokes are small Lua scripts (revocations
//!   only ever extend, `until` is compared with the Redis server's clock); a `check` is one
//!   pipelined round trip answering for the token's `jti`, `sid` and `sub`/`iat` together.
//!   The key layout is documented on the type.
//! - [`RedisRateLimitStore`] — a [`RateLimitStore`](tokenward_ratelimit::RateLimitStore)
//!   shared by every application instance: GCRA limits and fail2ban-style failure bans as Lua
//!   scripts (one `EVALSHA` per decision) timed by the Redis server's `TIME`, so the
//!   instances' clocks never matter and together they admit exactly the quota. Every key has
//!   a TTL; the key layout and the formulas are documented on the type. What a request does
//!   while Redis is down is the rate-limit policy's `FailurePolicy` (its default is
//!   documented in `tokenward-ratelimit`).
//! - [`RedisRefreshStore`] — a [`RefreshStore`](tokenward_refresh::RefreshStore) for
//!   refresh-token families. A family is a hash (`{prefix}rf:{<family id>}:f`: subject,
//!   times, the latest access-token `exp`, current and previous token *hashes*, the sealed
//!   successor and idempotency record, the revoked flag) plus a sorted set of older hashes (`…:h`, at most
//!   `MIN_REUSE_HISTORY`), both in one hash slot (the family id is the hash tag) and both
//!   expiring at `min(absolute expiry, last use + idle timeout)`; a per-subject sorted set
//!   (`{prefix}rf:u:{<hex sub>}`) lists a subject's families for "your devices" and
//!   revoke-by-subject. Each rotation is **one Lua script** (one round trip, atomic on the
//!   family's slot, timed by the server's `TIME`) that classifies the presented hash exactly
//!   as the `RefreshStore` contract says (current → rotate; previous within the grace
//!   window → the stored sealed successor; older → mark revoked, `Reused`; unknown →
//!   `Invalid`). Only hashes and ciphertexts are stored. During an outage a refresh fails
//!   with a transient `StoreError`, never with reuse detection and never by revoking.
//!
//! - [`RedisStores`] — all three stores on one [`RedisBackend`], and
//!   [`check_request`](RedisStores::check_request): the client's failure-ban status (read
//!   only, as `ban_status`, of its address key and its network key), the revocation check of a request's token and, only if the
//!   client is not banned and the token is not revoked, its per-subject GCRA step, in **one
//!   Lua script (one round trip)**, answered as a [`RequestCheck`];
//!   [`check_token`](RedisStores::check_token) is the same without the ban. A revoked token or
//!   a banned client consumes no rate-limit cell.
//!
//! **Redis Cluster**: set [`RedisConfig::cluster`] (seed nodes) or hand over a cluster client
//! ([`RedisBackend::from_cluster_client`]; with the `deadpool` feature, a deadpool cluster
//! pool). Every script's keys share one hash slot (hash tags: the rate-limit key, the family
//! id, the hex of the subject); a call whose keys are in several slots — a revocation check,
//! the Guard's per-request check, `families_of` — sends one script or pipeline per slot,
//! concurrently, so it still costs one round trip of latency. redis-rs's async cluster client
//! follows `MOVED` / `ASK` and topology changes; the startup check runs on every primary. The
//! slot layout is in `docs/architecture.md` ("Redis Cluster: slot layout").
//!
//! Every call returns within [`RedisConfig::operation_timeout`] (250 ms by default) —
//! connecting and the command itself included. Calls share `pool_size` multiplexed
//! connections (round-robin, many requests in flight on each); a connection that failed, or
//! that the server closed, is replaced. Outages come back as
//! [`StoreError::Unavailable`](tokenward_core::StoreError::Unavailable) or
//! [`StoreError::Timeout`](tokenward_core::StoreError::Timeout), garbage as
//! [`StoreError::Corrupt`](tokenward_core::StoreError::Corrupt), never as "not revoked"; what a
//! request does then is the caller's `FailurePolicy` (fail closed by default). Building a
//! store never connects, so an application starts while Redis is down and recovers by itself
//! when it is back; call [`RedisBackend::ping`] to check readiness.
//!
//! **Bring your own connection**: an application that already talks to Redis hands the
//! stores what it has instead of a [`RedisConfig`] — [`RedisBackend::from_client`] (a
//! `redis::Client`: `pool_size` shared connections opened from it, kept healthy like the
//! backend's own), [`RedisBackend::from_multiplexed`] (a `MultiplexedConnection`, which never
//! reconnects), [`RedisBackend::from_connection_manager`] (a `ConnectionManager`, which does),
//! or, with the `deadpool` feature, `RedisBackend::from_deadpool` (a `deadpool_redis::Pool`:
//! a connection checked out per call) — with [`BackendOptions`] for the key prefix, the
//! operation timeout and the rest. The default, shared multiplexed connections, is the faster
//! one: with 64 concurrent tasks an exclusive pool checkout answered a revocation check in
//! p50 634–658 µs at 71–78 k checks/s, the shared connections in p50 309–337 µs at
//! 127–133 k checks/s (`docs/benchmarks.md`); see [`RedisBackend`] for what each kind means
//! for health, reconnection and concurrency.
//!
//! **TLS**: `rediss://` URLs connect through rustls on the *ring* provider (the backend wraps
//! its own sockets in `tokio-rustls`), verifying the server's certificate for the URL's host
//! against the platform's trust store, or exactly the CAs of [`RedisConfig::tls_ca_file`]; a
//! client certificate ([`RedisConfig::tls_client_cert`]) serves mutual TLS. A failed
//! handshake is [`StoreError::Unavailable`](tokenward_core::StoreError::Unavailable) naming
//! the server and the reason, never the password. A Redis Cluster's `rediss://` seeds go
//! through redis-rs's own rustls support instead (its `tokio-rustls-comp` feature): the
//! same files, the system's root certificates by default, and rustls's process-wide
//! provider — ring when it is the only one compiled in (see [`RedisConfig::cluster`]).
//!
//! **At startup**, call [`RedisBackend::check_server`]: it fails if Redis cannot be used
//! (unreachable, TLS, authentication) and refuses a `maxmemory-policy` that may evict keys —
//! which would silently un-revoke tokens and lift bans — unless
//! [`RedisConfig::dangerous_allow_eviction`]. The request path never repeats it.
//!
//! Needs Redis (or Valkey) 7.0 or later, and a Tokio runtime with the I/O and time drivers
//! enabled.
//! Redis should persist (AOF): a restart without persistence forgets every revocation — see
//! `docs/operations.md`.
//!
//! ```no_run
//! use std::time::Duration;
//! use tokenward_core::{StoreId, TokenRef, UnixTime};
//! use tokenward_redis::{RedisConfig, RedisRevocationStore};
//! use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::new("redis://127.0.0.1:6379")
//!     .key_prefix("orders-api:")
//!     .operation_timeout(Duration::from_millis(100));
//! let store = RedisRevocationStore::connect(&config)?; // does not connect yet
//! // Once at startup: Redis answers, and will not evict revocations when full.
//! store.backend().check_server().await?;
//!
//! let exp = UnixTime::from_secs(2_000_000_000);
//! // The stolen laptop's token, until its exp.
//! store.revoke_token(&StoreId::new("0f3a9c")?, exp).await?;
//!
//! let iat = Some(UnixTime::from_secs(1_999_999_100));
//! let token = TokenRef::from_parts(Some("0f3a9c"), Some("fam_81"), Some("alice"), iat, exp)?;
//! assert_eq!(store.check(&token).await?, RevocationStatus::Revoked(RevokedBy::Token));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod backend;
mod byo;
mod check;
mod cluster;
mod config;
mod error;
mod ratelimit;
mod refresh;
mod revocation;
mod slot;
mod stores;
mod tls;

pub use backend::RedisBackend;
pub use byo::BackendOptions;
pub use check::{ServerCheck, ServerCheckError};
pub use config::RedisConfig;
pub use error::RedisConfigError;
pub use ratelimit::RedisRateLimitStore;
pub use refresh::RedisRefreshStore;
pub use revocation::RedisRevocationStore;
pub use stores::{RedisStores, RequestCheck};
