//! `inspect`: the lint codes of a table of tokens, human and JSON output, and input that does
//! not decode.

use serde_json::json;

use crate::common::{run, run_with};
use crate::*;

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
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"});
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "jti": "j1",
        "iat": NOW, "nbf": NOW, "exp": NOW + 900,
    });
    let sig = "c2lnbmF0dXJl";
    // `value` with the members of `patch` set, or removed where the patch says `null`.
    let patched = |value: &Value, patch: Value| {
        let mut value = value.clone();
        for (name, new) in patch.as_object().unwrap() {
            if new.is_null() {
                value.as_object_mut().unwrap().remove(name);
            } else {
                value[name] = new.clone();
            }
        }
        value
    };
    let h = |patch: Value| forge(&patched(&header, patch), &claims, sig);
    let c = |patch: Value| forge(&header, &patched(&claims, patch), sig);
    let good = h(json!({}));
    let claims_b64 = b64(claims.to_string().as_bytes());
    let padded_header = b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#);
    let duplicate_alg = b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"k1","alg":"none"}"#);
    let unsigned = good.rsplit_once('.').unwrap().0;

    // (token, its lint codes: sorted, space-separated)
    let cases: Vec<(String, &str)> = vec![
        (good.clone(), ""),
        (h(json!({"alg": "none"})), "alg_none"),
        (
            forge(&json!({"alg": "none"}), &claims, ""),
            "alg_none missing_kid typ_missing",
        ),
        (h(json!({"alg": "HS256"})), "hmac_alg"),
        (h(json!({"alg": "ES512"})), "alg_unsupported"),
        (h(json!({"alg": null})), "alg_missing"),
        (
            h(json!({"jwk": {"kty": "oct", "k": "AAAA"}})),
            "embedded_key",
        ),
        (
            h(json!({"jku": "https://x", "x5u": "https://y"})),
            "embedded_key embedded_key",
        ),
        (h(json!({"x5c": ["MII"]})), "embedded_key"),
        (h(json!({"crit": ["exp"]})), "crit"),
        (h(json!({"kid": null})), "missing_kid"),
        (h(json!({"typ": null})), "typ_missing"),
        (h(json!({"typ": "JWS"})), "typ_unusual"),
        (h(json!({"typ": "application/JWT"})), ""),
        (c(json!({"exp": NOW + 86_400})), "lifetime_too_long"),
        (
            c(json!({"iat": null, "nbf": null, "exp": NOW + 7200})),
            "lifetime_too_long missing_iat",
        ),
        (c(json!({"exp": NOW})), "expired lifetime_invalid"),
        (
            c(json!({"iat": NOW - 900, "nbf": NOW - 900, "exp": NOW + 30})),
            "expired",
        ),
        (c(json!({"nbf": NOW + 600})), "not_yet_valid"),
        (c(json!({"iat": NOW + 600, "nbf": null})), "iat_in_future"),
        (c(json!({"exp": null})), "missing_exp"),
        (
            c(json!({"iss": null, "aud": null, "sub": null, "jti": null})),
            "missing_aud missing_iss missing_jti missing_sub",
        ),
        (
            c(json!({"exp": "1800000900", "iss": 42})),
            "claim_type claim_type",
        ),
        (c(json!({"pad": "x".repeat(9000)})), "token_too_large"),
        (
            format!("{padded_header}=.{claims_b64}.{sig}"),
            "non_canonical_base64",
        ),
        (
            format!("{duplicate_alg}.{claims_b64}.{sig}"),
            "alg_none duplicate_member",
        ),
        (format!("{unsigned}."), "missing_signature"),
        (format!(" {good}\n"), "whitespace"),
        (format!("Bearer {good}"), "bearer_prefix"),
    ];
    for (token, expected) in cases {
        let expected: Vec<&str> = expected.split_whitespace().collect();
        assert_eq!(lint_codes(&token), expected, "{token}");
    }
}

#[test]
fn inspect_output_and_garbage() {
    let token = forge(
        &json!({"alg": "none"}),
        &json!({"sub": "x\u{1b}[31mred"}),
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
    let stdin = Some(format!("{token}\r\n").into_bytes());
    let out = run_with(&["inspect", "--json", "-"], stdin, &[]);
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
    let not_utf8 = Some(vec![0xff, 0xfe, b'.', 0, b'.']);
    assert_eq!(run_with(&["inspect", "-"], not_utf8, &[]).code, 2);
    let huge = Some(vec![b'.'; 3 * 1024 * 1024]);
    assert_eq!(run_with(&["inspect", "--json", "-"], huge, &[]).code, 2);
}

/// The characters that steer a terminal (or reorder what it shows), and how human output
/// must show them instead.
const HOSTILE: [(char, &str); 5] = [
    ('\u{9b}', "\\u{9b}"),     // C1 CSI: `ESC [` in one byte
    ('\u{85}', "\\u{85}"),     // C1 next line
    ('\u{202e}', "\\u{202e}"), // right-to-left override
    ('\u{7}', "\\u0007"),      // BEL (the JSON rendering escapes C0 itself)
    ('\u{7f}', "\\u{7f}"),     // DEL
];

/// Fails if `text` holds any of [`HOSTILE`] raw.
fn assert_no_raw_hostile(text: &str) {
    for (c, _) in HOSTILE {
        assert!(!text.contains(c), "{c:?} reached the output raw: {text:?}");
    }
}

#[test]
fn human_output_escapes_control_and_bidi_characters() {
    let hostile: String = HOSTILE.iter().map(|(c, _)| format!("x{c}")).collect();
    let token = forge(
        &json!({"alg": "EdDSA", "typ": hostile, "kid": hostile}),
        &json!({"sub": hostile, hostile.clone(): 1, "iss": ISS}),
        "c2ln",
    );
    let out = run(&["inspect", &token]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_raw_hostile(&out.stdout);
    for (_, escaped) in HOSTILE {
        assert!(out.stdout.contains(escaped), "{escaped}: {}", out.stdout);
    }
    // The `typ_unusual` lint quotes the header value; it is escaped too.
    assert!(out.stdout.contains("typ_unusual"), "{}", out.stdout);

    // `verify` answers with the subject and kid of a valid token, and with rejection reasons.
    let dir = key_dir("EdDSA", "k1");
    let now = NOW.to_string();
    let out = run(&[
        "issue",
        "--keys",
        s(dir.path()),
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--now",
        &now,
        "--sub",
        &hostile,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let valid = out.stdout.trim_end();
    let jwks = dir.path().join("jwks.json");
    let now = (NOW + 60).to_string();
    let out = run(&[
        "verify",
        "--jwks",
        s(&jwks),
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--now",
        &now,
        valid,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_raw_hostile(&out.stdout);
    assert!(
        out.stdout
            .contains("sub=x\\u{9b}x\\u{85}x\\u{202e}x\\u{7}x\\u{7f} "),
        "{}",
        out.stdout
    );
    let out = run(&[
        "verify",
        "--jwks",
        s(&jwks),
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--now",
        &now,
        &token,
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_no_raw_hostile(&out.stdout);
    assert_no_raw_hostile(&out.stderr);
}
