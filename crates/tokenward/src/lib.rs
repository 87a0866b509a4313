//! tokenward: JWT security for Rust services — one dependency for the whole toolkit.
//!
//! This crate re-exports the tokenward crates, so a service can depend on `tokenward` alone
//! and switch parts on with features. Every part is also usable on its own (depend on
//! `tokenward-claims` for validation only: no tokio, no Redis, no HTTP).
//!
//! | module | crate | what | feature |
//! |---|---|---|---|
//! | [`core`] | `tokenward-core` | clocks, `UnixTime`, `StoreError`, `FailurePolicy` | always |
//! | [`claims`] | `tokenward-claims` | keys, strict validation, issuing; crypto on *ring*, or aws-lc-rs | always (`aws-lc-rs`: verify and sign with aws-lc-rs) |
//! | [`revocation`] | `tokenward-revocation` | revocation store trait + in-memory store | always |
//! | [`ratelimit`] | `tokenward-ratelimit` | subject limits, failure bans, client IPs | always |
//! | [`refresh`] | `tokenward-refresh` | refresh-token rotation | always |
//! | [`guard`] (and the root) | `tokenward-guard` | the per-request Guard, audit events, serde config | always |
//! | `redis` | `tokenward-redis` | Redis stores, one round trip per request | `redis` (`redis-deadpool`: on an app's `deadpool_redis::Pool`) |
//! | `postgres` | `tokenward-postgres` | durable refresh families and revocations on PostgreSQL (sqlx); with `redis`, the hybrid (`guard::hybrid`) | `postgres` |
//! | `jwks` | `tokenward-jwks` | remote key sets (JWKS, OIDC discovery) | `jwks` |
//! | `anomaly` | `tokenward-anomaly` | anomaly detection with actions (shared tokens, replays, forgery bursts, ...) | `anomaly` (state on Redis with `redis`) |
//! | `axum` | `tokenward-axum` | tower `Layer` + axum extractors | `axum` |
//! | `actix` | `tokenward-actix` | actix-web middleware + extractors | `actix` |
//!
//! The Guard's types are also at the root:
//!
//! ```
//! use tokenward::claims::{AccessToken, Algorithm, Key, KeySet, TokenIssuer};
//! use tokenward::{AuthRequest, GuardConfig, GuardStores};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[7u8; 32])?);
//! let guard = GuardConfig::new("https://auth.example.com", "orders-api")
//!     .guard_builder(keys.clone(), GuardStores::memory(), None)?
//!     .build()?;
//! let token = TokenIssuer::builder(keys, "https://auth.example.com")
//!     .audience("orders-api")
//!     .build()?
//!     .issue(&AccessToken::new("alice"))?
//!     .token;
//! let header = format!("Bearer {token}");
//! let request = AuthRequest::new(
//!     "GET",
//!     "/orders",
//!     "192.0.2.1".parse()?,
//!     guard.credentials([header.as_bytes()], []),
//! );
//! assert_eq!(guard.authenticate(&request).await.map_err(|d| d.body())?.sub(), Some("alice"));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub use tokenward_guard::*;

/// Clocks, `UnixTime`, `StoreError`, `FailurePolicy`, `TokenRef` (`tokenward-core`).
pub use tokenward_core as core;

/// Keys, strict validation policies, issuing (`tokenward-claims`).
pub use tokenward_claims as claims;

/// The revocation store trait and the in-memory store (`tokenward-revocation`).
pub use tokenward_revocation as revocation;

/// Rate-limit policies, the store trait and the in-memory store (`tokenward-ratelimit`).
pub use tokenward_ratelimit as ratelimit;

/// Refresh-token rotation (`tokenward-refresh`).
pub use tokenward_refresh as refresh;

/// The Guard (`tokenward-guard`); also re-exported at the crate root.
pub use tokenward_guard as guard;

/// Redis stores (`tokenward-redis`, feature `redis`).
#[cfg(feature = "redis")]
pub use tokenward_redis as redis;

/// PostgreSQL stores (`tokenward-postgres`, feature `postgres`).
#[cfg(feature = "postgres")]
pub use tokenward_postgres as postgres;

/// Remote key sets (`tokenward-jwks`, feature `jwks`).
#[cfg(feature = "jwks")]
pub use tokenward_jwks as jwks;

/// Anomaly detection (`tokenward-anomaly`, feature `anomaly`).
#[cfg(feature = "anomaly")]
pub use tokenward_anomaly as anomaly;

/// The tower/axum adapter (`tokenward-axum`, feature `axum`).
#[cfg(feature = "axum")]
pub use tokenward_axum as axum;

/// The actix-web adapter (`tokenward-actix`, feature `actix`).
#[cfg(feature = "actix")]
pub use tokenward_actix as actix;
