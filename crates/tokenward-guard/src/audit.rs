//! Audit events: one structured `tracing` event per authentication decision.
//!
//! Target `tokenward::audit`. Fields:
//!
//! | field | meaning |
//! |---|---|
//! | `decision` | `allow`, `allow_degraded` (a check skipped under fail-open), `deny`, `failure` (recorded outside the Guard, e.g. a wrong password), `store_error` |
//! | `reason` | `ok`, a rejection class (`expired`, `signature`, ...), a revocation rule (`token`, `session`, `subject`), `missing_token`, `malformed_header`, `insufficient_scope`, `rate_limited`, `banned`, `no_client_address`, or the check that failed (`revocation`, `subject_limit`, `ban`, `ban_record`); for `allow_degraded`, every skipped check, comma-separated (`revocation,subject_limit,ban`) |
//! | `status` | the HTTP status the adapters answer with |
//! | `jti`, `sub`, `sid`, `kid`, `iss` | from the verified token (empty when there is none) |
//! | `token_fp` | for tokens that failed verification: the first 12 hex digits of the token's SHA-256 — enough to correlate, useless to replay |
//! | `client_ip`, `method`, `path` | the request (the path never includes the query string; method and path are cut to 16 and 256 bytes) |
//! | `latency_us` | time spent in the Guard |
//!
//! Allowed requests are logged at `INFO`, everything else at `WARN`. The token itself is
//! never logged. Each allowed or refused decision also counts in
//! `tokenward_decisions_total` (and its skipped checks in `tokenward_degraded_total`; see
//! [`tokenward_core::metrics`]); inside [`Guard::authenticate`](crate::Guard::authenticate)
//! the events are emitted within its `tokenward.authenticate` span.

use std::fmt::Write as _;
use std::time::Instant;

use tokenward_claims::Verified;
use tokenward_core::{StoreError, metrics};

use crate::authenticated::Authenticated;
use crate::check::Check;
use crate::denial::Denial;
use crate::guard::CustomClaims;
use crate::observe;
use crate::request::AuthRequest;

/// The audit target.
pub const TARGET: &str = "tokenward::audit";

/// A short, non-reversible fingerprint of a secret (a token, a refresh token): the first
/// 12 hex digits of its SHA-256. Log this instead of the secret.
///
/// ```
/// let fp = tokenward_guard::fingerprint("eyJhbGciOi...");
/// assert_eq!(fp.len(), 12);
/// assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
/// ```
pub fn fingerprint(secret: &str) -> String {
    fingerprint_bytes(secret.as_bytes())
}

/// [`fingerprint`] of bytes that need not be UTF-8 (an HMAC secret).
pub(crate) fn fingerprint_bytes(secret: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret);
    let mut out = String::with_capacity(12);
    for byte in digest.as_ref().iter().take(6) {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The request's method and path are the client's words: logged (escaped by the
/// formatter) but never longer than these many bytes.
const MAX_METHOD: usize = 16;
const MAX_PATH: usize = 256;

/// `s` cut to at most `max` bytes, on a character boundary.
fn capped(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The request's method and path as logged (and put on spans): cut to their caps.
pub(crate) fn capped_request<'a>(req: &AuthRequest<'a>) -> (&'a str, &'a str) {
    (capped(req.method, MAX_METHOD), capped(req.path, MAX_PATH))
}

fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

pub(crate) fn allowed(req: &AuthRequest<'_>, auth: &Authenticated, started: Instant) {
    observe::decision(metrics::ALLOWED, metrics::CLASS_NONE);
    observe::degraded(&auth.degraded);
    let c = &auth.verified.claims;
    if auth.degraded.is_empty() {
        let (decision, reason) = ("allow", "ok");
        tracing::info!(
            target: TARGET,
            decision,
            reason,
            status = 200u16,
            jti = c.jti.as_deref().unwrap_or_default(),
            sub = c.sub.as_deref().unwrap_or_default(),
            sid = c.sid.as_deref().unwrap_or_default(),
            kid = auth.verified.kid.as_str(),
            iss = c.iss.as_deref().unwrap_or_default(),
            client_ip = %req.client_ip,
            method = capped(req.method, MAX_METHOD),
            path = capped(req.path, MAX_PATH),
            latency_us = micros(started),
            "authenticated"
        );
    } else {
        // Every skipped check, comma-separated (`revocation,subject_limit,ban`).
        let reason = auth
            .degraded
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let decision = "allow_degraded";
        tracing::warn!(
            target: TARGET,
            decision,
            reason = reason.as_str(),
            status = 200u16,
            jti = c.jti.as_deref().unwrap_or_default(),
            sub = c.sub.as_deref().unwrap_or_default(),
            sid = c.sid.as_deref().unwrap_or_default(),
            kid = auth.verified.kid.as_str(),
            iss = c.iss.as_deref().unwrap_or_default(),
            client_ip = %req.client_ip,
            method = capped(req.method, MAX_METHOD),
            path = capped(req.path, MAX_PATH),
            latency_us = micros(started),
            "authenticated without a check (store unavailable, failure policy open)"
        );
    }
}

pub(crate) fn denied(
    req: &AuthRequest<'_>,
    denial: &Denial,
    verified: Option<&Verified<CustomClaims>>,
    unverified_token: Option<&str>,
    started: Instant,
) {
    observe::decision(metrics::DENIED, denial.class());
    let c = verified.map(|v| &v.claims);
    let get = |f: fn(&tokenward_claims::RegisteredClaims) -> Option<&String>| {
        c.and_then(f).map_or("", String::as_str)
    };
    tracing::warn!(
        target: TARGET,
        decision = "deny",
        reason = denial.reason(),
        status = denial.status(),
        jti = get(|c| c.jti.as_ref()),
        sub = get(|c| c.sub.as_ref()),
        sid = get(|c| c.sid.as_ref()),
        kid = verified.map_or("", |v| v.kid.as_str()),
        iss = get(|c| c.iss.as_ref()),
        token_fp = unverified_token.map(fingerprint).unwrap_or_default(),
        client_ip = %req.client_ip,
        method = capped(req.method, MAX_METHOD),
        path = capped(req.path, MAX_PATH),
        latency_us = micros(started),
        "request refused"
    );
}

pub(crate) fn failure(req: &AuthRequest<'_>, reason: &'static str, started: Instant) {
    tracing::warn!(
        target: TARGET,
        decision = "failure",
        reason,
        status = 401u16,
        client_ip = %req.client_ip,
        method = capped(req.method, MAX_METHOD),
        path = capped(req.path, MAX_PATH),
        latency_us = micros(started),
        "authentication failure recorded"
    );
}

pub(crate) fn store_error(check: Check, error: &StoreError) {
    tracing::warn!(
        target: TARGET,
        decision = "store_error",
        reason = check.as_str(),
        error_kind = ?error.kind(),
        error = %error,
        "a store could not answer"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_words_are_capped_on_char_boundaries() {
        assert_eq!(capped("/short", MAX_PATH), "/short");
        let long = "/".repeat(10_000);
        assert_eq!(capped(&long, MAX_PATH).len(), MAX_PATH);
        // A 3-byte character straddling the cap is dropped whole.
        let s = format!("{}€", "a".repeat(MAX_PATH - 1));
        assert_eq!(capped(&s, MAX_PATH), "a".repeat(MAX_PATH - 1));
    }

    #[test]
    fn fingerprint_is_a_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea...
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
    }
}
