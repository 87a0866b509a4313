//! Attacks on the encoding: base64url malleability, JWE and JSON-serialized shapes, oversize and
//! deeply nested input, JSON that is not UTF-8.

use serde_json::json;

use super::*;

#[test]
fn shapes_and_encodings() {
    let s = signers();
    let ok = claims(json!({}));
    let good = forge(&header("HS256", "hs"), &ok, &s.hs);
    let parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let (h, p, sig) = (&parts[0], &parts[1], &parts[2]);

    // base64url malleability: the last signature character carries 2 unused bits (32 bytes
    // = 43 chars); setting one yields a different spelling of the same bytes.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = sig.as_bytes()[sig.len() - 1];
    let idx = ALPHABET.iter().position(|&c| c == last).unwrap();
    let malleable = format!("{}{}", &sig[..sig.len() - 1], ALPHABET[idx ^ 1] as char);

    let cases = vec![
        case("control: the good token", good.clone(), Ok(())),
        case(
            "non-canonical signature bits",
            format!("{h}.{p}.{malleable}"),
            Err(Malformed),
        ),
        case(
            "padded signature",
            format!("{h}.{p}.{sig}="),
            Err(Malformed),
        ),
        case("padded header", format!("{h}==.{p}.{sig}"), Err(Malformed)),
        case(
            "standard alphabet",
            format!("{h}.{p}.{}", sig.replace('-', "+").replace('_', "/")),
            if sig.contains(['-', '_']) {
                Err(Malformed)
            } else {
                Ok(())
            },
        ),
        case(
            "whitespace inside",
            format!("{h}.{p} .{sig}"),
            Err(Malformed),
        ),
        case("leading space", format!(" {good}"), Err(Malformed)),
        case("trailing newline", format!("{good}\n"), Err(Malformed)),
        case("Bearer prefix", format!("Bearer {good}"), Err(Malformed)),
        case("two parts", format!("{h}.{p}"), Err(Malformed)),
        case("four parts", format!("{good}.{sig}"), Err(Malformed)),
        case(
            "JWE five parts",
            format!("{h}.{p}.{sig}.{sig}.{sig}"),
            Err(Malformed),
        ),
        case(
            "JWE header",
            forge(
                r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa"}"#,
                &ok,
                &s.hs,
            ),
            Err(Algorithm),
        ),
        case(
            "JSON serialization",
            format!(r#"{{"payload":"{p}","protected":"{h}","signature":"{sig}"}}"#),
            Err(Malformed),
        ),
        case("empty", "", Err(Malformed)),
        case("dots only", "..", Err(Malformed)),
        case("non-ASCII", format!("{h}.{p}.{sig}é"), Err(Malformed)),
        case(
            "payload not JSON",
            forge(&header("HS256", "hs"), "hello", &s.hs),
            Err(Malformed),
        ),
        case(
            "payload an array",
            forge(&header("HS256", "hs"), "[]", &s.hs),
            Err(Claims),
        ),
        case(
            "oversize (9 KiB)",
            forge(
                &header("HS256", "hs"),
                &claims(json!({"pad": "x".repeat(9 * 1024)})),
                &s.hs,
            ),
            Err(Malformed),
        ),
        case(
            "oversize (8 MiB)",
            format!("{h}.{}.{sig}", "A".repeat(8 << 20)),
            Err(Malformed),
        ),
    ];
    check(&validator_with(&s, |p| p.max_token_size(8 * 1024)), &cases);
}

#[test]
fn deeply_nested_input_neither_overflows_nor_passes_unchecked() {
    let s = signers();
    let depth = 100_000;
    let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let base = claims(json!({}));
    let payload = format!(r#"{},"x":{nested}}}"#, base.trim_end_matches('}'));
    let token = forge(&header("HS256", "hs"), &payload, &s.hs);
    let big = validator_with(&s, |p| p.max_token_size(1 << 20));
    // Skipped members are validated without recursion: accepted when only registered claims
    // are asked for ...
    assert!(big.verify(&token).is_ok());
    // ... and refused (serde_json's recursion limit) when a custom type must hold them.
    let err = big.verify_with::<serde_json::Value>(&token).unwrap_err();
    assert_eq!(err.class(), Claims, "{err}");
    // The same depth in the header.
    let nested_header = format!(r#"{{"alg":"HS256","kid":"hs","x":{nested}}}"#);
    let token = forge(&nested_header, &base, &s.hs);
    assert!(big.verify(&token).is_ok());
    // Unclosed nesting is malformed.
    let token = forge(
        &header("HS256", "hs"),
        &format!(r#"{{"x":{}"#, "[".repeat(depth)),
        &s.hs,
    );
    assert_eq!(big.verify(&token).unwrap_err().class(), Malformed);
}

/// Found by the `verify_token` fuzz target (docs/security.md, "Fuzzing"): serde_json skips
/// ignored members without checking that their strings are UTF-8, so a header whose unknown
/// member held invalid UTF-8 verified. RFC 7515 §5.2 requires UTF-8 JSON in both parts.
#[test]
fn json_that_is_not_utf8_is_malformed() {
    let s = signers();
    let forge_bytes = |header: &[u8], payload: &[u8]| {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = s.hs.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&sig))
    };
    let good_header = header("HS256", "hs");
    let good_claims = claims(json!({}));
    let body = good_claims.trim_end_matches('}');
    let with_bytes = |prefix: &str, bytes: &[u8], suffix: &str| {
        [prefix.as_bytes(), bytes, suffix.as_bytes()].concat()
    };
    let cases = [
        // The fuzzer's input, reduced: a lone continuation byte, an overlong encoding, a
        // surrogate half, and a truncated sequence, in an unknown member's string.
        case(
            "header: invalid UTF-8 in an unknown member (fuzz crash-2310817503eb)",
            forge_bytes(
                &with_bytes(
                    r#"{"alg":"HS256","kid":"hs","t{p":"a"#,
                    &[0xd3; 40],
                    r#""}"#,
                ),
                good_claims.as_bytes(),
            ),
            Err(Malformed),
        ),
        case(
            "header: overlong encoding in an unknown member",
            forge_bytes(
                &with_bytes(r#"{"alg":"HS256","kid":"hs","x":""#, &[0xc0, 0xaf], r#""}"#),
                good_claims.as_bytes(),
            ),
            Err(Malformed),
        ),
        case(
            "header: surrogate half in a nested unknown member",
            forge_bytes(
                &with_bytes(
                    r#"{"alg":"HS256","kid":"hs","x":{"y":[""#,
                    &[0xed, 0xa0, 0x80],
                    r#""]}}"#,
                ),
                good_claims.as_bytes(),
            ),
            Err(Malformed),
        ),
        case(
            "header: invalid UTF-8 in a member name",
            forge_bytes(
                &with_bytes(r#"{"alg":"HS256","kid":"hs",""#, &[0xff], r#"":1}"#),
                good_claims.as_bytes(),
            ),
            Err(Malformed),
        ),
        case(
            "payload: invalid UTF-8 in a custom claim",
            forge_bytes(
                good_header.as_bytes(),
                &with_bytes(&format!(r#"{body},"role":""#), &[0xe2, 0x82], r#""}"#),
            ),
            Err(Malformed),
        ),
        case(
            "payload: invalid UTF-8 in a nested custom claim",
            forge_bytes(
                good_header.as_bytes(),
                &with_bytes(&format!(r#"{body},"x":[{{"y":""#), &[0x80], r#""}]}"#),
            ),
            Err(Malformed),
        ),
        // Valid UTF-8 outside ASCII stays acceptable.
        case(
            "non-ASCII UTF-8 in an unknown header member and a custom claim",
            forge_bytes(
                r#"{"alg":"HS256","kid":"hs","note":"é€😀"}"#.as_bytes(),
                format!(r#"{body},"name":"Zoë"}}"#).as_bytes(),
            ),
            Ok(()),
        ),
    ];
    let validator = default_validator(&s);
    check(&validator, &cases);
    // Also when custom claims are asked for.
    for c in &cases {
        let got = validator
            .verify_with::<serde_json::Value>(&c.token)
            .map(|_| ())
            .map_err(|r| r.class());
        assert_eq!(got, c.expect, "{} (verify_with)", c.name);
    }
}
