//! The integration tests of tokenward-guard: the pipeline without a web framework, and (with
//! the `redis` feature) the Guard on real Redis stores and under injected Redis faults.
//!
//! One test binary, one module per concern. The audit test installs a process-wide `tracing`
//! subscriber, which would also format every other test's audit events (thousands under the
//! fault tests' load, changing their timing): it is a binary of its own, `tests/audit.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod config;
mod conformance;

#[cfg(feature = "redis")]
mod fault_proxy;
mod faults;
mod hook;
#[cfg(all(feature = "redis", feature = "postgres"))]
mod hybrid;
mod issuers;
mod now;
mod observe;
mod pipeline;
mod redis;
