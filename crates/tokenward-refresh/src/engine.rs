//! [`RefreshEngine`]: issue, rotate and revoke families on top of a [`RefreshStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use tokenward_core::{SharedClock, SystemClock, UnixTime};
use tokenward_revocation::RevocationStore;

use crate::error::{RefreshError, ReuseReport};
use crate::store::RotationResult;
use crate::store::{FamilyInfo, IdempotencyRecord, NewFamily, RefreshStore, RotationRequest};
use crate::token::{
    FamilyId, INFO_RESPONSE, INFO_SUCCESSOR, RefreshToken, decode_response, encode_response,
    validate_idempotency_key,
};

/// Configuration of a [`RefreshEngine`].
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    absolute_lifetime: Duration,
    idle_timeout: Duration,
    grace_window: Duration,
    max_access_token_lifetime: Duration,
    clock: SharedClock,
}

impl RefreshConfig {
    /// The default absolute family lifetime: 30 days.
    pub const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
    /// The default idle timeout: 7 days.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
    /// The default grace window: 30 seconds.
    pub const DEFAULT_GRACE_WINDOW: Duration = Duration::from_secs(30);
    /// The longest grace window [`grace_window`](Self::grace_window) accepts: 120 seconds.
    pub const MAX_GRACE_WINDOW: Duration = Duration::from_secs(120);
    /// The default maximum access-token lifetime: 15 minutes.
    pub const DEFAULT_MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

    /// The defaults (see the constants) and the system clock.
    pub fn new() -> Self {
        RefreshConfig {
            absolute_lifetime: Self::DEFAULT_ABSOLUTE_LIFETIME,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            grace_window: Self::DEFAULT_GRACE_WINDOW,
            max_access_token_lifetime: Self::DEFAULT_MAX_ACCESS_TOKEN_LIFETIME,
            clock: Arc::new(SystemClock),
        }
    }

    /// How long a family lives from its login, however often it rotates.
    #[must_use]
    pub fn absolute_lifetime(mut self, d: Duration) -> Self {
        self.absolute_lifetime = d;
        self
    }

    /// How long a family lives without a rotation.
    #[must_use]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// How long after a rotation its predecessor still gets the same successor. Values above
    /// [`MAX_GRACE_WINDOW`](Self::MAX_GRACE_WINDOW) are lowered to it; see
    /// [`dangerous_grace_window`](Self::dangerous_grace_window).
    #[must_use]
    pub fn grace_window(mut self, d: Duration) -> Self {
        self.grace_window = d.min(Self::MAX_GRACE_WINDOW);
        self
    }

    /// Sets the grace window without the cap. Every second of grace is a second in which a
    /// stolen predecessor is accepted instead of detected.
    #[must_use]
    pub fn dangerous_grace_window(mut self, d: Duration) -> Self {
        self.grace_window = d;
        self
    }

    /// The longest lifetime of the access tokens minted on rotation: when a family is
    /// revoked, its `sid` is revoked in the `RevocationStore` until now plus this plus the
    /// verifiers' leeway ([`revoke_until`](tokenward_revocation::revoke_until)).
    #[must_use]
    pub fn max_access_token_lifetime(mut self, d: Duration) -> Self {
        self.max_access_token_lifetime = d;
        self
    }

    /// Where "now" comes from.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The configured grace window.
    pub fn grace(&self) -> Duration {
        self.grace_window
    }
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A new family ([`RefreshEngine::issue`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedFamily {
    /// The family id: the `sid` of its access tokens.
    pub family_id: FamilyId,
    /// Its first refresh token.
    pub refresh_token: RefreshToken,
}

/// What a mint closure is given on rotation: issue an access token for `sub` with
/// `sid = family_id`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MintRequest<'a> {
    /// The family id, to put in the access token's `sid`.
    pub family_id: &'a FamilyId,
    /// The subject.
    pub sub: &'a str,
}

/// How a [`Rotation`] came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationKind {
    /// The presented token was current and has been rotated.
    Rotated,
    /// The presented token was rotated less than the grace window ago: the same successor
    /// as that rotation, with a freshly minted access token.
    Grace,
    /// Same token and idempotency key as the rotation within the grace window: the
    /// identical response.
    Replayed,
}

/// A successful [`RefreshEngine::rotate`]. `Debug` never shows the tokens.
#[derive(Clone)]
#[non_exhaustive]
pub struct Rotation {
    /// The refresh token the client must use next.
    pub refresh_token: RefreshToken,
    /// The access token minted (or replayed).
    pub access_token: String,
    /// The family (the access token's `sid`).
    pub family_id: FamilyId,
    /// The subject.
    pub sub: String,
    /// How it came about.
    pub kind: RotationKind,
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("refresh_token", &self.refresh_token)
            .field("access_token", &"<redacted>")
            .field("family_id", &self.family_id)
            .field("sub", &self.sub)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Issues, rotates and revokes refresh-token families (see the crate docs for the rules).
pub struct RefreshEngine {
    store: Arc<dyn RefreshStore>,
    revocation: Arc<dyn RevocationStore>,
    config: RefreshConfig,
    rng: SystemRandom,
}

impl fmt::Debug for RefreshEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RefreshEngine {
    /// An engine over `store`, revoking access tokens through `revocation`.
    pub fn new(
        store: Arc<dyn RefreshStore>,
        revocation: Arc<dyn RevocationStore>,
        config: RefreshConfig,
    ) -> Self {
        RefreshEngine {
            store,
            revocation,
            config,
            rng: SystemRandom::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RefreshConfig {
        &self.config
    }

    fn now(&self) -> UnixTime {
        self.config.clock.now()
    }

    /// Starts a family for `sub` (a login): its id and first refresh token.
    pub async fn issue(&self, sub: &str) -> Result<IssuedFamily, RefreshError> {
        let now = self.now();
        let family_id = FamilyId::generate(&self.rng)?;
        let refresh_token = RefreshToken::generate(&self.rng, &family_id)?;
        self.store
            .create(NewFamily {
                id: family_id.clone(),
                sub: sub.to_owned(),
                token_hash: refresh_token.hash(),
                created: now,
                absolute_expiry: now.saturating_add(self.config.absolute_lifetime),
                idle_timeout: self.config.idle_timeout,
            })
            .await?;
        Ok(IssuedFamily {
            family_id,
            refresh_token,
        })
    }

    /// Rotates `presented` (see the crate docs for grace, idempotency and reuse).
    ///
    /// `mint` issues the access token for the new response (`sid` = the family id). It is
    /// called at most once, **after** the store's atomic step, and only when that step
    /// grants a response ([`RotationKind::Rotated`] or [`RotationKind::Grace`]; a replay
    /// returns the recorded access token and does not mint).
    ///
    /// If `mint` fails after the token was rotated, the error is [`RefreshError::Mint`] and
    /// the rotation stands; the client recovers by retrying with the *same* (now previous)
    /// token within the grace window, which gets the same successor and a newly minted
    /// access token (the grace path). After the window that retry is reuse, as for any lost
    /// response.
    ///
    /// Store calls: without an idempotency key, exactly one — the atomic
    /// [`RefreshStore::rotate`], which also reports the family's `sub`. With a key, a
    /// rotation that wins adds one [`RefreshStore::record_response`] to store the sealed
    /// response (a failure of that call is not reported: the rotation is returned, and a
    /// replay then gets the grace behaviour). Reuse adds one
    /// `RevocationStore::revoke_session`.
    pub async fn rotate<F, E>(
        &self,
        presented: &str,
        idempotency_key: Option<&str>,
        mint: F,
    ) -> Result<Rotation, RefreshError>
    where
        F: FnOnce(MintRequest<'_>) -> Result<String, E> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(key) = idempotency_key {
            validate_idempotency_key(key)?;
        }
        let token = RefreshToken::parse(presented).ok_or(RefreshError::Invalid)?;
        let family_id = token.family_id().clone();
        let now = self.now();

        let successor = RefreshToken::generate(&self.rng, &family_id)?;
        let aad = family_id.as_str().as_bytes();
        let sealed_successor = token.seal(
            &self.rng,
            &[INFO_SUCCESSOR],
            aad,
            successor.expose().as_bytes(),
        )?;
        let key_hash = idempotency_key.map(|key| token.idempotency_key_hash(key));
        let result = self
            .store
            .rotate(RotationRequest {
                family_id: family_id.clone(),
                presented: token.hash(),
                successor: successor.hash(),
                sealed_successor,
                idempotency_key: key_hash,
                now,
                grace: self.config.grace_window,
            })
            .await?;

        match result {
            RotationResult::Rotated(family) => {
                let access_token = mint(MintRequest {
                    family_id: &family_id,
                    sub: &family.sub,
                })
                .map_err(|e| RefreshError::Mint(e.into()))?;
                if let (Some(key), Some(key_hash)) = (idempotency_key, key_hash) {
                    let record = IdempotencyRecord::new(
                        key_hash,
                        token.seal(
                            &self.rng,
                            &response_info(key),
                            aad,
                            &encode_response(successor.expose(), &access_token),
                        )?,
                    );
                    // Best effort: without the record a replay gets the grace behaviour.
                    let _recorded = self
                        .store
                        .record_response(&family_id, &token.hash(), record, now)
                        .await;
                }
                Ok(Rotation {
                    refresh_token: successor,
                    access_token,
                    family_id,
                    sub: family.sub,
                    kind: RotationKind::Rotated,
                })
            }
            RotationResult::Grace {
                family,
                sealed_successor,
                idempotency,
            } => {
                let replay = match (idempotency_key, key_hash, idempotency) {
                    (Some(key), Some(key_hash), Some(record))
                        if record.key_hash.ct_eq(&key_hash) =>
                    {
                        Some((key, record))
                    }
                    _ => None,
                };
                if let Some((key, record)) = replay {
                    let plain = token.open(&response_info(key), aad, &record.sealed_response)?;
                    let (refresh, access) =
                        decode_response(&plain).ok_or(RefreshError::SealedDataInvalid)?;
                    return Ok(Rotation {
                        refresh_token: parse_own(&refresh, &family_id)?,
                        access_token: access,
                        family_id,
                        sub: family.sub,
                        kind: RotationKind::Replayed,
                    });
                }
                let plain = token.open(&[INFO_SUCCESSOR], aad, &sealed_successor)?;
                let refresh =
                    String::from_utf8(plain).map_err(|_| RefreshError::SealedDataInvalid)?;
                let refresh_token = parse_own(&refresh, &family_id)?;
                let access_token = mint(MintRequest {
                    family_id: &family_id,
                    sub: &family.sub,
                })
                .map_err(|e| RefreshError::Mint(e.into()))?;
                Ok(Rotation {
                    refresh_token,
                    access_token,
                    family_id,
                    sub: family.sub,
                    kind: RotationKind::Grace,
                })
            }
            RotationResult::Reused { family, kind } => {
                let session_revocation_error = self.revoke_session(&family_id).await.err();
                tracing::warn!(
                    target: "tokenward::audit",
                    decision = "refresh_reuse",
                    sid = family_id.as_str(),
                    sub = family.sub.as_str(),
                    reuse_kind = kind.as_str(),
                    session_revoked = session_revocation_error.is_none(),
                    "refresh token reuse detected; family revoked"
                );
                Err(RefreshError::Reused(ReuseReport {
                    family_id,
                    sub: family.sub,
                    kind,
                    session_revocation_error,
                }))
            }
            RotationResult::Revoked(_) => Err(RefreshError::Revoked { family_id }),
            // `Invalid` and anything a newer store might report.
            _ => Err(RefreshError::Invalid),
        }
    }

    async fn revoke_session(&self, family_id: &FamilyId) -> Result<(), tokenward_core::StoreError> {
        let until = tokenward_revocation::revoke_until(
            self.now()
                .saturating_add(self.config.max_access_token_lifetime),
        );
        self.revocation
            .revoke_session(&tokenward_core::StoreId::new(family_id.as_str())?, until)
            .await
    }

    /// Revokes a family (logout of one device) and its access tokens (by `sid`). Returns
    /// whether the family existed. Idempotent: revoking again revokes the session again.
    pub async fn revoke_family(&self, family_id: &FamilyId) -> Result<bool, RefreshError> {
        let found = self.store.revoke(family_id, self.now()).await?;
        if found.is_some() {
            self.revoke_session(family_id).await?;
        }
        Ok(found.is_some())
    }

    /// Revokes every live family of `sub` ("sign out everywhere") and their access tokens;
    /// returns how many. A family created concurrently may survive: call again after a
    /// login race, or also use `RevocationStore::revoke_subject` for the access tokens.
    pub async fn revoke_subject(&self, sub: &str) -> Result<usize, RefreshError> {
        let families = self.store.families_of(sub, self.now()).await?;
        let mut count = 0;
        for family in &families {
            if self.revoke_family(&family.id).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// The live families of `sub` ("your devices"), oldest first.
    pub async fn families(&self, sub: &str) -> Result<Vec<FamilyInfo>, RefreshError> {
        Ok(self.store.families_of(sub, self.now()).await?)
    }
}

fn response_info(key: &str) -> [&[u8]; 3] {
    // The key is at most 255 bytes (validated), so its length fits one byte.
    let len: &'static [u8] = LEN_BYTES
        .get(key.len())
        .map(std::slice::from_ref)
        .unwrap_or(&[]);
    [INFO_RESPONSE, len, key.as_bytes()]
}

/// `0..=255`, so [`response_info`] can borrow a one-byte length for the HKDF info.
static LEN_BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::indexing_slicing, reason = "const loop bounded by the length")]
        {
            table[i] = i as u8;
        }
        i += 1;
    }
    table
};

/// Parses a token the engine sealed itself; it must belong to `family`.
fn parse_own(token: &str, family: &FamilyId) -> Result<RefreshToken, RefreshError> {
    RefreshToken::parse(token)
        .filter(|t| t.family_id() == family)
        .ok_or(RefreshError::SealedDataInvalid)
}
