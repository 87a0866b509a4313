//! The per-request Guard of tokenward, independent of any web framework.
//!
//! A [`Guard`] runs, for every request: the failure-ban check for the client IP → the size
//! cap → strict verification → the revocation check → the per-subject limit → an audit
//! event; a failed verification is recorded for the ban. Store outages follow each check's
//! [`FailurePolicy`](tokenward_core::FailurePolicy) — closed by default, which means 503 with
//! `Retry-After`, never 401 and never 200. With Redis (feature `redis`) the ban check, the
//! revocation check and the subject limit cost one round trip together ([`CombinedCheck`]).
//!
//! - [`Guard`] / [`GuardBuilder`] — the pipeline; [`Guard::authenticate`] takes an
//!   [`AuthRequest`] and returns [`Authenticated`] or a [`Denial`].
//! - [`Denial`] — why a request was refused, rendered once for every adapter: status,
//!   `WWW-Authenticate` (RFC 6750), `Retry-After`, `RateLimit`/`RateLimit-Policy`, and a JSON
//!   body `{"error", "error_description"}` that never echoes the token.
//! - [`Requirements`] — per-route scopes and roles, read where the policy's profile says
//!   (403 `insufficient_scope`), and audience.
//! - [`bearer_credentials`] — the token from `Authorization: Bearer` only (scheme
//!   case-insensitive); a cookie is an explicit opt-in ([`GuardBuilder::cookie_token`]);
//!   query strings are never read.
//! - [`GuardConfig`] — the whole configuration as serde data (TOML/YAML/env), validated at
//!   startup with errors that name the field.
//! - [`audit`] — the `tokenward::audit` events and [`fingerprint`]; metrics through the
//!   `metrics` facade under the stable names of [`tokenward_core::metrics`]; a
//!   `tokenward.authenticate` span per request (target [`SPAN_TARGET`], OpenTelemetry
//!   field names) with a `tokenward.store` child span per store call that awaits (the
//!   in-memory stores answer synchronously, without one).
//! - [`KeySource`] — the keys, given once: fixed, or refetched on an unknown `kid` (a
//!   `RemoteKeySet`, feature `jwks`).
//! - [`http`] — what the framework adapters (`tokenward-axum`, `tokenward-actix`) call: one
//!   [`Guard::authorize`] per request, the client-IP resolver and the fixed response texts;
//!   the adapters only translate requests and responses.
//! - `conformance` (feature) — the suite a custom [`CombinedCheck`] backend runs;
//!   `testkit` (feature) — the HTTP case table every adapter runs.
//!
//! ```
//! use std::net::IpAddr;
//! use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, TokenIssuer, Validator};
//! use tokenward_guard::{AuthRequest, Denial, Guard, GuardConfig, GuardStores};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[7u8; 32])?);
//! let config = GuardConfig::new("https://auth.example.com", "orders-api");
//! let stores = GuardStores::memory();
//! let guard = config.guard_builder(keys.clone(), stores.clone(), None)?.build()?;
//!
//! let issuer = TokenIssuer::builder(keys, "https://auth.example.com").audience("orders-api").build()?;
//! let token = issuer.issue(&AccessToken::new("alice").sid("family-1"))?.token;
//! let header = format!("Bearer {token}");
//! let ip: IpAddr = "203.0.113.7".parse()?;
//! let creds = guard.credentials([header.as_bytes()], []);
//! let request = AuthRequest::new("GET", "/orders", ip, creds);
//!
//! let auth = guard.authenticate(&request).await.map_err(|d| d.body())?;
//! assert_eq!(auth.sub(), Some("alice"));
//!
//! // Revoke the session: the same token is refused, with an RFC 6750 challenge. Store ids
//! // are scoped by the token's issuer (`guard.token_ref(&auth)` gives them).
//! let sid = guard.token_ref(&auth).and_then(|t| t.sid).ok_or("no sid")?;
//! assert_eq!(sid, tokenward_core::IssuerScope::new("https://auth.example.com").id("family-1")?);
//! stores.revocation.revoke_session(&sid, tokenward_core::UnixTime::from_secs(u64::MAX / 2)).await?;
//! let denial = guard.authenticate(&request).await.unwrap_err();
//! assert_eq!(denial.status(), 401);
//! assert!(matches!(denial, Denial::Revoked { .. }));
//! assert!(!denial.body().contains(&token));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod audit;
mod authenticated;
mod check;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod denial;
mod guard;
pub mod hook;
pub mod http;
#[cfg(all(feature = "redis", feature = "postgres"))]
pub mod hybrid;
mod issuers;
mod observe;
mod request;
mod stores;
#[cfg(feature = "testkit")]
pub mod testkit;
mod verifier;

pub use audit::fingerprint;
pub use authenticated::{Authenticated, Requirements};
pub use check::{Backend, Check};
pub use config::{
    BanConfig, ClientIpConfig, ConfigError, GuardConfig, RevocationConfig, StoreBackend,
    StoresConfig, SubjectLimitConfig, TokenConfig, ValidationConfig,
};
pub use denial::Denial;
pub use guard::{
    CustomClaims, DEFAULT_BAN_NAME, DEFAULT_OUTAGE_RETRY_AFTER, DEFAULT_SUBJECT_LIMIT_NAME,
    DEFAULT_SUBJECT_QUOTA, Guard, GuardBuilder, OUTAGE_RETRY_AFTER_RANGE, RATELIMIT_HEADER,
    RATELIMIT_POLICY_HEADER, Unfinished,
};
pub use hook::{DecisionEvent, DecisionHook};
pub use issuers::{IssuerConfig, KeysConfig};
pub use observe::SPAN_TARGET;
pub use request::{
    AuthRequest, Credentials, MAX_HEADER_BYTES, bearer_credentials, cookie_credentials,
};
pub use stores::{CombinedAnswer, CombinedCheck, GuardStores, SequentialCheck};
pub use verifier::{KeyRefetch, KeySource, Verifier};
