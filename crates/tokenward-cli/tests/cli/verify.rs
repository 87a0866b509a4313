//! `keygen` → `issue` → `verify` for every algorithm, typed rejections, stdin mode, the size
//! cap, and single-key verification.

use serde_json::json;

use crate::common::{run, run_with, words};
use crate::*;

#[test]
fn keygen_issue_verify_for_every_algorithm() {
    for alg in [
        "EdDSA", "ES256", "ES384", "RS256", "PS256", "HS256", "HS384", "HS512",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        keygen(&keys, alg, "k1");
        let hmac = alg.starts_with("HS");
        let private = keys.join(if hmac { "k1.secret" } else { "k1.pem" });
        assert!(private.is_file(), "{alg}");
        #[cfg(unix)]
        {
            assert_eq!(mode(&private), 0o600, "{alg}: private key mode");
            if hmac {
                assert_eq!(mode(&keys.join("jwks.json")), 0o600, "{alg}: secret JWKS");
            }
        }
        if !hmac {
            let pem = std::fs::read_to_string(&private).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{alg}");
        }
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(keys.join("jwks.json")).unwrap())
                .unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{alg}");
        assert_eq!(jwks["keys"][0]["kid"], "k1", "{alg}");
        assert_eq!(jwks["keys"][0]["alg"], alg, "{alg}");
        if !hmac {
            assert!(
                jwks["keys"][0].get("d").is_none(),
                "{alg}: private part published"
            );
        }

        let token = issue(
            &keys,
            &["--sid", "fam-1", "--scope", "read", "--scope", "write"],
        );
        assert_eq!(decode_part(&token, 0)["alg"], alg);
        let out = verify(&keys, Some(&token), &[], None);
        assert_eq!(out.code, 0, "{alg}: {}{}", out.stdout, out.stderr);
        // Exactly one line with exactly this shape.
        assert!(
            out.stdout.starts_with(r#"{"valid":true,"claims":{"#) && out.stdout.ends_with("}}\n"),
            "{alg}: {}",
            out.stdout
        );
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 1);
        let jti = lines[0]["claims"]["jti"].as_str().unwrap().to_owned();
        assert!(jti.len() >= 22, "{alg}: jti {jti}");
        assert_eq!(
            lines[0],
            json!({
                "valid": true,
                "claims": {
                    "iss": ISS, "aud": AUD, "sub": "alice", "sid": "fam-1",
                    "scope": "read write", "iat": NOW, "nbf": NOW, "exp": NOW + 900,
                    "jti": jti,
                }
            }),
            "{alg}"
        );

        // The single-key forms verify too: the private key file (its public part) or the
        // secret file, with the algorithm given.
        let now = (NOW + 60).to_string();
        let flag = if hmac { "--secret-file" } else { "--key" };
        let vars = [
            ("flag", flag),
            ("file", s(&private)),
            ("alg", alg),
            ("now", now.as_str()),
            ("token", token.as_str()),
        ];
        let out = run(&words(
            "verify {flag} {file} --alg {alg} --iss https://auth.example --aud orders-api \
             --now {now} {token}",
            &vars,
        ));
        assert_eq!(out.code, 0, "{alg} {flag}: {}{}", out.stdout, out.stderr);
        assert_starts_with(&out.stdout, "valid: sub=alice exp=1800000900");
    }
}

#[test]
fn rejections_have_typed_classes() {
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let token = issue(keys, &[]);
    let (header, claims) = (decode_part(&token, 0), decode_part(&token, 1));
    let signature = token.rsplit('.').next().unwrap();
    let with = |value: &Value, member: &str, new: &str| {
        let mut value = value.clone();
        value[member] = new.into();
        value
    };

    let tampered = forge(&header, &with(&claims, "sub", "mallory"), signature);
    let unsigned = token.rsplit_once('.').unwrap().0;
    let another_signature = issue(keys, &[]).rsplit('.').next().unwrap().to_owned();
    let swapped = format!("{unsigned}.{another_signature}");
    let none = forge(&with(&header, "alg", "none"), &claims, "");
    let none_signed = forge(&with(&header, "alg", "none"), &claims, signature);
    let hs256 = forge(&with(&header, "alg", "HS256"), &claims, signature);
    let unknown_kid = forge(&with(&header, "kid", "k9"), &claims, signature);
    let jku = with(&header, "jku", "https://evil.example/jwks.json");
    let jku = forge(&jku, &claims, signature);
    let newline = format!("{token}\n");
    let bearer = format!("Bearer {token}");

    // (case, token, extra verify arguments, class)
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        ("tampered claims", &tampered, "", "signature"),
        ("signature of another token", &swapped, "", "signature"),
        ("expired", &token, "--now 1800003600", "expired"),
        ("not yet valid", &token, "--now 1799990000", "not_yet_valid"),
        ("wrong audience", &token, "--aud admin-api", "audience"),
        ("alg none", &none, "", "algorithm"),
        ("alg none, signed", &none_signed, "", "algorithm"),
        ("HS256 on an EdDSA key", &hs256, "", "algorithm"),
        ("algorithm not allowed", &token, "--alg ES256", "algorithm"),
        ("unknown kid", &unknown_kid, "", "key"),
        ("embedded key URL", &jku, "", "header"),
        ("typ not accepted", &token, "--typ JWT", "typ"),
        (
            "lifetime over the max",
            &token,
            "--max-lifetime 600",
            "claims",
        ),
        (
            "required sid missing",
            &token,
            "--require sub,sid",
            "claims",
        ),
        ("size cap", &token, "--max-size 100", "malformed"),
        ("trailing newline kept", &newline, "", "malformed"),
        ("Bearer prefix kept", &bearer, "", "malformed"),
    ];
    for (name, bad, extra, class) in cases {
        let extra: Vec<&str> = extra.split_whitespace().collect();
        let out = verify(keys, Some(bad), &extra, None);
        assert_eq!(out.code, 1, "{name}: {}{}", out.stdout, out.stderr);
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "{name}");
        assert_eq!(class_of(&lines[0]), class, "{name}: {}", out.stdout);
        let mut keys_of_line: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
        keys_of_line.sort();
        assert_eq!(keys_of_line, ["class", "reason", "valid"], "{name}");
        let reason = lines[0]["reason"].as_str().unwrap();
        assert!(!reason.is_empty(), "{name}");
        assert!(
            !out.stdout.contains(bad.trim()) && !out.stdout.contains(signature),
            "{name}: the answer echoes the token"
        );
    }

    // Wrong issuer, in human output.
    let jwks = keys.join("jwks.json");
    let out = run(&words(
        "verify --jwks {jwks} --iss https://other.example --aud orders-api --now 1800000060 \
         {token}",
        &[("jwks", s(&jwks)), ("token", token.as_str())],
    ));
    assert_eq!(out.code, 1);
    assert_starts_with(&out.stdout, "invalid (issuer): ");
}

#[test]
fn missing_iss_and_aud_are_warned_about_on_stderr_only() {
    let dir = key_dir("ES256", "k1");
    let token = issue(dir.path(), &[]);
    let jwks = dir.path().join("jwks.json");
    let out = run(&words(
        "verify --jwks {jwks} --json --now 1800000060 {token}",
        &[("jwks", s(&jwks)), ("token", token.as_str())],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for warning in ["issuer is NOT checked", "audience is NOT checked"] {
        assert!(out.stderr.contains(warning), "{}", out.stderr);
    }
    assert_eq!(json_lines(&out.stdout).len(), 1);
}

#[test]
fn stdin_mode_answers_every_line() {
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let good = issue(keys, &[]);
    let other = issue(keys, &["--sid", "s2"]);
    let tampered = format!("{}x", good);
    let input = format!("{good}\n{tampered}\n\n{other}\r\nnot a token\n{good}");
    let out = verify(keys, None, &[], Some(input.into_bytes()));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let classes: Vec<String> = json_lines(&out.stdout).iter().map(class_of).collect();
    assert_eq!(
        classes,
        [
            "valid",
            "malformed",
            "malformed",
            "valid",
            "malformed",
            "valid"
        ]
    );

    // All valid: exit 0; `-` also means stdin; human output, one line each.
    let jwks = keys.join("jwks.json");
    let out = run_with(
        &words(
            "verify --jwks {jwks} --iss https://auth.example --aud orders-api \
             --now 1800000060 -",
            &[("jwks", s(&jwks))],
        ),
        Some(format!("{good}\n{other}\n").into_bytes()),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l.starts_with("valid: sub=alice ")),
        "{lines:?}"
    );

    // No input at all: nothing rejected.
    let out = verify(keys, None, &[], Some(Vec::new()));
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
}

#[test]
fn a_huge_line_on_stdin_is_rejected_by_the_size_cap() {
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let good = issue(keys, &[]);
    let huge = "a".repeat(5 * 1024 * 1024);
    let input = format!("{huge}\n{good}\n{huge}\r\n");
    let out = verify(keys, None, &[], Some(input.into_bytes()));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = json_lines(&out.stdout);
    let classes: Vec<String> = lines.iter().map(class_of).collect();
    assert_eq!(classes, ["malformed", "valid", "malformed"]);
    for i in [0, 2] {
        assert_eq!(
            lines[i]["reason"],
            format!("token is {} bytes; the limit is 8192", huge.len())
        );
    }
    // Also as an argument (within the OS's argument size limit), and against a smaller cap.
    let out = verify(keys, Some(&huge[..100_000]), &[], None);
    assert_eq!(class_of(&json_lines(&out.stdout)[0]), "malformed");
    let len = good.len();
    let out = verify(keys, None, &["--max-size", "64"], Some(good.into_bytes()));
    assert_eq!(
        json_lines(&out.stdout)[0]["reason"],
        format!("token is {len} bytes; the limit is 64")
    );
}

#[test]
fn single_key_verification_and_kid_binding() {
    let dir = key_dir("EdDSA", "k1");
    let keys = dir.path();
    let token = issue(keys, &[]);
    let pem = keys.join("k1.pem");
    // `verify --key k1.pem --json [extra] TOKEN`: the class of its answer.
    let class = |extra: &str, token: &str| {
        let template = format!(
            "verify --key {{pem}} --alg EdDSA --iss https://auth.example --aud orders-api \
             --json --now 1800000060 {extra} {{token}}"
        );
        let out = run(&words(&template, &[("pem", s(&pem)), ("token", token)]));
        class_of(&json_lines(&out.stdout)[0])
    };
    assert_eq!(class("", &token), "valid");
    assert_eq!(class("--kid k1", &token), "valid");
    assert_eq!(class("--kid other", &token), "key");

    // A token without kid: the one key bound to its alg verifies it, from a single key or a
    // key set; with two such keys it is ambiguous.
    let mut header = decode_part(&token, 0);
    header.as_object_mut().unwrap().remove("kid");
    let no_kid = forge(&header, &decode_part(&token, 1), "AAAA");
    // Past the key choice, the (wrong) signature is what fails.
    let out = verify(keys, Some(&no_kid), &[], None);
    assert_eq!(class_of(&json_lines(&out.stdout)[0]), "signature");
    assert_eq!(class("", &no_kid), "signature");
    let signer = tokenward_claims::Key::from_pem(
        "k1",
        tokenward_claims::Algorithm::EdDSA,
        &std::fs::read(&pem).unwrap(),
    )
    .unwrap();
    let unsigned = forge(&header, &decode_part(&token, 1), "");
    let input = unsigned.trim_end_matches('.');
    let resigned = format!("{input}.{}", b64(&signer.sign(input.as_bytes()).unwrap()));
    let out = verify(keys, Some(&resigned), &[], None);
    assert_eq!(class_of(&json_lines(&out.stdout)[0]), "valid");
    keygen(keys, "EdDSA", "k2");
    let out = verify(keys, Some(&resigned), &[], None);
    assert_eq!(class_of(&json_lines(&out.stdout)[0]), "key");
}
