//! Configuration and transport: settings refused at build, plain HTTP, OpenID Connect
//! discovery, one key set per issuer, HTTPS on rustls with the ring provider.

use std::sync::Arc;
use std::time::Duration;

use tokenward_claims::{IssuerRouter, KeyResolver, KeySet, RejectionClass};
use tokenward_jwks::{JwksError, JwksSource, RemoteKeySet, RemoteKeySetBuilder};

use crate::common::*;
use crate::server::{Reply, TestServer};

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
async fn oidc_discovery_finds_the_jwks_uri() {
    let server = TestServer::start().await;
    let k1 = signer("k1");
    let issuer = server.url("/tenant");
    // The issuer's discovery document, naming `keys` as its JWKS.
    let discovery = |keys: &str| {
        let document = serde_json::json!({ "issuer": issuer, "jwks_uri": server.url(keys) });
        server.set(
            "/tenant/.well-known/openid-configuration",
            Reply::json(document.to_string()),
        );
    };
    discovery("/tenant/keys");
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
    discovery("/tenant/keys-v2");
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
    let router = IssuerRouter::new()
        .route(validator_for(&remote_a, "https://a.example", &clock))
        .unwrap()
        .route(validator_for(&remote_b, "https://b.example", &clock))
        .unwrap();
    let issue = |keys: &KeySet, iss: &str| token_from(keys, iss, &clock);
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
