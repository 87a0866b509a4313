//! The integration tests of tokenward-postgres, against a real PostgreSQL (`DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`; `cargo xtask ci` provides one).
//! Every test works in a schema of its own, dropped afterwards.
//!
//! One test binary, one module per concern.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod backend;
mod refresh;
mod revocation;
