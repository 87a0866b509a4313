//! Remote key sets for tokenward: verify tokens you do not issue, with the issuer's public
//! keys fetched from its JWKS endpoint.
//!
//! With RS256/ES256/EdDSA across several services the private key lives in one place and every
//! other service verifies with public keys it fetches. [`RemoteKeySet`] does that fetching
//! without the usual failure modes:
//!
//! - **Source**: a JWKS URL ([`JwksSource::url`]) or an OpenID Connect issuer
//!   ([`JwksSource::oidc_issuer`]: `/.well-known/openid-configuration` → `jwks_uri`, whose
//!   `issuer` must match exactly). HTTPS only, unless
//!   [`dangerous_allow_http`](RemoteKeySetBuilder::dangerous_allow_http) (tests, local
//!   development). TLS is rustls with the *ring* provider and the OS trust store (plus
//!   [`add_root_certificate`](RemoteKeySetBuilder::add_root_certificate) for a private CA).
//! - **Caching**: a fetched set is kept for its `Cache-Control: max-age`, bounded by
//!   [`ttl_bounds`](RemoteKeySetBuilder::ttl_bounds) (default 60 s – 24 h; 5 min without
//!   `max-age`), and refreshed in the background before it runs out.
//! - **Stale-if-error**: when a refresh fails, the last good key set keeps working — with a
//!   warning and a `tokenward::audit` event — for at most
//!   [`max_staleness`](RemoteKeySetBuilder::max_staleness) past its TTL (default 24 h);
//!   then no key resolves and [`RemoteKeySet::snapshot`] reports [`JwksError::Stale`].
//! - **Unknown `kid`s** (a key rotated in at the issuer): [`RemoteKeySet::refetch_for_token`]
//!   / [`refetch_for_kid`](RemoteKeySet::refetch_for_kid) fetch again — single-flight (one
//!   fetch, everybody waits on it, nobody holds a lock across I/O) and at most once per
//!   [`unknown_kid_cooldown`](RemoteKeySetBuilder::unknown_kid_cooldown) (default 30 s), so
//!   random `kid`s cannot become a flood of outbound requests.
//! - **Limits**: a response size cap enforced while streaming (256 KiB), a request timeout
//!   covering connect, headers and body (5 s), at most 5 redirects that may not leave HTTPS.
//! - **Key sets as providers publish them**, with the rules every tokenward loader shares
//!   ([`KeySet::load_jwks`](tokenward_claims::KeySet::load_jwks)): a key without `alg` binds to
//!   its key type's one algorithm (RSA → RS256, or [`rsa_alg`](RemoteKeySetBuilder::rsa_alg);
//!   EC P-256/P-384 → ES256/ES384; Ed25519 → EdDSA; never HMAC); `x5c`/`x5t` and other extra
//!   members are tolerated, never a source of keys. Keys that cannot verify signatures —
//!   encryption keys (`use: enc`, `key_ops` without `verify`, `RSA-OAEP`), unsupported key
//!   types (P-521, Ed448), `kty`/`crv` that do not fit the `alg`, weak RSA, symmetric `oct`
//!   keys (a published secret is no secret), duplicate `kid`s — are skipped with a warning
//!   naming the reason; a set with no usable key is an error.
//! - **Verification never waits**: [`RemoteKeySet`] implements
//!   [`KeyResolver`](tokenward_claims::KeyResolver) from an `Arc<KeySet>` snapshot that
//!   fetches swap atomically, so `Validator::new(policy, remote.clone())` works and
//!   verification does no I/O.
//! - **One issuer per key set**: to trust several issuers, build one [`RemoteKeySet`] and one
//!   `Validator` per issuer and route them with
//!   [`IssuerRouter`](tokenward_claims::IssuerRouter); their keys never mix.
//!
//! Signals: `tracing` events with target `tokenward::jwks` (skipped keys, failed fetches) and
//! `tokenward::audit` (`jwks_serving_stale`, `jwks_stale_unusable`, `jwks_recovered`), and
//! [`RemoteKeySet::stats`] for metrics and health checks; every fetch also counts in
//! `tokenward_jwks_fetches_total{result}` (`ok`, `error`), and every failed refresh of a
//! stale key set in `tokenward_jwks_stale_total{state}` (`serving` past its TTL, `unusable`
//! past its maximum staleness), through the `metrics` facade ([`tokenward_core::metrics`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokenward_claims::*;
//! use tokenward_jwks::{JwksSource, RemoteKeySet};
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The issuer: signs tokens and publishes its public keys.
//! let signing = KeySet::single(Key::from_pkcs8_der(
//!     "2026-11", Algorithm::EdDSA, &generate_pkcs8(Algorithm::EdDSA)?)?);
//! let jwks = signing.public_jwks_json()?;
//! # // A tiny local HTTP server standing in for the issuer's JWKS endpoint.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let url = format!("http://{}/jwks.json", listener.local_addr()?);
//! # tokio::spawn(async move {
//! #     while let Ok((mut socket, _)) = listener.accept().await {
//! #         let mut request = [0u8; 4096];
//! #         let _ = socket.read(&mut request).await;
//! #         let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", jwks.len());
//! #         let _ = socket.write_all(head.as_bytes()).await;
//! #         let _ = socket.write_all(jwks.as_bytes()).await;
//! #     }
//! # });
//!
//! // A service that verifies the issuer's tokens. (`url` is a local test server here, so
//! // plain HTTP is allowed; production URLs are https://.)
//! let remote = RemoteKeySet::builder(JwksSource::url(url))
//!     .dangerous_allow_http(true)
//!     .unknown_kid_cooldown(Duration::from_secs(30))
//!     .start()                       // first fetch + background refresher
//!     .await?;
//! let policy = ValidationPolicy::builder()
//!     .issuer("https://auth.example.com")
//!     .audience("orders-api")
//!     .build()?;
//! let validator = Validator::new(policy, remote.clone());
//!
//! let token = TokenIssuer::builder(signing, "https://auth.example.com")
//!     .audience("orders-api")
//!     .build()?
//!     .issue(&AccessToken::new("alice"))?;
//! let verified = match validator.verify(&token.token) {
//!     // A key the cache does not have yet: fetch (rate-limited, single-flight), retry once.
//!     Err(r) if r.class() == RejectionClass::Key && remote.refetch_for_token(&token.token).await => {
//!         validator.verify(&token.token)?
//!     }
//!     other => other?,
//! };
//! assert_eq!(verified.claims.sub.as_deref(), Some("alice"));
//! assert_eq!(remote.stats().fetches, 1);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod config;
mod error;
mod fetch;
mod refresher;
mod remote;

pub use config::{
    DEFAULT_MAX_RESPONSE_SIZE, DEFAULT_MAX_STALENESS, DEFAULT_MAX_TTL, DEFAULT_MIN_TTL,
    DEFAULT_REFRESH_AHEAD, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TTL, DEFAULT_UNKNOWN_KID_COOLDOWN,
    JwksSource, RemoteKeySetBuilder,
};
pub use error::{JwksError, SourceError};
pub use remote::{JwksStats, RemoteKeySet};
