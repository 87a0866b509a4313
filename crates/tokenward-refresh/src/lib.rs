//! Refresh-token rotation that survives real clients: families, a grace window for parallel
//! refreshes, idempotent retries, and reuse detection that revokes the family.
//!
//! A **family** is one login. Its id ([`FamilyId`]) is the `sid` of every access token
//! issued from it. Each [`RefreshEngine::rotate`] exchanges the current refresh token for a
//! successor and a fresh access token (minted by the caller's closure, with
//! `sid = family id`).
//!
//! ```
//! use std::sync::Arc;
//! use tokenward_core::ManualClock;
//! use tokenward_core::UnixTime;
//! use tokenward_refresh::{
//!     MemoryRefreshStore, RefreshConfig, RefreshEngine, RefreshError, RotationKind,
//! };
//! use tokenward_revocation::MemoryRevocationStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = Arc::new(ManualClock::new(UnixTime::from_secs(1_700_000_000)));
//! let engine = RefreshEngine::new(
//!     Arc::new(MemoryRefreshStore::new()),
//!     Arc::new(MemoryRevocationStore::new()),
//!     RefreshConfig::new().clock(clock.clone()),
//! );
//! // A real caller mints a JWT here (`TokenIssuer::issue` with `.sid(family_id)`).
//! let mint = |req: tokenward_refresh::MintRequest<'_>| {
//!     Ok::<_, std::convert::Infallible>(format!("jwt-for-{}-{}", req.sub, req.family_id))
//! };
//!
//! let login = engine.issue("alice").await?;
//! let first = login.refresh_token.expose().to_owned();
//! assert!(first.starts_with("twr_"));
//!
//! // Rotate: a new refresh token and an access token for the family's session.
//! let r1 = engine.rotate(&first, None, mint).await?;
//! assert_eq!(r1.kind, RotationKind::Rotated);
//!
//! // A parallel request with the same (now previous) token, within the grace window,
//! // gets the same successor.
//! let r2 = engine.rotate(&first, None, mint).await?;
//! assert_eq!(r2.kind, RotationKind::Grace);
//! assert_eq!(r2.refresh_token, r1.refresh_token);
//!
//! // After the window, presenting it again is reuse: the family is revoked.
//! clock.advance(std::time::Duration::from_secs(31));
//! let err = engine.rotate(&first, None, mint).await.unwrap_err();
//! assert!(matches!(err, RefreshError::Reused(_)));
//! let err = engine.rotate(r1.refresh_token.expose(), None, mint).await.unwrap_err();
//! assert!(matches!(err, RefreshError::Revoked { .. }));
//! # Ok::<(), RefreshError>(())
//! # }).unwrap();
//! ```
//!
//! # Tokens
//!
//! `twr_` followed by 64 URL-safe base64 characters: the family id (128 random bits) and a
//! secret (256 bits from ring's `SystemRandom`). The prefix lets secret scanners find leaked
//! tokens. [`RefreshToken::parse`] is strict (exact length, prefix, alphabet, canonical
//! encoding) and never panics. Stores only ever see SHA-256 of a token ([`TokenHash`]);
//! current/previous hashes are compared in constant time. `Debug` never shows a token.
//!
//! # Rotation rules
//!
//! The store classifies the presented token in one atomic step
//! ([`RefreshStore::rotate`]):
//! - **current** → rotated: a new successor becomes current, the presented token becomes
//!   *previous* (with the rotation time and the sealed successor), the family's idle timer
//!   restarts;
//! - **previous, within the grace window** (default 30 s, [`RefreshConfig::grace_window`],
//!   capped at 120 s unless [`RefreshConfig::dangerous_grace_window`]) → **grace**: the
//!   *same* successor as that rotation, with a newly minted access token. This is what makes
//!   parallel refreshes on app resume succeed. Only the immediate predecessor qualifies;
//! - **previous after the window, or any older token of the family** (the last
//!   [`MIN_REUSE_HISTORY`] at least; the history lives and dies with the family, so it is
//!   bounded by the family lifetime too) → **reuse**: the family is revoked in the store,
//!   its `sid` is revoked in the `RevocationStore` until now + the maximum access-token
//!   lifetime, and the caller gets [`RefreshError::Reused`] with a [`ReuseReport`] for the
//!   audit trail — a theft signal. The engine also emits an audit event (see below);
//! - a token of a revoked family → [`RefreshError::Revoked`]; unknown, forged, or of an
//!   expired family → [`RefreshError::Invalid`] (a forged token naming a real family does
//!   not revoke it);
//! - a store failure → [`RefreshError::Store`]: "try again". Never reuse detection, never a
//!   revocation.
//!
//! # Idempotency keys
//!
//! With an idempotency key (1 to 255 bytes), the rotating request stores the key's hash with
//! the rotation and then, after minting, its whole response (successor and access token),
//! sealed, in a second store call ([`RefreshStore::record_response`]; only that request's
//! key, only while its token is still the family's previous one, only once). Within the
//! grace window:
//! - the same token and the same key, **after** the response was recorded, get the
//!   **identical** response ([`RotationKind::Replayed`], nothing minted);
//! - the same token and the same key racing **before** it was recorded (or if recording
//!   failed) get the grace behaviour: the same refresh token with a newly minted access
//!   token ([`RotationKind::Grace`]);
//! - a different key (or none) gets the grace behaviour.
//!
//! Only the response of the request that rotated is recorded: retries of a grace response
//! get the same refresh token with a new access token. A rotation without a key is one
//! store call ([`RefreshStore::rotate`], which also reports the family's `sub`); the access
//! token is minted after it. If minting fails, the rotation stands and a retry with the same
//! token within the window gets the same successor (the grace path).
//!
//! # Audit event
//!
//! Each detected reuse emits a `tracing` event at `WARN` level with target
//! `tokenward::audit` and the fields `decision = "refresh_reuse"`, `sid` (the family id),
//! `sub`, `reuse_kind` ([`ReuseKind::as_str`]: `"predecessor_after_window"` or
//! `"older_token"`) and `session_revoked` (whether the `RevocationStore` call succeeded).
//! It never carries a token, a hash or an idempotency key. Route it with any `tracing`
//! subscriber (e.g. a filter on the target).
//!
//! # Key derivation (nothing usable is stored in plaintext)
//!
//! Sealed blobs are AES-256-GCM under keys from HKDF-SHA256 with input keying material = the
//! *presented (predecessor) token's* full ASCII string and salt [`HKDF_SALT`]
//! (`"tokenward-refresh/v1"`):
//! - the successor: `info` = [`INFO_SUCCESSOR`] (`"tokenward-refresh/v1 successor"`);
//! - an idempotent response: `info` = [`INFO_RESPONSE`] (`"tokenward-refresh/v1
//!   response"`) ‖ the key's length (one byte) ‖ the idempotency key.
//!
//! The nonce is 96 random bits from `SystemRandom`, stored in front of the ciphertext (each
//! derived key seals one message per rotation — a token is rotated once — so a random nonce
//! never repeats under a key in practice); the AAD is the family id. The store holds only SHA-256 of the predecessor, from which the key
//! cannot be derived, so only a holder of the predecessor token can open its successor — and
//! only while the store still hands it out (the grace window). The idempotency key is stored
//! as SHA-256(`"tokenward-refresh/v1 idempotency-key"` ‖ token ‖ key).
//!
//! # Stores
//!
//! [`MemoryRefreshStore`] (this crate; bounded, self-expiring) and the Redis store in
//! `tokenward-redis`. Custom backends implement [`RefreshStore`] and run the `conformance`
//! suite (feature `conformance`).
#![forbid(unsafe_code)]

mod engine;
mod error;
mod memory;
mod store;
mod token;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use engine::{IssuedFamily, MintRequest, RefreshConfig, RefreshEngine, Rotation, RotationKind};
pub use error::{RefreshError, ReuseReport};
pub use memory::MemoryRefreshStore;
pub use store::{
    FamilyInfo, IdempotencyRecord, MAX_SUB_LEN, MIN_REUSE_HISTORY, NewFamily, RefreshStore,
    ReuseKind, RotationRequest, RotationResult,
};
pub use token::{
    FamilyId, HKDF_SALT, INFO_RESPONSE, INFO_SUCCESSOR, MAX_IDEMPOTENCY_KEY_LEN, RefreshToken,
    Sealed, TOKEN_LEN, TOKEN_PREFIX, TokenHash,
};
