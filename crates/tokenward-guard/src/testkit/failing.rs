//! The fixture's revocation store: in memory, failing for one subject.

use async_trait::async_trait;
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore};

/// A revocation store that fails for one subject, to exercise fail-closed.
#[derive(Debug)]
pub(super) struct FailingFor {
    pub(super) inner: MemoryRevocationStore,
    /// The subject (scoped by the fixture's issuer, as the Guard presents it) whose checks fail.
    pub(super) sub: StoreId<'static>,
    /// Whether it answers synchronously ([`RevocationStore::check_now`]), as the in-memory
    /// store does, or only through `check`, as a network store does.
    pub(super) answers_now: bool,
}

impl FailingFor {
    fn answer(&self, token: &TokenRef<'_>) -> Option<Result<RevocationStatus, StoreError>> {
        if token.sub.as_ref() == Some(&self.sub) {
            return Some(Err(StoreError::unavailable("testkit", "simulated outage")));
        }
        self.inner.check_now(token)
    }
}

#[async_trait]
impl RevocationStore for FailingFor {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.inner.revoke_token(jti, until).await
    }
    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.inner.revoke_session(sid, until).await
    }
    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner.revoke_subject(sub, before, until).await
    }
    async fn revoke_subject_without_session(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner
            .revoke_subject_without_session(sub, before, until)
            .await
    }
    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        match self.answer(token) {
            Some(answer) => answer,
            None => self.inner.check(token).await,
        }
    }
    fn check_now(&self, token: &TokenRef<'_>) -> Option<Result<RevocationStatus, StoreError>> {
        self.answers_now.then(|| self.answer(token)).flatten()
    }
}
