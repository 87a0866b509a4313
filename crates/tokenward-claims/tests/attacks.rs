//! The attack suite: a table of hostile and valid tokens, each with the exact outcome expected.
//!
//! Built from public knowledge of JWT attacks: `alg: none`, HS/RS key confusion, psychic ECDSA
//! signatures (CVE-2022-21449), embedded keys, `kid` injection, `crit`/`b64`, base64url
//! malleability, JWE/JSON-serialized shapes, oversize and nested input, duplicate members,
//! ill-typed claims, time boundaries, and lifetime caps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokenward_claims::{Algorithm, Key, KeySet, RejectionClass, Validator};

use RejectionClass::*;

/// `Ok(())` = must verify; `Err(class)` = must be rejected with exactly this class.
type Expect = Result<(), RejectionClass>;

struct Case {
    name: String,
    token: String,
    expect: Expect,
}

fn case(name: impl Into<String>, token: impl Into<String>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        token: token.into(),
        expect,
    }
}

fn check(validator: &Validator, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let got = validator.verify(&c.token).map(|_| ()).map_err(|r| {
            // Whatever the outcome, the reason must never contain the token or its parts.
            for part in c.token.split('.').filter(|p| p.len() > 8) {
                assert!(
                    !r.reason().contains(part),
                    "{}: reason echoes the token: {r}",
                    c.name
                );
            }
            r
        });
        let got_class = got.as_ref().map(|_| ()).map_err(|r| r.class());
        if got_class != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expect, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn validator_with(
    s: &Signers,
    build: impl FnOnce(tokenward_claims::PolicyBuilder) -> tokenward_claims::PolicyBuilder,
) -> Validator {
    let clock = clock();
    Validator::new(build(policy(&clock)).build().unwrap(), verifier_keys(s))
}

fn default_validator(s: &Signers) -> Validator {
    validator_with(s, |p| p)
}

#[test]
fn valid_tokens_pass() {
    let s = signers();
    let ok = claims(json!({}));
    let cases = vec![
        case("HS256", forge(&header("HS256", "hs"), &ok, &s.hs), Ok(())),
        case("RS256", forge(&header("RS256", "rsa"), &ok, &s.rsa), Ok(())),
        case("ES256", forge(&header("ES256", "ec"), &ok, &s.ec), Ok(())),
        case("EdDSA", forge(&header("EdDSA", "ed"), &ok, &s.ed), Ok(())),
        case(
            "second EdDSA key in the set",
            forge(&header("EdDSA", "ed2"), &ok, &s.ed2),
            Ok(()),
        ),
        case(
            "aud array containing ours",
            forge(
                &header("EdDSA", "ed"),
                &claims(json!({"aud": ["billing", AUD]})),
                &s.ed,
            ),
            Ok(()),
        ),
        case(
            "typ at+jwt",
            forge(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed"}"#, &ok, &s.ed),
            Ok(()),
        ),
        case(
            "typ application/at+jwt",
            forge(
                r#"{"alg":"EdDSA","typ":"application/at+jwt","kid":"ed"}"#,
                &ok,
                &s.ed,
            ),
            Ok(()),
        ),
        case(
            "typ absent",
            forge(r#"{"alg":"EdDSA","kid":"ed"}"#, &ok, &s.ed),
            Ok(()),
        ),
        case(
            "x5t thumbprint is harmless",
            forge(r#"{"alg":"EdDSA","kid":"ed","x5t":"abc"}"#, &ok, &s.ed),
            Ok(()),
        ),
        case(
            "custom claims and escaped names",
            forge(
                &header("EdDSA", "ed"),
                &claims(json!({"role": "admin", "n": {"deep": [1, 2]}})),
                &s.ed,
            ),
            Ok(()),
        ),
        case(
            "sid and scope",
            forge(
                &header("EdDSA", "ed"),
                &claims(json!({"sid": "fam", "scope": "a b"})),
                &s.ed,
            ),
            Ok(()),
        ),
    ];
    check(&default_validator(&s), &cases);
}

#[test]
fn alg_none_in_every_casing() {
    let s = signers();
    let ok = claims(json!({}));
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE", "NoNe"] {
        for kid in ["hs", "rsa", "unknown"] {
            let h = header(alg, kid);
            cases.push(case(
                format!("{alg}/{kid}/empty sig"),
                format!("{}.", with_signature(&h, &ok, b"").trim_end_matches('.')),
                Err(Algorithm),
            ));
            cases.push(case(
                format!("{alg}/{kid}/hmac sig"),
                forge_hmac(&h, &ok, HS_SECRET),
                Err(Algorithm),
            ));
        }
        let no_kid = format!(r#"{{"alg":"{alg}"}}"#);
        cases.push(case(
            format!("{alg}/no kid"),
            with_signature(&no_kid, &ok, b""),
            Err(Algorithm),
        ));
    }
    cases.push(case(
        "alg missing",
        forge(r#"{"kid":"ed"}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "alg null",
        forge(r#"{"alg":null,"kid":"ed"}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "alg lowercase hs256",
        forge_hmac(&header("hs256", "hs"), &ok, HS_SECRET),
        Err(Algorithm),
    ));
    cases.push(case(
        "alg with space",
        forge_hmac(&header("HS256 ", "hs"), &ok, HS_SECRET),
        Err(Algorithm),
    ));
    cases.push(case(
        "alg ES512 unsupported",
        forge(&header("ES512", "ec"), &ok, &s.ec),
        Err(Algorithm),
    ));
    check(&default_validator(&s), &cases);
}

#[test]
fn hs_rs_key_confusion_with_every_public_key_encoding() {
    let ok = claims(json!({}));
    let spki_der = pem::parse(RSA_PUBLIC).unwrap().into_contents();
    let pkcs1_der = pem::parse(RSA_PKCS1_PUBLIC).unwrap().into_contents();
    let jwk = serde_json::to_string(
        &Key::from_pem("rsa", Algorithm::RS256, RSA_PUBLIC.as_bytes())
            .unwrap()
            .public_jwk()
            .unwrap(),
    )
    .unwrap();
    let n = {
        use pkcs1::der::Decode as _;
        let k = pkcs1::RsaPublicKey::from_der(&pkcs1_der).unwrap();
        k.modulus.as_bytes().to_vec()
    };
    let encodings: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", RSA_PUBLIC.as_bytes().to_vec()),
        (
            "SPKI PEM without trailing newline",
            RSA_PUBLIC.trim_end().as_bytes().to_vec(),
        ),
        (
            "SPKI PEM with CRLF",
            RSA_PUBLIC.replace('\n', "\r\n").into_bytes(),
        ),
        ("PKCS#1 PEM", RSA_PKCS1_PUBLIC.as_bytes().to_vec()),
        ("SPKI DER", spki_der),
        ("PKCS#1 DER", pkcs1_der),
        ("JWK JSON", jwk.into_bytes()),
        ("modulus bytes", n),
    ];
    let mut cases = Vec::new();
    for (name, secret) in &encodings {
        for alg in ["HS256", "HS384", "HS512"] {
            // The attacker names the RSA key: its algorithm is RS256, so any HS* is refused.
            cases.push(case(
                format!("{alg} with {name} as secret, kid rsa"),
                forge_hmac(&header(alg, "rsa"), &ok, secret),
                Err(Algorithm),
            ));
        }
        // Naming the real HMAC key: the attacker does not know its secret.
        cases.push(case(
            format!("HS256 with {name}, kid hs"),
            forge_hmac(&header("HS256", "hs"), &ok, secret),
            Err(Signature),
        ));
        // No kid: refused before any key is chosen.
        cases.push(case(
            format!("HS256 with {name}, no kid"),
            forge_hmac(r#"{"alg":"HS256"}"#, &ok, secret),
            Err(Key),
        ));
    }
    // The reverse: an RS256 header on the HMAC key.
    let s = signers();
    cases.push(case(
        "RS256 header on the HMAC kid",
        forge(&header("RS256", "hs"), &ok, &s.rsa),
        Err(Algorithm),
    ));
    cases.push(case(
        "ES256 header on the RSA kid",
        forge(&header("ES256", "rsa"), &ok, &s.ec),
        Err(Algorithm),
    ));
    cases.push(case(
        "PS256 header on the RS256 kid",
        forge(&header("PS256", "rsa"), &ok, &s.rsa),
        Err(Algorithm),
    ));
    check(&default_validator(&s), &cases);
}

#[test]
fn psychic_and_degenerate_signatures() {
    let ok = claims(json!({}));
    let mut cases = Vec::new();
    for (alg, kid, len) in [
        ("ES256", "ec", 64usize),
        ("EdDSA", "ed", 64),
        ("RS256", "rsa", 256),
        ("HS256", "hs", 32),
    ] {
        let h = header(alg, kid);
        cases.push(case(
            format!("{alg} all-zero signature (CVE-2022-21449)"),
            with_signature(&h, &ok, &vec![0u8; len]),
            Err(Signature),
        ));
        cases.push(case(
            format!("{alg} all-ones signature"),
            with_signature(&h, &ok, &vec![0xffu8; len]),
            Err(Signature),
        ));
        cases.push(case(
            format!("{alg} empty signature"),
            with_signature(&h, &ok, b""),
            Err(Signature),
        ));
        cases.push(case(
            format!("{alg} one-byte signature"),
            with_signature(&h, &ok, b"\x01"),
            Err(Signature),
        ));
    }
    // ECDSA r = s = n (the group order of P-256): also out of range.
    let n = unb64("_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE");
    let mut rs = n.clone();
    rs.extend_from_slice(&n);
    cases.push(case(
        "ES256 r = s = n",
        with_signature(&header("ES256", "ec"), &ok, &rs),
        Err(Signature),
    ));
    // A DER-encoded ECDSA signature instead of the fixed r||s form.
    let s = signers();
    let good = forge(&header("ES256", "ec"), &ok, &s.ec);
    let parts: Vec<&str> = good.split('.').collect();
    let raw = unb64(parts[2]);
    let mut der = vec![0x30, 0x44, 0x02, 0x20];
    der.extend_from_slice(&raw[..32]);
    der.extend_from_slice(&[0x02, 0x20]);
    der.extend_from_slice(&raw[32..]);
    cases.push(case(
        "ES256 DER signature",
        format!("{}.{}.{}", parts[0], parts[1], b64(&der)),
        Err(Signature),
    ));
    // Tampering with the payload of a good token.
    let evil = b64(claims(json!({"sub": "admin"})).as_bytes());
    cases.push(case(
        "payload swapped",
        format!("{}.{}.{}", parts[0], evil, parts[2]),
        Err(Signature),
    ));
    // A signature from another key with the same kid.
    let other = Key::hmac("hs", Algorithm::HS256, &[9u8; 32]).unwrap();
    cases.push(case(
        "HS256 signed with another secret",
        forge(&header("HS256", "hs"), &ok, &other),
        Err(Signature),
    ));
    check(&default_validator(&s), &cases);
}

#[test]
fn embedded_keys_kid_injection_and_crit() {
    let s = signers();
    let ok = claims(json!({}));
    let attacker = Key::from_pkcs8_der(
        "ec",
        Algorithm::ES256,
        &tokenward_claims::generate_pkcs8(Algorithm::ES256).unwrap(),
    )
    .unwrap();
    let attacker_jwk = serde_json::to_value(attacker.public_jwk().unwrap()).unwrap();
    let mut cases = Vec::new();
    for (member, value) in [
        ("jwk", attacker_jwk.clone()),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIJAK"])),
    ] {
        // Signed by the attacker's key, which the header embeds or points to.
        let h = json!({"alg": "ES256", "kid": "ec", member: value}).to_string();
        cases.push(case(
            format!("embedded {member}, attacker-signed"),
            forge(&h, &ok, &attacker),
            Err(Header),
        ));
        // Even correctly signed by our key, the member is refused.
        cases.push(case(
            format!("embedded {member}, validly signed"),
            forge(&h, &ok, &s.ec),
            Err(Header),
        ));
        // Without a kid the embedded key is still never used.
        let h = json!({"alg": "ES256", member: value}).to_string();
        cases.push(case(
            format!("embedded {member}, no kid"),
            forge(&h, &ok, &attacker),
            Err(Header),
        ));
    }
    for kid in [
        "../../../../dev/null",
        "' OR '1'='1",
        "x\u{0}y",
        "hs ",
        "HS",
        "",
        "ed\u{200b}",
        "/etc/passwd|",
        &"k".repeat(5000),
    ] {
        let h = json!({"alg": "HS256", "kid": kid}).to_string();
        cases.push(case(
            format!(
                "kid injection {:?}",
                kid.chars().take(20).collect::<String>()
            ),
            forge_hmac(&h, &ok, b""),
            Err(Key),
        ));
    }
    cases.push(case(
        "kid is a number",
        forge(r#"{"alg":"EdDSA","kid":5}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "crit exp",
        forge(r#"{"alg":"EdDSA","kid":"ed","crit":["exp"]}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "crit empty",
        forge(r#"{"alg":"EdDSA","kid":"ed","crit":[]}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "b64 false with crit",
        forge(
            r#"{"alg":"EdDSA","kid":"ed","b64":false,"crit":["b64"]}"#,
            &ok,
            &s.ed,
        ),
        Err(Header),
    ));
    cases.push(case(
        "b64 false without crit",
        forge(r#"{"alg":"EdDSA","kid":"ed","b64":false}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "zip",
        forge(r#"{"alg":"EdDSA","kid":"ed","zip":"DEF"}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "typ JWS",
        forge(r#"{"alg":"EdDSA","kid":"ed","typ":"JWS"}"#, &ok, &s.ed),
        Err(Typ),
    ));
    cases.push(case(
        "typ refresh+jwt",
        forge(
            r#"{"alg":"EdDSA","kid":"ed","typ":"refresh+jwt"}"#,
            &ok,
            &s.ed,
        ),
        Err(Typ),
    ));
    cases.push(case(
        "typ number",
        forge(r#"{"alg":"EdDSA","kid":"ed","typ":1}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "duplicate alg",
        forge(r#"{"alg":"EdDSA","kid":"ed","alg":"EdDSA"}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "duplicate kid",
        forge(r#"{"alg":"EdDSA","kid":"hs","kid":"ed"}"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "header is an array",
        forge(r#"["EdDSA"]"#, &ok, &s.ed),
        Err(Header),
    ));
    cases.push(case(
        "header is not JSON",
        forge("alg=EdDSA", &ok, &s.ed),
        Err(Malformed),
    ));
    check(&default_validator(&s), &cases);
}

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

#[test]
fn duplicate_and_ill_typed_claims() {
    let s = signers();
    let sign = |payload: &str| forge(&header("EdDSA", "ed"), payload, &s.ed);
    let base = claims(json!({}));
    let body = base.trim_start_matches('{').trim_end_matches('}');
    let mut cases = vec![
        case(
            "duplicate sub",
            sign(&format!(r#"{{{body},"sub":"admin"}}"#)),
            Err(Claims),
        ),
        case(
            "duplicate iss (escaped)",
            sign(&format!(r#"{{{body},"\u0069ss":"{ISS}"}}"#)),
            Err(Claims),
        ),
        case(
            "duplicate custom member",
            sign(&format!(r#"{{{body},"role":"user","role":"admin"}}"#)),
            Err(Claims),
        ),
    ];
    for (claim, value) in [
        ("exp", json!("9999999999")),
        ("exp", json!(1.8e9)),
        ("exp", json!(-1)),
        ("exp", json!(null)),
        ("exp", json!(true)),
        ("nbf", json!("0")),
        ("iat", json!([NOW])),
        ("iss", json!(42)),
        ("iss", json!([ISS])),
        ("sub", json!({"id": 1})),
        ("aud", json!([7])),
        ("aud", json!([])),
        ("aud", json!({"aud": AUD})),
        ("aud", json!([AUD, 7])),
        ("jti", json!(5)),
        ("sid", json!(false)),
        ("scope", json!(["a"])),
    ] {
        // `claims()` drops null overrides, so spell the null case by hand.
        let payload = if value.is_null() {
            format!(r#"{{{body},"{claim}":null}}"#).replacen(
                &format!(r#""{claim}":{}"#, json!(NOW + 600)),
                r#""pad":0"#,
                1,
            )
        } else {
            claims(json!({ claim: value }))
        };
        cases.push(case(
            format!("{claim} = {value}"),
            sign(&payload),
            Err(Claims),
        ));
    }
    check(&default_validator(&s), &cases);
}

#[test]
fn time_boundaries_with_and_without_leeway() {
    let s = signers();
    let sign = |o: serde_json::Value| forge(&header("EdDSA", "ed"), &claims(o), &s.ed);
    let strict = vec![
        case("exp = now + 1", sign(json!({"exp": NOW + 1})), Ok(())),
        case("exp = now", sign(json!({"exp": NOW})), Err(Expired)),
        case(
            "exp = now - 1",
            sign(json!({"exp": NOW - 1, "iat": NOW - 100, "nbf": NOW - 100})),
            Err(Expired),
        ),
        case(
            "exp = 0",
            sign(json!({"exp": 0, "iat": 0, "nbf": 0})),
            Err(Expired),
        ),
        case("nbf = now", sign(json!({"nbf": NOW})), Ok(())),
        case(
            "nbf = now + 1",
            sign(json!({"nbf": NOW + 1})),
            Err(NotYetValid),
        ),
        case("iat = now", sign(json!({"iat": NOW})), Ok(())),
        case(
            "iat = now + 1",
            sign(json!({"iat": NOW + 1, "nbf": NOW})),
            Err(NotYetValid),
        ),
        case(
            "exp = u64::MAX",
            sign(json!({"exp": u64::MAX})),
            Err(Claims),
        ),
        case(
            "lifetime exactly max (3600)",
            sign(json!({"iat": NOW - 10, "exp": NOW + 3590})),
            Ok(()),
        ),
        case(
            "lifetime max + 1",
            sign(json!({"iat": NOW - 10, "exp": NOW + 3591})),
            Err(Claims),
        ),
        case(
            "30-day token (the stolen laptop)",
            sign(json!({"iat": NOW - 10, "exp": NOW + 30 * 86400})),
            Err(Claims),
        ),
        case(
            "exp before iat",
            sign(json!({"iat": NOW - 10, "exp": NOW - 20, "nbf": NOW - 30})),
            Err(Expired),
        ),
        case(
            "exp = iat",
            sign(json!({"iat": NOW + 5, "nbf": NOW, "exp": NOW + 5})),
            Err(NotYetValid),
        ),
    ];
    check(&validator_with(&s, |p| p.leeway(Duration::ZERO)), &strict);

    let lenient = vec![
        case(
            "exp = now - 29, leeway 30",
            sign(json!({"exp": NOW - 29, "iat": NOW - 100, "nbf": NOW - 100})),
            Ok(()),
        ),
        case(
            "exp = now - 30, leeway 30",
            sign(json!({"exp": NOW - 30, "iat": NOW - 100, "nbf": NOW - 100})),
            Err(Expired),
        ),
        case(
            "nbf = now + 30, leeway 30",
            sign(json!({"nbf": NOW + 30})),
            Ok(()),
        ),
        case(
            "nbf = now + 31, leeway 30",
            sign(json!({"nbf": NOW + 31})),
            Err(NotYetValid),
        ),
        case(
            "iat = now + 30, leeway 30",
            sign(json!({"iat": NOW + 30, "nbf": NOW})),
            Ok(()),
        ),
        case(
            "iat = now + 31, leeway 30",
            sign(json!({"iat": NOW + 31, "nbf": NOW})),
            Err(NotYetValid),
        ),
    ];
    check(
        &validator_with(&s, |p| p.leeway(Duration::from_secs(30))),
        &lenient,
    );
}

#[test]
fn issuer_audience_required_claims_and_typ() {
    let s = signers();
    let sign = |o: serde_json::Value| forge(&header("EdDSA", "ed"), &claims(o), &s.ed);
    let mut cases = vec![
        case(
            "wrong issuer",
            sign(json!({"iss": "https://evil.example"})),
            Err(Issuer),
        ),
        case(
            "issuer differs in case",
            sign(json!({"iss": ISS.to_uppercase()})),
            Err(Issuer),
        ),
        case(
            "issuer with trailing slash",
            sign(json!({"iss": format!("{ISS}/")})),
            Err(Issuer),
        ),
        case(
            "wrong audience",
            sign(json!({"aud": "admin-api"})),
            Err(Audience),
        ),
        case(
            "aud array without ours",
            sign(json!({"aud": ["admin-api", "billing"]})),
            Err(Audience),
        ),
        case(
            "aud substring",
            sign(json!({"aud": "orders-api-admin"})),
            Err(Audience),
        ),
    ];
    for claim in ["exp", "iat", "iss", "aud", "sub", "jti"] {
        cases.push(case(
            format!("missing {claim}"),
            sign(json!({ claim: null })),
            Err(Claims),
        ));
    }
    cases.push(case(
        "missing nbf is fine",
        sign(json!({"nbf": null})),
        Ok(()),
    ));
    check(&default_validator(&s), &cases);

    let typ_required = vec![
        case(
            "no typ when required",
            forge(r#"{"alg":"EdDSA","kid":"ed"}"#, &claims(json!({})), &s.ed),
            Err(Typ),
        ),
        case(
            "typ JWT when required",
            forge(&header("EdDSA", "ed"), &claims(json!({})), &s.ed),
            Ok(()),
        ),
    ];
    check(&validator_with(&s, |p| p.require_typ()), &typ_required);

    let at_only = vec![case(
        "typ JWT when only at+jwt",
        forge(&header("EdDSA", "ed"), &claims(json!({})), &s.ed),
        Err(Typ),
    )];
    check(&validator_with(&s, |p| p.typ(["at+jwt"])), &at_only);

    let restricted = vec![
        case(
            "HS256 not in the allowed list",
            forge(&header("HS256", "hs"), &claims(json!({})), &s.hs),
            Err(Algorithm),
        ),
        case(
            "EdDSA allowed",
            forge(&header("EdDSA", "ed"), &claims(json!({})), &s.ed),
            Ok(()),
        ),
    ];
    check(
        &validator_with(&s, |p| p.algorithms([Algorithm::EdDSA])),
        &restricted,
    );

    let sid_required = vec![
        case("missing sid", sign(json!({})), Err(Claims)),
        case("with sid", sign(json!({"sid": "f1"})), Ok(())),
    ];
    check(
        &validator_with(&s, |p| p.require(tokenward_claims::Claim::Sid)),
        &sid_required,
    );
}

#[test]
fn missing_kid_only_with_a_single_key_and_opt_in() {
    let s = signers();
    let ok = claims(json!({}));
    let no_kid = forge(r#"{"alg":"EdDSA"}"#, &ok, &s.ed);
    let clock = clock();
    let single =
        KeySet::single(Key::from_pem("ed", Algorithm::EdDSA, ED_PUBLIC.as_bytes()).unwrap());
    let strict = Validator::new(policy(&clock).build().unwrap(), single.clone());
    assert_eq!(strict.verify(&no_kid).unwrap_err().class(), Key);
    let lenient = Validator::new(
        policy(&clock)
            .dangerous_allow_missing_kid()
            .build()
            .unwrap(),
        single,
    );
    assert!(lenient.verify(&no_kid).is_ok());
    // With several keys a missing kid is ambiguous, opt-in or not.
    let many = Validator::new(
        policy(&clock)
            .dangerous_allow_missing_kid()
            .build()
            .unwrap(),
        verifier_keys(&s),
    );
    assert_eq!(many.verify(&no_kid).unwrap_err().class(), Key);
}
