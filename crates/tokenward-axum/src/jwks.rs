//! The local key set's public keys at `/.well-known/jwks.json`.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use tokenward_claims::SharedKeySet;
use tokenward_guard::http::{JWKS_CACHE_CONTROL, JWKS_CONTENT_TYPE, JWKS_PATH, NO_STORE};

/// An axum handler serving the public keys of `keys` as a JWKS document
/// (`application/jwk-set+json`, `Cache-Control: public, max-age=300`). HMAC secrets are never
/// included ([`KeySet::public_jwks`](tokenward_claims::KeySet::public_jwks)), nor private
/// key material. Each request reads the current snapshot, so rotations show at once.
///
/// Mount it with state `SharedKeySet`, or use [`jwks_router`].
pub async fn jwks(State(keys): State<SharedKeySet>) -> Response {
    match keys.snapshot().public_jwks_json() {
        Ok(body) => (
            [
                (CONTENT_TYPE, HeaderValue::from_static(JWKS_CONTENT_TYPE)),
                (CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE_CONTROL)),
            ],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(target: "tokenward::axum", %error, "serializing the JWKS failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CACHE_CONTROL, HeaderValue::from_static(NO_STORE))],
            )
                .into_response()
        }
    }
}

/// A router serving [`jwks`] at `GET` [`JWKS_PATH`]; merge it into your app:
/// `app.merge(jwks_router(keys))`.
///
/// ```
/// use tokenward_claims::{Algorithm, Key, KeySet, SharedKeySet};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pkcs8 = tokenward_claims::generate_pkcs8(Algorithm::EdDSA)?;
/// let keys = SharedKeySet::new(KeySet::single(Key::from_pkcs8_der("k1", Algorithm::EdDSA, &pkcs8)?));
/// let app: axum::Router = tokenward_axum::jwks_router(keys);
///
/// let req = http::Request::get("/.well-known/jwks.json").body(axum::body::Body::empty())?;
/// let res = app.oneshot(req).await?;
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["cache-control"], "public, max-age=300");
/// # Ok(())
/// # }
/// ```
pub fn jwks_router<S: Clone + Send + Sync + 'static>(keys: SharedKeySet) -> Router<S> {
    Router::new().route(JWKS_PATH, get(jwks)).with_state(keys)
}
