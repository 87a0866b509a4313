#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The shared adapter table (`tokenward_guard::testkit`) over real HTTP: an actix-web
//! `HttpServer` on 127.0.0.1:0 and a reqwest client.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};
use tokenward_actix::{Auth, GuardMiddleware, MaybeAuth};
use tokenward_guard::testkit::{self, Fixture};

async fn me(Auth(auth): Auth) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "sub": auth.sub() }))
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
    let (guard, admin) = (fixture.guard.clone(), fixture.admin.clone());
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
