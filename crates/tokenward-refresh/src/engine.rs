//! [`RefreshEngine`]: issue, rotate and revoke families on top of a [`RefreshStore`].

use std::fmt;
use std::sync::Arc;

use ring::rand::SystemRandom;
use tokenward_core::metrics::refresh as results;
use tokenward_core::{IssuerScope, SettingError, StoreError, StoreId, UnixTime};
use tokenward_revocation::RevocationStore;

use crate::config::RefreshConfig;
use crate::error::{RefreshError, ReuseReport};
use crate::store::{
    FamilyInfo, IdempotencyRecord, NewFamily, RefreshStore, ReuseKind, RotationRequest,
    RotationResult,
};
use crate::token::{
    FamilyId, INFO_RESPONSE, INFO_SUCCESSOR, RefreshToken, Sealed, TokenHash, decode_response,
    encode_response, validate_idempotency_key,
};

/// A new family ([`RefreshEngine::issue`]). `Debug` never shows the tokens.
#[derive(Clone)]
#[non_exhaustive]
pub struct IssuedFamily {
    /// The family id: the `sid` of its access tokens.
    pub family_id: FamilyId,
    /// Its first refresh token.
    pub refresh_token: RefreshToken,
    /// The access token minted with the login.
    pub access_token: String,
}

impl fmt::Debug for IssuedFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedFamily")
            .field("family_id", &self.family_id)
            .field("refresh_token", &self.refresh_token)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

/// What a mint closure is given: issue an access token for `sub` with `sid = family_id`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MintRequest<'a> {
    /// The family id, to put in the access token's `sid`.
    pub family_id: &'a FamilyId,
    /// The subject.
    pub sub: &'a StoreId<'a>,
    /// The latest `exp` the store has already recorded for the family: a token expiring by
    /// then costs nothing more; one expiring later is recorded with one more store call
    /// before it is handed out (see [`RefreshConfig::max_access_token_lifetime`]).
    pub covered_until: UnixTime,
}

/// What a mint closure returns: the access token and its `exp`. The engine records the `exp`
/// with the family, so that revoking the family revokes its `sid` until then.
///
/// ```
/// # use tokenward_core::UnixTime;
/// use tokenward_refresh::MintedToken;
/// let minted = MintedToken::new("eyJ…", UnixTime::from_secs(1_700_000_900));
/// assert!(!format!("{minted:?}").contains("eyJ"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct MintedToken {
    /// The access token.
    pub token: String,
    /// Its `exp` (for a JWT: `UnixTime::from_secs(claims.exp)`).
    pub exp: UnixTime,
}

impl MintedToken {
    /// A minted access token expiring at `exp`.
    pub fn new(token: impl Into<String>, exp: UnixTime) -> Self {
        MintedToken {
            token: token.into(),
            exp,
        }
    }
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &"<redacted>")
            .field("exp", &self.exp)
            .finish()
    }
}

/// The error a mint closure's error becomes ([`RefreshError::Mint`]).
type MintError = Box<dyn std::error::Error + Send + Sync>;

/// The mint closure of [`RefreshEngine::issue`] and [`RefreshEngine::rotate`], as the engine's
/// steps take it (the public methods keep the closure bound, so closures need no annotation).
trait Mint: Send {
    /// Issues the access token `req` asks for and says when it expires.
    fn mint(self, req: MintRequest<'_>) -> Result<MintedToken, MintError>;
}

impl<F, E> Mint for F
where
    F: FnOnce(MintRequest<'_>) -> Result<MintedToken, E> + Send,
    E: Into<MintError>,
{
    fn mint(self, req: MintRequest<'_>) -> Result<MintedToken, MintError> {
        self(req).map_err(Into::into)
    }
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
    pub sub: StoreId<'static>,
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
    /// The issuer of the access tokens the mint closures issue: their `sid` is revoked in
    /// its scope, where the Guard looks it up.
    issuer: IssuerScope,
    config: RefreshConfig,
    rng: SystemRandom,
}

impl fmt::Debug for RefreshEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshEngine")
            .field("issuer", &self.issuer)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One presented token on its way through [`RefreshEngine::rotate`].
struct Attempt<'k> {
    token: RefreshToken,
    family_id: FamilyId,
    /// The idempotency key and its stored hash.
    key: Option<(&'k str, TokenHash)>,
    /// What the store step records as the family's latest access-token `exp`.
    covered_until: UnixTime,
}

impl Attempt<'_> {
    fn aad(&self) -> &[u8] {
        self.family_id.as_str().as_bytes()
    }
}

impl RefreshEngine {
    /// An engine over `store` with the default [`RefreshConfig`], revoking access tokens
    /// through `revocation`. `issuer` is the scope of the `iss` its access tokens carry
    /// (what the mint closures put in them): a family's `sid` is revoked in that scope,
    /// which is where the Guard looks it up ([`IssuerScope`]).
    pub fn new(
        store: Arc<dyn RefreshStore>,
        revocation: Arc<dyn RevocationStore>,
        issuer: IssuerScope,
    ) -> Self {
        Self::build(store, revocation, issuer, RefreshConfig::new())
    }

    /// An engine with `config`; a setting out of its range is an error.
    pub fn with_config(
        store: Arc<dyn RefreshStore>,
        revocation: Arc<dyn RevocationStore>,
        issuer: IssuerScope,
        config: RefreshConfig,
    ) -> Result<Self, SettingError> {
        config.validate()?;
        Ok(Self::build(store, revocation, issuer, config))
    }

    fn build(
        store: Arc<dyn RefreshStore>,
        revocation: Arc<dyn RevocationStore>,
        issuer: IssuerScope,
        config: RefreshConfig,
    ) -> Self {
        RefreshEngine {
            store,
            revocation,
            issuer,
            config,
            rng: SystemRandom::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RefreshConfig {
        &self.config
    }

    /// Starts a family for `sub` (a login): mints its first access token with `mint`
    /// (`sid` = the new family id), then creates the family with that token's `exp`.
    ///
    /// Then it enforces [`RefreshConfig::max_families_per_subject`]: it lists the subject's
    /// live families ([`RefreshStore::families_of`]) and, if there are more than the cap,
    /// revokes the oldest ones (never the new one) as [`revoke_family`](Self::revoke_family)
    /// does — the family and its session — with an audit event each (see the crate docs).
    /// This step is best effort: a store error in it does not fail the login (the family is
    /// created and its tokens are returned); it is audited, and the subject's next login
    /// enforces the cap again. Two logins racing may leave the subject over the cap until
    /// its next login (each counts the families it sees).
    pub async fn issue<F, E>(
        &self,
        sub: &StoreId<'_>,
        mint: F,
    ) -> Result<IssuedFamily, RefreshError>
    where
        F: FnOnce(MintRequest<'_>) -> Result<MintedToken, E> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let issued = self.issue_family(sub, mint).await;
        count(issued.as_ref().map(|_| results::ISSUED));
        issued
    }

    async fn issue_family<F, E>(
        &self,
        sub: &StoreId<'_>,
        mint: F,
    ) -> Result<IssuedFamily, RefreshError>
    where
        F: FnOnce(MintRequest<'_>) -> Result<MintedToken, E> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let family_id = FamilyId::generate(&self.rng)?;
        let refresh_token = RefreshToken::generate(&self.rng, &family_id)?;
        let minted = mint(MintRequest {
            family_id: &family_id,
            sub,
            covered_until: self.config.covered_until(),
        })
        .map_err(|e| RefreshError::Mint(e.into()))?;
        self.store
            .create(NewFamily {
                id: family_id.clone(),
                sub: sub.clone().into_owned(),
                token_hash: refresh_token.hash(),
                absolute_lifetime: self.config.absolute_lifetime,
                idle_timeout: self.config.idle_timeout,
                access_exp: minted.exp,
                revoked_retention: self.config.revoked_retention(),
            })
            .await?;
        self.enforce_family_cap(sub, &family_id).await;
        Ok(IssuedFamily {
            family_id,
            refresh_token,
            access_token: minted.token,
        })
    }

    /// Rotates `presented` (see the crate docs for grace, idempotency and reuse).
    ///
    /// `mint` issues the access token for the new response (`sid` = the family id) and says
    /// when it expires. It is called at most once, **after** the store's atomic step, and
    /// only when that step grants a response ([`RotationKind::Rotated`] or
    /// [`RotationKind::Grace`]; a replay returns the recorded access token and does not
    /// mint).
    ///
    /// If `mint` fails after the token was rotated, the error is [`RefreshError::Mint`] and
    /// the rotation stands; the client recovers by retrying with the *same* (now previous)
    /// token within the grace window, which gets the same successor and a newly minted
    /// access token (the grace path). After the window that retry is reuse, as for any lost
    /// response.
    ///
    /// Store calls: without an idempotency key, exactly one — the atomic
    /// [`RefreshStore::rotate`], which also reports the family's `sub` and records that an
    /// access token of the family may live until [`MintRequest::covered_until`]. A token
    /// minted with a later `exp` adds one [`RefreshStore::record_access_exp`] before it is
    /// handed out (and is not handed out if the family was revoked meanwhile). With a key,
    /// a rotation that wins adds one [`RefreshStore::record_response`] to store the sealed
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
        F: FnOnce(MintRequest<'_>) -> Result<MintedToken, E> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let rotation = self.rotate_token(presented, idempotency_key, mint).await;
        count(rotation.as_ref().map(|r| match r.kind {
            RotationKind::Rotated => results::ROTATED,
            RotationKind::Grace => results::GRACE,
            RotationKind::Replayed => results::IDEMPOTENT_REPLAY,
        }));
        rotation
    }

    async fn rotate_token<F, E>(
        &self,
        presented: &str,
        idempotency_key: Option<&str>,
        mint: F,
    ) -> Result<Rotation, RefreshError>
    where
        F: FnOnce(MintRequest<'_>) -> Result<MintedToken, E> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(key) = idempotency_key {
            validate_idempotency_key(key)?;
        }
        let token = RefreshToken::parse(presented).ok_or(RefreshError::Invalid)?;
        let family_id = token.family_id().clone();
        let key = idempotency_key.map(|key| (key, token.idempotency_key_hash(key)));
        let attempt = Attempt {
            token,
            family_id,
            key,
            covered_until: self.config.covered_until(),
        };
        let successor = RefreshToken::generate(&self.rng, &attempt.family_id)?;
        let sealed_successor = attempt.token.seal(
            &self.rng,
            &[INFO_SUCCESSOR],
            attempt.aad(),
            successor.expose().as_bytes(),
        )?;
        let result = self
            .store
            .rotate(RotationRequest {
                family_id: attempt.family_id.clone(),
                presented: attempt.token.hash(),
                successor: successor.hash(),
                sealed_successor,
                idempotency_key: attempt.key.map(|(_, hash)| hash),
                grace: self.config.grace_window,
                access_exp: attempt.covered_until,
            })
            .await?;

        match result {
            RotationResult::Rotated(family) => {
                self.rotated(&attempt, family, successor, mint).await
            }
            RotationResult::Grace {
                family,
                sealed_successor,
                idempotency,
            } => match replay(&attempt, &family, idempotency)? {
                Some(rotation) => Ok(rotation),
                None => self.grace(&attempt, family, &sealed_successor, mint).await,
            },
            RotationResult::Reused { family, kind } => Err(self.reused(family, kind).await),
            RotationResult::Revoked(_) => Err(RefreshError::Revoked {
                family_id: attempt.family_id,
            }),
            // `Invalid` and anything a newer store might report.
            _ => Err(RefreshError::Invalid),
        }
    }

    /// The presented token was current: mint for the successor, record the response of a
    /// keyed request.
    async fn rotated(
        &self,
        attempt: &Attempt<'_>,
        family: FamilyInfo,
        successor: RefreshToken,
        mint: impl Mint,
    ) -> Result<Rotation, RefreshError> {
        let access_token = self.mint(attempt, &family.sub, mint).await?;
        if let Some((key, key_hash)) = attempt.key {
            let sealed = response_info(key, |info| {
                attempt.token.seal(
                    &self.rng,
                    info,
                    attempt.aad(),
                    &encode_response(successor.expose(), &access_token),
                )
            })?;
            let record = IdempotencyRecord::new(key_hash, sealed);
            // Best effort: without the record a replay gets the grace behaviour.
            let _recorded = self
                .store
                .record_response(&attempt.family_id, &attempt.token.hash(), record)
                .await;
        }
        Ok(Rotation {
            refresh_token: successor,
            access_token,
            family_id: attempt.family_id.clone(),
            sub: family.sub,
            kind: RotationKind::Rotated,
        })
    }

    /// The presented token is the previous one, within the window, without a recorded
    /// response for its key: the same successor with a newly minted access token.
    async fn grace(
        &self,
        attempt: &Attempt<'_>,
        family: FamilyInfo,
        sealed_successor: &Sealed,
        mint: impl Mint,
    ) -> Result<Rotation, RefreshError> {
        let plain = attempt
            .token
            .open(&[INFO_SUCCESSOR], attempt.aad(), sealed_successor)?;
        let refresh = String::from_utf8(plain).map_err(|_| RefreshError::SealedDataInvalid)?;
        let refresh_token = parse_own(&refresh, &attempt.family_id)?;
        let access_token = self.mint(attempt, &family.sub, mint).await?;
        Ok(Rotation {
            refresh_token,
            access_token,
            family_id: attempt.family_id.clone(),
            sub: family.sub,
            kind: RotationKind::Grace,
        })
    }

    /// Reuse: the store revoked the family; revoke its access tokens and audit it.
    async fn reused(&self, family: FamilyInfo, kind: ReuseKind) -> RefreshError {
        let session_revocation_error = self.revoke_session(&family).await.err();
        tracing::warn!(
            target: "tokenward::audit",
            decision = "refresh_reuse",
            sid = family.id.as_str(),
            sub = family.sub.as_str(),
            reuse_kind = kind.as_str(),
            session_revoked = session_revocation_error.is_none(),
            "refresh token reuse detected; family revoked"
        );
        RefreshError::Reused(ReuseReport {
            family_id: family.id,
            sub: family.sub,
            kind,
            session_revocation_error,
        })
    }

    /// Mints for `attempt`'s family; a token expiring after what the store step covered is
    /// recorded first, and withheld if the family is gone or was revoked meanwhile.
    async fn mint(
        &self,
        attempt: &Attempt<'_>,
        sub: &StoreId<'_>,
        mint: impl Mint,
    ) -> Result<String, RefreshError> {
        let minted = mint
            .mint(MintRequest {
                family_id: &attempt.family_id,
                sub,
                covered_until: attempt.covered_until,
            })
            .map_err(RefreshError::Mint)?;
        if minted.exp > attempt.covered_until {
            let family = self
                .store
                .record_access_exp(&attempt.family_id, minted.exp)
                .await?;
            match family {
                None => return Err(RefreshError::Invalid),
                Some(family) if family.revoked => {
                    return Err(RefreshError::Revoked {
                        family_id: attempt.family_id.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(minted.token)
    }

    /// Revokes `family`'s `sid` until the latest access-token `exp` recorded for it, plus
    /// the verifiers' leeway.
    async fn revoke_session(&self, family: &FamilyInfo) -> Result<(), StoreError> {
        let until = tokenward_revocation::revoke_until(family.access_exp);
        self.revocation
            .revoke_session(&self.issuer.id(family.id.as_str())?, until)
            .await
    }

    /// Revokes a family (logout of one device) and its access tokens (by `sid`, until the
    /// latest access-token `exp` recorded for the family). Returns whether the family
    /// existed. Idempotent: revoking again revokes the session again.
    pub async fn revoke_family(&self, family_id: &FamilyId) -> Result<bool, RefreshError> {
        let Some(family) = self.store.revoke(family_id).await? else {
            return Ok(false);
        };
        self.revoke_session(&family).await?;
        Ok(true)
    }

    /// Revokes the oldest live families of `sub` beyond the cap, never `newest`; audited.
    async fn enforce_family_cap(&self, sub: &StoreId<'_>, newest: &FamilyId) {
        let cap = self.config.max_families_per_subject;
        let families = match self.store.families_of(sub).await {
            Ok(families) => families,
            Err(error) => {
                tracing::warn!(
                    target: "tokenward::audit",
                    decision = "refresh_family_cap",
                    sub = sub.as_str(),
                    new_sid = newest.as_str(),
                    max_families = cap,
                    revoked = false,
                    error = %error,
                    "could not list the subject's families to enforce the cap; next login retries"
                );
                return;
            }
        };
        let excess = families.len().saturating_sub(cap);
        for family in families.iter().filter(|f| f.id != *newest).take(excess) {
            let outcome = self.revoke_family(&family.id).await;
            let error = outcome.as_ref().err().map(ToString::to_string);
            tracing::warn!(
                target: "tokenward::audit",
                decision = "refresh_family_cap",
                sid = family.id.as_str(),
                sub = sub.as_str(),
                new_sid = newest.as_str(),
                max_families = cap,
                revoked = outcome.is_ok(),
                error = error.as_deref(),
                "too many families for one subject; the oldest revoked"
            );
        }
    }

    /// Revokes every live family of `sub` ("sign out everywhere") and their access tokens;
    /// returns how many. A family created concurrently may survive: call again after a
    /// login race, or also use `RevocationStore::revoke_subject` for the access tokens.
    pub async fn revoke_subject(&self, sub: &StoreId<'_>) -> Result<usize, RefreshError> {
        let families = self.store.families_of(sub).await?;
        let mut count = 0;
        for family in &families {
            if self.revoke_family(&family.id).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// The live families of `sub` ("your devices"), oldest first.
    pub async fn families(&self, sub: &StoreId<'_>) -> Result<Vec<FamilyInfo>, RefreshError> {
        Ok(self.store.families_of(sub).await?)
    }
}

/// One `tokenward_refresh_total{result}`: `result` for a success, the error's kind otherwise.
fn count(result: Result<&'static str, &RefreshError>) {
    let result = match result {
        Ok(result) => result,
        Err(RefreshError::Reused(_)) => results::REUSED,
        Err(RefreshError::Revoked { .. }) => results::REVOKED,
        Err(RefreshError::Invalid | RefreshError::InvalidIdempotencyKey) => results::INVALID,
        Err(RefreshError::Store(_)) => results::STORE_ERROR,
        Err(_) => results::ERROR,
    };
    // Literal labels: static keys, nothing allocated per call.
    macro_rules! count {
        ($($value:literal),+) => {
            match result {
                $($value => ::metrics::counter!(
                    tokenward_core::metrics::REFRESH_TOTAL, "result" => $value
                ),)+
                other => ::metrics::counter!(
                    tokenward_core::metrics::REFRESH_TOTAL,
                    tokenward_core::metrics::RESULT => other
                ),
            }
        };
    }
    count!(
        "issued",
        "rotated",
        "grace",
        "idempotent_replay",
        "reused",
        "revoked",
        "invalid",
        "store_error",
        "error"
    )
    .increment(1);
}

/// The identical response of the rotation, if this is a replay of it: same token, same key,
/// its response recorded.
fn replay(
    attempt: &Attempt<'_>,
    family: &FamilyInfo,
    idempotency: Option<IdempotencyRecord>,
) -> Result<Option<Rotation>, RefreshError> {
    let (Some((key, key_hash)), Some(record)) = (attempt.key, idempotency) else {
        return Ok(None);
    };
    if !record.key_hash.ct_eq(&key_hash) {
        return Ok(None);
    }
    let plain = response_info(key, |info| {
        attempt
            .token
            .open(info, attempt.aad(), &record.sealed_response)
    })?;
    let (refresh, access) = decode_response(&plain).ok_or(RefreshError::SealedDataInvalid)?;
    Ok(Some(Rotation {
        refresh_token: parse_own(&refresh, &attempt.family_id)?,
        access_token: access,
        family_id: attempt.family_id.clone(),
        sub: family.sub.clone(),
        kind: RotationKind::Replayed,
    }))
}

/// Calls `f` with the HKDF info of an idempotent response: [`INFO_RESPONSE`], the key's
/// length as one byte (the key is at most 255 bytes, validated) and the key.
fn response_info<T>(key: &str, f: impl FnOnce(&[&[u8]]) -> T) -> T {
    let len = [u8::try_from(key.len()).unwrap_or(u8::MAX)];
    f(&[INFO_RESPONSE, &len, key.as_bytes()])
}

/// Parses a token the engine sealed itself; it must belong to `family`.
fn parse_own(token: &str, family: &FamilyId) -> Result<RefreshToken, RefreshError> {
    RefreshToken::parse(token)
        .filter(|t| t.family_id() == family)
        .ok_or(RefreshError::SealedDataInvalid)
}
