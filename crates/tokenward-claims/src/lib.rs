//! Strict JWT validation and issuing for tokenward.
//!
//! `tokenward-claims` turns "the JWT decodes" into "the JWT is acceptable": the algorithm is
//! pinned by the key (never by the header), issuer and audience are mandatory, lifetimes are
//! capped, `typ`, `crit` and embedded-key headers are checked, the size is capped before any
//! decoding, and every rejection has a stable [`RejectionClass`]. It does no I/O and needs no
//! async runtime, and it is usable on its own: the types its API takes and returns
//! ([`Algorithm`], the JWK types in [`jwk`], the clocks [`ManualClock`] / [`SystemClock`] /
//! [`SharedClock`] and [`UnixTime`]) are re-exported here, so the examples below need no other
//! dependency.
//!
//! - [`Key`] / [`KeySet`] / [`SharedKeySet`] — keys by `kid`, each bound to one algorithm; one
//!   active signer plus retired verify-only keys; PEM, JWK and JWKS in, JWKS out.
//! - [`KeySet::load_jwks`] / [`JwksOptions`] — key sets as identity providers publish them:
//!   keys without `alg` bound to their key type's one algorithm, encryption keys and
//!   unsupported key types skipped with a reason ([`SkippedKey`]).
//! - [`ValidationPolicy`] / [`Validator`] / [`IssuerRouter`] — what a token must satisfy, and
//!   several policies (issuers) in one process without mixing their keys.
//! - [`Profile`] / [`Grants`] — identity providers' conventions (Entra ID, Auth0, Okta,
//!   Keycloak, Cognito, Google) as data a policy applies, and a verified token's scopes and
//!   roles read where the profile says, with requirement checks (class `scope`).
//! - [`TokenIssuer`] — short-lived access tokens (15 minutes by default) with random `jti`.
//! - [`crypto`] — the library keys verify and sign with (*ring* by default, aws-lc-rs with the
//!   `aws-lc-rs` feature), and [`crypto::PROVIDER`], a `CryptoProvider` for `jsonwebtoken` 11
//!   on it.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokenward_claims::*;
//!
//! // Keys: an Ed25519 key generated in memory (load PEM/JWK/JWKS in production).
//! let pkcs8 = generate_pkcs8(Algorithm::EdDSA)?;
//! let keys = KeySet::single(Key::from_pkcs8_der("2026-11", Algorithm::EdDSA, &pkcs8)?);
//!
//! let clock = ManualClock::new(UnixTime::from_secs(1_800_000_000));
//! let issuer = TokenIssuer::builder(keys.clone(), "https://auth.example.com")
//!     .audience("orders-api")
//!     .clock(Arc::new(clock.clone()))
//!     .build()?;
//! let token = issuer.issue(&AccessToken::new("alice").sid("family-1").scope("orders:read"))?;
//!
//! let policy = ValidationPolicy::builder()
//!     .issuer("https://auth.example.com")
//!     .audience("orders-api")
//!     .clock(Arc::new(clock.clone()))
//!     .build()?;
//! let validator = Validator::new(policy, keys.clone());
//! let verified = validator.verify(&token.token)?;
//! assert!(verified.claims.has_scope("orders:read"));
//!
//! // 15 minutes (+ 30 s leeway) later the token is expired.
//! clock.advance(Duration::from_secs(15 * 60 + 30));
//! let rejection = validator.verify(&token.token).unwrap_err();
//! assert_eq!(rejection.class(), RejectionClass::Expired);
//!
//! // The public keys as a JWKS document, for other services.
//! let jwks = keys.public_jwks_json()?;
//! assert!(jwks.contains("\"kid\":\"2026-11\""));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Typed custom claims are parsed in the same pass as the registered ones. A custom claims type
//! is any serde type; deriving serde's traits for your own struct, as here, takes `serde` with its
//! `derive` feature in your `Cargo.toml` (a map such as `BTreeMap<String, String>` needs none):
//!
//! ```
//! # use tokenward_claims::*;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Tenant { tenant: String }
//!
//! let keys = KeySet::single(Key::hmac("k", Algorithm::HS256, &[3u8; 32])?);
//! let issuer = TokenIssuer::builder(keys.clone(), "iss").audience("aud").build()?;
//! let token = issuer.issue_with(&AccessToken::new("bob"), &Tenant { tenant: "acme".into() })?;
//! let policy = ValidationPolicy::builder().issuer("iss").audience("aud").build()?;
//! let verified = Validator::new(policy, keys).verify_with::<Tenant>(&token.token)?;
//! assert_eq!(verified.custom.tenant, "acme");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod alg;
mod b64;
mod claims;
pub mod crypto;
mod grants;
mod header;
mod issue;
mod jwks;
mod key;
mod keyset;
mod policy;
mod profile;
mod provider;
mod rejection;
mod validator;

pub use claims::{Audience, NoCustomClaims, REGISTERED_CLAIMS, RegisteredClaims};
pub use grants::Grants;
pub use issue::{
    AccessToken, DEFAULT_ACCESS_TTL, IssueError, IssuedToken, TokenIssuer, TokenIssuerBuilder,
};
pub use jwks::{JwksLoad, JwksOptions, SkipKind, SkippedKey};
pub use key::{Key, KeyError, MAX_KID_LEN, generate_pkcs8, generate_secret};
pub use keyset::{KeyResolver, KeySet, KeySetError, SharedKeySet};
pub use policy::{
    Claim, DEFAULT_LEEWAY, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_TOKEN_SIZE, MAX_LEEWAY, PolicyBuilder,
    PolicyError, ValidationPolicy,
};
pub use profile::{AudienceClaim, Profile, TENANT_PLACEHOLDER, UnknownProfile};
pub use rejection::{Rejection, RejectionClass};
pub use validator::{IssuerRouter, RouterError, Validator, Verified};

/// `jsonwebtoken`'s algorithm and JWK types, which tokenward's API uses.
pub use jsonwebtoken::{Algorithm, AlgorithmFamily, jwk};
/// The clock types of `tokenward-core` that policies and issuers take: pin time in tests with
/// a [`ManualClock`] (`Arc::new(clock.clone())` is a [`SharedClock`]).
pub use tokenward_core::{Clock, ManualClock, SharedClock, SystemClock, UnixTime};
