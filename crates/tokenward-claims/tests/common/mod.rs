//! Shared helpers for the tokenward-claims integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokenward_claims::{
    Algorithm, Key, KeySet, ManualClock, SharedKeySet, TokenIssuer, UnixTime, ValidationPolicy,
};

pub const NOW: u64 = 1_800_000_000;
pub const ISS: &str = "https://auth.example.com";
pub const AUD: &str = "orders-api";
pub const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";

pub const RSA_PRIVATE: &str = include_str!("../fixtures/rsa2048.pem");
pub const RSA_PUBLIC: &str = include_str!("../fixtures/rsa2048.pub.pem");
pub const RSA_PKCS1_PRIVATE: &str = include_str!("../fixtures/rsa2048.pkcs1.pem");
pub const RSA_PKCS1_PUBLIC: &str = include_str!("../fixtures/rsa2048.pkcs1.pub.pem");
pub const RSA_ENC_PRIVATE: &str = include_str!("../fixtures/rsa2048-enc.pem");
pub const RSA_ENC_PUBLIC: &str = include_str!("../fixtures/rsa2048-enc.pub.pem");
pub const RSA1024_PRIVATE: &str = include_str!("../fixtures/rsa1024.pem");
pub const RSA1024_PUBLIC: &str = include_str!("../fixtures/rsa1024.pub.pem");
pub const P256_PRIVATE: &str = include_str!("../fixtures/p256.pem");
pub const P256_PUBLIC: &str = include_str!("../fixtures/p256.pub.pem");
pub const P256_SEC1: &str = include_str!("../fixtures/p256.sec1.pem");
pub const P384_PRIVATE: &str = include_str!("../fixtures/p384.pem");
pub const P384_PUBLIC: &str = include_str!("../fixtures/p384.pub.pem");
pub const ED_PRIVATE: &str = include_str!("../fixtures/ed25519.pem");
pub const ED_PUBLIC: &str = include_str!("../fixtures/ed25519.pub.pem");

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// The signing keys the tests forge tokens with (private halves).
pub struct Signers {
    pub hs: Key,
    pub rsa: Key,
    pub ec: Key,
    pub ed: Key,
    pub ed2: Key,
}

/// A freshly generated private key (`EdDSA`, `ES256` or `ES384`).
pub fn generated_key(kid: &str, alg: Algorithm) -> Key {
    let pkcs8 = tokenward_claims::generate_pkcs8(alg).unwrap();
    Key::from_pkcs8_der(kid, alg, &pkcs8).unwrap()
}

pub fn signers() -> Signers {
    Signers {
        hs: Key::hmac("hs", Algorithm::HS256, HS_SECRET).unwrap(),
        rsa: Key::from_pem("rsa", Algorithm::RS256, RSA_PRIVATE.as_bytes()).unwrap(),
        ec: Key::from_pem("ec", Algorithm::ES256, P256_PRIVATE.as_bytes()).unwrap(),
        ed: Key::from_pem("ed", Algorithm::EdDSA, ED_PRIVATE.as_bytes()).unwrap(),
        ed2: generated_key("ed2", Algorithm::EdDSA),
    }
}

/// The verifier's key set: the HMAC secret and the *public* halves of the others.
pub fn verifier_keys(s: &Signers) -> KeySet {
    let mut keys = KeySet::new();
    keys.insert(Key::hmac("hs", Algorithm::HS256, HS_SECRET).unwrap())
        .unwrap();
    keys.insert(Key::from_pem("rsa", Algorithm::RS256, RSA_PUBLIC.as_bytes()).unwrap())
        .unwrap();
    keys.insert(Key::from_pem("ec", Algorithm::ES256, P256_PUBLIC.as_bytes()).unwrap())
        .unwrap();
    keys.insert(Key::from_pem("ed", Algorithm::EdDSA, ED_PUBLIC.as_bytes()).unwrap())
        .unwrap();
    let ed2 = s.ed2.public_jwk().unwrap();
    keys.insert(Key::from_jwk(&ed2, None, None).unwrap())
        .unwrap();
    keys
}

pub fn clock() -> ManualClock {
    ManualClock::new(UnixTime::from_secs(NOW))
}

/// The issuer `ISS`, audience `AUD`, on `clock`, signing with the active key of `keys`.
pub fn issuer(keys: impl Into<SharedKeySet>, clock: &ManualClock) -> TokenIssuer {
    TokenIssuer::builder(keys, ISS)
        .audience(AUD)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

pub fn policy(clock: &ManualClock) -> tokenward_claims::PolicyBuilder {
    ValidationPolicy::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(Arc::new(clock.clone()))
}

/// Signs `header.payload` (given as JSON text) with `key`, whatever the header says.
pub fn forge(header: &str, payload: &str, key: &Key) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

/// Signs with an arbitrary HMAC secret (for key-confusion attacks), any length.
pub fn forge_hmac(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

/// An unsigned token with the given signature bytes.
pub fn with_signature(header: &str, payload: &str, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        b64(sig)
    )
}

/// A payload with every default-required claim, valid at `NOW`, with overrides merged in.
pub fn claims(overrides: serde_json::Value) -> String {
    let mut base = serde_json::json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "jti": "j-1",
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600,
    });
    let (Some(map), Some(extra)) = (base.as_object_mut(), overrides.as_object()) else {
        panic!("objects expected");
    };
    for (k, v) in extra {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    base.to_string()
}

pub fn header(alg: &str, kid: &str) -> String {
    serde_json::json!({ "alg": alg, "typ": "JWT", "kid": kid }).to_string()
}
