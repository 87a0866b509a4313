//! axum extractors for what [`GuardLayer`](crate::GuardLayer) verified, and their typed
//! rejection.

use std::convert::Infallible;
use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;
use tokenward_guard::http::ExtractRejection;
use tokenward_guard::{Authenticated, Denial};

use crate::response::denial_response;

/// Why [`Auth`] or [`Claims`] refused a request: the Guard's [`ExtractRejection`] (which
/// says what happened), rendered as its [`Denial`] response ([`AuthRejection::denial`]): 401
/// either way, never with the token or the serde error in it.
///
/// ```
/// use axum::response::IntoResponse;
/// use tokenward_axum::AuthRejection;
/// use tokenward_guard::http::ExtractRejection;
/// let res = AuthRejection(ExtractRejection::NotAuthenticated).into_response();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
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

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        denial_response(&self.denial())
    }
}

/// The verified request, from a route behind [`GuardLayer`](crate::GuardLayer).
///
/// Rejects with [`ExtractRejection::NotAuthenticated`] (401, bare `Bearer` challenge) when the
/// request was not authenticated — a route outside the layer, or behind
/// [`GuardLayer::optional`](crate::GuardLayer::optional) without a token.
#[derive(Debug, Clone)]
pub struct Auth(pub Authenticated);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .map(Auth)
            .ok_or(AuthRejection(ExtractRejection::NotAuthenticated))
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
/// [`Authenticated::custom_for_route`].
///
/// Rejects like [`Auth`] when the request was not authenticated, and with
/// [`ExtractRejection::ClaimsMismatch`] (401 `invalid_token`, class `claims`; audited as a
/// denial) when the claims do not deserialize into `T`. The serde error is not shown to the
/// client (it may quote the token's content).
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Auth(auth) = <Auth as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        auth.custom_for_route::<T>(parts.method.as_str(), parts.uri.path())
            .map(Claims)
            .map_err(|_| AuthRejection(ExtractRejection::ClaimsMismatch))
    }
}
