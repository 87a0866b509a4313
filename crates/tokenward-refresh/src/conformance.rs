//! The conformance suite every [`RefreshStore`] backend runs: tokenward's in-memory and
//! Redis stores, and yours.
//!
//! Each case is a `pub async fn(env: RefreshEnv) -> CaseResult` that drives a
//! [`RefreshEngine`](crate::RefreshEngine) over the store under test (with a
//! `MemoryRevocationStore` for the session revocations), or calls the store directly, and
//! checks one part of the [contract](RefreshStore#contract-for-implementations) and of the
//! rotation rules. Assertions panic with what the backend got wrong; unexpected errors come
//! back as a [`ConformanceError`] naming the call. [`CASES`] lists them all (and a test checks
//! that every `pub async fn` of the suite is listed). Every case needs a **fresh, empty
//! store** (a networked backend: a new random key prefix per case).
//!
//! The harness — [`TestClock`], [`RealClock`], [`StoreProbe`], [`Fixture`], the runner — is
//! `tokenward_core::conformance`, shared by every tokenward suite; read its docs for how
//! cases keep time. In short: each case has its own clock (one case's `ManualClock` may stand
//! hours after another's), so a backend that purges expired families across namespaces by
//! its own idea of time (a SQL `DELETE` over the whole table) deletes other cases' live
//! families, and random cases fail with a rotation that is unexpectedly `Invalid` — the
//! failure message then says so. Purge within the case's namespace, by the times the store
//! itself recorded.
//!
//! # Running the suite
//!
//! [`refresh_conformance_tests!`](crate::refresh_conformance_tests) expands to one `#[test]`
//! per case, all run on one tokio runtime. It needs only this crate, with the feature, in
//! the crate that invokes it:
//!
//! ```toml
//! [dev-dependencies]
//! tokenward-refresh = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! The one-liner takes an async function returning a fresh [`RefreshEnv`]: the store, the
//! clock it keeps time by (the engine reads it too), and a [`StoreProbe`] into it.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokenward_core::{ManualClock, UnixTime};
//! use tokenward_refresh::MemoryRefreshStore;
//! use tokenward_refresh::conformance::RefreshEnv;
//!
//! async fn make_env() -> RefreshEnv {
//!     let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//!     let store = Arc::new(MemoryRefreshStore::with_clock(Arc::new(clock.clone())));
//!     // The in-memory store is its own probe.
//!     RefreshEnv::new(store.clone(), Arc::new(clock), store)
//! }
//!
//! // In a test file (tests/conformance.rs): one #[test] per case. Wrap it in a `mod` to run
//! // the suite more than once in a file (e.g. for two configurations).
//! tokenward_refresh::refresh_conformance_tests!(make_env);
//! # fn main() {}
//! ```
//!
//! A backend with a connection pool, or keys and tables to create and drop, implements
//! [`Fixture<RefreshEnv>`](Fixture) once and runs the suite with
//! `refresh_conformance_tests!(fixture = MyFixture, setup = MyFixture::setup)`: `setup` runs
//! once per test binary, `Fixture::env` before each case, `Fixture::teardown` after each
//! (passed or failed).
//!
//! With a backend that keeps its own time, return [`RealClock::new()`](RealClock::new) as the
//! clock (the cases then sleep; no case waits more than a few seconds).
//!
//! # What the probe must answer
//!
//! - [`StoreProbe::stored_bytes`]: every key and value the store holds for the case — the
//!   "no plaintext at rest" case searches it for tokens, access tokens and idempotency keys,
//!   the tombstone case for token hashes a revoked family must no longer hold.
//! - [`StoreProbe::stored_entries`]: how many entries (keys, rows) it holds — the
//!   self-expiry case checks that expired families leave without a cleanup job, the
//!   tombstone and login/logout cases that revoked families free their slot.
//! - [`StoreProbe::round_trips`]: round trips made to the backend (0 for an in-process
//!   store) — a rotation without an idempotency key must be exactly one.

use crate::{MemoryRefreshStore, RefreshStore};

mod bounds;
mod failures;
mod idempotency;
mod lifetimes;
mod model;
mod rotation;
mod store_level;
mod support;

#[doc(hidden)]
pub use tokenward_core as __core;
pub use tokenward_core::conformance::{
    CaseResult, ConformanceError, Fixture, RealClock, Step, StoreEnv, StoreProbe, TestClock,
};

pub use bounds::{
    a_login_logout_loop_stays_bounded, revoked_families_are_tombstones,
    the_family_cap_revokes_the_oldest,
};
pub use failures::{
    no_plaintext_at_rest, one_round_trip_per_rotation, store_errors_are_never_reuse,
};
pub use idempotency::idempotency_replay_and_grace;
pub use lifetimes::{
    a_token_outliving_a_revocation_is_withheld, absolute_expiry,
    access_tokens_stay_revoked_for_their_whole_life, expired_families_leave_the_store, idle_expiry,
    times_are_never_rounded_down,
};
pub use model::model_based;
pub use rotation::{
    concurrent_rotations_share_one_successor, grandparent_within_window_is_reuse, issue_and_rotate,
    reuse_after_window_revokes_family, revoke_family_and_subject,
    rotation_racing_revocation_leaves_nothing_live, subjects_are_opaque_ids,
    unknown_and_forged_tokens_are_invalid,
};
pub use store_level::{access_exp_only_grows, store_rotate_classifies, store_rotate_races_revoke};

/// The names of all cases, in the order the macro expands them. Each is a function of this
/// module.
pub const CASES: &[&str] = crate::__refresh_conformance_cases!(names);

/// Expands to one `#[test]` per conformance case (see the [`conformance`](crate::conformance)
/// module for an example and the dependencies it needs).
///
/// - `refresh_conformance_tests!(make_env)`: `make_env` is an async function or closure
///   returning a fresh [`RefreshEnv`](crate::conformance::RefreshEnv); it is called once per
///   case.
/// - `refresh_conformance_tests!(fixture = F, setup = f)`: `F: Fixture<RefreshEnv>`, `f` an
///   async function returning `Result<F, E>`, called once per test binary.
#[macro_export]
macro_rules! refresh_conformance_tests {
    (fixture = $fixture:ty, setup = $setup:expr $(,)?) => {
        $crate::__refresh_conformance_cases!(tests [fixture = $fixture, setup = $setup]);
    };
    ($make_env:expr $(,)?) => {
        $crate::__refresh_conformance_cases!(tests [make_env = $make_env]);
    };
}

// The list of cases, expanded by `tokenward_core::__conformance_expand` into tests or into the
// `CASES` names: the one place a new case is listed (besides its function).
#[doc(hidden)]
#[macro_export]
macro_rules! __refresh_conformance_cases {
    ($($mode:tt)*) => {
        $crate::conformance::__core::__conformance_expand! {
            [$($mode)*] ($crate::conformance)
            issue_and_rotate
            concurrent_rotations_share_one_successor
            reuse_after_window_revokes_family
            grandparent_within_window_is_reuse
            rotation_racing_revocation_leaves_nothing_live
            unknown_and_forged_tokens_are_invalid
            revoke_family_and_subject
            subjects_are_opaque_ids
            idempotency_replay_and_grace
            absolute_expiry
            idle_expiry
            times_are_never_rounded_down
            expired_families_leave_the_store
            access_tokens_stay_revoked_for_their_whole_life
            a_token_outliving_a_revocation_is_withheld
            store_errors_are_never_reuse
            no_plaintext_at_rest
            one_round_trip_per_rotation
            store_rotate_classifies
            store_rotate_races_revoke
            access_exp_only_grows
            revoked_families_are_tombstones
            a_login_logout_loop_stays_bounded
            the_family_cap_revokes_the_oldest
            model_based
        }
    };
}

/// What a case runs against: a fresh, empty store, the clock it keeps time by — the suite's
/// engines and revocation store read it too — and a probe into it ([`StoreEnv::new`]).
pub type RefreshEnv = StoreEnv<dyn RefreshStore>;

/// The in-memory store answers its own probe: families and subject-index entries held
/// (expired ones not yet reclaimed included), every byte it holds, and no round trips.
#[async_trait::async_trait]
impl StoreProbe for MemoryRefreshStore {
    async fn stored_entries(&self) -> Result<u64, tokenward_core::StoreError> {
        let entries = self.stored().saturating_add(self.indexed());
        Ok(u64::try_from(entries).unwrap_or(u64::MAX))
    }

    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, tokenward_core::StoreError> {
        Ok(MemoryRefreshStore::stored_bytes(self))
    }

    fn round_trips(&self) -> u64 {
        0
    }
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
