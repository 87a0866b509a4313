//! The crate's error type.

use tokenward_core::{StoreError, StoreId};

use crate::store::ReuseKind;
use crate::token::FamilyId;

/// Why a refresh operation failed.
///
/// Only [`RefreshError::Reused`] is a theft signal. [`RefreshError::Store`] means "try
/// again later" (503): an outage is never reported as reuse and never revokes anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The token is malformed, unknown, or its family has expired (absolute or idle
    /// lifetime) and vanished.
    #[error("invalid refresh token")]
    Invalid,
    /// The token's family was revoked (logout, "sign out everywhere", or an earlier reuse),
    /// also when that happened while the access token was being minted (it is then withheld).
    #[error("refresh token family {family_id} was revoked")]
    Revoked {
        /// The family (the access tokens' `sid`).
        family_id: FamilyId,
    },
    /// A rotated token was presented again outside the grace rules: it was probably stolen.
    /// The family has been revoked in the store, and its access tokens through the
    /// `RevocationStore` (see [`ReuseReport::session_revocation_error`]).
    #[error("refresh token reuse detected in family {}; the family was revoked", .0.family_id)]
    Reused(ReuseReport),
    /// The idempotency key is empty or longer than
    /// [`MAX_IDEMPOTENCY_KEY_LEN`](crate::MAX_IDEMPOTENCY_KEY_LEN) bytes.
    #[error("invalid idempotency key")]
    InvalidIdempotencyKey,
    /// The refresh store (or, when revoking, the revocation store) failed: try again later.
    #[error("refresh store failed: {0}")]
    Store(#[from] StoreError),
    /// The caller's access-token minter failed. It runs after the store's atomic step, so the
    /// token may already have been rotated: retrying with the same token within the grace
    /// window gets the same successor and a new access token.
    #[error("minting the access token failed")]
    Mint(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Sealed data handed back by the store does not open under the presented token
    /// (corrupt store data).
    #[error("sealed data from the store does not open")]
    SealedDataInvalid,
    /// The system RNG or a cryptographic primitive failed.
    #[error("cryptographic failure")]
    Crypto,
}

impl RefreshError {
    /// Whether retrying later may succeed (store outages).
    pub fn is_transient(&self) -> bool {
        matches!(self, RefreshError::Store(e) if e.is_transient())
    }
}

/// The details of a detected reuse, for the audit trail.
#[derive(Debug)]
#[non_exhaustive]
pub struct ReuseReport {
    /// The family that was revoked (the access tokens' `sid`).
    pub family_id: FamilyId,
    /// Its subject.
    pub sub: StoreId<'static>,
    /// Which rotated token was presented.
    pub kind: ReuseKind,
    /// `None` when the family's access tokens were revoked through the `RevocationStore`
    /// (its `sid`, until the latest access-token `exp` recorded for the family plus
    /// [`LEEWAY_MARGIN`](tokenward_revocation::LEEWAY_MARGIN));
    /// otherwise the error that prevented it (the family itself is revoked either way, and
    /// retrying [`RefreshEngine::revoke_family`](crate::RefreshEngine::revoke_family)
    /// revokes the session again).
    pub session_revocation_error: Option<StoreError>,
}
