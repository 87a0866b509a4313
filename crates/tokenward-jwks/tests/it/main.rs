//! The integration tests of tokenward-jwks, in one test binary: `RemoteKeySet` against a real
//! local HTTP(S) server the tests control ([`server`]), and the `tracing` signals it emits.
// Test helpers outside `#[test]` functions (clippy.toml allows these inside them).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod server;

mod caching;
mod refetch;
mod responses;
mod setup;
mod signals;
