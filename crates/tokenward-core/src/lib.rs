//! Shared building blocks of the tokenward crates.
//!
//! This crate has no I/O and almost no dependencies; every other tokenward crate builds on it.
//!
//! - [`UnixTime`] — a point in time as a duration since the Unix epoch (JWT `NumericDate`s are
//!   whole seconds; rate limits need sub-second precision, so both are supported).
//! - [`Clock`] — where "now" comes from. [`SystemClock`] in production, [`ManualClock`] in tests
//!   (advance it instead of sleeping).
//! - [`StoreError`] — what a storage backend (in memory, Redis, your own) may fail with.
//! - [`FailurePolicy`] — what to do when a store cannot answer: fail closed (the default) or open.
//! - [`TokenRef`] — the identifying parts of a verified token a store needs (jti, sid, sub, iat, exp).
//! - [`StoreId`] — an id (`jti`, `sid`, `sub`) checked once where it is made, so that store
//!   traits take only valid ids and no backend has to check them again.
//! - [`metrics`] — the names of the metrics the crates record (a stable contract) and
//!   [`metrics::describe`].
//! - [`memory`] — shards and a capacity counter, the shape of the in-process stores.
//! - `conformance` (feature `conformance`) — the harness every backend conformance suite
//!   shares: test clocks, fixtures with setup and teardown, probes, the suite runner.
//!
//! ```
//! use std::time::Duration;
//! use tokenward_core::{Clock, ManualClock, UnixTime};
//!
//! let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now().as_secs(), 1_700_000_090);
//! ```
#![forbid(unsafe_code)]

mod clock;
mod error;
mod id;
pub mod memory;
pub mod metrics;
mod policy;
mod redact;
mod scope;
mod token;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock, UnixTime};
pub use error::{SettingError, StoreError, StoreErrorKind};
pub use id::{InvalidId, MAX_ID_LEN, StoreId};
pub use policy::FailurePolicy;
pub use redact::redact_url;
pub use scope::{ISSUER_TAG_LEN, IssuerScope, MAX_SCOPED_ID_LEN};
pub use token::TokenRef;
