//! `keygen` never overwrites unless forced, and rotates by adding to `jwks.json`.

use crate::common::{run, words};
use crate::*;

#[test]
fn keygen_refuses_to_overwrite_unless_forced() {
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let pem = keys.join("k1.pem");
    let jwks = keys.join("jwks.json");
    let (pem_before, jwks_before) = (std::fs::read(&pem).unwrap(), std::fs::read(&jwks).unwrap());
    let keygen_args = |alg: &'static str, kid: &'static str| {
        ["keygen", "--alg", alg, "--kid", kid, "--out", s(keys)]
    };

    for alg in ["EdDSA", "ES256"] {
        let out = run(&keygen_args(alg, "k1"));
        assert_eq!(out.code, 2, "{alg}");
        assert!(out.stderr.contains("k1"), "{}", out.stderr);
    }
    // The same kid as a secret: the file differs, the key set says no.
    let out = run(&keygen_args("HS256", "k1"));
    assert_eq!(out.code, 2);
    assert!(!keys.join("k1.secret").exists());
    assert_eq!(std::fs::read(&pem).unwrap(), pem_before);
    assert_eq!(std::fs::read(&jwks).unwrap(), jwks_before);

    // A secret is never slipped into a public key set.
    let out = run(&keygen_args("HS256", "h1"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(std::fs::read(&jwks).unwrap(), jwks_before);

    keygen(keys, "EdDSA", "k2");
    let mut forced = keygen_args("EdDSA", "k1").to_vec();
    forced.push("--force");
    let out = run(&forced);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_ne!(std::fs::read(&pem).unwrap(), pem_before);
    #[cfg(unix)]
    assert_eq!(mode(&pem), 0o600);
    assert_eq!(kids(&jwks), ["k1"], "--force replaces the key set");
}

#[test]
fn keygen_rotation_adds_to_the_key_set_and_old_tokens_still_verify() {
    let dir = key_dir("EdDSA", "2026-10");
    let keys = dir.path();
    let old = issue(keys, &[]);
    assert_eq!(decode_part(&old, 0)["kid"], "2026-10");

    let out = run(&[
        "keygen",
        "--alg",
        "ES256",
        "--kid",
        "2026-11",
        "--out",
        s(keys),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("2026-10, 2026-11"), "{}", out.stdout);
    assert_eq!(kids(&keys.join("jwks.json")), ["2026-10", "2026-11"]);

    // New tokens are signed by the newest key; an older key can still be chosen.
    let new = issue(keys, &[]);
    assert_eq!(decode_part(&new, 0)["kid"], "2026-11");
    assert_eq!(decode_part(&new, 0)["alg"], "ES256");
    let pinned = issue(keys, &["--kid", "2026-10"]);
    assert_eq!(decode_part(&pinned, 0)["kid"], "2026-10");

    let input = format!("{old}\n{new}\n{pinned}\n");
    let out = verify(keys, None, &[], Some(input.into_bytes()));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(json_lines(&out.stdout).len(), 3);

    // A private key that does not match its published key is refused.
    let elsewhere = tempfile::tempdir().unwrap();
    keygen(elsewhere.path(), "ES256", "x");
    std::fs::copy(elsewhere.path().join("x.pem"), keys.join("2026-11.pem")).unwrap();
    let issue = "issue --keys {keys} --iss https://auth.example --aud orders-api --sub a";
    let out = run(&words(
        &format!("{issue} --kid 2026-11"),
        &[("keys", s(keys))],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not match"), "{}", out.stderr);
    // With --alg, it must be the key's.
    let out = run(&words(
        &format!("{issue} --kid 2026-10 --alg ES256"),
        &[("keys", s(keys))],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
}
