//! The shared harness of tokenward's backend conformance suites (feature `conformance`).
//!
//! Each store trait has its suite in its own crate (`tokenward_revocation::conformance`,
//! `tokenward_ratelimit::conformance`, `tokenward_refresh::conformance`,
//! `tokenward_guard::conformance`); this module is what they share, and what a backend author
//! meets in every one of them:
//!
//! - [`TestClock`] — time as a case sees it: a [`ManualClock`] the store also reads (time
//!   jumps, no waiting), or [`RealClock`] for a backend that keeps its own time (Redis
//!   `TIME`, PostgreSQL `now()`): the cases then sleep, and keep their checks
//!   [`tolerance`](TestClock::tolerance) away from every boundary.
//! - [`StoreProbe`] — what a case may ask the backend beside its trait: the entries and
//!   bytes it holds for the case (self-expiry, no plaintext at rest) and the round trips it
//!   made (one per call where the contract says so).
//! - [`Fixture`] — set up once per test binary (a connection pool, a schema), asked for a
//!   fresh environment per case, and told when a case is over (passed or failed) so it can
//!   drop what the case created.
//! - [`ConformanceError`] / [`Step`] — a case that fails on an unexpected error says which call
//!   failed and keeps the error ([`ConformanceError::store_error`]).
//! - [`check_model`] — the property runner of the model-based cases (proptest generation and
//!   shrinking, driven from async code).
//! - [`SuiteRuntime`] — runs the cases of one suite invocation on **one** tokio runtime, so a
//!   pool made by the fixture serves every case (connections are bound to the runtime that
//!   made them).
//!
//! # Every case in its own namespace and its own time
//!
//! Cases run in parallel, each against a fresh, empty environment (a new key prefix, schema
//! or table set). Each case also has its own clock: one case's `ManualClock` may stand hours
//! after another's. A backend that does maintenance across namespaces by *its own* idea of
//! time — a SQL purge over the whole table, a sweep of every prefix — will delete other cases'
//! live entries and make random cases fail with "revoked entry is gone" or "family vanished"
//! ([`LOST_ENTRY_HINT`]). Purge by the time the store was given for that entry, within the
//! case's namespace, or run the suite with [`RealClock`] against a store that keeps its own
//! time.
//!
//! # Running a suite
//!
//! Every suite has one macro (`revocation_conformance_tests!`, ...) with two forms: a
//! one-liner taking an async function that returns a fresh environment, and a fixture form:
//!
//! ```text
//! // One-liner: a fresh environment per case.
//! tokenward_revocation::revocation_conformance_tests!(make_env);
//! // Fixture: `MyBackend::setup()` once per test binary, `Fixture::env` per case,
//! // `Fixture::teardown` after each.
//! tokenward_revocation::revocation_conformance_tests!(fixture = MyBackend, setup = MyBackend::setup);
//! ```
//!
//! Each expands to one `#[test]` per case. Wrap an invocation in a `mod` to run a suite twice
//! in one file (two configurations).

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use proptest::strategy::ValueTree;

use crate::{Clock, ManualClock, StoreError, SystemClock, UnixTime};

/// An error from a fixture or a probe.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What the assertion of a case adds when an entry the case made is gone too early.
pub const LOST_ENTRY_HINT: &str = "an entry this case wrote is gone before its time. If the \
     backend purges expired entries across namespaces by its own clock (a SQL DELETE over the \
     whole table, a sweep of every key prefix), it deleted the live entries of this case, \
     whose clock differs from other cases' (see tokenward_core::conformance)";

// ---- time ----------------------------------------------------------------------------------

/// Time as a conformance case sees it.
///
/// Implemented for [`ManualClock`] (share it with the store: [`advance`](Self::advance) moves
/// the store's time at once) and [`RealClock`] (wall-clock time; `advance` sleeps).
#[async_trait]
pub trait TestClock: Send + Sync + 'static {
    /// The current time, as the store sees it.
    fn now(&self) -> UnixTime;

    /// Lets at least `d` pass.
    async fn advance(&self, d: Duration);

    /// How far from a deadline a case keeps its checks: one meant to see an entry still live
    /// is made at least this long before its end, one meant to see it gone at least this
    /// long after. Covers the time a call takes, clock differences between the test and the
    /// backend, and rounding. Zero for an exact clock (the default): the cases then check
    /// boundaries exactly — live 1 ns before the end, gone at the end.
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

/// The system clock, for backends that keep their own time (Redis `TIME`, PostgreSQL
/// `now()`): `advance` sleeps with `tokio::time::sleep`.
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

    /// A real clock with another tolerance (keep it under 400 ms: the shortest lifetimes in
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

/// `clock`'s now, rounded down to the millisecond.
pub fn now_ms(clock: &dyn TestClock) -> UnixTime {
    UnixTime::from_millis(clock.now().as_millis())
}

/// Lets time pass until `t` (at least).
pub async fn advance_to(clock: &dyn TestClock, t: UnixTime) {
    let now = clock.now();
    if t > now {
        clock.advance(t.saturating_duration_since(now)).await;
    }
}

/// Lets `d` pass, plus the clock's tolerance.
pub async fn advance_past(clock: &dyn TestClock, d: Duration) {
    clock.advance(d.saturating_add(clock.tolerance())).await;
}

/// Just before `end`: by the tolerance, and at least 1 ns.
pub fn just_before(clock: &dyn TestClock, end: UnixTime) -> UnixTime {
    end.saturating_sub(clock.tolerance().max(Duration::from_nanos(1)))
}

/// Just after `end`: by the tolerance (exactly `end` for an exact clock).
pub fn just_after(clock: &dyn TestClock, end: UnixTime) -> UnixTime {
    end.saturating_add(clock.tolerance())
}

// ---- probing the backend -------------------------------------------------------------------

/// What a case may ask a backend beside its store trait. Every environment carries one; a
/// backend author implements it once (tokenward's in-memory stores answer from their maps,
/// the Redis stores by `SCAN`ning the case's key prefix and counting their round trips).
#[async_trait]
pub trait StoreProbe: Send + Sync + 'static {
    /// How many entries (keys, rows, map entries) the store holds for this case's
    /// environment right now — expired entries not yet removed included. The self-expiry
    /// cases check that this falls back once entries have expired and the store was used
    /// again (no cleanup job may be needed).
    async fn stored_entries(&self) -> Result<u64, StoreError>;

    /// Every byte the store holds for this case: each key and value as one buffer (or any
    /// split). The "no secret at rest" cases search it.
    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Round trips made to the backend so far by this environment's stores (a monotonic
    /// counter; 0 for an in-process store). Cases compare it before and after a call the
    /// contract says is one round trip.
    fn round_trips(&self) -> u64;
}

/// What a case of a store suite runs against: a fresh, empty store, the clock it keeps time by,
/// and a probe into the same store. The suites name it for their trait
/// (`RevocationEnv = StoreEnv<dyn RevocationStore>`, ...).
pub struct StoreEnv<S: ?Sized> {
    /// The store under test, fresh and empty.
    pub store: Arc<S>,
    /// The clock the store keeps time by: a [`ManualClock`] it shares, or [`RealClock`].
    pub clock: Arc<dyn TestClock>,
    /// A probe into the same store.
    pub probe: Arc<dyn StoreProbe>,
}

impl<S: ?Sized> StoreEnv<S> {
    /// A fresh, empty `store`; the `clock` it reads (a `ManualClock` shared with it, or
    /// [`RealClock`] for a store keeping its own time); and a `probe` into the same store.
    pub fn new(store: Arc<S>, clock: Arc<dyn TestClock>, probe: Arc<dyn StoreProbe>) -> Self {
        StoreEnv {
            store,
            clock,
            probe,
        }
    }
}

impl<S: ?Sized> Clone for StoreEnv<S> {
    fn clone(&self) -> Self {
        StoreEnv {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            probe: Arc::clone(&self.probe),
        }
    }
}

impl<S: ?Sized> fmt::Debug for StoreEnv<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreEnv").finish_non_exhaustive()
    }
}

// ---- errors --------------------------------------------------------------------------------

/// A case failed because a call returned an error it did not expect, or a spawned task
/// failed (assertion failures panic instead). Says which call failed.
pub struct ConformanceError {
    message: String,
    source: Option<BoxError>,
}

impl ConformanceError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ConformanceError {
            message: message.into(),
            source: None,
        }
    }

    /// `what` failed with `source`.
    pub fn failed(what: &str, source: impl Into<BoxError>) -> Self {
        ConformanceError {
            message: format!("{what} failed"),
            source: Some(source.into()),
        }
    }

    /// The store error behind the failure, if it was one (also when it is the source of
    /// another error, such as an engine's).
    pub fn store_error(&self) -> Option<&StoreError> {
        let mut next: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|e| e as _);
        while let Some(e) = next {
            if let Some(store) = e.downcast_ref::<StoreError>() {
                return Some(store);
            }
            next = e.source();
        }
        None
    }
}

impl fmt::Display for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
            if let Some(store) = self.store_error() {
                write!(f, " ({:?})", store.kind())?;
            }
        }
        Ok(())
    }
}

/// Same as `Display`: this is what a failing test prints.
impl fmt::Debug for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl StdError for ConformanceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// What a case returns.
pub type CaseResult = Result<(), ConformanceError>;

/// Names the call an error came from: `store.check(&t).await.step("check")?`.
pub trait Step<T> {
    /// `Err(e)` becomes a [`ConformanceError`] saying that `what` failed, keeping `e`.
    fn step(self, what: &str) -> Result<T, ConformanceError>;
}

impl<T, E: Into<BoxError>> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, ConformanceError> {
        self.map_err(|e| ConformanceError::failed(what, e))
    }
}

/// Awaits a spawned task: its panic or cancellation becomes a [`ConformanceError`] with the
/// panic's message.
pub async fn joined<T>(task: tokio::task::JoinHandle<T>) -> Result<T, ConformanceError> {
    task.await.map_err(|e| {
        if e.is_panic() {
            ConformanceError::new(format!(
                "a spawned task panicked: {}",
                panic_message(&*e.into_panic())
            ))
        } else {
            ConformanceError::new(format!("a spawned task did not finish: {e}"))
        }
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

// ---- model-based cases ---------------------------------------------------------------------

/// The most shrinking steps [`check_model`] takes after a failure.
const MAX_SHRINK_STEPS: u32 = 2_000;

/// Runs `cases` values of `strategy` through `run` — generation and shrinking by proptest,
/// driven from async code. On a failure, shrinks it and returns the **minimal failing
/// value** with the reason, as the error message.
///
/// `PROPTEST_CASES` overrides `cases` and `PROPTEST_RNG_SEED` fixes the seed (as in
/// proptest). Nothing is persisted: the message carries the sequence to replay.
pub async fn check_model<S, F, Fut>(strategy: S, cases: u32, mut run: F) -> Result<(), String>
where
    S: proptest::strategy::Strategy,
    S::Value: fmt::Debug,
    F: FnMut(S::Value) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    for case in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| format!("generating case {case}: {e}"))?;
        let Err(first) = run(tree.current()).await else {
            continue;
        };
        let mut reason = first;
        let mut minimal = format!("{:#?}", tree.current());
        let mut steps = 0;
        if tree.simplify() {
            while steps < MAX_SHRINK_STEPS {
                steps += 1;
                match run(tree.current()).await {
                    Ok(()) => {
                        if !tree.complicate() {
                            break;
                        }
                    }
                    Err(why) => {
                        reason = why;
                        minimal = format!("{:#?}", tree.current());
                        if !tree.simplify() {
                            break;
                        }
                    }
                }
            }
        }
        return Err(format!(
            "model-based case failed (case {case} of {cases}, shrunk in {steps} steps).\n\
             Minimal failing sequence:\n{minimal}\nFailure: {reason}"
        ));
    }
    Ok(())
}

// ---- fixtures and the runner ---------------------------------------------------------------

/// A backend's test set-up, shared by every case of one suite invocation.
///
/// It is made once per test binary by the `setup` function given to the suite's macro, lives
/// on the suite's runtime (so it may hold a connection pool), and is asked for a fresh
/// environment per case. `Env` is the suite's environment type (for example
/// `tokenward_revocation::conformance::RevocationEnv`); one fixture type may serve several
/// suites.
#[async_trait]
pub trait Fixture<Env>: Send + Sync + 'static {
    /// A fresh, empty environment for the case named `case` (a new key prefix, schema, ...).
    async fn env(&self, case: &'static str) -> Result<Env, BoxError>;

    /// Called after the case named `case` finished, whether it passed or failed: drop what
    /// [`env`](Self::env) made for it (keys, tables). A failure here fails the case.
    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        let _ = case;
        Ok(())
    }
}

/// The fixture of a suite run with the one-liner form (a function making each environment):
/// nothing to set up or tear down.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFixture;

#[async_trait]
impl Fixture<()> for NoFixture {
    async fn env(&self, _case: &'static str) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The runtime and the fixture of one suite invocation; the suite macros put one in a
/// `static` and run every case through it.
pub struct SuiteRuntime<F> {
    runtime: OnceLock<Result<tokio::runtime::Runtime, String>>,
    fixture: tokio::sync::OnceCell<Arc<F>>,
}

impl<F> fmt::Debug for SuiteRuntime<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuiteRuntime")
            .field("fixture_ready", &self.fixture.initialized())
            .finish_non_exhaustive()
    }
}

impl<F> Default for SuiteRuntime<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F> SuiteRuntime<F> {
    /// An idle runner: the runtime starts, and the fixture is set up, with the first case.
    pub const fn new() -> Self {
        SuiteRuntime {
            runtime: OnceLock::new(),
            fixture: tokio::sync::OnceCell::const_new(),
        }
    }
}

impl<F: Send + Sync + 'static> SuiteRuntime<F> {
    /// Runs one case: sets the fixture up if no case did yet (`setup`), asks it for the
    /// case's environment, runs `body` on the suite's runtime, and tears the environment down
    /// whether the case passed, failed or panicked (a panic is resumed afterwards, so the
    /// test fails with the case's own message).
    pub fn run_case<Env, S, SF, C, CF>(
        &'static self,
        case: &'static str,
        setup: S,
        body: C,
    ) -> CaseResult
    where
        F: Fixture<Env>,
        S: FnOnce() -> SF,
        SF: Future<Output = Result<F, BoxError>>,
        C: FnOnce(Env) -> CF,
        CF: Future<Output = CaseResult>,
    {
        let runtime = self
            .runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .thread_name("tokenward-conformance")
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| ConformanceError::new(format!("cannot start a tokio runtime: {e}")))?;
        let (fixture, env) = runtime.block_on(async {
            let fixture = self
                .fixture
                .get_or_try_init(|| async { setup().await.map(Arc::new) })
                .await
                .map_err(|e| ConformanceError::failed("the fixture's setup", e))?;
            let env = fixture
                .env(case)
                .await
                .map_err(|e| ConformanceError::failed("Fixture::env", e))?;
            Ok::<_, ConformanceError>((Arc::clone(fixture), env))
        })?;
        // `block_on` on the calling (test) thread: a case's future need not be `Send`.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(body(env))));
        let teardown = runtime.block_on(fixture.teardown(case));
        match outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(result) => {
                result?;
                teardown.map_err(|e| ConformanceError::failed("Fixture::teardown", e))
            }
        }
    }
}

// ---- every case is listed ------------------------------------------------------------------

/// The names of the `pub async fn`s in Rust `sources` (a suite module's files): every one of
/// them is a case, by the suites' convention (helpers are private or not `async`).
pub fn public_async_fns(sources: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for source in sources {
        for line in source.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub async fn ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The sources of a suite module: `module.rs` and every `.rs` file under `module/` (for
/// [`check_cases_listed`]: a case in a new file is seen without listing the file anywhere).
/// `module` is a path without extension, such as `src/conformance` under the crate's
/// `CARGO_MANIFEST_DIR`.
pub fn suite_sources(module: &std::path::Path) -> std::io::Result<Vec<String>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::path);
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(std::fs::read_to_string(&path)?);
            }
        }
        Ok(())
    }
    let mut sources = vec![std::fs::read_to_string(module.with_extension("rs"))?];
    if module.is_dir() {
        walk(module, &mut sources)?;
    }
    Ok(sources)
}

/// [`check_cases_listed`] over [`suite_sources`]`(module)`: a suite's `every_case_is_listed`
/// test in one call. Sources that cannot be read are an error too.
pub fn check_suite_listed(module: &std::path::Path, listed: &[&str]) -> Result<(), String> {
    let sources = suite_sources(module).map_err(|err| {
        format!(
            "{}: the suite's sources cannot be read: {err}",
            module.display()
        )
    })?;
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    check_cases_listed(&sources, listed)
}

/// Checks that `listed` (a suite's `CASES`, generated from its macro's list) names exactly the
/// `pub async fn`s of the suite's `sources`: a case written but not run, or listed twice, is an
/// error naming it.
pub fn check_cases_listed(sources: &[&str], listed: &[&str]) -> Result<(), String> {
    let found = public_async_fns(sources);
    let mut problems = Vec::new();
    for name in &found {
        match listed.iter().filter(|l| **l == name.as_str()).count() {
            0 => problems.push(format!("case `{name}` is not in the suite's macro list")),
            1 => {}
            n => problems.push(format!("case `{name}` is listed {n} times")),
        }
    }
    for name in listed {
        if !found.iter().any(|f| f == name) {
            problems.push(format!(
                "`{name}` is listed but is no `pub async fn` of the suite"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Expands a suite's case list (the one place a suite lists its cases) into tests, or into
/// the names of its `CASES`: `[tests [form]] (path of the suite module) case…` or
/// `[names] (path) case…`. Used by the suites' own macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_expand {
    ([tests [$($form:tt)*]] $suite:tt $($case:ident)*) => {
        $crate::__conformance_tests! {
            $($form)*,
            cases = [$($case => $crate::__conformance_case!($suite $case)),*]
        }
    };
    ([names] $suite:tt $($case:ident)*) => {
        &[$(::core::stringify!($case)),*]
    };
}

/// `(path) case` → `path::case` (a path made inside a repetition of cases).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case {
    (($($suite:tt)*) $case:ident) => {
        $($suite)*::$case
    };
}

/// Expands a suite's case list into tests (used by the suites' own macros; backend authors
/// call those).
///
/// `cases` pairs each case's name with the path of its function. The two forms:
/// - `fixture = Type, setup = expr`: `Type: Fixture<Env>`; `expr` is an async fn (or closure)
///   returning `Result<Type, E>` with `E: Into<BoxError>`, called once per test binary;
/// - `make_env = expr`: an async fn or closure returning a fresh `Env`, called per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (fixture = $fixture:ty, setup = $setup:expr, cases = [$($case:ident => $func:expr),* $(,)?]) => {
        static __TOKENWARD_SUITE: $crate::conformance::SuiteRuntime<$fixture> =
            $crate::conformance::SuiteRuntime::new();
        $(
            #[test]
            fn $case() -> $crate::conformance::CaseResult {
                __TOKENWARD_SUITE.run_case(
                    ::core::stringify!($case),
                    || async {
                        ($setup)()
                            .await
                            .map_err(::core::convert::Into::<$crate::conformance::BoxError>::into)
                    },
                    |env| ($func)(env),
                )
            }
        )*
    };
    (make_env = $make_env:expr, cases = [$($case:ident => $func:expr),* $(,)?]) => {
        static __TOKENWARD_SUITE: $crate::conformance::SuiteRuntime<$crate::conformance::NoFixture> =
            $crate::conformance::SuiteRuntime::new();
        $(
            #[test]
            fn $case() -> $crate::conformance::CaseResult {
                __TOKENWARD_SUITE.run_case(
                    ::core::stringify!($case),
                    || async { ::core::result::Result::Ok($crate::conformance::NoFixture) },
                    |()| async move { ($func)(($make_env)().await).await },
                )
            }
        )*
    };
}

#[cfg(test)]
mod tests;
