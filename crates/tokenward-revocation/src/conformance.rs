//! The conformance suite every [`RevocationStore`] backend runs: tokenward's in-memory and
//! Redis stores, and yours.
//!
//! Each case is a `pub async fn(store, clock)` that exercises one part of the
//! [contract](RevocationStore#contract-for-implementations) and fails with a message saying
//! what the backend got wrong: assertions on statuses and error *kinds* panic, unexpected
//! store errors come back as a [`ConformanceError`] naming the call that failed. [`CASES`]
//! lists them all. Every case needs a **fresh, empty store** (a networked backend: a new
//! random key prefix per case), because cases reuse ids.
//!
//! Time comes from a [`TestClock`]: a `ManualClock` the store also reads (time jumps, no
//! waiting), or [`RealClock`] for backends that keep their own time, such as Redis TTLs (the
//! cases then sleep; no case waits much more than a second).
//!
//! # Running the suite
//!
//! [`revocation_conformance_tests!`](crate::revocation_conformance_tests) expands to one
//! `#[tokio::test]` per case. It takes an async function (or closure) returning a fresh
//! `(Arc<dyn RevocationStore>, Arc<dyn TestClock>)`, and needs, in the crate that invokes it:
//!
//! ```toml
//! [dev-dependencies]
//! tokenward-revocation = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use tokenward_core::{ManualClock, UnixTime};
//! use tokenward_revocation::conformance::TestClock;
//! use tokenward_revocation::{MemoryRevocationStore, MemoryStoreConfig, RevocationStore};
//!
//! async fn make_env() -> (Arc<dyn RevocationStore>, Arc<dyn TestClock>) {
//!     let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//!     let store = MemoryRevocationStore::with_config(
//!         MemoryStoreConfig::new().clock(Arc::new(clock.clone())),
//!     );
//!     (Arc::new(store), Arc::new(clock))
//! }
//!
//! // In a test file (tests/conformance.rs): one #[tokio::test] per case. Wrap it in a
//! // `mod` to run the suite more than once in a file (e.g. for two configurations).
//! tokenward_revocation::revocation_conformance_tests!(make_env);
//! # fn main() {
//! #     // A single case can also be called directly.
//! #     let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! #     rt.block_on(async {
//! #         let (store, clock) = make_env().await;
//! #         tokenward_revocation::conformance::precedence(store, clock).await.unwrap();
//! #     });
//! # }
//! ```
//!
//! With a backend that keeps its own time, return `Arc::new(RealClock::new())` as the clock
//! (and do not pause tokio's clock in those tests: the store would not notice).

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::UnixTime;
use tokenward_core::{Clock, ManualClock, StoreError, StoreErrorKind, SystemClock, TokenRef};

use crate::{MAX_ID_LEN, RevocationStatus, RevocationStore, RevokedBy};

mod model;

pub use model::{MODEL_CASES_EXACT, MODEL_CASES_REAL, check_model, model_based};

/// The names of all cases, in the order the macro expands them. Each is a function of this
/// module.
pub const CASES: &[&str] = crate::__revocation_conformance_cases!(names);

/// Expands to one `#[tokio::test]` per conformance case (see the
/// [`conformance`](crate::conformance) module for an example and the dependencies it needs).
///
/// `$make_env` is an async function or closure returning a fresh
/// `(Arc<dyn RevocationStore>, Arc<dyn TestClock>)`; it is called once per case.
#[macro_export]
macro_rules! revocation_conformance_tests {
    ($make_env:expr $(,)?) => {
        $crate::__revocation_conformance_cases!(tests $make_env);
    };
}

// The list of cases, expanded by `__revocation_conformance_expand` into tests or into the
// `CASES` names: the one place a new case is listed (besides its function).
#[doc(hidden)]
#[macro_export]
macro_rules! __revocation_conformance_cases {
    ($($mode:tt)*) => {
        $crate::__revocation_conformance_expand! {
            [$($mode)*]
            revoke_token_then_check
            unknown_tokens_are_active
            idempotent_revokes
            session_rule
            subject_rule
            subject_cutoff_exactly_at_boundary
            later_cutoff_wins
            expiry
            past_until_is_a_noop
            invalid_ids_are_rejected
            ids_are_opaque_and_rules_separate
            precedence
            concurrent_revokes_and_checks
            works_behind_arc_dyn
            model_based
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __revocation_conformance_expand {
    ([tests $make_env:expr] $($case:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() -> ::core::result::Result<(), $crate::conformance::ConformanceError> {
                let (store, clock) = ($make_env)().await;
                $crate::conformance::$case(store, clock).await
            }
        )*
    };
    ([names] $($case:ident)*) => {
        &[$(::core::stringify!($case)),*]
    };
}

/// Time as a conformance case sees it.
///
/// Implemented for `ManualClock` (share it with the store: [`advance`](Self::advance) moves
/// the store's time instantly) and [`RealClock`] (wall-clock time; `advance` sleeps).
#[async_trait]
pub trait TestClock: Send + Sync + 'static {
    /// The current time, as the store sees it.
    fn now(&self) -> UnixTime;

    /// Lets at least `d` pass.
    async fn advance(&self, d: Duration);

    /// How far from a deadline a case keeps its checks: one meant to see an entry still live
    /// is made at least this long before its `until`, one meant to see it gone at least this
    /// long after. Covers the time a call takes, clock differences between the test and the
    /// backend, and millisecond rounding. Zero for an exact clock (the default), in which case
    /// the cases check the boundaries exactly: live at `until - 1 ns`, gone at `until`.
    fn tolerance(&self) -> Duration {
        Duration::ZERO
    }
}

#[async_trait]
impl TestClock for ManualClock {
    fn now(&self) -> UnixTime {
        Clock::now(self)
    }

    async fn advance(&self, d: Duration) {
        ManualClock::advance(self, d);
    }
}

/// The system clock, for backends that keep their own time (Redis TTLs): `advance` sleeps
/// with `tokio::time::sleep`, so tokio's clock must not be paused.
#[derive(Debug, Clone, Copy)]
pub struct RealClock {
    tolerance: Duration,
}

impl RealClock {
    /// The default [`tolerance`](TestClock::tolerance): 250 ms.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(250);

    /// A real clock with the [default tolerance](Self::DEFAULT_TOLERANCE).
    pub fn new() -> Self {
        RealClock {
            tolerance: Self::DEFAULT_TOLERANCE,
        }
    }

    /// A real clock with another tolerance (keep it well under a second: entries in the
    /// expiry cases live for one).
    pub fn with_tolerance(tolerance: Duration) -> Self {
        RealClock { tolerance }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl TestClock for RealClock {
    fn now(&self) -> UnixTime {
        SystemClock.now()
    }

    async fn advance(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn tolerance(&self) -> Duration {
        self.tolerance
    }
}

/// A conformance case failed because a store call returned an error, or a spawned task
/// failed (assertion failures panic instead). Says which call failed.
pub struct ConformanceError {
    message: String,
    source: Option<StoreError>,
}

impl ConformanceError {
    /// The store error, if the failure was one.
    pub fn store_error(&self) -> Option<&StoreError> {
        self.source.as_ref()
    }
}

impl fmt::Display for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e} ({:?})", self.message, e.kind()),
            None => f.write_str(&self.message),
        }
    }
}

/// Same as `Display`: this is what a failing `#[tokio::test]` prints.
impl fmt::Debug for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConformanceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What a case returns.
pub type CaseResult = Result<(), ConformanceError>;

/// Names the call a store error came from.
trait Step<T> {
    fn step(self, what: &str) -> Result<T, ConformanceError>;
}

impl<T> Step<T> for Result<T, StoreError> {
    fn step(self, what: &str) -> Result<T, ConformanceError> {
        self.map_err(|e| ConformanceError {
            message: format!("{what} failed"),
            source: Some(e),
        })
    }
}

// ---- helpers -----------------------------------------------------------------------------

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(1);

/// `now`, rounded down to the millisecond: backends may keep times at millisecond precision,
/// so the cases only use millisecond-aligned times.
fn now_ms(clock: &dyn TestClock) -> UnixTime {
    UnixTime::from_millis(clock.now().as_millis())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Lets time pass until `t` (at least).
async fn advance_to(clock: &dyn TestClock, t: UnixTime) {
    let now = clock.now();
    if t > now {
        clock.advance(t.saturating_duration_since(now)).await;
    }
}

/// Just before `until`: by the tolerance, and at least 1 ns.
fn just_before(clock: &dyn TestClock, until: UnixTime) -> UnixTime {
    until.saturating_sub(clock.tolerance().max(Duration::from_nanos(1)))
}

/// Just after `until`: by the tolerance (exactly `until` for an exact clock).
fn just_after(clock: &dyn TestClock, until: UnixTime) -> UnixTime {
    until.saturating_add(clock.tolerance())
}

fn token<'a>(
    jti: Option<&'a str>,
    sid: Option<&'a str>,
    sub: Option<&'a str>,
    iat: Option<UnixTime>,
) -> TokenRef<'a> {
    TokenRef {
        jti,
        sid,
        sub,
        iat,
        exp: UnixTime::from_secs(4_000_000_000),
    }
}

fn by_jti(jti: &str) -> TokenRef<'_> {
    token(Some(jti), None, None, None)
}

fn by_sid(sid: &str) -> TokenRef<'_> {
    token(None, Some(sid), None, None)
}

fn by_sub(sub: &str, iat: Option<UnixTime>) -> TokenRef<'_> {
    token(None, None, Some(sub), iat)
}

const ACTIVE: RevocationStatus = RevocationStatus::Active;
const BY_TOKEN: RevocationStatus = RevocationStatus::Revoked(RevokedBy::Token);
const BY_SESSION: RevocationStatus = RevocationStatus::Revoked(RevokedBy::Session);

fn by_subject(before: UnixTime) -> RevocationStatus {
    RevocationStatus::Revoked(RevokedBy::Subject { before })
}

/// Checks `token` and asserts the status.
async fn expect(
    store: &dyn RevocationStore,
    token: &TokenRef<'_>,
    expected: RevocationStatus,
    why: &str,
) -> CaseResult {
    let got = store
        .check(token)
        .await
        .step(&format!("check({token:?})"))?;
    assert_eq!(got, expected, "{why}: check({token:?})");
    Ok(())
}

/// Asserts that `result` is an error of `kind`.
fn expect_kind<T: fmt::Debug>(result: Result<T, StoreError>, kind: StoreErrorKind, what: &str) {
    assert!(
        matches!(&result, Err(e) if e.kind() == kind),
        "{what}: expected a {kind:?} error, got {result:?}"
    );
}

// ---- cases -------------------------------------------------------------------------------

/// A revoked `jti` is reported as [`RevokedBy::Token`]; other tokens are not affected.
pub async fn revoke_token_then_check(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    store
        .revoke_token("rt-1", until)
        .await
        .step("revoke_token(rt-1)")?;
    let full = token(Some("rt-1"), Some("rt-s"), Some("rt-u"), Some(now));
    expect(store, &full, BY_TOKEN, "a revoked jti").await?;
    expect(store, &by_jti("rt-1"), BY_TOKEN, "a revoked jti alone").await?;
    expect(store, &by_jti("rt-2"), ACTIVE, "another jti").await?;
    let same_session = token(Some("rt-2"), Some("rt-s"), Some("rt-u"), Some(now));
    expect(
        store,
        &same_session,
        ACTIVE,
        "a sibling token (same sid, sub)",
    )
    .await?;
    expect(
        store,
        &token(None, None, None, None),
        ACTIVE,
        "a token without ids",
    )
    .await
}

/// Nothing is revoked in an empty store, nor by unrelated revocations.
pub async fn unknown_tokens_are_active(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let full = token(Some("uk-j"), Some("uk-s"), Some("uk-u"), Some(now));
    expect(store, &full, ACTIVE, "an empty store").await?;
    expect(
        store,
        &token(None, None, None, None),
        ACTIVE,
        "no ids, empty store",
    )
    .await?;
    expect(
        store,
        &token(None, None, None, Some(now)),
        ACTIVE,
        "only iat",
    )
    .await?;

    let until = now.saturating_add(LONG);
    store
        .revoke_token("uk-other-j", until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session("uk-other-s", until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject("uk-other-u", now.saturating_add(secs(1)), until)
        .await
        .step("revoke_subject")?;
    expect(store, &full, ACTIVE, "unrelated revocations").await?;
    expect(
        store,
        &by_sub("uk-u", None),
        ACTIVE,
        "unrelated subject, no iat",
    )
    .await
}

/// Revoking twice is fine, and a second revoke never shortens the first: `until` only grows,
/// for every rule (one wait of about a second).
pub async fn idempotent_revokes(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let short = now.saturating_add(SHORT);
    let long = now.saturating_add(LONG);
    let cutoff = now;
    let iat = now.saturating_sub(secs(10));

    for _ in 0..2 {
        store
            .revoke_token("id-twice", long)
            .await
            .step("revoke_token(id-twice), twice")?;
        store
            .revoke_session("id-twice", long)
            .await
            .step("revoke_session(id-twice), twice")?;
        store
            .revoke_subject("id-twice", cutoff, long)
            .await
            .step("revoke_subject(id-twice), twice")?;
    }
    // Long then short, and short then long: both must end up long.
    for (id, first, second) in [("id-ls", long, short), ("id-sl", short, long)] {
        store.revoke_token(id, first).await.step("revoke_token")?;
        store
            .revoke_token(id, second)
            .await
            .step("revoke_token again")?;
        store
            .revoke_session(id, first)
            .await
            .step("revoke_session")?;
        store
            .revoke_session(id, second)
            .await
            .step("revoke_session again")?;
        store
            .revoke_subject(id, cutoff, first)
            .await
            .step("revoke_subject")?;
        store
            .revoke_subject(id, cutoff, second)
            .await
            .step("revoke_subject again")?;
    }

    advance_to(&*clock, just_after(&*clock, short)).await;
    for id in ["id-twice", "id-ls", "id-sl"] {
        let why = format!("{id}: a later revoke must not shorten an earlier one");
        expect(store, &by_jti(id), BY_TOKEN, &why).await?;
        expect(store, &by_sid(id), BY_SESSION, &why).await?;
        expect(store, &by_sub(id, Some(iat)), by_subject(cutoff), &why).await?;
    }
    Ok(())
}

/// A revoked session revokes every token carrying its `sid`, whatever their `jti`.
pub async fn session_rule(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    store
        .revoke_session("sr-s1", now.saturating_add(LONG))
        .await
        .step("revoke_session(sr-s1)")?;
    let why = "a token of a revoked session";
    expect(store, &by_sid("sr-s1"), BY_SESSION, why).await?;
    let t1 = token(Some("sr-j1"), Some("sr-s1"), Some("sr-u"), Some(now));
    expect(store, &t1, BY_SESSION, why).await?;
    let t2 = token(Some("sr-j2"), Some("sr-s1"), None, None);
    expect(store, &t2, BY_SESSION, why).await?;
    let other = token(Some("sr-j3"), Some("sr-s2"), Some("sr-u"), Some(now));
    expect(store, &other, ACTIVE, "a token of another session").await?;
    let no_sid = token(Some("sr-j4"), None, Some("sr-u"), Some(now));
    expect(store, &no_sid, ACTIVE, "a token without sid").await
}

/// A subject cutoff revokes that subject's tokens issued before it, and those without `iat`;
/// later tokens and other subjects stay active.
pub async fn subject_rule(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let before = now;
    store
        .revoke_subject("sj-alice", before, now.saturating_add(LONG))
        .await
        .step("revoke_subject(sj-alice)")?;
    let old = before.saturating_sub(secs(60));
    let new = before.saturating_add(secs(5));
    expect(
        store,
        &by_sub("sj-alice", Some(old)),
        by_subject(before),
        "iat < before",
    )
    .await?;
    let full = token(Some("sj-j"), Some("sj-s"), Some("sj-alice"), Some(old));
    expect(
        store,
        &full,
        by_subject(before),
        "iat < before, with jti and sid",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-alice", Some(new)),
        ACTIVE,
        "iat after before",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-alice", None),
        by_subject(before),
        "no iat: it cannot prove it is newer",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-bob", Some(old)),
        ACTIVE,
        "another subject",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-bob", None),
        ACTIVE,
        "another subject, no iat",
    )
    .await?;
    expect(
        store,
        &token(Some("sj-j"), None, None, Some(old)),
        ACTIVE,
        "a token without sub",
    )
    .await
}

/// The cutoff is exclusive: `iat == before` is active, a millisecond earlier is revoked. Also
/// the "sign out everywhere" recipe from [`RevocationStore::revoke_subject`].
pub async fn subject_cutoff_exactly_at_boundary(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = clock.now();
    let before = UnixTime::from_secs(now.as_secs());
    let until = before.saturating_add(LONG);
    store
        .revoke_subject("cb-u", before, until)
        .await
        .step("revoke_subject(cb-u)")?;
    let revoked = by_subject(before);
    for (iat, expected, why) in [
        (before, ACTIVE, "iat == before"),
        (before.saturating_add(ms(1)), ACTIVE, "iat == before + 1 ms"),
        (
            before.saturating_add(secs(1)),
            ACTIVE,
            "iat == before + 1 s",
        ),
        (
            before.saturating_sub(ms(1)),
            revoked,
            "iat == before - 1 ms",
        ),
        (
            before.saturating_sub(secs(1)),
            revoked,
            "iat == before - 1 s",
        ),
        (UnixTime::EPOCH, revoked, "iat == 0"),
    ] {
        expect(store, &by_sub("cb-u", Some(iat)), expected, why).await?;
    }

    // Sign out everywhere at `now`: tokens issued in the current second are included.
    let signed_out = UnixTime::from_secs(now.as_secs()).saturating_add(secs(1));
    store
        .revoke_subject("cb-v", signed_out, signed_out.saturating_add(LONG))
        .await
        .step("revoke_subject(cb-v)")?;
    let issued_now = UnixTime::from_secs(now.as_secs());
    expect(
        store,
        &by_sub("cb-v", Some(issued_now)),
        by_subject(signed_out),
        "sign out everywhere includes tokens issued this second",
    )
    .await
}

/// Revoking a subject again keeps the later cutoff and, independently, the later `until`
/// (one wait of about a second).
pub async fn later_cutoff_wins(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let long = now.saturating_add(LONG);
    let early = now;
    let late = now.saturating_add(secs(10));
    let between = now.saturating_add(secs(5));

    store
        .revoke_subject("lc-u", early, long)
        .await
        .step("revoke_subject(early)")?;
    expect(
        store,
        &by_sub("lc-u", Some(between)),
        ACTIVE,
        "issued after the cutoff",
    )
    .await?;
    store
        .revoke_subject("lc-u", late, long)
        .await
        .step("revoke_subject(late)")?;
    let why = "a later cutoff extends the rule";
    expect(store, &by_sub("lc-u", Some(between)), by_subject(late), why).await?;
    store
        .revoke_subject("lc-u", early, long)
        .await
        .step("revoke_subject(early) again")?;
    let why = "an earlier cutoff must not shrink the rule";
    expect(store, &by_sub("lc-u", Some(between)), by_subject(late), why).await?;

    // Later cutoff with the earlier `until`, then earlier cutoff with the later `until`:
    // the rule must keep both maxima.
    let short = now.saturating_add(SHORT);
    store
        .revoke_subject("lc-v", late, short)
        .await
        .step("revoke_subject(late, short)")?;
    store
        .revoke_subject("lc-v", early, long)
        .await
        .step("revoke_subject(early, long)")?;
    advance_to(&*clock, just_after(&*clock, short)).await;
    expect(
        store,
        &by_sub("lc-v", Some(between)),
        by_subject(late),
        "the later cutoff and the later until are both kept",
    )
    .await
}

/// Entries of every rule match until their `until` and stop matching after it. An expired
/// id can be revoked again, from scratch (one wait of about a second).
pub async fn expiry(store: Arc<dyn RevocationStore>, clock: Arc<dyn TestClock>) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(SHORT);
    let cutoff = now.saturating_add(secs(10));
    let iat = now;
    store
        .revoke_token("ex-j", until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session("ex-s", until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject("ex-u", cutoff, until)
        .await
        .step("revoke_subject")?;

    advance_to(&*clock, just_before(&*clock, until)).await;
    let why = "just before until";
    expect(store, &by_jti("ex-j"), BY_TOKEN, why).await?;
    expect(store, &by_sid("ex-s"), BY_SESSION, why).await?;
    expect(store, &by_sub("ex-u", Some(iat)), by_subject(cutoff), why).await?;

    advance_to(&*clock, just_after(&*clock, until)).await;
    let why = "after until the entry must be gone";
    expect(store, &by_jti("ex-j"), ACTIVE, why).await?;
    expect(store, &by_sid("ex-s"), ACTIVE, why).await?;
    expect(store, &by_sub("ex-u", Some(iat)), ACTIVE, why).await?;
    expect(store, &by_sub("ex-u", None), ACTIVE, why).await?;

    // Revoked again after expiry: a new entry, not the old one extended.
    let again = now_ms(&*clock).saturating_add(LONG);
    store
        .revoke_token("ex-j", again)
        .await
        .step("revoke_token again")?;
    expect(
        store,
        &by_jti("ex-j"),
        BY_TOKEN,
        "revoked again after expiry",
    )
    .await?;
    let earlier_cutoff = now;
    store
        .revoke_subject("ex-u", earlier_cutoff, again)
        .await
        .step("revoke_subject again")?;
    expect(
        store,
        &by_sub("ex-u", Some(iat)),
        ACTIVE,
        "an expired cutoff must not come back when the subject is revoked again",
    )
    .await?;
    let older = earlier_cutoff.saturating_sub(secs(1));
    let why = "the new cutoff applies";
    expect(
        store,
        &by_sub("ex-u", Some(older)),
        by_subject(earlier_cutoff),
        why,
    )
    .await
}

/// A revoke whose `until` is not in the future succeeds and changes nothing.
pub async fn past_until_is_a_noop(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    // An exact clock tests `until == now`; a real one stays clear of the boundary.
    let boundary = now.saturating_sub(clock.tolerance());
    for until in [UnixTime::EPOCH, now.saturating_sub(secs(10)), boundary] {
        let what = format!("until = {until:?}, now = {now:?}");
        store
            .revoke_token("pu-j", until)
            .await
            .step(&format!("revoke_token, {what}"))?;
        store
            .revoke_session("pu-s", until)
            .await
            .step(&format!("revoke_session, {what}"))?;
        store
            .revoke_subject("pu-u", now.saturating_add(secs(10)), until)
            .await
            .step(&format!("revoke_subject, {what}"))?;
        let why = format!("a revoke with {what} is a no-op");
        let full = token(Some("pu-j"), Some("pu-s"), Some("pu-u"), Some(now));
        expect(store, &full, ACTIVE, &why).await?;
        expect(store, &by_sub("pu-u", None), ACTIVE, &why).await?;
    }
    Ok(())
}

/// Empty ids and ids longer than [`MAX_ID_LEN`] bytes are [`StoreErrorKind::InvalidInput`]
/// in every method (no panic, nothing stored); an id of exactly `MAX_ID_LEN` bytes works.
pub async fn invalid_ids_are_rejected(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let too_long = "x".repeat(MAX_ID_LEN + 1);
    // Fewer characters than MAX_ID_LEN, more bytes: the limit is in bytes.
    let too_many_bytes = "é".repeat(MAX_ID_LEN / 2 + 1);
    let invalid = StoreErrorKind::InvalidInput;
    for (label, id) in [
        ("empty", ""),
        ("MAX_ID_LEN + 1 bytes", too_long.as_str()),
        ("multi-byte, over MAX_ID_LEN bytes", too_many_bytes.as_str()),
    ] {
        let what = |call: &str| format!("{call} with an id that is {label}");
        expect_kind(
            store.revoke_token(id, until).await,
            invalid,
            &what("revoke_token"),
        );
        expect_kind(
            store.revoke_session(id, until).await,
            invalid,
            &what("revoke_session"),
        );
        expect_kind(
            store.revoke_subject(id, now, until).await,
            invalid,
            &what("revoke_subject"),
        );
        expect_kind(store.check(&by_jti(id)).await, invalid, &what("check(jti)"));
        expect_kind(store.check(&by_sid(id)).await, invalid, &what("check(sid)"));
        expect_kind(
            store.check(&by_sub(id, None)).await,
            invalid,
            &what("check(sub)"),
        );
        let mixed = token(Some("iv-ok"), Some(id), None, None);
        expect_kind(
            store.check(&mixed).await,
            invalid,
            &what("check(valid jti, sid)"),
        );
    }

    let longest = "y".repeat(MAX_ID_LEN);
    store
        .revoke_token(&longest, until)
        .await
        .step("revoke_token with an id of MAX_ID_LEN bytes")?;
    store
        .revoke_session(&longest, until)
        .await
        .step("revoke_session with an id of MAX_ID_LEN bytes")?;
    store
        .revoke_subject(&longest, now, until)
        .await
        .step("revoke_subject with an id of MAX_ID_LEN bytes")?;
    let why = "ids of MAX_ID_LEN bytes are valid";
    expect(store, &by_jti(&longest), BY_TOKEN, why).await?;
    expect(store, &by_sid(&longest), BY_SESSION, why).await?;
    expect(store, &by_sub(&longest, None), by_subject(now), why).await
}

/// Ids are opaque strings: separators, key-pattern and hash-tag characters, whitespace and
/// non-ASCII text do not alias other ids, and the three rules are separate namespaces.
pub async fn ids_are_opaque_and_rules_separate(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let revoked = [
        "a:b",
        "{tag}x",
        "with space",
        "ünïcødé",
        "*",
        "line\nbreak",
        "%s%n",
    ];
    for id in revoked {
        store
            .revoke_token(id, until)
            .await
            .step(&format!("revoke_token({id:?})"))?;
    }
    for id in revoked {
        expect(store, &by_jti(id), BY_TOKEN, "an unusual id").await?;
    }
    for id in [
        "a", "b", "a:", ":b", "a:b:c", "{tag}", "tag", "with", "*x", "x", "%s",
    ] {
        expect(
            store,
            &by_jti(id),
            ACTIVE,
            "an id that only resembles a revoked one",
        )
        .await?;
    }

    store
        .revoke_token("ns-1", until)
        .await
        .step("revoke_token(ns-1)")?;
    store
        .revoke_session("ns-2", until)
        .await
        .step("revoke_session(ns-2)")?;
    store
        .revoke_subject("ns-3", until, until)
        .await
        .step("revoke_subject(ns-3)")?;
    let why = "rules are separate namespaces";
    expect(store, &by_sid("ns-1"), ACTIVE, why).await?;
    expect(store, &by_sub("ns-1", None), ACTIVE, why).await?;
    expect(store, &by_jti("ns-2"), ACTIVE, why).await?;
    expect(store, &by_sub("ns-2", None), ACTIVE, why).await?;
    expect(store, &by_jti("ns-3"), ACTIVE, why).await?;
    expect(store, &by_sid("ns-3"), ACTIVE, why).await
}

/// When several rules match, the token rule wins, then the session rule, then the subject.
pub async fn precedence(store: Arc<dyn RevocationStore>, clock: Arc<dyn TestClock>) -> CaseResult {
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let before = now;
    let iat = Some(now.saturating_sub(secs(60)));
    store
        .revoke_token("pr-j", until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session("pr-s", until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject("pr-u", before, until)
        .await
        .step("revoke_subject")?;

    let all = token(Some("pr-j"), Some("pr-s"), Some("pr-u"), iat);
    expect(store, &all, BY_TOKEN, "token, session and subject match").await?;
    let token_sub = token(Some("pr-j"), None, Some("pr-u"), iat);
    expect(store, &token_sub, BY_TOKEN, "token and subject match").await?;
    let session_sub = token(Some("pr-other"), Some("pr-s"), Some("pr-u"), iat);
    expect(store, &session_sub, BY_SESSION, "session and subject match").await?;
    let sub_only = token(Some("pr-other"), Some("pr-other"), Some("pr-u"), iat);
    expect(
        store,
        &sub_only,
        by_subject(before),
        "only the subject matches",
    )
    .await?;
    let newer = token(Some("pr-other"), Some("pr-s"), Some("pr-u"), Some(now));
    expect(
        store,
        &newer,
        BY_SESSION,
        "session matches, subject does not",
    )
    .await
}

/// 64 tasks revoke and check at once: every revoke that returned `Ok` is visible to every
/// check that starts after it, from any task.
pub async fn concurrent_revokes_and_checks(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    const TASKS: usize = 64;
    const PER_TASK: usize = 8;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let before = now;
    let old = Some(now.saturating_sub(secs(60)));

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let store = &*store;
            for i in 0..PER_TASK {
                let jti = format!("cc-j-{task}-{i}");
                let step = format!("task {task}: revoke_token({jti})");
                store.revoke_token(&jti, until).await.step(&step)?;
                let why = format!("task {task}: its own revoke, just acknowledged");
                expect(store, &by_jti(&jti), BY_TOKEN, &why).await?;
                let never = format!("cc-never-{task}-{i}");
                expect(store, &by_jti(&never), ACTIVE, "never revoked").await?;
                // Everybody also extends the same session and subject, with different untils.
                let mine = until.saturating_add(ms(u64::try_from(i).unwrap_or(0)));
                let step = format!("task {task}: revoke_session(cc-shared)");
                store.revoke_session("cc-shared", mine).await.step(&step)?;
                let step = format!("task {task}: revoke_subject(cc-shared)");
                store
                    .revoke_subject("cc-shared", before, mine)
                    .await
                    .step(&step)?;
                let shared = token(None, Some("cc-shared"), Some("cc-shared"), old);
                let why = format!("task {task}: the shared session");
                expect(store, &shared, BY_SESSION, &why).await?;
            }
            Ok::<(), ConformanceError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(join_error)??;
    }

    let store = &*store;
    for task in 0..TASKS {
        for i in 0..PER_TASK {
            let jti = format!("cc-j-{task}-{i}");
            expect(store, &by_jti(&jti), BY_TOKEN, "after all tasks finished").await?;
        }
    }
    let why = "after all tasks finished";
    expect(store, &by_sub("cc-shared", old), by_subject(before), why).await?;
    expect(store, &by_sid("cc-shared"), BY_SESSION, why).await
}

/// A store works as `Arc<dyn RevocationStore>`, through clones, nested `Arc`s and spawned
/// tasks, and is `Send + Sync + 'static`.
pub async fn works_behind_arc_dyn(
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    fn assert_shareable<T: Send + Sync + 'static>(_: &T) {}
    assert_shareable(&store);

    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let nested: Arc<Arc<dyn RevocationStore>> = Arc::new(Arc::clone(&store));
    nested
        .revoke_token("ad-1", until)
        .await
        .step("revoke_token through Arc<Arc<dyn RevocationStore>>")?;
    expect(
        &*store,
        &by_jti("ad-1"),
        BY_TOKEN,
        "revoked through a nested Arc",
    )
    .await?;

    let spawned = Arc::clone(&store);
    tokio::spawn(async move { spawned.revoke_session("ad-2", until).await })
        .await
        .map_err(join_error)?
        .step("revoke_session in a spawned task")?;
    let as_dyn: &dyn RevocationStore = &*store;
    expect(
        as_dyn,
        &by_sid("ad-2"),
        BY_SESSION,
        "revoked in a spawned task",
    )
    .await?;
    expect(
        &nested,
        &by_sid("ad-2"),
        BY_SESSION,
        "seen through a nested Arc",
    )
    .await
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
    ConformanceError {
        message,
        source: None,
    }
}
