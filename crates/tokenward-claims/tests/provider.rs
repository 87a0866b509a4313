//! The ring `CryptoProvider` for jsonwebtoken, and tokenward's independence from
//! jsonwebtoken's backend features.
//!
//! `cargo xtask ci` runs this file with neither jsonwebtoken backend (the default build), with
//! `rust_crypto` only, and with both (`--all-features`): tokenward's own paths never touch
//! jsonwebtoken's process-wide provider, and installing ours works in every configuration.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, TokenIssuer, Validator};

fn der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

#[test]
fn tokenward_works_without_touching_jsonwebtoken_default_provider() {
    // No provider installed in this test: issuing and verifying must not call into
    // jsonwebtoken's crypto (which panics with both or neither backend enabled).
    let s = signers();
    for (kid, alg, signer) in [
        ("hs", "HS256", &s.hs),
        ("rsa", "RS256", &s.rsa),
        ("ec", "ES256", &s.ec),
        ("ed", "EdDSA", &s.ed),
    ] {
        let token = forge(&header(alg, kid), &claims(json!({})), signer);
        let clock = clock();
        let v = Validator::new(policy(&clock).build().unwrap(), verifier_keys(&s));
        assert!(v.verify(&token).is_ok(), "{alg}");
    }
}

#[test]
fn ring_provider_round_trips_through_jsonwebtoken() {
    assert!(tokenward_claims::crypto::install_ring_provider());
    // Idempotent.
    assert!(tokenward_claims::crypto::install_ring_provider());

    let validation = |alg| {
        let mut v = Validation::new(alg);
        v.set_audience(&[AUD]);
        v.set_issuer(&[ISS]);
        v
    };
    let payload = json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": 4_000_000_000u64});
    let cases: Vec<(Algorithm, EncodingKey, DecodingKey)> = vec![
        (
            Algorithm::HS256,
            EncodingKey::from_secret(HS_SECRET),
            DecodingKey::from_secret(HS_SECRET),
        ),
        (
            Algorithm::HS512,
            EncodingKey::from_secret(&[5u8; 64]),
            DecodingKey::from_secret(&[5u8; 64]),
        ),
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&der(RSA_PKCS1_PRIVATE)),
            DecodingKey::from_rsa_der(&der(RSA_PKCS1_PUBLIC)),
        ),
        (
            Algorithm::PS512,
            EncodingKey::from_rsa_der(&der(RSA_PRIVATE)),
            DecodingKey::from_rsa_der(&der(RSA_PKCS1_PUBLIC)),
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_der(&der(P256_PRIVATE)),
            {
                let jwk = Key::from_pem("k", Algorithm::ES256, P256_PUBLIC.as_bytes())
                    .unwrap()
                    .public_jwk()
                    .unwrap();
                DecodingKey::from_jwk(&jwk).unwrap()
            },
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(&der(ED_PRIVATE)),
            {
                let jwk = Key::from_pem("k", Algorithm::EdDSA, ED_PUBLIC.as_bytes())
                    .unwrap()
                    .public_jwk()
                    .unwrap();
                DecodingKey::from_jwk(&jwk).unwrap()
            },
        ),
    ];
    for (alg, ek, dk) in cases {
        let token = jsonwebtoken::encode(&Header::new(alg), &payload, &ek).unwrap();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &dk, &validation(alg)).unwrap();
        assert_eq!(data.claims["sub"], "alice", "{alg:?}");
        // Change one signature character well before the end (the last one may be the
        // character we would substitute).
        let i = token.len() - 10;
        let c = if &token[i..=i] == "A" { "B" } else { "A" };
        let tampered = format!("{}{c}{}", &token[..i], &token[i + 1..]);
        let _ = jsonwebtoken::decode::<serde_json::Value>(&tampered, &dk, &validation(alg))
            .expect_err("tampered token must not verify");
    }
    // Short HMAC secrets are refused by the provider too.
    let weak = EncodingKey::from_secret(b"short");
    assert!(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &payload, &weak).is_err());
    // JWK thumbprints use the provider's digest.
    let jwk = Key::from_pem("k", Algorithm::EdDSA, ED_PUBLIC.as_bytes())
        .unwrap()
        .public_jwk()
        .unwrap();
    assert_eq!(
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap()
            .len(),
        43
    );
}

#[test]
fn tokens_cross_verify_between_tokenward_and_jsonwebtoken() {
    tokenward_claims::crypto::install_ring_provider();
    let keys =
        KeySet::single(Key::from_pem("ed", Algorithm::EdDSA, ED_PRIVATE.as_bytes()).unwrap());
    let issuer = TokenIssuer::builder(keys, ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let token = issuer.issue(&AccessToken::new("alice")).unwrap();
    let jwk = Key::from_pem("ed", Algorithm::EdDSA, ED_PUBLIC.as_bytes())
        .unwrap()
        .public_jwk()
        .unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[AUD]);
    v.set_issuer(&[ISS]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &token.token,
        &DecodingKey::from_jwk(&jwk).unwrap(),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims["jti"], token.claims.jti.clone().unwrap());
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.kid.as_deref(), Some("ed"));
}
