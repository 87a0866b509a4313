//! End-to-end tests of the `tokenward` binary: keygen → issue → verify, typed rejections,
//! stdin mode, exit statuses, inspect lints, key rotation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The time tokens are issued at in these tests.
const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://auth.example";
const AUD: &str = "orders-api";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_with_stdin(args: &[&str], stdin: Option<Vec<u8>>) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenward"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tokenward");
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().unwrap();
        // The binary may stop reading early; a broken pipe here is not a failure.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let output = child.wait_with_output().expect("wait for tokenward");
    if let Some(writer) = writer {
        writer.join().unwrap();
    }
    let out = Out {
        code: output.status.code().expect("exited with a status"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "tokenward {args:?} panicked: {}",
        out.stderr
    );
    out
}

fn run(args: &[&str]) -> Out {
    run_with_stdin(args, None)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn keygen(dir: &Path, alg: &str, kid: &str) {
    let out = run(&["keygen", "--alg", alg, "--kid", kid, "--out", s(dir)]);
    assert_eq!(out.code, 0, "keygen {alg}: {}", out.stderr);
}

/// A token for alice from the key directory `dir`, issued at `NOW`.
fn issue(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "issue",
        "--keys",
        s(dir),
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--sub",
        "alice",
        "--now",
    ];
    let now = NOW.to_string();
    args.push(&now);
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.code, 0, "issue: {}", out.stderr);
    let token = out.stdout.strip_suffix('\n').unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}

/// `verify --jwks DIR/jwks.json --json [extra] [token]`, with `--iss ISS`, `--aud AUD` and
/// `--now NOW+60` unless `extra` sets them.
fn verify(dir: &Path, token: Option<&str>, extra: &[&str], stdin: Option<Vec<u8>>) -> Out {
    let jwks = dir.join("jwks.json");
    let now = (NOW + 60).to_string();
    let mut args = vec!["verify", "--jwks", s(&jwks), "--json"];
    for (flag, default) in [("--iss", ISS), ("--aud", AUD), ("--now", now.as_str())] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    args.extend(token);
    run_with_stdin(&args, stdin)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The class of a `{"valid":false,...}` line, or "valid".
fn class_of(line: &Value) -> String {
    if line["valid"] == Value::Bool(true) {
        "valid".to_owned()
    } else {
        line["class"].as_str().unwrap().to_owned()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A token with `header` and `claims` as given and `signature` (base64url) appended.
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

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
            serde_json::json!({
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
        let out = run(&[
            "verify",
            flag,
            s(&private),
            "--alg",
            alg,
            "--iss",
            ISS,
            "--aud",
            AUD,
            "--now",
            &now,
            &token,
        ]);
        assert_eq!(out.code, 0, "{alg} {flag}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.starts_with("valid: sub=alice exp=1800000900"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn rejections_have_typed_classes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "k1");
    let token = issue(keys, &[]);
    let (header, claims) = (decode_part(&token, 0), decode_part(&token, 1));
    let signature = token.rsplit('.').next().unwrap();

    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = "mallory".into();
    let mut none_header = header.clone();
    none_header["alg"] = "none".into();
    let mut hs_header = header.clone();
    hs_header["alg"] = "HS256".into();
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = "k9".into();
    let mut jku_header = header.clone();
    jku_header["jku"] = "https://evil.example/jwks.json".into();

    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "tampered claims",
            forge(&header, &tampered_claims, signature),
            vec![],
            "signature",
        ),
        (
            "signature of another token",
            format!(
                "{}.{}",
                token.rsplit_once('.').unwrap().0,
                issue(keys, &[]).rsplit('.').next().unwrap()
            ),
            vec![],
            "signature",
        ),
        (
            "expired",
            token.clone(),
            vec!["--now", "1800003600"],
            "expired",
        ),
        (
            "not yet valid",
            token.clone(),
            vec!["--now", "1799990000"],
            "not_yet_valid",
        ),
        (
            "wrong audience",
            token.clone(),
            vec!["--aud", "admin-api"],
            "audience",
        ),
        (
            "alg none",
            forge(&none_header, &claims, ""),
            vec![],
            "algorithm",
        ),
        (
            "alg none with the original signature",
            forge(&none_header, &claims, signature),
            vec![],
            "algorithm",
        ),
        (
            "HS256 against an EdDSA key",
            forge(&hs_header, &claims, signature),
            vec![],
            "algorithm",
        ),
        (
            "algorithm not allowed",
            token.clone(),
            vec!["--alg", "ES256"],
            "algorithm",
        ),
        (
            "unknown kid",
            forge(&unknown_kid, &claims, signature),
            vec![],
            "key",
        ),
        (
            "embedded key URL",
            forge(&jku_header, &claims, signature),
            vec![],
            "header",
        ),
        (
            "typ not accepted",
            token.clone(),
            vec!["--typ", "JWT"],
            "typ",
        ),
        (
            "lifetime over the maximum",
            token.clone(),
            vec!["--max-lifetime", "600"],
            "claims",
        ),
        (
            "required sid missing",
            token.clone(),
            vec!["--require", "sub,sid"],
            "claims",
        ),
        (
            "size cap",
            token.clone(),
            vec!["--max-size", "100"],
            "malformed",
        ),
        (
            "trailing newline kept",
            format!("{token}\n"),
            vec![],
            "malformed",
        ),
        (
            "Bearer prefix kept",
            format!("Bearer {token}"),
            vec![],
            "malformed",
        ),
    ];
    for (name, bad, extra, class) in cases {
        let out = verify(keys, Some(&bad), &extra, None);
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
    let now = (NOW + 60).to_string();
    let jwks = keys.join("jwks.json");
    let out = run(&[
        "verify",
        "--jwks",
        s(&jwks),
        "--iss",
        "https://other.example",
        "--aud",
        AUD,
        "--now",
        &now,
        &token,
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.starts_with("invalid (issuer): "),
        "{}",
        out.stdout
    );
}

#[test]
fn missing_iss_and_aud_are_warned_about_on_stderr_only() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "ES256", "k1");
    let token = issue(dir.path(), &[]);
    let jwks = dir.path().join("jwks.json");
    let out = run(&[
        "verify",
        "--jwks",
        s(&jwks),
        "--json",
        "--now",
        "1800000060",
        &token,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("issuer is NOT checked"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("audience is NOT checked"),
        "{}",
        out.stderr
    );
    assert_eq!(json_lines(&out.stdout).len(), 1);
}

#[test]
fn stdin_mode_answers_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "k1");
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
    let now = (NOW + 60).to_string();
    let jwks = keys.join("jwks.json");
    let out = run_with_stdin(
        &[
            "verify",
            "--jwks",
            s(&jwks),
            "--iss",
            ISS,
            "--aud",
            AUD,
            "--now",
            &now,
            "-",
        ],
        Some(format!("{good}\n{other}\n").into_bytes()),
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
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "k1");
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
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "k1");
    let jwks = keys.join("jwks.json");
    let pem = keys.join("k1.pem");
    let token = issue(keys, &[]);
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frobnicate"],
        vec!["verify", &token],
        vec!["verify", "--jwks", s(&jwks), "--no-such-flag", &token],
        vec![
            "verify",
            "--jwks",
            s(&jwks),
            "--key",
            s(&pem),
            "--alg",
            "EdDSA",
            &token,
        ],
        vec!["verify", "--key", s(&pem), &token],
        vec![
            "verify",
            "--key",
            s(&pem),
            "--alg",
            "EdDSA",
            "--alg",
            "ES256",
            &token,
        ],
        vec!["verify", "--jwks", s(&jwks), "--alg", "none", &token],
        vec!["verify", "--jwks", s(&jwks), "--alg", "hs256", &token],
        vec![
            "verify",
            "--jwks",
            s(&jwks),
            "--require",
            "exp,colour",
            &token,
        ],
        vec!["verify", "--jwks", s(&jwks), "--leeway", "3600", &token],
        vec!["verify", "--jwks", s(&jwks), "--leeway", "-1", &token],
        vec!["verify", "--jwks", s(&jwks), "--kid", "k1", &token],
        vec!["issue", "--keys", s(keys), "--iss", ISS, "--sub", "alice"],
        vec!["issue", "--keys", s(keys), "--aud", AUD, "--iss", ISS],
        vec![
            "issue",
            "--key",
            s(&pem),
            "--iss",
            ISS,
            "--aud",
            AUD,
            "--sub",
            "a",
        ],
        vec![
            "issue",
            "--keys",
            s(keys),
            "--iss",
            ISS,
            "--aud",
            AUD,
            "--sub",
            "a",
            "--ttl",
            "0",
        ],
        vec!["keygen", "--alg", "none", "--kid", "k", "--out", s(keys)],
        vec![
            "keygen",
            "--alg",
            "EdDSA",
            "--kid",
            "../k",
            "--out",
            s(keys),
        ],
        vec!["keygen", "--alg", "EdDSA", "--out", s(keys)],
        vec!["inspect"],
    ];
    for args in cases {
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
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "k1");
    let token = issue(keys, &[]);
    let missing = keys.join("missing.pem");
    let garbage = keys.join("garbage.pem");
    let secret_marker = "TOPSECRETMATERIAL";
    std::fs::write(
        &garbage,
        format!("-----BEGIN PRIVATE KEY-----\n{secret_marker}!!\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let bad_jwks = keys.join("bad.json");
    std::fs::write(
        &bad_jwks,
        format!(r#"{{"keys":[{{"kty":"oct","kid":"h","alg":"HS256","k":["{secret_marker}"]}}]}}"#),
    )
    .unwrap();
    let broken_json = keys.join("broken.json");
    std::fs::write(
        &broken_json,
        format!(r#"{{"keys":[{{"k":"{secret_marker}""#),
    )
    .unwrap();
    let short_secret = keys.join("short.secret");
    std::fs::write(&short_secret, secret_marker).unwrap();
    let cases: Vec<(Vec<&str>, &Path)> = vec![
        (
            vec!["verify", "--key", s(&missing), "--alg", "EdDSA"],
            &missing,
        ),
        (
            vec!["verify", "--key", s(&garbage), "--alg", "EdDSA"],
            &garbage,
        ),
        (
            vec!["verify", "--key", s(&garbage), "--alg", "RS256"],
            &garbage,
        ),
        (vec!["verify", "--jwks", s(&missing)], &missing),
        (vec!["verify", "--jwks", s(&bad_jwks)], &bad_jwks),
        (vec!["verify", "--jwks", s(&broken_json)], &broken_json),
        (
            vec![
                "verify",
                "--secret-file",
                s(&short_secret),
                "--alg",
                "HS256",
            ],
            &short_secret,
        ),
        (
            vec!["verify", "--secret-file", s(&missing), "--alg", "HS256"],
            &missing,
        ),
        (
            vec![
                "issue",
                "--key",
                s(&garbage),
                "--alg",
                "EdDSA",
                "--iss",
                "i",
                "--aud",
                "a",
                "--sub",
                "s",
            ],
            &garbage,
        ),
        (
            vec![
                "issue",
                "--keys",
                s(&missing),
                "--iss",
                "i",
                "--aud",
                "a",
                "--sub",
                "s",
            ],
            &missing,
        ),
    ];
    for (mut args, file) in cases {
        if args[0] == "verify" {
            args.push(&token);
        }
        let out = run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(s(file)),
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
    let out = run(&[
        "issue",
        "--key",
        s(&public),
        "--alg",
        "EdDSA",
        "--iss",
        "i",
        "--aud",
        "a",
        "--sub",
        "s",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("public key"), "{}", out.stderr);
}

#[test]
fn keygen_refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "k1");
    let pem = keys.join("k1.pem");
    let jwks = keys.join("jwks.json");
    let (pem_before, jwks_before) = (std::fs::read(&pem).unwrap(), std::fs::read(&jwks).unwrap());

    for alg in ["EdDSA", "ES256"] {
        let out = run(&["keygen", "--alg", alg, "--kid", "k1", "--out", s(keys)]);
        assert_eq!(out.code, 2, "{alg}");
        assert!(out.stderr.contains("k1"), "{}", out.stderr);
    }
    // The same kid as a secret: the file differs, the key set says no.
    let out = run(&["keygen", "--alg", "HS256", "--kid", "k1", "--out", s(keys)]);
    assert_eq!(out.code, 2);
    assert!(!keys.join("k1.secret").exists());
    assert_eq!(std::fs::read(&pem).unwrap(), pem_before);
    assert_eq!(std::fs::read(&jwks).unwrap(), jwks_before);

    // A secret is never slipped into a public key set.
    let out = run(&["keygen", "--alg", "HS256", "--kid", "h1", "--out", s(keys)]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(std::fs::read(&jwks).unwrap(), jwks_before);

    keygen(keys, "EdDSA", "k2");
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
    assert_ne!(std::fs::read(&pem).unwrap(), pem_before);
    #[cfg(unix)]
    assert_eq!(mode(&pem), 0o600);
    let set: Value = serde_json::from_slice(&std::fs::read(&jwks).unwrap()).unwrap();
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["k1"], "--force replaces the key set");
}

#[test]
fn keygen_rotation_adds_to_the_key_set_and_old_tokens_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "2026-10");
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
    let set: Value =
        serde_json::from_slice(&std::fs::read(keys.join("jwks.json")).unwrap()).unwrap();
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["2026-10", "2026-11"]);

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
    let out = run(&[
        "issue",
        "--keys",
        s(keys),
        "--kid",
        "2026-11",
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--sub",
        "a",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not match"), "{}", out.stderr);
    // With --alg, it must be the key's.
    let out = run(&[
        "issue",
        "--keys",
        s(keys),
        "--kid",
        "2026-10",
        "--alg",
        "ES256",
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--sub",
        "a",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn single_key_verification_and_kid_binding() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    keygen(keys, "EdDSA", "k1");
    let token = issue(keys, &[]);
    let pem = keys.join("k1.pem");
    let now = (NOW + 60).to_string();
    let base = [
        "verify",
        "--key",
        s(&pem),
        "--alg",
        "EdDSA",
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--json",
        "--now",
        &now,
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.push(&token);
        let out = run(&args);
        class_of(&json_lines(&out.stdout)[0])
    };
    assert_eq!(with(&[]), "valid");
    assert_eq!(with(&["--kid", "k1"]), "valid");
    assert_eq!(with(&["--kid", "other"]), "key");

    // A token without kid: accepted by a single key, refused by a key set.
    let mut header = decode_part(&token, 0);
    header.as_object_mut().unwrap().remove("kid");
    let no_kid = forge(&header, &decode_part(&token, 1), "AAAA");
    let out = verify(keys, Some(&no_kid), &[], None);
    assert_eq!(class_of(&json_lines(&out.stdout)[0]), "key");
    let mut args = base.to_vec();
    args.push(&no_kid);
    let out = run(&args);
    // Past the kid check, the (wrong) signature is what fails.
    assert_eq!(class_of(&json_lines(&out.stdout)[0]), "signature");
}

/// `inspect --json` of `token` as of NOW+60: the lint codes, sorted.
fn lint_codes(token: &str) -> Vec<String> {
    let out = run(&["inspect", "--json", "--now", "1800000060", token]);
    assert_eq!(out.code, 0, "{token}: {}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["verified"], false);
    assert!(report["header"].is_object() && report["claims"].is_object());
    let mut codes: Vec<String> = report["lints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let level = l["level"].as_str().unwrap();
            assert!(level == "warning" || level == "error", "{l}");
            assert!(!l["message"].as_str().unwrap().is_empty());
            l["code"].as_str().unwrap().to_owned()
        })
        .collect();
    codes.sort();
    codes
}

#[test]
fn inspect_lints() {
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"});
    let claims = serde_json::json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "jti": "j1",
        "iat": NOW, "nbf": NOW, "exp": NOW + 900,
    });
    let sig = "c2lnbmF0dXJl";
    let with = |h: &[(&str, Value)], c: &[(&str, Value)]| {
        let (mut header, mut claims) = (header.clone(), claims.clone());
        for (k, v) in h {
            if v.is_null() {
                header.as_object_mut().unwrap().remove(*k);
            } else {
                header[*k] = v.clone();
            }
        }
        for (k, v) in c {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(*k);
            } else {
                claims[*k] = v.clone();
            }
        }
        forge(&header, &claims, sig)
    };
    let null = Value::Null;
    let cases: Vec<(String, Vec<&str>)> = vec![
        (with(&[], &[]), vec![]),
        (with(&[("alg", "none".into())], &[]), vec!["alg_none"]),
        (
            forge(&serde_json::json!({"alg": "none"}), &claims, ""),
            vec!["alg_none", "missing_kid", "typ_missing"],
        ),
        (with(&[("alg", "HS256".into())], &[]), vec!["hmac_alg"]),
        (
            with(&[("alg", "ES512".into())], &[]),
            vec!["alg_unsupported"],
        ),
        (with(&[("alg", null.clone())], &[]), vec!["alg_missing"]),
        (
            with(
                &[("jwk", serde_json::json!({"kty": "oct", "k": "AAAA"}))],
                &[],
            ),
            vec!["embedded_key"],
        ),
        (
            with(
                &[("jku", "https://x".into()), ("x5u", "https://y".into())],
                &[],
            ),
            vec!["embedded_key", "embedded_key"],
        ),
        (
            with(&[("x5c", serde_json::json!(["MII"]))], &[]),
            vec!["embedded_key"],
        ),
        (
            with(&[("crit", serde_json::json!(["exp"]))], &[]),
            vec!["crit"],
        ),
        (with(&[("kid", null.clone())], &[]), vec!["missing_kid"]),
        (with(&[("typ", null.clone())], &[]), vec!["typ_missing"]),
        (with(&[("typ", "JWS".into())], &[]), vec!["typ_unusual"]),
        (with(&[("typ", "application/JWT".into())], &[]), vec![]),
        (
            with(&[], &[("exp", (NOW + 86_400).into())]),
            vec!["lifetime_too_long"],
        ),
        (
            with(
                &[],
                &[
                    ("iat", null.clone()),
                    ("nbf", null.clone()),
                    ("exp", (NOW + 7200).into()),
                ],
            ),
            vec!["lifetime_too_long", "missing_iat"],
        ),
        (
            with(&[], &[("exp", NOW.into())]),
            vec!["expired", "lifetime_invalid"],
        ),
        (
            with(
                &[],
                &[
                    ("iat", (NOW - 900).into()),
                    ("nbf", (NOW - 900).into()),
                    ("exp", (NOW + 30).into()),
                ],
            ),
            vec!["expired"],
        ),
        (
            with(&[], &[("nbf", (NOW + 600).into())]),
            vec!["not_yet_valid"],
        ),
        (
            with(&[], &[("iat", (NOW + 600).into()), ("nbf", null.clone())]),
            vec!["iat_in_future"],
        ),
        (with(&[], &[("exp", null.clone())]), vec!["missing_exp"]),
        (
            with(
                &[],
                &[
                    ("iss", null.clone()),
                    ("aud", null.clone()),
                    ("sub", null.clone()),
                    ("jti", null.clone()),
                ],
            ),
            vec!["missing_aud", "missing_iss", "missing_jti", "missing_sub"],
        ),
        (
            with(&[], &[("exp", "1800000900".into()), ("iss", 42.into())]),
            vec!["claim_type", "claim_type"],
        ),
        (
            with(&[], &[("pad", "x".repeat(9000).into())]),
            vec!["token_too_large"],
        ),
        (
            format!(
                "{}=.{}.{sig}",
                b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#),
                b64(claims.to_string().as_bytes())
            ),
            vec!["non_canonical_base64"],
        ),
        (
            format!(
                "{}.{}.{sig}",
                b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"k1","alg":"none"}"#),
                b64(claims.to_string().as_bytes())
            ),
            vec!["alg_none", "duplicate_member"],
        ),
        (
            format!("{}.", with(&[], &[]).rsplit_once('.').unwrap().0),
            vec!["missing_signature"],
        ),
        (format!(" {}\n", with(&[], &[])), vec!["whitespace"]),
        (format!("Bearer {}", with(&[], &[])), vec!["bearer_prefix"]),
    ];
    for (token, expected) in cases {
        assert_eq!(lint_codes(&token), expected, "{token}");
    }
}

#[test]
fn inspect_output_and_garbage() {
    let token = forge(
        &serde_json::json!({"alg": "none"}),
        &serde_json::json!({"sub": "x\u{1b}[31mred"}),
        "",
    );
    let out = run(&["inspect", &token]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("NOT VERIFIED"), "{}", out.stdout);
    assert!(out.stdout.contains("alg_none"), "{}", out.stdout);
    assert!(
        !out.stdout.contains('\u{1b}'),
        "terminal escapes are not passed through"
    );

    // From stdin, with its line terminator.
    let out = run_with_stdin(
        &["inspect", "--json", "-"],
        Some(format!("{token}\r\n").into_bytes()),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["header"]["alg"], "none");

    for garbage in [
        "",
        "....",
        "a.b",
        "not a token",
        "eyJ.eyJ.eyJ",
        "!!!.???.###",
        "W10.W10.",
        "e30.bnVsbA.",
        "a.b.c.d.e",
        "\u{1}\u{7f}.\u{ff}.",
    ] {
        let out = run(&["inspect", garbage]);
        assert_eq!(out.code, 2, "{garbage:?}: {}", out.stdout);
        assert!(out.stderr.contains("not a decodable JWT"), "{}", out.stderr);
    }
    let out = run_with_stdin(&["inspect", "-"], Some(vec![0xff, 0xfe, b'.', 0, b'.']));
    assert_eq!(out.code, 2);
    let out = run_with_stdin(
        &["inspect", "--json", "-"],
        Some(vec![b'.'; 3 * 1024 * 1024]),
    );
    assert_eq!(out.code, 2);
}
