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
//! use tokenward_core::{Clock, ManualClock, StoreError, TokenRef, UnixTime};
//! use tokenward_revocation::{
//!     MemoryRevocationStore, MemoryStoreConfig, RevocationStatus, RevocationStore, RevokedBy,
//! };
//!
//! # fn main() -> Result<(), StoreError> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # runtime.block_on(async {
//! let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//! let store: Arc<dyn RevocationStore> = Arc::new(MemoryRevocationStore::with_config(
//!     MemoryStoreConfig::new().clock(Arc::new(clock.clone())),
//! ));
//!
//! // A token issued now, valid for 15 minutes.
//! let now = clock.now();
//! let exp = now.saturating_add(Duration::from_secs(15 * 60));
//! let token = TokenRef {
//!     jti: Some("j-81"),
//!     sid: Some("fam-7"),
//!     sub: Some("alice"),
//!     iat: Some(now),
//!     exp,
//! };
//! assert_eq!(store.check(&token).await?, RevocationStatus::Active);
//!
//! // Logout: revoke this token until it would have expired anyway.
//! store.revoke_token("j-81", exp).await?;
//! assert_eq!(store.check(&token).await?, RevocationStatus::Revoked(RevokedBy::Token));
//!
//! // "Sign out everywhere" for alice: every token issued before the next second.
//! let before = UnixTime::from_secs(now.as_secs() + 1);
//! let until = before.saturating_add(Duration::from_secs(15 * 60));
//! store.revoke_subject("alice", before, until).await?;
//! let sibling = TokenRef { jti: Some("j-82"), ..token };
//! let status = store.check(&sibling).await?;
//! assert_eq!(status, RevocationStatus::Revoked(RevokedBy::Subject { before }));
//!
//! // Once every rule has run out, nothing is revoked, and no cleanup job has to run.
//! clock.advance(Duration::from_secs(16 * 60));
//! assert_eq!(store.check(&token).await?, RevocationStatus::Active);
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! # The in-memory store is bounded
//!
//! [`MemoryRevocationStore`] holds at most [`capacity`](MemoryStoreConfig::capacity) entries
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

pub use memory::{MemoryRevocationStore, MemoryStoreConfig};
pub use store::{
    LEEWAY_MARGIN, MAX_ID_LEN, RevocationStatus, RevocationStore, RevokedBy, revoke_until,
    validate_id,
};
