//! The model-based case: random interleavings of logins, rotations (of the current,
//! previous, older, forged and unknown tokens, with and without idempotency keys, late,
//! during an outage, with a lost reply), family and subject revocations and time passing,
//! replayed against a [`RefreshEngine`] over the store under test and against a plain
//! reference model of the [rotation rules](crate#rotation-rules).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use ring::rand::SystemRandom;
use tokenward_core::conformance::check_model;
use tokenward_core::{TokenRef, UnixTime};
use tokenward_revocation::conformance::{MODEL_CASES_EXACT, MODEL_CASES_REAL};
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore, RevokedBy};

use super::{CaseResult, ConformanceError, DOWN, FailingStore, HEALTHY, LOSE_ROTATE_REPLY, mint};
use crate::{
    FamilyId, RefreshConfig, RefreshEngine, RefreshError, RefreshToken, ReuseKind, RotationKind,
};

const MAX_OPS: usize = 40;
const MAX_ACCESS: Duration = Duration::from_secs(20);
/// Exact clock: grace window, idle timeout, absolute lifetime.
const EXACT_GRACE: Duration = Duration::from_secs(3);
const EXACT_IDLE: Duration = Duration::from_secs(8);
const EXACT_ABSOLUTE: Duration = Duration::from_secs(20);
/// Real clock: windows and lifetimes far longer than a run (which lasts well under a
/// second), so only short-lived logins run out within one; short enough that a networked
/// store's keys are gone minutes after the test.
const REAL_GRACE: Duration = Duration::from_secs(30);
const REAL_IDLE: Duration = Duration::from_secs(120);
const REAL_ABSOLUTE: Duration = Duration::from_secs(300);
/// The absolute lifetime of the families of `LoginShortLived` (exact clock; real clock).
const EXACT_SHORT: Duration = Duration::from_secs(5);
const REAL_SHORT: Duration = Duration::from_secs(1);
/// Exact clock: a gap between runs after which every earlier family has expired.
const BETWEEN_RUNS: Duration = Duration::from_secs(60);

/// Which token of a family a rotation presents.
#[derive(Debug, Clone, Copy)]
enum Which {
    Current,
    Previous,
    /// `n` tokens before the previous one (or the oldest).
    Older(u8),
    /// Well-formed, naming the family, never issued.
    Forged,
    /// Well-formed, naming a family that does not exist.
    UnknownFamily,
    Malformed,
}

#[derive(Debug, Clone)]
enum Op {
    Login {
        sub: u8,
    },
    /// A login whose family has a short absolute lifetime (the one expiry a real clock
    /// sees).
    LoginShortLived {
        sub: u8,
    },
    Rotate {
        fam: u8,
        which: Which,
        key: Option<u8>,
        /// Through an engine with a zero grace window: as if the window had passed.
        late: bool,
    },
    /// The store is down: a transient error, nothing changes.
    RotateDuringOutage {
        fam: u8,
        which: Which,
    },
    /// The store applies the rotation, the reply is lost: a transient error.
    RotateLosingReply {
        fam: u8,
        which: Which,
    },
    RevokeFamily {
        fam: u8,
    },
    RevokeUnknownFamily,
    RevokeSubject {
        sub: u8,
    },
    Families {
        sub: u8,
    },
    CheckSession {
        fam: u8,
    },
    Advance(u8),
}

fn which() -> impl Strategy<Value = Which> {
    prop_oneof![
        6 => Just(Which::Current),
        4 => Just(Which::Previous),
        2 => (0u8..3).prop_map(Which::Older),
        1 => Just(Which::Forged),
        1 => Just(Which::UnknownFamily),
        1 => Just(Which::Malformed),
    ]
}

/// The steps. `scale` multiplies every weight but that of short-lived logins (on a real
/// clock those cost a sleep when time passes).
fn op(scale: u32) -> impl Strategy<Value = Op> {
    let fam = 0u8..4;
    prop_oneof![
        3 * scale => (0u8..2).prop_map(|sub| Op::Login { sub }),
        1 => (0u8..2).prop_map(|sub| Op::LoginShortLived { sub }),
        12 * scale => (fam.clone(), which(), proptest::option::weighted(0.3, 0u8..2), proptest::bool::weighted(0.15))
            .prop_map(|(fam, which, key, late)| Op::Rotate { fam, which, key, late }),
        scale => (fam.clone(), which()).prop_map(|(fam, which)| Op::RotateDuringOutage { fam, which }),
        scale => (fam.clone(), which()).prop_map(|(fam, which)| Op::RotateLosingReply { fam, which }),
        scale => fam.clone().prop_map(|fam| Op::RevokeFamily { fam }),
        scale => Just(Op::RevokeUnknownFamily),
        scale => (0u8..2).prop_map(|sub| Op::RevokeSubject { sub }),
        scale => (0u8..2).prop_map(|sub| Op::Families { sub }),
        2 * scale => fam.prop_map(|fam| Op::CheckSession { fam }),
        3 * scale => (1u8..=9).prop_map(Op::Advance),
    ]
}

/// A family as the model sees it.
#[derive(Debug)]
struct Family {
    id: FamilyId,
    sub: u8,
    /// Every token of the family, oldest first; the last is current. `None`: issued by a
    /// rotation whose reply was lost (the client never saw it).
    chain: Vec<Option<String>>,
    created: UnixTime,
    /// Its absolute lifetime.
    absolute: Duration,
    /// Real clock, short-lived families: the system time just before and just after the
    /// login (the store's clock started the lifetime in between).
    issued_within: Option<(UnixTime, UnixTime)>,
    /// Real clock: the short lifetime has certainly run out.
    ran_out: bool,
    last_used: UnixTime,
    /// When the current token was rotated in (the previous token's rotation time).
    rotated_at: UnixTime,
    /// The idempotency key of that rotation and, once recorded, its response.
    key: Option<u8>,
    recorded: Option<(String, String)>,
    revoked: bool,
    /// Until when the family's `sid` is revoked in the revocation store.
    session_until: Option<UnixTime>,
}

impl Family {
    fn expires_at(&self, idle: Duration) -> UnixTime {
        self.created
            .saturating_add(self.absolute)
            .min(self.last_used.saturating_add(idle))
    }
}

/// What a rotation should come to, by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Rotated,
    Grace,
    Replayed,
    Reused(ReuseKind),
    Revoked,
    Invalid,
}

/// One run: the model, the engines and the clocks.
struct Run {
    exact: bool,
    clock: Arc<dyn super::TestClock>,
    now: UnixTime,
    grace: Duration,
    idle: Duration,
    absolute: Duration,
    short: Duration,
    engine: RefreshEngine,
    late: RefreshEngine,
    short_lived: RefreshEngine,
    failing: Arc<FailingStore>,
    revocation: Arc<MemoryRevocationStore>,
    families: Vec<Family>,
    run_id: u64,
    rng: SystemRandom,
}

static RUN: AtomicU64 = AtomicU64::new(0);

impl Run {
    fn sub(&self, n: u8) -> String {
        format!("m{}-u{n}", self.run_id)
    }

    fn live(&self, f: &Family) -> bool {
        !f.ran_out && self.now < f.expires_at(self.idle)
    }

    /// Real clock: lets every live short-lived family run out — sleeps until the last one's
    /// lifetime has ended by the clock's tolerance — and marks them so in the model.
    async fn let_short_lived_run_out(&mut self) {
        let tolerance = self.clock.tolerance();
        let Some(last) = self
            .families
            .iter()
            .filter(|f| !f.ran_out)
            .filter_map(|f| f.issued_within.map(|(_, after)| after))
            .max()
        else {
            return;
        };
        let target = last.saturating_add(self.short).saturating_add(tolerance);
        let now = self.clock.now();
        if target > now {
            self.clock
                .advance(target.saturating_duration_since(now))
                .await;
        }
        for f in &mut self.families {
            if f.issued_within.is_some() {
                f.ran_out = true;
            }
        }
    }

    /// Real clock, before each step: if a short-lived family could run out during the step
    /// (a slow machine), let them all run out first — never compare near an expiry.
    async fn guard(&mut self) {
        if self.exact {
            return;
        }
        let first = self
            .families
            .iter()
            .filter(|f| !f.ran_out)
            .filter_map(|f| f.issued_within.map(|(before, _)| before))
            .min();
        if first.is_some_and(|first| {
            self.clock.now().saturating_add(self.clock.tolerance())
                >= first.saturating_add(self.short)
        }) {
            self.let_short_lived_run_out().await;
        }
    }

    fn revoke_in_model(&mut self, index: usize) {
        let until = tokenward_revocation::revoke_until(self.now.saturating_add(MAX_ACCESS));
        if let Some(f) = self.families.get_mut(index) {
            f.revoked = true;
            f.session_until = Some(f.session_until.map_or(until, |u| u.max(until)));
        }
    }

    /// The token to present, its chain position (if it is one) and the family index.
    fn pick(
        &self,
        fam: u8,
        which: Which,
    ) -> Result<(String, Option<usize>, Option<usize>), String> {
        let Some(index) =
            (!self.families.is_empty()).then(|| usize::from(fam) % self.families.len())
        else {
            return Ok(("twr_no-family-yet".to_owned(), None, None));
        };
        let f = self
            .families
            .get(index)
            .ok_or("family index out of range")?;
        let last = f.chain.len().saturating_sub(1);
        let wanted = match which {
            Which::Current => last,
            Which::Previous => last.saturating_sub(1),
            Which::Older(n) => last.saturating_sub(2 + usize::from(n)),
            Which::Forged => {
                let t = RefreshToken::generate(&self.rng, &f.id).map_err(|e| e.to_string())?;
                return Ok((t.expose().to_owned(), None, Some(index)));
            }
            Which::UnknownFamily => {
                let id = FamilyId::generate(&self.rng).map_err(|e| e.to_string())?;
                let t = RefreshToken::generate(&self.rng, &id).map_err(|e| e.to_string())?;
                return Ok((t.expose().to_owned(), None, None));
            }
            Which::Malformed => return Ok(("twr_malformed".to_owned(), None, None)),
        };
        // The nearest token at or before `wanted` that the client has seen.
        let (position, token) = f
            .chain
            .iter()
            .enumerate()
            .take(wanted.saturating_add(1))
            .rev()
            .find_map(|(i, t)| t.as_ref().map(|t| (i, t.clone())))
            .ok_or("a family without a known token")?;
        Ok((token, Some(position), Some(index)))
    }

    /// The rules, for a presented token (position in its family's chain, or forged).
    fn expected(
        &self,
        index: Option<usize>,
        position: Option<usize>,
        forged: bool,
        key: Option<u8>,
        late: bool,
    ) -> Expected {
        let Some(f) = index.and_then(|i| self.families.get(i)) else {
            return Expected::Invalid;
        };
        if !self.live(f) {
            return Expected::Invalid;
        }
        if f.revoked {
            return Expected::Revoked;
        }
        let Some(position) = position.filter(|_| !forged) else {
            return Expected::Invalid;
        };
        let last = f.chain.len().saturating_sub(1);
        if position == last {
            Expected::Rotated
        } else if position + 1 == last {
            if late || self.now >= f.rotated_at.saturating_add(self.grace) {
                Expected::Reused(ReuseKind::PredecessorAfterWindow)
            } else if key.is_some() && key == f.key && f.recorded.is_some() {
                Expected::Replayed
            } else {
                Expected::Grace
            }
        } else {
            Expected::Reused(ReuseKind::OlderToken)
        }
    }

    /// Applies a rotation's effect to the model (the store's atomic step), given what the
    /// client received (`None`: the reply was lost).
    fn apply(
        &mut self,
        index: Option<usize>,
        expected: &Expected,
        key: Option<u8>,
        received: Option<(String, String)>,
    ) {
        let now = self.now;
        match expected {
            Expected::Rotated => {
                if let Some(f) = index.and_then(|i| self.families.get_mut(i)) {
                    f.chain.push(received.as_ref().map(|r| r.0.clone()));
                    f.last_used = now;
                    f.rotated_at = now;
                    f.key = key;
                    f.recorded = received.filter(|_| key.is_some());
                }
            }
            Expected::Grace => {
                // The client learns the successor (if its reply was lost before).
                if let (Some(f), Some((refresh, _))) =
                    (index.and_then(|i| self.families.get_mut(i)), received)
                    && let Some(last) = f.chain.last_mut()
                {
                    last.get_or_insert(refresh);
                }
            }
            Expected::Reused(_) => {
                if let Some(i) = index {
                    if received.is_some() {
                        self.revoke_in_model(i);
                    } else if let Some(f) = self.families.get_mut(i) {
                        // The store revoked the family; the engine never saw the answer, so
                        // it revoked no session.
                        f.revoked = true;
                    }
                }
            }
            Expected::Replayed | Expected::Revoked | Expected::Invalid => {}
        }
    }

    async fn rotate(&mut self, step: usize, op: &Op) -> Result<(), String> {
        let (fam, which, key, late, mode) = match *op {
            Op::Rotate {
                fam,
                which,
                key,
                late,
            } => (fam, which, key, late, HEALTHY),
            Op::RotateDuringOutage { fam, which } => (fam, which, None, false, DOWN),
            Op::RotateLosingReply { fam, which } => (fam, which, None, false, LOSE_ROTATE_REPLY),
            _ => return Ok(()),
        };
        let (token, position, index) = self.pick(fam, which)?;
        let expected = self.expected(index, position, matches!(which, Which::Forged), key, late);
        let key_text = key.map(|k| format!("idem-{k}"));
        let engine = if late { &self.late } else { &self.engine };
        self.failing.mode.store(mode, Ordering::SeqCst);
        let result = engine.rotate(&token, key_text.as_deref(), mint).await;
        self.failing.mode.store(HEALTHY, Ordering::SeqCst);
        let family = index.and_then(|i| self.families.get(i));
        let mismatch = |what: &str| {
            format!(
                "step {step} {op:?}: {what}; the model expected {expected:?} (presented chain \
                 position {position:?}; family: {family:?})"
            )
        };
        // A malformed token never reaches the store: `Invalid`, outage or not.
        if mode != HEALTHY && RefreshToken::parse(&token).is_some() {
            // Whatever the store did, the engine must report a transient store error.
            if !matches!(&result, Err(e @ RefreshError::Store(_)) if e.is_transient()) {
                return Err(mismatch(&format!(
                    "got {result:?} instead of a transient store error"
                )));
            }
            if mode == LOSE_ROTATE_REPLY {
                self.apply(index, &expected, None, None);
            }
            return Ok(());
        }
        match (&expected, &result) {
            (Expected::Rotated, Ok(r)) if r.kind == RotationKind::Rotated => {
                let known = family.is_some_and(|f| {
                    f.chain
                        .iter()
                        .flatten()
                        .any(|t| t == r.refresh_token.expose())
                });
                if known || family.is_some_and(|f| f.id != r.family_id) {
                    return Err(mismatch(
                        "a rotation handed out a known token or another family",
                    ));
                }
                let received = (r.refresh_token.expose().to_owned(), r.access_token.clone());
                self.apply(index, &expected, key, Some(received));
            }
            (Expected::Grace, Ok(r)) if r.kind == RotationKind::Grace => {
                // The same successor as the rotation: at most one live successor per token.
                let current = family.and_then(|f| f.chain.last()).cloned().flatten();
                if current
                    .as_ref()
                    .is_some_and(|c| c != r.refresh_token.expose())
                {
                    return Err(mismatch("grace handed out a different successor"));
                }
                let received = (r.refresh_token.expose().to_owned(), r.access_token.clone());
                self.apply(index, &expected, key, Some(received));
            }
            (Expected::Replayed, Ok(r)) if r.kind == RotationKind::Replayed => {
                let recorded = family.and_then(|f| f.recorded.as_ref());
                if recorded.is_none_or(|(refresh, access)| {
                    refresh != r.refresh_token.expose() || *access != r.access_token
                }) {
                    return Err(mismatch("a replay that is not the identical response"));
                }
            }
            (Expected::Reused(kind), Err(RefreshError::Reused(report)))
                if report.kind == *kind
                    && report.session_revocation_error.is_none()
                    && family.is_some_and(|f| f.id == report.family_id) =>
            {
                self.apply(index, &expected, key, Some(Default::default()));
            }
            (Expected::Revoked, Err(RefreshError::Revoked { family_id }))
                if family.is_some_and(|f| f.id == *family_id) => {}
            (Expected::Invalid, Err(RefreshError::Invalid)) => {}
            _ => return Err(mismatch(&format!("got {result:?}"))),
        }
        Ok(())
    }

    async fn step(&mut self, step: usize, op: &Op) -> Result<(), String> {
        let fail = |e: &dyn fmt::Display| format!("step {step} {op:?}: unexpected error: {e}");
        match *op {
            Op::Login { sub } | Op::LoginShortLived { sub } => {
                let short = matches!(op, Op::LoginShortLived { .. });
                let engine = if short {
                    &self.short_lived
                } else {
                    &self.engine
                };
                let before = self.clock.now();
                let issued = engine.issue(&self.sub(sub)).await.map_err(|e| fail(&e))?;
                let after = self.clock.now();
                self.families.push(Family {
                    id: issued.family_id,
                    sub,
                    chain: vec![Some(issued.refresh_token.expose().to_owned())],
                    created: self.now,
                    absolute: if short { self.short } else { self.absolute },
                    issued_within: (short && !self.exact).then_some((before, after)),
                    ran_out: false,
                    last_used: self.now,
                    rotated_at: self.now,
                    key: None,
                    recorded: None,
                    revoked: false,
                    session_until: None,
                });
            }
            Op::Rotate { .. } | Op::RotateDuringOutage { .. } | Op::RotateLosingReply { .. } => {
                self.rotate(step, op).await?;
            }
            Op::RevokeFamily { fam } => {
                if self.families.is_empty() {
                    return Ok(());
                }
                let index = usize::from(fam) % self.families.len();
                let f = self.families.get(index).ok_or("no family")?;
                let expected = self.live(f);
                let found = self
                    .engine
                    .revoke_family(&f.id)
                    .await
                    .map_err(|e| fail(&e))?;
                if found != expected {
                    return Err(format!(
                        "step {step} {op:?}: revoke_family returned {found}, the model {expected}"
                    ));
                }
                if found {
                    self.revoke_in_model(index);
                }
            }
            Op::RevokeUnknownFamily => {
                let id = FamilyId::generate(&self.rng).map_err(|e| fail(&e))?;
                let found = self.engine.revoke_family(&id).await.map_err(|e| fail(&e))?;
                if found {
                    return Err(format!("step {step}: an unknown family was found"));
                }
            }
            Op::RevokeSubject { sub } => {
                let expected: Vec<usize> = (0..self.families.len())
                    .filter(|&i| {
                        self.families
                            .get(i)
                            .is_some_and(|f| f.sub == sub && !f.revoked && self.live(f))
                    })
                    .collect();
                let count = self
                    .engine
                    .revoke_subject(&self.sub(sub))
                    .await
                    .map_err(|e| fail(&e))?;
                if count != expected.len() {
                    return Err(format!(
                        "step {step} {op:?}: revoked {count} families, the model {}",
                        expected.len()
                    ));
                }
                for i in expected {
                    self.revoke_in_model(i);
                }
            }
            Op::Families { sub } => {
                let listed = self
                    .engine
                    .families(&self.sub(sub))
                    .await
                    .map_err(|e| fail(&e))?;
                let got: BTreeSet<_> = listed
                    .iter()
                    .map(|f| {
                        let times = self.exact.then_some((f.last_used, f.expires_at));
                        (f.id.as_str().to_owned(), times)
                    })
                    .collect();
                let expected: BTreeSet<_> = self
                    .families
                    .iter()
                    .filter(|f| f.sub == sub && !f.revoked && self.live(f))
                    .map(|f| {
                        let times = self.exact.then_some((f.last_used, f.expires_at(self.idle)));
                        (f.id.as_str().to_owned(), times)
                    })
                    .collect();
                if got != expected {
                    return Err(format!(
                        "step {step} {op:?}: families {got:?}, the model {expected:?}"
                    ));
                }
            }
            Op::CheckSession { fam } => {
                if self.families.is_empty() {
                    return Ok(());
                }
                let index = usize::from(fam) % self.families.len();
                let f = self.families.get(index).ok_or("no family")?;
                let token = TokenRef::from_parts(
                    None,
                    Some(f.id.as_str()),
                    None,
                    None,
                    UnixTime::from_secs(4_000_000_000),
                )
                .map_err(|e| fail(&e))?;
                let got = self.revocation.check(&token).await.map_err(|e| fail(&e))?;
                let expected = if f.session_until.is_some_and(|u| u > self.now) {
                    RevocationStatus::Revoked(RevokedBy::Session)
                } else {
                    RevocationStatus::Active
                };
                if got != expected {
                    return Err(format!(
                        "step {step} {op:?}: the session is {got:?}, the model {expected:?} \
                         (family: {f:?})"
                    ));
                }
            }
            Op::Advance(s) => {
                if self.exact {
                    self.clock.advance(Duration::from_secs(u64::from(s))).await;
                    self.now = self.clock.now();
                } else {
                    // Only short-lived families run out on a real clock (see `model_based`).
                    self.let_short_lived_run_out().await;
                }
            }
        }
        Ok(())
    }
}

async fn run_ops(env: &super::RefreshEnv, ops: Vec<Op>) -> Result<(), String> {
    let exact = env.clock.tolerance().is_zero();
    if exact {
        env.clock.advance(BETWEEN_RUNS).await;
    }
    let (grace, idle, absolute, short) = if exact {
        (EXACT_GRACE, EXACT_IDLE, EXACT_ABSOLUTE, EXACT_SHORT)
    } else {
        (REAL_GRACE, REAL_IDLE, REAL_ABSOLUTE, REAL_SHORT)
    };
    let failing = Arc::new(FailingStore {
        inner: Arc::clone(&env.store),
        mode: AtomicU8::new(HEALTHY),
    });
    let revocation = Arc::new(MemoryRevocationStore::with_clock(Arc::clone(
        &env.engine_clock,
    )));
    let config = RefreshConfig::new()
        .grace_window(grace)
        .idle_timeout(idle)
        .absolute_lifetime(absolute)
        .max_access_token_lifetime(MAX_ACCESS)
        .clock(Arc::clone(&env.engine_clock));
    let late_config = config.clone().dangerous_grace_window(Duration::ZERO);
    let short_config = config.clone().absolute_lifetime(short);
    let store: Arc<dyn crate::RefreshStore> = failing.clone();
    let mut run = Run {
        exact,
        clock: Arc::clone(&env.clock),
        now: env.clock.now(),
        grace,
        idle,
        absolute,
        short,
        engine: RefreshEngine::new(Arc::clone(&store), revocation.clone(), config),
        late: RefreshEngine::new(Arc::clone(&store), revocation.clone(), late_config),
        short_lived: RefreshEngine::new(store, revocation.clone(), short_config),
        failing,
        revocation,
        families: Vec::new(),
        run_id: RUN.fetch_add(1, Ordering::Relaxed),
        rng: SystemRandom::new(),
    };
    for (step, op) in ops.iter().enumerate() {
        run.guard().await;
        run.step(step, op).await?;
    }
    Ok(())
}

/// **Model-based**: random sequences (up to 40 steps) of logins, rotations (presenting the
/// current, previous or an older token, a forged token of the family, a token of an unknown
/// family or garbage; with or without an idempotency key; "late", i.e. through an engine with
/// a zero grace window; during an outage; losing the store's reply), family and subject
/// revocations, "your devices" listings, session checks in the revocation store and time
/// passing, replayed against the engine over the store and against a reference model of the
/// rotation rules. Checked at every step: `Rotated` hands out a new token; `Grace` hands out
/// the **same** successor as the rotation (at most one live successor per token); `Replayed`
/// is the identical response; reuse is `Reused` of the right kind and revokes the family and
/// its `sid`; a revoked family only ever answers `Revoked`; forged, unknown and expired
/// tokens are `Invalid`; store errors are transient and never reuse (a lost reply applies
/// the store's step, and a retry within the window gets the grace successor).
///
/// On an exact clock (tolerance zero, a `ManualClock` shared with the engine):
/// [`MODEL_CASES_EXACT`] sequences with a 3 s grace window, 8 s idle timeout, 20 s absolute
/// lifetime (5 s for short-lived logins), time moving in whole seconds — expiry and the end
/// of the window are hit exactly. On a real clock (a store keeping its own time, e.g.
/// Redis): [`MODEL_CASES_REAL`] sequences in which only one thing is timed: short-lived
/// logins live 1 s, and "time passing" sleeps until every such family has run out (plus the
/// clock's tolerance; a step that could land near that expiry on a slow machine waits for
/// it first, so no comparison is made within the tolerance of it). Everything else is
/// untimed — a 30 s window, lifetimes of minutes, a run lasting well under a second — and the
/// end of the window is exercised by the late engine: sleeping past windows in every run
/// would be slow and timing-sensitive on a busy machine, and the suite's
/// `absolute_expiry`, `idle_expiry` and `reuse_after_window_revokes_family` cases time
/// those on the real clock.
/// A failure is shrunk to a minimal sequence, printed with the model's state.
///
/// Families of all sequences share the store (each sequence uses subjects of its own).
pub async fn model_based(env: super::RefreshEnv) -> CaseResult {
    // On a real clock about one run in six has a short-lived family.
    let (cases, scale) = if env.clock.tolerance().is_zero() {
        (MODEL_CASES_EXACT, 1)
    } else {
        (MODEL_CASES_REAL, 4)
    };
    let ops = proptest::collection::vec(op(scale), 1..=MAX_OPS);
    let env = &env;
    check_model(ops, cases, |ops| async move { run_ops(env, ops).await })
        .await
        .map_err(|message| ConformanceError { message })
}
