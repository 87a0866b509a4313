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

const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const OTHER_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// `(kid, payload)` of a token as each provider issues it, valid at NOW + 60.
fn provider_token(provider: &str, overrides: Value) -> String {
    let (kid, mut payload) = match provider {
        "entra" => (
            "entra-1",
            json!({
                "aud": "api://orders", "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                "iat": NOW, "nbf": NOW, "exp": NOW + 75 * 60, "scp": "Orders.Read Orders.Write",
                "roles": ["Orders.Admin"], "sub": "s-alice", "tid": TENANT, "uti": "u1", "ver": "2.0",
            }),
        ),
        "keycloak" => (
            "kc-sig",
            json!({
                "exp": NOW + 300, "iat": NOW, "jti": "j1", "iss": "https://kc.example.com/realms/acme",
                "aud": ["orders-api", "account"], "sub": "alice", "typ": "Bearer", "azp": "orders-web",
                "realm_access": {"roles": ["user"]},
                "resource_access": {"orders-web": {"roles": ["orders-admin"]}}, "scope": "openid profile",
            }),
        ),
        "cognito" => (
            "entra-1",
            json!({
                "sub": "alice", "cognito:groups": ["admins"], "client_id": "client-1",
                "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf",
                "token_use": "access", "scope": "orders/read", "exp": NOW + 3600, "iat": NOW, "jti": "j1",
            }),
        ),
        "auth0" => (
            "entra-1",
            json!({
                "iss": "https://acme.eu.auth0.com/", "sub": "auth0|1",
                "aud": ["https://orders.example.com", "https://acme.eu.auth0.com/userinfo"],
                "iat": NOW, "exp": NOW + 86_400, "scope": "read:orders", "permissions": ["read:orders"],
            }),
        ),
        "okta" => (
            "entra-1",
            json!({
                "jti": "AT.1", "iss": "https://dev-1.okta.com/oauth2/default", "aud": "api://default",
                "iat": NOW, "exp": NOW + 3600, "scp": ["openid", "orders.read"], "sub": "alice",
                "groups": ["Admins"],
            }),
        ),
        _ => (
            "entra-1",
            json!({
                "iss": "accounts.google.com", "aud": "1234-abc.apps.googleusercontent.com",
                "sub": "1101", "iat": NOW, "exp": NOW + 3600, "email": "alice@gmail.com",
            }),
        ),
    };
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            payload.as_object_mut().unwrap().remove(k);
        } else {
            payload[k] = v.clone();
        }
    }
    sign(
        &key("sig", RSA_PRIVATE),
        &json!({"alg": "RS256", "kid": kid}),
        &payload,
    )
}

/// The flags a provider's tokens are verified with.
fn provider_flags(provider: &str) -> Vec<&'static str> {
    match provider {
        "entra" => vec![
            "--profile",
            "entra",
            "--iss",
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            "--iss",
            "https://sts.windows.net/{tenantid}/",
            "--aud",
            "api://orders",
        ],
        "keycloak" => vec![
            "--profile",
            "keycloak",
            "--iss",
            "https://kc.example.com/realms/acme",
            "--aud",
            "orders-api",
        ],
        "cognito" => vec![
            "--profile",
            "cognito",
            "--iss",
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf",
            "--aud",
            "client-1",
        ],
        "auth0" => vec![
            "--profile",
            "auth0",
            "--iss",
            "https://acme.eu.auth0.com/",
            "--aud",
            "https://orders.example.com",
        ],
        "okta" => vec![
            "--profile",
            "okta",
            "--iss",
            "https://dev-1.okta.com/oauth2/default",
            "--aud",
            "api://default",
        ],
        _ => vec![
            "--profile",
            "google",
            "--iss",
            "https://accounts.google.com",
            "--aud",
            "1234-abc.apps.googleusercontent.com",
        ],
    }
}

#[test]
fn profiles_scopes_roles_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = provider_jwks(dir.path());
    // (provider, token overrides, extra flags, expected class)
    let cases: Vec<(&str, Value, &[&str], &str)> = vec![
        ("entra", json!({}), &[], "valid"),
        (
            "entra",
            json!({}),
            &[
                "--scope",
                "Orders.Read",
                "--scope",
                "Orders.Write",
                "--role",
                "Orders.Admin",
            ],
            "valid",
        ),
        ("entra", json!({}), &["--scope", "Orders.Delete"], "scope"),
        ("entra", json!({}), &["--role", "Billing.Admin"], "scope"),
        ("entra", json!({}), &["--tenant", TENANT], "valid"),
        (
            "entra",
            json!({"iss": format!("https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"), "tid": OTHER_TENANT}),
            &["--tenant", TENANT],
            "issuer",
        ),
        (
            "entra",
            json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0"}),
            &["--tenant", TENANT],
            "valid",
        ),
        ("entra", json!({"tid": OTHER_TENANT}), &[], "issuer"),
        ("entra", json!({}), &["--max-lifetime", "3600"], "claims"),
        (
            "keycloak",
            json!({}),
            &[
                "--role",
                "user",
                "--role",
                "orders-admin",
                "--scope",
                "profile",
            ],
            "valid",
        ),
        ("keycloak", json!({"typ": "ID"}), &[], "typ"),
        ("keycloak", json!({"typ": "Refresh"}), &[], "typ"),
        ("keycloak", json!({"aud": "billing-api"}), &[], "audience"),
        (
            "cognito",
            json!({}),
            &["--role", "admins", "--scope", "orders/read"],
            "valid",
        ),
        (
            "cognito",
            json!({"token_use": "id", "aud": "client-1", "client_id": null}),
            &[],
            "typ",
        ),
        ("cognito", json!({"client_id": "client-2"}), &[], "audience"),
        (
            "auth0",
            json!({}),
            &["--role", "read:orders", "--scope", "read:orders"],
            "valid",
        ),
        ("auth0", json!({}), &["--max-lifetime", "3600"], "claims"),
        (
            "auth0",
            json!({"aud": "https://billing.example.com"}),
            &[],
            "audience",
        ),
        (
            "okta",
            json!({}),
            &["--scope", "orders.read", "--role", "Admins"],
            "valid",
        ),
        ("okta", json!({}), &["--scope", "orders.write"], "scope"),
        ("google", json!({}), &[], "valid"),
        (
            "google",
            json!({"iss": "https://accounts.google.com"}),
            &[],
            "valid",
        ),
        (
            "google",
            json!({"iss": "https://accounts.google.com.evil.example"}),
            &[],
            "issuer",
        ),
    ];
    let mut failures = Vec::new();
    for (provider, overrides, extra, class) in cases {
        let token = provider_token(provider, overrides.clone());
        let mut flags = provider_flags(provider);
        flags.extend_from_slice(extra);
        let out = verify_with(&jwks, &token, &flags);
        let lines = json_lines(&out.stdout);
        let got = class_of(&lines[0]);
        if got != class || out.code != i32::from(class != "valid") {
            failures.push(format!(
                "{provider} {overrides} {extra:?}: expected {class}, got {got} (exit {}): {}",
                out.code, out.stdout
            ));
        }
        if class == "scope" {
            // The answer's shape: exactly valid, class and reason.
            let keys: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["class", "reason", "valid"], "{}", out.stdout);
            assert_eq!(lines[0]["valid"], false);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn profile_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = provider_jwks(dir.path());
    let token = provider_token("entra", json!({}));
    for (name, flags, needle) in [
        (
            "unknown profile",
            vec!["--profile", "azure", "--iss", ISS, "--aud", AUD],
            "unknown profile",
        ),
        (
            "tenant without a template",
            vec![
                "--profile",
                "entra",
                "--iss",
                ISS,
                "--aud",
                AUD,
                "--tenant",
                TENANT,
            ],
            "tenant",
        ),
        (
            "tenant not a GUID",
            vec![
                "--profile",
                "entra",
                "--iss",
                "https://sts.windows.net/{tenantid}/",
                "--aud",
                AUD,
                "--tenant",
                "contoso",
            ],
            "tenant",
        ),
        (
            "template without the entra profile",
            vec!["--iss", "https://sts.windows.net/{tenantid}/", "--aud", AUD],
            "issuer",
        ),
        (
            "HMAC for alg-less RSA keys",
            vec!["--rsa-alg", "HS256", "--iss", ISS, "--aud", AUD],
            "HS256",
        ),
    ] {
        let out = verify_with(&jwks, &token, &flags);
        assert_eq!(out.code, 2, "{name}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(needle), "{name}: {}", out.stderr);
    }
    // --rsa-alg PS256: the alg-less Entra key is then a PS256 key, and RS256 tokens meet
    // class `algorithm`.
    let out = verify_with(
        &jwks,
        &token,
        &["--rsa-alg", "PS256", "--iss", ISS, "--aud", AUD],
    );
    assert_eq!(
        class_of(&json_lines(&out.stdout)[0]),
        "algorithm",
        "{}",
        out.stderr
    );
}
