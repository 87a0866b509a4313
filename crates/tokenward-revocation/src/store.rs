use async_trait::async_trait;
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};

/// How long a revocation must outlive the token's `exp`: verifiers accept a token for their
/// clock leeway after `exp` (tokenward policies: 30 s by default, at most 5 minutes without a
/// `dangerous_` opt-in), so an entry that vanished at `exp` would let a revoked token verify
/// again for that long. [`revoke_until`] adds it; every tokenward caller uses it.
pub const LEEWAY_MARGIN: std::time::Duration = std::time::Duration::from_secs(300);

/// The `until` of a revocation covering a token that expires at `exp` (or tokens that
/// expire by then): `exp` plus [`LEEWAY_MARGIN`].
///
/// ```
/// use tokenward_core::UnixTime;
/// assert_eq!(
///     tokenward_revocation::revoke_until(UnixTime::from_secs(1_000)),
///     UnixTime::from_secs(1_300)
/// );
/// ```
pub fn revoke_until(exp: UnixTime) -> UnixTime {
    exp.saturating_add(LEEWAY_MARGIN)
}

/// The cutoff of a "sign out everywhere" at `now` for verifiers that accept an `iat` up to
/// `leeway` in the future: `now + leeway + 1 s`. Tokens issued in the current second are
/// included (`iat` is in whole seconds), and so are those of an issuer whose clock runs up
/// to `leeway` ahead — which verifiers would otherwise still accept.
///
/// ```
/// use std::time::Duration;
/// use tokenward_core::UnixTime;
/// assert_eq!(
///     tokenward_revocation::subject_cutoff(UnixTime::from_secs(1_000), Duration::from_secs(30)),
///     UnixTime::from_secs(1_031)
/// );
/// ```
pub fn subject_cutoff(now: UnixTime, leeway: std::time::Duration) -> UnixTime {
    now.saturating_add(leeway)
        .saturating_add(std::time::Duration::from_secs(1))
}

/// Which rule revoked a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedBy {
    /// Its `jti` was revoked.
    Token,
    /// Its session (`sid`) was revoked.
    Session,
    /// Every token of its subject issued before `before` was revoked.
    Subject {
        /// The cutoff: tokens with `iat < before` (or without `iat`) are revoked.
        before: UnixTime,
    },
}

impl RevokedBy {
    /// A stable name for audit events and metrics: `token`, `session` or `subject`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokedBy::Token => "token",
            RevokedBy::Session => "session",
            RevokedBy::Subject { .. } => "subject",
        }
    }
}

/// The answer of [`RevocationStore::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationStatus {
    /// No rule matches: the token may be used.
    Active,
    /// A rule matches. When several do, the token rule wins, then session, then subject.
    Revoked(RevokedBy),
}

impl RevocationStatus {
    /// Whether the token is revoked.
    pub fn is_revoked(self) -> bool {
        matches!(self, RevocationStatus::Revoked(_))
    }
}

/// Where revocations live.
///
/// # Contract for implementations
///
/// Every backend — tokenward's and yours — must honour this, and the
/// [`conformance`](crate::conformance) suite checks it:
///
/// - **Durable once acknowledged.** A revoke that returned `Ok` is visible to every later
///   `check`, from any task, thread or (for shared backends) process, until its `until`.
/// - **Never earlier than asked.** An entry may outlive its `until`, but never expire before
///   it. Revoking the same id again keeps the *later* `until` (and, for subjects, the later
///   cutoff): revocations only ever extend.
/// - **Self-expiring.** Entries must disappear on their own once `until` has passed (TTLs,
///   expiry indexes), so storage is proportional to live revocations. No cleanup job may be
///   required.
/// - **A full store refuses, it never forgets.** A bounded backend that cannot store a new
///   entry returns [`StoreError::CapacityExceeded`]; it must not evict a live revocation.
/// - **Bounded and typed failures.** Every method returns within the backend's configured
///   timeout; outages are [`StoreError::Unavailable`] / [`StoreError::Timeout`], garbage read
///   back is [`StoreError::Corrupt`] (never "not revoked"). Never panic.
/// - **Ids are opaque.** Every id arrives as a [`StoreId`] (1 to
///   [`MAX_ID_LEN`](tokenward_core::MAX_ID_LEN) bytes, no NUL: checked where it was made, so
///   a backend never checks again). Any other byte — separators, hash-tag braces, control
///   characters, non-ASCII text — must round-trip without aliasing another id, and the three
///   rules are separate namespaces.
/// - **`until` in the past** (or equal to now) is a no-op that returns `Ok`: nothing it could
///   match is still valid. An entry "until T" matches while `now < T`.
/// - **Millisecond precision is enough, rounded the safe way.** A backend may keep `until`
///   and `before` in whole milliseconds (Redis `PXAT`), rounding so that it never revokes
///   less: both *up* to the next millisecond. The conformance suite uses times that are not
///   on a millisecond, and checks them exactly with an exact clock.
/// - **The store keeps its own time.** No method takes "now": the store decides expiry by its
///   own clock — an injected [`Clock`](tokenward_core::Clock) in memory, the server's clock on
///   a shared backend (Redis `TIME`, PostgreSQL `now()`). Every tokenward store trait follows
///   this convention, because a store shared by several application instances is the only
///   clock they all agree on; `until` and `before` are instants taken from tokens (`exp`,
///   `iat`), not readings of the caller's clock.
/// - **`check` is one call** answering for the token's `jti`, `sid` and `sub`/`iat` together
///   (one round trip on a networked backend). A subject cutoff revokes tokens with
///   `iat < before`, and tokens without `iat` (they cannot prove they are newer).
///
/// Callers decide what an error means through their `FailurePolicy` (fail closed by default).
///
/// # A custom backend
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
/// use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};
///
/// /// A toy backend: one map per rule, entries kept with their expiry.
/// #[derive(Default)]
/// struct MapStore {
///     tokens: Mutex<HashMap<String, UnixTime>>,
/// }
///
/// #[async_trait]
/// impl RevocationStore for MapStore {
///     async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
///         let mut map = self.tokens.lock().map_err(|_| StoreError::corrupt("poisoned"))?;
///         let entry = map.entry(jti.as_str().to_owned()).or_insert(until);
///         *entry = (*entry).max(until); // revocations only ever extend
///         Ok(())
///     }
///     async fn revoke_session(&self, _: &StoreId<'_>, _: UnixTime) -> Result<(), StoreError> {
///         Err(StoreError::invalid_input("sessions are not supported by this toy"))
///     }
///     async fn revoke_subject(
///         &self,
///         _: &StoreId<'_>,
///         _: UnixTime,
///         _: UnixTime,
///     ) -> Result<(), StoreError> {
///         Err(StoreError::invalid_input("subjects are not supported by this toy"))
///     }
///     async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
///         let map = self.tokens.lock().map_err(|_| StoreError::corrupt("poisoned"))?;
///         Ok(match token.jti.as_ref().and_then(|jti| map.get(jti.as_str())) {
///             Some(_) => RevocationStatus::Revoked(RevokedBy::Token),
///             None => RevocationStatus::Active,
///         })
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store: std::sync::Arc<dyn RevocationStore> = std::sync::Arc::new(MapStore::default());
/// let exp = UnixTime::from_secs(2_000_000_000);
/// store.revoke_token(&StoreId::new("j-1")?, exp).await?;
/// let token = TokenRef::from_parts(Some("j-1"), None, Some("alice"), None, exp)?;
/// assert_eq!(store.check(&token).await?, RevocationStatus::Revoked(RevokedBy::Token));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
/// (A real backend must also expire entries on its own; this toy keeps them forever.)
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Revokes the token with this `jti` until `until` (normally [`revoke_until`] of the
    /// token's `exp`, which covers the verifiers' leeway).
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError>;

    /// Revokes every token carrying `sid` until `until` (normally the issue time of the
    /// session's newest access token plus the maximum access-token lifetime, or the refresh
    /// family's absolute expiry).
    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError>;

    /// Revokes every token of `sub` issued before `before` (`iat < before`), until `until`
    /// (normally `before` plus the maximum access-token lifetime).
    ///
    /// `iat` is the issuer's clock, and verifiers accept an `iat` up to their leeway in the
    /// future: to catch the tokens of an issuer whose clock runs ahead, the cutoff must be
    /// `now` plus that leeway ([`subject_cutoff`]) — and then a token issued after the
    /// sign-out but within the leeway is refused too. Where the application knows the
    /// subject's sessions (its refresh families), revoke each by `sid` and use
    /// [`revoke_subject_without_session`](Self::revoke_subject_without_session) instead: a new
    /// login then works at once.
    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError>;

    /// Revokes the tokens of `sub` **that carry no `sid`** issued before `before`, until
    /// `until`; tokens with a `sid` are left to their session's rule. "Sign out everywhere"
    /// by an application that knows the subject's sessions: revoke each session by `sid`,
    /// then this with [`subject_cutoff`]. Every token issued before is refused whatever the
    /// issuer's clock (within the leeway), and a login afterwards — a new session — works at
    /// once.
    ///
    /// A match is reported as [`RevokedBy::Subject`]. The default implementation calls
    /// [`revoke_subject`](Self::revoke_subject), which is stricter (it also refuses tokens
    /// with a `sid` issued before the cutoff): a backend without the rule fails closed.
    async fn revoke_subject_without_session(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.revoke_subject(sub, before, until).await
    }

    /// Whether any rule revokes `token`, and which.
    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError>;

    /// The synchronous fast path of [`check`](Self::check), for stores that answer without
    /// I/O (in process): `Some(answer)` is the check itself, and `None` (the default, and what
    /// network stores return) means "call `check`".
    ///
    /// It exists because an `async_trait` call allocates its future: for an in-memory check
    /// that costs about as much as the check. The Guard tries it first.
    ///
    /// Contract: a store that returns `Some` gives exactly the answer `check` would have
    /// given at that moment (the conformance suite compares the two on every check it makes).
    fn check_now(&self, token: &TokenRef<'_>) -> Option<Result<RevocationStatus, StoreError>> {
        let _ = token;
        None
    }
}

#[async_trait]
impl<S: RevocationStore + ?Sized> RevocationStore for std::sync::Arc<S> {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        (**self).revoke_token(jti, until).await
    }
    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        (**self).revoke_session(sid, until).await
    }
    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        (**self).revoke_subject(sub, before, until).await
    }
    async fn revoke_subject_without_session(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        (**self)
            .revoke_subject_without_session(sub, before, until)
            .await
    }
    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        (**self).check(token).await
    }
    fn check_now(&self, token: &TokenRef<'_>) -> Option<Result<RevocationStatus, StoreError>> {
        (**self).check_now(token)
    }
}
