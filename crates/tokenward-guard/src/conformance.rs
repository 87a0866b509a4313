//! The conformance suite of [`CombinedCheck`] backends (feature `conformance`): tokenward's
//! Redis stores, the in-memory combination
//! ([`SequentialCheck`](crate::SequentialCheck)), and yours.
//!
//! A combined backend answers in one call what the separate stores answer in three (the
//! client's ban status, the token's revocation status, one step of the subject limit). Each
//! case drives the backend under test **and** a reference —
//! [`SequentialCheck`](crate::SequentialCheck) over separate stores of a second, empty
//! namespace — with the same inputs (revocations, recorded failures, calls) and compares
//! every answer: allowed, limit and remaining exactly; reset and retry-after within the
//! clock's [tolerance](TestClock::tolerance). It also checks what the contract adds to the
//! separate stores: a revoked token or a banned client is charged nothing, the ban is read,
//! never counted, and a banned network key refuses every address in it.
//!
//! The harness — [`TestClock`], [`RealClock`], [`Fixture`], the runner — is
//! `tokenward_core::conformance`, shared by every tokenward suite.
//!
//! # Running the suite
//!
//! [`combined_conformance_tests!`](crate::combined_conformance_tests) expands to one `#[test]`
//! per case, with the feature in the crate that invokes it:
//!
//! ```toml
//! [dev-dependencies]
//! tokenward-guard = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use tokenward_core::{ManualClock, UnixTime};
//! use tokenward_guard::SequentialCheck;
//! use tokenward_guard::conformance::{CombinedEnv, SeparateStores};
//! use tokenward_ratelimit::{LimiterClock, MemoryRateLimitConfig, MemoryRateLimitStore};
//! use tokenward_revocation::MemoryRevocationStore;
//!
//! fn memory(clock: &ManualClock) -> SeparateStores {
//!     let limits = MemoryRateLimitConfig::new().clock(LimiterClock::manual(clock));
//!     SeparateStores {
//!         revocation: Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone()))),
//!         ratelimit: Arc::new(MemoryRateLimitStore::with_config(limits).expect("valid config")),
//!     }
//! }
//!
//! async fn make_env() -> CombinedEnv {
//!     let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//!     let backend = memory(&clock);
//!     let combined = SequentialCheck::new(backend.revocation.clone(), backend.ratelimit.clone());
//!     CombinedEnv::new(Arc::new(combined), backend, memory(&clock), Arc::new(clock))
//! }
//!
//! tokenward_guard::combined_conformance_tests!(make_env);
//! # fn main() {}
//! ```
//!
//! A backend with a pool implements [`Fixture<CombinedEnv>`](Fixture) and runs
//! `combined_conformance_tests!(fixture = MyFixture, setup = MyFixture::setup)`. With a backend
//! that keeps its own time (Redis `TIME`), return [`RealClock::new()`](RealClock::new): no
//! case waits, but answers are compared within its tolerance.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokenward_ratelimit::{Decision, RateLimitStore};
use tokenward_revocation::RevocationStore;

use crate::stores::{CombinedAnswer, CombinedCheck};

mod cases;

#[doc(hidden)]
pub use tokenward_core as __core;
pub use tokenward_core::conformance::{
    CaseResult, ConformanceError, Fixture, RealClock, Step, TestClock,
};

pub use cases::*;

/// The names of all cases, in the order the macro expands them.
pub const CASES: &[&str] = crate::__combined_conformance_cases!(names);

/// Expands to one `#[test]` per conformance case (see the [module docs](self)).
///
/// - `combined_conformance_tests!(make_env)`: `make_env` is an async function or closure
///   returning a fresh [`CombinedEnv`](crate::conformance::CombinedEnv), called per case.
/// - `combined_conformance_tests!(fixture = F, setup = f)`: `F: Fixture<CombinedEnv>`, `f` an
///   async function returning `Result<F, E>`, called once per test binary.
#[macro_export]
macro_rules! combined_conformance_tests {
    (fixture = $fixture:ty, setup = $setup:expr $(,)?) => {
        $crate::__combined_conformance_cases!(tests [fixture = $fixture, setup = $setup]);
    };
    ($make_env:expr $(,)?) => {
        $crate::__combined_conformance_cases!(tests [make_env = $make_env]);
    };
}

// The list of cases: the one place a new case is listed (besides its function).
#[doc(hidden)]
#[macro_export]
macro_rules! __combined_conformance_cases {
    ($($mode:tt)*) => {
        $crate::conformance::__core::__conformance_expand! {
            [$($mode)*] ($crate::conformance)
            answers_match_the_separate_stores
            the_limit_is_charged_once_per_call
            revoked_or_banned_requests_are_charged_nothing
            the_ban_is_read_never_counted
            a_banned_network_refuses_the_client
        }
    };
}

/// A revocation store and a rate-limit store of one namespace.
#[derive(Clone)]
pub struct SeparateStores {
    /// Revocations.
    pub revocation: Arc<dyn RevocationStore>,
    /// Limits and bans.
    pub ratelimit: Arc<dyn RateLimitStore>,
}

impl fmt::Debug for SeparateStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeparateStores").finish_non_exhaustive()
    }
}

/// What a case runs against.
#[derive(Clone)]
#[non_exhaustive]
pub struct CombinedEnv {
    /// The combined backend under test, fresh and empty.
    pub combined: Arc<dyn CombinedCheck>,
    /// The same backend's separate stores, **sharing the combined check's state**: the cases
    /// revoke and record failures through them.
    pub backend: SeparateStores,
    /// Separate stores of a second, empty namespace (normally the same backend's): the
    /// reference answers come from [`SequentialCheck`](crate::SequentialCheck) over them.
    pub reference: SeparateStores,
    /// The clock both keep time by.
    pub clock: Arc<dyn TestClock>,
}

impl CombinedEnv {
    /// An environment: `combined` and `backend` share one fresh namespace, `reference` is
    /// another.
    pub fn new(
        combined: Arc<dyn CombinedCheck>,
        backend: SeparateStores,
        reference: SeparateStores,
        clock: Arc<dyn TestClock>,
    ) -> Self {
        CombinedEnv {
            combined,
            backend,
            reference,
            clock,
        }
    }
}

impl fmt::Debug for CombinedEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CombinedEnv").finish_non_exhaustive()
    }
}

/// Asserts two decisions agree: allowed, limit and remaining exactly, durations within `tol`.
#[track_caller]
fn assert_same_decision(got: &Decision, want: &Decision, tol: Duration, what: &str) {
    assert_eq!(
        (got.allowed, got.limit, got.remaining),
        (want.allowed, want.limit, want.remaining),
        "{what}: the combined backend answered {got:?}, the separate stores {want:?}"
    );
    let close = |a: Duration, b: Duration| a.abs_diff(b) <= tol;
    assert!(
        close(got.reset, want.reset),
        "{what}: reset {:?}, the separate stores {:?} (tolerance {tol:?})",
        got.reset,
        want.reset
    );
    let same_retry = match (got.retry_after, want.retry_after) {
        (None, None) => true,
        (Some(a), Some(b)) => close(a, b),
        _ => false,
    };
    assert!(
        same_retry,
        "{what}: retry_after {:?}, the separate stores {:?} (tolerance {tol:?})",
        got.retry_after, want.retry_after
    );
}

/// Asserts two answers agree.
#[track_caller]
fn assert_same_answer(got: &CombinedAnswer, want: &CombinedAnswer, tol: Duration, what: &str) {
    assert_eq!(
        got.revocation, want.revocation,
        "{what}: revocation status differs from the separate stores"
    );
    for (part, g, w) in [
        ("ban", &got.ban, &want.ban),
        ("limit", &got.limit, &want.limit),
    ] {
        assert_eq!(
            g.is_some(),
            w.is_some(),
            "{what}: {part} answered {g:?}, the separate stores {w:?} (a {part} answer is \
             given exactly when the separate stores give one)"
        );
        if let (Some(g), Some(w)) = (g, w) {
            assert_same_decision(g, w, tol, &format!("{what} ({part})"));
        }
    }
}

#[cfg(test)]
mod tests {
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
