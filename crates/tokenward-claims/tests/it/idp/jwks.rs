//! Key sets as providers publish them: keys without `alg`, encryption keys, `x5c`/`x5t` and
//! other extra members; and the key-confusion attacks alg-less keys invite.

use serde_json::{Value, json};
use tokenward_claims::{
    Algorithm, JwksOptions, Key, KeySet, KeySetError, RejectionClass, SkipKind, Validator,
};

use super::*;

fn load(doc: &Value) -> Result<tokenward_claims::JwksLoad, KeySetError> {
    KeySet::load_jwks(doc.to_string().as_bytes(), &JwksOptions::new())
}

/// A provider's key set: its name, the document, the keys loaded (kid, alg) and the keys
/// skipped (kid, kind).
type ProviderSet = (
    &'static str,
    Value,
    &'static [(&'static str, Algorithm)],
    &'static [(&'static str, SkipKind)],
);

#[test]
fn provider_key_sets_load_with_their_extra_members() {
    let cases: [ProviderSet; 6] = [
        (
            "entra",
            entra_jwks(),
            &[("entra-1", Algorithm::RS256), ("entra-2", Algorithm::RS256)],
            &[],
        ),
        (
            "keycloak",
            keycloak_jwks(),
            &[("kc-sig", Algorithm::RS256)],
            &[("kc-enc", SkipKind::Encryption)],
        ),
        ("auth0", auth0_jwks(), &[("auth0-1", Algorithm::RS256)], &[]),
        (
            "okta",
            simple_jwks("okta-1"),
            &[("okta-1", Algorithm::RS256)],
            &[],
        ),
        (
            "cognito",
            simple_jwks("cog-1"),
            &[("cog-1", Algorithm::RS256)],
            &[],
        ),
        (
            "google",
            simple_jwks("g-1"),
            &[("g-1", Algorithm::RS256)],
            &[],
        ),
    ];
    for (name, doc, loaded, skipped) in cases {
        let got = load(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kids: Vec<(&str, Algorithm)> =
            got.keys.iter().map(|k| (k.kid(), k.algorithm())).collect();
        assert_eq!(kids, loaded, "{name}");
        let skips: Vec<(&str, SkipKind)> = got
            .skipped
            .iter()
            .map(|s| (s.kid.as_deref().unwrap_or(""), s.kind))
            .collect();
        assert_eq!(skips, skipped, "{name}");
        // The same rules through the strict convenience loader and the `tokenward-jwks` options.
        assert_eq!(
            KeySet::from_jwks_json(&doc.to_string()).unwrap().len(),
            loaded.len()
        );
        let remote = JwksOptions::new().public_only().skip_invalid();
        let got = KeySet::load_jwks(doc.to_string().as_bytes(), &remote).unwrap();
        assert_eq!(got.keys.len(), loaded.len(), "{name}");
    }
}

/// One JWK in a set beside a usable key: `Ok(alg)` loaded with `alg`, `Skip(kind)` skipped,
/// `Fail` fails a strict load (and is skipped as `invalid` under `skip_invalid`).
#[derive(Debug, PartialEq)]
enum Outcome {
    Bound(Algorithm),
    Skip(SkipKind),
    Fail,
}

#[test]
fn each_jwk_is_bound_skipped_or_refused() {
    use Outcome::*;
    let (n, e) = rsa_ne(RSA_PUBLIC);
    let ec =
        serde_json::to_value(generated_key("x", Algorithm::ES256).public_jwk().unwrap()).unwrap();
    let ec384 =
        serde_json::to_value(generated_key("x", Algorithm::ES384).public_jwk().unwrap()).unwrap();
    let ed =
        serde_json::to_value(generated_key("x", Algorithm::EdDSA).public_jwk().unwrap()).unwrap();
    let strip = |mut jwk: Value| {
        let map = jwk.as_object_mut().unwrap();
        map.remove("alg");
        map.remove("use");
        map.insert("kid".into(), json!("t"));
        jwk
    };
    let rsa = |members: Value| {
        let mut jwk = json!({"kty": "RSA", "kid": "t", "n": n, "e": e});
        for (k, v) in members.as_object().unwrap() {
            jwk[k] = v.clone();
        }
        jwk
    };
    let cases: Vec<(&str, Value, Outcome)> = vec![
        ("RSA without alg", rsa(json!({})), Bound(Algorithm::RS256)),
        (
            "RSA PS256",
            rsa(json!({"alg": "PS256"})),
            Bound(Algorithm::PS256),
        ),
        (
            "RSA use sig",
            rsa(json!({"use": "sig"})),
            Bound(Algorithm::RS256),
        ),
        (
            "RSA key_ops verify",
            rsa(json!({"key_ops": ["verify"]})),
            Bound(Algorithm::RS256),
        ),
        (
            "EC P-256 without alg",
            strip(ec.clone()),
            Bound(Algorithm::ES256),
        ),
        (
            "EC P-384 without alg",
            strip(ec384),
            Bound(Algorithm::ES384),
        ),
        ("Ed25519 without alg", strip(ed), Bound(Algorithm::EdDSA)),
        (
            "x5c, x5t, x5t#S256, issuer tolerated",
            rsa(
                json!({"x5c": x5c(), "x5t": "a", "x5t#S256": "b", "issuer": "i",
                "cloud_instance_name": "microsoftonline.com", "x5u": "https://x/"}),
            ),
            Bound(Algorithm::RS256),
        ),
        (
            "use enc",
            rsa(json!({"use": "enc"})),
            Skip(SkipKind::Encryption),
        ),
        (
            "use other",
            rsa(json!({"use": "tls"})),
            Skip(SkipKind::Encryption),
        ),
        (
            "key_ops encrypt",
            rsa(json!({"key_ops": ["encrypt", "wrapKey"]})),
            Skip(SkipKind::Encryption),
        ),
        (
            "key_ops sign only",
            rsa(json!({"key_ops": ["sign"]})),
            Skip(SkipKind::Encryption),
        ),
        (
            "RSA-OAEP without use",
            rsa(json!({"alg": "RSA-OAEP"})),
            Skip(SkipKind::Encryption),
        ),
        (
            "RSA-OAEP-256",
            rsa(json!({"alg": "RSA-OAEP-256"})),
            Skip(SkipKind::Encryption),
        ),
        (
            "RSA1_5",
            rsa(json!({"alg": "RSA1_5"})),
            Skip(SkipKind::Encryption),
        ),
        (
            "ECDH-ES",
            json!({"kty": "EC", "kid": "t", "crv": "P-256", "alg": "ECDH-ES+A256KW",
            "x": ec["x"], "y": ec["y"]}),
            Skip(SkipKind::Encryption),
        ),
        (
            "X25519",
            json!({"kty": "OKP", "kid": "t", "crv": "X25519", "x": b64(&[1; 32])}),
            Skip(SkipKind::Encryption),
        ),
        (
            "P-521",
            json!({"kty": "EC", "kid": "t", "crv": "P-521", "x": b64(&[1; 66]),
            "y": b64(&[1; 66])}),
            Skip(SkipKind::Unsupported),
        ),
        (
            "ES512",
            json!({"kty": "EC", "kid": "t", "crv": "P-521", "alg": "ES512",
            "x": b64(&[1; 66]), "y": b64(&[1; 66])}),
            Skip(SkipKind::Unsupported),
        ),
        (
            "Ed448",
            json!({"kty": "OKP", "kid": "t", "crv": "Ed448", "x": b64(&[1; 57])}),
            Skip(SkipKind::Unsupported),
        ),
        (
            "unknown kty",
            json!({"kty": "AKP", "kid": "t", "alg": "ML-DSA-44", "pub": "AA"}),
            Skip(SkipKind::Unsupported),
        ),
        (
            "alg none",
            rsa(json!({"alg": "none"})),
            Skip(SkipKind::Unsupported),
        ),
        // Broken keys fail a configured set (a typo is found at startup).
        ("RSA with alg HS256", rsa(json!({"alg": "HS256"})), Fail),
        (
            "oct without alg: HMAC is never implied",
            json!({"kty": "oct", "kid": "t", "k": b64(&[7; 64])}),
            Fail,
        ),
        ("no kid", json!({"kty": "RSA", "n": n, "e": e}), Fail),
        ("no kty", json!({"kid": "t"}), Fail),
        ("kid not a string", rsa(json!({"kid": 5})), Fail),
        (
            "weak RSA",
            json!({"kty": "RSA", "kid": "t", "n": b64(&[0xC1; 128]), "e": "AQAB"}),
            Fail,
        ),
        (
            "EC point off size",
            json!({"kty": "EC", "kid": "t", "crv": "P-256", "x": b64(&[1; 31]),
            "y": b64(&[1; 32])}),
            Fail,
        ),
    ];
    let mut failures = Vec::new();
    for (name, jwk, expect) in cases {
        let doc = json!({"keys": [rsa_jwk("anchor", json!({})), jwk]});
        let got = match load(&doc) {
            Ok(l) => match (l.keys.get("t"), l.skipped.as_slice()) {
                (Some(k), []) => Bound(k.algorithm()),
                (None, [s]) => Skip(s.kind),
                other => panic!("{name}: {other:?}"),
            },
            Err(_) => Fail,
        };
        // Under skip_invalid nothing fails while a usable key remains.
        let tolerant = JwksOptions::new().skip_invalid();
        let lenient = KeySet::load_jwks(doc.to_string().as_bytes(), &tolerant).unwrap();
        assert!(lenient.keys.get("anchor").is_some(), "{name}");
        if got == Fail {
            assert_eq!(
                lenient.skipped.first().map(|s| s.kind),
                Some(SkipKind::Invalid),
                "{name}"
            );
        }
        if got != expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_usable_key_is_an_error_naming_each_reason() {
    let doc = json!({"keys": [keycloak_jwks()["keys"][1].clone()]});
    let err = load(&doc).unwrap_err();
    assert!(
        matches!(&err, KeySetError::NoUsableKeys(s) if s.len() == 1),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("kc-enc") && msg.contains("`use` is `enc`"),
        "{msg}"
    );
    assert!(KeySet::from_jwks_json(&doc.to_string()).is_err());
    // An empty document lists nothing to skip: an empty set, as before.
    assert!(load(&json!({"keys": []})).unwrap().keys.is_empty());
}

#[test]
fn rsa_default_is_overridable_but_never_hmac() {
    let doc = entra_jwks().to_string();
    let ps = KeySet::load_jwks(
        doc.as_bytes(),
        &JwksOptions::new().rsa_alg(Algorithm::PS384),
    )
    .unwrap();
    assert!(ps.keys.iter().all(|k| k.algorithm() == Algorithm::PS384));
    for bad in [
        Algorithm::HS256,
        Algorithm::HS512,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let options = JwksOptions::new().rsa_alg(bad);
        assert!(options.check().is_err(), "{bad:?}");
        assert!(
            KeySet::load_jwks(doc.as_bytes(), &options).is_err(),
            "{bad:?}"
        );
    }
}

fn entra_validator() -> Validator {
    let clock = clock();
    let keys = KeySet::from_jwks_json(&entra_jwks().to_string()).unwrap();
    Validator::new(policy(&clock).build().unwrap(), keys)
}

#[test]
fn alg_less_rsa_keys_resist_key_confusion_in_every_encoding() {
    let v = entra_validator();
    let payload = claims(json!({}));
    let pem_text = RSA_PUBLIC.as_bytes().to_vec();
    let der = pem::parse(RSA_PUBLIC).unwrap().into_contents();
    let pkcs1_text = RSA_PKCS1_PUBLIC.as_bytes().to_vec();
    let pkcs1_der = pem::parse(RSA_PKCS1_PUBLIC).unwrap().into_contents();
    let jwk_json = entra_jwks()["keys"][0].to_string().into_bytes();
    let (n, _) = rsa_ne(RSA_PUBLIC);
    let n_bytes = unb64(&n);
    let n_text = n.clone().into_bytes();
    for (encoding, secret) in [
        ("SPKI PEM", pem_text),
        ("SPKI DER", der),
        ("PKCS#1 PEM", pkcs1_text),
        ("PKCS#1 DER", pkcs1_der),
        ("JWK JSON", jwk_json),
        ("n bytes", n_bytes),
        ("n base64url", n_text),
    ] {
        for alg in ["HS256", "HS384", "HS512"] {
            let token = forge_hmac(&header(alg, "entra-1"), &payload, &secret);
            let got = v.verify(&token).map(|_| ()).map_err(|r| r.class());
            assert_eq!(
                got,
                Err(RejectionClass::Algorithm),
                "{alg} keyed with {encoding}"
            );
        }
    }
    // `alg: none` naming the key, with and without a signature.
    for alg in ["none", "None", "NONE"] {
        for sig in [&b""[..], b"x"] {
            let token = with_signature(&header(alg, "entra-1"), &payload, sig);
            let got = v.verify(&token).map(|_| ()).map_err(|r| r.class());
            assert_eq!(got, Err(RejectionClass::Algorithm), "{alg}");
        }
    }
    // The genuine RS256 token verifies.
    let token = forge(
        &header("RS256", "entra-1"),
        &payload,
        &signing_key("entra-1"),
    );
    assert!(v.verify(&token).is_ok());
}

#[test]
fn keys_never_come_from_x5c_and_encryption_keys_never_verify() {
    let clock = clock();
    let keys = KeySet::from_jwks_json(&keycloak_jwks().to_string()).unwrap();
    let v = Validator::new(policy(&clock).build().unwrap(), keys);
    let payload = claims(json!({}));
    let enc = Key::from_pem("kc-enc", Algorithm::RS256, RSA_ENC_PRIVATE.as_bytes()).unwrap();
    for (name, token, expect) in [
        (
            "signed by the signing key",
            forge(&header("RS256", "kc-sig"), &payload, &signing_key("kc-sig")),
            Ok(()),
        ),
        // The key in `x5c` (the encryption key's) is never used for `kc-sig`.
        (
            "x5c key under the signing kid",
            forge(&header("RS256", "kc-sig"), &payload, &enc),
            Err(RejectionClass::Signature),
        ),
        (
            "signed by the encryption key",
            forge(&header("RS256", "kc-enc"), &payload, &enc),
            Err(RejectionClass::Key),
        ),
        (
            "RSA-OAEP header naming the encryption key",
            forge(r#"{"alg":"RSA-OAEP","kid":"kc-enc"}"#, &payload, &enc),
            Err(RejectionClass::Algorithm),
        ),
    ] {
        let got = v.verify(&token).map(|_| ()).map_err(|r| r.class());
        assert_eq!(got, expect, "{name}");
    }
}
