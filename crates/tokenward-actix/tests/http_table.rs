#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The shared adapter table (`tokenward_guard::testkit`) over real HTTP: an actix-web
//! `HttpServer` on 127.0.0.1:0 and a reqwest client; and the audit event of a `Claims<T>`
//! refusal (this binary installs a process-wide `tracing` subscriber, so it is the one apart
//! from `tests/middleware.rs`).

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, test, web};
use tokenward_actix::{Auth, Claims, GuardMiddleware, MaybeAuth};
use tokenward_guard::testkit::{self, Fixture};

async fn me(Auth(auth): Auth) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "sub": auth.sub() }))
}

/// Sets its own `RateLimit` field, which the middleware must keep.
async fn own_ratelimit(Auth(auth): Auth) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("ratelimit", testkit::HANDLER_RATELIMIT))
        .json(serde_json::json!({ "sub": auth.sub() }))
}

async fn optional(MaybeAuth(auth): MaybeAuth) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "sub": auth.as_ref().and_then(|a| a.sub()) }))
}

#[actix_web::test]
async fn shared_table_over_http() {
    // reqwest is built with rustls but no process-wide crypto provider; the table is plain
    // HTTP, but building a client needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let fixture = Fixture::new().await;
    let (guard, admin, ops) = (
        fixture.guard.clone(),
        fixture.admin.clone(),
        fixture.ops.clone(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .service(
                web::resource("/me")
                    .wrap(GuardMiddleware::new(guard.clone()))
                    .route(web::get().to(me)),
            )
            .service(
                web::resource("/admin")
                    .wrap(GuardMiddleware::new(guard.clone()).require(admin.clone()))
                    .route(web::get().to(me)),
            )
            .service(
                web::resource("/ops")
                    .wrap(GuardMiddleware::new(guard.clone()).require(ops.clone()))
                    .route(web::get().to(me)),
            )
            .service(
                web::resource("/own-ratelimit")
                    .wrap(GuardMiddleware::new(guard.clone()))
                    .route(web::get().to(own_ratelimit)),
            )
            .service(
                web::resource("/optional")
                    .wrap(GuardMiddleware::optional(guard.clone()))
                    .route(web::get().to(optional)),
            )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);

    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let cases = testkit::cases(&fixture).await;
    assert!(
        cases.len() > 20,
        "the table shrank to {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = client.request(method, format!("http://{addr}{}", case.path));
        for (name, value) in &case.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response.text().await.unwrap();
        if let Err(e) = testkit::check(case, status, &headers, &body) {
            failures.push(e);
        }
    }

    drop(client); // closes the kept-alive connection, so the graceful stop need not wait
    handle.stop(true).await;
    running.await.unwrap().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[derive(Debug, serde::Deserialize)]
struct Tenant {
    #[allow(dead_code, reason = "only its absence matters")]
    tenant: String,
}

/// Regression: a `Claims<T>` refusal after the Guard allowed the request answered 401 without
/// an audit event. (A process-wide subscriber: a thread-scoped one can miss events whose
/// callsite another test registered first.)
#[actix_web::test]
async fn claims_mismatch_is_audited() {
    const PATH: &str = "/claims-audited-here";
    let logs = tokenward_testsupport::LogCapture::global();
    async fn handler(Claims(_t): Claims<Tenant>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }
    let fixture = Fixture::new().await;
    let app = test::init_service(
        App::new().service(
            web::resource(PATH)
                .wrap(GuardMiddleware::new(fixture.guard.clone()))
                .route(web::get().to(handler)),
        ),
    )
    .await;
    let token = fixture.token("bob");
    let req = test::TestRequest::get()
        .uri(PATH)
        .peer_addr("203.0.113.77:40000".parse().unwrap())
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let res = test::call_service(&app, req).await;
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
