//! The conformance suite every [`RateLimitStore`] backend runs: tokenward's in-memory and
//! Redis stores, and yours.
//!
//! Each case is a `pub async fn(store, clock)` that exercises one part of the
//! [contract](RateLimitStore#contract): assertions on decisions and error *kinds* panic,
//! unexpected store errors come back as a [`ConformanceError`] naming the call that failed.
//! [`CASES`] lists them all. Every case needs a **fresh, empty store** (a networked backend:
//! a new random key prefix per case), because cases reuse keys.
//!
//! Time comes from a [`TestClock`]: a [`ManualLimiterClock`] the store also reads (time
//! jumps, no waiting), or [`RealClock`] for backends that keep their own time, such as
//! Redis's `TIME` (the cases then sleep; no case waits much more than three seconds).
//!
//! # Running the suite
//!
//! [`ratelimit_conformance_tests!`](crate::ratelimit_conformance_tests) expands to one
//! `#[tokio::test]` per case. It takes an async function (or closure) returning a fresh
//! `(Arc<dyn RateLimitStore>, Arc<dyn TestClock>)`, and needs, in the crate that invokes it:
//!
//! ```toml
//! [dev-dependencies]
//! tokenward-ratelimit = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use tokenward_ratelimit::conformance::TestClock;
//! use tokenward_ratelimit::{
//!     LimiterClock, ManualLimiterClock, MemoryRateLimitStore, RateLimitStore,
//! };
//!
//! async fn make_env() -> (Arc<dyn RateLimitStore>, Arc<dyn TestClock>) {
//!     let clock = ManualLimiterClock::new();
//!     let store = MemoryRateLimitStore::with_clock(LimiterClock::manual(&clock));
//!     (Arc::new(store), Arc::new(clock))
//! }
//!
//! // In a test file (tests/conformance.rs): one #[tokio::test] per case.
//! tokenward_ratelimit::ratelimit_conformance_tests!(make_env);
//! # fn main() {
//! #     let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! #     rt.block_on(async {
//! #         let (store, clock) = make_env().await;
//! #         tokenward_ratelimit::conformance::ban_lifecycle(store, clock).await.unwrap();
//! #     });
//! # }
//! ```
//!
//! With a backend that keeps its own time, return `Arc::new(RealClock::new())` as the clock.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::{StoreError, StoreErrorKind};

use crate::{BanQuota, Decision, GcraQuota, ManualLimiterClock, RateLimitStore};

/// The names of all cases, in the order the macro expands them. Each is a function of this
/// module.
pub const CASES: &[&str] = crate::__ratelimit_conformance_cases!(names);

/// Expands to one `#[tokio::test]` per conformance case (see the
/// [`conformance`](crate::conformance) module for an example and the dependencies it needs).
///
/// `$make_env` is an async function or closure returning a fresh
/// `(Arc<dyn RateLimitStore>, Arc<dyn TestClock>)`; it is called once per case.
#[macro_export]
macro_rules! ratelimit_conformance_tests {
    ($make_env:expr $(,)?) => {
        $crate::__ratelimit_conformance_cases!(tests $make_env);
    };
}

// The one place a new case is listed (besides its function).
#[doc(hidden)]
#[macro_export]
macro_rules! __ratelimit_conformance_cases {
    ($($mode:tt)*) => {
        $crate::__ratelimit_conformance_expand! {
            [$($mode)*]
            n_allowed_then_denied
            retry_after_is_correct
            reset_after_the_period
            burst_narrower_than_limit
            cost_above_one
            invalid_input_is_rejected
            distinct_keys_are_independent
            no_over_admission_under_concurrency
            ban_lifecycle
            ban_outlasts_findtime_and_expires
            failures_outside_findtime_do_not_accumulate
            findtime_is_a_sliding_window
            lift_ban_forgets_failures
            failures_during_a_ban_do_not_extend_it
            ban_keys_are_independent
            fast_path_shares_the_state
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __ratelimit_conformance_expand {
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
/// Implemented for [`ManualLimiterClock`] (share it with the store: [`advance`](Self::advance)
/// moves the store's time instantly) and [`RealClock`] (`advance` sleeps).
#[async_trait]
pub trait TestClock: Send + Sync + 'static {
    /// Lets at least `d` pass.
    async fn advance(&self, d: Duration);

    /// How far from a boundary a case keeps its checks (time a call takes, millisecond
    /// rounding, clock differences). Zero for an exact clock (the default): the cases then
    /// check durations exactly.
    fn tolerance(&self) -> Duration {
        Duration::ZERO
    }
}

#[async_trait]
impl TestClock for ManualLimiterClock {
    async fn advance(&self, d: Duration) {
        ManualLimiterClock::advance(self, d);
    }
}

/// Real time, for backends that keep their own (Redis `TIME`): `advance` sleeps with
/// `tokio::time::sleep`, so tokio's clock must not be paused.
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

    /// A real clock with another tolerance (keep it under 400 ms: the shortest windows in
    /// the cases are one second).
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

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Asserts `actual` is within `[expected - tol, expected]` (time only passes, so a backend
/// measured later sees a shorter wait), or exactly `expected` for an exact clock.
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

#[track_caller]
fn assert_kind<T: fmt::Debug>(r: Result<T, StoreError>, kind: StoreErrorKind, what: &str) {
    assert!(r.is_err(), "{what}: expected a {kind:?} error, got {r:?}");
    if let Err(e) = r {
        assert_eq!(e.kind(), kind, "{what}: wrong error kind: {e}");
    }
}

// ---- GCRA --------------------------------------------------------------------------------

/// `limit` requests are admitted (with `remaining` counting down), the next is denied, and a
/// denial consumes nothing.
pub async fn n_allowed_then_denied(
    store: Arc<dyn RateLimitStore>,
    _clock: Arc<dyn TestClock>,
) -> CaseResult {
    // 5 per hour: nothing replenishes while the case runs.
    let quota = GcraQuota::per_hour(5);
    for i in 0..5 {
        let d = store.gcra("n:k", &quota, 1).await.step("gcra")?;
        assert_allowed(&d, 4 - i, &format!("request {}", i + 1));
        assert_eq!(d.limit, 5);
    }
    for _ in 0..3 {
        let d = store.gcra("n:k", &quota, 1).await.step("gcra")?;
        assert_denied(&d, "request over the limit");
        assert_eq!(d.limit, 5);
    }
    Ok(())
}

/// A denial's `retry_after` is when one cell is back; retrying then is admitted, retrying
/// before is not.
pub async fn retry_after_is_correct(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    // 3 per 3 s: one cell every second.
    let quota = GcraQuota::new(3, secs(3));
    for _ in 0..3 {
        let d = store.gcra("ra:k", &quota, 1).await.step("gcra")?;
        assert!(d.allowed, "within the limit: {d:?}");
    }
    let d = store.gcra("ra:k", &quota, 1).await.step("gcra")?;
    let retry = assert_denied(&d, "4th request");
    assert_about(retry, secs(1), &*clock, "retry_after");
    assert_about(d.reset, secs(3), &*clock, "reset when empty");

    clock.advance(ms(500)).await;
    let d = store.gcra("ra:k", &quota, 1).await.step("gcra")?;
    let retry = assert_denied(&d, "half-way to retry_after");
    assert_about(retry, ms(500), &*clock, "retry_after half-way");

    clock.advance(ms(500) + clock.tolerance()).await;
    let d = store.gcra("ra:k", &quota, 1).await.step("gcra")?;
    assert_allowed(&d, 0, "at retry_after");
    let d = store.gcra("ra:k", &quota, 1).await.step("gcra")?;
    assert_denied(&d, "right after the replenished cell");
    Ok(())
}

/// After a whole period without requests the full burst is available again.
pub async fn reset_after_the_period(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = GcraQuota::new(2, secs(1));
    for round in 0..2 {
        for i in 0..2 {
            let d = store.gcra("rp:k", &quota, 1).await.step("gcra")?;
            assert!(d.allowed, "round {round}, request {i}: {d:?}");
        }
        let d = store.gcra("rp:k", &quota, 1).await.step("gcra")?;
        assert_denied(&d, "over the limit");
        clock.advance(secs(1) + clock.tolerance()).await;
    }
    let d = store.gcra("rp:k", &quota, 1).await.step("gcra")?;
    assert!(d.allowed, "after the period: {d:?}");
    assert_eq!(d.remaining, 1, "a full burst is back: {d:?}");
    Ok(())
}

/// `burst < limit`: only `burst` at once, then one per emission interval.
pub async fn burst_narrower_than_limit(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    // 60 per minute (one per second), at most 3 at once.
    let quota = GcraQuota::per_minute(60).with_burst(3);
    for i in 0..3 {
        let d = store.gcra("b:k", &quota, 1).await.step("gcra")?;
        assert_allowed(&d, 2 - i, "within the burst");
        assert_eq!(d.limit, 60, "limit is the rate, not the burst");
    }
    let d = store.gcra("b:k", &quota, 1).await.step("gcra")?;
    let retry = assert_denied(&d, "past the burst");
    assert_about(retry, secs(1), &*clock, "retry_after past the burst");
    assert_about(d.reset, secs(3), &*clock, "reset past the burst");

    clock.advance(secs(1) + clock.tolerance()).await;
    let d = store.gcra("b:k", &quota, 1).await.step("gcra")?;
    assert_allowed(&d, 0, "one cell replenished");
    let d = store.gcra("b:k", &quota, 1).await.step("gcra")?;
    assert_denied(&d, "only one replenished");
    Ok(())
}

/// A request of cost `n` takes `n` cells, all or nothing.
pub async fn cost_above_one(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    // 10 per minute: one cell every 6 s.
    let quota = GcraQuota::per_minute(10);
    let d = store.gcra("c:k", &quota, 4).await.step("gcra cost 4")?;
    assert_allowed(&d, 6, "first cost 4");
    let d = store.gcra("c:k", &quota, 4).await.step("gcra cost 4")?;
    assert_allowed(&d, 2, "second cost 4");
    let d = store.gcra("c:k", &quota, 4).await.step("gcra cost 4")?;
    let retry = assert_denied(&d, "third cost 4 (2 left)");
    assert_about(retry, secs(12), &*clock, "retry_after for 2 missing cells");
    // The denial took nothing: the 2 cells left still serve a cost-2 request.
    let d = store.gcra("c:k", &quota, 2).await.step("gcra cost 2")?;
    assert_allowed(&d, 0, "cost 2 with 2 left");
    let d = store.gcra("c:k", &quota, 1).await.step("gcra cost 1")?;
    assert_denied(&d, "empty");
    Ok(())
}

/// Invalid keys, quotas and costs are `InvalidInput` errors.
pub async fn invalid_input_is_rejected(
    store: Arc<dyn RateLimitStore>,
    _clock: Arc<dyn TestClock>,
) -> CaseResult {
    use StoreErrorKind::InvalidInput;
    let quota = GcraQuota::per_minute(10).with_burst(5);
    assert_kind(store.gcra("i:k", &quota, 0).await, InvalidInput, "cost 0");
    assert_kind(
        store.gcra("i:k", &quota, 6).await,
        InvalidInput,
        "cost > burst",
    );
    assert_kind(store.gcra("", &quota, 1).await, InvalidInput, "empty key");
    let long = "k".repeat(crate::MAX_KEY_LEN + 1);
    assert_kind(store.gcra(&long, &quota, 1).await, InvalidInput, "long key");
    for bad in [
        GcraQuota::per_minute(0),
        GcraQuota::new(10, Duration::ZERO),
        GcraQuota::per_minute(10).with_burst(0),
    ] {
        assert_kind(store.gcra("i:k", &bad, 1).await, InvalidInput, "bad quota");
    }
    let ban = BanQuota::new(3, secs(60), secs(300));
    for bad in [
        BanQuota::new(0, secs(60), secs(300)),
        BanQuota::new(3, Duration::ZERO, secs(300)),
        BanQuota::new(3, secs(60), Duration::ZERO),
    ] {
        assert_kind(
            store.record_failure("i:b", &bad).await,
            InvalidInput,
            "bad ban",
        );
        assert_kind(store.ban_status("i:b", &bad).await, InvalidInput, "bad ban");
    }
    assert_kind(
        store.record_failure("", &ban).await,
        InvalidInput,
        "empty key",
    );
    assert_kind(store.ban_status("", &ban).await, InvalidInput, "empty key");
    assert_kind(store.lift_ban("").await, InvalidInput, "empty key");
    // Nothing was consumed by the rejected calls.
    let d = store
        .gcra("i:k", &quota, 5)
        .await
        .step("gcra after rejections")?;
    assert_allowed(&d, 0, "full burst after rejections");
    let d = store.ban_status("i:b", &ban).await.step("ban_status")?;
    assert_allowed(&d, 3, "no failure counted after rejections");
    Ok(())
}

/// Exhausting one key leaves the others untouched.
pub async fn distinct_keys_are_independent(
    store: Arc<dyn RateLimitStore>,
    _clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = GcraQuota::per_hour(2);
    for _ in 0..2 {
        store.gcra("d:a", &quota, 1).await.step("gcra a")?;
    }
    let d = store.gcra("d:a", &quota, 1).await.step("gcra a")?;
    assert_denied(&d, "a exhausted");
    let d = store.gcra("d:b", &quota, 1).await.step("gcra b")?;
    assert_allowed(&d, 1, "b untouched");
    // Keys that merely share a prefix or differ in case are distinct too.
    let d = store.gcra("d:a:", &quota, 1).await.step("gcra a:")?;
    assert_allowed(&d, 1, "prefix of another key");
    let d = store.gcra("D:A", &quota, 1).await.step("gcra A")?;
    assert_allowed(&d, 1, "case differs");
    Ok(())
}

/// 64 tasks hammering one key with a limit of 300 admit exactly 300.
pub async fn no_over_admission_under_concurrency(
    store: Arc<dyn RateLimitStore>,
    _clock: Arc<dyn TestClock>,
) -> CaseResult {
    // 300 per hour: one cell every 12 s, far longer than the hammering takes.
    let quota = GcraQuota::per_hour(300);
    let admitted = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = Arc::clone(&store);
        let admitted = Arc::clone(&admitted);
        tasks.push(tokio::spawn(async move {
            for _ in 0..8 {
                let d = store.gcra("cc:k", &quota, 1).await?;
                if d.allowed {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), StoreError>(())
        }));
    }
    for t in tasks {
        match t.await {
            Ok(r) => r.step("concurrent gcra")?,
            Err(e) => {
                return Err(ConformanceError {
                    message: format!("a hammering task failed: {e}"),
                    source: None,
                });
            }
        }
    }
    assert_eq!(
        admitted.load(Ordering::Relaxed),
        300,
        "64 × 8 requests, limit 300"
    );
    Ok(())
}

// ---- failure bans ------------------------------------------------------------------------

/// `maxretry - 1` failures: not banned (one failure left); `maxretry`: banned for `bantime`.
pub async fn ban_lifecycle(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = BanQuota::new(3, secs(60), secs(300));
    let d = store.ban_status("bl:k", &quota).await.step("ban_status")?;
    assert_allowed(&d, 3, "no failures yet");
    assert_eq!(d.limit, 3);
    for i in 0..2 {
        let d = store
            .record_failure("bl:k", &quota)
            .await
            .step("record_failure")?;
        assert_allowed(&d, 2 - i, "below maxretry");
    }
    let d = store.ban_status("bl:k", &quota).await.step("ban_status")?;
    assert_allowed(&d, 1, "maxretry - 1 failures");
    assert!(
        d.reset > Duration::ZERO && d.reset <= secs(60),
        "reset within findtime: {d:?}"
    );

    let d = store
        .record_failure("bl:k", &quota)
        .await
        .step("record_failure")?;
    let retry = assert_denied(&d, "maxretry-th failure bans");
    assert_about(retry, secs(300), &*clock, "ban length");
    let d = store.ban_status("bl:k", &quota).await.step("ban_status")?;
    let retry = assert_denied(&d, "banned");
    assert_about(retry, secs(300), &*clock, "ban left");
    assert_eq!(d.limit, 3);
    Ok(())
}

/// The ban holds past `findtime` and ends after `bantime`; counting then starts afresh.
pub async fn ban_outlasts_findtime_and_expires(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let tol = clock.tolerance();
    let quota = BanQuota::new(2, secs(1), secs(2));
    store
        .record_failure("be:k", &quota)
        .await
        .step("record_failure")?;
    let d = store
        .record_failure("be:k", &quota)
        .await
        .step("record_failure")?;
    assert_denied(&d, "second failure bans");

    clock.advance(secs(1) + tol).await;
    let d = store.ban_status("be:k", &quota).await.step("ban_status")?;
    let retry = assert_denied(&d, "past findtime, within bantime");
    assert!(retry <= secs(1), "ban left after 1 s of 2: {d:?}");

    clock.advance(secs(1)).await;
    let d = store.ban_status("be:k", &quota).await.step("ban_status")?;
    assert_allowed(&d, 2, "after bantime, nothing counted");

    let d = store
        .record_failure("be:k", &quota)
        .await
        .step("record_failure")?;
    assert_allowed(&d, 1, "one failure after the ban");
    Ok(())
}

/// Failures further apart than `findtime` never add up to a ban.
pub async fn failures_outside_findtime_do_not_accumulate(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = BanQuota::new(3, secs(1), secs(60));
    for _ in 0..2 {
        store
            .record_failure("fw:k", &quota)
            .await
            .step("record_failure")?;
    }
    clock.advance(secs(1) + clock.tolerance()).await;
    let d = store.ban_status("fw:k", &quota).await.step("ban_status")?;
    assert_allowed(&d, 3, "earlier failures left the window");
    for i in 0..2 {
        let d = store
            .record_failure("fw:k", &quota)
            .await
            .step("record_failure")?;
        assert_allowed(&d, 2 - i, "fresh failures only");
    }
    let d = store
        .record_failure("fw:k", &quota)
        .await
        .step("record_failure")?;
    assert_denied(&d, "three within findtime");
    Ok(())
}

/// `findtime` slides: each failure counts for `findtime` after it happened (not in fixed
/// windows anchored anywhere).
pub async fn findtime_is_a_sliding_window(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = BanQuota::new(3, secs(1), secs(60));
    // Failures at 0 s, 0.7 s and 1.4 s: at 1.4 s the first has left the window.
    store
        .record_failure("sw:k", &quota)
        .await
        .step("record_failure")?;
    clock.advance(ms(700)).await;
    let d = store
        .record_failure("sw:k", &quota)
        .await
        .step("record_failure")?;
    assert_allowed(&d, 1, "two within findtime");
    clock.advance(ms(700)).await;
    let d = store
        .record_failure("sw:k", &quota)
        .await
        .step("record_failure")?;
    assert_allowed(&d, 1, "the first failure slid out of the window");
    // A fourth right away: three within one second (0.7 s, 1.4 s, now) ban. A fixed window
    // anchored at the first failure, or at 1 s, would hold only two.
    let d = store
        .record_failure("sw:k", &quota)
        .await
        .step("record_failure")?;
    assert_denied(&d, "three within a sliding findtime");
    Ok(())
}

/// `lift_ban` ends a ban and forgets the counted failures; lifting an unknown key is fine.
pub async fn lift_ban_forgets_failures(
    store: Arc<dyn RateLimitStore>,
    _clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = BanQuota::new(3, secs(60), secs(300));
    for _ in 0..3 {
        store
            .record_failure("lb:k", &quota)
            .await
            .step("record_failure")?;
    }
    let d = store.ban_status("lb:k", &quota).await.step("ban_status")?;
    assert_denied(&d, "banned");
    store.lift_ban("lb:k").await.step("lift_ban")?;
    let d = store.ban_status("lb:k", &quota).await.step("ban_status")?;
    assert_allowed(&d, 3, "lifted");
    for i in 0..2 {
        let d = store
            .record_failure("lb:k", &quota)
            .await
            .step("record_failure")?;
        assert_allowed(&d, 2 - i, "counting afresh after the lift");
    }
    store
        .lift_ban("lb:k")
        .await
        .step("lift_ban without a ban")?;
    let d = store.ban_status("lb:k", &quota).await.step("ban_status")?;
    assert_allowed(&d, 3, "lift forgets failures below maxretry too");
    store
        .lift_ban("lb:unknown")
        .await
        .step("lift_ban of an unknown key")?;
    Ok(())
}

/// Failures recorded while banned neither count nor extend the ban.
pub async fn failures_during_a_ban_do_not_extend_it(
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = BanQuota::new(1, secs(1), secs(2));
    let d = store
        .record_failure("fb:k", &quota)
        .await
        .step("record_failure")?;
    assert_denied(&d, "maxretry 1 bans at once");
    clock.advance(ms(1000)).await;
    let d = store
        .record_failure("fb:k", &quota)
        .await
        .step("record_failure")?;
    let retry = assert_denied(&d, "failure while banned");
    assert!(retry <= secs(1), "the ban was extended: {d:?}");
    clock.advance(secs(1) + clock.tolerance()).await;
    let d = store.ban_status("fb:k", &quota).await.step("ban_status")?;
    assert_allowed(&d, 1, "ban over, the failure during it not counted");
    Ok(())
}

/// Bans and failure counts of one key leave the others untouched.
pub async fn ban_keys_are_independent(
    store: Arc<dyn RateLimitStore>,
    _clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = BanQuota::new(2, secs(60), secs(300));
    for _ in 0..2 {
        store
            .record_failure("bk:a", &quota)
            .await
            .step("record_failure a")?;
    }
    store
        .record_failure("bk:b", &quota)
        .await
        .step("record_failure b")?;
    let d = store
        .ban_status("bk:a", &quota)
        .await
        .step("ban_status a")?;
    assert_denied(&d, "a banned");
    let d = store
        .ban_status("bk:b", &quota)
        .await
        .step("ban_status b")?;
    assert_allowed(&d, 1, "b one failure");
    let d = store
        .ban_status("bk:c", &quota)
        .await
        .step("ban_status c")?;
    assert_allowed(&d, 2, "c untouched");
    store.lift_ban("bk:b").await.step("lift_ban b")?;
    let d = store
        .ban_status("bk:a", &quota)
        .await
        .step("ban_status a")?;
    assert_denied(&d, "lifting b leaves a banned");
    Ok(())
}

// ---- Synchronous fast path -----------------------------------------------------------------

/// A store's synchronous fast path ([`RateLimitStore::gcra_now`],
/// [`RateLimitStore::ban_status_now`]), where it has one, answers from the same state as the
/// async calls: cells taken on one path are gone on the other, and a ban recorded through the
/// async call shows on the fast path. (A store without a fast path — `None`, as network
/// stores answer — passes trivially: callers then use the async calls.)
pub async fn fast_path_shares_the_state(
    store: Arc<dyn RateLimitStore>,
    _clock: Arc<dyn TestClock>,
) -> CaseResult {
    let quota = GcraQuota::per_hour(3);
    // Alternate the paths: fast, async, fast, then the fourth request is denied on both.
    let fast = |store: &Arc<dyn RateLimitStore>| store.gcra_now("fp:k", &quota, 1);
    let mut remaining = 3;
    for (i, use_fast) in [true, false, true].into_iter().enumerate() {
        let d = match use_fast.then(|| fast(&store)).flatten() {
            Some(answer) => answer.step("gcra_now")?,
            None => store.gcra("fp:k", &quota, 1).await.step("gcra")?,
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
    let d = store.gcra("fp:k", &quota, 1).await.step("gcra")?;
    assert_denied(&d, "async call after the budget is spent");

    let ban = BanQuota::new(2, Duration::from_secs(60), Duration::from_secs(300));
    if let Some(answer) = store.ban_status_now("fp:b", &ban) {
        assert_allowed(
            &answer.step("ban_status_now")?,
            2,
            "fast path: no failure yet",
        );
    }
    for _ in 0..2 {
        store
            .record_failure("fp:b", &ban)
            .await
            .step("record_failure")?;
    }
    if let Some(answer) = store.ban_status_now("fp:b", &ban) {
        assert_denied(&answer.step("ban_status_now")?, "fast path sees the ban");
    }
    Ok(())
}
