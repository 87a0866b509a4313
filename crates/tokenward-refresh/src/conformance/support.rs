//! What the cases share: an engine over the store under test, the stand-in access-token
//! minter, a wrapper that injects faults, and token chains for the store-level cases.

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ring::rand::SystemRandom;
use tokenward_core::conformance::LOST_ENTRY_HINT;
use tokenward_core::{Clock, IssuerScope, SharedClock, StoreError, StoreId, UnixTime};
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

use super::{ConformanceError, RefreshEnv, Step, StoreProbe, TestClock};
use crate::{
    FamilyId, FamilyInfo, IdempotencyRecord, IssuedFamily, MintRequest, MintedToken, NewFamily,
    RefreshConfig, RefreshEngine, RefreshError, RefreshStore, RefreshToken, Rotation,
    RotationRequest, RotationResult, Sealed, TokenHash,
};

/// The grace window of the suite's engines.
pub(super) const GRACE: Duration = Duration::from_secs(2);
/// The access-token lifetime of the suite's minter, and its engines'
/// `max_access_token_lifetime`.
pub(super) const ACCESS: Duration = Duration::from_secs(900);
/// The lifetimes of the suite's families (far longer than any case).
pub(super) const ABSOLUTE: Duration = Duration::from_secs(3600);
pub(super) const IDLE: Duration = Duration::from_secs(1800);

/// The issuer of the access tokens the suite's engines mint: their `sid`s are revoked in
/// its scope.
pub(super) fn issuer() -> IssuerScope {
    IssuerScope::new("https://conformance.tokenward.test")
}

/// A subject the suite uses; the suite only writes valid ones.
#[expect(
    clippy::expect_used,
    reason = "the suite's subjects are valid by construction"
)]
pub(super) fn sub(s: &str) -> StoreId<'_> {
    StoreId::new(s).expect("the suite's subjects are valid StoreIds")
}

/// The case's clock as the `Clock` the engines and the revocation store read.
#[derive(Clone)]
pub(super) struct CaseClock(pub(super) Arc<dyn TestClock>);

impl fmt::Debug for CaseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaseClock")
    }
}

impl Clock for CaseClock {
    fn now(&self) -> UnixTime {
        self.0.now()
    }
}

/// The clock the suite's engines read: the case's.
pub(super) fn engine_clock(env: &RefreshEnv) -> SharedClock {
    Arc::new(CaseClock(Arc::clone(&env.clock)))
}

/// The suite's engine configuration.
pub(super) fn config(env: &RefreshEnv) -> RefreshConfig {
    RefreshConfig::new()
        .grace_window(GRACE)
        .absolute_lifetime(ABSOLUTE)
        .idle_timeout(IDLE)
        .max_access_token_lifetime(ACCESS)
        .clock(engine_clock(env))
}

/// The stand-in for a JWT issuer: a distinct token per call, expiring `lifetime` after the
/// engine clock's now. Remembers the latest `exp` it handed out.
#[derive(Clone)]
pub(super) struct Minter {
    clock: SharedClock,
    lifetime: Duration,
    latest: Arc<Mutex<UnixTime>>,
}

static MINTED: AtomicU64 = AtomicU64::new(0);

impl Minter {
    pub(super) fn new(clock: SharedClock, lifetime: Duration) -> Self {
        Minter {
            clock,
            lifetime,
            latest: Arc::new(Mutex::new(UnixTime::EPOCH)),
        }
    }

    pub(super) fn mint(&self, req: MintRequest<'_>) -> Result<MintedToken, Infallible> {
        let n = MINTED.fetch_add(1, Ordering::Relaxed);
        let exp = self.clock.now().saturating_add(self.lifetime);
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        *latest = (*latest).max(exp);
        let token = format!("access.{}.{}.{n}", req.sub.as_str(), req.family_id);
        Ok(MintedToken::new(token, exp))
    }

    /// The latest `exp` minted so far.
    pub(super) fn latest(&self) -> UnixTime {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One case's engine over the store under test, with what the case checks it through.
pub(super) struct Suite {
    pub(super) engine: RefreshEngine,
    pub(super) revocation: Arc<MemoryRevocationStore>,
    pub(super) clock: Arc<dyn TestClock>,
    pub(super) probe: Arc<dyn StoreProbe>,
    pub(super) minter: Minter,
}

impl Suite {
    /// The suite's engine over `env`'s store.
    pub(super) fn new(env: &RefreshEnv) -> Result<Self, ConformanceError> {
        Self::with(env, Arc::clone(&env.store), config(env))
    }

    /// An engine with `config` over `store` (the env's store, or a wrapper around it).
    pub(super) fn with(
        env: &RefreshEnv,
        store: Arc<dyn RefreshStore>,
        config: RefreshConfig,
    ) -> Result<Self, ConformanceError> {
        let revocation = Arc::new(MemoryRevocationStore::with_clock(engine_clock(env)));
        let engine = RefreshEngine::with_config(store, revocation.clone(), issuer(), config)
            .step("RefreshEngine::with_config")?;
        Ok(Suite {
            engine,
            revocation,
            clock: Arc::clone(&env.clock),
            probe: Arc::clone(&env.probe),
            minter: Minter::new(engine_clock(env), ACCESS),
        })
    }

    /// The same engine minting with another `minter`.
    pub(super) fn minting(mut self, minter: Minter) -> Self {
        self.minter = minter;
        self
    }

    pub(super) async fn login(&self, who: &str) -> Result<IssuedFamily, ConformanceError> {
        self.engine
            .issue(&sub(who), |req| self.minter.mint(req))
            .await
            .step(&format!("issue({who})"))
    }

    pub(super) async fn rotate(
        &self,
        token: &str,
        key: Option<&str>,
    ) -> Result<Rotation, RefreshError> {
        self.engine
            .rotate(token, key, |req| self.minter.mint(req))
            .await
    }

    /// A rotation that must succeed; an `Invalid` one names the likely cause.
    pub(super) async fn rotate_ok(
        &self,
        token: &str,
        key: Option<&str>,
        what: &str,
    ) -> Result<Rotation, ConformanceError> {
        match self.rotate(token, key).await {
            Err(RefreshError::Invalid) => Err(ConformanceError::new(format!(
                "{what}: the family is unexpectedly Invalid: {LOST_ENTRY_HINT}"
            ))),
            other => other.step(what),
        }
    }

    /// Rotates `token` `times` times, letting `every` pass before each; the last successor.
    pub(super) async fn rotate_times(
        &self,
        token: &str,
        times: usize,
        every: Duration,
        what: &str,
    ) -> Result<String, ConformanceError> {
        let mut token = token.to_owned();
        for i in 0..times {
            self.clock.advance(every).await;
            let step = format!("{what}: rotation {i}");
            let r = self.rotate_ok(&token, None, &step).await?;
            token = r.refresh_token.expose().to_owned();
        }
        Ok(token)
    }

    /// Asserts that presenting `token` is refused because its family was revoked.
    pub(super) async fn assert_revoked(&self, token: &str, why: &str) {
        let r = self.rotate(token, None).await;
        assert!(
            matches!(r, Err(RefreshError::Revoked { .. })),
            "{why}: expected Revoked, got {r:?}"
        );
    }

    /// Asserts that `who`'s family of `token` has expired: `Invalid`, and not listed.
    pub(super) async fn assert_gone(
        &self,
        token: &str,
        who: &str,
        why: &str,
    ) -> Result<(), ConformanceError> {
        let r = self.rotate(token, None).await;
        assert!(
            matches!(r, Err(RefreshError::Invalid)),
            "{why}: expected Invalid, got {r:?}"
        );
        let listed = self.families(who).await?;
        assert!(listed.is_empty(), "{why}: still listed: {listed:?}");
        Ok(())
    }

    pub(super) async fn families(&self, who: &str) -> Result<Vec<FamilyInfo>, ConformanceError> {
        self.engine
            .families(&sub(who))
            .await
            .step(&format!("families({who})"))
    }

    /// Whether `family`'s `sid` is revoked in the revocation store now.
    pub(super) async fn session_revoked(
        &self,
        family: &FamilyId,
    ) -> Result<bool, ConformanceError> {
        session_revoked_in(&*self.revocation, family).await
    }
}

/// Whether `family`'s `sid` is revoked in `revocation` (by its own clock).
pub(super) async fn session_revoked_in(
    revocation: &dyn RevocationStore,
    family: &FamilyId,
) -> Result<bool, ConformanceError> {
    let token = issuer()
        .token_ref(
            None,
            Some(family.as_str()),
            None,
            None,
            UnixTime::from_secs(4_000_000_000),
        )
        .step("the family id as a StoreId")?;
    Ok(revocation
        .check(&token)
        .await
        .step("RevocationStore::check")?
        .is_revoked())
}

// ---- a store that fails on demand ----------------------------------------------------------

/// How [`FaultyStore`] behaves.
pub(super) const HEALTHY: u8 = 0;
/// Every call fails with `Unavailable`.
pub(super) const DOWN: u8 = 1;
/// `rotate` is applied by the inner store, then its answer is "lost" (a `Timeout`).
pub(super) const LOSE_ROTATE_REPLY: u8 = 2;
/// `record_response` writes nothing (a replay racing the record).
pub(super) const SKIP_RECORD: u8 = 3;
/// The family is revoked just before `record_access_exp` (a logout racing a refresh that
/// minted a longer-lived access token).
pub(super) const REVOKE_BEFORE_RECORD: u8 = 4;

/// The store under test behind a switch that injects outages, lost replies and late records.
pub(super) struct FaultyStore {
    inner: Arc<dyn RefreshStore>,
    mode: AtomicU8,
}

impl FaultyStore {
    pub(super) fn new(inner: Arc<dyn RefreshStore>) -> Self {
        FaultyStore {
            inner,
            mode: AtomicU8::new(HEALTHY),
        }
    }

    pub(super) fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn mode(&self) -> u8 {
        self.mode.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.mode() == DOWN {
            return Err(StoreError::Unavailable {
                message: "conformance: simulated outage".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl RefreshStore for FaultyStore {
    async fn create(&self, family: NewFamily) -> Result<(), StoreError> {
        self.check()?;
        self.inner.create(family).await
    }
    async fn get(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn rotate(&self, request: RotationRequest) -> Result<RotationResult, StoreError> {
        self.check()?;
        let result = self.inner.rotate(request).await?;
        if self.mode() == LOSE_ROTATE_REPLY {
            return Err(StoreError::Timeout {
                after: Duration::from_millis(100),
            });
        }
        Ok(result)
    }
    async fn record_response(
        &self,
        id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
    ) -> Result<bool, StoreError> {
        self.check()?;
        if self.mode() == SKIP_RECORD {
            return Ok(false);
        }
        self.inner.record_response(id, presented, record).await
    }
    async fn record_access_exp(
        &self,
        id: &FamilyId,
        exp: UnixTime,
    ) -> Result<Option<FamilyInfo>, StoreError> {
        self.check()?;
        if self.mode() == REVOKE_BEFORE_RECORD {
            self.inner.revoke(id).await?;
        }
        self.inner.record_access_exp(id, exp).await
    }
    async fn revoke(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        self.check()?;
        self.inner.revoke(id).await
    }
    async fn families_of(&self, sub: &StoreId<'_>) -> Result<Vec<FamilyInfo>, StoreError> {
        self.check()?;
        self.inner.families_of(sub).await
    }
}

// ---- store-level token chains --------------------------------------------------------------

/// Tokens of one family, for calling the store without the engine.
pub(super) struct Chain {
    pub(super) rng: SystemRandom,
    pub(super) family: FamilyId,
}

impl Chain {
    /// A new family of `who` in `store`, created with `access_exp` (revoked, it stays as
    /// long as it would have lived); its first token.
    pub(super) async fn create(
        store: &dyn RefreshStore,
        who: &str,
        access_exp: UnixTime,
    ) -> Result<(Chain, RefreshToken), ConformanceError> {
        Self::create_retained(store, who, access_exp, ABSOLUTE).await
    }

    /// [`create`](Self::create) with a [`NewFamily::revoked_retention`] of `retention`.
    pub(super) async fn create_retained(
        store: &dyn RefreshStore,
        who: &str,
        access_exp: UnixTime,
        retention: Duration,
    ) -> Result<(Chain, RefreshToken), ConformanceError> {
        let rng = SystemRandom::new();
        let family = FamilyId::generate(&rng).step("family id")?;
        let chain = Chain { rng, family };
        let first = chain.token()?;
        store
            .create(NewFamily {
                id: chain.family.clone(),
                sub: sub(who).into_owned(),
                token_hash: first.hash(),
                absolute_lifetime: ABSOLUTE,
                idle_timeout: IDLE,
                access_exp,
                revoked_retention: retention,
            })
            .await
            .step("create")?;
        Ok((chain, first))
    }

    pub(super) fn token(&self) -> Result<RefreshToken, ConformanceError> {
        RefreshToken::generate(&self.rng, &self.family).step("generating a token")
    }

    /// A request presenting `presented`, installing `successor` (its "sealed" form is its
    /// hash: the store hands it back verbatim), announcing `access_exp`.
    pub(super) fn request(
        &self,
        presented: &RefreshToken,
        successor: &RefreshToken,
        access_exp: UnixTime,
    ) -> RotationRequest {
        RotationRequest {
            family_id: self.family.clone(),
            presented: presented.hash(),
            successor: successor.hash(),
            sealed_successor: Sealed(successor.hash().as_bytes().to_vec()),
            idempotency_key: None,
            grace: GRACE,
            access_exp,
        }
    }
}
