//! The tower middleware: [`GuardLayer`] → [`GuardService`] → [`ResponseFuture`], shaped like
//! tower-http's `AsyncRequireAuthorization`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use tokenward_guard::http::{HttpRequest, Outcome, RouteAuth};
use tokenward_guard::{
    Authenticated, Guard, RATELIMIT_HEADER, RATELIMIT_POLICY_HEADER, Requirements, Unfinished,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::ip::{Headers, peer};
use crate::response::denial_http_response;

/// Authenticates every request with a [`Guard`] before it reaches the wrapped service.
///
/// A request that passes carries [`Authenticated`] in its extensions (read it with the
/// [`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth) and [`Claims`](crate::Claims)
/// extractors) and its response gets the subject limit's `RateLimit-Policy`/`RateLimit`
/// headers; a refused one gets the [`Denial`](tokenward_guard::Denial)'s response and never
/// reaches the service.
///
/// - [`GuardLayer::new`] — a valid token is required;
/// - [`GuardLayer::optional`] — a request without a token passes (without `Authenticated`),
///   but one with an invalid, revoked or rate-limited token is refused as with `new`;
/// - [`GuardLayer::require`] — per-route scopes and audience ([`Guard::authorize`]).
///
/// Nested layers authenticate once: a `GuardLayer` that finds `Authenticated` already in the
/// extensions (put there by an outer `GuardLayer`) only checks its own requirements, so a
/// request is charged to the subject limit once. Every decision is
/// [`Guard::authorize`]'s; the `RateLimit` fields are added only where the handler's
/// response has none.
///
/// The client address comes from `ConnectInfo<SocketAddr>` (see
/// [`request_client_ip`](crate::request_client_ip)); without it every request is refused
/// with a 500 and an error is logged.
#[derive(Debug, Clone)]
#[must_use]
pub struct GuardLayer {
    guard: Guard,
    route: RouteAuth,
}

impl GuardLayer {
    /// Requires a valid token on every request.
    pub fn new(guard: Guard) -> Self {
        GuardLayer {
            guard,
            route: RouteAuth::required(),
        }
    }

    /// Lets requests without any token through without [`Authenticated`]; a request that
    /// does carry a token (or a malformed `Authorization` header) is authenticated and
    /// refused like with [`GuardLayer::new`] if that fails.
    pub fn optional(guard: Guard) -> Self {
        GuardLayer {
            guard,
            route: RouteAuth::optional(),
        }
    }

    /// Also requires `requirements` (scopes, roles → 403 `insufficient_scope`, audience → 401
    /// `invalid_token`) of authenticated requests; replaces earlier requirements.
    pub fn require(self, requirements: Requirements) -> Self {
        GuardLayer {
            route: self.route.require(requirements),
            guard: self.guard,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: self.guard.clone(),
            route: self.route.clone(),
        }
    }
}

/// The service made by [`GuardLayer`]; see there.
///
/// Plain tower: generic over the request body and over any response body that can be made
/// from a `String` (the [`Denial`](tokenward_guard::Denial)'s JSON) — `axum::body::Body`,
/// `http_body_util::Full<Bytes>`, `String` — and the response type stays the inner
/// service's. A service with another body type (a boxed body, a tonic service) is adapted
/// under the layer with `tower::ServiceExt::map_response(|r| r.map(axum::body::Body::new))`;
/// servers that accept any `http_body::Body` response (hyper, tonic's `Server::layer`) take
/// the result as it is.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
    route: RouteAuth,
}

type RateLimitHeaders = Vec<(&'static str, String)>;
type Checked<S, ReqBody, ResBody> =
    Result<(S, Request<ReqBody>, RateLimitHeaders), Response<ResBody>>;
type CheckFuture<S, ReqBody, ResBody> =
    Pin<Box<dyn Future<Output = Checked<S, ReqBody, ResBody>> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GuardService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Decided here when every step answers in process (in-memory stores): the ready
        // inner service is called at once, with no future allocated for the check.
        let now = {
            let headers = Headers(req.headers());
            let http = HttpRequest::new(
                req.method().as_str(),
                req.uri().path(),
                peer(req.extensions()),
                &headers,
            );
            let outer = req.extensions().get::<Authenticated>();
            self.guard.authorize_now(&http, outer, &self.route)
        };
        let state = match now {
            Ok(Outcome::Authenticated(allowed)) => {
                req.extensions_mut().insert(allowed.auth);
                State::Inner {
                    future: self.inner.call(req),
                    ratelimit: allowed.response_headers,
                }
            }
            Ok(Outcome::Deny(denial)) => State::Refused {
                response: std::future::ready(denial_http_response(&denial)),
            },
            // `Continue`, and anything a newer Guard adds: the request goes on unchanged.
            Ok(_) => State::Inner {
                future: self.inner.call(req),
                ratelimit: Vec::new(),
            },
            Err(unfinished) => {
                // The ready service goes into the future; the clone stays for the next call.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let check = check(
                    inner,
                    self.guard.clone(),
                    self.route.clone(),
                    req,
                    unfinished,
                );
                State::Check {
                    check: Box::pin(check),
                }
            }
        };
        ResponseFuture { state }
    }
}

/// Finishes the Guard's check of one request ([`Guard::authorize_after`]): the ready inner
/// service and the request (with `Authenticated` in its extensions) to go on, or the refusal.
async fn check<S, ReqBody, ResBody>(
    inner: S,
    guard: Guard,
    route: RouteAuth,
    mut req: Request<ReqBody>,
    unfinished: Unfinished,
) -> Checked<S, ReqBody, ResBody>
where
    ResBody: From<String>,
{
    let outcome = {
        let headers = Headers(req.headers());
        let http = HttpRequest::new(
            req.method().as_str(),
            req.uri().path(),
            peer(req.extensions()),
            &headers,
        );
        guard.authorize_after(&http, &route, unfinished).await
    };
    match outcome {
        Outcome::Authenticated(allowed) => {
            req.extensions_mut().insert(allowed.auth);
            Ok((inner, req, allowed.response_headers))
        }
        Outcome::Deny(denial) => Err(denial_http_response(&denial)),
        // `Continue`, and anything a newer Guard adds: the request goes on unchanged.
        _ => Ok((inner, req, Vec::new())),
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GuardService`]: the inner service's future (pinned in place,
    /// not boxed) — after the Guard's check when that had to wait (boxed: it is an `async`
    /// pipeline) — or the refusal.
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, ResBody>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Check {
            check: CheckFuture<S, ReqBody, ResBody>,
        },
        Inner {
            #[pin]
            future: S::Future,
            ratelimit: RateLimitHeaders,
        },
        Refused {
            #[pin]
            response: std::future::Ready<Response<ResBody>>,
        },
    }
}

impl<S, ReqBody, ResBody> std::fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Check { check } => match ready!(check.as_mut().poll(cx)) {
                    Ok((mut inner, req, ratelimit)) => {
                        let future = inner.call(req);
                        self.as_mut()
                            .project()
                            .state
                            .set(State::Inner { future, ratelimit });
                    }
                    Err(refused) => return Poll::Ready(Ok(refused)),
                },
                StateProj::Inner { future, ratelimit } => {
                    let mut res = ready!(future.poll(cx))?;
                    add_missing(res.headers_mut(), std::mem::take(ratelimit));
                    return Poll::Ready(Ok(res));
                }
                StateProj::Refused { response } => return response.poll(cx).map(Ok),
            }
        }
    }
}

/// The names the Guard gives its `RateLimit` fields, built at compile time (parsing them per
/// response would allocate: they are not among `http`'s standard headers).
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static(RATELIMIT_POLICY_HEADER);
const RATELIMIT: HeaderName = HeaderName::from_static(RATELIMIT_HEADER);

fn header_name(name: &'static str) -> Option<HeaderName> {
    match name {
        RATELIMIT_POLICY_HEADER => Some(RATELIMIT_POLICY),
        RATELIMIT_HEADER => Some(RATELIMIT),
        other => HeaderName::from_bytes(other.as_bytes()).ok(),
    }
}

/// Adds the Guard's fields where the service set none of that name.
fn add_missing(headers: &mut http::HeaderMap, fields: Vec<(&'static str, String)>) {
    for (name, value) in fields {
        if let (Some(name), Ok(value)) = (header_name(name), HeaderValue::try_from(value)) {
            headers.entry(name).or_insert(value);
        }
    }
}
