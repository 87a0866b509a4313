//! The shared adapter table (`tokenward_guard::testkit`) over real HTTP: an axum server on an
//! ephemeral loopback port, served with `ConnectInfo`, and hyper's client; and the audit
//! event of a `Claims<T>` refusal (this binary installs a process-wide `tracing`
//! subscriber, so it is the one apart from `tests/layer.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokenward_axum::{Auth, Claims, GuardLayer, MaybeAuth};
use tokenward_guard::testkit::{self, Fixture};

fn json(value: serde_json::Value) -> Response {
    ([("content-type", "application/json")], value.to_string()).into_response()
}

async fn me(Auth(auth): Auth) -> Response {
    json(serde_json::json!({ "sub": auth.sub() }))
}

/// Sets its own `RateLimit` field, which the layer must keep.
async fn own_ratelimit(Auth(auth): Auth) -> Response {
    let mut res = json(serde_json::json!({ "sub": auth.sub() }));
    res.headers_mut().insert(
        "ratelimit",
        http::HeaderValue::from_static(testkit::HANDLER_RATELIMIT),
    );
    res
}

async fn optional(MaybeAuth(auth): MaybeAuth) -> Response {
    json(serde_json::json!({ "sub": auth.as_ref().and_then(|a| a.sub()) }))
}

fn app(f: &Fixture) -> Router {
    let guard = f.guard.clone();
    Router::new()
        .route("/me", get(me).route_layer(GuardLayer::new(guard.clone())))
        .route(
            "/admin",
            get(me).route_layer(GuardLayer::new(guard.clone()).require(f.admin.clone())),
        )
        .route(
            "/ops",
            get(me).route_layer(GuardLayer::new(guard.clone()).require(f.ops.clone())),
        )
        .route(
            "/own-ratelimit",
            get(own_ratelimit).route_layer(GuardLayer::new(guard.clone())),
        )
        .route(
            "/optional",
            get(optional).route_layer(GuardLayer::optional(guard)),
        )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// The table twice: with in-memory stores (the layer decides in `call` and calls the handler
/// at once, wherever no failure has to be counted) and with a revocation store that only
/// answers asynchronously (the layer's boxed check finishes what `authorize_now` began).
#[tokio::test]
async fn shared_table_over_http() {
    for fixture in [Fixture::new().await, Fixture::awaiting_stores().await] {
        shared_table(&fixture).await;
    }
}

async fn shared_table(fixture: &Fixture) {
    let addr = serve(app(fixture)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let cases = testkit::cases(fixture).await;
    let mut failures = Vec::new();
    for case in &cases {
        let mut req = http::Request::builder()
            .method(case.method)
            .uri(format!("http://{addr}{}", case.path));
        for (name, value) in &case.headers {
            // `header` appends: repeated names are sent as separate fields.
            req = req.header(name.as_str(), value.as_str());
        }
        let res = client
            .request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        if let Err(e) = testkit::check(case, status, &headers, &body) {
            failures.push(e);
        }
    }
    assert!(cases.len() > 20);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[derive(Debug, serde::Deserialize)]
struct Tenant {
    #[allow(dead_code, reason = "only its absence matters")]
    tenant: String,
}

/// Regression: a `Claims<T>` refusal after the Guard allowed the request answered 401 without
/// an audit event. (A process-wide subscriber: a thread-scoped one can miss events whose
/// callsite another test registered first.)
#[tokio::test]
async fn claims_mismatch_is_audited() {
    const PATH: &str = "/claims-audited-here";
    let logs = tokenward_testsupport::LogCapture::global();
    async fn handler(Claims(_t): Claims<Tenant>) -> &'static str {
        "ok"
    }
    let fixture = Fixture::new().await;
    let app = Router::new()
        .route(PATH, get(handler))
        .layer(GuardLayer::new(fixture.guard.clone()));
    let addr = serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let token = fixture.token("bob");
    let req = http::Request::get(format!("http://{addr}{PATH}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 401);
    let logged = logs.contents();
    let lines: Vec<&str> = logged.lines().filter(|l| l.contains(PATH)).collect();
    assert!(
        lines.iter().any(|l| l.contains("decision=\"deny\"")
            && l.contains("reason=\"claims\"")
            && l.contains("sub=\"bob\"")),
        "no deny/claims audit event for {PATH}: {lines:#?}"
    );
    assert!(!logged.contains(&token), "the token was logged");
}

/// Issue 17, item 1 (tenant isolation), over HTTP on memory and on Redis: one Guard accepts
/// two issuers, each with a user `alice` and `bob`. Tenant B's `alice` keeps her own subject
/// limit after tenant A's is exhausted, and signing A's `bob` out everywhere leaves B's `bob`
/// signed in. (Before store ids were scoped by issuer, both were one subject.)
#[tokio::test]
async fn tenants_behind_one_guard_share_no_state() {
    const TENANT_A: &str = "https://tenant-a.example";
    const TENANT_B: &str = "https://tenant-b.example";
    let redis = {
        tokenward_testsupport::shared_redis().await;
        let config = tokenward_redis::RedisConfig::new(tokenward_testsupport::redis_url())
            .key_prefix(tokenward_testsupport::unique_prefix("axum-tenants"));
        tokenward_redis::RedisStores::connect(&config).unwrap()
    };
    for (backend, stores) in [
        ("memory", tokenward_guard::GuardStores::memory()),
        ("redis", tokenward_guard::GuardStores::redis(&redis)),
    ] {
        let keys = tokenward_claims::KeySet::single(
            tokenward_claims::Key::hmac("k", tokenward_claims::Algorithm::HS256, &[9; 32]).unwrap(),
        );
        let mut config = tokenward_guard::GuardConfig::new(TENANT_A, "api");
        config.validation.issuers.push(TENANT_B.to_owned());
        config.subject_limit.requests = 3;
        let guard = config
            .guard_builder(keys.clone(), stores.clone(), None)
            .unwrap()
            .build()
            .unwrap();
        let token = |iss: &str, sub: &str| {
            tokenward_claims::TokenIssuer::builder(keys.clone(), iss)
                .audience("api")
                .build()
                .unwrap()
                .issue(&tokenward_claims::AccessToken::new(sub))
                .unwrap()
                .token
        };
        // Sign out everywhere: the subject as the Guard scopes it, by the token's issuer.
        let signout_guard = guard.clone();
        let signout_stores = stores.clone();
        let signout = move |Auth(auth): Auth| async move {
            let sub = signout_guard.token_ref(&auth).unwrap().sub.unwrap();
            let now = tokenward_core::UnixTime::from(std::time::SystemTime::now());
            let before = now.saturating_add(std::time::Duration::from_secs(31));
            let until = before.saturating_add(std::time::Duration::from_secs(3600));
            use tokenward_revocation::RevocationStore as _;
            signout_stores
                .revocation
                .revoke_subject(&sub, before, until)
                .await
                .unwrap();
            http::StatusCode::NO_CONTENT
        };
        let app = Router::new()
            .route("/me", get(me))
            .route("/signout", axum::routing::post(signout))
            .layer(GuardLayer::new(guard));
        let addr = serve(app).await;
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let status = |method: &'static str, path: &'static str, token: String| {
            let client = client.clone();
            async move {
                let req = http::Request::builder()
                    .method(method)
                    .uri(format!("http://{addr}{path}"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(Empty::new())
                    .unwrap();
                client.request(req).await.unwrap().status().as_u16()
            }
        };
        let (a_alice, b_alice) = (token(TENANT_A, "alice"), token(TENANT_B, "alice"));
        for i in 0..3 {
            assert_eq!(
                status("GET", "/me", a_alice.clone()).await,
                200,
                "{backend} {i}"
            );
        }
        assert_eq!(
            status("GET", "/me", a_alice.clone()).await,
            429,
            "{backend}: A's limit"
        );
        assert_eq!(
            status("GET", "/me", b_alice.clone()).await,
            200,
            "{backend}: B's alice has her own limit"
        );

        let (a_bob, b_bob) = (token(TENANT_A, "bob"), token(TENANT_B, "bob"));
        assert_eq!(
            status("POST", "/signout", a_bob.clone()).await,
            204,
            "{backend}"
        );
        assert_eq!(
            status("GET", "/me", a_bob).await,
            401,
            "{backend}: A's bob signed out"
        );
        assert_eq!(
            status("GET", "/me", b_bob).await,
            200,
            "{backend}: B's bob is someone else"
        );
    }
    let mut conn = tokenward_testsupport::shared_redis().await;
    let _ = tokenward_testsupport::delete_prefix(&mut conn, redis.backend().key_prefix()).await;
}
