//! The conformance suite every [`RateLimitStore`] backend runs: tokenward's in-memory and
//! Redis stores, and yours.
//!
//! Each case is a `pub async fn(env: RateLimitEnv) -> CaseResult` that exercises one part of
//! the [contract](RateLimitStore#contract) — its GCRA and ban formulas exactly (to the
//! nanosecond on an exact clock, within the clock's tolerance on a real one), expiry without
//! a cleanup job, one round trip per call, atomicity under concurrency — and fails with a
//! message saying what the backend got wrong: assertions on decisions panic, unexpected store
//! errors come back as a [`ConformanceError`] naming the call that failed. [`CASES`] lists
//! them all (and a test checks that every `pub async fn` of the suite is listed). Every case
//! needs a **fresh, empty store** (a networked backend: a new random key prefix per case),
//! because cases reuse keys.
//!
//! The harness — [`TestClock`], [`RealClock`], [`StoreProbe`], [`Fixture`], the runner — is
//! `tokenward_core::conformance`, shared by every tokenward suite; read its docs for how
//! cases keep time and why a backend must not do maintenance across cases' namespaces.
//!
//! # Running the suite
//!
//! [`ratelimit_conformance_tests!`](crate::ratelimit_conformance_tests) expands to one
//! `#[test]` per case, all run on one tokio runtime. It needs only this crate, with the
//! feature, in the crate that invokes it:
//!
//! ```toml
//! [dev-dependencies]
//! tokenward-ratelimit = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! The one-liner takes an async function returning a fresh [`RateLimitEnv`]: the store, the
//! clock it keeps time by, and a [`StoreProbe`] into it.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokenward_core::{ManualClock, UnixTime};
//! use tokenward_ratelimit::conformance::RateLimitEnv;
//! use tokenward_ratelimit::{LimiterClock, MemoryRateLimitConfig, MemoryRateLimitStore};
//!
//! async fn make_env() -> RateLimitEnv {
//!     let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//!     let config = MemoryRateLimitConfig::new()
//!         .clock(LimiterClock::manual(&clock))
//!         // Expired state must be gone within a second of use (see `expired_state_leaves_the_store`).
//!         .prune_interval(Duration::from_secs(1));
//!     let store = Arc::new(MemoryRateLimitStore::with_config(config).expect("valid config"));
//!     // The in-memory store is its own probe.
//!     RateLimitEnv::new(store.clone(), Arc::new(clock), store)
//! }
//!
//! // In a test file (tests/conformance.rs): one #[test] per case. Wrap it in a `mod` to run
//! // the suite more than once in a file (e.g. for two configurations).
//! tokenward_ratelimit::ratelimit_conformance_tests!(make_env);
//! # fn main() {}
//! ```
//!
//! A backend with a connection pool, or tables to create and drop, implements
//! [`Fixture<RateLimitEnv>`](Fixture) once and runs the suite with
//! `ratelimit_conformance_tests!(fixture = MyFixture, setup = MyFixture::setup)`: `setup`
//! runs once per test binary, `Fixture::env` before each case, `Fixture::teardown` after each
//! (passed or failed).
//!
//! With a backend that keeps its own time (Redis `TIME`), return
//! [`RealClock::new()`](RealClock::new) as the clock: the cases then sleep (no case waits much
//! more than three seconds) and check durations within its tolerance.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokenward_core::conformance::{LOST_ENTRY_HINT, advance_past};

use crate::{BanQuota, Decision, GcraCharge, GcraQuota, LimitKey, MAX_KEY_LEN, RateLimitStore};

mod ban;
mod gcra;

#[doc(hidden)]
pub use tokenward_core as __core;
pub use tokenward_core::conformance::{
    CaseResult, ConformanceError, Fixture, RealClock, Step, StoreEnv, StoreProbe, TestClock,
};

pub use ban::*;
pub use gcra::*;

/// The names of all cases, in the order the macro expands them. Each is a function of this
/// module.
pub const CASES: &[&str] = crate::__ratelimit_conformance_cases!(names);

/// Expands to one `#[test]` per conformance case (see the [`conformance`](crate::conformance)
/// module for an example and the dependencies it needs).
///
/// - `ratelimit_conformance_tests!(make_env)`: `make_env` is an async function or closure
///   returning a fresh [`RateLimitEnv`](crate::conformance::RateLimitEnv); it is called once
///   per case.
/// - `ratelimit_conformance_tests!(fixture = F, setup = f)`: `F: Fixture<RateLimitEnv>`, `f`
///   an async function returning `Result<F, E>`, called once per test binary.
#[macro_export]
macro_rules! ratelimit_conformance_tests {
    (fixture = $fixture:ty, setup = $setup:expr $(,)?) => {
        $crate::__ratelimit_conformance_cases!(tests [fixture = $fixture, setup = $setup]);
    };
    ($make_env:expr $(,)?) => {
        $crate::__ratelimit_conformance_cases!(tests [make_env = $make_env]);
    };
}

// The list of cases, expanded by `tokenward_core::__conformance_expand` into tests or into the
// `CASES` names: the one place a new case is listed (besides its function).
#[doc(hidden)]
#[macro_export]
macro_rules! __ratelimit_conformance_cases {
    ($($mode:tt)*) => {
        $crate::conformance::__core::__conformance_expand! {
            [$($mode)*] ($crate::conformance)
            n_allowed_then_denied
            retry_after_is_correct
            reset_after_the_period
            burst_narrower_than_limit
            cost_above_one
            gcra_decisions_follow_the_formulas
            emission_interval_is_never_rounded_down
            distinct_keys_are_independent
            no_over_admission_under_concurrency
            ban_lifecycle
            ban_decisions_follow_the_formulas
            ban_outlasts_findtime_and_expires
            failures_outside_findtime_do_not_accumulate
            findtime_is_a_sliding_window
            lift_ban_forgets_failures
            failures_during_a_ban_do_not_extend_it
            ban_keys_are_independent
            network_bans_cover_every_address_of_the_network
            holds_no_ban_is_never_true_while_a_ban_holds
            keys_of_any_bytes_up_to_the_limit_work
            expired_state_leaves_the_store
            each_call_is_one_round_trip
            fast_path_shares_the_state
        }
    };
}

/// What a case runs against: a fresh, empty store, the clock it keeps time by, and a probe
/// into it ([`StoreEnv::new`]).
pub type RateLimitEnv = StoreEnv<dyn RateLimitStore>;

/// The in-memory store answers its own probe: the GCRA and ban keys it tracks (expired ones
/// not yet pruned included), what it holds for them, and no round trips.
#[cfg(feature = "memory")]
#[async_trait::async_trait]
impl StoreProbe for crate::MemoryRateLimitStore {
    async fn stored_entries(&self) -> Result<u64, tokenward_core::StoreError> {
        let entries = self.tracked_keys().saturating_add(self.ban_keys());
        Ok(u64::try_from(entries).unwrap_or(u64::MAX))
    }

    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, tokenward_core::StoreError> {
        Ok(crate::MemoryRateLimitStore::stored_bytes(self))
    }

    fn round_trips(&self) -> u64 {
        0
    }
}

// ---- helpers -----------------------------------------------------------------------------

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A suite key; the suite only uses valid ones.
#[expect(
    clippy::expect_used,
    reason = "the suite's keys are valid by construction"
)]
fn key(key: &str) -> LimitKey<'static> {
    LimitKey::new(key.to_owned()).expect("the suite's keys are valid LimitKeys")
}

/// A suite quota: `limit` per `period`, burst `burst`; the suite only uses valid ones.
#[expect(
    clippy::expect_used,
    reason = "the suite's quotas are valid by construction"
)]
fn quota(limit: u32, period: Duration, burst: u32) -> GcraQuota {
    let nz = |n| NonZeroU32::new(n).expect("the suite's counts are not zero");
    GcraQuota::new(nz(limit), period)
        .and_then(|q| q.with_burst(nz(burst)))
        .expect("the suite's quotas are valid")
}

/// `cost` cells of `quota`; the suite only uses costs within the burst.
#[expect(
    clippy::expect_used,
    reason = "the suite's costs are valid by construction"
)]
fn cells(quota: GcraQuota, cost: u32) -> GcraCharge {
    quota
        .charge(cost)
        .expect("the suite's costs are within the burst")
}

/// One cell of `quota`.
fn one(quota: GcraQuota) -> GcraCharge {
    GcraCharge::single(quota)
}

/// A suite ban quota; the suite only uses valid ones.
#[expect(
    clippy::expect_used,
    reason = "the suite's quotas are valid by construction"
)]
fn ban_quota(maxretry: u32, findtime: Duration, bantime: Duration) -> BanQuota {
    let maxretry = NonZeroU32::new(maxretry).expect("the suite's counts are not zero");
    BanQuota::new(maxretry, findtime, bantime).expect("the suite's quotas are valid")
}

/// Asserts `actual` is within `[expected - tol, expected + tol / 10]` (time only passes, so a
/// backend measured later sees a shorter wait), or exactly `expected` for an exact clock.
#[track_caller]
fn assert_about(actual: Duration, expected: Duration, clock: &dyn TestClock, what: &str) {
    let tol = clock.tolerance();
    assert!(
        actual <= expected.saturating_add(tol / 10) && actual + tol >= expected,
        "{what}: got {actual:?}, expected {expected:?} (tolerance {tol:?})"
    );
}

#[track_caller]
fn assert_allowed(d: &Decision, remaining: u32, what: &str) {
    assert!(d.allowed, "{what}: expected allowed, got {d:?}");
    assert_eq!(d.remaining, remaining, "{what}: remaining in {d:?}");
    assert!(
        d.retry_after.is_none(),
        "{what}: allowed with retry_after: {d:?}"
    );
}

#[track_caller]
fn assert_denied(d: &Decision, what: &str) -> Duration {
    assert!(!d.allowed, "{what}: expected denied, got {d:?}");
    assert_eq!(d.remaining, 0, "{what}: denied with remaining > 0: {d:?}");
    assert!(
        d.retry_after.is_some(),
        "{what}: denied without retry_after: {d:?}"
    );
    let retry = d.retry_after.unwrap_or_default();
    assert!(retry > Duration::ZERO, "{what}: zero retry_after: {d:?}");
    assert!(d.reset >= retry, "{what}: reset before retry_after: {d:?}");
    retry
}

/// Asserts that the round trips made since `before` are at most one.
#[track_caller]
fn assert_one_round_trip(probe: &dyn StoreProbe, before: u64, what: &str) {
    let made = probe.round_trips().saturating_sub(before);
    assert!(
        made <= 1,
        "{what} made {made} round trips; the contract allows one"
    );
}

// ---- keys and the store as a whole ---------------------------------------------------------

/// Keys are opaque bytes: any but NUL, up to [`MAX_KEY_LEN`] (braces, spaces, control
/// characters, any Unicode), each key independent — also of one that differs only in its last
/// byte, or only in case — and GCRA state never shares a key's ban state.
pub async fn keys_of_any_bytes_up_to_the_limit_work(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, .. } = env;
    let q = quota(2, secs(3600), 2);
    let ban = ban_quota(2, secs(60), secs(300));
    let longest = format!("ko:{}", "k".repeat(MAX_KEY_LEN - 4));
    let keys = [
        "ko:{tag}".to_owned(),
        "ko:}{".to_owned(),
        "ko:\u{1}\t\r\n \u{7f}".to_owned(),
        "ko:ü€😀\u{202e}".to_owned(),
        "ko:{".repeat(MAX_KEY_LEN / 4),
        format!("{longest}x"),
        format!("{longest}y"),
        "ko:case".to_owned(),
        "ko:CASE".to_owned(),
    ];
    for k in &keys {
        let k = key(k);
        let d = store.gcra(&k, &one(q)).await.step("gcra")?;
        assert_allowed(&d, 1, &format!("first request of {k:?}"));
        let d = store.gcra(&k, &one(q)).await.step("gcra")?;
        assert_allowed(&d, 0, &format!("second request of {k:?}"));
        let d = store.gcra(&k, &one(q)).await.step("gcra")?;
        assert_denied(&d, &format!("third request of {k:?}"));
        let d = store
            .record_failure(&k, &ban)
            .await
            .step("record_failure")?;
        assert_allowed(&d, 1, &format!("one failure of {k:?}, GCRA state apart"));
    }
    // Each key kept its own state: the last one of each pair neither saw the other's
    // requests nor its failures (it would be banned or denied one request early).
    Ok(())
}

/// Expired state leaves the store on its own, without a cleanup job: GCRA keys whose cells
/// are all back, counted failures past `findtime`, ended bans. Counted with
/// [`StoreProbe::stored_entries`] after the store was used again (one second after
/// everything expired): a backend that removes expired state on a schedule (the in-memory
/// store's `prune_interval`) runs the suite with a schedule of at most a second.
pub async fn expired_state_leaves_the_store(env: RateLimitEnv) -> CaseResult {
    const KEYS: usize = 24;
    const LATER: u64 = 16;
    /// Expired entries a backend may still hold after the later writes (lazily expiring
    /// backends reclaim on access or in the background).
    const SLACK: u64 = 8;
    let RateLimitEnv {
        store,
        clock,
        probe,
    } = env;
    // One cell per 100 ms; failures count for a second; bans last a second.
    let short = quota(10, secs(1), 10);
    let ban = ban_quota(2, secs(1), secs(1));
    for i in 0..KEYS {
        store
            .gcra(&key(&format!("ex:g{i}")), &one(short))
            .await
            .step("gcra of a short-lived key")?;
        let failing = key(&format!("ex:f{i}"));
        store
            .record_failure(&failing, &ban)
            .await
            .step("record_failure")?;
        if i % 2 == 0 {
            let d = store
                .record_failure(&failing, &ban)
                .await
                .step("record_failure")?;
            assert_denied(&d, "the second failure bans");
        }
    }
    let held = probe
        .stored_entries()
        .await
        .step("StoreProbe::stored_entries")?;
    assert!(
        held >= 2 * KEYS as u64,
        "the probe counts {held} entries after {} keys were used: it must count what the \
         store holds for this case",
        2 * KEYS
    );
    // Everything has expired after 1 s; one more second for stores that prune on a schedule.
    advance_past(&*clock, secs(2)).await;
    let long = quota(10, secs(3600), 10);
    for i in 0..LATER {
        store
            .gcra(&key(&format!("ex:live{i}")), &one(long))
            .await
            .step("gcra of a long-lived key")?;
    }
    let held = probe
        .stored_entries()
        .await
        .step("StoreProbe::stored_entries")?;
    assert!(
        held <= LATER + SLACK,
        "{held} entries held after {} expired and {LATER} live ones were written: expired \
         state must leave the store without a cleanup job",
        2 * KEYS
    );
    assert!(
        held >= LATER,
        "{held} entries held, fewer than the {LATER} live ones: {LOST_ENTRY_HINT}"
    );
    let d = store
        .gcra(&key("ex:live0"), &one(long))
        .await
        .step("gcra of a live key")?;
    assert_allowed(&d, 8, "a live key kept its state");
    Ok(())
}

/// Every call — `gcra`, `ban_status`, `record_failure`, `lift_ban` — is one round trip to the
/// backend, banned or not, counted through [`StoreProbe::round_trips`].
pub async fn each_call_is_one_round_trip(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, probe, .. } = env;
    let q = quota(1, secs(3600), 1);
    let ban = ban_quota(1, secs(60), secs(300));
    let k = key("rt:k");
    for what in ["admitted", "denied"] {
        let before = probe.round_trips();
        store.gcra(&k, &cells(q, 1)).await.step("gcra")?;
        assert_one_round_trip(&*probe, before, &format!("gcra ({what})"));
    }
    for what in ["not banned", "banned"] {
        let before = probe.round_trips();
        store.ban_status(&k, &ban).await.step("ban_status")?;
        assert_one_round_trip(&*probe, before, &format!("ban_status ({what})"));
        let before = probe.round_trips();
        store
            .record_failure(&k, &ban)
            .await
            .step("record_failure")?;
        assert_one_round_trip(&*probe, before, &format!("record_failure ({what})"));
    }
    let before = probe.round_trips();
    store.lift_ban(&k).await.step("lift_ban")?;
    assert_one_round_trip(&*probe, before, "lift_ban");
    Ok(())
}

/// A store's synchronous fast path ([`RateLimitStore::gcra_now`],
/// [`RateLimitStore::ban_status_now`]), where it has one, answers from the same state as the
/// async calls: cells taken on one path are gone on the other, and a ban recorded through the
/// async call shows on the fast path. (A store without a fast path — `None`, as network
/// stores answer — passes trivially: callers then use the async calls.)
pub async fn fast_path_shares_the_state(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, .. } = env;
    let q = one(quota(3, secs(3600), 3));
    let k = key("fp:k");
    // Alternate the paths: fast, async, fast, then the fourth request is denied on both.
    let fast = |store: &Arc<dyn RateLimitStore>| store.gcra_now(&k, &q);
    let mut remaining = 3;
    for (i, use_fast) in [true, false, true].into_iter().enumerate() {
        let d = match use_fast.then(|| fast(&store)).flatten() {
            Some(answer) => answer.step("gcra_now")?,
            None => store.gcra(&k, &q).await.step("gcra")?,
        };
        remaining -= 1;
        assert_allowed(
            &d,
            remaining,
            &format!("request {} (fast path: {use_fast})", i + 1),
        );
    }
    if let Some(answer) = fast(&store) {
        assert_denied(
            &answer.step("gcra_now")?,
            "fast path after the budget is spent",
        );
    }
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_denied(&d, "async call after the budget is spent");

    let ban = ban_quota(2, secs(60), secs(300));
    let b = key("fp:b");
    if let Some(answer) = store.ban_status_now(&b, &ban) {
        assert_allowed(
            &answer.step("ban_status_now")?,
            2,
            "fast path: no failure yet",
        );
    }
    for _ in 0..2 {
        store
            .record_failure(&b, &ban)
            .await
            .step("record_failure")?;
    }
    if let Some(answer) = store.ban_status_now(&b, &ban) {
        assert_denied(&answer.step("ban_status_now")?, "fast path sees the ban");
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
