//! The demo's whole lifecycle over real HTTP, as a readable transcript.
//!
//! [`run`] talks to one or two running demo instances (two = the same `--keys` and
//! `--redis`, which must behave as one service) and walks through: the JWKS, login, `/me`,
//! a tampered token, the admin scope (403), parallel refreshes (one successor), an
//! idempotent retry (the identical response), reuse after the grace window (the family and
//! its access tokens die), logout, logout-all, the subject limit (429 + `RateLimit`
//! headers) and the failure ban (429 + `Retry-After`). With two instances the requests of
//! each step are split between them.
//!
//! Every step prints what it expects and what it got (status, key headers, the body with
//! tokens shortened). The [`Report`] says whether every step behaved; the
//! `tokenward-demo-lifecycle` binary exits non-zero when one did not.
//!
//! The failure ban is the last step: afterwards the client address is banned for the
//! server's `--ban-bantime`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::client::{Client, ClientError, Reply};

/// What the driver needs to know about the servers it drives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// One or two base URLs (`http://127.0.0.1:8080`).
    pub urls: Vec<String>,
    /// The servers' `--refresh-grace`.
    pub refresh_grace: Duration,
    /// The servers' `--subject-limit`.
    pub subject_limit: u32,
    /// The servers' `--ban-maxretry`.
    pub ban_maxretry: u32,
}

impl Options {
    /// Options for `urls` with the servers' default settings.
    pub fn new(urls: Vec<String>) -> Options {
        Options {
            urls,
            refresh_grace: Duration::from_secs(30),
            subject_limit: 300,
            ban_maxretry: 5,
        }
    }

    /// The servers' `--refresh-grace`.
    #[must_use]
    pub fn refresh_grace(mut self, grace: Duration) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// The servers' `--subject-limit`.
    #[must_use]
    pub fn subject_limit(mut self, limit: u32) -> Self {
        self.subject_limit = limit;
        self
    }

    /// The servers' `--ban-maxretry`.
    #[must_use]
    pub fn ban_maxretry(mut self, maxretry: u32) -> Self {
        self.ban_maxretry = maxretry;
        self
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// Steps run.
    pub steps: usize,
    /// Checks run.
    pub checks: usize,
    /// Every check that did not give the expected result (or why the run stopped).
    pub failures: Vec<String>,
}

impl Report {
    /// Whether every step behaved.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.checks > 0
    }
}

/// Runs the lifecycle against `options.urls`, printing the transcript to stdout.
pub async fn run(options: &Options) -> Report {
    let mut driver = Driver {
        client: Client::new(),
        a: options.urls.first().cloned().unwrap_or_default(),
        b: options
            .urls
            .get(1)
            .or(options.urls.first())
            .cloned()
            .unwrap_or_default(),
        two: options.urls.len() > 1,
        options: options.clone(),
        report: Report::default(),
    };
    if driver.two {
        println!(
            "tokenward-demo lifecycle: A = {}, B = {} (same keys, same Redis: one service)\n",
            driver.a, driver.b
        );
    } else {
        println!("tokenward-demo lifecycle against {}\n", driver.a);
    }
    if let Err(stop) = driver.script().await {
        println!("  => STOPPED: {stop}\n");
        driver.report.failures.push(format!("stopped: {stop}"));
    }
    let report = driver.report;
    if report.ok() {
        println!(
            "All {} steps ({} checks) gave the expected result.",
            report.steps, report.checks
        );
    } else {
        println!(
            "{} of {} checks did not give the expected result:",
            report.failures.len(),
            report.checks
        );
        for failure in &report.failures {
            println!("  - {failure}");
        }
    }
    report
}

/// Why the script cannot go on (a later step needs what this one should have produced).
type Stop = String;

/// A login's tokens.
#[derive(Debug, Clone)]
struct Session {
    access: String,
    refresh: String,
}

struct Driver {
    client: Client,
    a: String,
    b: String,
    two: bool,
    options: Options,
    report: Report,
}

/// Which instance a request goes to.
#[derive(Debug, Clone, Copy)]
enum On {
    A,
    B,
}

impl Driver {
    async fn script(&mut self) -> Result<(), Stop> {
        self.jwks().await?;
        let alice = self
            .login_step("Log in as alice", "alice", "alice-password", On::A)
            .await?;
        let sid = self.me_step(&alice).await?;
        self.tampered(&alice).await?;
        self.admin_forbidden(&alice).await?;
        let successor = self.parallel_refresh(&alice, &sid).await?;
        let latest = self.idempotent_retry(&successor).await?;
        self.reuse_after_grace(&successor, &latest).await?;
        self.logout().await?;
        self.logout_all().await?;
        self.subject_limit().await?;
        let admin = self.admin().await?;
        self.failure_ban(&admin).await?;
        Ok(())
    }

    // ---- steps ---------------------------------------------------------------------

    async fn jwks(&mut self) -> Result<(), Stop> {
        self.begin("Fetch the public keys: GET /.well-known/jwks.json");
        let r = self.get(On::A, "/.well-known/jwks.json", None).await?;
        let keys = r.json().get("keys").and_then(Value::as_array).cloned();
        let public_only = keys.as_ref().is_some_and(|keys| {
            !keys.is_empty()
                && keys
                    .iter()
                    .all(|k| k.get("d").is_none() && k.get("k").is_none())
        });
        self.expect(
            "200, at least one key, public parts only (no `d`, no `k`)",
            &r,
            &["content-type", "cache-control"],
            r.status == 200 && public_only,
        );
        Ok(())
    }

    async fn me_step(&mut self, alice: &Session) -> Result<String, Stop> {
        self.begin(&format!(
            "GET /me with alice's access token{}",
            self.where_("", On::B)
        ));
        let r = self.get(On::B, "/me", Some(&alice.access)).await?;
        let body = r.json();
        let sid = body.get("sid").and_then(Value::as_str).map(str::to_owned);
        let ok = r.status == 200
            && body.get("sub") == Some(&json!("alice"))
            && sid.as_deref().is_some_and(|s| !s.is_empty())
            && body.get("jti").and_then(Value::as_str).is_some()
            && body.get("exp").and_then(Value::as_u64).is_some()
            && body.get("scopes") == Some(&json!([]))
            && r.header("ratelimit").is_some();
        self.expect(
            "200 {sub: alice, sid: the refresh family, jti, exp, scopes: []} + RateLimit headers",
            &r,
            &["ratelimit", "ratelimit-policy"],
            ok,
        );
        sid.ok_or_else(|| "GET /me gave no sid".to_owned())
    }

    async fn tampered(&mut self, alice: &Session) -> Result<(), Stop> {
        self.begin("Tampered token: alice's token with `sub` changed to admin, signature kept");
        let forged = tamper(&alice.access).ok_or("the access token is not a JWS")?;
        let r = self.get(On::A, "/me", Some(&forged)).await?;
        let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
        self.expect(
            "401, WWW-Authenticate: Bearer error=\"invalid_token\", the token not echoed",
            &r,
            &["www-authenticate"],
            r.status == 401
                && challenge.contains("error=\"invalid_token\"")
                && !r.text().contains(&forged),
        );
        let r = self.get(On::B, "/me", None).await?;
        self.expect(
            "no token at all: 401 with a bare `Bearer` challenge",
            &r,
            &["www-authenticate"],
            r.status == 401 && r.header("www-authenticate") == Some("Bearer"),
        );
        Ok(())
    }

    async fn admin_forbidden(&mut self, alice: &Session) -> Result<(), Stop> {
        self.begin("Admin scope: GET /admin/stats with alice's token (no `admin` scope)");
        let r = self.get(On::A, "/admin/stats", Some(&alice.access)).await?;
        self.expect(
            "403 insufficient_scope",
            &r,
            &["www-authenticate"],
            r.status == 403 && r.str_field("error").as_deref() == Some("insufficient_scope"),
        );
        Ok(())
    }

    async fn parallel_refresh(&mut self, alice: &Session, sid: &str) -> Result<Session, Stop> {
        const PARALLEL: usize = 4;
        self.begin(&format!(
            "Parallel refreshes: {PARALLEL} POST /refresh with the same refresh token at once{} \
             (a mobile app resuming)",
            if self.two {
                ", split between A and B"
            } else {
                ""
            }
        ));
        let mut tasks = Vec::with_capacity(PARALLEL);
        for i in 0..PARALLEL {
            let on = if i % 2 == 0 { On::A } else { On::B };
            let url = format!("{}/refresh", self.base(on));
            let client = self.client.clone();
            let body = json!({ "refresh_token": alice.refresh });
            tasks.push(tokio::spawn(async move {
                client.post(&url, &[], Some(&body)).await
            }));
        }
        let mut replies = Vec::with_capacity(PARALLEL);
        for task in tasks {
            match task.await {
                Ok(Ok(reply)) => replies.push(reply),
                Ok(Err(e)) => return Err(format!("POST /refresh got no response: {e}")),
                Err(e) => return Err(format!("POST /refresh task failed: {e}")),
            }
        }
        let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
        let mut successors: Vec<String> = replies
            .iter()
            .filter_map(|r| r.str_field("refresh_token"))
            .collect();
        successors.sort();
        successors.dedup();
        let ok = statuses.iter().all(|s| *s == 200)
            && successors.len() == 1
            && successors.first() != Some(&alice.refresh);
        let got = format!(
            "statuses {statuses:?}; {} distinct successor(s): {}",
            successors.len(),
            successors
                .iter()
                .map(|s| abbreviate(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.expect_text(
            "all 200, and exactly one successor refresh token (the grace window)",
            &got,
            ok,
        );
        let (Some(successor), Some(access)) = (
            successors.first().cloned(),
            replies.iter().find_map(|r| r.str_field("access_token")),
        ) else {
            return Err("no successor refresh token".into());
        };
        let r = self.get(On::B, "/me", Some(&access)).await?;
        self.expect(
            "a new access token works, in the same session (sid unchanged)",
            &r,
            &[],
            r.status == 200 && r.str_field("sid").as_deref() == Some(sid),
        );
        Ok(Session {
            access,
            refresh: successor,
        })
    }

    async fn idempotent_retry(&mut self, current: &Session) -> Result<Session, Stop> {
        self.begin(
            "Idempotent retry: POST /refresh with Idempotency-Key: retry-42, then the same \
             request again (a retry after a lost response)",
        );
        let key = [("idempotency-key", "retry-42")];
        let body = json!({ "refresh_token": current.refresh });
        let first = self.post(On::A, "/refresh", &key, Some(&body)).await?;
        self.expect(
            "200 with a new refresh token",
            &first,
            &[],
            first.status == 200
                && first
                    .str_field("refresh_token")
                    .is_some_and(|t| t != current.refresh),
        );
        let retry = self.post(On::B, "/refresh", &key, Some(&body)).await?;
        let identical = retry.status == 200
            && first.str_field("refresh_token") == retry.str_field("refresh_token")
            && first.str_field("access_token") == retry.str_field("access_token");
        self.expect(
            &format!(
                "the retry{}: 200 with the identical response (same refresh and access token)",
                self.where_("", On::B)
            ),
            &retry,
            &[],
            identical,
        );
        match (
            first.str_field("access_token"),
            first.str_field("refresh_token"),
        ) {
            (Some(access), Some(refresh)) => Ok(Session { access, refresh }),
            _ => Err("the idempotent refresh gave no tokens".into()),
        }
    }

    async fn reuse_after_grace(
        &mut self,
        previous: &Session,
        latest: &Session,
    ) -> Result<(), Stop> {
        let wait = self.options.refresh_grace + Duration::from_secs(1);
        self.begin(&format!(
            "Reuse after the grace window: wait {}s, then present the already-rotated refresh \
             token again (what a thief replaying a stolen token does)",
            wait.as_secs()
        ));
        tokio::time::sleep(wait).await;
        let body = json!({ "refresh_token": previous.refresh });
        let r = self.post(On::B, "/refresh", &[], Some(&body)).await?;
        self.expect(
            "401 {\"error\":\"invalid_grant\"}: reuse detected, the whole family is revoked",
            &r,
            &[],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
        );
        let body = json!({ "refresh_token": latest.refresh });
        let r = self.post(On::A, "/refresh", &[], Some(&body)).await?;
        self.expect(
            "the family's newest refresh token is dead too: 401 invalid_grant",
            &r,
            &[],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
        );
        let r = self.get(On::B, "/me", Some(&latest.access)).await?;
        self.expect(
            "and so are its access tokens (session revoked): GET /me 401 invalid_token",
            &r,
            &["www-authenticate"],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_token"),
        );
        Ok(())
    }

    async fn logout(&mut self) -> Result<(), Stop> {
        let laptop = self
            .login_step(
                "Logout: alice logs in on a laptop",
                "alice",
                "alice-password",
                On::A,
            )
            .await?;
        let phone = self
            .login_step("... and on a phone", "alice", "alice-password", On::B)
            .await?;
        self.begin("POST /logout with the laptop's access token");
        let bearer = format!("Bearer {}", laptop.access);
        let r = self
            .post(On::B, "/logout", &[("authorization", &bearer)], None)
            .await?;
        self.expect("204", &r, &[], r.status == 204);
        let r = self.get(On::A, "/me", Some(&laptop.access)).await?;
        self.expect(
            "the laptop's access token is revoked: 401",
            &r,
            &["www-authenticate"],
            r.status == 401,
        );
        let body = json!({ "refresh_token": laptop.refresh });
        let r = self.post(On::A, "/refresh", &[], Some(&body)).await?;
        self.expect(
            "the laptop's refresh token is revoked: 401 invalid_grant",
            &r,
            &[],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
        );
        let r = self.get(On::B, "/me", Some(&phone.access)).await?;
        self.expect(
            "the phone's session is untouched: 200",
            &r,
            &[],
            r.status == 200,
        );
        Ok(())
    }

    async fn logout_all(&mut self) -> Result<(), Stop> {
        let one = self
            .login_step(
                "Logout everywhere: bob logs in on one device",
                "bob",
                "bob-password",
                On::A,
            )
            .await?;
        let two = self
            .login_step("... and on another", "bob", "bob-password", On::B)
            .await?;
        self.begin("POST /logout-all with the first device's access token");
        let bearer = format!("Bearer {}", one.access);
        let r = self
            .post(On::A, "/logout-all", &[("authorization", &bearer)], None)
            .await?;
        self.expect("204", &r, &[], r.status == 204);
        for (name, session) in [("first", &one), ("second", &two)] {
            let r = self.get(On::B, "/me", Some(&session.access)).await?;
            self.expect(
                &format!("the {name} device's access token is revoked: 401"),
                &r,
                &[],
                r.status == 401,
            );
            let body = json!({ "refresh_token": session.refresh });
            let r = self.post(On::A, "/refresh", &[], Some(&body)).await?;
            self.expect(
                &format!("the {name} device's refresh token is revoked: 401 invalid_grant"),
                &r,
                &[],
                r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
            );
        }
        Ok(())
    }

    async fn subject_limit(&mut self) -> Result<(), Stop> {
        let carol = self
            .login_step(
                "Subject limit: carol logs in",
                "carol",
                "carol-password",
                On::A,
            )
            .await?;
        let limit = self.options.subject_limit;
        self.begin(&format!(
            "GET /me as carol as fast as possible{} (limit {limit} per minute per subject)",
            if self.two {
                ", alternating A and B"
            } else {
                ""
            }
        ));
        // The budget refills at `limit` per minute while the loop runs: on a slow machine a
        // few more requests may pass. Two instances that did not share the budget would let
        // about twice `limit` through.
        let started = std::time::Instant::now();
        let max = limit.saturating_mul(2);
        let mut allowed = 0u32;
        let mut limited = None;
        for i in 0..max {
            let on = if i % 2 == 0 { On::A } else { On::B };
            let r = self.get(on, "/me", Some(&carol.access)).await?;
            match r.status.as_u16() {
                200 => allowed += 1,
                _ => {
                    limited = Some(r);
                    break;
                }
            }
        }
        let refilled = started.elapsed().as_secs_f64() * f64::from(limit) / 60.0;
        // Whole requests refilled while the loop ran, plus one for rounding.
        // (A float-to-int `as` saturates; the value is small and non-negative.)
        let slack = refilled.ceil() as u32;
        match limited {
            Some(r) => {
                let ok = r.status == 429
                    && allowed >= 1
                    && allowed <= limit.saturating_add(slack).saturating_add(1)
                    && r.header("retry-after").is_some()
                    && r.header("ratelimit").is_some()
                    && r.header("ratelimit-policy").is_some();
                self.expect(
                    &format!(
                        "about {limit} × 200{}, then 429 with Retry-After, RateLimit, \
                         RateLimit-Policy (got {allowed} × 200 first)",
                        if self.two {
                            " across both instances (one shared budget)"
                        } else {
                            ""
                        }
                    ),
                    &r,
                    &["retry-after", "ratelimit", "ratelimit-policy"],
                    ok,
                );
            }
            None => self.expect_text(
                &format!("429 within {max} requests"),
                &format!("{allowed} × 200 and no 429"),
                false,
            ),
        }
        Ok(())
    }

    async fn admin(&mut self) -> Result<Session, Stop> {
        let admin = self
            .login_step(
                "Admin: log in as admin (scope `admin`)",
                "admin",
                "admin-password",
                On::B,
            )
            .await?;
        self.begin("GET /admin/stats with the admin's token");
        let r = self.get(On::A, "/admin/stats", Some(&admin.access)).await?;
        let body = r.json();
        let counted = ["logins", "refreshes", "reuse_detections", "logouts"]
            .iter()
            .all(|k| body.get(*k).and_then(Value::as_u64).is_some());
        self.expect(
            "200 with counters (logins, refreshes, reuse detections, logouts ...)",
            &r,
            &[],
            r.status == 200 && counted,
        );
        Ok(admin)
    }

    async fn failure_ban(&mut self, admin: &Session) -> Result<(), Stop> {
        let maxretry = self.options.ban_maxretry;
        self.begin(&format!(
            "Failure ban: wrong passwords for `mallory` until the client is banned \
             ({maxretry} failures; the tampered token counted too)"
        ));
        let mut refused = 0u32;
        let mut banned = None;
        for i in 0..maxretry.saturating_add(1) {
            let on = if i % 2 == 0 { On::A } else { On::B };
            let body = json!({ "username": "mallory", "password": format!("guess-{i}") });
            let r = self.post(on, "/login", &[], Some(&body)).await?;
            match r.status.as_u16() {
                401 => refused += 1,
                _ => {
                    banned = Some(r);
                    break;
                }
            }
        }
        match banned {
            Some(r) => self.expect(
                &format!("401 invalid_credentials (got {refused}), then 429 with Retry-After"),
                &r,
                &["retry-after"],
                refused >= 1 && r.status == 429 && r.header("retry-after").is_some(),
            ),
            None => self.expect_text(
                "a 429 after the failures",
                &format!("{refused} × 401 and no 429"),
                false,
            ),
        }
        let body = json!({ "username": "alice", "password": "alice-password" });
        let r = self.post(On::B, "/login", &[], Some(&body)).await?;
        self.expect(
            "the right password from the banned client: still 429 (refused before any \
             password check)",
            &r,
            &["retry-after"],
            r.status == 429,
        );
        let r = self.get(On::A, "/me", Some(&admin.access)).await?;
        self.expect(
            "a valid token from the banned client: 429 as well",
            &r,
            &["retry-after"],
            r.status == 429,
        );
        Ok(())
    }

    // ---- helpers -------------------------------------------------------------------

    async fn login_step(
        &mut self,
        title: &str,
        user: &str,
        password: &str,
        on: On,
    ) -> Result<Session, Stop> {
        self.begin(&format!(
            "{title}: POST /login {{\"username\":\"{user}\",...}}{}",
            self.where_("", on)
        ));
        let body = json!({ "username": user, "password": password });
        let r = self.post(on, "/login", &[], Some(&body)).await?;
        let session = match (r.str_field("access_token"), r.str_field("refresh_token")) {
            (Some(access), Some(refresh)) => Some(Session { access, refresh }),
            _ => None,
        };
        let ok = r.status == 200
            && session.is_some()
            && r.str_field("token_type").as_deref() == Some("Bearer")
            && r.json().get("expires_in").and_then(Value::as_u64).is_some();
        self.expect(
            "200 {access_token, refresh_token (twr_…), token_type: Bearer, expires_in}",
            &r,
            &["cache-control"],
            ok,
        );
        session.ok_or_else(|| format!("login as {user} gave no tokens"))
    }

    fn base(&self, on: On) -> &str {
        match on {
            On::A => &self.a,
            On::B => &self.b,
        }
    }

    fn where_(&self, prefix: &str, on: On) -> String {
        if !self.two {
            return String::new();
        }
        let name = match on {
            On::A => "A",
            On::B => "B",
        };
        format!("{prefix} (on {name})")
    }

    async fn get(&self, on: On, path: &str, bearer: Option<&str>) -> Result<Reply, Stop> {
        let url = format!("{}{path}", self.base(on));
        self.client
            .get(&url, bearer)
            .await
            .map_err(|e: ClientError| format!("GET {path}: {e}"))
    }

    async fn post(
        &self,
        on: On,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, Stop> {
        let url = format!("{}{path}", self.base(on));
        self.client
            .post(&url, headers, body)
            .await
            .map_err(|e| format!("POST {path}: {e}"))
    }

    fn begin(&mut self, title: &str) {
        self.report.steps += 1;
        println!("[{}] {title}", self.report.steps);
    }

    fn expect(&mut self, expected: &str, reply: &Reply, headers: &[&str], ok: bool) {
        let mut got = format!("{} {}", reply.status.as_u16(), show_body(reply));
        for name in headers {
            if let Some(value) = reply.header(name) {
                got.push_str(&format!("\n            {name}: {value}"));
            }
        }
        self.expect_text(expected, &got, ok);
    }

    fn expect_text(&mut self, expected: &str, got: &str, ok: bool) {
        self.report.checks += 1;
        println!("    expect: {expected}");
        println!("    got:    {got}");
        if ok {
            println!("    => as expected\n");
        } else {
            println!("    => UNEXPECTED\n");
            self.report.failures.push(format!(
                "step {}: expected {expected}; got {}",
                self.report.steps,
                got.replace('\n', " ")
            ));
        }
    }
}

/// The body for the transcript: JSON with tokens shortened, at most 300 characters.
fn show_body(reply: &Reply) -> String {
    if reply.body.is_empty() {
        return "(no body)".to_owned();
    }
    let text = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(mut json) => {
            shorten_tokens(&mut json);
            json.to_string()
        }
        Err(_) => reply.text(),
    };
    if text.chars().count() > 300 {
        let head: String = text.chars().take(300).collect();
        format!("{head}…")
    } else {
        text
    }
}

fn shorten_tokens(value: &mut Value) {
    match value {
        Value::String(s) if s.len() > 40 && (s.starts_with("eyJ") || s.starts_with("twr_")) => {
            *s = abbreviate(s);
        }
        Value::Array(items) => items.iter_mut().for_each(shorten_tokens),
        Value::Object(map) => map.values_mut().for_each(shorten_tokens),
        _ => {}
    }
}

/// `eyJhbGciOiJFZERTQSIs…(612 bytes)`.
fn abbreviate(token: &str) -> String {
    let head: String = token.chars().take(20).collect();
    format!("{head}…({} bytes)", token.len())
}

/// `token` with its payload's `sub` changed to `admin` and the signature kept.
fn tamper(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let mut json: Value = serde_json::from_str(&claims).ok()?;
    json.as_object_mut()?
        .insert("sub".to_owned(), Value::String("admin".to_owned()));
    let forged = URL_SAFE_NO_PAD.encode(json.to_string());
    Some(format!("{header}.{forged}.{signature}"))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    #[test]
    fn tampering_keeps_header_and_signature() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","jti":"x"}"#);
        let token = format!("hdr.{payload}.sig");
        let forged = tamper(&token).unwrap();
        let parts: Vec<&str> = forged.split('.').collect();
        assert_eq!((parts[0], parts[2]), ("hdr", "sig"));
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "admin");
        assert_eq!(tamper("not-a-jws"), None);
    }

    #[test]
    fn tokens_are_shortened_in_the_transcript() {
        let mut json = json!({
            "access_token": format!("eyJ{}", "a".repeat(100)),
            "refresh_token": format!("twr_{}", "b".repeat(64)),
            "token_type": "Bearer",
        });
        shorten_tokens(&mut json);
        assert_eq!(
            json["access_token"],
            format!("eyJ{}…(103 bytes)", "a".repeat(17))
        );
        assert_eq!(json["token_type"], "Bearer");
        assert!(!json.to_string().contains(&"b".repeat(30)));
    }
}
