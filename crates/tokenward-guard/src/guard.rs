//! The per-request pipeline.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The name [`Guard::ratelimit_headers`] gives the `RateLimit-Policy` field (lowercase, as
/// HTTP/2 requires and `http::HeaderName` stores it).
pub const RATELIMIT_POLICY_HEADER: &str = "ratelimit-policy";
/// The name [`Guard::ratelimit_headers`] gives the `RateLimit` field.
pub const RATELIMIT_HEADER: &str = "ratelimit";

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tokenward_claims::{IssuerRouter, RejectionClass, Validator, Verified};
use tokenward_core::{FailurePolicy, StoreError, StoreErrorKind, StoreId, TokenRef, UnixTime};
use tokenward_ratelimit::{
    BanQuota, ClientIp, Decision, FailureBan, GcraCharge, GcraQuota, LimitKey, RateLimitStore,
    SubjectLimit,
};
use tokenward_revocation::RevocationStatus;

use crate::audit;
use crate::denial::Denial;
use crate::request::{AuthRequest, Credentials, bearer_credentials, cookie_credentials};
use crate::stores::GuardStores;

/// The custom claims of a token the Guard verified: every payload member that is not a
/// registered claim, as JSON. [`Authenticated::custom`] turns them into your own type.
pub type CustomClaims = serde_json::Map<String, serde_json::Value>;

/// Fetches keys the verifier does not know yet (a remote JWKS after the issuer rotated).
///
/// The Guard calls it once when a token fails with [`RejectionClass::Key`] and verifies again
/// if it returns `true`. Implementations must rate-limit themselves (single flight, cooldown):
/// the token is the attacker's, and so is its `kid`.
#[async_trait]
pub trait KeyRefetch: Send + Sync + 'static {
    /// Makes the key named by `token`'s `kid` known if the key source has it; `true` if it
    /// is known now.
    async fn refetch_for_token(&self, token: &str) -> bool;
}

#[cfg(feature = "jwks")]
#[async_trait]
impl KeyRefetch for tokenward_jwks::RemoteKeySet {
    async fn refetch_for_token(&self, token: &str) -> bool {
        tokenward_jwks::RemoteKeySet::refetch_for_token(self, token).await
    }
}

/// What verifies tokens: one policy, or several issuers each with their own keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Verifier {
    /// One issuer.
    One(Validator),
    /// Several issuers, routed by `iss` without mixing their keys.
    Router(Arc<IssuerRouter>),
}

impl Verifier {
    fn verify(&self, token: &str) -> Result<Verified<CustomClaims>, tokenward_claims::Rejection> {
        match self {
            Verifier::One(v) => v.verify_with(token),
            Verifier::Router(r) => r.verify_with(token),
        }
    }
}

impl From<Validator> for Verifier {
    fn from(v: Validator) -> Self {
        Verifier::One(v)
    }
}

impl From<IssuerRouter> for Verifier {
    fn from(r: IssuerRouter) -> Self {
        Verifier::Router(Arc::new(r))
    }
}

/// A request that passed the Guard: the verified token and what the checks decided.
///
/// Cheap to clone (the claims are shared); adapters put it in the request's extensions.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Authenticated {
    /// The verified token.
    pub verified: Arc<Verified<CustomClaims>>,
    /// The client address the checks used.
    pub client_ip: IpAddr,
    /// The subject limit's decision (for `RateLimit` headers on the response), if one ran.
    pub limit: Option<Decision>,
    /// A check that could not be made and was skipped under [`FailurePolicy::DangerousOpen`]
    /// (`revocation`, `subject_limit` or `ban`); audited.
    pub degraded: Option<&'static str>,
}

impl Authenticated {
    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.verified.claims.sub.as_deref()
    }

    /// `sid`: the refresh family (session) the token belongs to.
    pub fn sid(&self) -> Option<&str> {
        self.verified.claims.sid.as_deref()
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.verified.claims.jti.as_deref()
    }

    /// `exp`.
    pub fn exp(&self) -> Option<u64> {
        self.verified.claims.exp
    }

    /// The scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.verified.claims.scopes()
    }

    /// Whether the token has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.verified.claims.has_scope(scope)
    }

    /// The custom claims as your own type (parsed from the already verified payload).
    pub fn custom<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(serde_json::Value::Object(self.verified.custom.clone()))
    }
}

/// What a route requires beyond a valid token: scopes (403 `insufficient_scope` when one is
/// missing) and an audience (401 `invalid_token` when the token is not meant for it).
///
/// ```
/// use tokenward_guard::Requirements;
/// let admin = Requirements::new().scope("admin").audience("admin-api");
/// assert_eq!(admin.scopes(), ["admin"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    scopes: Vec<String>,
    audience: Option<String>,
}

impl Requirements {
    /// Nothing beyond a valid token.
    pub fn new() -> Self {
        Requirements::default()
    }

    /// Requires `scope` (all added scopes are required).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Requires `aud` to contain `audience`.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The required scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn check(&self, auth: &Authenticated) -> Result<(), Denial> {
        if let Some(aud) = &self.audience {
            let ok = auth
                .verified
                .claims
                .aud
                .as_ref()
                .is_some_and(|a| a.contains(aud));
            if !ok {
                return Err(Denial::InvalidToken {
                    class: RejectionClass::Audience,
                });
            }
        }
        if self.scopes.iter().all(|s| auth.has_scope(s)) {
            Ok(())
        } else {
            Err(Denial::InsufficientScope {
                required: self.scopes.join(" "),
            })
        }
    }
}

/// The per-request authentication pipeline, independent of any web framework.
///
/// Per request, in this order:
/// 1. **failure ban** for the client IP (429 while banned — before any parsing or crypto);
/// 2. **credentials**: the `Authorization: Bearer` token (a cookie only if configured);
/// 3. **size cap**, then **verification** by the [`Validator`] (or [`IssuerRouter`]);
///    a failure here — and a malformed header — is recorded for the failure ban, and the
///    failure that reaches the ban's `maxretry` is already answered 429;
/// 4. **revocation** check (jti, sid, subject cutoff) and
/// 5. **per-subject limit**, charged only for tokens that are not revoked;
/// 6. an **audit event** (target `tokenward::audit`) for every decision.
///
/// With a backend that has a [`CombinedCheck`](crate::CombinedCheck) (Redis), steps 1, 4
/// and 5 are **one** store call — one round trip per authenticated request — made after
/// verification: the ban is then read together with the revocation and the limit, a failed
/// verification learns the ban from recording the failure (so a banned client still gets
/// 429), and a request without any token is answered 401 without a store call.
///
/// A store that cannot answer is handled by the failure policy of its check: closed (the
/// default) refuses with 503 + `Retry-After`, never 401 and never 200; open lets the request
/// through, marks it [`Authenticated::degraded`] and audits it.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    stores: GuardStores,
    revocation_failure: FailurePolicy,
    subject_limit: Option<SubjectLimit>,
    subject_policy_header: Option<String>,
    ban: Option<FailureBan>,
    ban_policy_header: Option<String>,
    client_ip: ClientIp,
    cookie: Option<String>,
    outage_retry_after: Duration,
    key_refetch: Option<Arc<dyn KeyRefetch>>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("Guard")
            .field("stores", &i.stores)
            .field("revocation_failure", &i.revocation_failure)
            .field("subject_limit", &i.subject_limit)
            .field("ban", &i.ban)
            .field("client_ip", &i.client_ip)
            .field("cookie", &i.cookie)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Guard`]; see [`Guard::builder`] for the defaults.
#[derive(Debug)]
#[must_use]
pub struct GuardBuilder {
    verifier: Verifier,
    stores: GuardStores,
    failure_policy: FailurePolicy,
    revocation_failure: Option<FailurePolicy>,
    subject_limit: Option<SubjectLimit>,
    ban: Option<FailureBan>,
    client_ip: ClientIp,
    cookie: Option<String>,
    outage_retry_after: Duration,
    key_refetch: Option<Arc<dyn KeyRefetch>>,
}

impl fmt::Debug for dyn KeyRefetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyRefetch")
    }
}

/// The default subject limit: 300 requests per minute per subject, bursts of 300.
pub const DEFAULT_SUBJECT_QUOTA: GcraQuota =
    GcraQuota::per_minute(std::num::NonZeroU32::new(300).unwrap());
/// The default `Retry-After` of a 503 under fail-closed.
pub const DEFAULT_OUTAGE_RETRY_AFTER: Duration = Duration::from_secs(5);

impl Guard {
    /// A Guard verifying with `verifier` and checking `stores`, with the defaults: every
    /// failure policy closed, a subject limit of 300/min named `subject`, a failure ban of
    /// 5 failures in 60 s → 300 s named `auth-ban`, client IP = the peer address (no proxy
    /// trusted), tokens from the `Authorization` header only, `Retry-After: 5` on outages.
    pub fn builder(verifier: impl Into<Verifier>, stores: GuardStores) -> GuardBuilder {
        GuardBuilder {
            verifier: verifier.into(),
            stores,
            failure_policy: FailurePolicy::Closed,
            revocation_failure: None,
            subject_limit: SubjectLimit::new("subject", DEFAULT_SUBJECT_QUOTA).ok(),
            ban: FailureBan::new("auth-ban", BanQuota::fail2ban_default()).ok(),
            client_ip: ClientIp::peer_only(),
            cookie: None,
            outage_retry_after: DEFAULT_OUTAGE_RETRY_AFTER,
            key_refetch: None,
        }
    }

    /// The stores (for revoking, logging in, refreshing next to the Guard).
    pub fn stores(&self) -> &GuardStores {
        &self.inner.stores
    }

    /// The client-IP resolution: call [`ClientIp::resolve`] with the peer address and the
    /// values of [`ClientIp::header`] to fill [`AuthRequest::client_ip`].
    pub fn client_ip(&self) -> &ClientIp {
        &self.inner.client_ip
    }

    /// The subject limit, if any.
    pub fn subject_limit(&self) -> Option<&SubjectLimit> {
        self.inner.subject_limit.as_ref()
    }

    /// The failure ban, if any.
    pub fn failure_ban(&self) -> Option<&FailureBan> {
        self.inner.ban.as_ref()
    }

    /// The credentials of a request from its `Authorization` header values and — only if
    /// a cookie source is configured and there is no `Authorization` bearer token — its
    /// `Cookie` header values.
    pub fn credentials<'a, A, C>(&self, authorization: A, cookies: C) -> Credentials<'a>
    where
        A: IntoIterator<Item = &'a [u8]>,
        C: IntoIterator<Item = &'a [u8]>,
    {
        match (bearer_credentials(authorization), &self.inner.cookie) {
            (Credentials::Absent, Some(name)) => cookie_credentials(cookies, name),
            (found, _) => found,
        }
    }

    /// Runs the pipeline for one request.
    pub async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Authenticated, Denial> {
        let started = audit::start();
        let mut degraded = None;
        let deny = |denial: Denial, token: Option<&str>| {
            audit::denied(req, &denial, None, token, started);
            Err(denial)
        };
        // With a combined backend the ban is read in the same call as everything else.
        if self.inner.stores.combined.is_none()
            && let Err(denial) = self.ban_check(req.client_ip, &mut degraded).await
        {
            return deny(denial, None);
        }
        let token = match req.credentials {
            Credentials::Bearer(token) => token,
            Credentials::Absent => return deny(Denial::MissingToken, None),
            Credentials::Malformed(reason) => {
                let denial = self
                    .record_ban_failure(req.client_ip)
                    .await
                    .unwrap_or(Denial::InvalidRequest { reason });
                return deny(denial, None);
            }
        };
        let verified = match self.verify(token).await {
            Ok(v) => v,
            Err(class) => {
                let denial = self
                    .record_ban_failure(req.client_ip)
                    .await
                    .unwrap_or(Denial::InvalidToken { class });
                return deny(denial, Some(token));
            }
        };
        match self
            .store_checks(&verified, req.client_ip, &mut degraded)
            .await
        {
            Ok(limit) => {
                let auth = Authenticated {
                    verified: Arc::new(verified),
                    client_ip: req.client_ip,
                    limit,
                    degraded,
                };
                audit::allowed(req, &auth, started);
                Ok(auth)
            }
            Err(denial) => {
                audit::denied(req, &denial, Some(&verified), None, started);
                Err(denial)
            }
        }
    }

    /// Checks a route's [`Requirements`] for an authenticated request (audited when they
    /// refuse it).
    pub fn authorize(
        &self,
        req: &AuthRequest<'_>,
        auth: &Authenticated,
        requirements: &Requirements,
    ) -> Result<(), Denial> {
        requirements.check(auth).inspect_err(|denial| {
            audit::denied(req, denial, Some(&auth.verified), None, audit::start());
        })
    }

    /// Whether `client_ip` may attempt to authenticate: the failure-ban check alone, for
    /// endpoints that authenticate by other means (a login form) before tokens exist.
    pub async fn check_client(&self, req: &AuthRequest<'_>) -> Result<(), Denial> {
        let started = audit::start();
        let mut degraded = None;
        self.ban_check(req.client_ip, &mut degraded)
            .await
            .inspect_err(|denial| audit::denied(req, denial, None, None, started))
    }

    /// Records an authentication failure of `client_ip` that happened outside the Guard
    /// (wrong password at a login endpoint) for the failure ban, and audits it with
    /// `reason`.
    pub async fn record_failure(&self, req: &AuthRequest<'_>, reason: &'static str) {
        let started = audit::start();
        let _banned_now = self.record_ban_failure(req.client_ip).await;
        audit::failure(req, reason, started);
    }

    /// The `RateLimit-Policy` and `RateLimit` header values for a successful response, named
    /// [`RATELIMIT_POLICY_HEADER`] and [`RATELIMIT_HEADER`].
    pub fn ratelimit_headers(&self, auth: &Authenticated) -> Option<[(&'static str, String); 2]> {
        let (limit, policy, decision) = (
            self.inner.subject_limit.as_ref()?,
            self.inner.subject_policy_header.as_ref()?,
            auth.limit.as_ref()?,
        );
        Some([
            (RATELIMIT_POLICY_HEADER, policy.clone()),
            (RATELIMIT_HEADER, limit.ratelimit_header(decision)),
        ])
    }

    async fn verify(&self, token: &str) -> Result<Verified<CustomClaims>, RejectionClass> {
        let inner = &*self.inner;
        match inner.verifier.verify(token) {
            Ok(v) => Ok(v),
            Err(r) if r.class() == RejectionClass::Key => match &inner.key_refetch {
                Some(refetch) if refetch.refetch_for_token(token).await => {
                    inner.verifier.verify(token).map_err(|r| r.class())
                }
                _ => Err(r.class()),
            },
            Err(r) => Err(r.class()),
        }
    }

    async fn ban_check(
        &self,
        ip: IpAddr,
        degraded: &mut Option<&'static str>,
    ) -> Result<(), Denial> {
        let inner = &*self.inner;
        let Some(ban) = &inner.ban else {
            return Ok(());
        };
        match ban.check_ip(&*inner.stores.ratelimit, ip).await {
            Ok(d) if d.allowed => Ok(()),
            Ok(decision) => Err(self.banned(ban, decision)),
            Err(e) => self.outage("ban", ban.on_store_failure(), &e, degraded),
        }
    }

    fn banned(&self, ban: &FailureBan, decision: Decision) -> Denial {
        Denial::Banned {
            ratelimit: decision.ratelimit_header(ban.name()),
            policy: self.inner.ban_policy_header.clone().unwrap_or_default(),
            decision,
        }
    }

    /// Records a failure of `ip`; the ban's 429 if the client is (now) banned.
    async fn record_ban_failure(&self, ip: IpAddr) -> Option<Denial> {
        let inner = &*self.inner;
        let ban = inner.ban.as_ref()?;
        match ban.record_ip_failure(&*inner.stores.ratelimit, ip).await {
            Ok(decision) if !decision.allowed => Some(self.banned(ban, decision)),
            Ok(_) => None,
            Err(e) => {
                // The request is refused anyway; the failure just is not counted.
                audit::store_error("ban_record", &e);
                None
            }
        }
    }

    /// Ban (with a combined backend), revocation and subject limit; `Ok(limit decision)` or
    /// the denial.
    async fn store_checks(
        &self,
        verified: &Verified<CustomClaims>,
        ip: IpAddr,
        degraded: &mut Option<&'static str>,
    ) -> Result<Option<Decision>, Denial> {
        let inner = &*self.inner;
        let Some(token) = verified.token_ref() else {
            // Only possible when the policy made `exp` optional: revocation entries need it.
            return Err(Denial::InvalidToken {
                class: RejectionClass::Claims,
            });
        };
        let limit_key: Option<(&SubjectLimit, LimitKey<'_>, GcraCharge)> =
            match (&inner.subject_limit, &token.sub) {
                (Some(limit), Some(sub)) => Some((limit, limit.key(sub), limit.charge())),
                _ => None,
            };
        let limit_arg = limit_key.as_ref().map(|(_, key, charge)| (key, charge));

        if let Some(combined) = &inner.stores.combined {
            let ban_key = inner.ban.as_ref().map(|ban| (ban, ban.ip_key(ip)));
            let ban_arg = ban_key.as_ref().map(|(ban, key)| (key, ban.quota()));
            return match combined.check_request(&token, limit_arg, ban_arg).await {
                Ok(answer) => {
                    if let (Some(decision), Some((ban, _))) = (answer.ban, &ban_key)
                        && !decision.allowed
                    {
                        return Err(self.banned(ban, decision));
                    }
                    self.decide(answer.revocation, answer.limit)
                }
                Err(e) => {
                    // Nothing is known: the first closed policy refuses.
                    let checks = [
                        Some(("revocation", inner.revocation_failure)),
                        limit_key
                            .as_ref()
                            .map(|(l, _, _)| ("subject_limit", l.on_store_failure())),
                        ban_key.as_ref().map(|(b, _)| ("ban", b.on_store_failure())),
                    ];
                    let (check, policy) = checks
                        .into_iter()
                        .flatten()
                        .find(|(_, p)| !p.allows_on_failure())
                        .unwrap_or(("revocation", inner.revocation_failure));
                    self.outage(check, policy, &e, degraded).map(|()| None)
                }
            };
        }

        match inner.stores.revocation.check(&token).await {
            Ok(status) => {
                self.decide(status, None)?;
            }
            Err(e) => self.outage("revocation", inner.revocation_failure, &e, degraded)?,
        }
        let Some((limit, key, charge)) = &limit_key else {
            return Ok(None);
        };
        let store = &*inner.stores.ratelimit;
        let answer = match store.gcra_now(key, charge) {
            Some(answer) => answer,
            None => store.gcra(key, charge).await,
        };
        match answer {
            Ok(decision) => self.decide(RevocationStatus::Active, Some(decision)),
            Err(e) => self
                .outage("subject_limit", limit.on_store_failure(), &e, degraded)
                .map(|()| None),
        }
    }

    fn decide(
        &self,
        status: RevocationStatus,
        decision: Option<Decision>,
    ) -> Result<Option<Decision>, Denial> {
        if let RevocationStatus::Revoked(by) = status {
            return Err(Denial::Revoked { by });
        }
        match (decision, &self.inner.subject_limit) {
            (Some(decision), Some(limit)) if !decision.allowed => Err(Denial::RateLimited {
                ratelimit: limit.ratelimit_header(&decision),
                policy: self.inner.subject_policy_header.clone().unwrap_or_default(),
                decision,
            }),
            (decision, _) => Ok(decision),
        }
    }

    /// A store could not answer `check`: refuse (closed) or go on degraded (open).
    fn outage(
        &self,
        check: &'static str,
        policy: FailurePolicy,
        error: &StoreError,
        degraded: &mut Option<&'static str>,
    ) -> Result<(), Denial> {
        audit::store_error(check, error);
        if error.kind() == StoreErrorKind::InvalidInput {
            // The store refused the token's own values (an id over the size limit): that is
            // the token's fault, not an outage, and no policy makes it acceptable.
            return Err(Denial::InvalidToken {
                class: RejectionClass::Claims,
            });
        }
        if policy.allows_on_failure() {
            *degraded = Some(check);
            Ok(())
        } else {
            Err(Denial::Unavailable {
                check,
                retry_after: self.inner.outage_retry_after,
            })
        }
    }

    /// Revokes the token of `auth` (its `jti`) until it expires, plus the verifiers' leeway
    /// ([`revoke_until`](tokenward_revocation::revoke_until)).
    pub async fn revoke_token(&self, auth: &Authenticated) -> Result<(), StoreError> {
        let (Some(jti), Some(exp)) = (auth.jti(), auth.exp()) else {
            return Err(StoreError::invalid_input("the token has no jti or exp"));
        };
        self.inner
            .stores
            .revocation
            .revoke_token(
                &StoreId::new(jti)?,
                tokenward_revocation::revoke_until(UnixTime::from_secs(exp)),
            )
            .await
    }

    /// The token refs the Guard would check for `auth` (for revoking next to it).
    pub fn token_ref<'a>(&self, auth: &'a Authenticated) -> Option<TokenRef<'a>> {
        auth.verified.token_ref()
    }

    /// The rate-limit store (for lifting bans).
    pub fn ratelimit_store(&self) -> &dyn RateLimitStore {
        &*self.inner.stores.ratelimit
    }
}

impl GuardBuilder {
    /// The failure policy of every check that has no policy of its own set here (default
    /// closed). Applied to the default subject limit and ban; a [`SubjectLimit`] or
    /// [`FailureBan`] you pass keeps its own.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self.subject_limit = self.subject_limit.map(|l| l.failure_policy(policy));
        self.ban = self.ban.map(|b| b.failure_policy(policy));
        self
    }

    /// The revocation check's failure policy (default: [`GuardBuilder::failure_policy`]).
    pub fn revocation_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.revocation_failure = Some(policy);
        self
    }

    /// The per-subject limit (replacing the default 300/min).
    pub fn subject_limit(mut self, limit: SubjectLimit) -> Self {
        self.subject_limit = Some(limit);
        self
    }

    /// No per-subject limit.
    pub fn no_subject_limit(mut self) -> Self {
        self.subject_limit = None;
        self
    }

    /// The failure ban (replacing the default 5 / 60 s / 300 s).
    pub fn failure_ban(mut self, ban: FailureBan) -> Self {
        self.ban = Some(ban);
        self
    }

    /// No failure ban.
    pub fn no_failure_ban(mut self) -> Self {
        self.ban = None;
        self
    }

    /// How the client address is found (default: the peer address, no proxy trusted).
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = client_ip;
        self
    }

    /// Also reads the token from the cookie `name` when there is no `Authorization` bearer
    /// token. Opt-in: a cookie is sent by the browser on cross-site requests too, so use it
    /// only with `SameSite=Strict` (or `Lax` plus CSRF protection) and `HttpOnly; Secure`.
    pub fn cookie_token(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// The `Retry-After` of a 503 under fail-closed (default 5 s).
    pub fn outage_retry_after(mut self, after: Duration) -> Self {
        self.outage_retry_after = after;
        self
    }

    /// Refetches unknown keys (a remote JWKS) once per unknown-`kid` failure.
    pub fn key_refetch(mut self, refetch: Arc<dyn KeyRefetch>) -> Self {
        self.key_refetch = Some(refetch);
        self
    }

    /// The Guard.
    pub fn build(self) -> Guard {
        let subject_policy_header = self.subject_limit.as_ref().map(SubjectLimit::policy_header);
        let ban_policy_header = self.ban.as_ref().map(FailureBan::policy_header);
        Guard {
            inner: Arc::new(Inner {
                verifier: self.verifier,
                stores: self.stores,
                revocation_failure: self.revocation_failure.unwrap_or(self.failure_policy),
                subject_limit: self.subject_limit,
                subject_policy_header,
                ban: self.ban,
                ban_policy_header,
                client_ip: self.client_ip,
                cookie: self.cookie,
                outage_retry_after: self.outage_retry_after,
                key_refetch: self.key_refetch,
            }),
        }
    }
}
