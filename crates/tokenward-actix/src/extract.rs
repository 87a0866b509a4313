//! Extractors for the identity [`GuardMiddleware`](crate::GuardMiddleware) verified, and their
//! typed rejection.

use std::fmt;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use tokenward_guard::http::ExtractRejection;
use tokenward_guard::{Authenticated, Denial};

use crate::denial_response;

/// Why [`Auth`] or [`Claims`] refused a request: the Guard's [`ExtractRejection`] (which
/// says what happened), rendered as its [`Denial`] response ([`AuthRejection::denial`]): 401
/// either way, never with the token or the serde error in it.
///
/// ```
/// use actix_web::ResponseError;
/// use tokenward_actix::AuthRejection;
/// use tokenward_guard::http::ExtractRejection;
/// let res = AuthRejection(ExtractRejection::NotAuthenticated).error_response();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRejection(pub ExtractRejection);

impl AuthRejection {
    /// What happened.
    pub fn kind(&self) -> ExtractRejection {
        self.0
    }

    /// The Guard's denial this rejection renders.
    pub fn denial(&self) -> Denial {
        self.0.denial()
    }
}

impl From<ExtractRejection> for AuthRejection {
    fn from(kind: ExtractRejection) -> Self {
        AuthRejection(kind)
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AuthRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.denial().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        denial_response(&self.denial())
    }
}

/// The verified identity of a request that passed a [`GuardMiddleware`](crate::GuardMiddleware).
///
/// Without one (no middleware on the route, or an anonymous request on an optional one) the
/// extractor refuses the request with [`ExtractRejection::NotAuthenticated`]: 401 with a bare
/// `Bearer` challenge. It never authenticates by itself.
#[derive(Debug, Clone)]
pub struct Auth(pub Authenticated);

/// The verified identity if there is one: `None` for an anonymous request on an
/// [optional](crate::GuardMiddleware::optional) middleware. Never refuses.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Authenticated>);

/// The verified token's custom claims as `T` ([`Authenticated::custom_for_route`]).
///
/// Refuses with [`ExtractRejection::NotAuthenticated`] without an identity (as [`Auth`]) and with
/// [`ExtractRejection::ClaimsMismatch`] (401 `invalid_token`, class `claims`; audited as a denial)
/// when the claims do not fit `T`: the token verified, but it is not one this route accepts.
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

fn identity(req: &HttpRequest) -> Option<Authenticated> {
    req.extensions().get::<Authenticated>().cloned()
}

impl FromRequest for Auth {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            identity(req)
                .map(Auth)
                .ok_or(AuthRejection(ExtractRejection::NotAuthenticated)),
        )
    }
}

impl FromRequest for MaybeAuth {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(MaybeAuth(identity(req))))
    }
}

impl<T: DeserializeOwned> FromRequest for Claims<T> {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match identity(req) {
            None => Err(AuthRejection(ExtractRejection::NotAuthenticated)),
            Some(auth) => auth
                .custom_for_route::<T>(req.method().as_str(), req.path())
                .map(Claims)
                .map_err(|_| AuthRejection(ExtractRejection::ClaimsMismatch)),
        };
        ready(result)
    }
}
