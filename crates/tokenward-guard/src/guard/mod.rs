//! The per-request pipeline: [`Guard`] (this file), its builder (`builder.rs`), and the two
//! ways its store checks run — separate stores one after the other (`sequential.rs`) or one
//! [`CombinedCheck`](crate::CombinedCheck) call (`combined.rs`).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenward_claims::{RejectionClass, Verified};
use tokenward_core::{FailurePolicy, StoreError, StoreErrorKind, TokenRef};
use tokenward_ratelimit::{BanCheck, ClientIp, Decision, FailureBan, RateLimitStore, SubjectLimit};
use tokenward_revocation::RevocationStatus;
use tracing::{Instrument as _, Span};

use crate::audit;
use crate::authenticated::{Authenticated, Requirements};
use crate::check::Check;
use crate::denial::Denial;
use crate::hook::{DecisionEvent, HookSlot};
use crate::observe;
use crate::request::{AuthRequest, Credentials, bearer_credentials, cookie_credentials};
use crate::stores::GuardStores;
use crate::verifier::Verifier;

mod builder;
mod combined;
mod now;
mod scopes;
mod sequential;

use now::Step;
pub use now::Unfinished;

pub use builder::{
    DEFAULT_BAN_NAME, DEFAULT_OUTAGE_RETRY_AFTER, DEFAULT_SUBJECT_LIMIT_NAME,
    DEFAULT_SUBJECT_QUOTA, GuardBuilder, OUTAGE_RETRY_AFTER_RANGE,
};

/// The name [`Guard::ratelimit_headers`] gives the `RateLimit-Policy` field (lowercase, as
/// HTTP/2 requires and `http::HeaderName` stores it).
pub const RATELIMIT_POLICY_HEADER: &str = "ratelimit-policy";
/// The name [`Guard::ratelimit_headers`] gives the `RateLimit` field.
pub const RATELIMIT_HEADER: &str = "ratelimit";

/// The custom claims of a token the Guard verified: every payload member that is not a
/// registered claim, as JSON. [`Authenticated::custom`] turns them into your own type.
pub type CustomClaims = serde_json::Map<String, serde_json::Value>;

/// The per-request authentication pipeline, independent of any web framework.
///
/// Per request, in this order:
/// 1. **failure ban** for the client IP (429 while banned — before any parsing or crypto):
///    its address key or its network key ([`FailureBan::check_ip`]; networks are banned by
///    the anomaly detectors);
/// 2. **credentials**: the `Authorization: Bearer` token (a cookie only if configured);
/// 3. **size cap**, then **verification** by the [`Verifier`] (one policy, or an
///    [`IssuerRouter`](tokenward_claims::IssuerRouter)), refetching a
///    [refetching key source](crate::KeySource::Refetching) once on an unknown `kid`;
///    a failure here — and a malformed header — is recorded for the failure ban, and the
///    failure that reaches the ban's `maxretry` is already answered 429;
/// 4. **revocation** check (jti, sid, subject cutoff) and
/// 5. **per-subject limit**, charged only for tokens that are not revoked;
/// 6. an **audit event** (target `tokenward::audit`) for every decision.
///
/// With a backend that has a [`CombinedCheck`](crate::CombinedCheck) (Redis), steps 1, 4
/// and 5 are **one** store call — one round trip per authenticated request — made after
/// verification: the ban (address and network keys) is then read together with the
/// revocation and the limit, a failed verification learns the ban from recording the failure
/// and, if its address is not banned, from reading its network's key (so a banned client
/// still gets 429), and a request without any token is answered 401 without a store call.
///
/// A store that cannot answer is handled by the failure policy of its check: closed (the
/// default) refuses with 503 + `Retry-After`, never 401 and never 200; open lets the request
/// through, lists the skipped checks in [`Authenticated::degraded`] and audits it.
///
/// Adapters call [`Guard::authorize`] once per request (see [`crate::http`]).
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
    scopes: scopes::ScopeCache,
    hook: Option<HookSlot>,
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
            .field("decision_hook", &i.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A Guard verifying with `verifier` and checking `stores`, with the defaults: every
    /// failure policy closed, a subject limit of 300/min named `subject`, a failure ban of
    /// 5 failures in 60 s → 300 s named `auth-ban`, client IP = the peer address (no proxy
    /// trusted), tokens from the `Authorization` header only, `Retry-After: 5` on outages.
    pub fn builder(verifier: impl Into<Verifier>, stores: GuardStores) -> GuardBuilder {
        GuardBuilder::new(verifier.into(), stores)
    }

    /// The stores (for revoking, logging in, refreshing next to the Guard).
    pub fn stores(&self) -> &GuardStores {
        &self.inner.stores
    }

    /// The client-IP resolution; adapters use [`Guard::resolve_client_ip`].
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

    /// The revocation check's failure policy.
    pub fn revocation_failure_policy(&self) -> FailurePolicy {
        self.inner.revocation_failure
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
    ///
    /// Observed three ways: an audit event ([`crate::audit`]); the metrics
    /// `tokenward_decisions_total`, `tokenward_guard_seconds` and, per store call,
    /// `tokenward_store_seconds` ([`tokenward_core::metrics`]); and a `tokenward.authenticate`
    /// span (target `tokenward::guard`) with the fields `enduser.id` (the verified `sub`),
    /// `tokenward.outcome` (`allowed`, `denied`), `tokenward.class` (`none` or
    /// [`Denial::class`]), `client.address`, `http.request.method` and `url.path`, with a
    /// `tokenward.store` child span (field `check`) per store call that awaits (none for a
    /// store answering synchronously in process, such as the in-memory ones).
    ///
    /// This is [`Guard::authenticate_now`], then — only when a step has to wait —
    /// [`Guard::authenticate_after`]: with in-memory stores the future of an allowed request
    /// is ready at its first poll.
    pub async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Authenticated, Denial> {
        // Bound first, so that the scrutinee is not kept across the `await`.
        let unfinished = match self.authenticate_now(req) {
            Ok(decision) => return decision,
            Err(unfinished) => unfinished,
        };
        self.authenticate_after(req, unfinished).await
    }

    /// The pipeline from `step` on (see [`Guard::authenticate_after`]), inside its span.
    async fn run(
        &self,
        req: &AuthRequest<'_>,
        started: Instant,
        span: &Span,
        step: Step,
    ) -> Result<Authenticated, Denial> {
        // Every `await` below that only a failing, banned or refetching request reaches is
        // boxed: this future is moved (copied) through every layer above it on every request,
        // so what the allowed path does not hold is kept out of its size.
        let (verified, token_ref, mut degraded, revocation_checked) = match step {
            Step::Verified(v) => {
                let v = *v;
                (v.verified, v.token_ref, v.degraded, v.revocation_checked)
            }
            Step::Rejected { class, .. } => {
                return Box::pin(self.rejected(req, started, class)).await;
            }
            Step::Start => {
                let mut degraded = Vec::new();
                // With a combined backend the ban is read in the same call as everything else.
                if self.inner.stores.combined.is_none()
                    && self.ban_may_refuse()
                    && let Err(denial) =
                        Box::pin(self.ban_check(req.client_ip, started, &mut degraded)).await
                {
                    return self.refuse(req, started, denial, None);
                }
                let token = match req.credentials {
                    Credentials::Bearer(token) => token,
                    Credentials::Absent => {
                        return self.refuse(req, started, Denial::MissingToken, None);
                    }
                    Credentials::Malformed(reason) => {
                        let denial = Box::pin(self.record_ban_failure(req.client_ip))
                            .await
                            .unwrap_or(Denial::InvalidRequest { reason });
                        return self.refuse(req, started, denial, None);
                    }
                };
                // The verified token goes into an `Arc` at once (`Authenticated` holds it in
                // one anyway): a pointer is all this future carries across its `await`s.
                let verifier = &self.inner.verifier;
                let verified = match verifier.verify_now(token) {
                    Some(answer) => answer.map(Arc::new),
                    None => Box::pin(verifier.verify_after(token)).await.map(Arc::new),
                };
                let verified = match verified {
                    Ok(v) => v,
                    Err(class) if !counts_for_ban(class) => {
                        return self.refuse(
                            req,
                            started,
                            Denial::InvalidToken { class },
                            Some(token),
                        );
                    }
                    Err(class) => return Box::pin(self.rejected(req, started, class)).await,
                };
                let token_ref = self.scoped(req, started, span, &verified)?;
                (verified, token_ref, degraded, false)
            }
        };
        let checks = match &self.inner.stores.combined {
            Some(combined) => {
                self.combined_checks(&**combined, &token_ref, req.client_ip, &mut degraded)
                    .await
            }
            None => {
                self.sequential_checks(&token_ref, revocation_checked, &mut degraded)
                    .await
            }
        };
        self.finish(req, started, verified, &token_ref, checks, degraded)
    }

    /// Refuses a request before its token verified: audited, handed to the decision hook.
    fn refuse(
        &self,
        req: &AuthRequest<'_>,
        started: Instant,
        denial: Denial,
        token: Option<&str>,
    ) -> Result<Authenticated, Denial> {
        audit::denied(req, &denial, None, token, started);
        self.notify(req, Some(&denial), None, None, token);
        Err(denial)
    }

    /// A token that failed verification with a `class` that counts for the failure ban:
    /// the failure is recorded, and the ban's 429 answers if it bans the client now.
    async fn rejected(
        &self,
        req: &AuthRequest<'_>,
        started: Instant,
        class: RejectionClass,
    ) -> Result<Authenticated, Denial> {
        let denial = self
            .record_ban_failure(req.client_ip)
            .await
            .unwrap_or(Denial::InvalidToken { class });
        let token = match req.credentials {
            Credentials::Bearer(token) => Some(token),
            _ => None,
        };
        self.refuse(req, started, denial, token)
    }

    /// The verified token's ids in its issuer's scope, for the stores; refused when it has
    /// no `exp` (only possible when the policy made it optional: revocation entries need it).
    fn scoped(
        &self,
        req: &AuthRequest<'_>,
        started: Instant,
        span: &Span,
        verified: &Verified<CustomClaims>,
    ) -> Result<TokenRef<'static>, Denial> {
        if let Some(sub) = verified.claims.sub.as_deref() {
            span.record("enduser.id", sub);
        }
        self.inner.scopes.token_ref(verified).ok_or_else(|| {
            let denial = Denial::InvalidToken {
                class: RejectionClass::Claims,
            };
            audit::denied(req, &denial, Some(verified), None, started);
            self.notify(req, Some(&denial), Some(verified), None, None);
            denial
        })
    }

    /// The decision for a verified token, from its store checks: audited, handed to the
    /// decision hook.
    fn finish(
        &self,
        req: &AuthRequest<'_>,
        started: Instant,
        verified: Arc<Verified<CustomClaims>>,
        token_ref: &TokenRef<'static>,
        checks: Result<Option<Decision>, Denial>,
        degraded: Vec<Check>,
    ) -> Result<Authenticated, Denial> {
        match checks {
            Ok(limit) => {
                let auth = Authenticated {
                    verified,
                    client_ip: req.client_ip,
                    limit,
                    degraded,
                };
                audit::allowed(req, &auth, started);
                self.notify(req, None, Some(&auth.verified), Some(token_ref), None);
                Ok(auth)
            }
            Err(denial) => {
                audit::denied(req, &denial, Some(&*verified), None, started);
                self.notify(req, Some(&denial), Some(&*verified), Some(token_ref), None);
                Err(denial)
            }
        }
    }

    /// Hands a decision to the decision hook, if there is one.
    fn notify(
        &self,
        req: &AuthRequest<'_>,
        denial: Option<&Denial>,
        verified: Option<&Verified<CustomClaims>>,
        token: Option<&TokenRef<'static>>,
        unverified_token: Option<&str>,
    ) {
        if let Some(HookSlot(hook)) = &self.inner.hook {
            hook.decided(&DecisionEvent {
                client_ip: req.client_ip,
                denial,
                claims: verified.map(|v| &v.claims),
                token,
                unverified_token,
            });
        }
    }

    /// Checks a route's [`Requirements`] for an authenticated request (audited when they
    /// refuse it).
    pub fn check_requirements(
        &self,
        req: &AuthRequest<'_>,
        auth: &Authenticated,
        requirements: &Requirements,
    ) -> Result<(), Denial> {
        requirements.check(auth).inspect_err(|denial| {
            audit::denied(req, denial, Some(&auth.verified), None, Instant::now());
        })
    }

    /// Whether `client_ip` may attempt to authenticate: the failure-ban check alone, for
    /// endpoints that authenticate by other means (a login form) before tokens exist.
    pub async fn check_client(&self, req: &AuthRequest<'_>) -> Result<(), Denial> {
        let started = Instant::now();
        let mut degraded = Vec::new();
        self.ban_check(req.client_ip, started, &mut degraded)
            .await
            .inspect_err(|denial| audit::denied(req, denial, None, None, started))
    }

    /// Records an authentication failure of `client_ip` that happened outside the Guard
    /// (wrong password at a login endpoint) for the failure ban, and audits it with
    /// `reason`.
    pub async fn record_failure(&self, req: &AuthRequest<'_>, reason: &'static str) {
        let started = Instant::now();
        let _banned_now = self.record_ban_failure(req.client_ip).await;
        audit::failure(req, reason, started);
    }

    /// The `RateLimit-Policy` and `RateLimit` header values for a successful response, named
    /// [`RATELIMIT_POLICY_HEADER`] and [`RATELIMIT_HEADER`]. Add each only where the
    /// response has no field of that name: a handler's own `RateLimit` fields are kept.
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

    /// Whether [`ban_check`](Self::ban_check) can refuse anything: a ban is configured and
    /// the store may hold one (the in-memory store knows at once when it holds none).
    fn ban_may_refuse(&self) -> bool {
        self.inner.ban.is_some() && !self.inner.stores.ratelimit.holds_no_ban()
    }

    /// The failure-ban check, the first thing a request does: timed from `started`.
    async fn ban_check(
        &self,
        ip: IpAddr,
        started: Instant,
        degraded: &mut Vec<Check>,
    ) -> Result<(), Denial> {
        let inner = &*self.inner;
        // No ban configured, or no key banned at all (the in-memory store knows at once):
        // nothing to look up.
        let Some(ban) = inner.ban.as_ref().filter(|_| self.ban_may_refuse()) else {
            return Ok(());
        };
        let check = Check::Ban.as_str();
        let answer = ban
            .check_ip(&*inner.stores.ratelimit, ip)
            .instrument(observe::store_span(check))
            .await;
        let _done = observe::store_done(check, started, answer.is_err());
        match answer {
            Ok(d) if d.allowed => Ok(()),
            Ok(decision) => Err(self.banned(ban, decision)),
            Err(e) => self.outage(&[(Check::Ban, ban.on_store_failure())], &e, degraded),
        }
    }

    fn banned(&self, ban: &FailureBan, decision: Decision) -> Denial {
        Denial::Banned {
            ratelimit: decision.ratelimit_header(ban.name()),
            policy: self.inner.ban_policy_header.clone().unwrap_or_default(),
            decision,
        }
    }

    /// Records a failure of `ip`; the ban's 429 if the client is (now) banned — by its
    /// address, or, with a one-call backend (which read no ban before verification), by its
    /// network (one more read, on this failure path only).
    async fn record_ban_failure(&self, ip: IpAddr) -> Option<Denial> {
        let inner = &*self.inner;
        let ban = inner.ban.as_ref()?;
        let check = Check::BanRecord.as_str();
        let started = Instant::now();
        let store = &*inner.stores.ratelimit;
        let answer = async {
            let address = ban.record_ip_failure(store, ip).await?;
            if !address.allowed || inner.stores.combined.is_none() {
                return Ok(address);
            }
            let network = ban.check_network(store, ip).await?;
            Ok::<_, StoreError>(BanCheck::combine(address, Some(network)))
        }
        .instrument(observe::store_span(check))
        .await;
        let _done = observe::store_done(check, started, answer.is_err());
        match answer {
            Ok(decision) if !decision.allowed => Some(self.banned(ban, decision)),
            Ok(_) => None,
            Err(e) => {
                // The request is refused anyway; the failure just is not counted.
                audit::store_error(Check::BanRecord, &e);
                None
            }
        }
    }

    /// The answer for a token's revocation status and its limit decision.
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

    /// A store could not answer `checks` (each with its failure policy; several when one
    /// call answers for several checks): refuse if any is closed (naming the first closed
    /// one), or go on with every one of them recorded as degraded.
    fn outage(
        &self,
        checks: &[(Check, FailurePolicy)],
        error: &StoreError,
        degraded: &mut Vec<Check>,
    ) -> Result<(), Denial> {
        let closed = checks
            .iter()
            .find(|(_, p)| !p.allows_on_failure())
            .map(|(c, _)| *c);
        let first = checks.first().map_or(Check::Revocation, |(c, _)| *c);
        audit::store_error(closed.unwrap_or(first), error);
        if error.kind() == StoreErrorKind::InvalidInput {
            // The store refused the token's own values (an id over the size limit): that is
            // the token's fault, not an outage, and no policy makes it acceptable.
            return Err(Denial::InvalidToken {
                class: RejectionClass::Claims,
            });
        }
        if let Some(check) = closed {
            return Err(Denial::Unavailable {
                check,
                retry_after: self.inner.outage_retry_after,
            });
        }
        degraded.extend(checks.iter().map(|(c, _)| *c));
        Ok(())
    }

    /// Revokes the token of `auth` (its `jti`) until it expires, plus the verifiers' leeway
    /// ([`revoke_until`](tokenward_revocation::revoke_until)).
    /// The `jti` is revoked in the scope of the token's issuer, where the Guard looks it up.
    pub async fn revoke_token(&self, auth: &Authenticated) -> Result<(), StoreError> {
        let Some(TokenRef {
            jti: Some(jti),
            exp,
            ..
        }) = self.token_ref(auth)
        else {
            return Err(StoreError::invalid_input("the token has no jti or exp"));
        };
        self.inner
            .stores
            .revocation
            .revoke_token(&jti, tokenward_revocation::revoke_until(exp))
            .await
    }

    /// The token refs the Guard checks for `auth`, every id scoped by the token's issuer
    /// ([`IssuerScope`](tokenward_core::IssuerScope)): what to revoke next to it (its `sid`
    /// at logout, its `sub` to sign the user out everywhere).
    pub fn token_ref(&self, auth: &Authenticated) -> Option<TokenRef<'static>> {
        self.inner.scopes.token_ref(&auth.verified)
    }

    /// The rate-limit store (for lifting bans).
    pub fn ratelimit_store(&self) -> &dyn RateLimitStore {
        &*self.inner.stores.ratelimit
    }
}

/// Whether a token refused with `class` counts as an authentication failure for the
/// failure ban. A token that expired (or is not yet valid) was signed by a trusted key and
/// is only late: every client holds one now and then, and retries with it before it
/// refreshes — counting them banned honest clients (and everyone behind their NAT) from
/// `/refresh` and `/login`, the way they recover. The validator checks times only after the
/// signature, so these classes are never a forgery. Everything else — malformed, forged,
/// unknown key, wrong issuer or audience — counts.
pub(crate) fn counts_for_ban(class: RejectionClass) -> bool {
    !matches!(class, RejectionClass::Expired | RejectionClass::NotYetValid)
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use super::*;

    /// The futures every request moves (each move copies all of a future's bytes, through
    /// every layer above it) stay small: what `authenticate_now` cannot finish is boxed once,
    /// in `authenticate_after`, so `authenticate` holds a pointer and a span; and `run`, the
    /// boxed part, carries neither the verified claims (an `Arc`) nor the state of the paths
    /// only a failing, banned or refetching request takes (boxed where they are taken).
    /// Measured on rustc 1.95: `authenticate` 72 bytes and `run` 952, against 1 424 and
    /// 1 304 before the boxing. The bounds leave room for compiler changes, not for a return
    /// of the copies.
    #[tokio::test]
    async fn the_request_futures_stay_small() {
        let guard = crate::testkit::Fixture::new().await.guard;
        let req = AuthRequest::new(
            "GET",
            "/",
            IpAddr::from([127, 0, 0, 1]),
            Credentials::Absent,
        );
        let authenticate = guard.authenticate(&req);
        assert!(
            size_of_val(&authenticate) <= 256,
            "authenticate: {} bytes",
            size_of_val(&authenticate)
        );
        drop(authenticate);
        let span = Span::none();
        let run = guard.run(&req, Instant::now(), &span, Step::Start);
        assert!(
            size_of_val(&run) <= 1024,
            "run: {} bytes",
            size_of_val(&run)
        );
    }
}
