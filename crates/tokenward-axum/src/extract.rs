//! axum extractors for what [`GuardLayer`](crate::GuardLayer) verified.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::Response;
use http::request::Parts;
use serde::de::DeserializeOwned;
use tokenward_claims::RejectionClass;
use tokenward_guard::{Authenticated, Denial};

use crate::response::denial_response;

/// The verified request, from a route behind [`GuardLayer`](crate::GuardLayer).
///
/// Rejects with the [`Denial::MissingToken`] response (401, bare `Bearer` challenge) when the
/// request was not authenticated — a route outside the layer, or behind
/// [`GuardLayer::optional`](crate::GuardLayer::optional) without a token.
#[derive(Debug, Clone)]
pub struct Auth(pub Authenticated);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .map(Auth)
            .ok_or_else(|| denial_response(&Denial::MissingToken))
    }
}

/// `Option<Auth>`: the same as [`MaybeAuth`].
impl<S: Send + Sync> OptionalFromRequestParts<S> for Auth {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Authenticated>().cloned().map(Auth))
    }
}

/// The verified request if there was one: for routes behind
/// [`GuardLayer::optional`](crate::GuardLayer::optional). Never rejects.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Authenticated>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuth {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeAuth(parts.extensions.get::<Authenticated>().cloned()))
    }
}

/// The verified token's custom claims as your own type, through
/// [`Authenticated::custom`].
///
/// Rejects like [`Auth`] when the request was not authenticated, and with 401
/// `invalid_token` ([`RejectionClass::Claims`]) when the claims do not deserialize into `T`.
/// The serde error is not shown to the client (it may quote the token's content).
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Auth(auth) = <Auth as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        auth.custom::<T>().map(Claims).map_err(|_| {
            denial_response(&Denial::InvalidToken {
                class: RejectionClass::Claims,
            })
        })
    }
}
