//! The tests that install `jsonwebtoken`'s process-wide `CryptoProvider`: tokenward's ring
//! provider through `jsonwebtoken::encode`/`decode`, and the `jsonwebtoken` traps tokenward
//! avoids. A binary of its own, so that the `it` binary runs without any provider installed.
// Test helpers outside `#[test]` functions (clippy.toml allows these inside them).
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod ring_provider;
mod traps;
