#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The middleware and extractors in process (`actix_web::test::init_service`).

use std::net::{IpAddr, SocketAddr};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage, HttpResponse, test, web};
use serde::Deserialize;
use tokenward_actix::{
    Auth, Claims, GuardMiddleware, JWKS_CACHE_CONTROL, MaybeAuth, denial_response, jwks,
    request_client_ip,
};
use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, SharedKeySet, generate_pkcs8};
use tokenward_guard::testkit::{AUDIENCE, Fixture, SUBJECT_LIMIT};
use tokenward_guard::{Denial, Requirements};

const PEER: &str = "203.0.113.7:40000";

async fn me(Auth(auth): Auth) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "sub": auth.sub() }))
}

async fn maybe(MaybeAuth(auth): MaybeAuth) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "sub": auth.as_ref().and_then(|a| a.sub()) }))
}

#[derive(Debug, Deserialize)]
struct Tenant {
    tenant: String,
    plan: u32,
}

async fn tenant(Claims(t): Claims<Tenant>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "tenant": t.tenant, "plan": t.plan }))
}

fn get(path: &str, token: Option<&str>) -> actix_web::test::TestRequest {
    let req = test::TestRequest::get()
        .uri(path)
        .peer_addr(PEER.parse().unwrap());
    match token {
        Some(t) => req.insert_header(("authorization", format!("Bearer {t}"))),
        None => req,
    }
}

async fn json<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> serde_json::Value {
    serde_json::from_slice(&test::read_body(res).await).unwrap()
}

fn header<B>(res: &ServiceResponse<B>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[actix_web::test]
async fn typed_claims_extractor() {
    let f = Fixture::new().await;
    let app = test::init_service(
        App::new()
            .wrap(GuardMiddleware::new(f.guard.clone()))
            .route("/tenant", web::get().to(tenant)),
    )
    .await;
    let good = f
        .issuer
        .issue_with(
            &AccessToken::new("alice"),
            &serde_json::json!({ "tenant": "acme", "plan": 3 }),
        )
        .unwrap()
        .token;
    let res = test::call_service(&app, get("/tenant", Some(&good)).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(res).await,
        serde_json::json!({ "tenant": "acme", "plan": 3 })
    );

    // Verified, but its claims do not fit the route's type: 401 invalid_token (class claims).
    let wrong = f
        .issuer
        .issue_with(
            &AccessToken::new("alice"),
            &serde_json::json!({ "tenant": 42 }),
        )
        .unwrap()
        .token;
    let res = test::call_service(&app, get("/tenant", Some(&wrong)).to_request()).await;
    assert_eq!(res.status(), 401);
    let www = header(&res, "www-authenticate").unwrap();
    assert!(www.starts_with(r#"Bearer error="invalid_token""#), "{www}");
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/json")
    );
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(
        body["error_description"],
        "the token's claims are not accepted"
    );
    assert!(!body.to_string().contains(&wrong));
}

#[actix_web::test]
async fn optional_middleware_and_maybe_auth() {
    let f = Fixture::new().await;
    let app = test::init_service(
        App::new()
            .wrap(GuardMiddleware::optional(f.guard.clone()))
            .route("/maybe", web::get().to(maybe))
            .route("/me", web::get().to(me)),
    )
    .await;
    let token = f.token("alice");

    let res = test::call_service(&app, get("/maybe", None).to_request()).await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "ratelimit").is_none());
    assert_eq!(json(res).await, serde_json::json!({ "sub": null }));

    let res = test::call_service(&app, get("/maybe", Some(&token)).to_request()).await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "ratelimit").is_some());
    assert_eq!(json(res).await, serde_json::json!({ "sub": "alice" }));

    // An invalid token is refused even where authentication is optional.
    let res = test::call_service(&app, get("/maybe", Some("not.a.jwt")).to_request()).await;
    assert_eq!(res.status(), 401);

    // `Auth` on an anonymous request: the MissingToken response, bare challenge.
    let res = test::call_service(&app, get("/me", None).to_request()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(header(&res, "www-authenticate").as_deref(), Some("Bearer"));
    assert_eq!(json(res).await["error"], "missing_token");
}

#[actix_web::test]
async fn auth_extractor_without_middleware_refuses() {
    let app = test::init_service(App::new().route("/me", web::get().to(me))).await;
    let res = test::call_service(&app, get("/me", None).to_request()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(header(&res, "www-authenticate").as_deref(), Some("Bearer"));
}

#[actix_web::test]
async fn per_scope_requirements() {
    let f = Fixture::new().await;
    let app = test::init_service(
        App::new()
            .service(
                web::scope("/admin")
                    .wrap(
                        GuardMiddleware::new(f.guard.clone())
                            .require(Requirements::new().scope("admin")),
                    )
                    .route("/stats", web::get().to(me)),
            )
            .service(
                web::scope("/reports")
                    .wrap(
                        GuardMiddleware::new(f.guard.clone())
                            .require(Requirements::new().audience("reports-api")),
                    )
                    .route("", web::get().to(me)),
            )
            .service(
                web::scope("")
                    .wrap(GuardMiddleware::new(f.guard.clone()))
                    .route("/me", web::get().to(me)),
            ),
    )
    .await;
    let user = f.token("alice");
    let admin = f
        .issuer
        .issue(&AccessToken::new("root").scope("admin"))
        .unwrap()
        .token;

    let res = test::call_service(&app, get("/me", Some(&user)).to_request()).await;
    assert_eq!(res.status(), 200);

    let res = test::call_service(&app, get("/admin/stats", Some(&user)).to_request()).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let www = header(&res, "www-authenticate").unwrap();
    assert!(
        www.starts_with(r#"Bearer error="insufficient_scope""#),
        "{www}"
    );
    assert!(www.contains(r#"scope="admin""#), "{www}");
    assert_eq!(json(res).await["error"], "insufficient_scope");

    let res = test::call_service(&app, get("/admin/stats", Some(&admin)).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["sub"], "root");

    let res = test::call_service(&app, get("/admin/stats", None).to_request()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(header(&res, "www-authenticate").as_deref(), Some("Bearer"));

    // A token for the Guard's audience but not the scope's: 401 invalid_token.
    let res = test::call_service(&app, get("/reports", Some(&admin)).to_request()).await;
    assert_eq!(res.status(), 401);
    let www = header(&res, "www-authenticate").unwrap();
    assert!(www.starts_with(r#"Bearer error="invalid_token""#), "{www}");
    let with_aud = f
        .issuer
        .issue(
            &AccessToken::new("root").audience(vec![AUDIENCE.to_owned(), "reports-api".to_owned()]),
        )
        .unwrap()
        .token;
    let res = test::call_service(&app, get("/reports", Some(&with_aud)).to_request()).await;
    assert_eq!(res.status(), 200);
}

/// An app-wide middleware and a stricter one on a scope: the token is verified and the
/// subject limit charged once per request, and the inner middleware checks its requirements.
#[actix_web::test]
async fn nested_middleware_authenticates_once() {
    let f = Fixture::new().await;
    let app = test::init_service(
        App::new()
            .wrap(GuardMiddleware::new(f.guard.clone()))
            .service(
                web::scope("/admin")
                    .wrap(
                        GuardMiddleware::new(f.guard.clone())
                            .require(Requirements::new().scope("admin")),
                    )
                    .route("", web::get().to(me)),
            ),
    )
    .await;
    let admin = f
        .issuer
        .issue(&AccessToken::new("root").scope("admin"))
        .unwrap()
        .token;
    let user = f.token("alice");
    let remaining = |res: &ServiceResponse<_>| -> u32 {
        let v = header(res, "ratelimit").unwrap();
        let r = v
            .split(';')
            .find_map(|p| p.trim().strip_prefix("r="))
            .unwrap();
        r.parse().unwrap()
    };
    let first = test::call_service(&app, get("/admin", Some(&admin)).to_request()).await;
    assert_eq!(first.status(), 200);
    let second = test::call_service(&app, get("/admin", Some(&admin)).to_request()).await;
    assert_eq!(second.status(), 200);
    // One charge per request (a fresh subject's first request leaves limit − 1; a double
    // charge would leave limit − 2). The second may have been replenished on a slow machine.
    assert_eq!(remaining(&first), SUBJECT_LIMIT - 1);
    assert!(remaining(&second) >= SUBJECT_LIMIT - 2);
    assert_eq!(
        header(&second, "ratelimit-policy").unwrap(),
        header(&first, "ratelimit-policy").unwrap()
    );

    let res = test::call_service(&app, get("/admin", Some(&user)).to_request()).await;
    assert_eq!(res.status(), 403);
}

#[actix_web::test]
async fn success_carries_the_subject_limit_headers() {
    let f = Fixture::new().await;
    let app = test::init_service(
        App::new()
            .wrap(GuardMiddleware::new(f.guard.clone()))
            .route("/me", web::get().to(me)),
    )
    .await;
    let res = test::call_service(&app, get("/me", Some(&f.token("alice"))).to_request()).await;
    assert_eq!(res.status(), 200);
    // The identity is in the request's extensions; the headers are the Guard's for it.
    let auth = res
        .request()
        .extensions()
        .get::<tokenward_guard::Authenticated>()
        .cloned()
        .unwrap();
    let [(p_name, p_value), (r_name, r_value)] = f.guard.ratelimit_headers(&auth).unwrap();
    assert_eq!(header(&res, p_name).unwrap(), p_value);
    assert_eq!(header(&res, r_name).unwrap(), r_value);
}

#[actix_web::test]
async fn unknown_peer_fails_closed_with_500() {
    let f = Fixture::new().await;
    let app = test::init_service(
        App::new()
            .wrap(GuardMiddleware::optional(f.guard.clone()))
            .route("/maybe", web::get().to(maybe)),
    )
    .await;
    let token = f.token("alice");
    for token in [None, Some(token.as_str())] {
        let mut req = test::TestRequest::get().uri("/maybe");
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        let res = app.call(req.to_request()).await.unwrap();
        assert_eq!(res.status(), 500);
        assert_eq!(
            header(&res, "content-type").as_deref(),
            Some("application/json")
        );
        let body = test::read_body(res).await;
        assert!(!String::from_utf8_lossy(&body).contains(token.unwrap_or("eyJ")));
    }
}

#[actix_web::test]
async fn client_ip_trusts_forwarding_headers_from_trusted_proxies_only() {
    let f = Fixture::new().await; // trusts 127.0.0.0/8 with X-Forwarded-For
    let ip = |peer: &str, xff: &[&str]| {
        let mut req = test::TestRequest::get().peer_addr(peer.parse::<SocketAddr>().unwrap());
        for v in xff {
            req = req.append_header(("x-forwarded-for", *v));
        }
        request_client_ip(&f.guard, &req.to_http_request())
    };
    let addr = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(ip("127.0.0.1:1", &["203.0.113.9"]), addr("203.0.113.9"));
    assert_eq!(
        ip("127.0.0.1:1", &["1.2.3.4, 203.0.113.9"]),
        addr("203.0.113.9")
    );
    assert_eq!(
        ip("127.0.0.1:1", &["1.2.3.4", "203.0.113.9"]),
        addr("203.0.113.9")
    );
    // Not from a trusted proxy: the peer, whatever the header says.
    assert_eq!(ip("198.51.100.4:1", &["203.0.113.9"]), addr("198.51.100.4"));
    assert_eq!(ip("127.0.0.1:1", &[]), addr("127.0.0.1"));
    assert_eq!(
        request_client_ip(&f.guard, &test::TestRequest::get().to_http_request()),
        None
    );
    // Bytes that are not UTF-8 in the client-written part do not hide the entry the trusted
    // proxy appended (the client cannot make itself look like the proxy).
    let req = test::TestRequest::get()
        .peer_addr("127.0.0.1:1".parse().unwrap())
        .append_header((
            "x-forwarded-for",
            actix_web::http::header::HeaderValue::from_bytes(b"1.2.3.4\xff, 203.0.113.9").unwrap(),
        ))
        .to_http_request();
    assert_eq!(request_client_ip(&f.guard, &req), addr("203.0.113.9"));
    // Reached by the walk, such an entry is malformed: the peer.
    let req = test::TestRequest::get()
        .peer_addr("127.0.0.1:1".parse().unwrap())
        .append_header((
            "x-forwarded-for",
            actix_web::http::header::HeaderValue::from_bytes(b"1.2.3.4\xff, 127.0.0.2").unwrap(),
        ))
        .to_http_request();
    assert_eq!(request_client_ip(&f.guard, &req), addr("127.0.0.1"));
}

#[actix_web::test]
async fn denial_response_copies_the_denial() {
    let denials = [
        Denial::MissingToken,
        Denial::InsufficientScope {
            required: "admin".to_owned(),
        },
        Denial::Unavailable {
            check: tokenward_guard::Check::Revocation,
            retry_after: std::time::Duration::from_secs(5),
        },
    ];
    for denial in denials {
        let res = denial_response(&denial);
        assert_eq!(res.status().as_u16(), denial.status());
        for (name, value) in denial.headers() {
            assert_eq!(res.headers().get(name).unwrap().to_str().unwrap(), value);
        }
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        assert_eq!(body, denial.body());
    }
}

#[actix_web::test]
async fn jwks_serves_public_keys_only() {
    let mut keys = KeySet::single(Key::hmac("hs-1", Algorithm::HS256, &[9u8; 32]).unwrap());
    let ed = generate_pkcs8(Algorithm::EdDSA).unwrap();
    keys.insert(Key::from_pkcs8_der("ed-1", Algorithm::EdDSA, &ed).unwrap())
        .unwrap();
    let ec = generate_pkcs8(Algorithm::ES256).unwrap();
    keys.insert(Key::from_pkcs8_der("ec-1", Algorithm::ES256, &ec).unwrap())
        .unwrap();
    let shared = SharedKeySet::new(keys);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(shared.clone()))
            .route("/.well-known/jwks.json", web::get().to(jwks)),
    )
    .await;
    let call = || {
        test::TestRequest::get()
            .uri("/.well-known/jwks.json")
            .to_request()
    };

    let res = test::call_service(&app, call()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "cache-control").as_deref(),
        Some(JWKS_CACHE_CONTROL)
    );
    assert_eq!(
        header(&res, "cache-control").as_deref(),
        Some("public, max-age=300")
    );
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/jwk-set+json")
    );
    let body = json(res).await;
    let keys = body["keys"].as_array().unwrap();
    let mut kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    kids.sort_unstable();
    assert_eq!(kids, ["ec-1", "ed-1"]);
    for key in keys {
        let key = key.as_object().unwrap();
        assert!(!key.contains_key("d"), "private part served: {key:?}");
        assert!(!key.contains_key("k"), "secret served: {key:?}");
        assert_ne!(key["kty"], "oct");
    }
    // The served set parses back into verification keys.
    KeySet::from_jwks_json(&body.to_string()).unwrap();

    // A rotation through the SharedKeySet is served at once.
    shared.update(|k| k.remove("ec-1").map(|_| ())).unwrap();
    let body = json(test::call_service(&app, call()).await).await;
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
}

/// A banned client: refused with 429 wherever it presents a token, but an anonymous request
/// on an optional route attempts no authentication and passes (as in the axum adapter).
#[actix_web::test]
async fn banned_client_on_optional_route() {
    let f = Fixture::new().await;
    let ip: IpAddr = PEER.parse::<SocketAddr>().unwrap().ip();
    let maxretry = f.guard.failure_ban().unwrap().quota().maxretry();
    for _ in 0..maxretry {
        let req = tokenward_guard::AuthRequest::new(
            "POST",
            "/login",
            ip,
            tokenward_guard::Credentials::Absent,
        );
        f.guard.record_failure(&req, "test").await;
    }
    let app = test::init_service(
        App::new()
            .wrap(GuardMiddleware::optional(f.guard.clone()))
            .route("/maybe", web::get().to(maybe)),
    )
    .await;
    let res = test::call_service(&app, get("/maybe", None).to_request()).await;
    assert_eq!(res.status(), 200);
    let res = test::call_service(&app, get("/maybe", Some(&f.token("alice"))).to_request()).await;
    assert_eq!(res.status(), 429);
    assert!(header(&res, "retry-after").is_some());
    assert!(header(&res, "ratelimit").is_some());
    assert!(header(&res, "ratelimit-policy").is_some());
    assert_eq!(json(res).await["error"], "banned");
}
