//! Audit events, as a subscriber sees them: every decision is audited, never with the token.
//!
//! A test binary of its own: it installs a process-wide `tracing` subscriber (see the test),
//! which in the binary of the other tests (`tests/it`) would format their audit events too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tokenward_claims::AccessToken;
use tokenward_guard::{AuthRequest, Credentials, GuardConfig, GuardStores};

#[path = "it/common.rs"]
mod common;

use common::{issuer, keys};

/// A process-wide subscriber: a subscriber scoped to this thread (`with_default`) can
/// miss events whose callsite another test thread registered first without one (the
/// interest is cached per callsite). Other tests of this binary log into the buffer too;
/// only this test's lines (its own path) are looked at.
#[test]
fn every_decision_is_audited_without_the_token() {
    const PATH: &str = "/audited-only-here";
    let logs = tokenward_testsupport::LogCapture::global();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keys = keys();
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice").sid("s1"))
        .unwrap()
        .token;
    fn req(creds: Credentials<'_>) -> AuthRequest<'_> {
        AuthRequest::new("GET", PATH, "192.0.2.1".parse().unwrap(), creds)
    }
    runtime.block_on(async {
        let guard = GuardConfig::new("iss", "aud")
            .guard_builder(keys.clone(), GuardStores::memory(), None)
            .unwrap()
            .build()
            .unwrap();
        guard
            .authenticate(&req(Credentials::Bearer(&token)))
            .await
            .unwrap();
        let tampered = format!("{token}x");
        let _ = guard
            .authenticate(&req(Credentials::Bearer(&tampered)))
            .await;
        let _ = guard.authenticate(&req(Credentials::Absent)).await;
    });
    let all = logs.contents();
    let lines: Vec<&str> = all
        .lines()
        .filter(|l| l.contains(&format!("path=\"{PATH}\"")))
        .collect();
    let out = lines.join("\n");
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("tokenward::audit"), "{out}");
    for field in [
        "decision=\"allow\"",
        "reason=\"ok\"",
        "sub=\"alice\"",
        "sid=\"s1\"",
        "kid=\"k1\"",
        "iss=\"iss\"",
        "client_ip=192.0.2.1",
        "method=\"GET\"",
        "path=\"/audited-only-here\"",
        "latency_us=",
        "jti=\"",
    ] {
        assert!(lines[0].contains(field), "{field} missing: {}", lines[0]);
    }
    assert!(lines[1].contains("decision=\"deny\""), "{}", lines[1]);
    assert!(lines[1].contains("token_fp=\""), "{}", lines[1]);
    assert!(
        lines[2].contains("reason=\"missing_token\""),
        "{}",
        lines[2]
    );
    // Neither the token nor its signature part appears anywhere.
    let signature = token.rsplit('.').next().unwrap();
    assert!(!all.contains(signature), "{all}");
}
