//! The ring `CryptoProvider` for jsonwebtoken: installed as the process-wide provider, it signs
//! and verifies for `jsonwebtoken::encode`/`decode`.
//!
//! `cargo xtask ci` runs this with neither jsonwebtoken backend (the default build), with
//! `rust_crypto` only, and with both (`--all-features`): installing ours works in every
//! configuration.

use crate::common::*;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, TokenIssuer};

fn der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

/// jsonwebtoken's decoding key for a public key file, through tokenward's JWK of it.
fn decoding_key(alg: Algorithm, public_pem: &str) -> DecodingKey {
    let jwk = Key::from_pem("k", alg, public_pem.as_bytes())
        .unwrap()
        .public_jwk()
        .unwrap();
    DecodingKey::from_jwk(&jwk).unwrap()
}

#[test]
fn ring_provider_round_trips_through_jsonwebtoken() {
    assert!(tokenward_claims::crypto::install_provider());
    // Idempotent.
    assert!(tokenward_claims::crypto::install_provider());

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
            decoding_key(Algorithm::ES256, P256_PUBLIC),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(&der(ED_PRIVATE)),
            decoding_key(Algorithm::EdDSA, ED_PUBLIC),
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
    tokenward_claims::crypto::install_provider();
    let keys =
        KeySet::single(Key::from_pem("ed", Algorithm::EdDSA, ED_PRIVATE.as_bytes()).unwrap());
    let issuer = TokenIssuer::builder(keys, ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let token = issuer.issue(&AccessToken::new("alice")).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[AUD]);
    v.set_issuer(&[ISS]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &token.token,
        &decoding_key(Algorithm::EdDSA, ED_PUBLIC),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims["jti"], token.claims.jti.clone().unwrap());
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.kid.as_deref(), Some("ed"));
}

/// jsonwebtoken's `rust_crypto` backend can panic on a short Ed25519 JWK; through the ring
/// provider it is an error.
#[test]
fn a_short_ed25519_jwk_is_an_error_through_the_provider() {
    tokenward_claims::crypto::install_provider();
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[7u8; 31])}))
            .unwrap();
    let key = DecodingKey::from_jwk(&jwk).unwrap();
    let token = forge(&header("EdDSA", "e"), &claims(json!({})), &signers().ed);
    let mut strict = Validation::new(Algorithm::EdDSA);
    strict.validate_exp = false;
    strict.set_audience(&[AUD]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &strict).is_err());
}
