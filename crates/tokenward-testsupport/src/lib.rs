//! Test and benchmark support of the tokenward workspace (`publish = false`): one copy of the
//! harness code that the tests and benchmarks of several crates need.
//!
//! - **The shared test Redis** ([`redis_url`], [`connect`], [`shared_redis`]): `REDIS_URL`, or
//!   `redis://127.0.0.1:6379`; tests never skip — without a Redis they fail and say how to get
//!   one. Each test works under its own [`unique_prefix`] and removes only that prefix's keys
//!   ([`keys_under`], [`delete_prefix`]: `SCAN` + `UNLINK`, never `KEYS` or `FLUSHALL`).
//! - **The shared test PostgreSQL** (feature `postgres`: `database_url`, `TestSchema`):
//!   `DATABASE_URL`, or `postgres://postgres@127.0.0.1:5432/postgres`; tests never skip. Each
//!   test works in a fresh schema of its own (`CREATE SCHEMA`, a small pool whose connections
//!   have it as `search_path`, a URL that does the same), dropped afterwards (`DROP SCHEMA …
//!   CASCADE`). Only crates whose tests need PostgreSQL enable the feature (it brings sqlx).
//! - **Throwaway servers** ([`ThrowawayRedis`]): a `redis-server` process of the test's own, on
//!   a free port, for tests that count commands, flush scripts, kill, freeze or restart the
//!   server. Started through [`ThrowawayRedis::builder`] (extra arguments, an append-only file
//!   that survives a restart), killed on drop. [`ThrowawayTlsRedis`] speaks TLS with
//!   certificates from a throwaway CA (client certificates optional or required, a
//!   certificate for another name, a CA that signed nothing), and dies with the test process,
//!   so one server in a `static` can serve a whole test binary. [`ThrowawayCluster`] is a Redis
//!   Cluster of three primaries; [`cluster_urls`] names the one the tests use
//!   (`REDIS_CLUSTER_URLS`, set by `cargo xtask ci`, or a throwaway one per test binary).
//! - **Loopback networking** ([`free_port`], [`free_ports`], [`BlackHole`]): a port (or several
//!   distinct ones) nothing listens on, and a
//!   server that accepts connections and never answers (for timeout tests).
//! - **Logs** ([`LogCapture`]): every `tracing` event of the test binary, formatted into one
//!   buffer by a process-wide subscriber installed once (audit-event tests).
//! - **`INFO` counters** ([`command_calls`]): calls per command from `INFO commandstats`, for
//!   tests and benchmarks that count round trips.
//!
//! What is used by one crate's tests or benchmarks only stays there (the Guard's TCP fault
//! proxy in `tokenward-guard/tests`, the latency percentiles and benchmark preamble in
//! `tokenward-bench`). New kinds of throwaway servers (PostgreSQL, ...) belong
//! here, next to [`ThrowawayRedis`] and in its builder style.
//!
//! ```
//! use tokenward_testsupport::{ThrowawayRedis, delete_prefix, keys_under, unique_prefix};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> redis::RedisResult<()> {
//! // A server of this test's own (fails the test, saying how to install it, without
//! // `redis-server`); killed when dropped.
//! let server = ThrowawayRedis::start();
//! let mut conn = redis::Client::open(server.url())?
//!     .get_multiplexed_async_connection()
//!     .await?;
//!
//! // Keys under a prefix no other test uses, and their cleanup.
//! let prefix = unique_prefix("doc");
//! let () = redis::cmd("SET")
//!     .arg(format!("{prefix}k"))
//!     .arg(1)
//!     .query_async(&mut conn)
//!     .await?;
//! assert_eq!(keys_under(&mut conn, &prefix).await?.len(), 1);
//! assert_eq!(delete_prefix(&mut conn, &prefix).await?, 1);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
// Test support: failing the test that called it, with a message saying what to do, is the
// purpose of these helpers when a server cannot be started or reached.
#![allow(clippy::panic, reason = "test support fails the calling test loudly")]

mod cluster;
mod info;
mod logs;
mod net;
#[cfg(feature = "postgres")]
mod postgres;
mod prefix;
mod shared;
mod throwaway;
mod tls;

pub use cluster::{CLUSTER_URLS_VAR, ThrowawayCluster, cluster_urls, delete_prefix_on_cluster};
pub use info::command_calls;
pub use logs::LogCapture;
pub use net::{BlackHole, free_port, free_ports};
#[cfg(feature = "postgres")]
pub use postgres::{
    DEFAULT_DATABASE_URL, PostgresUnavailable, TestSchema, database_url, unique_schema,
};
pub use prefix::{delete_prefix, glob_escape, keys_under, unique_prefix};
pub use shared::{DEFAULT_REDIS_URL, RedisUnavailable, connect, redis_url, shared_redis};
pub use throwaway::{REDIS_SERVER_HINT, ThrowawayRedis, ThrowawayRedisBuilder};
pub use tls::{ThrowawayTlsRedis, ThrowawayTlsRedisBuilder};
