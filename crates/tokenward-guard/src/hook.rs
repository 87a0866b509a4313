//! The decision hook: every decision of [`Guard::authenticate`](crate::Guard::authenticate),
//! typed, to code of your own — anomaly detection (`tokenward-anomaly`), counters of your
//! own — without parsing log lines.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use tokenward_claims::RegisteredClaims;
use tokenward_core::TokenRef;

use crate::denial::Denial;

/// One decision of the Guard, as a [`DecisionHook`] sees it. Borrowed from the request: copy
/// what you keep.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DecisionEvent<'a> {
    /// The client address the Guard used (after trusted proxies).
    pub client_ip: IpAddr,
    /// `None` when the request was allowed; the denial otherwise.
    pub denial: Option<&'a Denial>,
    /// The verified token's claims, when verification succeeded (also for a token refused
    /// later as revoked or rate-limited).
    pub claims: Option<&'a RegisteredClaims>,
    /// The ids the Guard's stores use for that token, each scoped by its issuer
    /// ([`IssuerScope`](tokenward_core::IssuerScope)) — what to revoke.
    pub token: Option<&'a TokenRef<'static>>,
    /// The token that failed verification (never logged: fingerprint it with
    /// [`fingerprint`](crate::fingerprint)); `None` when it verified or there was none.
    pub unverified_token: Option<&'a str>,
}

impl DecisionEvent<'_> {
    /// Whether the request was allowed.
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }
}

/// Receives every decision of [`Guard::authenticate`](crate::Guard::authenticate), on the
/// request path, after the decision is made and before it is answered.
///
/// It runs inside the request: it must be quick and must never block or wait for I/O (queue
/// slow work to a task of your own, the way `tokenward-anomaly` does). A panic in it is the
/// request's panic. Set it with [`GuardBuilder::decision_hook`](crate::GuardBuilder::decision_hook).
pub trait DecisionHook: Send + Sync + 'static {
    /// One decision.
    fn decided(&self, event: &DecisionEvent<'_>);
}

/// The hook a Guard holds (for the builder's `Debug`).
#[derive(Clone)]
pub(crate) struct HookSlot(pub(crate) Arc<dyn DecisionHook>);

impl fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecisionHook")
    }
}
