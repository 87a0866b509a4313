//! The store checks with separate stores (in memory, or a custom backend without a
//! [`CombinedCheck`](crate::CombinedCheck)): the ban before verification (in
//! [`Guard::authenticate`]), then the revocation check, then the subject limit — each its own
//! call, each with its own failure policy.

use std::time::Instant;

use tokenward_core::TokenRef;
use tokenward_ratelimit::Decision;
use tokenward_revocation::RevocationStatus;
use tracing::Instrument as _;

use super::Guard;
use crate::check::Check;
use crate::denial::Denial;
use crate::observe;

impl Guard {
    /// Revocation, then the subject limit (charged only for an unrevoked token).
    pub(super) async fn sequential_checks(
        &self,
        token: &TokenRef<'_>,
        degraded: &mut Vec<Check>,
    ) -> Result<Option<Decision>, Denial> {
        let inner = &*self.inner;
        let check = Check::Revocation.as_str();
        let started = Instant::now();
        // A store that answers in process does so synchronously (no future to allocate).
        let store = &*inner.stores.revocation;
        let status = match store.check_now(token) {
            Some(status) => status,
            None => {
                store
                    .check(token)
                    .instrument(observe::store_span(check))
                    .await
            }
        };
        let done = observe::store_done(check, started, status.is_err());
        match status {
            Ok(status) => {
                self.decide(status, None)?;
            }
            Err(e) => self.outage(
                &[(Check::Revocation, inner.revocation_failure)],
                &e,
                degraded,
            )?,
        }
        let (Some(limit), Some(sub)) = (&inner.subject_limit, &token.sub) else {
            return Ok(None);
        };
        let charge = limit.charge();
        let store = &*inner.stores.ratelimit;
        let check = Check::SubjectLimit.as_str();
        let started = done;
        // A store that answers in process gets a key built on the stack; one that needs I/O,
        // an owned key for its future.
        let answer = match limit.with_key(sub, |key| store.gcra_now(key, &charge)) {
            Some(answer) => answer,
            None => {
                store
                    .gcra(&limit.key(sub), &charge)
                    .instrument(observe::store_span(check))
                    .await
            }
        };
        let _done = observe::store_done(check, started, answer.is_err());
        match answer {
            Ok(decision) => self.decide(RevocationStatus::Active, Some(decision)),
            Err(e) => self
                .outage(
                    &[(Check::SubjectLimit, limit.on_store_failure())],
                    &e,
                    degraded,
                )
                .map(|()| None),
        }
    }
}
