//! The conformance suite every [`RevocationStore`] backend runs: tokenward's in-memory and
//! Redis stores, and yours.
//!
//! Each case is a `pub async fn(env: RevocationEnv) -> CaseResult` that exercises one part of
//! the [contract](RevocationStore#contract-for-implementations) and fails with a message
//! saying what the backend got wrong: assertions on statuses panic, unexpected store errors
//! come back as a [`ConformanceError`] naming the call that failed. [`CASES`] lists them all
//! (and a test checks that every `pub async fn` here is listed). Every case needs a **fresh,
//! empty store** (a networked backend: a new random key prefix per case), because cases
//! reuse ids.
//!
//! The harness — [`TestClock`], [`RealClock`], [`StoreProbe`], [`Fixture`], the runner — is
//! `tokenward_core::conformance`, shared by every tokenward suite; read its docs for how
//! cases keep time and why a backend must not purge across cases' namespaces.
//!
//! # Running the suite
//!
//! [`revocation_conformance_tests!`](crate::revocation_conformance_tests) expands to one
//! `#[test]` per case, all run on one tokio runtime. It needs only this crate, with the
//! feature, in the crate that invokes it:
//!
//! ```toml
//! [dev-dependencies]
//! tokenward-revocation = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! The one-liner takes an async function returning a fresh [`RevocationEnv`]: the store, the
//! clock it keeps time by, and a [`StoreProbe`] into it.
//!
//! ```
//! use std::sync::Arc;
//! use tokenward_core::{ManualClock, UnixTime};
//! use tokenward_revocation::conformance::RevocationEnv;
//! use tokenward_revocation::{MemoryRevocationConfig, MemoryRevocationStore};
//!
//! async fn make_env() -> RevocationEnv {
//!     let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//!     let config = MemoryRevocationConfig::new().clock(Arc::new(clock.clone()));
//!     let store = Arc::new(MemoryRevocationStore::with_config(config).expect("valid config"));
//!     // The in-memory store is its own probe.
//!     RevocationEnv::new(store.clone(), Arc::new(clock), store)
//! }
//!
//! // In a test file (tests/conformance.rs): one #[test] per case. Wrap it in a `mod` to run
//! // the suite more than once in a file (e.g. for two configurations).
//! tokenward_revocation::revocation_conformance_tests!(make_env);
//! # fn main() {}
//! ```
//!
//! A backend with a connection pool, or tables to create and drop, implements
//! [`Fixture<RevocationEnv>`](Fixture) once and runs the suite with
//! `revocation_conformance_tests!(fixture = MyFixture, setup = MyFixture::setup)`: `setup`
//! runs once per test binary, `Fixture::env` before each case, `Fixture::teardown` after each
//! (passed or failed).
//!
//! With a backend that keeps its own time, return [`RealClock::new()`](RealClock::new) as the
//! clock (the cases then sleep; no case waits much more than a second or two).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{MAX_ID_LEN, StoreId, TokenRef, UnixTime};

use crate::{RevocationStatus, RevocationStore, RevokedBy};

mod model;

#[doc(hidden)]
pub use tokenward_core as __core;
pub use tokenward_core::conformance::{
    CaseResult, ConformanceError, Fixture, RealClock, Step, StoreProbe, TestClock,
};
use tokenward_core::conformance::{
    LOST_ENTRY_HINT, advance_to, joined, just_after, just_before, now_ms,
};

pub use model::{MODEL_CASES_EXACT, MODEL_CASES_REAL, model_based};

/// The names of all cases, in the order the macro expands them. Each is a function of this
/// module.
pub const CASES: &[&str] = crate::__revocation_conformance_cases!(names);

/// Expands to one `#[test]` per conformance case (see the [`conformance`](crate::conformance)
/// module for an example and the dependencies it needs).
///
/// - `revocation_conformance_tests!(make_env)`: `make_env` is an async function or closure
///   returning a fresh [`RevocationEnv`](crate::conformance::RevocationEnv); it is called
///   once per case.
/// - `revocation_conformance_tests!(fixture = F, setup = f)`: `F: Fixture<RevocationEnv>`,
///   `f` an async function returning `Result<F, E>`, called once per test binary.
#[macro_export]
macro_rules! revocation_conformance_tests {
    (fixture = $fixture:ty, setup = $setup:expr $(,)?) => {
        $crate::__revocation_conformance_cases!(tests [fixture = $fixture, setup = $setup]);
    };
    ($make_env:expr $(,)?) => {
        $crate::__revocation_conformance_cases!(tests [make_env = $make_env]);
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
            times_are_never_rounded_down
            expired_entries_are_removed
            past_until_is_a_noop
            ids_of_any_bytes_up_to_the_limit_work
            ids_are_opaque_and_rules_separate
            precedence
            check_is_one_round_trip
            concurrent_revokes_and_checks
            works_behind_arc_dyn
            model_based
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __revocation_conformance_expand {
    ([tests [$($form:tt)*]] $($case:ident)*) => {
        $crate::conformance::__core::__conformance_tests! {
            $($form)*,
            cases = [$($case => $crate::conformance::$case),*]
        }
    };
    ([names] $($case:ident)*) => {
        &[$(::core::stringify!($case)),*]
    };
}

/// What a case runs against: a fresh, empty store, the clock it keeps time by, and a probe
/// into it.
#[derive(Clone)]
pub struct RevocationEnv {
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn TestClock>,
    probe: Arc<dyn StoreProbe>,
}

impl RevocationEnv {
    /// A fresh, empty `store`; the `clock` it reads (a `ManualClock` shared with it, or
    /// [`RealClock`] for a store keeping its own time); and a `probe` into the same store.
    pub fn new(
        store: Arc<dyn RevocationStore>,
        clock: Arc<dyn TestClock>,
        probe: Arc<dyn StoreProbe>,
    ) -> Self {
        RevocationEnv {
            store,
            clock,
            probe,
        }
    }
}

impl fmt::Debug for RevocationEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationEnv").finish_non_exhaustive()
    }
}

/// The in-memory store answers its own probe: entries held (expired ones not yet reclaimed
/// included), the ids it holds, and no round trips.
#[async_trait::async_trait]
impl StoreProbe for crate::MemoryRevocationStore {
    async fn stored_entries(&self) -> Result<u64, tokenward_core::StoreError> {
        Ok(u64::try_from(self.stored()).unwrap_or(u64::MAX))
    }

    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, tokenward_core::StoreError> {
        Ok(self.stored_ids())
    }

    fn round_trips(&self) -> u64 {
        0
    }
}

// ---- helpers -----------------------------------------------------------------------------

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A suite id; the suite only writes valid ones.
#[expect(
    clippy::expect_used,
    reason = "the suite's ids are valid by construction"
)]
fn id(id: &str) -> StoreId<'_> {
    StoreId::new(id).expect("the suite's ids are valid StoreIds")
}

fn token<'a>(
    jti: Option<&'a str>,
    sid: Option<&'a str>,
    sub: Option<&'a str>,
    iat: Option<UnixTime>,
) -> TokenRef<'a> {
    TokenRef {
        jti: jti.map(id),
        sid: sid.map(id),
        sub: sub.map(id),
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

// ---- cases -------------------------------------------------------------------------------

/// A revoked `jti` is reported as [`RevokedBy::Token`]; other tokens are not affected.
pub async fn revoke_token_then_check(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    store
        .revoke_token(&id("rt-1"), until)
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
pub async fn unknown_tokens_are_active(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
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
        .revoke_token(&id("uk-other-j"), until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session(&id("uk-other-s"), until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject(&id("uk-other-u"), now.saturating_add(secs(1)), until)
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
pub async fn idempotent_revokes(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let short = now.saturating_add(SHORT);
    let long = now.saturating_add(LONG);
    let cutoff = now;
    let iat = now.saturating_sub(secs(10));

    for _ in 0..2 {
        store
            .revoke_token(&id("id-twice"), long)
            .await
            .step("revoke_token(id-twice), twice")?;
        store
            .revoke_session(&id("id-twice"), long)
            .await
            .step("revoke_session(id-twice), twice")?;
        store
            .revoke_subject(&id("id-twice"), cutoff, long)
            .await
            .step("revoke_subject(id-twice), twice")?;
    }
    // Long then short, and short then long: both must end up long.
    for (name, first, second) in [("id-ls", long, short), ("id-sl", short, long)] {
        store
            .revoke_token(&id(name), first)
            .await
            .step("revoke_token")?;
        store
            .revoke_token(&id(name), second)
            .await
            .step("revoke_token again")?;
        store
            .revoke_session(&id(name), first)
            .await
            .step("revoke_session")?;
        store
            .revoke_session(&id(name), second)
            .await
            .step("revoke_session again")?;
        store
            .revoke_subject(&id(name), cutoff, first)
            .await
            .step("revoke_subject")?;
        store
            .revoke_subject(&id(name), cutoff, second)
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
pub async fn session_rule(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    store
        .revoke_session(&id("sr-s1"), now.saturating_add(LONG))
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
pub async fn subject_rule(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let before = now;
    store
        .revoke_subject(&id("sj-alice"), before, now.saturating_add(LONG))
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
pub async fn subject_cutoff_exactly_at_boundary(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = clock.now();
    let before = UnixTime::from_secs(now.as_secs());
    let until = before.saturating_add(LONG);
    store
        .revoke_subject(&id("cb-u"), before, until)
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
        .revoke_subject(&id("cb-v"), signed_out, signed_out.saturating_add(LONG))
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
pub async fn later_cutoff_wins(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let long = now.saturating_add(LONG);
    let early = now;
    let late = now.saturating_add(secs(10));
    let between = now.saturating_add(secs(5));

    store
        .revoke_subject(&id("lc-u"), early, long)
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
        .revoke_subject(&id("lc-u"), late, long)
        .await
        .step("revoke_subject(late)")?;
    let why = "a later cutoff extends the rule";
    expect(store, &by_sub("lc-u", Some(between)), by_subject(late), why).await?;
    store
        .revoke_subject(&id("lc-u"), early, long)
        .await
        .step("revoke_subject(early) again")?;
    let why = "an earlier cutoff must not shrink the rule";
    expect(store, &by_sub("lc-u", Some(between)), by_subject(late), why).await?;

    // Later cutoff with the earlier `until`, then earlier cutoff with the later `until`:
    // the rule must keep both maxima.
    let short = now.saturating_add(SHORT);
    store
        .revoke_subject(&id("lc-v"), late, short)
        .await
        .step("revoke_subject(late, short)")?;
    store
        .revoke_subject(&id("lc-v"), early, long)
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
pub async fn expiry(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(SHORT);
    let cutoff = now.saturating_add(secs(10));
    let iat = now;
    store
        .revoke_token(&id("ex-j"), until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session(&id("ex-s"), until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject(&id("ex-u"), cutoff, until)
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
        .revoke_token(&id("ex-j"), again)
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
        .revoke_subject(&id("ex-u"), earlier_cutoff, again)
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

/// Times off the millisecond grid are kept or rounded the safe way — `until` and `before`
/// **up**, never down: an entry "until T" still matches 1 ns before T (exact clock), and a
/// token issued 1 ns before a subject cutoff is revoked (on any clock: `iat` is data).
pub async fn times_are_never_rounded_down(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    // 0.999999 ms past a millisecond: rounding down loses almost a whole millisecond.
    let off_grid = Duration::from_nanos(999_999);
    let now = now_ms(&*clock);
    let until = now.saturating_add(SHORT).saturating_add(off_grid);
    let before = now.saturating_add(secs(30)).saturating_add(off_grid);
    let long = now.saturating_add(LONG);
    store
        .revoke_token(&id("rd-j"), until)
        .await
        .step("revoke_token(rd-j)")?;
    store
        .revoke_session(&id("rd-s"), until)
        .await
        .step("revoke_session(rd-s)")?;
    store
        .revoke_subject(&id("rd-u"), before, long)
        .await
        .step("revoke_subject(rd-u)")?;
    let just_under = before.saturating_sub(Duration::from_nanos(1));
    let got = store
        .check(&by_sub("rd-u", Some(just_under)))
        .await
        .step("check of a token issued 1 ns before an off-grid cutoff")?;
    let reported = match got {
        RevocationStatus::Revoked(RevokedBy::Subject { before }) => Some(before),
        _ => None,
    };
    assert!(
        reported.is_some_and(|b| b >= before && b.saturating_duration_since(before) < ms(1)),
        "a token issued 1 ns before the cutoff {before:?} must be revoked by it, with the \
         cutoff reported as given or rounded up to the millisecond (never down); got {got:?}"
    );
    advance_to(&*clock, just_before(&*clock, until)).await;
    let why = "just before an off-grid until: `until` must not be rounded down";
    expect(store, &by_jti("rd-j"), BY_TOKEN, why).await?;
    expect(store, &by_sid("rd-s"), BY_SESSION, why).await?;
    // Rounded up by at most a millisecond: gone a millisecond later.
    advance_to(
        &*clock,
        just_after(&*clock, until.saturating_add(Duration::from_millis(1))),
    )
    .await;
    let why = "a millisecond after an off-grid until";
    expect(store, &by_jti("rd-j"), ACTIVE, why).await?;
    expect(store, &by_sid("rd-s"), ACTIVE, why).await
}

/// Expired entries leave the store on their own: after 64 entries (of every rule) have
/// expired and the store has been used for 64 more revokes, it holds at most the live
/// entries plus a few not yet reclaimed — no cleanup job needed (one wait of about a second).
/// Counted through the environment's [`StoreProbe::stored_entries`].
pub async fn expired_entries_are_removed(env: RevocationEnv) -> CaseResult {
    const SHORT_LIVED: u64 = 64;
    const LATER: u64 = 64;
    /// Expired entries a backend may still hold after the later writes (lazily expiring
    /// backends reclaim on access or in the background).
    const SLACK: u64 = 8;
    let RevocationEnv {
        store,
        clock,
        probe,
    } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(SHORT);
    for i in 0..SHORT_LIVED {
        let name = format!("px-{i}");
        let what = format!("revoke of short-lived {name}");
        match i % 3 {
            0 => store.revoke_token(&id(&name), until).await.step(&what)?,
            1 => store.revoke_session(&id(&name), until).await.step(&what)?,
            _ => store
                .revoke_subject(&id(&name), now, until)
                .await
                .step(&what)?,
        }
    }
    let held = probe
        .stored_entries()
        .await
        .step("StoreProbe::stored_entries")?;
    assert!(
        held >= SHORT_LIVED,
        "the probe counts {held} entries after {SHORT_LIVED} revokes: it must count what the \
         store holds for this case"
    );
    advance_to(&*clock, just_after(&*clock, until)).await;
    let long = now_ms(&*clock).saturating_add(LONG);
    for i in 0..LATER {
        store
            .revoke_token(&id(&format!("px-live-{i}")), long)
            .await
            .step("revoke_token of a long-lived entry")?;
    }
    let held = probe
        .stored_entries()
        .await
        .step("StoreProbe::stored_entries")?;
    assert!(
        held <= LATER + SLACK,
        "{held} entries held after {SHORT_LIVED} expired and {LATER} live ones were written: \
         expired entries must leave the store without a cleanup job"
    );
    assert!(
        held >= LATER,
        "{held} entries held, fewer than the {LATER} live ones: {LOST_ENTRY_HINT}"
    );
    expect(store, &by_jti("px-live-0"), BY_TOKEN, "a live entry").await
}

/// `check` is one round trip to the backend, whatever the token carries (jti, sid and sub
/// together): counted through [`StoreProbe::round_trips`]. Each revoke is one too.
pub async fn check_is_one_round_trip(env: RevocationEnv) -> CaseResult {
    let RevocationEnv {
        store,
        clock,
        probe,
    } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let rounds = |what: &str, before: u64| {
        let made = probe.round_trips().saturating_sub(before);
        assert!(
            made <= 1,
            "{what} made {made} round trips; the contract allows one"
        );
    };
    let start = probe.round_trips();
    store
        .revoke_token(&id("rt1-j"), until)
        .await
        .step("revoke_token")?;
    rounds("revoke_token", start);
    let start = probe.round_trips();
    store
        .revoke_session(&id("rt1-s"), until)
        .await
        .step("revoke_session")?;
    rounds("revoke_session", start);
    let start = probe.round_trips();
    store
        .revoke_subject(&id("rt1-u"), now, until)
        .await
        .step("revoke_subject")?;
    rounds("revoke_subject", start);
    for (token, expected) in [
        (
            token(Some("rt1-j"), Some("rt1-s"), Some("rt1-u"), None),
            BY_TOKEN,
        ),
        (
            token(Some("rt1-x"), Some("rt1-x"), Some("rt1-u"), Some(now)),
            ACTIVE,
        ),
        (token(None, None, None, None), ACTIVE),
    ] {
        let start = probe.round_trips();
        expect(store, &token, expected, "checked in one round trip").await?;
        rounds("check", start);
    }
    Ok(())
}

/// A revoke whose `until` is not in the future succeeds and changes nothing.
pub async fn past_until_is_a_noop(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    // An exact clock tests `until == now`; a real one stays clear of the boundary.
    let boundary = now.saturating_sub(clock.tolerance());
    for until in [UnixTime::EPOCH, now.saturating_sub(secs(10)), boundary] {
        let what = format!("until = {until:?}, now = {now:?}");
        store
            .revoke_token(&id("pu-j"), until)
            .await
            .step(&format!("revoke_token, {what}"))?;
        store
            .revoke_session(&id("pu-s"), until)
            .await
            .step(&format!("revoke_session, {what}"))?;
        store
            .revoke_subject(&id("pu-u"), now.saturating_add(secs(10)), until)
            .await
            .step(&format!("revoke_subject, {what}"))?;
        let why = format!("a revoke with {what} is a no-op");
        let full = token(Some("pu-j"), Some("pu-s"), Some("pu-u"), Some(now));
        expect(store, &full, ACTIVE, &why).await?;
        expect(store, &by_sub("pu-u", None), ACTIVE, &why).await?;
    }
    Ok(())
}

/// Ids are opaque bytes up to [`MAX_ID_LEN`]: the longest ids (ASCII, and multi-byte text
/// of exactly that many bytes), ids that differ only in their last byte (a backend that
/// truncates, hashes weakly or pads would alias them), and ids with control and
/// bidirectional-override characters all round-trip in every rule. (Empty, oversized and
/// NUL-containing ids cannot reach a store: [`StoreId`] refuses them where they are made.)
pub async fn ids_of_any_bytes_up_to_the_limit_work(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let longest = "y".repeat(MAX_ID_LEN);
    let longest_sibling = format!("{}z", "y".repeat(MAX_ID_LEN - 1));
    // 2-byte characters: MAX_ID_LEN bytes, half as many characters.
    let multibyte = "é".repeat(MAX_ID_LEN / 2);
    let revoked = [
        longest.as_str(),
        multibyte.as_str(),
        "ctl-\u{1}\u{7f}\t\r",
        "bidi-\u{202e}\u{2066}",
        "nbsp-\u{a0}\u{85}",
    ];
    for name in revoked {
        let what = format!("an id of {} bytes ({:?}…)", name.len(), name.get(..12));
        store
            .revoke_token(&id(name), until)
            .await
            .step(&format!("revoke_token with {what}"))?;
        store
            .revoke_session(&id(name), until)
            .await
            .step(&format!("revoke_session with {what}"))?;
        store
            .revoke_subject(&id(name), now, until)
            .await
            .step(&format!("revoke_subject with {what}"))?;
    }
    for name in revoked {
        let why = "an unusual or maximal id round-trips";
        expect(store, &by_jti(name), BY_TOKEN, why).await?;
        expect(store, &by_sid(name), BY_SESSION, why).await?;
        expect(store, &by_sub(name, None), by_subject(now), why).await?;
    }
    let why = "an id differing from a revoked one only in its last byte is another id";
    expect(store, &by_jti(&longest_sibling), ACTIVE, why).await?;
    expect(store, &by_sid(&longest_sibling), ACTIVE, why).await?;
    expect(store, &by_sub(&longest_sibling, None), ACTIVE, why).await?;
    let near_ctl = "ctl-\u{1}\u{7f}\t";
    expect(
        store,
        &by_jti(near_ctl),
        ACTIVE,
        "a prefix of a revoked id is another id",
    )
    .await
}

/// Ids are opaque strings: separators, key-pattern and hash-tag characters, whitespace and
/// non-ASCII text do not alias other ids, and the three rules are separate namespaces.
pub async fn ids_are_opaque_and_rules_separate(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
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
    for name in revoked {
        store
            .revoke_token(&id(name), until)
            .await
            .step(&format!("revoke_token({name:?})"))?;
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
        .revoke_token(&id("ns-1"), until)
        .await
        .step("revoke_token(ns-1)")?;
    store
        .revoke_session(&id("ns-2"), until)
        .await
        .step("revoke_session(ns-2)")?;
    store
        .revoke_subject(&id("ns-3"), until, until)
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
pub async fn precedence(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let before = now;
    let iat = Some(now.saturating_sub(secs(60)));
    store
        .revoke_token(&id("pr-j"), until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session(&id("pr-s"), until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject(&id("pr-u"), before, until)
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
pub async fn concurrent_revokes_and_checks(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
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
                store.revoke_token(&id(&jti), until).await.step(&step)?;
                let why = format!("task {task}: its own revoke, just acknowledged");
                expect(store, &by_jti(&jti), BY_TOKEN, &why).await?;
                let never = format!("cc-never-{task}-{i}");
                expect(store, &by_jti(&never), ACTIVE, "never revoked").await?;
                // Everybody also extends the same session and subject, with different untils.
                let mine = until.saturating_add(ms(u64::try_from(i).unwrap_or(0)));
                let step = format!("task {task}: revoke_session(cc-shared)");
                store
                    .revoke_session(&id("cc-shared"), mine)
                    .await
                    .step(&step)?;
                let step = format!("task {task}: revoke_subject(cc-shared)");
                store
                    .revoke_subject(&id("cc-shared"), before, mine)
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
        joined.map_err(|e| ConformanceError::new(format!("a task failed: {e}")))??;
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
pub async fn works_behind_arc_dyn(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    fn assert_shareable<T: Send + Sync + 'static>(_: &T) {}
    assert_shareable(&store);

    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let nested: Arc<Arc<dyn RevocationStore>> = Arc::new(Arc::clone(&store));
    nested
        .revoke_token(&id("ad-1"), until)
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
    joined(tokio::spawn(async move {
        spawned.revoke_session(&id("ad-2"), until).await
    }))
    .await?
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

#[cfg(test)]
mod tests {
    /// Every `pub async fn` of the suite is in the macro's list (so it runs), once.
    #[test]
    fn every_case_is_listed() {
        let sources = [
            include_str!("conformance.rs"),
            include_str!("conformance/model.rs"),
        ];
        if let Err(problems) =
            tokenward_core::conformance::check_cases_listed(&sources, super::CASES)
        {
            panic!("{problems}");
        }
    }
}
