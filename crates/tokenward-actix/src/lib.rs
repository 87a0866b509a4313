//! The actix-web 4 adapter for the tokenward [`Guard`].
//!
//! It only translates: an actix request becomes one [`Guard::authorize`] call
//! ([`tokenward_guard::http`]: method, path without the query string, peer address, headers),
//! and a [`Denial`] becomes an [`HttpResponse`] built from [`Denial::status`],
//! [`Denial::headers`] and [`Denial::body`] — 401 with an RFC 6750 `WWW-Authenticate` challenge, 403
//! `insufficient_scope`, 429 with `Retry-After` and `RateLimit` headers, 503 with
//! `Retry-After` when a store is down under fail-closed. Bodies are JSON and never echo the
//! token. Every decision is the Guard's.
//!
//! - [`GuardMiddleware`] — wrap an app, scope or resource: required
//!   ([`GuardMiddleware::new`]) or optional ([`GuardMiddleware::optional`]) authentication,
//!   per-scope [`Requirements`](tokenward_guard::Requirements)
//!   ([`GuardMiddleware::require`]).
//! - [`Auth`], [`MaybeAuth`], [`Claims`] — extractors for the verified identity and typed
//!   custom claims; they refuse with the typed [`AuthRejection`].
//! - [`jwks`] — a handler serving the local key set's public JWKS
//!   (`GET /.well-known/jwks.json`).
//! - [`denial_response`], [`request_client_ip`] — the two translations, for handlers that
//!   call the Guard themselves (a login endpoint's failure ban).
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use tokenward_actix::{Auth, GuardMiddleware};
//! use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, TokenIssuer};
//! use tokenward_guard::{GuardConfig, GuardStores, Requirements};
//!
//! async fn me(Auth(auth): Auth) -> HttpResponse {
//!     HttpResponse::Ok().json(serde_json::json!({ "sub": auth.sub() }))
//! }
//!
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[7u8; 32])?);
//! let config = GuardConfig::new("https://auth.example.com", "orders-api");
//! let guard = config.guard_builder(keys.clone(), GuardStores::memory(), None)?.build()?;
//!
//! let app = test::init_service(
//!     App::new()
//!         .service(
//!             web::scope("/admin")
//!                 .wrap(GuardMiddleware::new(guard.clone()).require(Requirements::new().scope("admin")))
//!                 .route("", web::get().to(me)),
//!         )
//!         .service(web::scope("").wrap(GuardMiddleware::new(guard)).route("/me", web::get().to(me))),
//! )
//! .await;
//!
//! let issuer = TokenIssuer::builder(keys, "https://auth.example.com").audience("orders-api").build()?;
//! let token = issuer.issue(&AccessToken::new("alice"))?.token;
//! let get = |path: &str| {
//!     test::TestRequest::get()
//!         .uri(path)
//!         .peer_addr("203.0.113.7:40000".parse().unwrap())
//!         .insert_header(("authorization", format!("Bearer {token}")))
//!         .to_request()
//! };
//!
//! let res = test::call_service(&app, get("/me")).await;
//! assert_eq!(res.status(), 200);
//! assert!(res.headers().contains_key("ratelimit"));
//! let body = test::read_body(res).await;
//! assert_eq!(body, r#"{"sub":"alice"}"#);
//!
//! // alice has no `admin` scope: 403 with an RFC 6750 challenge.
//! let res = test::call_service(&app, get("/admin")).await;
//! assert_eq!(res.status(), 403);
//! let challenge = res.headers().get("www-authenticate").unwrap().to_str()?;
//! assert!(challenge.starts_with(r#"Bearer error="insufficient_scope""#));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod extract;
mod middleware;

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use tokenward_claims::SharedKeySet;
use tokenward_guard::http::{HeaderSource, JSON_CONTENT_TYPE, JWKS_CONTENT_TYPE, NO_STORE};
use tokenward_guard::{Denial, Guard};

pub use extract::{Auth, AuthRejection, Claims, MaybeAuth};
pub use middleware::{GuardMiddleware, GuardService};
pub use tokenward_guard::http::{JWKS_CACHE_CONTROL, JWKS_PATH};

/// The response for `denial`: its status, its headers (`WWW-Authenticate`, `Retry-After`,
/// `RateLimit-Policy`, `RateLimit`, `Cache-Control: no-store`) and its JSON body, with
/// `Content-Type: application/json`. Nothing else: the Guard decides, this only copies.
///
/// ```
/// use tokenward_actix::denial_response;
/// use tokenward_guard::Denial;
///
/// let res = denial_response(&Denial::MissingToken);
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
/// assert_eq!(res.headers().get("content-type").unwrap(), "application/json");
/// ```
pub fn denial_response(denial: &Denial) -> HttpResponse {
    let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)));
    for (name, value) in denial.headers() {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                response.append_header((name, value));
            }
            _ => tracing::error!(
                target: "tokenward::actix",
                header = name,
                "a denial header is not a valid HTTP header; left out"
            ),
        }
    }
    response.body(denial.body())
}

/// An actix `HeaderMap` as the Guard reads it.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.0.get_all(name).map(HeaderValue::as_bytes)
    }
}

/// The client address of `req` for the Guard: [`Guard::resolve_client_ip`] of the peer
/// address — forwarding headers count only when the peer is a trusted proxy.
///
/// Never actix's `connection_info().realip_remote_addr()`, which believes forwarding headers
/// from anyone. `None` when the peer address is unknown (a Unix socket, a test request
/// without `peer_addr`): refuse such a request rather than share one ban key between all
/// clients. A [`ServiceRequest`](actix_web::dev::ServiceRequest) gives its `HttpRequest` with
/// `request()`.
pub fn request_client_ip(guard: &Guard, req: &HttpRequest) -> Option<IpAddr> {
    guard.resolve_client_ip(req.peer_addr().map(|p| p.ip()), &Headers(req.headers()))
}

/// Serves the public part of the local key set as a JWKS document, for
/// `GET /.well-known/jwks.json`: only public keys (HMAC secrets and private parts never),
/// `Content-Type: application/jwk-set+json` and `Cache-Control: public, max-age=300`
/// ([`JWKS_CACHE_CONTROL`]). Register the [`SharedKeySet`] as `web::Data`; a rotation through
/// it is served at once.
///
/// ```
/// use actix_web::{App, test, web};
/// use tokenward_claims::{SharedKeySet, KeySet};
///
/// # #[actix_web::main]
/// # async fn main() {
/// let keys = web::Data::new(SharedKeySet::new(KeySet::new()));
/// let app = test::init_service(
///     App::new().app_data(keys).route("/.well-known/jwks.json", web::get().to(tokenward_actix::jwks)),
/// )
/// .await;
/// let res = test::call_service(&app, test::TestRequest::get().uri("/.well-known/jwks.json").to_request()).await;
/// assert_eq!(res.headers().get("cache-control").unwrap(), "public, max-age=300");
/// assert_eq!(test::read_body(res).await, r#"{"keys":[]}"#);
/// # }
/// ```
pub async fn jwks(keys: web::Data<SharedKeySet>) -> HttpResponse {
    match keys.snapshot().public_jwks_json() {
        Ok(body) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, HeaderValue::from_static(JWKS_CONTENT_TYPE)))
            .insert_header((CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE_CONTROL)))
            .body(body),
        Err(error) => {
            tracing::error!(target: "tokenward::actix", %error, "serializing the JWKS failed");
            HttpResponse::InternalServerError()
                .insert_header((CACHE_CONTROL, HeaderValue::from_static(NO_STORE)))
                .finish()
        }
    }
}
