//! The integration tests of tokenward-claims, in one test binary: keys, issuing, the time
//! rules, the attack suite and identity providers' key sets and tokens (`idp`).
//!
//! Nothing in this binary installs `jsonwebtoken`'s process-wide `CryptoProvider`, so every
//! test here also shows that tokenward's own paths never need it (`cargo xtask ci` runs them
//! with neither, one and both `jsonwebtoken` backends; with neither or both, a call into
//! `jsonwebtoken`'s crypto would panic). The tests that install the provider are the `provider`
//! binary, in a process of their own.
// Test helpers outside `#[test]` functions (clippy.toml allows these inside them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../common/mod.rs"]
mod common;

mod attacks;
mod idp;
mod independence;
mod issuing;
mod keys;
mod time_rules;
