//! The integration tests of tokenward-redis, against a real Redis (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`; each test under its own key prefix, never flushed) and, where a
//! test counts commands or kills the server, a throwaway `redis-server` of its own; the
//! Redis Cluster suites on `REDIS_CLUSTER_URLS` or a throwaway cluster of three primaries.
//!
//! One test binary, one module per concern (links the dependency graph once instead of once
//! per file); nothing here needs a process of its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod backend;
mod byo;
mod cluster;
mod combined;
mod eviction;
mod outage;
mod ratelimit;
mod ratelimit_outage;
mod refresh;
mod refresh_outage;
mod revocation;
mod stores;
mod tls;
