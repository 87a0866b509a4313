//! The conformance suite every [`RefreshStore`] backend runs: tokenward's in-memory and
//! Redis stores, and yours.
//!
//! Each case is a `pub async fn(env: RefreshEnv)` that drives a [`RefreshEngine`] over the
//! store under test (with a `MemoryRevocationStore` for the session revocations) and checks
//! one part of the [contract](RefreshStore#contract-for-implementations) and of the rotation
//! rules. Assertions panic; unexpected errors come back as a [`ConformanceError`] naming the
//! call. [`CASES`] lists them all. Every case needs a **fresh, empty store** (a networked
//! backend: a new random key prefix per case).
//!
//! Time comes from a [`TestClock`] (the revocation suite's: a `ManualClock` shared with the
//! engine, or `RealClock` for a store that keeps its own time — cases then sleep a few
//! seconds at most). The engine's own clock is passed separately ([`RefreshEnv::new`]).
//!
//! The "no plaintext at rest" case reads every byte the store holds through
//! [`StoredBytes`] (memory: [`MemoryRefreshStore::stored_bytes`]; Redis: a `SCAN` of the
//! test's key prefix).
//!
//! ```
//! use std::sync::Arc;
//! use tokenward_core::{ManualClock, UnixTime};
//! use tokenward_refresh::MemoryRefreshStore;
//! use tokenward_refresh::conformance::RefreshEnv;
//!
//! async fn make_env() -> RefreshEnv {
//!     let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//!     let store = Arc::new(MemoryRefreshStore::new());
//!     RefreshEnv::new(store.clone(), Arc::new(clock.clone()), Arc::new(clock), store)
//! }
//!
//! // In a test file: one #[tokio::test] per case (needs tokio with `macros` and
//! // `rt-multi-thread` as a dev-dependency).
//! tokenward_refresh::refresh_conformance_tests!(make_env);
//! # fn main() {
//! #     let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! #     rt.block_on(async {
//! #         tokenward_refresh::conformance::grandparent_within_window_is_reuse(make_env().await)
//! #             .await
//! #             .unwrap();
//! #     });
//! # }
//! ```

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use tokenward_core::{SharedClock, StoreError, TokenRef, UnixTime};
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

pub use tokenward_core::conformance::{RealClock, TestClock};

mod model;

pub use model::model_based;

use crate::{
    FamilyId, FamilyInfo, IdempotencyRecord, MemoryRefreshStore, MintRequest, NewFamily,
    RefreshConfig, RefreshEngine, RefreshError, RefreshStore, RefreshToken, Rotation, RotationKind,
    RotationRequest, RotationResult, TokenHash,
};

/// The names of all cases, in the order the macro expands them.
pub const CASES: &[&str] = crate::__refresh_conformance_cases!(names);

/// Expands to one `#[tokio::test]` per conformance case. `$make_env` is an async function
/// or closure returning a fresh [`RefreshEnv`]; it is called once per case.
#[macro_export]
macro_rules! refresh_conformance_tests {
    ($make_env:expr $(,)?) => {
        $crate::__refresh_conformance_cases!(tests $make_env);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __refresh_conformance_cases {
    ($($mode:tt)*) => {
        $crate::__refresh_conformance_expand! {
            [$($mode)*]
            issue_and_rotate
            concurrent_rotations_share_one_successor
            reuse_after_window_revokes_family
            grandparent_within_window_is_reuse
            rotation_racing_revocation_leaves_nothing_live
            idempotency_replay_and_grace
            absolute_expiry
            idle_expiry
            store_errors_are_never_reuse
            no_plaintext_at_rest
            unknown_and_forged_tokens_are_invalid
            revoke_family_and_subject
            store_rotate_classifies
            store_rotate_races_revoke
            one_store_call_per_rotation
            model_based
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __refresh_conformance_expand {
    ([tests $make_env:expr] $($case:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() -> ::core::result::Result<(), $crate::conformance::ConformanceError> {
                $crate::conformance::$case(($make_env)().await).await
            }
        )*
    };
    ([names] $($case:ident)*) => {
        &[$(::core::stringify!($case)),*]
    };
}

/// Every byte a store holds, for the "no plaintext at rest" case.
#[async_trait]
pub trait StoredBytes: Send + Sync + 'static {
    /// Every stored key and value (one buffer each, or any split: the case searches each
    /// buffer).
    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, StoreError>;
}

#[async_trait]
impl StoredBytes for MemoryRefreshStore {
    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(MemoryRefreshStore::stored_bytes(self))
    }
}

/// What a case runs against.
pub struct RefreshEnv {
    store: Arc<dyn RefreshStore>,
    clock: Arc<dyn TestClock>,
    engine_clock: SharedClock,
    stored_bytes: Arc<dyn StoredBytes>,
}

impl RefreshEnv {
    /// A fresh, empty `store`; the case's `clock`; the clock the engine reads (the same
    /// `ManualClock`, or the system clock with `RealClock`); and a way to read every stored
    /// byte.
    pub fn new(
        store: Arc<dyn RefreshStore>,
        clock: Arc<dyn TestClock>,
        engine_clock: SharedClock,
        stored_bytes: Arc<dyn StoredBytes>,
    ) -> Self {
        RefreshEnv {
            store,
            clock,
            engine_clock,
            stored_bytes,
        }
    }
}

impl fmt::Debug for RefreshEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshEnv").finish_non_exhaustive()
    }
}

/// A case failed because a call returned an unexpected error (assertions panic instead).
pub struct ConformanceError {
    message: String,
}

impl fmt::Display for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConformanceError {}

/// What a case returns.
pub type CaseResult = Result<(), ConformanceError>;

trait Step<T> {
    fn step(self, what: &str) -> Result<T, ConformanceError>;
}

impl<T, E: fmt::Display + fmt::Debug> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, ConformanceError> {
        self.map_err(|e| ConformanceError {
            message: format!("{what} failed: {e} ({e:?})"),
        })
    }
}

// ---- helpers -----------------------------------------------------------------------------

/// The grace window of the suite's engine.
const GRACE: Duration = Duration::from_secs(2);
const MAX_ACCESS: Duration = Duration::from_secs(900);

struct Fixture {
    engine: RefreshEngine,
    revocation: Arc<MemoryRevocationStore>,
    clock: Arc<dyn TestClock>,
    stored_bytes: Arc<dyn StoredBytes>,
}

fn config(env: &RefreshEnv) -> RefreshConfig {
    RefreshConfig::new()
        .grace_window(GRACE)
        .absolute_lifetime(Duration::from_secs(3600))
        .idle_timeout(Duration::from_secs(1800))
        .max_access_token_lifetime(MAX_ACCESS)
        .clock(Arc::clone(&env.engine_clock))
}

fn fixture_with(env: RefreshEnv, store: Arc<dyn RefreshStore>, config: RefreshConfig) -> Fixture {
    let revocation = Arc::new(MemoryRevocationStore::with_clock(Arc::clone(
        &env.engine_clock,
    )));
    Fixture {
        engine: RefreshEngine::new(store, revocation.clone(), config),
        revocation,
        clock: env.clock,
        stored_bytes: env.stored_bytes,
    }
}

fn fixture(env: RefreshEnv) -> Fixture {
    let config = config(&env);
    let store = Arc::clone(&env.store);
    fixture_with(env, store, config)
}

static MINTED: AtomicU64 = AtomicU64::new(0);

/// A stand-in for a JWT issuer: a distinct "access token" per call.
fn mint(req: MintRequest<'_>) -> Result<String, Infallible> {
    let n = MINTED.fetch_add(1, Ordering::Relaxed);
    Ok(format!("access.{}.{}.{n}", req.sub, req.family_id))
}

async fn rotate(f: &Fixture, token: &str, key: Option<&str>) -> Result<Rotation, RefreshError> {
    f.engine.rotate(token, key, mint).await
}

async fn rotate_ok(
    f: &Fixture,
    token: &str,
    key: Option<&str>,
    what: &str,
) -> Result<Rotation, ConformanceError> {
    rotate(f, token, key).await.step(what)
}

async fn session_revoked(f: &Fixture, family: &FamilyId) -> Result<bool, ConformanceError> {
    let token = TokenRef::from_parts(
        None,
        Some(family.as_str()),
        None,
        None,
        UnixTime::from_secs(4_000_000_000),
    )
    .step("the family id as a StoreId")?;
    Ok(f.revocation
        .check(&token)
        .await
        .step("RevocationStore::check")?
        .is_revoked())
}

async fn advance(clock: &dyn TestClock, d: Duration) {
    clock.advance(d.saturating_add(clock.tolerance())).await;
}

fn join_error(e: tokio::task::JoinError) -> ConformanceError {
    let message = if e.is_panic() {
        let payload: Box<dyn Any + Send> = e.into_panic();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        format!("a spawned task panicked: {text}")
    } else {
        format!("a spawned task did not finish: {e}")
    };
    ConformanceError { message }
}

// ---- cases -------------------------------------------------------------------------------

/// A login yields a family and a `twr_` token; each rotation yields a new token that works,
/// with the family's sub and id; "your devices" lists the family with its last use.
pub async fn issue_and_rotate(env: RefreshEnv) -> CaseResult {
    let f = fixture(env);
    let login = f.engine.issue("alice").await.step("issue")?;
    assert!(
        login
            .refresh_token
            .expose()
            .starts_with(crate::TOKEN_PREFIX)
    );
    assert_eq!(login.refresh_token.family_id(), &login.family_id);
    let listed = f.engine.families("alice").await.step("families")?;
    assert_eq!(listed.len(), 1);
    let created = listed.first().map(|fam| (fam.id.clone(), fam.created));
    assert_eq!(created.as_ref().map(|c| &c.0), Some(&login.family_id));

    let mut token = login.refresh_token.expose().to_owned();
    for i in 0..5 {
        f.clock.advance(Duration::from_millis(10)).await;
        let r = rotate_ok(&f, &token, None, &format!("rotation {i}")).await?;
        assert_eq!(r.kind, RotationKind::Rotated, "rotation {i}");
        assert_eq!(r.family_id, login.family_id);
        assert_eq!(r.sub, "alice");
        assert!(
            r.access_token.contains(login.family_id.as_str()),
            "minted for the family"
        );
        assert_ne!(r.refresh_token.expose(), token, "a new token each time");
        token = r.refresh_token.expose().to_owned();
    }
    let listed = f.engine.families("alice").await.step("families")?;
    let fam = listed.first().map(|fam| (fam.created, fam.last_used));
    let (created_at, last_used) = fam.unwrap_or((UnixTime::EPOCH, UnixTime::EPOCH));
    assert!(last_used > created_at, "last use moves with rotations");
    assert!(
        f.engine
            .families("bob")
            .await
            .step("families(bob)")?
            .is_empty()
    );
    assert!(!session_revoked(&f, &login.family_id).await?);
    Ok(())
}

/// 100 concurrent rotations of the same token all succeed and return one identical
/// successor, which then rotates normally.
pub async fn concurrent_rotations_share_one_successor(env: RefreshEnv) -> CaseResult {
    let f = Arc::new(fixture(env));
    let login = f.engine.issue("alice").await.step("issue")?;
    let token = login.refresh_token.expose().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let f = Arc::clone(&f);
        let token = token.clone();
        tasks.spawn(async move { rotate(&f, &token, None).await });
    }
    let mut successors = Vec::new();
    let mut rotated = 0;
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(join_error)?.step("a concurrent rotation")?;
        if r.kind == RotationKind::Rotated {
            rotated += 1;
        }
        successors.push(r.refresh_token.expose().to_owned());
    }
    assert_eq!(successors.len(), 100);
    assert_eq!(
        rotated, 1,
        "exactly one request rotates, the others get grace"
    );
    successors.dedup();
    assert_eq!(successors.len(), 1, "every request got the same successor");
    let next = successors.first().cloned().unwrap_or_default();
    let r = rotate_ok(&f, &next, None, "rotating the shared successor").await?;
    assert_eq!(r.kind, RotationKind::Rotated);
    Ok(())
}

/// The predecessor presented after the grace window is reuse: the family is revoked, its
/// newest token is dead, and its `sid` is revoked in the `RevocationStore`.
pub async fn reuse_after_window_revokes_family(env: RefreshEnv) -> CaseResult {
    let f = fixture(env);
    let login = f.engine.issue("alice").await.step("issue")?;
    let first = login.refresh_token.expose().to_owned();
    let r1 = rotate_ok(&f, &first, None, "rotation").await?;
    advance(&*f.clock, GRACE).await;

    let reused = rotate(&f, &first, None).await;
    assert!(
        matches!(&reused, Err(RefreshError::Reused(report))
            if report.family_id == login.family_id
                && report.sub == "alice"
                && report.kind == crate::ReuseKind::PredecessorAfterWindow
                && report.session_revocation_error.is_none()),
        "the predecessor after the window must be Reused: {reused:?}"
    );
    let newest = rotate(&f, r1.refresh_token.expose(), None).await;
    assert!(
        matches!(newest, Err(RefreshError::Revoked { .. })),
        "the newest token of a reused family is dead: {newest:?}"
    );
    assert!(
        session_revoked(&f, &login.family_id).await?,
        "the sid is revoked"
    );
    assert!(
        f.engine
            .families("alice")
            .await
            .step("families")?
            .is_empty()
    );
    Ok(())
}

/// A grandparent, even within the grace window, is reuse.
pub async fn grandparent_within_window_is_reuse(env: RefreshEnv) -> CaseResult {
    let f = fixture(env);
    let login = f.engine.issue("alice").await.step("issue")?;
    let a = login.refresh_token.expose().to_owned();
    let b = rotate_ok(&f, &a, None, "rotation a").await?;
    let c = rotate_ok(&f, b.refresh_token.expose(), None, "rotation b").await?;
    let result = rotate(&f, &a, None).await;
    assert!(
        matches!(&result, Err(RefreshError::Reused(report))
            if report.kind == crate::ReuseKind::OlderToken),
        "a grandparent is Reused (an older token): {result:?}"
    );
    let newest = rotate(&f, c.refresh_token.expose(), None).await;
    assert!(
        matches!(newest, Err(RefreshError::Revoked { .. })),
        "{newest:?}"
    );
    assert!(session_revoked(&f, &login.family_id).await?);
    Ok(())
}

/// Rotations racing with the revocation of their family never leave a live successor: every
/// token handed out is rejected once the revocation has returned.
pub async fn rotation_racing_revocation_leaves_nothing_live(env: RefreshEnv) -> CaseResult {
    let f = Arc::new(fixture(env));
    for round in 0..10 {
        let login = f.engine.issue("alice").await.step("issue")?;
        let token = login.refresh_token.expose().to_owned();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let f = Arc::clone(&f);
            let token = token.clone();
            tasks.spawn(async move { rotate(&f, &token, None).await.map(Some) });
        }
        let revoker = Arc::clone(&f);
        let id = login.family_id.clone();
        tasks.spawn(async move { revoker.engine.revoke_family(&id).await.map(|_| None) });
        let mut handed_out = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let outcome = joined.map_err(join_error)?;
            assert!(
                matches!(outcome, Ok(_) | Err(RefreshError::Revoked { .. })),
                "round {round}: unexpected outcome {outcome:?}"
            );
            if let Ok(Some(r)) = outcome {
                handed_out.push(r.refresh_token.expose().to_owned());
            }
        }
        for token in handed_out {
            let r = rotate(&f, &token, None).await;
            assert!(
                matches!(r, Err(RefreshError::Revoked { .. })),
                "round {round}: a successor survived the revocation: {r:?}"
            );
        }
        assert!(session_revoked(&f, &login.family_id).await?);
    }
    Ok(())
}

/// The same token and idempotency key within the window, once the rotation recorded its
/// response, get the identical response; a replay racing before the record is written gets
/// the grace behaviour (same refresh token, new access token); a different key (or none)
/// gets the grace behaviour; invalid keys are refused up front.
pub async fn idempotency_replay_and_grace(env: RefreshEnv) -> CaseResult {
    let counting = Arc::new(CountingStore::new(Arc::clone(&env.store)));
    let config = config(&env);
    let f = fixture_with(env, counting.clone(), config);
    let login = f.engine.issue("alice").await.step("issue")?;
    let a = login.refresh_token.expose().to_owned();

    for bad in [
        String::new(),
        "k".repeat(crate::MAX_IDEMPOTENCY_KEY_LEN + 1),
    ] {
        let r = rotate(&f, &a, Some(&bad)).await;
        assert!(
            matches!(r, Err(RefreshError::InvalidIdempotencyKey)),
            "{r:?}"
        );
    }

    counting.reset();
    let first = rotate_ok(&f, &a, Some("key-1"), "rotation with key-1").await?;
    assert_eq!(first.kind, RotationKind::Rotated);
    assert_eq!(
        counting.counts(),
        (1, 1),
        "a keyed rotation is rotate + record_response"
    );
    assert!(
        counting.recorded.load(Ordering::SeqCst) == 1,
        "the response was recorded"
    );
    f.clock.advance(Duration::from_millis(100)).await;
    let replay = rotate_ok(&f, &a, Some("key-1"), "replay with key-1").await?;
    assert_eq!(replay.kind, RotationKind::Replayed);
    assert_eq!(replay.refresh_token, first.refresh_token);
    assert_eq!(
        replay.access_token, first.access_token,
        "the identical access token"
    );
    assert_eq!(replay.family_id, first.family_id);

    let other = rotate_ok(&f, &a, Some("key-2"), "another key").await?;
    assert_eq!(other.kind, RotationKind::Grace);
    assert_eq!(other.refresh_token, first.refresh_token);
    assert_ne!(
        other.access_token, first.access_token,
        "a fresh access token"
    );
    let none = rotate_ok(&f, &a, None, "no key").await?;
    assert_eq!(none.kind, RotationKind::Grace);
    assert_eq!(none.refresh_token, first.refresh_token);

    // A key never stored gives nothing away for a token rotated without one.
    let b = first.refresh_token.expose().to_owned();
    let c = rotate_ok(&f, &b, None, "rotation without a key").await?;
    let keyed = rotate_ok(&f, &b, Some("key-3"), "grace with a key").await?;
    assert_eq!(keyed.kind, RotationKind::Grace);
    assert_eq!(keyed.refresh_token, c.refresh_token);

    // Only the rotating request's key, and only for the family's previous token, can record
    // a response; a record is written once.
    let presented_b = RefreshToken::parse(&b)
        .ok_or("not a token")
        .step("parse b")?;
    let forged = IdempotencyRecord::new(
        presented_b.idempotency_key_hash("key-3"),
        crate::Sealed(vec![0; 64]),
    );
    let wrote = counting
        .record_response(&login.family_id, &presented_b.hash(), forged, f.clock.now())
        .await
        .step("record_response for a key the rotation did not carry")?;
    assert!(!wrote, "no record for a key the rotation did not store");
    let presented_a = RefreshToken::parse(&a)
        .ok_or("not a token")
        .step("parse a")?;
    let stale = IdempotencyRecord::new(
        presented_a.idempotency_key_hash("key-1"),
        crate::Sealed(vec![0; 64]),
    );
    let wrote = counting
        .record_response(&login.family_id, &presented_a.hash(), stale, f.clock.now())
        .await
        .step("record_response for a grandparent")?;
    assert!(
        !wrote,
        "no record once the token is no longer the previous one"
    );

    // A replay racing before the response is recorded: the grace behaviour.
    let d = c.refresh_token.expose().to_owned();
    counting.skip_record.store(true, Ordering::SeqCst);
    let unrecorded = rotate_ok(&f, &d, Some("key-4"), "rotation whose record is late").await?;
    assert_eq!(unrecorded.kind, RotationKind::Rotated);
    let early = rotate_ok(&f, &d, Some("key-4"), "replay before the record").await?;
    assert_eq!(early.kind, RotationKind::Grace);
    assert_eq!(early.refresh_token, unrecorded.refresh_token);
    assert_ne!(early.access_token, unrecorded.access_token);
    counting.skip_record.store(false, Ordering::SeqCst);
    let presented_d = RefreshToken::parse(&d)
        .ok_or("not a token")
        .step("parse d")?;
    let wrote = counting
        .record_response(
            &login.family_id,
            &presented_d.hash(),
            IdempotencyRecord::new(
                presented_d.idempotency_key_hash("key-4"),
                crate::Sealed(vec![0; 64]),
            ),
            f.clock.now(),
        )
        .await
        .step("late record_response")?;
    assert!(wrote, "the late record is accepted for the rotating key");
    let wrote = counting
        .record_response(
            &login.family_id,
            &presented_d.hash(),
            IdempotencyRecord::new(
                presented_d.idempotency_key_hash("key-4"),
                crate::Sealed(vec![1; 64]),
            ),
            f.clock.now(),
        )
        .await
        .step("second record_response")?;
    assert!(!wrote, "a response is recorded once");

    // After the window the same key does not help: reuse.
    advance(&*f.clock, GRACE).await;
    let late = rotate(&f, &b, Some("key-3")).await;
    assert!(matches!(late, Err(RefreshError::Reused(_))), "{late:?}");
    Ok(())
}

/// Counts the engine's store calls; can drop `record_response` (a replay racing the record).
struct CountingStore {
    inner: Arc<dyn RefreshStore>,
    rotates: AtomicU64,
    records: AtomicU64,
    others: AtomicU64,
    recorded: AtomicU64,
    skip_record: AtomicBool,
}

impl CountingStore {
    fn new(inner: Arc<dyn RefreshStore>) -> Self {
        CountingStore {
            inner,
            rotates: AtomicU64::new(0),
            records: AtomicU64::new(0),
            others: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            skip_record: AtomicBool::new(false),
        }
    }

    fn reset(&self) {
        for n in [&self.rotates, &self.records, &self.others, &self.recorded] {
            n.store(0, Ordering::SeqCst);
        }
    }

    /// `(rotate, record_response)` calls since the last reset; panics if any other call
    /// was made.
    fn counts(&self) -> (u64, u64) {
        assert_eq!(
            self.others.load(Ordering::SeqCst),
            0,
            "a rotation called the store for something besides rotate/record_response"
        );
        (
            self.rotates.load(Ordering::SeqCst),
            self.records.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl RefreshStore for CountingStore {
    async fn create(&self, family: NewFamily) -> Result<(), StoreError> {
        self.others.fetch_add(1, Ordering::SeqCst);
        self.inner.create(family).await
    }
    async fn get(&self, id: &FamilyId, now: UnixTime) -> Result<Option<FamilyInfo>, StoreError> {
        self.others.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id, now).await
    }
    async fn rotate(&self, request: RotationRequest) -> Result<RotationResult, StoreError> {
        self.rotates.fetch_add(1, Ordering::SeqCst);
        self.inner.rotate(request).await
    }
    async fn record_response(
        &self,
        id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.records.fetch_add(1, Ordering::SeqCst);
        if self.skip_record.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let wrote = self
            .inner
            .record_response(id, presented, record, now)
            .await?;
        if wrote {
            self.recorded.fetch_add(1, Ordering::SeqCst);
        }
        Ok(wrote)
    }
    async fn revoke(&self, id: &FamilyId, now: UnixTime) -> Result<Option<FamilyInfo>, StoreError> {
        self.others.fetch_add(1, Ordering::SeqCst);
        self.inner.revoke(id, now).await
    }
    async fn families_of(&self, sub: &str, now: UnixTime) -> Result<Vec<FamilyInfo>, StoreError> {
        self.others.fetch_add(1, Ordering::SeqCst);
        self.inner.families_of(sub, now).await
    }
}

/// A rotation without an idempotency key is exactly one store call (`rotate`, which also
/// reports `sub`), whether it rotates or gets the grace successor; a replay is one call too,
/// and only a winning keyed rotation adds `record_response`.
pub async fn one_store_call_per_rotation(env: RefreshEnv) -> CaseResult {
    let counting = Arc::new(CountingStore::new(Arc::clone(&env.store)));
    let config = config(&env);
    let f = fixture_with(env, counting.clone(), config);
    let login = f.engine.issue("dave").await.step("issue")?;
    let mut token = login.refresh_token.expose().to_owned();
    for i in 0..5 {
        counting.reset();
        let r = rotate_ok(&f, &token, None, "rotation").await?;
        assert_eq!(r.kind, RotationKind::Rotated);
        assert_eq!(r.sub, "dave", "sub comes from the rotation itself");
        assert!(
            r.access_token.contains("dave"),
            "minted for the family's sub"
        );
        assert_eq!(counting.counts(), (1, 0), "rotation {i}: one store call");
        counting.reset();
        let g = rotate_ok(&f, &token, None, "grace").await?;
        assert_eq!(g.kind, RotationKind::Grace);
        assert_eq!(g.refresh_token, r.refresh_token);
        assert_eq!(counting.counts(), (1, 0), "grace {i}: one store call");
        token = r.refresh_token.expose().to_owned();
    }
    counting.reset();
    let keyed = rotate_ok(&f, &token, Some("k"), "keyed rotation").await?;
    assert_eq!(keyed.kind, RotationKind::Rotated);
    assert_eq!(counting.counts(), (1, 1));
    counting.reset();
    let replay = rotate_ok(&f, &token, Some("k"), "replay").await?;
    assert_eq!(replay.kind, RotationKind::Replayed);
    assert_eq!(counting.counts(), (1, 0), "a replay is one store call");
    counting.reset();
    let r = rotate(&f, "twr_not-a-token", None).await;
    assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    assert_eq!(
        counting.counts(),
        (0, 0),
        "a malformed token costs no store call"
    );
    Ok(())
}

fn expiry_config(env: &RefreshEnv, absolute: Duration, idle: Duration) -> RefreshConfig {
    config(env).absolute_lifetime(absolute).idle_timeout(idle)
}

/// A family dies at its absolute lifetime, however often it rotates.
pub async fn absolute_expiry(env: RefreshEnv) -> CaseResult {
    let absolute = Duration::from_secs(3);
    let config = expiry_config(&env, absolute, Duration::from_secs(2));
    let store = Arc::clone(&env.store);
    let f = fixture_with(env, store, config);
    let login = f.engine.issue("alice").await.step("issue")?;
    let mut token = login.refresh_token.expose().to_owned();
    for i in 0..4 {
        f.clock.advance(Duration::from_millis(600)).await;
        token = rotate_ok(&f, &token, None, &format!("rotation {i} before expiry"))
            .await?
            .refresh_token
            .expose()
            .to_owned();
    }
    // 2.4 s + tolerance so far; the absolute lifetime ends at 3 s.
    f.clock.advance(Duration::from_millis(600)).await;
    advance(&*f.clock, Duration::ZERO).await;
    let r = rotate(&f, &token, None).await;
    assert!(
        matches!(r, Err(RefreshError::Invalid)),
        "past the absolute lifetime: {r:?}"
    );
    assert!(
        f.engine
            .families("alice")
            .await
            .step("families")?
            .is_empty()
    );
    Ok(())
}

/// A family dies after its idle timeout without a rotation; each rotation restarts it.
pub async fn idle_expiry(env: RefreshEnv) -> CaseResult {
    let idle = Duration::from_secs(1);
    let config = expiry_config(&env, Duration::from_secs(3600), idle);
    let store = Arc::clone(&env.store);
    let f = fixture_with(env, store, config);
    let tolerance = f.clock.tolerance();
    let login = f.engine.issue("alice").await.step("issue")?;
    let mut token = login.refresh_token.expose().to_owned();
    let step = Duration::from_millis(700).saturating_sub(tolerance);
    for i in 0..3 {
        f.clock.advance(step).await;
        token = rotate_ok(
            &f,
            &token,
            None,
            &format!("rotation {i} within the idle timeout"),
        )
        .await?
        .refresh_token
        .expose()
        .to_owned();
    }
    advance(&*f.clock, idle).await;
    let r = rotate(&f, &token, None).await;
    assert!(
        matches!(r, Err(RefreshError::Invalid)),
        "after the idle timeout: {r:?}"
    );
    assert!(
        f.engine
            .families("alice")
            .await
            .step("families")?
            .is_empty()
    );
    Ok(())
}

/// How the failing wrapper behaves.
const HEALTHY: u8 = 0;
const DOWN: u8 = 1;
/// `rotate` is applied by the inner store, then the answer is "lost".
const LOSE_ROTATE_REPLY: u8 = 2;

struct FailingStore {
    inner: Arc<dyn RefreshStore>,
    mode: AtomicU8,
}

impl FailingStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.mode.load(Ordering::SeqCst) == DOWN {
            return Err(StoreError::Unavailable {
                message: "conformance: simulated outage".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl RefreshStore for FailingStore {
    async fn create(&self, family: NewFamily) -> Result<(), StoreError> {
        self.check()?;
        self.inner.create(family).await
    }
    async fn get(&self, id: &FamilyId, now: UnixTime) -> Result<Option<FamilyInfo>, StoreError> {
        self.check()?;
        self.inner.get(id, now).await
    }
    async fn rotate(&self, request: RotationRequest) -> Result<RotationResult, StoreError> {
        self.check()?;
        let result = self.inner.rotate(request).await?;
        if self.mode.load(Ordering::SeqCst) == LOSE_ROTATE_REPLY {
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
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.record_response(id, presented, record, now).await
    }
    async fn revoke(&self, id: &FamilyId, now: UnixTime) -> Result<Option<FamilyInfo>, StoreError> {
        self.check()?;
        self.inner.revoke(id, now).await
    }
    async fn families_of(&self, sub: &str, now: UnixTime) -> Result<Vec<FamilyInfo>, StoreError> {
        self.check()?;
        self.inner.families_of(sub, now).await
    }
}

/// A store error is "try again": never reuse, never a revocation. A rotation whose reply
/// was lost is retried within the window and gets the grace successor.
pub async fn store_errors_are_never_reuse(env: RefreshEnv) -> CaseResult {
    let failing = Arc::new(FailingStore {
        inner: Arc::clone(&env.store),
        mode: AtomicU8::new(HEALTHY),
    });
    let config = config(&env);
    let f = fixture_with(env, failing.clone(), config);
    let login = f.engine.issue("alice").await.step("issue")?;
    let a = login.refresh_token.expose().to_owned();
    let b = rotate_ok(&f, &a, None, "rotation").await?;

    failing.mode.store(DOWN, Ordering::SeqCst);
    advance(&*f.clock, GRACE).await;
    for token in [a.as_str(), b.refresh_token.expose()] {
        let r = rotate(&f, token, None).await;
        assert!(
            matches!(&r, Err(e @ RefreshError::Store(_)) if e.is_transient()),
            "an outage is a transient store error, not reuse: {r:?}"
        );
    }
    let r = f.engine.revoke_family(&login.family_id).await;
    assert!(matches!(r, Err(RefreshError::Store(_))), "{r:?}");
    assert!(
        !session_revoked(&f, &login.family_id).await?,
        "nothing revoked"
    );

    failing.mode.store(HEALTHY, Ordering::SeqCst);
    let c = rotate_ok(&f, b.refresh_token.expose(), None, "after the outage").await?;
    assert_eq!(
        c.kind,
        RotationKind::Rotated,
        "the family survived the outage"
    );

    failing.mode.store(LOSE_ROTATE_REPLY, Ordering::SeqCst);
    let lost = rotate(&f, c.refresh_token.expose(), None).await;
    assert!(matches!(lost, Err(RefreshError::Store(_))), "{lost:?}");
    failing.mode.store(HEALTHY, Ordering::SeqCst);
    let retry = rotate_ok(
        &f,
        c.refresh_token.expose(),
        None,
        "retry after a lost reply",
    )
    .await?;
    assert_eq!(retry.kind, RotationKind::Grace);
    let next = rotate_ok(
        &f,
        retry.refresh_token.expose(),
        None,
        "the retried successor",
    )
    .await?;
    assert_eq!(next.kind, RotationKind::Rotated);
    assert!(!session_revoked(&f, &login.family_id).await?);
    Ok(())
}

/// No stored byte contains a token (as a string or decoded), an access token handed out
/// with an idempotency key, or the idempotency key.
pub async fn no_plaintext_at_rest(env: RefreshEnv) -> CaseResult {
    let f = fixture(env);
    let login = f.engine.issue("alice").await.step("issue")?;
    let a = login.refresh_token.expose().to_owned();
    let b = rotate_ok(&f, &a, Some("idem-key-plain"), "rotation with a key").await?;
    let grace = rotate_ok(&f, &a, None, "grace").await?;
    assert_eq!(grace.refresh_token, b.refresh_token);
    let login2 = f.engine.issue("alice").await.step("second issue")?;

    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for token in [
        a.as_str(),
        b.refresh_token.expose(),
        login2.refresh_token.expose(),
    ] {
        secrets.push(token.as_bytes().to_vec());
        let body = token.strip_prefix(crate::TOKEN_PREFIX).unwrap_or(token);
        secrets.push(body.as_bytes().to_vec());
        let raw = URL_SAFE_NO_PAD.decode(body).step("decoding a token")?;
        // The 32-byte secret after the 16-byte family id.
        secrets.push(raw.get(16..).map(<[u8]>::to_vec).unwrap_or(raw));
    }
    secrets.push(b.access_token.as_bytes().to_vec());
    secrets.push(b"idem-key-plain".to_vec());

    let stored = f.stored_bytes.stored_bytes().await.step("stored_bytes")?;
    assert!(!stored.is_empty(), "the store reports what it holds");
    for blob in &stored {
        for secret in &secrets {
            assert!(
                !blob.windows(secret.len()).any(|w| w == secret.as_slice()),
                "a stored value contains a token, access token or idempotency key in plaintext"
            );
        }
    }
    Ok(())
}

/// Malformed, unknown and forged tokens are `Invalid`; a forged token naming a real family
/// does not revoke it.
pub async fn unknown_and_forged_tokens_are_invalid(env: RefreshEnv) -> CaseResult {
    let f = fixture(env);
    let login = f.engine.issue("alice").await.step("issue")?;
    let rng = SystemRandom::new();
    let forged = RefreshToken::generate(&rng, &login.family_id).step("forging")?;
    let unknown_family = FamilyId::generate(&rng).step("family id")?;
    let unknown = RefreshToken::generate(&rng, &unknown_family).step("token")?;
    let valid = login.refresh_token.expose();
    let cases = [
        String::new(),
        "twr_".into(),
        valid.replacen("twr_", "twx_", 1),
        format!("{valid}A"),
        valid.get(..valid.len() - 1).unwrap_or_default().to_owned(),
        valid.replacen('_', "+", 2),
        "twr_".to_owned() + &"é".repeat(32),
        forged.expose().to_owned(),
        unknown.expose().to_owned(),
    ];
    for (i, token) in cases.iter().enumerate() {
        let r = rotate(&f, token, None).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "case {i}: {r:?}");
    }
    let r = rotate_ok(&f, valid, None, "the real token after forgeries").await?;
    assert_eq!(r.kind, RotationKind::Rotated);
    assert!(!session_revoked(&f, &login.family_id).await?);
    Ok(())
}

/// Revoking a family kills its tokens and its sid; revoking a subject revokes all its
/// families and no one else's.
pub async fn revoke_family_and_subject(env: RefreshEnv) -> CaseResult {
    let f = fixture(env);
    let phone = f.engine.issue("alice").await.step("issue")?;
    let laptop = f.engine.issue("alice").await.step("issue")?;
    let tablet = f.engine.issue("alice").await.step("issue")?;
    let bobs = f.engine.issue("bob").await.step("issue")?;
    assert_eq!(f.engine.families("alice").await.step("families")?.len(), 3);

    assert!(
        f.engine
            .revoke_family(&phone.family_id)
            .await
            .step("revoke_family")?
    );
    let r = rotate(&f, phone.refresh_token.expose(), None).await;
    assert!(matches!(r, Err(RefreshError::Revoked { .. })), "{r:?}");
    assert!(session_revoked(&f, &phone.family_id).await?);
    assert!(!session_revoked(&f, &laptop.family_id).await?);
    let unknown = FamilyId::generate(&SystemRandom::new()).step("family id")?;
    assert!(
        !f.engine
            .revoke_family(&unknown)
            .await
            .step("revoke unknown")?
    );

    let devices = f.engine.families("alice").await.step("families")?;
    let ids: Vec<&FamilyId> = devices.iter().map(|d| &d.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&&laptop.family_id) && ids.contains(&&tablet.family_id));

    assert_eq!(
        f.engine
            .revoke_subject("alice")
            .await
            .step("revoke_subject")?,
        2
    );
    for fam in [&laptop, &tablet] {
        let r = rotate(&f, fam.refresh_token.expose(), None).await;
        assert!(matches!(r, Err(RefreshError::Revoked { .. })), "{r:?}");
        assert!(session_revoked(&f, &fam.family_id).await?);
    }
    assert!(
        f.engine
            .families("alice")
            .await
            .step("families")?
            .is_empty()
    );
    let r = rotate_ok(&f, bobs.refresh_token.expose(), None, "bob is untouched").await?;
    assert_eq!(r.kind, RotationKind::Rotated);
    assert_eq!(
        f.engine.families("bob").await.step("families(bob)")?.len(),
        1
    );
    Ok(())
}

// ---- store-level cases (the contract of `RefreshStore::rotate`, without the engine) -------

struct Chain {
    rng: SystemRandom,
    family: FamilyId,
}

impl Chain {
    fn token(&self) -> Result<RefreshToken, ConformanceError> {
        RefreshToken::generate(&self.rng, &self.family).step("generating a token")
    }

    fn request(
        &self,
        presented: &RefreshToken,
        successor: &RefreshToken,
        now: UnixTime,
    ) -> RotationRequest {
        RotationRequest {
            family_id: self.family.clone(),
            presented: presented.hash(),
            successor: successor.hash(),
            sealed_successor: crate::Sealed(successor.hash().as_bytes().to_vec()),
            idempotency_key: None,
            now,
            grace: GRACE,
        }
    }
}

async fn new_chain(
    store: &dyn RefreshStore,
    now: UnixTime,
) -> Result<(Chain, RefreshToken), ConformanceError> {
    let rng = SystemRandom::new();
    let family = FamilyId::generate(&rng).step("family id")?;
    let chain = Chain { rng, family };
    let first = chain.token()?;
    store
        .create(NewFamily {
            id: chain.family.clone(),
            sub: "carol".into(),
            token_hash: first.hash(),
            created: now,
            absolute_expiry: now.saturating_add(Duration::from_secs(3600)),
            idle_timeout: Duration::from_secs(1800),
        })
        .await
        .step("create")?;
    Ok((chain, first))
}

/// `rotate` classifies in the contract's order: current → `Rotated`; previous within the
/// window → `Grace` with what the rotation stored; an unknown hash → `Invalid` without
/// revoking; an older hash → `Reused` (and the family is revoked); a revoked family →
/// `Revoked`, even for its current token.
pub async fn store_rotate_classifies(env: RefreshEnv) -> CaseResult {
    let store = &*env.store;
    let now = env.clock.now();
    let (chain, a) = new_chain(store, now).await?;
    let b = chain.token()?;
    let c = chain.token()?;
    let d = chain.token()?;

    let r = store
        .rotate(chain.request(&a, &b, now))
        .await
        .step("rotate a")?;
    assert!(
        matches!(&r, RotationResult::Rotated(info) if info.sub == "carol" && !info.revoked),
        "{r:?}"
    );
    let r = store
        .rotate(chain.request(&a, &c, now))
        .await
        .step("rotate a again")?;
    assert!(
        matches!(&r, RotationResult::Grace { sealed_successor, idempotency: None, .. }
            if sealed_successor.as_bytes() == b.hash().as_bytes()),
        "the previous token within the window gets what its rotation stored: {r:?}"
    );
    let unknown = chain.token()?;
    let r = store
        .rotate(chain.request(&unknown, &c, now))
        .await
        .step("rotate unknown")?;
    assert_eq!(r, RotationResult::Invalid);
    let r = store
        .rotate(chain.request(&b, &c, now))
        .await
        .step("rotate b")?;
    assert!(matches!(r, RotationResult::Rotated(_)), "{r:?}");
    let info = store.get(&chain.family, now).await.step("get")?;
    assert!(info.is_some_and(|i| !i.revoked), "nothing revoked so far");

    let r = store
        .rotate(chain.request(&a, &d, now))
        .await
        .step("rotate the grandparent")?;
    assert!(
        matches!(&r, RotationResult::Reused { family, kind: crate::ReuseKind::OlderToken }
            if family.revoked),
        "{r:?}"
    );
    let r = store
        .rotate(chain.request(&c, &d, now))
        .await
        .step("rotate the current token")?;
    assert!(
        matches!(r, RotationResult::Revoked(_)),
        "a revoked family never rotates: {r:?}"
    );
    let info = store.get(&chain.family, now).await.step("get")?;
    assert!(info.is_some_and(|i| i.revoked));
    assert!(
        store
            .families_of("carol", now)
            .await
            .step("families_of")?
            .is_empty()
    );

    let other = FamilyId::generate(&chain.rng).step("family id")?;
    let missing = Chain {
        rng: SystemRandom::new(),
        family: other,
    };
    let r = store
        .rotate(missing.request(&a, &b, now))
        .await
        .step("rotate a missing family")?;
    assert_eq!(r, RotationResult::Invalid);
    Ok(())
}

/// Concurrent `rotate`s and a `revoke` of the same family, straight on the store: once the
/// revoke has returned, no successor any of them installed rotates.
pub async fn store_rotate_races_revoke(env: RefreshEnv) -> CaseResult {
    let store = Arc::clone(&env.store);
    for round in 0..10 {
        let now = env.clock.now();
        let (chain, first) = new_chain(&*store, now).await?;
        let chain = Arc::new(chain);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (store, chain, first) = (Arc::clone(&store), Arc::clone(&chain), first.clone());
            tasks.spawn(async move {
                let next = chain.token()?;
                let r = store
                    .rotate(chain.request(&first, &next, now))
                    .await
                    .step("rotate")?;
                Ok::<_, ConformanceError>(matches!(r, RotationResult::Rotated(_)).then_some(next))
            });
        }
        let revoker = Arc::clone(&store);
        let id = chain.family.clone();
        tasks.spawn(async move {
            revoker.revoke(&id, now).await.step("revoke")?;
            Ok(None)
        });
        let mut installed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            installed.extend(joined.map_err(join_error)??);
        }
        assert!(
            installed.len() <= 1,
            "round {round}: at most one rotation wins"
        );
        for token in installed {
            let next = chain.token()?;
            let r = store
                .rotate(chain.request(&token, &next, now))
                .await
                .step("rotate")?;
            assert!(
                matches!(r, RotationResult::Revoked(_)),
                "round {round}: a successor is live in a revoked family: {r:?}"
            );
        }
    }
    Ok(())
}
