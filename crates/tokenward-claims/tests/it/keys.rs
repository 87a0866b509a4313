//! Key loading (PEM, JWK, JWKS), refusal of weak or malformed keys, JWKS export, rotation.

use crate::common::*;
use serde_json::json;
use tokenward_claims::{
    AccessToken, Algorithm, Key, KeyError, KeySet, KeySetError, RejectionClass, SharedKeySet,
    Validator,
};

fn err(r: Result<Key, KeyError>) -> KeyError {
    r.expect_err("key must be refused")
}

#[test]
fn every_fixture_loads_and_signs_what_its_public_half_verifies() {
    let pairs = [
        (Algorithm::RS256, RSA_PRIVATE, RSA_PUBLIC),
        (Algorithm::PS256, RSA_PRIVATE, RSA_PUBLIC),
        (Algorithm::RS512, RSA_PKCS1_PRIVATE, RSA_PKCS1_PUBLIC),
        (Algorithm::PS384, RSA_PKCS1_PRIVATE, RSA_PUBLIC),
        (Algorithm::ES256, P256_PRIVATE, P256_PUBLIC),
        (Algorithm::ES384, P384_PRIVATE, P384_PUBLIC),
        (Algorithm::EdDSA, ED_PRIVATE, ED_PUBLIC),
    ];
    for (alg, private, public) in pairs {
        let sk = Key::from_pem("k", alg, private.as_bytes()).unwrap();
        let pk = Key::from_pem("k", alg, public.as_bytes()).unwrap();
        assert!(sk.can_sign() && !pk.can_sign(), "{alg:?}");
        let sig = sk.sign(b"message").unwrap();
        assert!(pk.verify(b"message", &sig), "{alg:?}");
        assert!(!pk.verify(b"messagE", &sig), "{alg:?}");
        // The public JWK of either half is the same and loads back.
        let jwk = pk.public_jwk().unwrap();
        assert_eq!(Some(&jwk), sk.public_jwk().as_ref(), "{alg:?}");
        let back = Key::from_jwk(&jwk, None, None).unwrap();
        assert!(back.verify(b"message", &sig), "{alg:?}");
        assert_eq!(back.algorithm(), alg);
        assert!(matches!(pk.sign(b"x"), Err(KeyError::CannotSign { .. })));
    }
}

#[test]
fn weak_malformed_and_mismatched_keys_are_errors_not_panics() {
    use Algorithm::*;
    /// The variant of a `KeyError`, for the table.
    fn kind(e: &KeyError) -> &'static str {
        match e {
            KeyError::InvalidKid(_) => "InvalidKid",
            KeyError::Malformed(_) => "Malformed",
            KeyError::AlgorithmMismatch { .. } => "AlgorithmMismatch",
            KeyError::Weak(_) => "Weak",
            KeyError::Rejected(_) => "Rejected",
            KeyError::Unsupported(_) => "Unsupported",
            _ => "other",
        }
    }
    let pem = |alg, text: &str| Key::from_pem("k", alg, text.as_bytes());
    let cases: Vec<(&str, Result<Key, KeyError>, &[&str])> = vec![
        (
            "RSA-1024 private",
            pem(RS256, RSA1024_PRIVATE),
            &["Rejected", "Weak"],
        ),
        ("RSA-1024 public", pem(RS256, RSA1024_PUBLIC), &["Weak"]),
        ("SEC1 EC key", pem(ES256, P256_SEC1), &["Unsupported"]),
        ("not PEM", pem(RS256, "garbage"), &["Malformed"]),
        (
            "PEM of garbage",
            pem(
                RS256,
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
            &["Malformed"],
        ),
        (
            "a certificate",
            pem(
                RS256,
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
            &["Malformed"],
        ),
        // A key used with an algorithm of another family or curve.
        (
            "RSA as ES256",
            pem(ES256, RSA_PUBLIC),
            &["AlgorithmMismatch"],
        ),
        (
            "P-256 as ES384",
            pem(ES384, P256_PUBLIC),
            &["AlgorithmMismatch"],
        ),
        (
            "Ed25519 as HS256",
            pem(HS256, ED_PRIVATE),
            &["AlgorithmMismatch"],
        ),
        (
            "P-256 as EdDSA",
            pem(EdDSA, P256_PRIVATE),
            &["AlgorithmMismatch"],
        ),
        // HMAC secrets shorter than the hash.
        (
            "HS256, 31 bytes",
            Key::hmac("k", HS256, &[1; 31]),
            &["Weak"],
        ),
        (
            "HS512, 63 bytes",
            Key::hmac("k", HS512, &[1; 63]),
            &["Weak"],
        ),
        (
            "secret as RS256",
            Key::hmac("k", RS256, &[1; 64]),
            &["AlgorithmMismatch"],
        ),
        // Bad kids.
        ("empty kid", Key::hmac("", HS256, &[1; 32]), &["InvalidKid"]),
        (
            "kid with a newline",
            Key::hmac("a\nb", HS256, &[1; 32]),
            &["InvalidKid"],
        ),
        (
            "kid of 257 bytes",
            Key::hmac("k".repeat(257), HS256, &[1; 32]),
            &["InvalidKid"],
        ),
    ];
    for (name, result, expected) in cases {
        let e = err(result);
        assert!(expected.contains(&kind(&e)), "{name}: got {e:?}");
    }
    // Error messages never carry key material.
    let msg = err(Key::hmac("k", HS256, b"short-secret")).to_string();
    assert!(!msg.contains("short-secret"), "{msg}");
}

/// Every key type, in every encoding it loads from, bound to every algorithm: the algorithms
/// of its type load; every other one is `AlgorithmMismatch` naming that algorithm, never
/// ring's `WrongAlgorithm` (an Ed25519 PKCS#8 key loaded as ES256 used to report that).
#[test]
fn every_key_type_refuses_every_other_algorithm_with_algorithm_mismatch() {
    use Algorithm::*;
    type Load = Box<dyn Fn(Algorithm) -> Result<Key, KeyError>>;
    let pem_key = |text: &'static str| -> Load {
        Box::new(move |alg| Key::from_pem("k", alg, text.as_bytes()))
    };
    // DER from a PEM file, loaded with `load` (`Key::from_pkcs8_der` or `Key::from_spki_der`).
    let der = |text: &'static str, load: fn(Algorithm, &[u8]) -> Result<Key, KeyError>| -> Load {
        let der = pem::parse(text).unwrap().into_contents();
        Box::new(move |alg| load(alg, &der))
    };
    let pkcs8_der = |text| der(text, |alg, der| Key::from_pkcs8_der("k", alg, der));
    let spki_der = |text| der(text, |alg, der| Key::from_spki_der("k", alg, der));
    // The JWK of a public key file: as published (with its `alg`), or without `alg`, where
    // the algorithm asked for is the only binding.
    let jwk = |text: &'static str, key_alg: Algorithm, keep_alg: bool| -> Load {
        let mut jwk = Key::from_pem("k", key_alg, text.as_bytes())
            .unwrap()
            .public_jwk()
            .unwrap();
        if !keep_alg {
            jwk.common.key_algorithm = None;
        }
        Box::new(move |alg| Key::from_jwk(&jwk, None, Some(alg)))
    };
    let secret = [7u8; 64];
    let oct: tokenward_claims::jwk::Jwk =
        serde_json::from_value(json!({"kty": "oct", "kid": "k", "k": b64(&secret)})).unwrap();
    let rsa = &[RS256, RS384, RS512, PS256, PS384, PS512][..];
    let cases: Vec<(&str, &[Algorithm], Load)> = vec![
        ("RSA PKCS#8 PEM", rsa, pem_key(RSA_PRIVATE)),
        ("RSA PKCS#8 DER", rsa, pkcs8_der(RSA_PRIVATE)),
        ("RSA PKCS#1 private PEM", rsa, pem_key(RSA_PKCS1_PRIVATE)),
        ("RSA SPKI PEM", rsa, pem_key(RSA_PUBLIC)),
        ("RSA SPKI DER", rsa, spki_der(RSA_PUBLIC)),
        ("RSA PKCS#1 public PEM", rsa, pem_key(RSA_PKCS1_PUBLIC)),
        ("RSA JWK without alg", rsa, jwk(RSA_PUBLIC, RS256, false)),
        (
            "RSA JWK with alg RS256",
            &[RS256],
            jwk(RSA_PUBLIC, RS256, true),
        ),
        ("P-256 PKCS#8 PEM", &[ES256], pem_key(P256_PRIVATE)),
        ("P-256 PKCS#8 DER", &[ES256], pkcs8_der(P256_PRIVATE)),
        ("P-256 SPKI PEM", &[ES256], pem_key(P256_PUBLIC)),
        (
            "P-256 JWK without alg",
            &[ES256],
            jwk(P256_PUBLIC, ES256, false),
        ),
        ("P-384 PKCS#8 PEM", &[ES384], pem_key(P384_PRIVATE)),
        ("P-384 SPKI DER", &[ES384], spki_der(P384_PUBLIC)),
        (
            "P-384 JWK without alg",
            &[ES384],
            jwk(P384_PUBLIC, ES384, false),
        ),
        ("Ed25519 PKCS#8 PEM", &[EdDSA], pem_key(ED_PRIVATE)),
        ("Ed25519 PKCS#8 DER", &[EdDSA], pkcs8_der(ED_PRIVATE)),
        ("Ed25519 SPKI PEM", &[EdDSA], pem_key(ED_PUBLIC)),
        (
            "Ed25519 JWK without alg",
            &[EdDSA],
            jwk(ED_PUBLIC, EdDSA, false),
        ),
        (
            "Ed25519 JWK with alg",
            &[EdDSA],
            jwk(ED_PUBLIC, EdDSA, true),
        ),
        (
            "HMAC secret",
            &[HS256, HS384, HS512],
            Box::new(move |alg| Key::hmac("k", alg, &secret)),
        ),
        (
            "oct JWK without alg",
            &[HS256, HS384, HS512],
            Box::new(move |alg| Key::from_jwk(&oct, None, Some(alg))),
        ),
    ];
    let mut failures = Vec::new();
    for (name, fits, load) in &cases {
        for alg in tokenward_claims::alg::SUPPORTED {
            match (load(alg), fits.contains(&alg)) {
                (Ok(key), true) if key.algorithm() == alg => {}
                (Err(KeyError::AlgorithmMismatch { alg: named, reason }), false)
                    if named == alg && !reason.contains("WrongAlgorithm") => {}
                (got, fits) => failures.push(format!(
                    "{name} as {alg:?}: expected {}, got {got:?}",
                    if fits { "Ok" } else { "AlgorithmMismatch" }
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_jwks_are_errors_not_panics() {
    let x = |n: usize| b64(&vec![7u8; n]);
    let cases = [
        // The jsonwebtoken rust_crypto backend panics on these; tokenward returns errors.
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": x(31)}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": x(33)}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": x(0)}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": "not base64!"}),
        json!({"kty": "OKP", "crv": "Ed448", "kid": "e", "x": x(57)}),
        json!({"kty": "EC", "crv": "P-256", "kid": "e", "x": x(31), "y": x(32)}),
        json!({"kty": "EC", "crv": "P-256", "kid": "e", "x": x(32), "y": x(32), "alg": "ES384"}),
        json!({"kty": "EC", "crv": "P-521", "kid": "e", "x": x(66), "y": x(66)}),
        json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": x(128), "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": x(0), "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": b64(&[&[0xC1u8][..], &[7u8; 255]].concat()), "e": "AQ"}),
        json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": b64(&[&[0xC1u8][..], &[7u8; 255]].concat()), "e": x(9)}),
        json!({"kty": "RSA", "kid": "r", "alg": "RSA-OAEP", "n": b64(&[0xC1u8; 256]), "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "r", "alg": "RS256", "use": "enc", "n": b64(&[0xC1u8; 256]), "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "r", "alg": "RS256", "key_ops": ["encrypt"], "n": b64(&[0xC1u8; 256]), "e": "AQAB"}),
        json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": x(16)}),
        json!({"kty": "oct", "kid": "h", "k": x(64)}),
        json!({"kty": "oct", "alg": "HS256", "k": x(64)}),
        json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": format!("{}=", x(64))}),
        json!({"kty": "dunno", "kid": "h"}),
        json!({"kid": "h"}),
    ];
    for jwk in cases {
        let text = jwk.to_string();
        assert!(Key::from_jwk_json(&text, None).is_err(), "accepted {text}");
        let jwks = json!({"keys": [jwk]}).to_string();
        assert!(KeySet::from_jwks_json(&jwks).is_err(), "accepted {jwks}");
    }
    for text in ["", "{", "[]", r#"{"keys": {}}"#, r#"{"keys": [1]}"#] {
        assert!(KeySet::from_jwks_json(text).is_err(), "accepted {text:?}");
    }
}

#[test]
fn jwks_round_trip_and_secret_export() {
    let s = signers();
    let mut set = verifier_keys(&s);
    set.insert(Key::from_pem("p384", Algorithm::ES384, P384_PUBLIC.as_bytes()).unwrap())
        .unwrap();
    set.insert(Key::from_pem("ps", Algorithm::PS256, RSA_PUBLIC.as_bytes()).unwrap())
        .unwrap();
    let public = set.public_jwks_json().unwrap();
    assert_eq!(public, serde_json::to_string(&set.public_jwks()).unwrap());
    assert!(
        !public.contains("\"oct\""),
        "HMAC keys must not be published"
    );
    assert!(!public.contains("\"d\""));
    let back = KeySet::from_jwks_json(&public).unwrap();
    assert_eq!(back.len(), set.len() - 1);
    for key in back.iter() {
        assert_eq!(set.get(key.kid()).unwrap().algorithm(), key.algorithm());
    }
    // Tokens verify with the reimported set.
    let clock = clock();
    let v = Validator::new(policy(&clock).build().unwrap(), back);
    assert!(
        v.verify(&forge(&header("RS256", "rsa"), &claims(json!({})), &s.rsa))
            .is_ok()
    );

    let secret = serde_json::to_string(&set.dangerous_secret_jwks()).unwrap();
    let hs = KeySet::from_jwks_json(&secret).unwrap();
    assert_eq!(hs.len(), 1);
    let v = Validator::new(policy(&clock).build().unwrap(), hs);
    assert!(
        v.verify(&forge(&header("HS256", "hs"), &claims(json!({})), &s.hs))
            .is_ok()
    );

    let dup = format!(
        r#"{{"keys":[{0},{0}]}}"#,
        serde_json::to_string(&s.ed.public_jwk().unwrap()).unwrap()
    );
    assert!(matches!(
        KeySet::from_jwks_json(&dup),
        Err(KeySetError::DuplicateKid(_))
    ));
}

#[test]
fn overlapping_rotation() {
    let clock = clock();
    let key = |kid: &str| generated_key(kid, Algorithm::EdDSA);
    let keys = SharedKeySet::new(KeySet::single(key("2026-10")));
    let issuer = issuer(keys.clone(), &clock);
    let validator = Validator::new(policy(&clock).build().unwrap(), keys.clone());
    let old = issuer.issue(&AccessToken::new("alice")).unwrap();
    assert_eq!(old.kid, "2026-10");

    // 1. Add the new key: it verifies, but the old key still signs.
    keys.update(|k| k.insert(key("2026-11"))).unwrap();
    assert_eq!(
        issuer.issue(&AccessToken::new("alice")).unwrap().kid,
        "2026-10"
    );
    // 2. Activate it: new tokens use it; tokens of the retired key still verify.
    keys.update(|k| k.activate("2026-11")).unwrap();
    let new = issuer.issue(&AccessToken::new("alice")).unwrap();
    assert_eq!(new.kid, "2026-11");
    assert!(validator.verify(&old.token).is_ok());
    assert!(validator.verify(&new.token).is_ok());
    // The active key cannot be removed.
    assert!(matches!(
        keys.update(|k| k.remove("2026-11").map(drop)),
        Err(KeySetError::RemovingActive(_))
    ));
    // 3. After the longest token lifetime, remove the retired key: its tokens fail with `key`.
    keys.update(|k| k.remove("2026-10").map(drop)).unwrap();
    assert_eq!(
        validator.verify(&old.token).unwrap_err().class(),
        RejectionClass::Key
    );
    assert!(validator.verify(&new.token).is_ok());
    // Public keys cannot be made active.
    let public = Key::from_pem("pub", Algorithm::EdDSA, ED_PUBLIC.as_bytes()).unwrap();
    keys.update(|k| k.insert(public)).unwrap();
    assert!(matches!(
        keys.update(|k| k.activate("pub")),
        Err(KeySetError::CannotSign(_))
    ));
    assert!(keys.snapshot().get("pub").is_some());
}

#[test]
fn jwks_errors_never_quote_the_document() {
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC1zZWNyZXQ";
    for doc in [
        format!(r#"{{"keys":[{{"kty":"oct","kid":"h","alg":"HS256","k":{{"v":"{secret}"}}}}]}}"#),
        format!(r#"{{"keys":"{secret}"}}"#),
        format!(r#"{{"keys":[{{"kty":"oct","kid":"h","alg":"HS256","k":"{secret}""#),
    ] {
        let msg = KeySet::from_jwks_json(&doc).unwrap_err().to_string();
        assert!(!msg.contains(secret), "{msg}");
        let msg = Key::from_jwk_json(&doc, None).unwrap_err().to_string();
        assert!(!msg.contains(secret), "{msg}");
    }
}
