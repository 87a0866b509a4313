//! The middleware: runs the Guard for every request of the wrapped app, scope or resource.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage};
use tokenward_guard::http::{HttpRequest, Outcome, RouteAuth};
use tokenward_guard::{Authenticated, Guard, Requirements};

use crate::{Headers, denial_response};

/// actix-web middleware that authenticates every request with a [`Guard`].
///
/// - [`GuardMiddleware::new`]: a valid token is required; anything else is refused with the
///   [`Denial`](tokenward_guard::Denial)'s response ([`denial_response`]).
/// - [`GuardMiddleware::optional`]: a request without a token passes through anonymously
///   ([`MaybeAuth`](crate::MaybeAuth) is `None`); a token that is present must be valid.
/// - [`GuardMiddleware::require`]: scopes and roles (403 `insufficient_scope`) and an audience
///   (401 `invalid_token`) the routes behind it require, checked by [`Guard::authorize`].
///
/// On success the [`Authenticated`] identity is put in the request's extensions (read it with
/// [`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth) or [`Claims`](crate::Claims)) and
/// the response gets the subject limit's `RateLimit-Policy` and `RateLimit` headers where
/// the handler set none of its own (a handler's own are kept). Every decision is
/// [`Guard::authorize`]'s.
///
/// When a `GuardMiddleware` runs inside another one that already authenticated the request
/// (an app-wide middleware and a stricter one on a scope), the inner one reuses that identity
/// and only checks its own requirements: the token is verified and the subject limit charged
/// once per request.
///
/// The client address is the peer address, or what trusted proxies say in the configured
/// forwarding header ([`request_client_ip`](crate::request_client_ip)). A request whose peer address is unknown is
/// refused with 500 and an error log: sharing one ban key between all clients would let one
/// attacker lock everybody out.
#[derive(Debug, Clone)]
pub struct GuardMiddleware {
    guard: Guard,
    route: RouteAuth,
}

impl GuardMiddleware {
    /// Authentication required: a request without a valid token is refused.
    pub fn new(guard: Guard) -> Self {
        GuardMiddleware {
            guard,
            route: RouteAuth::required(),
        }
    }

    /// Authentication optional: a request without any token passes through anonymously
    /// (without a ban check or audit event: it attempts no authentication); a request that
    /// carries a token — or a malformed `Authorization` header — is authenticated as by
    /// [`GuardMiddleware::new`], so an invalid, revoked or rate-limited token is still
    /// refused, and so is a banned client's token.
    pub fn optional(guard: Guard) -> Self {
        GuardMiddleware {
            guard,
            route: RouteAuth::optional(),
        }
    }

    /// Requires `requirements` of every authenticated request (replacing earlier ones). An
    /// anonymous request on an [optional](GuardMiddleware::optional) middleware has no token
    /// to check and passes through.
    #[must_use]
    pub fn require(mut self, requirements: Requirements) -> Self {
        self.route = self.route.require(requirements);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for GuardMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = GuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
            config: self.clone(),
        }))
    }
}

/// The service [`GuardMiddleware`] wraps around an actix-web service; not used directly.
#[derive(Debug)]
pub struct GuardService<S> {
    service: Rc<S>,
    config: GuardMiddleware,
}

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let config = self.config.clone();
        Box::pin(async move {
            let outcome = {
                let headers = Headers(req.headers());
                let http = HttpRequest::new(
                    req.method().as_str(),
                    req.path(),
                    req.peer_addr().map(|p| p.ip()),
                    &headers,
                );
                // Cloned: no `RefCell` borrow of the extensions is held across the await.
                let outer = req.extensions().get::<Authenticated>().cloned();
                config
                    .guard
                    .authorize(&http, outer.as_ref(), &config.route)
                    .await
            };
            match outcome {
                Outcome::Authenticated(allowed) => {
                    req.extensions_mut().insert(allowed.auth);
                    let mut res = service.call(req).await?;
                    let headers = res.headers_mut();
                    for (name, value) in allowed.response_headers {
                        // Only where the handler set none of its own.
                        if let (Ok(name), Ok(value)) =
                            (HeaderName::try_from(name), HeaderValue::try_from(value))
                            && !headers.contains_key(&name)
                        {
                            headers.insert(name, value);
                        }
                    }
                    Ok(res.map_into_left_body())
                }
                Outcome::Deny(denial) => Ok(req
                    .into_response(denial_response(&denial))
                    .map_into_right_body()),
                // `Continue`, and anything a newer Guard adds: the request goes on unchanged.
                _ => Ok(service.call(req).await?.map_into_left_body()),
            }
        })
    }
}
