//! The store checks with separate stores (in memory, or a custom backend without a
//! [`CombinedCheck`](crate::CombinedCheck)): the ban before verification (in
//! [`Guard::authenticate`]), then the revocation check, then the subject limit — each its own
//! call, each with its own failure policy.
//!
//! Each check has a synchronous part (`*_now`: the store answers in process, or `None`) used
//! by [`Guard::authenticate_now`], and an async one that tries it first.

use std::time::Instant;

use tokenward_core::{FailurePolicy, StoreError, TokenRef};
use tokenward_ratelimit::Decision;
use tokenward_revocation::RevocationStatus;
use tracing::Instrument as _;

use super::Guard;
use crate::check::Check;
use crate::denial::Denial;
use crate::observe;

const REVOCATION: &str = Check::Revocation.as_str();
const SUBJECT_LIMIT: &str = Check::SubjectLimit.as_str();

impl Guard {
    /// Revocation (unless `revocation_checked`: [`Guard::authenticate_now`] had its answer),
    /// then the subject limit (charged only for an unrevoked token).
    pub(super) async fn sequential_checks(
        &self,
        token: &TokenRef<'_>,
        revocation_checked: bool,
        degraded: &mut Vec<Check>,
    ) -> Result<Option<Decision>, Denial> {
        let mut started = Instant::now();
        if !revocation_checked {
            let (answer, done) = self.revocation(token, started, degraded).await;
            answer?;
            started = done;
        }
        self.limit(token, started, degraded).await
    }

    /// The revocation check, answered in process (`None`: the store needs I/O). Returns when
    /// it finished, the start of the next check.
    pub(super) fn revocation_now(
        &self,
        token: &TokenRef<'_>,
        started: Instant,
        degraded: &mut Vec<Check>,
    ) -> Option<(Result<(), Denial>, Instant)> {
        let status = self.inner.stores.revocation.check_now(token)?;
        Some(self.revocation_answer(status, started, degraded))
    }

    async fn revocation(
        &self,
        token: &TokenRef<'_>,
        started: Instant,
        degraded: &mut Vec<Check>,
    ) -> (Result<(), Denial>, Instant) {
        if let Some(answer) = self.revocation_now(token, started, degraded) {
            return answer;
        }
        let status = self
            .inner
            .stores
            .revocation
            .check(token)
            .instrument(observe::store_span(REVOCATION))
            .await;
        self.revocation_answer(status, started, degraded)
    }

    fn revocation_answer(
        &self,
        status: Result<RevocationStatus, StoreError>,
        started: Instant,
        degraded: &mut Vec<Check>,
    ) -> (Result<(), Denial>, Instant) {
        let done = observe::store_done(REVOCATION, started, status.is_err());
        let answer = match status {
            Ok(status) => self.decide(status, None).map(drop),
            Err(e) => self.outage(
                &[(Check::Revocation, self.inner.revocation_failure)],
                &e,
                degraded,
            ),
        };
        (answer, done)
    }

    /// The subject limit, answered in process (`None`: the store needs I/O; nothing was
    /// charged then). `Some(Ok(None))` when there is no limit to charge.
    pub(super) fn limit_now(
        &self,
        token: &TokenRef<'_>,
        started: Instant,
        degraded: &mut Vec<Check>,
    ) -> Option<Result<Option<Decision>, Denial>> {
        let (Some(limit), Some(sub)) = (&self.inner.subject_limit, &token.sub) else {
            return Some(Ok(None));
        };
        let store = &*self.inner.stores.ratelimit;
        // A store that answers in process gets a key built on the stack.
        let answer = limit.with_key(sub, |key| store.gcra_now(key, &limit.charge()))?;
        Some(self.limit_answer(answer, limit.on_store_failure(), started, degraded))
    }

    async fn limit(
        &self,
        token: &TokenRef<'_>,
        started: Instant,
        degraded: &mut Vec<Check>,
    ) -> Result<Option<Decision>, Denial> {
        if let Some(answer) = self.limit_now(token, started, degraded) {
            return answer;
        }
        let (Some(limit), Some(sub)) = (&self.inner.subject_limit, &token.sub) else {
            return Ok(None);
        };
        // One that needs I/O gets an owned key for its future.
        let answer = self
            .inner
            .stores
            .ratelimit
            .gcra(&limit.key(sub), &limit.charge())
            .instrument(observe::store_span(SUBJECT_LIMIT))
            .await;
        self.limit_answer(answer, limit.on_store_failure(), started, degraded)
    }

    fn limit_answer(
        &self,
        answer: Result<Decision, StoreError>,
        policy: FailurePolicy,
        started: Instant,
        degraded: &mut Vec<Check>,
    ) -> Result<Option<Decision>, Denial> {
        let _done = observe::store_done(SUBJECT_LIMIT, started, answer.is_err());
        match answer {
            Ok(decision) => self.decide(RevocationStatus::Active, Some(decision)),
            Err(e) => self
                .outage(&[(Check::SubjectLimit, policy)], &e, degraded)
                .map(|()| None),
        }
    }
}
