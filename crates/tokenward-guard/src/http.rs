//! What the framework adapters share: the one call they make per request
//! ([`Guard::authorize`], or its two halves [`Guard::authorize_now`] and
//! [`Guard::authorize_after`]), the client-IP resolver, and the fixed response texts.
//!
//! An adapter whose framework lets it answer from the service's `call` (tower) can call
//! [`Guard::authorize_now`] there: with in-memory stores most requests are decided at once,
//! and the handler is called without a future allocated for the check; only an
//! [`Unfinished`] authentication goes into the adapter's future, to
//! [`Guard::authorize_after`] with the same request. tokenward-axum does this;
//! tokenward-actix calls [`Guard::authorize`] (actix-web boxes every middleware future
//! anyway).
//!
//! An adapter only translates: it wraps its header map in a [`HeaderSource`], fills an
//! [`HttpRequest`] (method, path without the query, peer address), passes the identity an
//! outer layer already put in the request (if any) and its [`RouteAuth`], and turns the
//! [`Outcome`] into its framework's types:
//!
//! - [`Outcome::Authenticated`] — put the [`Authenticated`] in the request's extensions, call
//!   the handler, and add [`Allowed::response_headers`] **only where the handler's response
//!   has no field of that name** (a handler's own `RateLimit` fields are kept);
//! - [`Outcome::Continue`] — call the handler as it is (an outer layer authenticated the
//!   request, or an anonymous request on an optional route);
//! - [`Outcome::Deny`] — answer with the [`Denial`]'s status, headers and body, plus
//!   `Content-Type: application/json` ([`JSON_CONTENT_TYPE`]).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use crate::authenticated::{Authenticated, Requirements};
use crate::denial::Denial;
use crate::guard::{Guard, Unfinished};
use crate::request::{AuthRequest, Credentials};

/// The body of a [`Denial::Misconfigured`] response (500).
pub const MISCONFIGURED_BODY: &str =
    r#"{"error":"server_error","error_description":"the server is misconfigured"}"#;
/// The `Content-Type` of every refusal.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Where the adapters' JWKS handlers are mounted by convention.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The `Content-Type` of a JWKS response.
pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";
/// The `Cache-Control` of a JWKS response: verifiers may cache the key set for five minutes,
/// so publish a new key this long before it signs.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";
/// The `Cache-Control` of a JWKS handler's 500 (and of every refusal).
pub const NO_STORE: &str = "no-store";

/// Why an adapter's extractor (`Auth`, `Claims<T>`) refused a request. Each adapter wraps it
/// in its own `AuthRejection` (its framework's response trait cannot be implemented here)
/// and renders it as [`denial`](Self::denial): 401 either way, never with the token or the
/// serde error in it.
///
/// ```
/// use tokenward_guard::http::ExtractRejection;
/// let rejection = ExtractRejection::ClaimsMismatch;
/// assert_eq!(rejection.denial().status(), 401);
/// assert_eq!(rejection.to_string(), rejection.denial().description());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtractRejection {
    /// The request was not authenticated (a route outside the Guard's layer, or an anonymous
    /// request on an optional route): [`Denial::MissingToken`].
    NotAuthenticated,
    /// The token verified, but its custom claims do not fit the route's type (the adapter
    /// audits it): [`Denial::InvalidToken`] with class `claims`.
    ClaimsMismatch,
}

impl ExtractRejection {
    /// The Guard's denial this rejection renders.
    pub fn denial(&self) -> Denial {
        match self {
            ExtractRejection::NotAuthenticated => Denial::MissingToken,
            ExtractRejection::ClaimsMismatch => Denial::InvalidToken {
                class: tokenward_claims::RejectionClass::Claims,
            },
        }
    }
}

impl std::fmt::Display for ExtractRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.denial().description())
    }
}

impl std::error::Error for ExtractRejection {}

/// A request's header values by name, as raw bytes (an adapter wraps its header map).
pub trait HeaderSource {
    /// Every value of the header `name` (lowercase), in order.
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s [u8]> + 's;
}

/// What the Guard needs of an HTTP request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct HttpRequest<'a, H: ?Sized> {
    /// The method (`GET`).
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    /// The TCP peer's address; `None` when the server did not provide it (refused with 500).
    pub peer: Option<IpAddr>,
    /// The request's headers.
    pub headers: &'a H,
}

impl<'a, H: HeaderSource + ?Sized> HttpRequest<'a, H> {
    /// A request of `method` `path` from `peer` with `headers`.
    pub fn new(method: &'a str, path: &'a str, peer: Option<IpAddr>, headers: &'a H) -> Self {
        HttpRequest {
            method,
            path,
            peer,
            headers,
        }
    }
}

/// How a route is protected: whether a request without any credentials may pass, and what
/// an authenticated request must satisfy.
#[derive(Debug, Clone, Default)]
pub struct RouteAuth {
    optional: bool,
    requirements: Option<Arc<Requirements>>,
}

impl RouteAuth {
    /// A valid token is required.
    pub fn required() -> Self {
        RouteAuth::default()
    }

    /// A request without any credentials passes anonymously; one with credentials (even a
    /// malformed `Authorization` header) is authenticated as on a required route.
    pub fn optional() -> Self {
        RouteAuth {
            optional: true,
            requirements: None,
        }
    }

    /// Also requires `requirements` of authenticated requests (replacing earlier ones).
    #[must_use]
    pub fn require(mut self, requirements: Requirements) -> Self {
        self.requirements = Some(Arc::new(requirements));
        self
    }

    /// Whether anonymous requests pass.
    pub fn is_optional(&self) -> bool {
        self.optional
    }
}

/// What an adapter does with a request (see the [module docs](self)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Authenticated here.
    Authenticated(Allowed),
    /// Nothing to add: authenticated by an outer layer (its requirements met here), or
    /// anonymous on an optional route.
    Continue,
    /// Refused.
    Deny(Denial),
}

/// A request the Guard authenticated, and the fields its response gets.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Allowed {
    /// The identity, for the request's extensions.
    pub auth: Authenticated,
    /// `RateLimit-Policy` and `RateLimit`: add each **only where the response has no field
    /// of that name** (the handler's own are kept).
    pub response_headers: Vec<(&'static str, String)>,
}

/// What [`Guard::authorize_now`] does with a request: authenticate it, or answer at once.
enum Prepared<'r> {
    Authenticate(AuthRequest<'r>),
    Done(Outcome),
}

impl Guard {
    /// The client address of a request: the peer, or — only when the peer is a trusted
    /// proxy — what the configured forwarding header says ([`ClientIp::resolve`], walking from
    /// the right). `None` without a peer address: never one ban key shared by all clients.
    ///
    /// Header values that are not UTF-8 are decoded lossily, each on its own: a client's
    /// non-UTF-8 entry becomes replacement characters in *its* entry (malformed, so the walk
    /// stops there), while the entries trusted proxies appended on the right still parse — a
    /// client cannot get its proxy, everyone behind it, banned by sending one bad byte.
    ///
    /// [`ClientIp::resolve`]: tokenward_ratelimit::ClientIp::resolve
    pub fn resolve_client_ip<H: HeaderSource + ?Sized>(
        &self,
        peer: Option<IpAddr>,
        headers: &H,
    ) -> Option<IpAddr> {
        let peer = peer?;
        let resolver = self.client_ip();
        let Some(header) = resolver.header() else {
            return Some(peer);
        };
        let values: Vec<Cow<'_, str>> = headers
            .values(header.name())
            .map(String::from_utf8_lossy)
            .collect();
        Some(resolver.resolve(peer, values.iter().map(AsRef::as_ref)))
    }

    /// Everything the Guard decides for one HTTP request on a route protected by `route`;
    /// `outer` is the [`Authenticated`] an outer layer already put in the request (one
    /// authentication per request: then only `route`'s requirements are checked, and the
    /// subject limit is not charged again).
    ///
    /// This is [`Guard::authorize_now`], then — only when a step has to wait —
    /// [`Guard::authorize_after`].
    pub async fn authorize<H: HeaderSource + ?Sized>(
        &self,
        req: &HttpRequest<'_, H>,
        outer: Option<&Authenticated>,
        route: &RouteAuth,
    ) -> Outcome {
        // Bound first, so that the scrutinee is not kept across the `await`.
        let unfinished = match self.authorize_now(req, outer, route) {
            Ok(outcome) => return outcome,
            Err(unfinished) => unfinished,
        };
        self.authorize_after(req, route, unfinished).await
    }

    /// [`Guard::authorize`] as far as it can go without waiting
    /// ([`Guard::authenticate_now`]): `Ok` with the outcome, or the [`Unfinished`]
    /// authentication to finish with [`Guard::authorize_after`]. With in-memory stores an
    /// adapter answers most requests from its `call`, with no future to allocate.
    pub fn authorize_now<H: HeaderSource + ?Sized>(
        &self,
        req: &HttpRequest<'_, H>,
        outer: Option<&Authenticated>,
        route: &RouteAuth,
    ) -> Result<Outcome, Unfinished> {
        let request = match self.http_auth_request(req, outer, route) {
            Prepared::Authenticate(request) => request,
            Prepared::Done(outcome) => return Ok(outcome),
        };
        let decision = self.authenticate_now(&request)?;
        Ok(self.conclude(&request, decision, route))
    }

    /// Finishes what [`Guard::authorize_now`] left unfinished, for the same request.
    pub async fn authorize_after<H: HeaderSource + ?Sized>(
        &self,
        req: &HttpRequest<'_, H>,
        route: &RouteAuth,
        unfinished: Unfinished,
    ) -> Outcome {
        // `authorize_now` finishes every request an outer layer authenticated: this one
        // had none.
        let request = match self.http_auth_request(req, None, route) {
            Prepared::Authenticate(request) => request,
            Prepared::Done(outcome) => return outcome,
        };
        let decision = self.authenticate_after(&request, unfinished).await;
        self.conclude(&request, decision, route)
    }

    /// What to authenticate for `req`, or the outcome when there is nothing to
    /// authenticate (an outer layer did; anonymous on an optional route; no peer address).
    fn http_auth_request<'r, H: HeaderSource + ?Sized>(
        &self,
        req: &HttpRequest<'r, H>,
        outer: Option<&Authenticated>,
        route: &RouteAuth,
    ) -> Prepared<'r> {
        if let Some(auth) = outer {
            let Some(requirements) = &route.requirements else {
                return Prepared::Done(Outcome::Continue);
            };
            // The credentials were read by the outer layer; audit events need none.
            let request =
                AuthRequest::new(req.method, req.path, auth.client_ip, Credentials::Absent);
            return Prepared::Done(
                match self.check_requirements(&request, auth, requirements) {
                    Ok(()) => Outcome::Continue,
                    Err(denial) => Outcome::Deny(denial),
                },
            );
        }
        let Some(ip) = self.resolve_client_ip(req.peer, req.headers) else {
            tracing::error!(
                target: "tokenward::guard",
                method = req.method,
                "the request has no peer address: the Guard cannot tell clients apart, so it \
                 is refused with 500 (axum: serve with \
                 `into_make_service_with_connect_info::<SocketAddr>()`; actix-web: serve over \
                 TCP, or set `peer_addr` on test requests)"
            );
            return Prepared::Done(Outcome::Deny(Denial::Misconfigured));
        };
        let credentials = self.credentials(
            req.headers.values("authorization"),
            req.headers.values("cookie"),
        );
        if route.optional && credentials == Credentials::Absent {
            // Anonymous on an optional route: nothing to authenticate (no ban check, no
            // audit event, no requirements to check).
            return Prepared::Done(Outcome::Continue);
        }
        Prepared::Authenticate(AuthRequest::new(req.method, req.path, ip, credentials))
    }

    /// The outcome of an authentication: the route's requirements, then the response's
    /// `RateLimit` fields.
    fn conclude(
        &self,
        request: &AuthRequest<'_>,
        decision: Result<Authenticated, Denial>,
        route: &RouteAuth,
    ) -> Outcome {
        let auth = match decision {
            Ok(auth) => auth,
            Err(denial) => return Outcome::Deny(denial),
        };
        if let Some(requirements) = &route.requirements
            && let Err(denial) = self.check_requirements(request, &auth, requirements)
        {
            return Outcome::Deny(denial);
        }
        let response_headers = self
            .ratelimit_headers(&auth)
            .map(Vec::from)
            .unwrap_or_default();
        Outcome::Authenticated(Allowed {
            auth,
            response_headers,
        })
    }
}
