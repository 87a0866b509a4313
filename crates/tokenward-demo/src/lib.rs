//! A reference API built on the tokenward crates, and a driver that walks its whole
//! lifecycle over real HTTP.
//!
//! The binary `tokenward-demo` serves:
//!
//! | route | what |
//! |---|---|
//! | `POST /login` `{"username","password"}` | 200 `{"access_token","refresh_token","token_type":"Bearer","expires_in"}`; 401 on wrong credentials (counted for the failure ban); 429 while the client is banned |
//! | `POST /refresh` `{"refresh_token"}` (+ optional `Idempotency-Key`) | 200, same shape; 401 `{"error":"invalid_grant"}` when invalid, revoked or reused (reuse revokes the family and its access tokens; invalid and reused tokens count for the failure ban, a parallel refresh within the grace window does not); 429 while the client is banned |
//! | `POST /logout` (Bearer) | 204: revokes this access token and its refresh family |
//! | `POST /logout-all` (Bearer) | 204: revokes every token and family of the subject |
//! | `GET /me` (Bearer) | 200 `{"sub","sid","jti","exp","scopes"}` |
//! | `GET /admin/stats` (Bearer, scope `admin`) | 200 counters since start; 403 without the scope |
//! | `GET /.well-known/jwks.json` | the public keys |
//! | `GET /metrics` | the process's metrics in the Prometheus text format, unauthenticated ([`telemetry`]; labels never carry a subject, a token id or an address) |
//!
//! Demo users: `alice`, `bob`, `carol` (password `<name>-password`) and `admin`
//! (`admin-password`, scope `admin`), kept as Argon2id hashes made at startup. Every Bearer
//! route runs the [`Guard`](tokenward_guard::Guard) (ban → verify → revocation → subject
//! limit); store outages answer 503 with `Retry-After` (fail closed), on the Bearer routes
//! and on login, refresh and logout alike. Two instances with the same `--keys` and
//! `--redis` behave as one service.
//!
//! [`lifecycle`] drives all of it with a real HTTP client and reports each step (the
//! `tokenward-demo-lifecycle` binary, run by `cargo xtask demo`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tokenward_demo::server::{DemoConfig, load_keys, spawn};
//! let mut config = DemoConfig::default();
//! config.bind = "127.0.0.1:0".parse()?;
//! let running = spawn(&config, load_keys(&config)?).await?;
//! let report = tokenward_demo::lifecycle::run(&tokenward_demo::lifecycle::Options::new(vec![running.url()])).await;
//! assert!(report.ok());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod keys;
pub mod lifecycle;
pub mod server;
pub mod telemetry;
mod users;
