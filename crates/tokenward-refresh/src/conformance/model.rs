//! The model-based case: random interleavings of logins, rotations (of the current,
//! previous, older, forged and unknown tokens, with and without idempotency keys, late,
//! minting short- and long-lived access tokens, during an outage, with a lost reply),
//! family and subject revocations and time passing, replayed against a [`RefreshEngine`]
//! over the store under test and against a plain reference model of the
//! [rotation rules](crate#rotation-rules) (`rules.rs`).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ring::rand::SystemRandom;
use tokenward_core::conformance::{LOST_ENTRY_HINT, check_model};
use tokenward_core::{ManualClock, StoreId, UnixTime};
use tokenward_revocation::MemoryRevocationStore;
use tokenward_revocation::conformance::{MODEL_CASES_EXACT, MODEL_CASES_REAL};

use super::support::{
    DOWN, FaultyStore, HEALTHY, LOSE_ROTATE_REPLY, Minter, engine_clock, session_revoked_in,
};
use super::{CaseResult, ConformanceError, RefreshEnv, TestClock};
use crate::{FamilyId, RefreshConfig, RefreshEngine, RefreshError, RefreshToken, RotationKind};

mod ops;
mod rules;

use ops::{Op, Which, op};
use rules::{Expected, Family, Model, Reply};

const MAX_OPS: usize = 40;
/// The engines' `max_access_token_lifetime`, and the lifetime of ordinary access tokens.
const MAX_ACCESS: Duration = Duration::from_secs(20);
/// The lifetime of long-lived access tokens (beyond what a rotation's store step covers).
const LONG_ACCESS: Duration = Duration::from_secs(60);
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

/// One run: the model, the engines and the clock.
struct Run {
    model: Model,
    clock: Arc<dyn TestClock>,
    engine: RefreshEngine,
    late: RefreshEngine,
    short_lived: RefreshEngine,
    faulty: Arc<FaultyStore>,
    revocation: Arc<MemoryRevocationStore>,
    /// The revocation store's clock: the case's before every step, moved to the ends of a
    /// session revocation to check them.
    revocation_clock: ManualClock,
    minter: Minter,
    long_minter: Minter,
}

static RUN: AtomicU64 = AtomicU64::new(0);

impl Run {
    /// Real clock: lets every live short-lived family run out — sleeps until the last one's
    /// lifetime has ended by the clock's tolerance — and marks them so in the model.
    async fn let_short_lived_run_out(&mut self) {
        let tolerance = self.clock.tolerance();
        let Some(last) = self
            .model
            .families
            .iter()
            .filter(|f| !f.ran_out)
            .filter_map(|f| f.issued_within.map(|(_, after)| after))
            .max()
        else {
            return;
        };
        let target = last
            .saturating_add(self.model.short)
            .saturating_add(tolerance);
        let now = self.clock.now();
        if target > now {
            self.clock
                .advance(target.saturating_duration_since(now))
                .await;
        }
        for f in &mut self.model.families {
            if f.issued_within.is_some() {
                f.ran_out = true;
            }
        }
    }

    /// Real clock, before each step: if a short-lived family could run out during the step
    /// (a slow machine), let them all run out first — never compare near an expiry.
    async fn guard(&mut self) {
        if self.model.exact {
            return;
        }
        let first = self
            .model
            .families
            .iter()
            .filter(|f| !f.ran_out)
            .filter_map(|f| f.issued_within.map(|(before, _)| before))
            .min();
        if first.is_some_and(|first| {
            self.clock.now().saturating_add(self.clock.tolerance())
                >= first.saturating_add(self.model.short)
        }) {
            self.let_short_lived_run_out().await;
        }
    }

    fn minter(&self, long: bool) -> &Minter {
        if long {
            &self.long_minter
        } else {
            &self.minter
        }
    }

    /// What a rotation's store step announces (the engine's `covered_until`).
    fn covered(&self) -> UnixTime {
        self.clock
            .now()
            .saturating_add(MAX_ACCESS)
            .saturating_add(RefreshConfig::MINT_MARGIN)
    }

    async fn rotate(&mut self, step: usize, op: &Op) -> Result<(), String> {
        let (fam, which, key, late, long, mode) = match *op {
            Op::Rotate {
                fam,
                which,
                key,
                late,
                long,
            } => (fam, which, key, late, long, HEALTHY),
            Op::RotateDuringOutage { fam, which } => (fam, which, None, false, false, DOWN),
            Op::RotateLosingReply { fam, which } => {
                (fam, which, None, false, false, LOSE_ROTATE_REPLY)
            }
            _ => return Ok(()),
        };
        let (token, position, index) = self.model.pick(fam, which)?;
        let forged = matches!(which, Which::Forged);
        let expected = self.model.expected(index, position, forged, key, late);
        let key_text = key.map(|k| format!("idem-{k}"));
        let engine = if late { &self.late } else { &self.engine };
        let minter = self.minter(long);
        let covered = self.covered();
        self.faulty.set(mode);
        let result = engine
            .rotate(&token, key_text.as_deref(), |req| minter.mint(req))
            .await;
        self.faulty.set(HEALTHY);
        let exp = minter.latest();
        let family = index.and_then(|i| self.model.families.get(i));
        let mismatch = |what: &str| {
            let hint = if matches!(result, Err(RefreshError::Invalid)) {
                format!(" ({LOST_ENTRY_HINT})")
            } else {
                String::new()
            };
            format!(
                "step {step} {op:?}: {what}; the model expected {expected:?} (presented chain \
                 position {position:?}; family: {family:?}){hint}"
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
                self.model
                    .apply(index, &expected, None, covered, Reply::Lost);
            }
            return Ok(());
        }
        let reply = match (&expected, &result) {
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
                granted(r, exp)
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
                granted(r, exp)
            }
            (Expected::Replayed, Ok(r)) if r.kind == RotationKind::Replayed => {
                let recorded = family.and_then(|f| f.recorded.as_ref());
                if recorded.is_none_or(|(refresh, access)| {
                    refresh != r.refresh_token.expose() || *access != r.access_token
                }) {
                    return Err(mismatch("a replay that is not the identical response"));
                }
                Reply::Answered
            }
            (Expected::Reused(kind), Err(RefreshError::Reused(report)))
                if report.kind == *kind
                    && report.session_revocation_error.is_none()
                    && family.is_some_and(|f| f.id == report.family_id) =>
            {
                Reply::Answered
            }
            (Expected::Revoked, Err(RefreshError::Revoked { family_id }))
                if family.is_some_and(|f| f.id == *family_id) =>
            {
                return Ok(());
            }
            (Expected::Invalid, Err(RefreshError::Invalid)) => return Ok(()),
            _ => return Err(mismatch(&format!("got {result:?}"))),
        };
        self.model.apply(index, &expected, key, covered, reply);
        Ok(())
    }

    async fn login(&mut self, sub: u8, short: bool, long: bool) -> Result<(), String> {
        let engine = if short {
            &self.short_lived
        } else {
            &self.engine
        };
        let minter = self.minter(long);
        let before = self.clock.now();
        let who = self.model.sub(sub);
        let id = StoreId::new(who.as_str()).map_err(|e| e.to_string())?;
        let issued = engine
            .issue(&id, |req| minter.mint(req))
            .await
            .map_err(|e| format!("login: unexpected error: {e}"))?;
        let after = self.clock.now();
        let now = self.model.now;
        let exact = self.model.exact;
        let absolute = if short {
            self.model.short
        } else {
            self.model.absolute
        };
        self.model.families.push(Family {
            id: issued.family_id,
            sub,
            chain: vec![Some(issued.refresh_token.expose().to_owned())],
            created: now,
            absolute,
            issued_within: (short && !exact).then_some((before, after)),
            ran_out: false,
            last_used: now,
            rotated_at: now,
            key: None,
            recorded: None,
            revoked: false,
            revoked_at: None,
            access_exp: minter.latest(),
            session_until: None,
        });
        Ok(())
    }

    async fn step(&mut self, step: usize, op: &Op) -> Result<(), String> {
        let fail = |e: &dyn fmt::Display| format!("step {step} {op:?}: unexpected error: {e}");
        match *op {
            Op::Login { sub, long } => self.login(sub, false, long).await?,
            Op::LoginShortLived { sub } => self.login(sub, true, false).await?,
            Op::Rotate { .. } | Op::RotateDuringOutage { .. } | Op::RotateLosingReply { .. } => {
                self.rotate(step, op).await?;
            }
            Op::RevokeFamily { fam } => {
                if self.model.families.is_empty() {
                    return Ok(());
                }
                let index = usize::from(fam) % self.model.families.len();
                let f = self.model.families.get(index).ok_or("no family")?;
                let expected = self.model.live(f);
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
                    self.model.revoke(index);
                }
            }
            Op::RevokeUnknownFamily => {
                let id = FamilyId::generate(&self.model.rng).map_err(|e| fail(&e))?;
                let found = self.engine.revoke_family(&id).await.map_err(|e| fail(&e))?;
                if found {
                    return Err(format!("step {step}: an unknown family was found"));
                }
            }
            Op::RevokeSubject { sub } => {
                let model = &self.model;
                let expected: Vec<usize> = (0..model.families.len())
                    .filter(|&i| {
                        model
                            .families
                            .get(i)
                            .is_some_and(|f| f.sub == sub && !f.revoked && model.live(f))
                    })
                    .collect();
                let who = model.sub(sub);
                let id = StoreId::new(who.as_str()).map_err(|e| fail(&e))?;
                let count = self
                    .engine
                    .revoke_subject(&id)
                    .await
                    .map_err(|e| fail(&e))?;
                if count != expected.len() {
                    return Err(format!(
                        "step {step} {op:?}: revoked {count} families, the model {}",
                        expected.len()
                    ));
                }
                for i in expected {
                    self.model.revoke(i);
                }
            }
            Op::Families { sub } => self.families(step, op, sub).await?,
            Op::CheckSession { fam } => self.check_session(step, op, fam).await?,
            Op::Advance(s) => {
                if self.model.exact {
                    self.clock.advance(Duration::from_secs(u64::from(s))).await;
                    self.model.now = self.clock.now();
                } else {
                    // Only short-lived families run out on a real clock (see `model_based`).
                    self.let_short_lived_run_out().await;
                }
            }
        }
        Ok(())
    }

    /// The family's `sid` is revoked now exactly when the model says so; and a revocation
    /// lasts until 1 ns before its end (the latest access-token `exp` of the family plus the
    /// leeway margin), and is over a millisecond (plus the clock's tolerance) after it.
    async fn check_session(&self, step: usize, op: &Op, fam: u8) -> Result<(), String> {
        if self.model.families.is_empty() {
            return Ok(());
        }
        let index = usize::from(fam) % self.model.families.len();
        let f = self.model.families.get(index).ok_or("no family")?;
        let now = self.clock.now();
        let after = Duration::from_millis(1).saturating_add(self.clock.tolerance());
        let mut probes = vec![(now, f.session_until.is_some_and(|u| u > self.model.now))];
        if let Some(until) = f.session_until.filter(|u| *u > now) {
            probes.push((until.saturating_sub(Duration::from_nanos(1)), true));
            probes.push((until.saturating_add(after), false));
        }
        for (at, expected) in probes {
            self.revocation_clock.set(at);
            let revoked = session_revoked_in(&*self.revocation, &f.id).await;
            self.revocation_clock.set(now);
            let revoked =
                revoked.map_err(|e| format!("step {step} {op:?}: unexpected error: {e}"))?;
            if revoked != expected {
                return Err(format!(
                    "step {step} {op:?}: at {at:?} the session is {}, the model says {} \
                     (family: {f:?})",
                    if revoked { "revoked" } else { "active" },
                    if expected { "revoked" } else { "active" },
                ));
            }
        }
        Ok(())
    }

    /// "Your devices": the live, unrevoked families of `sub`, with their times on an exact
    /// clock.
    async fn families(&self, step: usize, op: &Op, sub: u8) -> Result<(), String> {
        let model = &self.model;
        let who = model.sub(sub);
        let id = StoreId::new(who.as_str()).map_err(|e| e.to_string())?;
        let listed = self
            .engine
            .families(&id)
            .await
            .map_err(|e| format!("step {step} {op:?}: unexpected error: {e}"))?;
        let got: BTreeSet<_> = listed
            .iter()
            .map(|f| {
                let times = model.exact.then_some((f.last_used, f.expires_at));
                (f.id.as_str().to_owned(), times)
            })
            .collect();
        let expected: BTreeSet<_> = model
            .families
            .iter()
            .filter(|f| f.sub == sub && !f.revoked && model.live(f))
            .map(|f| {
                let times = model
                    .exact
                    .then_some((f.last_used, f.expires_at(model.idle)));
                (f.id.as_str().to_owned(), times)
            })
            .collect();
        if got != expected {
            return Err(format!(
                "step {step} {op:?}: families {got:?}, the model {expected:?}"
            ));
        }
        Ok(())
    }
}

/// What the client of `rotation` got, its access token expiring at `exp`.
fn granted(rotation: &crate::Rotation, exp: UnixTime) -> Reply {
    Reply::Granted {
        refresh: rotation.refresh_token.expose().to_owned(),
        access: rotation.access_token.clone(),
        exp,
    }
}

async fn run_ops(env: &RefreshEnv, ops: Vec<Op>) -> Result<(), String> {
    let exact = env.clock.tolerance().is_zero();
    if exact {
        env.clock.advance(BETWEEN_RUNS).await;
    }
    let (grace, idle, absolute, short) = if exact {
        (EXACT_GRACE, EXACT_IDLE, EXACT_ABSOLUTE, EXACT_SHORT)
    } else {
        (REAL_GRACE, REAL_IDLE, REAL_ABSOLUTE, REAL_SHORT)
    };
    let faulty = Arc::new(FaultyStore::new(Arc::clone(&env.store)));
    let revocation_clock = ManualClock::new(env.clock.now());
    let revocation = Arc::new(MemoryRevocationStore::with_clock(Arc::new(
        revocation_clock.clone(),
    )));
    let config = RefreshConfig::new()
        .grace_window(grace)
        .idle_timeout(idle)
        .absolute_lifetime(absolute)
        .max_access_token_lifetime(MAX_ACCESS)
        .clock(engine_clock(env));
    let late_config = config.clone().dangerous_grace_window(Duration::ZERO);
    let short_config = config.clone().absolute_lifetime(short);
    let store: Arc<dyn crate::RefreshStore> = faulty.clone();
    let engine = |config| {
        RefreshEngine::with_config(
            Arc::clone(&store),
            revocation.clone(),
            super::support::issuer(),
            config,
        )
        .map_err(|e| e.to_string())
    };
    let mut run = Run {
        model: Model {
            exact,
            now: env.clock.now(),
            grace,
            idle,
            absolute,
            short,
            families: Vec::new(),
            run_id: RUN.fetch_add(1, Ordering::Relaxed),
            rng: SystemRandom::new(),
        },
        clock: Arc::clone(&env.clock),
        engine: engine(config)?,
        late: engine(late_config)?,
        short_lived: engine(short_config)?,
        faulty,
        revocation: Arc::clone(&revocation),
        revocation_clock,
        minter: Minter::new(engine_clock(env), MAX_ACCESS),
        long_minter: Minter::new(engine_clock(env), LONG_ACCESS),
    };
    for (step, op) in ops.iter().enumerate() {
        run.guard().await;
        run.revocation_clock.set(run.clock.now());
        run.step(step, op).await?;
    }
    Ok(())
}

/// **Model-based**: random sequences (up to 40 steps) of logins, rotations (presenting the
/// current, previous or an older token, a forged token of the family, a token of an unknown
/// family or garbage; with or without an idempotency key; "late", i.e. through an engine with
/// a zero grace window; minting an access token within the engine's
/// `max_access_token_lifetime` or beyond it; during an outage; losing the store's reply),
/// family and subject revocations, "your devices" listings, session checks in the revocation
/// store and time passing, replayed against the engine over the store and against a
/// reference model of the rotation rules. Checked at every step: `Rotated` hands out a new
/// token; `Grace` hands out the **same** successor as the rotation (at most one live
/// successor per token); `Replayed` is the identical response; reuse is `Reused` of the
/// right kind and revokes the family and its `sid` until the latest access-token `exp` of the
/// family plus the leeway margin; a revoked family only ever answers `Revoked` (then, its
/// tombstone gone, `Invalid`); forged, unknown and expired tokens are `Invalid`; store
/// errors are transient and never reuse (a lost reply applies the store's step, and a retry
/// within the window gets the grace successor).
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
pub async fn model_based(env: RefreshEnv) -> CaseResult {
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
        .map_err(ConformanceError::new)
}
