//! The middleware: runs the Guard for every request of the wrapped app, scope or resource.

use std::future::{Future, Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, HttpResponse};
use tokenward_guard::{AuthRequest, Authenticated, Credentials, Denial, Guard, Requirements};

use crate::{denial_response, request_client_ip, unknown_peer_response};

/// actix-web middleware that authenticates every request with a [`Guard`].
///
/// - [`GuardMiddleware::new`]: a valid token is required; anything else is refused with the
///   [`Denial`]'s response ([`denial_response`]).
/// - [`GuardMiddleware::optional`]: a request without a token passes through anonymously
///   ([`MaybeAuth`](crate::MaybeAuth) is `None`); a token that is present must be valid.
/// - [`GuardMiddleware::require`]: scopes (403 `insufficient_scope`) and an audience
///   (401 `invalid_token`) the routes behind it require, checked by [`Guard::authorize`].
///
/// On success the [`Authenticated`] identity is put in the request's extensions (read it with
/// [`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth) or [`Claims`](crate::Claims)) and
/// the response gets the subject limit's `RateLimit-Policy` and `RateLimit` headers.
///
/// When a `GuardMiddleware` runs inside another one that already authenticated the request
/// (an app-wide middleware and a stricter one on a scope), the inner one reuses that identity
/// and only checks its own requirements: the token is verified and the subject limit charged
/// once per request.
///
/// The client address is the peer address, or what trusted proxies say in the configured
/// forwarding header ([`request_client_ip`]). A request whose peer address is unknown is
/// refused with 500 and an error log: sharing one ban key between all clients would let one
/// attacker lock everybody out.
#[derive(Debug, Clone)]
pub struct GuardMiddleware {
    guard: Guard,
    optional: bool,
    requirements: Option<Arc<Requirements>>,
}

impl GuardMiddleware {
    /// Authentication required: a request without a valid token is refused.
    pub fn new(guard: Guard) -> Self {
        GuardMiddleware {
            guard,
            optional: false,
            requirements: None,
        }
    }

    /// Authentication optional: a request without any token passes through anonymously
    /// (without a ban check or audit event: it attempts no authentication); a request that
    /// carries a token — or a malformed `Authorization` header — is authenticated as by
    /// [`GuardMiddleware::new`], so an invalid, revoked or rate-limited token is still
    /// refused, and so is a banned client's token.
    pub fn optional(guard: Guard) -> Self {
        GuardMiddleware {
            optional: true,
            ..GuardMiddleware::new(guard)
        }
    }

    /// Requires `requirements` of every authenticated request (replacing earlier ones). An
    /// anonymous request on an [optional](GuardMiddleware::optional) middleware has no token
    /// to check and passes through.
    #[must_use]
    pub fn require(mut self, requirements: Requirements) -> Self {
        self.requirements = Some(Arc::new(requirements));
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

/// What the Guard decided for one request.
enum Outcome {
    /// Authenticated here: put the identity in the extensions, add the RateLimit headers.
    Authenticated(Authenticated),
    /// Authenticated by an outer middleware, or anonymous on an optional one.
    Pass,
    /// Refused with this response.
    Refused(HttpResponse),
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
            match config.decide(&req).await {
                Outcome::Refused(response) => Ok(req.into_response(response).map_into_right_body()),
                Outcome::Pass => Ok(service.call(req).await?.map_into_left_body()),
                Outcome::Authenticated(auth) => {
                    let ratelimit = config.guard.ratelimit_headers(&auth);
                    req.extensions_mut().insert(auth);
                    let mut res = service.call(req).await?;
                    for (name, value) in ratelimit.into_iter().flatten() {
                        if let (Ok(name), Ok(value)) =
                            (HeaderName::try_from(name), HeaderValue::try_from(value))
                        {
                            res.headers_mut().insert(name, value);
                        }
                    }
                    Ok(res.map_into_left_body())
                }
            }
        })
    }
}

impl GuardMiddleware {
    async fn decide(&self, req: &ServiceRequest) -> Outcome {
        let outer = req.extensions().get::<Authenticated>().cloned();
        let client_ip = match &outer {
            Some(auth) => auth.client_ip,
            None => match request_client_ip(&self.guard, req.request()) {
                Some(ip) => ip,
                None => return Outcome::Refused(unknown_peer_response()),
            },
        };
        match outer {
            Some(auth) => match self.authorize(req, client_ip, &auth) {
                Ok(()) => Outcome::Pass,
                Err(denial) => Outcome::Refused(denial_response(&denial)),
            },
            None => self.authenticate(req, client_ip).await,
        }
    }

    async fn authenticate(&self, req: &ServiceRequest, client_ip: IpAddr) -> Outcome {
        let headers = req.headers();
        let credentials = self.guard.credentials(
            headers.get_all(AUTHORIZATION).map(HeaderValue::as_bytes),
            headers.get_all(COOKIE).map(HeaderValue::as_bytes),
        );
        if self.optional && credentials == Credentials::Absent {
            // Anonymous on an optional route: nothing to authenticate (no ban check, no
            // audit event, no requirements to check).
            return Outcome::Pass;
        }
        let request = AuthRequest::new(req.method().as_str(), req.path(), client_ip, credentials);
        let result = match self.guard.authenticate(&request).await {
            Ok(auth) => match &self.requirements {
                Some(requirements) => self
                    .guard
                    .authorize(&request, &auth, requirements)
                    .map(|()| auth),
                None => Ok(auth),
            },
            Err(denial) => Err(denial),
        };
        match result {
            Ok(auth) => Outcome::Authenticated(auth),
            Err(denial) => Outcome::Refused(denial_response(&denial)),
        }
    }

    fn authorize(
        &self,
        req: &ServiceRequest,
        client_ip: IpAddr,
        auth: &Authenticated,
    ) -> Result<(), Denial> {
        let Some(requirements) = &self.requirements else {
            return Ok(());
        };
        // The credentials were read by the outer middleware; audit events need none.
        let request = AuthRequest::new(
            req.method().as_str(),
            req.path(),
            client_ip,
            Credentials::Absent,
        );
        self.guard.authorize(&request, auth, requirements)
    }
}
