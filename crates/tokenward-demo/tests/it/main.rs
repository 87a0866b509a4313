//! The demo's end-to-end tests over real HTTP: the API's edges, the whole lifecycle (in memory
//! and on Redis with two instances), a Redis outage, slow and greedy connections, what
//! the failure ban counts, sign-out and session limits, the Redis startup check (TLS,
//! eviction policy), `/metrics` and JSON logs, the anomaly detectors, and the stores on
//! PostgreSQL (alone, and with Redis).
//!
//! One test binary, one module per concern; only `telemetry` and `anomaly` run the demo
//! binary as a process of its own (its metrics recorder and log subscriber are process-wide).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod anomaly;
mod api;
mod bans;
mod connections;
mod durable;
mod lifecycle;
mod outage;
mod signout;
mod startup;
mod telemetry;
