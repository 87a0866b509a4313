#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `RemoteKeySet` against a real local HTTP server the tests control.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Reply, TestServer, jwks, signer};
use tokenward_claims::{
    AccessToken, IssuerRouter, KeyResolver, KeySet, RejectionClass, TokenIssuer, ValidationPolicy,
    Validator,
};
use tokenward_core::{ManualClock, UnixTime};
use tokenward_jwks::{JwksError, JwksSource, RemoteKeySet, RemoteKeySetBuilder};

const ISSUER: &str = "https://auth.example.com";
const COOLDOWN: Duration = Duration::from_secs(30);

fn clock() -> ManualClock {
    ManualClock::new(UnixTime::from_secs(1_800_000_000))
}

fn builder(url: String, clock: &ManualClock) -> RemoteKeySetBuilder {
    RemoteKeySet::builder(JwksSource::url(url))
        .dangerous_allow_http(true)
        .clock(Arc::new(clock.clone()))
}

fn token(keys: &KeySet, clock: &ManualClock) -> String {
    TokenIssuer::builder(keys.clone(), ISSUER)
        .audience("api")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token
}

fn validator(remote: &RemoteKeySet, clock: &ManualClock) -> Validator {
    let policy = ValidationPolicy::builder()
        .issuer(ISSUER)
        .audience("api")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    Validator::new(policy, remote.clone())
}

/// What the Guard does: verify; on class `key`, refetch and retry once.
async fn verify(
    remote: &RemoteKeySet,
    validator: &Validator,
    token: &str,
) -> Result<(), RejectionClass> {
    match validator.verify(token) {
        Ok(_) => Ok(()),
        Err(r) if r.class() == RejectionClass::Key && remote.refetch_for_token(token).await => {
            validator.verify(token).map(|_| ()).map_err(|r| r.class())
        }
        Err(r) => Err(r.class()),
    }
}

#[tokio::test]
async fn rotation_is_picked_up_by_refetch_on_unknown_kid_within_the_cooldown() {
    let server = TestServer::start().await;
    let (k1, k2, k3) = (signer("k1"), signer("k2"), signer("k3"));
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    let clock = clock();
    let remote = builder(server.url("/jwks"), &clock).start().await.unwrap();
    let validator = validator(&remote, &clock);
    assert_eq!(server.hits("/jwks"), 1);
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // The issuer rotates in k2 (keeping k1): the first unknown kid refetches at once.
    server.set("/jwks", Reply::json(jwks(&[&k1, &k2])));
    let t2 = token(&k2, &clock);
    assert_eq!(
        validator.verify(&t2).unwrap_err().class(),
        RejectionClass::Key
    );
    assert_eq!(verify(&remote, &validator, &t2).await, Ok(()));
    assert_eq!(server.hits("/jwks"), 2);
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // Another rotation within the cooldown is not fetched...
    server.set("/jwks", Reply::json(jwks(&[&k2, &k3])));
    clock.advance(COOLDOWN - Duration::from_secs(1));
    let t3 = token(&k3, &clock);
    assert_eq!(
        verify(&remote, &validator, &t3).await,
        Err(RejectionClass::Key)
    );
    assert_eq!(server.hits("/jwks"), 2);
    assert_eq!(remote.stats().refused_refetches, 1);

    // ...but once the cooldown has passed.
    clock.advance(Duration::from_secs(1));
    assert_eq!(verify(&remote, &validator, &t3).await, Ok(()));
    assert_eq!(server.hits("/jwks"), 3);
    // k1 was removed by the issuer, so its tokens no longer verify.
    assert_eq!(
        validator.verify(&token(&k1, &clock)).unwrap_err().class(),
        RejectionClass::Key
    );
    assert_eq!(remote.stats().fetches, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_with_a_new_kid_cause_exactly_one_fetch() {
    let server = TestServer::start().await;
    let (k1, k2) = (signer("k1"), signer("k2"));
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    let clock = clock();
    let remote = builder(server.url("/jwks"), &clock).start().await.unwrap();
    let validator = Arc::new(validator(&remote, &clock));

    // The new key, served slowly so the requests pile up on the one fetch.
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1, &k2])).delay(Duration::from_millis(300)),
    );
    let t2 = Arc::new(token(&k2, &clock));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (remote, validator, t2) = (remote.clone(), Arc::clone(&validator), Arc::clone(&t2));
            tokio::spawn(async move { verify(&remote, &validator, &t2).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(
        server.hits("/jwks"),
        2,
        "the initial fetch and exactly one refetch"
    );
    assert_eq!(remote.stats().fetches, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_unknown_kids_cause_at_most_one_fetch_per_cooldown() {
    let server = TestServer::start().await;
    let k1 = signer("k1");
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    let clock = clock();
    let remote = builder(server.url("/jwks"), &clock).start().await.unwrap();

    let burst = |round: usize| {
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let remote = remote.clone();
                tokio::spawn(
                    async move { remote.refetch_for_kid(&format!("random-{round}-{i}")).await },
                )
            })
            .collect();
        async move {
            for task in tasks {
                assert!(!task.await.unwrap());
            }
        }
    };
    burst(0).await;
    assert_eq!(server.hits("/jwks"), 2, "one refetch for the whole burst");

    // Within the cooldown: none.
    clock.advance(COOLDOWN - Duration::from_secs(1));
    burst(1).await;
    assert_eq!(server.hits("/jwks"), 2);

    // Each new cooldown period: at most one.
    for round in 2..5 {
        clock.advance(COOLDOWN);
        burst(round).await;
        assert_eq!(server.hits("/jwks"), round + 1);
    }
    // Round 1 ran entirely within the cooldown, with no fetch to join: all refused.
    assert!(remote.stats().refused_refetches >= 1000);
    // Garbage tokens never fetch.
    for garbage in [
        "",
        "abc",
        "%%%.x.y",
        &"A".repeat(100_000),
        "eyJraWQiOjF9.e30.x",
    ] {
        assert!(!remote.refetch_for_token(garbage).await);
    }
    assert_eq!(server.hits("/jwks"), 5);
}

#[tokio::test]
async fn server_down_keeps_the_last_good_keys_until_max_staleness_then_a_typed_error() {
    let server = TestServer::start().await;
    let k1 = signer("k1");
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1])).header("cache-control", "max-age=600"),
    );
    let clock = clock();
    let remote = builder(server.url("/jwks"), &clock)
        .max_staleness(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let validator = validator(&remote, &clock);
    server.stop().await;

    // Past the TTL (600 s), the refresh fails: the last good keys keep working.
    clock.advance(Duration::from_secs(601));
    let err = remote.refresh().await.unwrap_err();
    assert!(
        matches!(err, JwksError::Http { status: None, .. }),
        "{err:?}"
    );
    let stats = remote.stats();
    assert!(stats.stale && !stats.unusable);
    assert_eq!(stats.consecutive_failures, 1);
    assert!(stats.last_error.is_some());
    assert!(remote.resolve(Some("k1")).is_some());
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // Just before TTL + max staleness: still working.
    clock.advance(Duration::from_secs(3600 - 2));
    assert!(remote.snapshot().is_ok());
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // Past it: no key resolves, verification fails with class `key`, snapshot says why.
    clock.advance(Duration::from_secs(1));
    match remote.snapshot() {
        Err(JwksError::Stale { age }) => assert_eq!(age, Duration::from_secs(600 + 3600)),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(remote.resolve(Some("k1")).is_none());
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Err(RejectionClass::Key)
    );
    let stats = remote.stats();
    assert!(stats.unusable);
    assert!(stats.consecutive_failures >= 2);
}

#[tokio::test]
async fn the_keys_come_back_when_the_server_does() {
    let server = TestServer::start().await;
    let k1 = signer("k1");
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    let clock = clock();
    let remote = builder(server.url("/jwks"), &clock).start().await.unwrap();
    server.set("/jwks", Reply::json("oops").status(503));
    clock.advance(Duration::from_secs(301));
    assert!(matches!(
        remote.refresh().await,
        Err(JwksError::Http {
            status: Some(503),
            ..
        })
    ));
    assert!(remote.stats().stale);
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    remote.refresh().await.unwrap();
    let stats = remote.stats();
    assert!(!stats.stale);
    assert_eq!(
        (stats.consecutive_failures, stats.failures, stats.fetches),
        (0, 1, 3)
    );
}

/// One fetch of `reply` with `configure`d limits: its result.
async fn fetch_once(
    reply: Reply,
    configure: impl FnOnce(RemoteKeySetBuilder) -> RemoteKeySetBuilder,
) -> Result<RemoteKeySet, JwksError> {
    let server = TestServer::start().await;
    server.set("/jwks", reply);
    let clock = clock();
    configure(builder(server.url("/jwks"), &clock))
        .start()
        .await
}

#[tokio::test]
async fn oversize_responses_are_refused_while_streaming() {
    let k1 = signer("k1");
    // Valid JSON (trailing whitespace), just too big.
    let big = format!("{}{}", jwks(&[&k1]), " ".repeat(300 * 1024));
    assert!(big.len() > 256 * 1024);
    for reply in [Reply::json(big.clone()), Reply::json(big.clone()).chunked()] {
        let chunked = reply.chunked;
        let err = fetch_once(reply, |b| b).await.unwrap_err();
        assert!(
            matches!(err, JwksError::TooLarge { limit: 262_144, .. }),
            "chunked={chunked}: {err:?}"
        );
    }
    // Within a raised cap the same document loads.
    let ok = fetch_once(Reply::json(big).chunked(), |b| {
        b.max_response_size(1024 * 1024)
    })
    .await;
    assert_eq!(ok.unwrap().stats().keys, 1);
    // And a small cap refuses a normal document.
    let err = fetch_once(
        Reply::json(format!("{}{}", jwks(&[&k1]), " ".repeat(2000))),
        |b| b.max_response_size(1024),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, JwksError::TooLarge { limit: 1024, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_responses_are_typed_errors() {
    type Expect = fn(&JwksError) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("not json", |e| matches!(e, JwksError::Malformed { .. })),
        ("", |e| matches!(e, JwksError::Malformed { .. })),
        ("[]", |e| matches!(e, JwksError::Malformed { .. })),
        (r#"{"keys": 5}"#, |e| {
            matches!(e, JwksError::Malformed { .. })
        }),
        (r#"{"keys": {"kty":"OKP"}}"#, |e| {
            matches!(e, JwksError::Malformed { .. })
        }),
        (r#"{"nokeys": []}"#, |e| {
            matches!(e, JwksError::Malformed { .. })
        }),
        (r#"{"keys": []}"#, |e| {
            matches!(e, JwksError::NoUsableKeys { skipped: 0, .. })
        }),
        (r#"{"keys": [1, "x", null, {}]}"#, |e| {
            matches!(e, JwksError::NoUsableKeys { skipped: 4, .. })
        }),
        (
            r#"{"keys": [{"kty":"oct","kid":"h","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#,
            |e| matches!(e, JwksError::NoUsableKeys { skipped: 1, .. }),
        ),
    ];
    for (body, expected) in cases {
        let err = fetch_once(Reply::json(*body), |b| b).await.unwrap_err();
        assert!(expected(&err), "{body:?}: {err:?}");
        assert!(
            !err.to_string().contains("not json"),
            "errors never echo the body"
        );
    }
}

#[tokio::test]
async fn unusable_keys_are_skipped_and_the_rest_load() {
    let good = signer("good");
    let good_jwk = serde_json::to_value(&good.public_jwks().keys[0]).unwrap();
    let x = good_jwk["x"].as_str().unwrap();
    let bad = serde_json::json!([
        // no kid
        { "kty": "OKP", "crv": "Ed25519", "x": x },
        // symmetric key in a public key set
        { "kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI" },
        // RSA without alg (RS* or PS*?)
        { "kty": "RSA", "kid": "rsa-no-alg", "n": "sXch", "e": "AQAB" },
        // OKP with an EC curve, EC with the Ed25519 curve, kty that does not fit alg
        { "kty": "OKP", "kid": "okp-p256", "crv": "P-256", "x": x },
        { "kty": "EC", "kid": "ec-ed", "crv": "Ed25519", "x": x, "y": x },
        { "kty": "OKP", "kid": "okp-es256", "crv": "Ed25519", "alg": "ES256", "x": x },
        { "kty": "EC", "kid": "ec-crv-mismatch", "crv": "P-384", "alg": "ES256", "x": x, "y": x },
        // encryption key, unknown alg, unknown kty, short Ed25519 key
        { "kty": "OKP", "kid": "enc", "crv": "Ed25519", "use": "enc", "x": x },
        { "kty": "OKP", "kid": "weird-alg", "crv": "Ed25519", "alg": "XX999", "x": x },
        { "kty": "PQC", "kid": "future" },
        { "kty": "OKP", "kid": "short", "crv": "Ed25519", "x": "AAAA" },
        // duplicate kid (the first wins)
        good_jwk.clone(),
    ]);
    let mut keys = vec![good_jwk];
    keys.extend(bad.as_array().unwrap().iter().cloned());
    let body = serde_json::json!({ "keys": keys }).to_string();
    let clock = clock();
    let remote = fetch_once(Reply::json(body), |b| b).await.unwrap();
    assert_eq!(remote.stats().keys, 1);
    assert!(remote.resolve(Some("good")).is_some());
    let validator = validator(&remote, &clock);
    assert!(validator.verify(&token(&good, &clock)).is_ok());
    for kid in [
        "hmac",
        "rsa-no-alg",
        "okp-p256",
        "ec-ed",
        "okp-es256",
        "enc",
        "short",
    ] {
        assert!(remote.resolve(Some(kid)).is_none(), "{kid}");
    }
}

#[tokio::test]
async fn slow_responses_time_out_within_the_limit() {
    let k1 = signer("k1");
    let slow_head = Reply::json(jwks(&[&k1])).delay(Duration::from_secs(30));
    let slow_body = Reply::json(jwks(&[&k1])).body_delay(Duration::from_secs(30));
    let slow_chunks = Reply::json(jwks(&[&k1]))
        .chunked()
        .body_delay(Duration::from_secs(30));
    for reply in [slow_head, slow_body, slow_chunks] {
        let started = Instant::now();
        let err = fetch_once(reply, |b| b.request_timeout(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, JwksError::Timeout { timeout, .. } if timeout == Duration::from_millis(300)),
            "{err:?}"
        );
        // Generous: the point is that nobody waits for the 30 s the server takes.
        assert!(started.elapsed() < Duration::from_secs(15));
    }
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_within_bounds() {
    let k1 = signer("k1");
    let cases = [
        (None, 300),                         // default TTL
        (Some("max-age=3600"), 3600),        // honoured
        (Some("public, max-age=5"), 60),     // raised to the minimum
        (Some("max-age=999999999"), 86_400), // capped at the maximum
        (Some("no-store"), 60),              // as short as allowed
    ];
    for (header, ttl) in cases {
        let mut reply = Reply::json(jwks(&[&k1]));
        if let Some(value) = header {
            reply = reply.header("cache-control", value);
        }
        let clock = clock();
        let server = TestServer::start().await;
        server.set("/jwks", reply);
        let remote = builder(server.url("/jwks"), &clock).start().await.unwrap();
        assert_eq!(
            remote.stats().expires_at,
            Some(UnixTime::from_secs(1_800_000_000 + ttl)),
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn oidc_discovery_finds_the_jwks_uri() {
    let server = TestServer::start().await;
    let k1 = signer("k1");
    let issuer = server.url("/tenant");
    server.set(
        "/tenant/.well-known/openid-configuration",
        Reply::json(
            serde_json::json!({ "issuer": issuer, "jwks_uri": server.url("/tenant/keys") })
                .to_string(),
        ),
    );
    server.set("/tenant/keys", Reply::json(jwks(&[&k1])));
    let clock = clock();
    let remote = RemoteKeySet::builder(JwksSource::oidc_issuer(issuer.clone()))
        .dangerous_allow_http(true)
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    assert!(remote.resolve(Some("k1")).is_some());
    // Refreshes reuse the discovered URI.
    clock.advance(Duration::from_secs(301));
    remote.refresh().await.unwrap();
    assert_eq!(server.hits("/tenant/.well-known/openid-configuration"), 1);
    assert_eq!(server.hits("/tenant/keys"), 2);
    let stats = remote.stats();
    assert_eq!((stats.discoveries, stats.fetches), (1, 2));

    // After a failed JWKS fetch, discovery runs again (the issuer may have moved its keys).
    server.set("/tenant/keys", Reply::json("gone").status(404));
    assert!(remote.refresh().await.is_err());
    server.set(
        "/tenant/.well-known/openid-configuration",
        Reply::json(
            serde_json::json!({ "issuer": issuer, "jwks_uri": server.url("/tenant/keys-v2") })
                .to_string(),
        ),
    );
    server.set("/tenant/keys-v2", Reply::json(jwks(&[&k1])));
    remote.refresh().await.unwrap();
    assert_eq!(server.hits("/tenant/keys-v2"), 1);
    assert_eq!(remote.stats().discoveries, 2);
}

#[tokio::test]
async fn oidc_discovery_errors() {
    let server = TestServer::start().await;
    let issuer = server.url("/iss");
    let keys = server.url("/keys");
    let cases: Vec<(serde_json::Value, &str)> = vec![
        // The document must name exactly the configured issuer (OIDC Discovery §4.3).
        (
            serde_json::json!({ "issuer": format!("{issuer}/"), "jwks_uri": keys }),
            "issuer",
        ),
        (
            serde_json::json!({ "issuer": "https://evil.example", "jwks_uri": keys }),
            "issuer",
        ),
        (serde_json::json!({ "jwks_uri": keys }), "issuer"),
        (serde_json::json!({ "issuer": issuer }), "jwks_uri"),
        (serde_json::json!({ "issuer": 7 }), "invalid type"),
    ];
    for (document, needle) in cases {
        server.set(
            "/iss/.well-known/openid-configuration",
            Reply::json(document.to_string()),
        );
        let err = RemoteKeySet::builder(JwksSource::oidc_issuer(issuer.clone()))
            .dangerous_allow_http(true)
            .start()
            .await
            .unwrap_err();
        match &err {
            JwksError::Discovery { reason, .. } => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{document}: expected Discovery, got {other:?}"),
        }
    }
    // Discovery happens on the first fetch, not at build.
    let remote = RemoteKeySet::builder(JwksSource::oidc_issuer("https://idp.example"))
        .build()
        .unwrap();
    assert!(matches!(remote.snapshot(), Err(JwksError::NotFetched)));
    assert_eq!(remote.stats().discoveries, 0);
}

#[tokio::test]
async fn plain_http_and_bad_settings_are_refused_at_build() {
    let insecure = RemoteKeySet::builder(JwksSource::url("http://idp.example/jwks")).build();
    assert!(matches!(insecure, Err(JwksError::InsecureUrl { .. })));
    let insecure = RemoteKeySet::builder(JwksSource::oidc_issuer("http://idp.example")).build();
    assert!(matches!(insecure, Err(JwksError::InsecureUrl { .. })));
    let url = || JwksSource::url("https://idp.example/jwks");
    let bad: Vec<(&str, RemoteKeySetBuilder)> = vec![
        (
            "ttl_bounds",
            RemoteKeySet::builder(url())
                .ttl_bounds(Duration::from_secs(600), Duration::from_secs(60)),
        ),
        (
            "ttl_bounds",
            RemoteKeySet::builder(url()).ttl_bounds(Duration::ZERO, Duration::from_secs(60)),
        ),
        (
            "default_ttl",
            RemoteKeySet::builder(url()).default_ttl(Duration::from_secs(10)),
        ),
        (
            "unknown_kid_cooldown",
            RemoteKeySet::builder(url()).unknown_kid_cooldown(Duration::ZERO),
        ),
        (
            "request_timeout",
            RemoteKeySet::builder(url()).request_timeout(Duration::ZERO),
        ),
        (
            "max_response_size",
            RemoteKeySet::builder(url()).max_response_size(10),
        ),
    ];
    for (setting, builder) in bad {
        match builder.build() {
            Err(JwksError::InvalidConfig { field, .. }) => assert_eq!(field, setting),
            other => panic!("{setting}: expected InvalidConfig, got {other:?}"),
        }
    }
    for bad_url in [
        "ftp://idp.example/x",
        "https://user:pw@idp.example/jwks",
        "jwks",
    ] {
        assert!(
            matches!(
                RemoteKeySet::builder(JwksSource::url(bad_url)).build(),
                Err(JwksError::InvalidUrl(_))
            ),
            "{bad_url}"
        );
    }
    // A valid HTTPS configuration builds without any I/O.
    let remote = RemoteKeySet::builder(url()).build().unwrap();
    assert_eq!(remote.stats().fetches, 0);
    assert!(remote.resolve(Some("k1")).is_none());
}

#[tokio::test]
async fn errors_never_carry_urls_query_strings_or_bodies() {
    let server = TestServer::start().await;
    server.set("/jwks", Reply::json("secret-body-text").status(500));
    let url = format!("{}?api_key=hunter2", server.url("/jwks"));
    let err = RemoteKeySet::builder(JwksSource::url(url))
        .dangerous_allow_http(true)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            JwksError::Http {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("secret-body"),
        "{shown}"
    );
    assert!(shown.contains("/jwks"));
}

#[tokio::test]
async fn each_issuer_has_its_own_key_set_and_keys_never_mix() {
    let server = TestServer::start().await;
    // Both issuers use the kid "k": a token of A must never verify as B.
    let (a, b) = (signer("k"), signer("k"));
    server.set("/a/jwks", Reply::json(jwks(&[&a])));
    server.set("/b/jwks", Reply::json(jwks(&[&b])));
    let clock = clock();
    let remote_a = builder(server.url("/a/jwks"), &clock)
        .start()
        .await
        .unwrap();
    let remote_b = builder(server.url("/b/jwks"), &clock)
        .start()
        .await
        .unwrap();
    let policy = |iss: &str| {
        ValidationPolicy::builder()
            .issuer(iss)
            .audience("api")
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
    };
    let router = IssuerRouter::new()
        .route(Validator::new(
            policy("https://a.example"),
            remote_a.clone(),
        ))
        .unwrap()
        .route(Validator::new(
            policy("https://b.example"),
            remote_b.clone(),
        ))
        .unwrap();
    let issue = |keys: &KeySet, iss: &str| {
        TokenIssuer::builder(keys.clone(), iss)
            .audience("api")
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
            .issue(&AccessToken::new("alice"))
            .unwrap()
            .token
    };
    assert!(router.verify(&issue(&a, "https://a.example")).is_ok());
    assert!(router.verify(&issue(&b, "https://b.example")).is_ok());
    // A's key signing a token that claims issuer B: B's validator has only B's keys.
    let forged = issue(&a, "https://b.example");
    assert_eq!(
        router.verify(&forged).unwrap_err().class(),
        RejectionClass::Signature
    );
}

#[tokio::test]
async fn the_background_refresher_picks_up_new_keys_and_stops_with_the_last_handle() {
    // Real time here: the refresher sleeps on tokio's timer until the (system) clock says the
    // key set is due. `max-age=1` with a 1 s minimum TTL makes that every half second.
    let server = TestServer::start().await;
    let (k1, k2) = (signer("k1"), signer("k2"));
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1])).header("cache-control", "max-age=1"),
    );
    let remote = RemoteKeySet::builder(JwksSource::url(server.url("/jwks")))
        .dangerous_allow_http(true)
        .ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .default_ttl(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1, &k2])).header("cache-control", "max-age=1"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while remote.resolve(Some("k2")).is_none() {
        assert!(Instant::now() < deadline, "the refresher never fetched k2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(remote.stats().failures, 0);

    // Dropping the last handle aborts the refresher: no more requests.
    let clone = remote.clone();
    drop(remote);
    let before = server.hits("/jwks");
    while server.hits("/jwks") == before {
        assert!(
            Instant::now() < deadline,
            "the refresher stopped while a clone exists"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(clone);
    // A request already on the wire may still arrive; nothing after that.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after_drop = server.hits("/jwks");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(server.hits("/jwks"), after_drop, "the refresher stopped");
}

#[tokio::test]
async fn https_with_rustls_on_ring_verifies_the_certificate() {
    // A throwaway CA and a server certificate for 127.0.0.1 that it signed.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server = TestServer::start_tls(
        vec![leaf.der().to_vec(), ca.der().to_vec()],
        leaf_key.serialize_der(),
    )
    .await;
    let k1 = signer("k1");
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    let url = format!("https://{}/jwks", server.addr);

    // Not trusted by the operating system: the handshake fails, no request is made.
    let err = RemoteKeySet::builder(JwksSource::url(url.clone()))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, JwksError::Http { status: None, .. }),
        "{err:?}"
    );
    assert_eq!(server.hits("/jwks"), 0);

    // Trusted through the private root.
    let remote = RemoteKeySet::builder(JwksSource::url(url))
        .add_root_certificate(ca.der().to_vec())
        .start()
        .await
        .unwrap();
    assert!(remote.resolve(Some("k1")).is_some());
    assert_eq!(server.hits("/jwks"), 1);
}
