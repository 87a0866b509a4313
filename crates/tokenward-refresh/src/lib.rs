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
//! use std::time::Duration;
//! use tokenward_core::{Clock, IssuerScope, ManualClock, StoreId, UnixTime};
//! use tokenward_refresh::{
//!     MemoryRefreshStore, MintRequest, MintedToken, RefreshConfig, RefreshEngine, RefreshError,
//!     RotationKind,
//! };
//! use tokenward_revocation::MemoryRevocationStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = Arc::new(ManualClock::new(UnixTime::from_secs(1_700_000_000)));
//! let engine = RefreshEngine::with_config(
//!     // The store keeps its own time; the engine's clock dates what it mints.
//!     Arc::new(MemoryRefreshStore::with_clock(clock.clone())),
//!     Arc::new(MemoryRevocationStore::with_clock(clock.clone())),
//!     // The `iss` of the access tokens the mint closures issue.
//!     IssuerScope::new("https://api.example.com"),
//!     RefreshConfig::new().clock(clock.clone()),
//! )?;
//! // A real caller mints a JWT here (`TokenIssuer::issue` with `.sid(family_id)`) and returns
//! // it with its `exp`, which the family records.
//! let minter = clock.clone();
//! let mint = move |req: MintRequest<'_>| {
//!     let exp = minter.now().saturating_add(Duration::from_secs(900));
//!     let jwt = format!("jwt-for-{}-{}", req.sub.as_str(), req.family_id);
//!     Ok::<_, std::convert::Infallible>(MintedToken::new(jwt, exp))
//! };
//!
//! let login = engine.issue(&StoreId::new("alice")?, mint.clone()).await?;
//! let first = login.refresh_token.expose().to_owned();
//! assert!(first.starts_with("twr_"));
//!
//! // Rotate: a new refresh token and an access token for the family's session.
//! let r1 = engine.rotate(&first, None, mint.clone()).await?;
//! assert_eq!(r1.kind, RotationKind::Rotated);
//!
//! // A parallel request with the same (now previous) token, within the grace window,
//! // gets the same successor.
//! let r2 = engine.rotate(&first, None, mint.clone()).await?;
//! assert_eq!(r2.kind, RotationKind::Grace);
//! assert_eq!(r2.refresh_token, r1.refresh_token);
//!
//! // After the window, presenting it again is reuse: the family is revoked.
//! clock.advance(Duration::from_secs(31));
//! let err = engine.rotate(&first, None, mint.clone()).await.unwrap_err();
//! assert!(matches!(err, RefreshError::Reused(_)));
//! let err = engine.rotate(r1.refresh_token.expose(), None, mint).await.unwrap_err();
//! assert!(matches!(err, RefreshError::Revoked { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
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
//!   at most 120 s unless [`RefreshConfig::dangerous_grace_window`]) → **grace**: the
//!   *same* successor as that rotation, with a newly minted access token. This is what makes
//!   parallel refreshes on app resume succeed. Only the immediate predecessor qualifies;
//! - **previous after the window, or any older token of the family** (the last
//!   [`MIN_REUSE_HISTORY`] at least; the history lives and dies with the family, so it is
//!   bounded by the family lifetime too) → **reuse**: the family is revoked in the store,
//!   its `sid` is revoked in the `RevocationStore` until the latest access-token `exp` of
//!   the family (see below) plus [`LEEWAY_MARGIN`](tokenward_revocation::LEEWAY_MARGIN),
//!   and the caller gets [`RefreshError::Reused`] with a [`ReuseReport`] for the audit
//!   trail — a theft signal. The engine also emits an audit event (see below);
//! - a token of a revoked family → [`RefreshError::Revoked`] (for the grace window plus
//!   [`REVOKED_RETENTION_MARGIN`](RefreshConfig::REVOKED_RETENTION_MARGIN), see below;
//!   `Invalid` after); unknown, forged, or of an expired family → [`RefreshError::Invalid`]
//!   (a forged token naming a real family does not revoke it);
//! - a store failure → [`RefreshError::Store`]: "try again". Never reuse detection, never a
//!   revocation.
//!
//! # Access tokens outlive nothing
//!
//! Every access token of a family is minted through the engine ([`RefreshEngine::issue`] at
//! login, [`RefreshEngine::rotate`] after), by a closure that returns it with its `exp`
//! ([`MintedToken`]), and the family's store record keeps the latest `exp`
//! ([`FamilyInfo::access_exp`]). Revoking the family — on reuse, logout
//! ([`RefreshEngine::revoke_family`]) or "sign out everywhere" — revokes its `sid` until then
//! plus the leeway margin, whatever the settings say, so a stolen access token never
//! outlives the revocation. A rotation's atomic store step already records `now +`
//! [`max_access_token_lifetime`](RefreshConfig::max_access_token_lifetime) (+
//! [`MINT_MARGIN`](RefreshConfig::MINT_MARGIN)); a token minted to expire later is recorded
//! with one more store call ([`RefreshStore::record_access_exp`]) before it is handed out,
//! and withheld ([`RefreshError::Revoked`]) if the family was revoked meanwhile.
//!
//! # Bounded per subject
//!
//! One account must not be able to fill the store, so:
//! - **A revoked family frees its slot.** Revoking a family (logout, reuse, "sign out
//!   everywhere", the cap below) leaves only a *tombstone* in the store — id, `sub`, times,
//!   `access_exp`, the revoked flag; no token hash, history, sealed blob or idempotency
//!   record — and drops it from its subject's index at once. The tombstone answers `Revoked`
//!   for [`RefreshConfig::revoked_retention`] (the grace window plus 60 s: 90 s by default,
//!   never longer than the family would have lived), then goes; its tokens are `Invalid`
//!   after that. The family's `sid` stays revoked in the `RevocationStore` until its access
//!   tokens expire, whatever happens to the tombstone.
//! - **Live families per subject are capped**
//!   ([`RefreshConfig::max_families_per_subject`], default 50). A login that takes the
//!   subject over the cap revokes its oldest families (by creation, then id; never the new
//!   one), sessions included, with an audit event each (below). So one account looping
//!   login/logout, or logging in without ever logging out, holds at most the cap in live
//!   families plus the tombstones of the last 90 s.
//!
//! # Time
//!
//! The store keeps its own time (an injected clock in memory, the server's `TIME` on
//! Redis): family lifetimes and the grace window are durations it starts at its own now, so
//! application instances' clocks never decide expiry. The engine's clock
//! ([`RefreshConfig::clock`]) only dates what it mints.
//!
//! # Settings
//!
//! [`RefreshConfig`] is checked when the engine is built ([`RefreshEngine::with_config`]): a
//! setting out of its range is a [`SettingError`](tokenward_core::SettingError) naming it,
//! never a silent clamp.
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
//! store call ([`RefreshStore::rotate`], which also reports the family's `sub`) when its
//! access token expires within
//! [`max_access_token_lifetime`](RefreshConfig::max_access_token_lifetime); the access
//! token is minted after it. If minting fails, the rotation stands and a retry with the
//! same token within the window gets the same successor (the grace path).
//!
//! # Audit events
//!
//! Each detected reuse emits a `tracing` event at `WARN` level with target
//! `tokenward::audit` and the fields `decision = "refresh_reuse"`, `sid` (the family id),
//! `sub`, `reuse_kind` ([`ReuseKind::as_str`]: `"predecessor_after_window"` or
//! `"older_token"`) and `session_revoked` (whether the `RevocationStore` call succeeded).
//! It never carries a token, a hash or an idempotency key. Route it with any `tracing`
//! subscriber (e.g. a filter on the target).
//!
//! Each family the per-subject cap revokes emits one too (`WARN`, target
//! `tokenward::audit`): `decision = "refresh_family_cap"`, `sid` (the revoked family), `sub`,
//! `new_sid` (the login that took the subject over the cap), `max_families`, `revoked`
//! (whether the family and its session were revoked) and, if not, `error`. If the subject's
//! families could not even be listed, one event without `sid`, with `revoked = false` and
//! the `error`; the login itself still succeeds and the next one enforces the cap.
//!
//! # Metrics
//!
//! Every [`RefreshEngine::issue`] and [`RefreshEngine::rotate`] counts once in
//! `tokenward_refresh_total{result}` through the `metrics` facade (no recorder is installed
//! here): `issued`, `rotated`, `grace`, `idempotent_replay` for successes, and `reused`,
//! `revoked`, `invalid`, `store_error`, `error` for failures
//! ([`tokenward_core::metrics::refresh`]). Alert on any increase of `result="reused"`.
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
//! `tokenward-redis`. Custom backends implement [`RefreshStore`] (its docs are the contract)
//! and run the `conformance` suite (feature `conformance`).
#![forbid(unsafe_code)]

mod config;
mod engine;
mod error;
mod memory;
mod store;
mod token;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use config::RefreshConfig;
pub use engine::{IssuedFamily, MintRequest, MintedToken, RefreshEngine, Rotation, RotationKind};
pub use error::{RefreshError, ReuseReport};
pub use memory::{MemoryRefreshConfig, MemoryRefreshStore};
pub use store::{
    FamilyInfo, IdempotencyRecord, MIN_REUSE_HISTORY, NewFamily, RefreshStore, ReuseKind,
    RotationRequest, RotationResult,
};
pub use token::{
    FamilyId, HKDF_SALT, INFO_RESPONSE, INFO_SUCCESSOR, MAX_IDEMPOTENCY_KEY_LEN, RefreshToken,
    Sealed, TOKEN_LEN, TOKEN_PREFIX, TokenHash,
};
