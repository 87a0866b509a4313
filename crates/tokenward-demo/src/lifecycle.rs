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

mod steps;

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
