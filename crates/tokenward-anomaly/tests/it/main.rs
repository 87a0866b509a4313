//! tokenward-anomaly's tests: one binary. `common` builds Guards with a detector on memory
//! or Redis stores; `detectors` drives each detector through `Guard::authenticate`;
//! `state` checks the state stores' contract and expiry.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod detectors;
mod state;
