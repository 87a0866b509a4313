//! The [`RefreshStore`] trait and the records it exchanges with the engine.

use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::{StoreError, StoreId, UnixTime};

use crate::token::{FamilyId, Sealed, TokenHash};

/// How many rotated hashes of one family a store must remember at least (besides the
/// current and the immediately previous one), to recognise the reuse of an old token.
pub const MIN_REUSE_HISTORY: usize = 1024;

/// A family as the store reports it.
///
/// Built by stores with [`FamilyInfo::new`] and the `with_…` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilyInfo {
    /// The family id (the access tokens' `sid`).
    pub id: FamilyId,
    /// Its subject.
    pub sub: StoreId<'static>,
    /// When the family was created (the login), by the store's clock.
    pub created: UnixTime,
    /// When its token was last rotated (or the creation time), by the store's clock.
    pub last_used: UnixTime,
    /// When it expires, by the store's clock: the earlier of its absolute expiry and
    /// `last_used` + idle timeout — and, once revoked, of its revocation time + its
    /// [`revoked_retention`](NewFamily::revoked_retention).
    pub expires_at: UnixTime,
    /// The latest `exp` of an access token minted in the family, as recorded with its login,
    /// its rotations and [`RefreshStore::record_access_exp`]. Revoking the family revokes its
    /// `sid` until then (plus the verifiers' leeway).
    pub access_exp: UnixTime,
    /// Whether it was revoked. A revoked family is a *tombstone*: it stays only for its
    /// [`revoked_retention`](NewFamily::revoked_retention) (never longer than it would have
    /// lived), rejecting its tokens as revoked, and is then gone (its tokens `Invalid`).
    pub revoked: bool,
}

impl FamilyInfo {
    /// A family of `sub` created at `created`, last used then, expiring then, with no access
    /// token recorded and not revoked; the `with_…` methods set the rest (for store
    /// implementations).
    pub fn new(id: FamilyId, sub: StoreId<'static>, created: UnixTime) -> Self {
        FamilyInfo {
            id,
            sub,
            created,
            last_used: created,
            expires_at: created,
            access_exp: UnixTime::EPOCH,
            revoked: false,
        }
    }

    /// Sets [`last_used`](Self::last_used).
    #[must_use]
    pub fn with_last_used(mut self, t: UnixTime) -> Self {
        self.last_used = t;
        self
    }

    /// Sets [`expires_at`](Self::expires_at).
    #[must_use]
    pub fn with_expires_at(mut self, t: UnixTime) -> Self {
        self.expires_at = t;
        self
    }

    /// Sets [`access_exp`](Self::access_exp).
    #[must_use]
    pub fn with_access_exp(mut self, t: UnixTime) -> Self {
        self.access_exp = t;
        self
    }

    /// Sets [`revoked`](Self::revoked).
    #[must_use]
    pub fn with_revoked(mut self, revoked: bool) -> Self {
        self.revoked = revoked;
        self
    }
}

/// A family to create ([`RefreshStore::create`]). Its lifetimes are durations: the store
/// starts them at its own "now".
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewFamily {
    /// A fresh random id.
    pub id: FamilyId,
    /// The subject.
    pub sub: StoreId<'static>,
    /// Hash of its first refresh token.
    pub token_hash: TokenHash,
    /// How long the family lives from its creation, whatever happens.
    pub absolute_lifetime: Duration,
    /// How long the family lives without a rotation.
    pub idle_timeout: Duration,
    /// The `exp` of the access token minted with the login (the family's first
    /// [`FamilyInfo::access_exp`]).
    pub access_exp: UnixTime,
    /// How long the family stays once revoked (by [`RefreshStore::revoke`] or on reuse), as
    /// a tombstone that answers [`RotationResult::Revoked`]; never beyond its expiry. The
    /// engine gives its grace window plus
    /// [`REVOKED_RETENTION_MARGIN`](crate::RefreshConfig::REVOKED_RETENTION_MARGIN).
    pub revoked_retention: Duration,
}

/// The idempotency record of a rotation: the hash of the idempotency key (bound to the
/// presented token) and the whole response, sealed under a key derived from the token and
/// the idempotency key. The rotation itself stores only the key hash
/// ([`RotationRequest::idempotency_key`]); the engine adds the sealed response afterwards,
/// with [`RefreshStore::record_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyRecord {
    /// SHA-256 over a domain label, the token and the idempotency key.
    pub key_hash: TokenHash,
    /// The sealed response.
    pub sealed_response: Sealed,
}

impl IdempotencyRecord {
    /// A record (for store implementations reading one back).
    pub fn new(key_hash: TokenHash, sealed_response: Sealed) -> Self {
        IdempotencyRecord {
            key_hash,
            sealed_response,
        }
    }
}

/// One rotation attempt ([`RefreshStore::rotate`]): everything the store needs to decide and
/// apply it in one atomic step.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RotationRequest {
    /// The family the presented token names.
    pub family_id: FamilyId,
    /// Hash of the presented token.
    pub presented: TokenHash,
    /// Hash of the successor to install if `presented` is current.
    pub successor: TokenHash,
    /// The successor, sealed under the presented token; kept for the grace window.
    pub sealed_successor: Sealed,
    /// The hash of the idempotency key, if one was given (see [`IdempotencyRecord::key_hash`]).
    /// Stored with the rotation, so that only the rotating request's key can later
    /// [`record_response`](RefreshStore::record_response).
    pub idempotency_key: Option<TokenHash>,
    /// The grace window: how long after a rotation (by the store's clock) its predecessor
    /// still gets [`RotationResult::Grace`].
    pub grace: Duration,
    /// The latest `exp` the access token minted after this step may have without another
    /// store call. A step that grants a response ([`RotationResult::Rotated`],
    /// [`RotationResult::Grace`]) raises the family's [`FamilyInfo::access_exp`] to it.
    pub access_exp: UnixTime,
}

/// What the store found when it was asked to rotate — the answer of one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationResult {
    /// `presented` was the current token: the successor is now current (family as updated,
    /// with its `sub` for minting).
    Rotated(FamilyInfo),
    /// `presented` is the immediately previous token and its rotation was less than `grace`
    /// ago: only the family's `access_exp` was raised; here is what that rotation stored.
    Grace {
        /// The family.
        family: FamilyInfo,
        /// The successor sealed under `presented`, as stored by that rotation.
        sealed_successor: Sealed,
        /// That rotation's idempotency record, if it had a key **and** its response has been
        /// recorded ([`RefreshStore::record_response`]); `None` otherwise (no key, or the
        /// response not written yet).
        idempotency: Option<IdempotencyRecord>,
    },
    /// `presented` is an older token of the family (previous after the window, or any
    /// earlier one): the family is now revoked.
    Reused {
        /// The family (revoked).
        family: FamilyInfo,
        /// Which older token it was.
        kind: ReuseKind,
    },
    /// The family was already revoked; nothing changed.
    Revoked(FamilyInfo),
    /// No live family has this id, or the family does not know `presented`. Nothing changed.
    Invalid,
}

/// Which rotated token was presented when reuse was detected ([`RotationResult::Reused`],
/// [`ReuseReport::kind`](crate::ReuseReport::kind)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReuseKind {
    /// The immediate predecessor of the current token, after its grace window.
    PredecessorAfterWindow,
    /// An older token from the family's history (a grandparent or earlier), at any time.
    OlderToken,
}

impl ReuseKind {
    /// A stable name for logs: `"predecessor_after_window"` or `"older_token"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReuseKind::PredecessorAfterWindow => "predecessor_after_window",
            ReuseKind::OlderToken => "older_token",
        }
    }
}

/// Where refresh-token families live.
///
/// # Contract for implementations
///
/// The [`conformance`](crate::conformance) suite checks it:
///
/// - **The store keeps its own time.** No method takes "now": the store decides expiry and
///   the grace window by its own clock — an injected [`Clock`](tokenward_core::Clock) in
///   memory, the server's clock on a shared backend (Redis `TIME`, PostgreSQL `now()`). This
///   is the convention of every tokenward store trait: several application instances share
///   one store, and its clock is the only one they all agree on, so a family's lifetimes
///   arrive as *durations* ([`NewFamily`], [`RotationRequest::grace`]) that the store starts
///   at its own now. The only instants a store is given are access-token `exp`s, which it
///   records and never compares with its clock.
/// - **Typed inputs.** A `sub` arrives as a [`StoreId`] (1 to
///   [`MAX_ID_LEN`](tokenward_core::MAX_ID_LEN) bytes, no NUL: checked where it was made),
///   family ids as [`FamilyId`]s, hashes as [`TokenHash`]es: a backend validates nothing.
///   Any `sub` must round-trip without aliasing another.
/// - **Only hashes and sealed blobs.** A store receives token *hashes* and ciphertexts, never
///   a token; it must not try to derive anything else.
/// - **[`rotate`](Self::rotate) is one atomic step** (a mutex per family in memory, one Lua
///   script on Redis): read the family, classify `presented`, and apply the result, with no
///   other operation on the family interleaving. Classification, in order (`now` is the
///   store's clock):
///   1. family absent, expired (`now >= expires_at`) → [`RotationResult::Invalid`];
///   2. family revoked → [`RotationResult::Revoked`];
///   3. `presented` == current hash → install the successor: the old current becomes
///      *previous* (kept with `now`, the sealed successor and the idempotency key hash, with
///      no recorded response yet), the old previous joins the *history*, `last_used = now`,
///      `access_exp` = the later of it and the request's → [`RotationResult::Rotated`] (with
///      the family as updated, so the engine learns `sub` from this one call);
///   4. `presented` == previous and `now < rotated_at + grace` → raise `access_exp` the same
///      way and change nothing else → [`RotationResult::Grace`] with the stored sealed
///      successor and, if recorded, the idempotency record;
///   5. `presented` == previous (after the window) or in the history → revoke the family
///      (make it a tombstone, as [`revoke`](Self::revoke) does) →
///      [`RotationResult::Reused`] with [`ReuseKind::PredecessorAfterWindow`] or
///      [`ReuseKind::OlderToken`] respectively;
///   6. otherwise → [`RotationResult::Invalid`] (a forged token naming a real family must
///      not revoke it).
///
///   Hash comparisons with the current and previous hash are constant-time.
/// - **One round trip per rotation.** The engine calls nothing but [`rotate`](Self::rotate)
///   for a rotation without an idempotency key (it learns `sub` from the result), whose
///   access token expires by the request's `access_exp`: `rotate` must be one round trip on a
///   networked store.
/// - **Access-token expiry only grows.** `access_exp` is kept as the latest of every value
///   given (create, rotate, [`record_access_exp`](Self::record_access_exp)), never rounded
///   down (a store keeping milliseconds rounds up), and reported in every [`FamilyInfo`]: the
///   engine revokes a family's `sid` until then, so an access token minted in the family
///   never outlives that revocation.
/// - **[`record_response`](Self::record_response) is atomic too**, and writes only if the
///   family is live and not revoked, `presented` is still its *previous* hash (no rotation
///   since), the stored idempotency key hash equals the record's, and no response is
///   recorded yet. It keeps the family's expiry (TTLs) unchanged.
/// - **Bounded history.** The history is bounded by the family's lifetime (it vanishes with
///   the family) and a store may cap it, dropping the oldest hashes, but must keep at least
///   [`MIN_REUSE_HISTORY`]. A dropped hash makes its token `Invalid` instead of `Reused`:
///   still rejected, only no longer a theft signal.
/// - **Self-expiring.** A family vanishes on its own at `min(created + absolute lifetime,
///   last_used + idle timeout)` (TTLs refreshed by each rotation), never earlier (a store
///   keeping milliseconds rounds up); no cleanup job may be required, and what a family
///   leaves behind in indexes goes within its absolute lifetime.
/// - **A revoked family frees its slot.** Revoking (by [`revoke`](Self::revoke) or on reuse)
///   turns the family into a *tombstone* that keeps only what answers
///   [`RotationResult::Revoked`] and [`record_access_exp`](Self::record_access_exp): id,
///   `sub`, its times, `access_exp`, the revoked flag. Its token hashes, history, sealed
///   successor and idempotency record are dropped, and it leaves its subject's index, at
///   once. The tombstone expires at the earlier of its expiry and the revocation time + the
///   family's [`NewFamily::revoked_retention`] (a later revocation never extends it); then
///   the family is gone and its tokens are `Invalid`. So one subject looping login/logout
///   holds at most its live families plus the tombstones of the last retention period.
/// - **A full store refuses, it never forgets.** A bounded store that cannot create a family
///   returns [`StoreError::CapacityExceeded`]; it never evicts a live family.
/// - **Bounded and typed failures.** Outages are `Unavailable`/`Timeout`, garbage read back
///   is `Corrupt`. Never panic. The engine never turns an error into reuse detection.
#[async_trait]
pub trait RefreshStore: Send + Sync + 'static {
    /// Creates a family. Ids are random; an existing id is `InvalidInput`.
    async fn create(&self, family: NewFamily) -> Result<(), StoreError>;

    /// The family, if it exists and has not expired (revoked families included).
    async fn get(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError>;

    /// One atomic rotation step; see the contract.
    async fn rotate(&self, request: RotationRequest) -> Result<RotationResult, StoreError>;

    /// Adds the sealed response to the idempotency key stored by the rotation that
    /// presented `presented` (a second, separate call, made by the engine after minting).
    /// Atomic; writes only under the conditions of the contract and returns whether it
    /// wrote. Until it has written, a replay with the same key gets
    /// [`RotationResult::Grace`] without an idempotency record.
    async fn record_response(
        &self,
        family_id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
    ) -> Result<bool, StoreError>;

    /// Raises the family's [`access_exp`](FamilyInfo::access_exp) to `exp` if that is later
    /// (atomic; the family's expiry is unchanged), for an access token minted with a later
    /// `exp` than its rotation announced. Returns the family as updated if it exists and has
    /// not expired, revoked or not: the engine does not hand out the token of a family that
    /// was revoked meanwhile.
    async fn record_access_exp(
        &self,
        id: &FamilyId,
        exp: UnixTime,
    ) -> Result<Option<FamilyInfo>, StoreError>;

    /// Revokes the family: a tombstone until the earlier of its expiry and now + its
    /// [`revoked_retention`](NewFamily::revoked_retention) (see the contract). Idempotent:
    /// revoking a tombstone changes nothing. Returns the family if it exists and has not
    /// expired.
    async fn revoke(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError>;

    /// The live (not expired, not revoked) families of `sub`, oldest first (by `created`,
    /// then id).
    async fn families_of(&self, sub: &StoreId<'_>) -> Result<Vec<FamilyInfo>, StoreError>;
}

#[async_trait]
impl<S: RefreshStore + ?Sized> RefreshStore for std::sync::Arc<S> {
    async fn create(&self, family: NewFamily) -> Result<(), StoreError> {
        (**self).create(family).await
    }
    async fn get(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        (**self).get(id).await
    }
    async fn rotate(&self, request: RotationRequest) -> Result<RotationResult, StoreError> {
        (**self).rotate(request).await
    }
    async fn record_response(
        &self,
        family_id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
    ) -> Result<bool, StoreError> {
        (**self).record_response(family_id, presented, record).await
    }
    async fn record_access_exp(
        &self,
        id: &FamilyId,
        exp: UnixTime,
    ) -> Result<Option<FamilyInfo>, StoreError> {
        (**self).record_access_exp(id, exp).await
    }
    async fn revoke(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        (**self).revoke(id).await
    }
    async fn families_of(&self, sub: &StoreId<'_>) -> Result<Vec<FamilyInfo>, StoreError> {
        (**self).families_of(sub).await
    }
}
