//! Revocation for stateless tokens.
//!
//! A JWT is valid until it expires — unless something remembers that it must not be. This
//! crate is that memory, built so it cannot turn into the 11-million-row denylist nobody
//! cleans up: every entry carries its own expiry and vanishes when nothing it could match can
//! still be valid.
//!
//! Three rules, one [`RevocationStore::check`]:
//! - **token** — one `jti`, until the token's `exp`;
//! - **session** — every token carrying a `sid` (a refresh-token family), until a given time;
//! - **subject** — every token of a `sub` issued before a cutoff ("sign out everywhere", the
//!   stolen laptop), until a given time.
//!
//! Backends: [`MemoryRevocationStore`] (this crate) and the Redis store in `tokenward-redis`.
//! Custom backends implement [`RevocationStore`] and run the [`conformance`] suite
//! (feature `conformance`).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokenward_core::{Clock, ManualClock, StoreId, TokenRef, UnixTime};
//! use tokenward_revocation::{
//!     MemoryRevocationConfig, MemoryRevocationStore, RevocationStatus, RevocationStore, RevokedBy,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # runtime.block_on(async {
//! let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//! let store: Arc<dyn RevocationStore> = Arc::new(MemoryRevocationStore::with_config(
//!     MemoryRevocationConfig::new().clock(Arc::new(clock.clone())),
//! )?);
//!
//! // A token issued now, valid for 15 minutes.
//! let now = clock.now();
//! let exp = now.saturating_add(Duration::from_secs(15 * 60));
//! // Ids are `StoreId`s, checked once where they are made (non-empty, at most 512 bytes, no
//! // NUL): no store ever sees an invalid one.
//! let token = TokenRef::from_parts(Some("j-81"), Some("fam-7"), Some("alice"), Some(now), exp)?;
//! assert_eq!(store.check(&token).await?, RevocationStatus::Active);
//!
//! // Logout: revoke this token until it would have expired anyway.
//! store.revoke_token(&StoreId::new("j-81")?, exp).await?;
//! assert_eq!(store.check(&token).await?, RevocationStatus::Revoked(RevokedBy::Token));
//!
//! // "Sign out everywhere" for alice: every token issued before the next second.
//! let before = UnixTime::from_secs(now.as_secs() + 1);
//! let until = before.saturating_add(Duration::from_secs(15 * 60));
//! store.revoke_subject(&StoreId::new("alice")?, before, until).await?;
//! let sibling = TokenRef { jti: Some(StoreId::new("j-82")?), ..token.clone() };
//! let status = store.check(&sibling).await?;
//! assert_eq!(status, RevocationStatus::Revoked(RevokedBy::Subject { before }));
//!
//! // Once every rule has run out, nothing is revoked, and no cleanup job has to run.
//! clock.advance(Duration::from_secs(16 * 60));
//! assert_eq!(store.check(&token).await?, RevocationStatus::Active);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # The in-memory store is bounded
//!
//! [`MemoryRevocationStore`] holds at most [`capacity`](MemoryRevocationConfig::capacity) entries
//! (one million by default). Expired entries stop matching at once and are reclaimed by later
//! revokes (or [`MemoryRevocationStore::purge_expired`]), so memory follows live
//! revocations. When it is full of *live* ones, a new revoke fails with
//! [`StoreError::CapacityExceeded`](tokenward_core::StoreError::CapacityExceeded): **a full
//! store refuses, it never forgets** — evicting an entry would silently un-revoke a token.
//! What the refusal means for the request is the caller's `FailurePolicy` (fail closed by
//! default). Size the capacity for the revocations you expect within one maximum token
//! lifetime.
#![forbid(unsafe_code)]

mod memory;
mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use memory::{MemoryRevocationConfig, MemoryRevocationStore};
pub use store::{
    LEEWAY_MARGIN, RevocationStatus, RevocationStore, RevokedBy, revoke_until, subject_cutoff,
};
