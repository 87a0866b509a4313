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

#[tokio::test]
async fn shared_table_over_http() {
    let fixture = Fixture::new().await;
    let addr = serve(app(&fixture)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let cases = testkit::cases(&fixture).await;
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
