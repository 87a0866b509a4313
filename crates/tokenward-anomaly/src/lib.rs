//! Anomaly detection for the tokenward Guard: attacks answered in seconds, not found in
//! logs days later.
//!
//! An [`AnomalyDetector`] is the Guard's [decision hook](tokenward_guard::DecisionHook): it
//! sees every decision, typed, and runs these detectors (each on by default, each with its
//! own action, see [`AnomalyConfig`]):
//!
//! | kind | what | default action |
//! |---|---|---|
//! | `token_shared` | one token (its `sid`, else its `jti`) used from more than 3 client networks (IPv4 /24, IPv6 /48) within 10 minutes | [`Action::RevokeSession`] (the `sid`, else the token) |
//! | `revoked_token_replay` | a revoked token presented again | alert; the 5th replay from one network within 10 minutes: [`Action::Ban`] of that network |
//! | `forgery_burst` | 20 bad signatures, unknown `kid`s or refused algorithms from one network within 60 s (expired tokens never count) | [`Action::Ban`] of that network |
//! | `refresh_reuse` | the refresh engine's reuse detection, with the family's networks | [`Action::Alert`] (the engine revoked the family) |
//! | `new_network` | a subject seen from a network (an ASN, with a [`NetworkInfo`]) it was not seen from in 30 days | [`Action::Alert`] (a step-up signal) |
//!
//! Every anomaly is a `tracing` event (target [`TARGET`], fields `kind`, `action`, `sub`,
//! `sid`, `jti` (a fingerprint, never the token), `client_ip`, `network`, `networks`,
//! `count`, `asn`, `country`), one `tokenward_anomalies_total{kind,action}`, and a call of
//! your [`AnomalyHandler`] (to page, to email). Then its action runs through the
//! [`Responder`] on the Guard's own stores: a revoked session is refused by the Guard's next
//! revocation check, a ban by its next ban check.
//!
//! # Cost on the request path
//! The hook classifies the decision, skips a (token, network) pair this instance reported
//! lately, and queues the rest without waiting. Counting, reports and actions run on a
//! worker task after the response: on Redis, detection adds no round trip to the request;
//! an action whose store is down is retried and logged and never holds up a request. A
//! full queue drops observations (counted in `tokenward_anomaly_dropped_total`).
//!
//! # State
//! Counts live in an [`AnomalyStore`]: [`MemoryAnomalyStore`] for one process (bounded),
//! or `RedisAnomalyStore` (feature `redis`) shared by every instance. Every key expires a
//! window after its creation.
//!
//! ```
//! use std::sync::Arc;
//! use tokenward_anomaly::{AnomalyConfig, AnomalyDetector, Responder};
//! use tokenward_claims::{Algorithm, Key, KeySet, ValidationPolicy, Validator};
//! use tokenward_guard::{Guard, GuardStores};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = GuardStores::memory();
//! // The detector acts on the stores the Guard checks: build it first (within a Tokio
//! // runtime: it starts its worker), then hand it to the Guard.
//! let detector = AnomalyDetector::builder(AnomalyConfig::default())
//!     .responder(Responder::for_stores(&stores))
//!     .start()?;
//! let keys = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[7u8; 32])?);
//! let policy = ValidationPolicy::builder().issuer("https://issuer.example").audience("api").build()?;
//! let guard = Guard::builder(Validator::new(policy, keys), stores)
//!     .decision_hook(Arc::new(detector))
//!     .build()?;
//! # let _ = guard;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod anomaly;
mod config;
mod detector;
mod network;
#[cfg(feature = "redis")]
mod redis;
mod respond;
mod seen;
mod state;
mod worker;

pub use anomaly::{Action, Anomaly, AnomalyHandler, AnomalyKind, TARGET};
pub use config::{
    AnomalyConfig, ForgeryBurst, NewNetwork, RefreshReuse, RevokedReplay, TokenShared, WINDOW_RANGE,
};
pub use detector::{AnomalyDetector, AnomalyDetectorBuilder, is_forgery};
pub use network::{NetworkDetails, NetworkInfo, network_of};
#[cfg(feature = "redis")]
pub use redis::RedisAnomalyStore;
pub use respond::Responder;
pub use state::{AnomalyStore, MemoryAnomalyStore, SetAnswer};
