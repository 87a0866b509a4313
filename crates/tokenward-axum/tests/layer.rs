//! The layer, extractors and JWKS handler, called in process with `tower::ServiceExt::oneshot`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use tokenward_axum::{Auth, Claims, GuardLayer, MaybeAuth, jwks_router};
use tokenward_claims::{
    AccessToken, Algorithm, Key, KeySet, SharedKeySet, ValidationPolicy, Validator,
};
use tokenward_guard::testkit::{AUDIENCE, Fixture, ISSUER};
use tokenward_guard::{Guard, GuardStores, Requirements};
use tokenward_ratelimit::{GcraQuota, SubjectLimit};
use tower::{Layer, ServiceExt};

const PEER: &str = "203.0.113.7:40000";

fn request(path: &str, token: Option<&str>) -> Request<Body> {
    request_from(path, token, PEER.parse().unwrap())
}

fn request_from(path: &str, token: Option<&str>, peer: SocketAddr) -> Request<Body> {
    let mut req = Request::get(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn json(value: serde_json::Value) -> Response {
    ([("content-type", "application/json")], value.to_string()).into_response()
}

async fn me(Auth(auth): Auth) -> Response {
    json(serde_json::json!({ "sub": auth.sub(), "ip": auth.client_ip.to_string() }))
}

async fn maybe(MaybeAuth(auth): MaybeAuth) -> Response {
    json(serde_json::json!({ "sub": auth.as_ref().and_then(|a| a.sub()) }))
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error"].as_str().unwrap().to_owned()
}

fn sub_of(body: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["sub"].clone()
}

#[derive(Debug, Serialize, Deserialize)]
struct Tenant {
    tenant: String,
    level: u8,
}

#[tokio::test]
async fn typed_claims_extractor() {
    let f = Fixture::new().await;
    async fn handler(Claims(t): Claims<Tenant>) -> String {
        format!("{}:{}", t.tenant, t.level)
    }
    let app = Router::new()
        .route("/t", get(handler))
        .layer(GuardLayer::new(f.guard.clone()));
    let custom = Tenant {
        tenant: "acme".to_owned(),
        level: 3,
    };
    let token = f
        .issuer
        .issue_with(&AccessToken::new("alice"), &custom)
        .unwrap()
        .token;
    let (status, _, body) = send(&app, request("/t", Some(&token))).await;
    assert_eq!(status, 200);
    assert_eq!(body, "acme:3");

    // A valid token whose custom claims are not a Tenant: 401 invalid_token, class Claims,
    // and the serde error (which could quote the token) is not shown.
    let plain = f.token("bob");
    let (status, headers, body) = send(&app, request("/t", Some(&plain))).await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body), "invalid_token");
    assert!(
        body.contains("the token's claims are not accepted"),
        "{body}"
    );
    assert!(!body.contains("tenant"), "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn extractors_outside_the_layer() {
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route(
            "/claims",
            get(|Claims(t): Claims<Tenant>| async move { t.tenant }),
        );
    // No layer, so no Authenticated: Auth and Claims answer like a missing token …
    for path in ["/me", "/claims"] {
        let (status, headers, body) = send(&app, request(path, None)).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(error_of(&body), "missing_token");
    }
    // … and MaybeAuth is None.
    let (status, _, body) = send(&app, request("/maybe", None)).await;
    assert_eq!(status, 200);
    assert_eq!(sub_of(&body), serde_json::Value::Null);
}

#[tokio::test]
async fn optional_variant() {
    let f = Fixture::new().await;
    let app = Router::new()
        .route("/maybe", get(maybe))
        .layer(GuardLayer::optional(f.guard.clone()));

    let (status, headers, body) = send(&app, request("/maybe", None)).await;
    assert_eq!(status, 200);
    assert_eq!(sub_of(&body), serde_json::Value::Null);
    assert!(!headers.contains_key("ratelimit"));

    let (status, headers, body) = send(&app, request("/maybe", Some(&f.token("alice")))).await;
    assert_eq!(status, 200);
    assert_eq!(sub_of(&body), "alice");
    assert!(headers.contains_key("ratelimit"));

    // An invalid token is refused, not treated as anonymous.
    let (status, _, body) = send(&app, request("/maybe", Some("not.a.jwt"))).await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body), "invalid_token");

    // So is a malformed Authorization header.
    let (status, _, body) = send(&app, request("/maybe", Some("a,b"))).await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body), "invalid_request");
}

#[tokio::test]
async fn option_auth_and_handler_headers_win() {
    let f = Fixture::new().await;
    async fn opt(auth: Option<Auth>) -> Response {
        let sub = auth.as_ref().and_then(|Auth(a)| a.sub());
        let mut res = json(serde_json::json!({ "sub": sub }));
        // A handler that sets its own RateLimit field keeps it.
        res.headers_mut()
            .insert("ratelimit", "\"handler\";r=1;t=1".parse().unwrap());
        res
    }
    let app = Router::new()
        .route("/opt", get(opt))
        .layer(GuardLayer::optional(f.guard.clone()));
    let (status, _, body) = send(&app, request("/opt", None)).await;
    assert_eq!(
        (status, sub_of(&body)),
        (StatusCode::OK, serde_json::Value::Null)
    );
    let (status, headers, body) = send(&app, request("/opt", Some(&f.token("alice")))).await;
    assert_eq!((status, sub_of(&body)), (StatusCode::OK, "alice".into()));
    assert_eq!(headers["ratelimit"], "\"handler\";r=1;t=1");
    assert_eq!(headers.get_all("ratelimit").iter().count(), 1);
    assert_eq!(headers["ratelimit-policy"], "\"subject\";q=30;w=60");
}

#[tokio::test]
async fn per_route_requirements() {
    let f = Fixture::new().await;
    let g = f.guard.clone();
    let app = Router::new()
        .route("/admin", get(me))
        .route_layer(GuardLayer::new(g.clone()).require(Requirements::new().scope("admin")))
        .route("/me", get(me))
        .route(
            "/other-api",
            get(me).route_layer(
                GuardLayer::new(g.clone()).require(Requirements::new().audience("other-api")),
            ),
        )
        .route_layer(GuardLayer::new(g));

    let user = f.token("alice");
    let admin = f
        .issuer
        .issue(&AccessToken::new("root").scope("admin"))
        .unwrap()
        .token;

    let (status, _, body) = send(&app, request("/me", Some(&user))).await;
    assert_eq!((status, sub_of(&body)), (StatusCode::OK, "alice".into()));

    let (status, headers, body) = send(&app, request("/admin", Some(&user))).await;
    assert_eq!(status, 403);
    assert_eq!(error_of(&body), "insufficient_scope");
    let www = headers["www-authenticate"].to_str().unwrap();
    assert!(
        www.starts_with("Bearer error=\"insufficient_scope\""),
        "{www}"
    );
    assert!(www.ends_with("scope=\"admin\""), "{www}");

    let (status, _, body) = send(&app, request("/admin", Some(&admin))).await;
    assert_eq!((status, sub_of(&body)), (StatusCode::OK, "root".into()));

    let (status, headers, _) = send(&app, request("/admin", None)).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");

    // An audience requirement the token does not meet: 401 invalid_token.
    let (status, _, body) = send(&app, request("/other-api", Some(&user))).await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body), "invalid_token");
}

/// A Guard over the fixture's keys with a subject limit of 2 per minute.
fn limited_guard(f: &Fixture) -> Guard {
    let policy = ValidationPolicy::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    Guard::builder(
        Validator::new(policy, f.keys.clone()),
        GuardStores::memory(),
    )
    .subject_limit(
        SubjectLimit::new(
            "subject",
            GcraQuota::per_minute(std::num::NonZeroU32::new(2).unwrap()),
        )
        .unwrap(),
    )
    .build()
    .unwrap()
}

#[tokio::test]
async fn nested_layers_charge_the_subject_limit_once() {
    let f = Fixture::new().await;
    let g = limited_guard(&f);
    let app = Router::new()
        .route("/admin", get(me))
        .route_layer(GuardLayer::new(g.clone()).require(Requirements::new().scope("admin")))
        .layer(GuardLayer::new(g));
    let admin = f
        .issuer
        .issue(&AccessToken::new("root").scope("admin"))
        .unwrap()
        .token;
    // Two requests within a limit of two: both pass only if each is charged once.
    for i in 0..2 {
        let (status, headers, body) = send(&app, request("/admin", Some(&admin))).await;
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(headers["ratelimit-policy"], "\"subject\";q=2;w=60");
        let remaining = format!(";r={};", 1 - i);
        assert!(
            headers["ratelimit"].to_str().unwrap().contains(&remaining),
            "{:?}",
            headers["ratelimit"]
        );
    }
    let (status, headers, body) = send(&app, request("/admin", Some(&admin))).await;
    assert_eq!(status, 429);
    assert_eq!(error_of(&body), "rate_limited");
    assert!(headers.contains_key("retry-after"));
    assert!(headers.contains_key("ratelimit"));
}

#[tokio::test]
async fn no_connect_info_fails_closed_with_500() {
    let f = Fixture::new().await;
    let app = Router::new()
        .route("/me", get(me))
        .layer(GuardLayer::new(f.guard.clone()));
    let token = f.token("alice");
    for layer_app in [
        app,
        Router::new()
            .route("/me", get(maybe))
            .layer(GuardLayer::optional(f.guard.clone())),
    ] {
        let req = Request::get("/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(&layer_app, req).await;
        assert_eq!(status, 500);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(error_of(&body), "server_error");
        assert!(!body.contains(&token));
    }
}

#[tokio::test]
async fn forwarding_headers_only_from_trusted_proxies() {
    // The fixture trusts loopback as a proxy, with X-Forwarded-For.
    let f = Fixture::new().await;
    let app = Router::new()
        .route("/me", get(me))
        .layer(GuardLayer::new(f.guard.clone()));
    let token = f.token("alice");
    let ip_of = |body: &str| -> IpAddr {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["ip"].as_str().unwrap().parse().unwrap()
    };
    for (peer, xff, expected) in [
        ("127.0.0.1:5000", "198.51.100.4", "198.51.100.4"),
        ("127.0.0.1:5000", "1.2.3.4, 198.51.100.4", "198.51.100.4"),
        ("203.0.113.9:5000", "198.51.100.4", "203.0.113.9"),
        ("[::ffff:203.0.113.9]:5000", "198.51.100.4", "203.0.113.9"),
    ] {
        let mut req = request_from("/me", Some(&token), peer.parse().unwrap());
        req.headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            ip_of(&body),
            expected.parse::<IpAddr>().unwrap(),
            "{peer} {xff}"
        );
    }
    // A client-written entry that is not UTF-8 must not hide the entry our proxy appended
    // (else one byte would move the ban key onto the proxy and everyone behind it).
    let mut req = request_from("/me", Some(&token), "127.0.0.1:5000".parse().unwrap());
    req.headers_mut().insert(
        "x-forwarded-for",
        http::HeaderValue::from_bytes(b"1.2.3.4\xff, 198.51.100.7").unwrap(),
    );
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ip_of(&body), "198.51.100.7".parse::<IpAddr>().unwrap());
}

#[tokio::test]
async fn query_string_token_is_ignored() {
    let f = Fixture::new().await;
    let app = Router::new()
        .route("/me", get(me))
        .layer(GuardLayer::new(f.guard.clone()));
    let token = f.token("alice");
    let (status, headers, body) =
        send(&app, request(&format!("/me?access_token={token}"), None)).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(!body.contains(&token));
}

/// The layer on a plain tower service with `http_body_util::Full<Bytes>` bodies: no axum
/// Router or axum Body anywhere (the shape of a hyper or tonic service).
#[tokio::test]
async fn generic_body_tower_service() {
    let f = Fixture::new().await;
    let svc = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let sub = req
            .extensions()
            .get::<tokenward_guard::Authenticated>()
            .and_then(|a| a.sub().map(str::to_owned))
            .unwrap_or_default();
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(sub))))
    });
    let svc = GuardLayer::new(f.guard.clone()).layer(svc);
    let call = |token: Option<String>| {
        let svc = svc.clone();
        async move {
            let mut req = Request::get("/rpc");
            if let Some(token) = token {
                req = req.header("authorization", format!("Bearer {token}"));
            }
            let mut req = req.body(Full::new(Bytes::new())).unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(PEER.parse::<SocketAddr>().unwrap()));
            let res: http::Response<Full<Bytes>> = svc.oneshot(req).await.unwrap();
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts, String::from_utf8(body.to_vec()).unwrap())
        }
    };

    let (parts, body) = call(Some(f.token("alice"))).await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "alice");
    assert_eq!(parts.headers["ratelimit-policy"], "\"subject\";q=30;w=60");
    assert!(parts.headers.contains_key("ratelimit"));

    let (parts, body) = call(None).await;
    assert_eq!(parts.status, 401);
    assert_eq!(parts.headers["www-authenticate"], "Bearer");
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(parts.headers["cache-control"], "no-store");
    assert_eq!(error_of(&body), "missing_token");

    let (parts, body) = call(Some("not.a.jwt".to_owned())).await;
    assert_eq!(parts.status, 401);
    assert_eq!(error_of(&body), "invalid_token");
}

/// A service with a body that is not `From<String>` (a boxed body, like tonic's): adapted
/// with `map_response(|r| r.map(axum::body::Body::new))` under the layer, as the
/// `GuardService` docs say.
#[tokio::test]
async fn boxed_body_service_through_axum_body() {
    use http_body_util::combinators::UnsyncBoxBody;
    let f = Fixture::new().await;
    let svc = tower::service_fn(|_req: Request<Body>| async move {
        let body: UnsyncBoxBody<Bytes, Infallible> =
            Full::new(Bytes::from_static(b"streamed")).boxed_unsync();
        Ok::<_, Infallible>(http::Response::new(body))
    })
    .map_response(|res| res.map(Body::new));
    let svc = GuardLayer::new(f.guard.clone()).layer(svc);

    let res = svc
        .clone()
        .oneshot(request("/rpc", Some(&f.token("alice"))))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"streamed");

    let res = svc.oneshot(request("/rpc", None)).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn jwks_handler_serves_public_keys_only() {
    let pkcs8 = tokenward_claims::generate_pkcs8(Algorithm::EdDSA).unwrap();
    let mut keys = KeySet::single(Key::from_pkcs8_der("ed-1", Algorithm::EdDSA, &pkcs8).unwrap());
    keys.insert(Key::hmac("hs-1", Algorithm::HS256, &[9u8; 32]).unwrap())
        .unwrap();
    let shared = SharedKeySet::new(keys);
    let app: Router = jwks_router(shared.clone());

    let (status, headers, body) = send(&app, request("/.well-known/jwks.json", None)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let served = doc["keys"].as_array().unwrap();
    assert_eq!(served.len(), 1, "{body}");
    assert_eq!(served[0]["kid"], "ed-1");
    for key in served {
        let key = key.as_object().unwrap();
        assert!(!key.contains_key("d"), "private key material: {body}");
        assert!(!key.contains_key("k"), "HMAC secret: {body}");
    }

    // A rotation shows on the next request.
    let pkcs8 = tokenward_claims::generate_pkcs8(Algorithm::EdDSA).unwrap();
    let next = Key::from_pkcs8_der("ed-2", Algorithm::EdDSA, &pkcs8).unwrap();
    shared.update(|k| k.insert(next)).unwrap();
    let (_, _, body) = send(&app, request("/.well-known/jwks.json", None)).await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["keys"].as_array().unwrap().len(), 2, "{body}");

    // Anything but GET/HEAD is not served.
    let mut post = request("/.well-known/jwks.json", None);
    *post.method_mut() = http::Method::POST;
    let (status, _, _) = send(&app, post).await;
    assert_eq!(status, 405);
}
