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

/// A directory of `mode` holding a `jwks.json` someone else planted: the public key of a key
/// pair whose private key stays in the returned attacker directory. Returns (victim dir,
/// attacker dir).
#[cfg(unix)]
fn planted(mode: u32) -> (tempfile::TempDir, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt as _;
    let attacker = key_dir("EdDSA", "evil");
    let victim = tempfile::tempdir().unwrap();
    std::fs::copy(
        attacker.path().join("jwks.json"),
        victim.path().join("jwks.json"),
    )
    .unwrap();
    std::fs::set_permissions(victim.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    (victim, attacker)
}

#[cfg(unix)]
#[test]
fn keygen_refuses_a_directory_others_can_write_and_a_planted_key_set() {
    // (directory mode, what the refusal names)
    for (dir_mode, reason) in [
        (0o777, "writable by group or others (mode 777)"),
        (0o1777, "writable by group or others (mode 1777)"),
        (0o770, "writable by group or others (mode 770)"),
        (0o700, "not recognisably written by tokenward keygen"),
    ] {
        let (victim, _attacker) = planted(dir_mode);
        let keys = victim.path();
        let out = run(&["keygen", "--alg", "EdDSA", "--kid", "k1", "--out", s(keys)]);
        assert_eq!(out.code, 2, "{dir_mode:o}: {}", out.stdout);
        assert!(out.stderr.contains(reason), "{dir_mode:o}: {}", out.stderr);
        assert!(out.stderr.contains("--force"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(!keys.join("k1.pem").exists(), "{dir_mode:o}");
        assert_eq!(kids(&keys.join("jwks.json")), ["evil"], "{dir_mode:o}");
    }

    // A tokenward key set someone added a key to: the manifest no longer matches, and the
    // added key has no private key file here.
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let jwks = keys.join("jwks.json");
    let attacker = key_dir("EdDSA", "evil");
    let mut set: Value = serde_json::from_slice(&std::fs::read(&jwks).unwrap()).unwrap();
    let evil: Value =
        serde_json::from_slice(&std::fs::read(attacker.path().join("jwks.json")).unwrap()).unwrap();
    set["keys"]
        .as_array_mut()
        .unwrap()
        .push(evil["keys"][0].clone());
    std::fs::write(&jwks, set.to_string()).unwrap();
    let out = run(&["keygen", "--alg", "EdDSA", "--kid", "k2", "--out", s(keys)]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("jwks.json.sha256 records another SHA-256")
            && out
                .stderr
                .contains("key \"evil\" has no private key file here"),
        "{}",
        out.stderr
    );
    assert_eq!(kids(&jwks), ["k1", "evil"]);
}

#[cfg(unix)]
#[test]
fn keygen_force_overrides_the_checks_and_says_so() {
    let (victim, attacker) = planted(0o777);
    let keys = victim.path();
    let evil_token = issue(attacker.path(), &[]);
    assert_eq!(
        class_of(&json_lines(&verify(keys, Some(&evil_token), &[], None).stdout)[0]),
        "valid"
    );

    let out = run(&[
        "keygen",
        "--alg",
        "EdDSA",
        "--kid",
        "k1",
        "--out",
        s(keys),
        "--force",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for said in [
        "--force overrode a check: ",
        "is writable by group or others (mode 777)",
        "replaced ",
        "no jwks.json.sha256 next to it",
    ] {
        assert!(out.stdout.contains(said), "{said}: {}", out.stdout);
    }
    // Replaced, not extended: the planted key no longer verifies.
    assert_eq!(kids(&keys.join("jwks.json")), ["k1"]);
    assert_eq!(
        class_of(&json_lines(&verify(keys, Some(&evil_token), &[], None).stdout)[0]),
        "key"
    );
    assert_eq!(mode(&keys.join("k1.pem")), 0o600);
}

#[test]
fn keygen_fresh_directory_then_rotation() {
    let parent = tempfile::tempdir().unwrap();
    let keys = parent.path().join("keys");
    let jwks = keys.join("jwks.json");
    let manifest = keys.join("jwks.json.sha256");
    let keygen_kid =
        |kid: &str| run(&["keygen", "--alg", "EdDSA", "--kid", kid, "--out", s(&keys)]);

    let out = keygen_kid("k1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    for said in [
        format!("created directory {} (mode 0700)", keys.display()),
        format!("created {}", jwks.display()),
        format!("wrote {}", manifest.display()),
    ] {
        assert!(out.stdout.contains(&said), "{said}: {}", out.stdout);
    }
    assert!(!out.stdout.contains("--force"), "{}", out.stdout);
    #[cfg(unix)]
    {
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&keys.join("k1.pem")), 0o600);
        assert_eq!(mode(&jwks) & 0o022, 0, "{:o}", mode(&jwks));
    }
    let recorded = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        recorded.ends_with("  jwks.json\n") && recorded.len() == 64 + 12,
        "{recorded:?}"
    );

    // Rotation: the key set keygen wrote is extended.
    let out = keygen_kid("k2");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let extended = format!(
        "extended {} (recognised by jwks.json.sha256)",
        jwks.display()
    );
    assert!(out.stdout.contains(&extended), "{}", out.stdout);
    assert_eq!(kids(&jwks), ["k1", "k2"]);
    assert_ne!(std::fs::read_to_string(&manifest).unwrap(), recorded);

    // A key directory without the manifest (an earlier tokenward's) whose every key has its
    // private key file is still extended, and gets the manifest.
    std::fs::remove_file(&manifest).unwrap();
    let out = keygen_kid("k3");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("every key in it has its private key file here"),
        "{}",
        out.stdout
    );
    assert_eq!(kids(&jwks), ["k1", "k2", "k3"]);
    assert!(manifest.is_file());
}
