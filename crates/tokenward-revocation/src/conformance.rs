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

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{MAX_ID_LEN, StoreId, TokenRef, UnixTime};

use crate::{RevocationStatus, RevocationStore, RevokedBy};

mod calls;
mod ids;
mod model;
mod rules;
mod sessions;
mod time;

pub use calls::{check_is_one_round_trip, concurrent_revokes_and_checks, works_behind_arc_dyn};
pub use ids::{ids_are_opaque_and_rules_separate, ids_of_any_bytes_up_to_the_limit_work};
pub use rules::{
    idempotent_revokes, later_cutoff_wins, precedence, revoke_token_then_check, session_rule,
    subject_cutoff_exactly_at_boundary, subject_rule, unknown_tokens_are_active,
};
pub use sessions::{sessionless_subject_rule, subject_rules_are_separate};
pub use time::{
    expired_entries_are_removed, expiry, past_until_is_a_noop, times_are_never_rounded_down,
};

#[doc(hidden)]
pub use tokenward_core as __core;
pub use tokenward_core::conformance::{
    CaseResult, ConformanceError, Fixture, RealClock, Step, StoreEnv, StoreProbe, TestClock,
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

// The list of cases, expanded by `tokenward_core::__conformance_expand` into tests or into the
// `CASES` names: the one place a new case is listed (besides its function).
#[doc(hidden)]
#[macro_export]
macro_rules! __revocation_conformance_cases {
    ($($mode:tt)*) => {
        $crate::conformance::__core::__conformance_expand! {
            [$($mode)*] ($crate::conformance)
            revoke_token_then_check
            unknown_tokens_are_active
            idempotent_revokes
            session_rule
            subject_rule
            subject_cutoff_exactly_at_boundary
            later_cutoff_wins
            sessionless_subject_rule
            subject_rules_are_separate
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

/// What a case runs against: a fresh, empty store, the clock it keeps time by, and a probe
/// into it ([`StoreEnv::new`]).
pub type RevocationEnv = StoreEnv<dyn RevocationStore>;

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

/// Checks `token` and asserts the status, through `check` and — where the store has one —
/// its synchronous fast path, `check_now`, which must give the same answer.
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
    same_on_the_fast_path(store, token, got)
}

/// `check_now`, where the store answers it (`Some`), agrees with what `check` answered.
fn same_on_the_fast_path(
    store: &dyn RevocationStore,
    token: &TokenRef<'_>,
    checked: RevocationStatus,
) -> CaseResult {
    if let Some(answer) = store.check_now(token) {
        let fast = answer.step(&format!("check_now({token:?})"))?;
        assert_eq!(
            fast, checked,
            "check_now({token:?}) disagrees with check: the fast path must give check's answer"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Every `pub async fn` of the suite (in any of its files) is in the macro's list — so it
    /// runs — and only once.
    #[test]
    fn every_case_is_listed() {
        let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conformance");
        if let Err(problems) =
            tokenward_core::conformance::check_suite_listed(&module, super::CASES)
        {
            panic!("{problems}");
        }
    }
}
