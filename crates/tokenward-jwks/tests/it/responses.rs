//! Hostile and broken responses: oversize, malformed, unusable keys, slow; errors that never
//! carry URLs' secrets or bodies.

use std::time::{Duration, Instant};

use tokenward_claims::KeyResolver;
use tokenward_jwks::{JwksError, JwksSource, RemoteKeySet};

use crate::common::*;
use crate::server::{Reply, TestServer};

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
        // RSA without alg (bound to RS256) but with a far too short modulus
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
async fn keys_as_providers_publish_them_load() {
    // Entra ID's shape: no `alg`, with `x5t`, `x5c`, `issuer`, `cloud_instance_name`; beside
    // it Keycloak's encryption key. The alg-less key binds to its key type's algorithm.
    let good = signer("entra");
    let mut jwk = serde_json::to_value(&good.public_jwks().keys[0]).unwrap();
    let map = jwk.as_object_mut().unwrap();
    map.remove("alg");
    map.insert("x5t".into(), "abc".into());
    map.insert("x5c".into(), serde_json::json!(["MIIBIjAN"]));
    map.insert(
        "issuer".into(),
        "https://login.microsoftonline.com/{tenantid}/v2.0".into(),
    );
    map.insert("cloud_instance_name".into(), "microsoftonline.com".into());
    let enc = serde_json::json!({"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP",
        "n": "sXch", "e": "AQAB"});
    let body = serde_json::json!({ "keys": [jwk, enc] }).to_string();
    let clock = clock();
    let remote = fetch_once(Reply::json(body), |b| b).await.unwrap();
    assert_eq!(remote.stats().keys, 1);
    assert!(remote.resolve(Some("enc")).is_none());
    assert!(
        validator(&remote, &clock)
            .verify(&token(&good, &clock))
            .is_ok()
    );
    // The RSA default is configurable per key source, never to an HMAC algorithm.
    let err = tokenward_jwks::RemoteKeySet::builder(tokenward_jwks::JwksSource::url(
        "https://issuer.example/jwks",
    ))
    .rsa_alg(tokenward_claims::Algorithm::HS256)
    .build()
    .unwrap_err();
    assert!(
        matches!(
            err,
            JwksError::InvalidConfig {
                field: "rsa_alg",
                ..
            }
        ),
        "{err:?}"
    );
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
