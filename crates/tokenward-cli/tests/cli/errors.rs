//! Usage and key errors: exit status 2, a message on stderr, nothing on stdout, and never any
//! key material.

use std::path::Path;

use crate::common::{run, words};
use crate::*;

#[test]
fn usage_errors_exit_2() {
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let jwks = keys.join("jwks.json");
    let pem = keys.join("k1.pem");
    let token = issue(keys, &[]);
    let vars = [
        ("keys", s(keys)),
        ("jwks", s(&jwks)),
        ("pem", s(&pem)),
        ("token", token.as_str()),
    ];
    let issue = "issue --iss https://auth.example --aud orders-api --sub a";
    let (issue_key, issue_ttl_0) = (
        format!("{issue} --key {{pem}}"),
        format!("{issue} --keys {{keys}} --ttl 0"),
    );
    let cases = [
        "",
        "frobnicate",
        "verify {token}",
        "verify --jwks {jwks} --no-such-flag {token}",
        "verify --jwks {jwks} --key {pem} --alg EdDSA {token}",
        "verify --key {pem} {token}",
        "verify --key {pem} --alg EdDSA --alg ES256 {token}",
        "verify --jwks {jwks} --alg none {token}",
        "verify --jwks {jwks} --alg hs256 {token}",
        "verify --jwks {jwks} --require exp,colour {token}",
        "verify --jwks {jwks} --leeway 3600 {token}",
        "verify --jwks {jwks} --leeway -1 {token}",
        "verify --jwks {jwks} --kid k1 {token}",
        "issue --keys {keys} --iss https://auth.example --sub alice",
        "issue --keys {keys} --aud orders-api --iss https://auth.example",
        issue_key.as_str(),
        issue_ttl_0.as_str(),
        "keygen --alg none --kid k --out {keys}",
        "keygen --alg EdDSA --kid ../k --out {keys}",
        "keygen --alg EdDSA --out {keys}",
        "inspect",
    ];
    for template in cases {
        let args = words(template, &vars);
        let out = run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = run(&["--help"]);
    assert_eq!(out.code, 0);
    for command in ["keygen", "issue", "verify", "inspect"] {
        assert!(out.stdout.contains(command), "{}", out.stdout);
    }
}

#[test]
fn key_errors_exit_2_and_never_print_key_material() {
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let token = issue(keys, &[]);
    let secret_marker = "TOPSECRETMATERIAL";
    let file = |name: &str, content: String| {
        let path = keys.join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let missing = keys.join("missing.pem");
    let garbage = file(
        "garbage.pem",
        format!("-----BEGIN PRIVATE KEY-----\n{secret_marker}!!\n-----END PRIVATE KEY-----\n"),
    );
    let bad_jwks = file(
        "bad.json",
        format!(r#"{{"keys":[{{"kty":"oct","kid":"h","alg":"HS256","k":["{secret_marker}"]}}]}}"#),
    );
    let broken_json = file(
        "broken.json",
        format!(r#"{{"keys":[{{"k":"{secret_marker}""#),
    );
    let short_secret = file("short.secret", secret_marker.to_owned());
    let vars = [
        ("missing", s(&missing)),
        ("garbage", s(&garbage)),
        ("bad_jwks", s(&bad_jwks)),
        ("broken_json", s(&broken_json)),
        ("short_secret", s(&short_secret)),
        ("token", token.as_str()),
    ];
    let issue = "issue --iss i --aud a --sub s";
    let (issue_garbage, issue_missing) = (
        format!("{issue} --key {{garbage}} --alg EdDSA"),
        format!("{issue} --keys {{missing}}"),
    );
    // (command, the file its error must name)
    let cases = [
        ("verify --key {missing} --alg EdDSA {token}", "missing"),
        ("verify --key {garbage} --alg EdDSA {token}", "garbage"),
        ("verify --key {garbage} --alg RS256 {token}", "garbage"),
        ("verify --jwks {missing} {token}", "missing"),
        ("verify --jwks {bad_jwks} {token}", "bad_jwks"),
        ("verify --jwks {broken_json} {token}", "broken_json"),
        (
            "verify --secret-file {short_secret} --alg HS256 {token}",
            "short_secret",
        ),
        (
            "verify --secret-file {missing} --alg HS256 {token}",
            "missing",
        ),
        (issue_garbage.as_str(), "garbage"),
        (issue_missing.as_str(), "missing"),
    ];
    for (template, file) in cases {
        let args = words(template, &vars);
        let out = run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        let file = vars.iter().find(|(name, _)| *name == file).unwrap().1;
        assert!(
            out.stderr.contains(file),
            "{args:?}: the error does not name the file: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains(secret_marker) && !out.stdout.contains(secret_marker),
            "{args:?}: key material printed: {}",
            out.stderr
        );
    }

    // A public key cannot issue.
    let public = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tokenward-claims/tests/fixtures/ed25519.pub.pem");
    let out = run(&words(
        &format!("{issue} --key {{public}} --alg EdDSA"),
        &[("public", s(&public))],
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("public key"), "{}", out.stderr);
}
