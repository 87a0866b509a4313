//! `verify` with key sets and tokens shaped as identity providers publish and issue them.

use std::path::Path;

use serde_json::{Value, json};
use tokenward_claims::{Algorithm, Key};

use crate::common::run;
use crate::*;

/// The test-only RSA keys of tokenward-claims' fixtures (public, protect nothing).
const RSA_PRIVATE: &str = include_str!("../../../tokenward-claims/tests/fixtures/rsa2048.pem");
const RSA_ENC_PRIVATE: &str =
    include_str!("../../../tokenward-claims/tests/fixtures/rsa2048-enc.pem");

fn key(kid: &str, pem: &str) -> Key {
    Key::from_pem(kid, Algorithm::RS256, pem.as_bytes()).unwrap()
}

/// The public JWK of `key` without `alg` and `use`, with `members` merged in.
fn jwk(key: &Key, members: Value) -> Value {
    let mut jwk = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    let map = jwk.as_object_mut().unwrap();
    map.remove("alg");
    map.remove("use");
    for (k, v) in members.as_object().unwrap() {
        map.insert(k.clone(), v.clone());
    }
    jwk
}

/// Signs `header.claims` with `key`, whatever the header says.
fn sign(key: &Key, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64(&key.sign(input.as_bytes()).unwrap()))
}

fn write_jwks(dir: &Path, keys: Value) -> std::path::PathBuf {
    let path = dir.join("jwks.json");
    std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
    path
}

/// A Keycloak realm's key set (an RSA-OAEP encryption key beside the signing key) and Entra
/// ID's (no `alg`, with `x5t`/`x5c`/`issuer`/`cloud_instance_name`) in one file.
fn provider_jwks(dir: &Path) -> std::path::PathBuf {
    let sig = key("sig", RSA_PRIVATE);
    let enc = key("kc-enc", RSA_ENC_PRIVATE);
    write_jwks(
        dir,
        json!([
            jwk(
                &sig,
                json!({"kid": "entra-1", "x5t": "abc", "x5c": ["MIIC"],
                "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
                "cloud_instance_name": "microsoftonline.com"})
            ),
            jwk(
                &sig,
                json!({"kid": "kc-sig", "alg": "RS256", "use": "sig", "x5t#S256": "d"})
            ),
            jwk(
                &enc,
                json!({"kid": "kc-enc", "alg": "RSA-OAEP", "use": "enc"})
            ),
        ]),
    )
}

fn payload() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "jti": "j1", "iat": NOW, "exp": NOW + 600})
}

fn verify_with(jwks: &Path, token: &str, extra: &[&str]) -> crate::common::Out {
    let now = (NOW + 60).to_string();
    let mut args = vec!["verify", "--jwks", s(jwks), "--json", "--now", &now];
    args.extend_from_slice(extra);
    args.push(token);
    run(&args)
}

#[test]
fn provider_key_sets_verify_and_skipped_keys_warn() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = provider_jwks(dir.path());
    let sig = key("sig", RSA_PRIVATE);
    let enc = key("kc-enc", RSA_ENC_PRIVATE);
    let iss_aud = ["--iss", ISS, "--aud", AUD];
    for (name, token, class) in [
        (
            "Entra key without alg",
            sign(&sig, &json!({"alg": "RS256", "kid": "entra-1"}), &payload()),
            "valid",
        ),
        (
            "Keycloak signing key",
            sign(&sig, &json!({"alg": "RS256", "kid": "kc-sig"}), &payload()),
            "valid",
        ),
        (
            "Keycloak encryption key",
            sign(&enc, &json!({"alg": "RS256", "kid": "kc-enc"}), &payload()),
            "key",
        ),
        (
            "HS256 keyed with the alg-less key's n",
            forge(
                &json!({"alg": "HS256", "kid": "entra-1"}),
                &payload(),
                "AAAA",
            ),
            "algorithm",
        ),
        (
            "alg none naming the alg-less key",
            forge(&json!({"alg": "none", "kid": "entra-1"}), &payload(), ""),
            "algorithm",
        ),
    ] {
        let out = verify_with(&jwks, &token, &iss_aud);
        let lines = json_lines(&out.stdout);
        assert_eq!(
            class_of(&lines[0]),
            class,
            "{name}: {}{}",
            out.stdout,
            out.stderr
        );
        assert_eq!(out.code, i32::from(class != "valid"), "{name}");
        // The skipped encryption key is a warning on stderr, naming its kid and the reason.
        assert!(
            out.stderr.contains("warning")
                && out.stderr.contains("\"kc-enc\"")
                && out.stderr.contains("`use` is `enc`"),
            "{name}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_key_set_of_only_encryption_keys_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let enc = key("kc-enc", RSA_ENC_PRIVATE);
    let jwks = write_jwks(
        dir.path(),
        json!([jwk(&enc, json!({"alg": "RSA-OAEP", "use": "enc"}))]),
    );
    let out = verify_with(&jwks, "a.b.c", &["--iss", ISS, "--aud", AUD]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no usable key"), "{}", out.stderr);
}
