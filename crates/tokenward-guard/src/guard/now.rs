//! The pipeline's synchronous first part: [`Guard::authenticate_now`] answers every request
//! whose steps all answer in process (in-memory stores, known keys) without a future, and
//! hands the rest to [`Guard::authenticate_after`] as an [`Unfinished`], which goes on from
//! where it stopped. Nothing is done twice: a token verified here is not verified again, a
//! revocation answered here is not asked again, and the subject limit — the one step with
//! an effect — is charged by whichever part gets to it, once.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use tokenward_claims::{RejectionClass, Verified};
use tokenward_core::TokenRef;
use tracing::{Instrument as _, Span};

use super::{CustomClaims, Guard, counts_for_ban};
use crate::authenticated::Authenticated;
use crate::check::Check;
use crate::denial::Denial;
use crate::observe;
use crate::request::{AuthRequest, Credentials};

/// An authentication that [`Guard::authenticate_now`] (or [`Guard::authorize_now`]) could not
/// finish without waiting — on a store that needs I/O, a key to fetch, a ban to read or a
/// failure to count — with what it did so far. Give it to [`Guard::authenticate_after`]
/// (or [`Guard::authorize_after`]) **with the same request**, and await that.
///
/// It holds the verified token when verification was done: a request whose token differs
/// from the one it was made for is authenticated from the start, never with it.
#[must_use = "an unfinished authentication decides nothing: pass it to `authenticate_after`"]
pub struct Unfinished {
    pub(super) started: Instant,
    pub(super) span: Span,
    pub(super) step: Step,
}

impl fmt::Debug for Unfinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match &self.step {
            Step::Start => "start",
            Step::Rejected { .. } => "rejected",
            Step::Verified(v) if v.revocation_checked => "subject limit",
            Step::Verified(_) => "store checks",
        };
        f.debug_struct("Unfinished")
            .field("next", &step)
            .finish_non_exhaustive()
    }
}

/// Where the pipeline goes on from.
pub(super) enum Step {
    /// Nothing done that has to be kept (the ban check, a key refetch or a malformed
    /// header's failure count comes first; the credentials and the verification are redone
    /// only when one of those was the reason).
    Start,
    /// The token failed verification with `class`, which counts for the failure ban.
    Rejected {
        token: Box<str>,
        class: RejectionClass,
    },
    /// The token verified; the store checks remain.
    Verified(Box<VerifiedStep>),
}

pub(super) struct VerifiedStep {
    pub(super) token: Box<str>,
    pub(super) verified: Arc<Verified<CustomClaims>>,
    pub(super) token_ref: TokenRef<'static>,
    pub(super) degraded: Vec<Check>,
    /// The revocation check answered (it allowed the token); the subject limit remains.
    pub(super) revocation_checked: bool,
}

impl Step {
    /// `self`, or [`Step::Start`] when it was made for another token than `req`'s.
    fn for_request(self, req: &AuthRequest<'_>) -> Step {
        let made_for = match &self {
            Step::Start => return self,
            Step::Rejected { token, .. } => token,
            Step::Verified(v) => &v.token,
        };
        match req.credentials {
            Credentials::Bearer(token) if token == &**made_for => self,
            _ => Step::Start,
        }
    }
}

impl Guard {
    /// [`Guard::authenticate`] as far as it can go without waiting: `Ok` with the decision
    /// when every step answered in process — the in-memory stores, keys already known, no
    /// client banned — and otherwise the [`Unfinished`] authentication to finish with
    /// [`Guard::authenticate_after`].
    ///
    /// With in-memory stores, every allowed request and every refusal that records nothing
    /// (no token, a revoked token, a limit reached, an expired token) is decided here, with
    /// no future and no allocation for one. A request the failure ban has to count
    /// (malformed credentials, a forged token — when a ban is configured), a client whose
    /// address may be banned, an unknown `kid` under refetching keys, and every store that
    /// needs I/O (Redis, PostgreSQL) go on in [`Guard::authenticate_after`].
    ///
    /// ```
    /// # async fn demo(guard: tokenward_guard::Guard, request: tokenward_guard::AuthRequest<'_>)
    /// # -> Result<tokenward_guard::Authenticated, tokenward_guard::Denial> {
    /// let decision = match guard.authenticate_now(&request) {
    ///     Ok(decision) => decision,
    ///     Err(unfinished) => guard.authenticate_after(&request, unfinished).await,
    /// };
    /// # decision }
    /// ```
    pub fn authenticate_now(
        &self,
        req: &AuthRequest<'_>,
    ) -> Result<Result<Authenticated, Denial>, Unfinished> {
        let started = Instant::now();
        let span = observe::authenticate_span(req);
        let answer = {
            let _entered = span.enter();
            self.run_now(req, started, &span)
        };
        match answer {
            Ok(result) => {
                observe::authenticated(&span, result.as_ref().map(|_| ()), started.elapsed());
                Ok(result)
            }
            Err(step) => Err(Unfinished {
                started,
                span,
                step,
            }),
        }
    }

    /// Finishes an authentication [`Guard::authenticate_now`] left unfinished, for the same
    /// request (a request with another token is authenticated from the start).
    pub fn authenticate_after<'a>(
        &'a self,
        req: &'a AuthRequest<'a>,
        unfinished: Unfinished,
    ) -> impl Future<Output = Result<Authenticated, Denial>> + 'a {
        let Unfinished {
            started,
            span,
            step,
        } = unfinished;
        let step = step.for_request(req);
        let instrument = span.clone();
        // Boxed at once, with the `Unfinished` moved in: the returned future is a pointer
        // and a span, and it is moved into every caller's state machine (adapter layer,
        // `authorize`, the layer's own boxed future), each move copying all of it. The
        // pipeline's state is written once (measured in docs/benchmarks.md, "The Guard's
        // future, moved less").
        Box::pin(async move {
            let result = self.run(req, started, &span, step).await;
            observe::authenticated(&span, result.as_ref().map(|_| ()), started.elapsed());
            result
        })
        .instrument(instrument)
    }

    /// The pipeline up to the first step that would wait (see [`Guard::authenticate_now`]).
    fn run_now(
        &self,
        req: &AuthRequest<'_>,
        started: Instant,
        span: &Span,
    ) -> Result<Result<Authenticated, Denial>, Step> {
        let inner = &*self.inner;
        // With a combined backend the ban is read in the same call as everything else.
        if inner.stores.combined.is_none() && self.ban_may_refuse() {
            return Err(Step::Start);
        }
        // A failure counts for the ban only when there is one: without it, refusing is all.
        let counted = |class| counts_for_ban(class) && inner.ban.is_some();
        let token = match req.credentials {
            Credentials::Bearer(token) => token,
            Credentials::Absent => {
                return Ok(self.refuse(req, started, Denial::MissingToken, None));
            }
            Credentials::Malformed(_) if inner.ban.is_some() => return Err(Step::Start),
            Credentials::Malformed(reason) => {
                let denial = Denial::InvalidRequest { reason };
                return Ok(self.refuse(req, started, denial, None));
            }
        };
        let verified = match inner.verifier.verify_now(token) {
            None => return Err(Step::Start),
            Some(Ok(verified)) => Arc::new(verified),
            Some(Err(class)) if counted(class) => {
                let token = token.into();
                return Err(Step::Rejected { token, class });
            }
            Some(Err(class)) => {
                let denial = Denial::InvalidToken { class };
                return Ok(self.refuse(req, started, denial, Some(token)));
            }
        };
        let token_ref = match self.scoped(req, started, span, &verified) {
            Ok(token_ref) => token_ref,
            Err(denial) => return Ok(Err(denial)),
        };
        let mut degraded = Vec::new();
        let revocation = match inner.stores.combined {
            Some(_) => None,
            None => self.revocation_now(&token_ref, Instant::now(), &mut degraded),
        };
        let revocation_checked = revocation.is_some();
        let checks = match revocation {
            None => None,
            Some((Err(denial), _)) => Some(Err(denial)),
            Some((Ok(()), done)) => self.limit_now(&token_ref, done, &mut degraded),
        };
        let Some(checks) = checks else {
            return Err(Step::Verified(Box::new(VerifiedStep {
                token: token.into(),
                verified,
                token_ref,
                degraded,
                revocation_checked,
            })));
        };
        Ok(self.finish(req, started, verified, &token_ref, checks, degraded))
    }
}
