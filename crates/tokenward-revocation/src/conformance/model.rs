//! The model-based case: random interleavings of revokes, checks and time passing, replayed
//! against the store under test and against a plain reference model (three `HashMap`s and
//! the rules of the [contract](crate::RevocationStore#contract-for-implementations)); every
//! `check` answer must be the model's, rule included.
//!
//! The property runner is `tokenward_core::conformance::check_model`, shared with the refresh
//! suite's model case.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tokenward_core::conformance::check_model;
use tokenward_core::{StoreId, TokenRef, UnixTime};

use super::{CaseResult, ConformanceError, RevocationEnv, TestClock};
use crate::{RevocationStatus, RevocationStore, RevokedBy};

/// How many sequences [`model_based`] runs on an exact clock (`ManualClock`).
pub const MODEL_CASES_EXACT: u32 = 256;
/// How many sequences [`model_based`] runs on a real clock (a backend keeping its own time).
pub const MODEL_CASES_REAL: u32 = 32;
/// The longest generated sequence.
const MAX_OPS: usize = 40;

/// One step of a generated sequence. Times are whole seconds relative to the run (see
/// [`model_based`] for how a real clock reads them).
#[derive(Debug, Clone)]
enum Op {
    RevokeToken { jti: u8, until: i8 },
    RevokeSession { sid: u8, until: i8 },
    RevokeSubject { sub: u8, before: i8, until: i8 },
    RevokeSubjectWithoutSession { sub: u8, before: i8, until: i8 },
    Check(Probe),
    Advance(u8),
}

/// The token a `check` presents: which of the run's ids it carries, and its `iat`.
#[derive(Debug, Clone)]
struct Probe {
    jti: Option<u8>,
    sid: Option<u8>,
    sub: Option<u8>,
    iat: Option<i8>,
}

/// The steps, with time passing at `advance` per thousand (the rest spread over the others).
fn op(advance: u32) -> impl Strategy<Value = Op> {
    let until = -2i8..=12;
    let share = (1000 - advance) / 15;
    prop_oneof![
        2 * share => (0u8..3, until.clone()).prop_map(|(jti, until)| Op::RevokeToken { jti, until }),
        2 * share => (0u8..2, until.clone()).prop_map(|(sid, until)| Op::RevokeSession { sid, until }),
        2 * share => (0u8..2, -3i8..=3, until.clone())
            .prop_map(|(sub, before, until)| Op::RevokeSubject { sub, before, until }),
        2 * share => (0u8..2, -3i8..=3, until).prop_map(|(sub, before, until)| {
            Op::RevokeSubjectWithoutSession { sub, before, until }
        }),
        7 * share => (
            proptest::option::of(0u8..3),
            proptest::option::of(0u8..2),
            proptest::option::of(0u8..2),
            proptest::option::of(-4i8..=3),
        )
            .prop_map(|(jti, sid, sub, iat)| Op::Check(Probe { jti, sid, sub, iat })),
        advance => (1u8..=6).prop_map(Op::Advance),
    ]
}

/// The reference model: the contract's rules, nothing else.
#[derive(Debug, Default)]
struct Model {
    /// jti → until.
    tokens: HashMap<u8, UnixTime>,
    /// sid → until.
    sessions: HashMap<u8, UnixTime>,
    /// sub → (before, until).
    subjects: HashMap<u8, (UnixTime, UnixTime)>,
    /// sub → (before, until) for tokens without a session.
    sessionless_subjects: HashMap<u8, (UnixTime, UnixTime)>,
}

impl Model {
    /// Revocations only ever extend; an `until` not after `now` is a no-op; an expired entry
    /// is gone (a new revoke starts afresh).
    fn revoke(map: &mut HashMap<u8, UnixTime>, id: u8, until: UnixTime, now: UnixTime) {
        if until <= now {
            return;
        }
        let entry = map.entry(id).or_insert(until);
        *entry = if *entry > now {
            (*entry).max(until)
        } else {
            until
        };
    }

    fn revoke_subject(
        subjects: &mut HashMap<u8, (UnixTime, UnixTime)>,
        sub: u8,
        before: UnixTime,
        until: UnixTime,
        now: UnixTime,
    ) {
        if until <= now {
            return;
        }
        let entry = subjects.entry(sub).or_insert((before, until));
        *entry = if entry.1 > now {
            (entry.0.max(before), entry.1.max(until))
        } else {
            (before, until)
        };
    }

    /// Token beats session beats subject; an entry "until T" matches while `now < T`; a
    /// subject cutoff matches `iat < before` and tokens without `iat`.
    fn check(&self, probe: &Probe, iat: Option<UnixTime>, now: UnixTime) -> RevocationStatus {
        let live = |until: &UnixTime| *until > now;
        if probe
            .jti
            .and_then(|j| self.tokens.get(&j))
            .is_some_and(live)
        {
            return RevocationStatus::Revoked(RevokedBy::Token);
        }
        if probe
            .sid
            .and_then(|s| self.sessions.get(&s))
            .is_some_and(live)
        {
            return RevocationStatus::Revoked(RevokedBy::Session);
        }
        // The cutoff for every token, then, for a token without a session, the one for those.
        let rules = [
            Some(&self.subjects),
            probe.sid.is_none().then_some(&self.sessionless_subjects),
        ];
        for rule in rules.into_iter().flatten() {
            if let Some((before, until)) = probe.sub.and_then(|s| rule.get(&s))
                && live(until)
                && iat.is_none_or(|iat| iat < *before)
            {
                return RevocationStatus::Revoked(RevokedBy::Subject { before: *before });
            }
        }
        RevocationStatus::Active
    }
}

/// Every run uses ids of its own (`m{run}-…`), so runs can share one store.
static RUN: AtomicU64 = AtomicU64::new(0);

/// A gap between runs on an exact clock, longer than any generated `until`: every entry of
/// earlier runs has expired (so a bounded store can reclaim them).
const BETWEEN_RUNS: Duration = Duration::from_secs(60);
/// On a real clock: how long after the start of a run its "short" entries live.
const SHORT: Duration = Duration::from_secs(1);

fn secs(s: i8) -> Duration {
    Duration::from_secs(u64::from(s.unsigned_abs()))
}

fn offset(t: UnixTime, s: i8) -> UnixTime {
    if s < 0 {
        t.saturating_sub(secs(s))
    } else {
        t.saturating_add(secs(s))
    }
}

/// How one run reads the generated times.
struct Run {
    clock: Arc<dyn TestClock>,
    exact: bool,
    /// The run's start, ms-aligned.
    start: UnixTime,
    /// The model's "now". Exact clock: the clock itself. Real clock: `start` before the
    /// short entries have run out, `start + SHORT + tolerance` after.
    now: UnixTime,
    short_passed: bool,
}

impl Run {
    /// `until` offsets: on an exact clock, seconds from now. On a real clock: `<= 0` is in
    /// the past (a no-op), `1..=4` is `start + SHORT`, larger ones are minutes ahead.
    fn until(&self, s: i8) -> UnixTime {
        if self.exact {
            offset(self.now, s)
        } else if s <= 0 {
            self.start.saturating_sub(Duration::from_secs(10))
        } else if s <= 4 {
            self.start.saturating_add(SHORT)
        } else {
            self.start.saturating_add(secs(s).saturating_mul(60))
        }
    }

    /// `before` and `iat`: seconds from now (exact) or from the start (real); no clock is
    /// involved in comparing them.
    fn instant(&self, s: i8) -> UnixTime {
        offset(if self.exact { self.now } else { self.start }, s)
    }

    /// Lets the short entries run out (real clock): sleep until `start + SHORT` plus the
    /// clock's tolerance. The model's time jumps there.
    async fn pass_short(&mut self) {
        if self.short_passed {
            return;
        }
        let target = self
            .start
            .saturating_add(SHORT)
            .saturating_add(self.clock.tolerance());
        let now = self.clock.now();
        if target > now {
            self.clock
                .advance(target.saturating_duration_since(now))
                .await;
        }
        self.now = target;
        self.short_passed = true;
    }

    /// On a real clock, before each step: if the short entries are about to run out (a slow
    /// machine), let them run out first, in the model too — never compare near a boundary.
    async fn guard(&mut self) {
        if !self.exact
            && !self.short_passed
            && self.clock.now().saturating_add(self.clock.tolerance())
                >= self.start.saturating_add(SHORT)
        {
            self.pass_short().await;
        }
    }

    async fn advance(&mut self, s: u8) {
        if self.exact {
            self.clock.advance(Duration::from_secs(u64::from(s))).await;
            self.now = self.clock.now();
        } else {
            self.pass_short().await;
        }
    }
}

fn store_id(id: &str) -> Result<StoreId<'_>, String> {
    StoreId::new(id).map_err(|e| format!("the model made an invalid id: {e}"))
}

async fn run_ops(
    store: &dyn RevocationStore,
    clock: Arc<dyn TestClock>,
    ops: Vec<Op>,
) -> Result<(), String> {
    let exact = clock.tolerance().is_zero();
    if exact {
        clock.advance(BETWEEN_RUNS).await;
    }
    let start = UnixTime::from_millis(clock.now().as_millis());
    let run_id = RUN.fetch_add(1, Ordering::Relaxed);
    let id = |kind: &str, n: u8| format!("m{run_id}-{kind}{n}");
    let mut run = Run {
        clock,
        exact,
        start,
        now: start,
        short_passed: false,
    };
    if exact {
        // Whole milliseconds, like every time the model uses.
        run.now = run.clock.now();
    }
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        run.guard().await;
        let now = run.now;
        let fail = |e: &dyn fmt::Display| format!("step {step} {op:?}: store error: {e}");
        match op {
            Op::RevokeToken { jti, until } => {
                let until = run.until(*until);
                store
                    .revoke_token(&store_id(&id("j", *jti))?, until)
                    .await
                    .map_err(|e| fail(&e))?;
                Model::revoke(&mut model.tokens, *jti, until, now);
            }
            Op::RevokeSession { sid, until } => {
                let until = run.until(*until);
                store
                    .revoke_session(&store_id(&id("s", *sid))?, until)
                    .await
                    .map_err(|e| fail(&e))?;
                Model::revoke(&mut model.sessions, *sid, until, now);
            }
            Op::RevokeSubject { sub, before, until } => {
                let (before, until) = (run.instant(*before), run.until(*until));
                store
                    .revoke_subject(&store_id(&id("u", *sub))?, before, until)
                    .await
                    .map_err(|e| fail(&e))?;
                Model::revoke_subject(&mut model.subjects, *sub, before, until, now);
            }
            Op::RevokeSubjectWithoutSession { sub, before, until } => {
                let (before, until) = (run.instant(*before), run.until(*until));
                store
                    .revoke_subject_without_session(&store_id(&id("u", *sub))?, before, until)
                    .await
                    .map_err(|e| fail(&e))?;
                Model::revoke_subject(&mut model.sessionless_subjects, *sub, before, until, now);
            }
            Op::Check(probe) => {
                let (jti, sid, sub) = (
                    probe.jti.map(|n| id("j", n)),
                    probe.sid.map(|n| id("s", n)),
                    probe.sub.map(|n| id("u", n)),
                );
                let iat = probe.iat.map(|s| run.instant(s));
                let token = TokenRef::from_parts(
                    jti.as_deref(),
                    sid.as_deref(),
                    sub.as_deref(),
                    iat,
                    UnixTime::from_secs(4_000_000_000),
                )
                .map_err(|e| fail(&e))?;
                let got = store.check(&token).await.map_err(|e| fail(&e))?;
                let expected = model.check(probe, iat, now);
                if got != expected {
                    return Err(format!(
                        "step {step} {op:?}: the store answered {got:?}, the model {expected:?} \
                         (model time: start + {:?}; model state: {model:?})",
                        now.saturating_duration_since(start)
                    ));
                }
                if let Some(fast) = store.check_now(&token) {
                    let fast = fast.map_err(|e| fail(&e))?;
                    if fast != got {
                        return Err(format!(
                            "step {step} {op:?}: check answered {got:?}, its fast path \
                             check_now {fast:?}"
                        ));
                    }
                }
            }
            Op::Advance(s) => run.advance(*s).await,
        }
    }
    Ok(())
}

/// **Model-based**: random sequences (up to 40 steps) of `revoke_token`, `revoke_session`,
/// `revoke_subject`, `check` and time passing over a few ids, replayed against the store and
/// a reference model of the contract; every `check` must give the model's answer (which
/// rule included: token > session > subject). Covers expiry at `until` (`now < until`
/// matches), no-op past `until`s, only-extending re-revokes (later `until`, later cutoff;
/// a fresh entry once the old one expired) and the `iat < before` rule.
///
/// On an exact clock (tolerance zero, a `ManualClock`): [`MODEL_CASES_EXACT`] sequences on
/// a whole-second grid, so checks land exactly on expiry boundaries. On a real clock (a
/// backend keeping its own time, e.g. Redis TTLs): [`MODEL_CASES_REAL`] sequences in which
/// an `until` is in the past, one second after the run's start, or minutes ahead, and "time
/// passing" sleeps once until the one-second entries have run out (plus the clock's
/// tolerance; in about one run in seven, to keep the suite fast) — no comparison is ever made
/// within the tolerance of an expiry, so a busy machine cannot make it flaky. A failure is shrunk to a minimal sequence, printed with
/// the model's state.
///
/// The store may be shared by all sequences (each uses ids of its own), so it is the usual
/// fresh store of a case.
pub async fn model_based(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    // On a real clock time passing costs a sleep: about one run in seven has one.
    let (cases, advance) = if clock.tolerance().is_zero() {
        (MODEL_CASES_EXACT, 80)
    } else {
        (MODEL_CASES_REAL, 8)
    };
    let ops = proptest::collection::vec(op(advance), 1..=MAX_OPS);
    check_model(ops, cases, |ops| {
        let store = Arc::clone(&store);
        let clock = Arc::clone(&clock);
        async move { run_ops(&*store, clock, ops).await }
    })
    .await
    .map_err(ConformanceError::new)
}
