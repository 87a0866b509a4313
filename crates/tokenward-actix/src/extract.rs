//! Extractors for the identity [`GuardMiddleware`](crate::GuardMiddleware) verified.

use std::fmt;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use tokenward_claims::RejectionClass;
use tokenward_guard::{Authenticated, Denial};

use crate::denial_response;

/// The verified identity of a request that passed a [`GuardMiddleware`](crate::GuardMiddleware).
///
/// Without one (no middleware on the route, or an anonymous request on an optional one) the
/// extractor refuses the request with the [`Denial::MissingToken`] response: 401 with a bare
/// `Bearer` challenge. It never authenticates by itself.
#[derive(Debug, Clone)]
pub struct Auth(pub Authenticated);

/// The verified identity if there is one: `None` for an anonymous request on an
/// [optional](crate::GuardMiddleware::optional) middleware. Never refuses.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Authenticated>);

/// The verified token's custom claims as `T` ([`Authenticated::custom`]).
///
/// Refuses with 401 `missing_token` without an identity (as [`Auth`]) and with 401
/// `invalid_token` (class `claims`) when the claims do not fit `T`: the token verified, but
/// it is not one this route accepts.
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

/// A [`Denial`] as an actix-web error, rendered by [`denial_response`].
struct Refusal(Denial);

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Refusal").field(&self.0.error()).finish()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.description())
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        denial_response(&self.0)
    }
}

fn identity(req: &HttpRequest) -> Option<Authenticated> {
    req.extensions().get::<Authenticated>().cloned()
}

impl FromRequest for Auth {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            identity(req)
                .map(Auth)
                .ok_or_else(|| Refusal(Denial::MissingToken).into()),
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
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match identity(req) {
            None => Err(Denial::MissingToken),
            Some(auth) => auth.custom::<T>().map(Claims).map_err(|_| {
                tracing::debug!(
                    target: "tokenward::actix",
                    jti = auth.jti(),
                    "custom claims do not fit the route's type"
                );
                Denial::InvalidToken {
                    class: RejectionClass::Claims,
                }
            }),
        };
        ready(result.map_err(|denial| Refusal(denial).into()))
    }
}
