//! The tower/axum adapter of the tokenward [`Guard`]: it only translates — a request into
//! one [`Guard::authorize`] call ([`tokenward_guard::http`]), the
//! [`Outcome`](tokenward_guard::http::Outcome) and [`Denial`]s into responses. Every
//! decision (client address, optional/required, nesting, ban, verification, revocation,
//! limits, scopes, which headers a response gets) is the Guard's.
//!
//! - [`GuardLayer`] / [`GuardService`] — tower middleware (plain tower: axum, hyper, tonic)
//!   that runs [`Guard::authorize`] for every request, puts
//!   [`Authenticated`](tokenward_guard::Authenticated) into the request extensions and adds
//!   the subject limit's `RateLimit` headers where the handler set none, or answers with the
//!   denial: 401 + `WWW-Authenticate: Bearer error="invalid_token", ...` (RFC 6750; a bare `Bearer`
//!   challenge when no token was sent), 403 `insufficient_scope`, 429 + `Retry-After` +
//!   `RateLimit`, 503 + `Retry-After` when a store is down under fail-closed. Bodies are
//!   `{"error", "error_description"}` JSON and never echo the token.
//!   [`GuardLayer::optional`] lets requests without a token through;
//!   [`GuardLayer::require`] adds per-route scopes and audience.
//! - [`Auth`], [`MaybeAuth`], [`Claims`] — extractors for the verified request and for your
//!   own custom-claims type; they reject with the typed [`AuthRejection`].
//! - [`denial_response`] — the same responses for your own handlers (a login endpoint).
//! - [`jwks`] / [`jwks_router`] — the local key set's public keys at
//!   `GET /.well-known/jwks.json`.
//!
//! **Client addresses.** The failure ban is keyed by client IP, taken from
//! `ConnectInfo<SocketAddr>`: serve the app with
//! `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())`.
//! Without it every request is refused with a 500 (and an error is logged) — never are all
//! clients put under one ban key. Forwarding headers count only from the Guard's trusted
//! proxies ([`request_client_ip`]).
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{Router, body::Body, extract::ConnectInfo, routing::get};
//! use http::Request;
//! use tokenward_axum::{Auth, GuardLayer};
//! use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, TokenIssuer};
//! use tokenward_guard::{GuardConfig, GuardStores, Requirements};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[7u8; 32])?);
//! let guard = GuardConfig::new("https://auth.example.com", "orders-api")
//!     .guard_builder(keys.clone(), GuardStores::memory(), None)?
//!     .build()?;
//!
//! async fn me(Auth(auth): Auth) -> String {
//!     format!("hello {}", auth.sub().unwrap_or("?"))
//! }
//! let app = Router::new()
//!     .route("/admin", get(me))
//!     .route_layer(GuardLayer::new(guard.clone()).require(Requirements::new().scope("admin")))
//!     .route("/me", get(me))
//!     .layer(GuardLayer::new(guard));
//!
//! // A real server inserts ConnectInfo (`into_make_service_with_connect_info`); here we do.
//! let peer: SocketAddr = "203.0.113.7:40000".parse()?;
//! let request = |path: &str, token: Option<&str>| {
//!     let mut req = Request::get(path);
//!     if let Some(token) = token {
//!         req = req.header("authorization", format!("Bearer {token}"));
//!     }
//!     let mut req = req.body(Body::empty()).unwrap();
//!     req.extensions_mut().insert(ConnectInfo(peer));
//!     req
//! };
//!
//! let issuer = TokenIssuer::builder(keys, "https://auth.example.com").audience("orders-api").build()?;
//! let token = issuer.issue(&AccessToken::new("alice"))?.token;
//!
//! let res = app.clone().oneshot(request("/me", Some(&token))).await?;
//! assert_eq!(res.status(), 200);
//! assert!(res.headers().contains_key("ratelimit"));
//!
//! let res = app.clone().oneshot(request("/me", None)).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//!
//! let res = app.clone().oneshot(request("/admin", Some(&token))).await?;
//! assert_eq!(res.status(), 403);
//! assert!(res.headers()["www-authenticate"].to_str()?.contains("insufficient_scope"));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod extract;
mod ip;
mod jwks;
mod layer;
mod response;

pub use extract::{Auth, AuthRejection, Claims, MaybeAuth};
pub use ip::request_client_ip;
pub use jwks::{jwks, jwks_router};
pub use layer::{GuardLayer, GuardService, ResponseFuture};
pub use response::{denial_http_response, denial_response};
pub use tokenward_guard::http::{JWKS_CACHE_CONTROL, JWKS_PATH};

#[doc(no_inline)]
pub use tokenward_guard::{Denial, Guard};
