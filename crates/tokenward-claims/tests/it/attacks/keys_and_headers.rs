//! Attacks on the key choice and the header: `alg: none`, HS/RS key confusion, psychic and degenerate
//! signatures, embedded keys, `kid` injection, `crit`/`b64`/`zip`, `typ`, and a missing `kid`.

use serde_json::json;
use tokenward_claims::{Algorithm, Key, KeySet, Validator};

use super::*;

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
        // No kid: the one key bound to HS256 is the real HMAC key, never the RSA key.
        cases.push(case(
            format!("HS256 with {name}, no kid"),
            forge_hmac(r#"{"alg":"HS256"}"#, &ok, secret),
            Err(Signature),
        ));
        // No kid and HS384: no key is bound to it.
        cases.push(case(
            format!("HS384 with {name}, no kid"),
            forge_hmac(r#"{"alg":"HS384"}"#, &ok, secret),
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
    let attacker = generated_key("ec", Algorithm::ES256);
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
fn missing_kid_verifies_only_when_one_key_fits_the_alg() {
    let s = signers();
    let ok = claims(json!({}));
    let clock = clock();
    // verifier_keys: one key each of HS256, RS256, ES256 and two of EdDSA.
    let v = Validator::new(policy(&clock).build().unwrap(), verifier_keys(&s));
    let strict = Validator::new(
        policy(&clock).require_kid().build().unwrap(),
        verifier_keys(&s),
    );
    let cases = [
        (
            "HS256, one HMAC key (a Rails app on the jwt gem)",
            forge(r#"{"alg":"HS256"}"#, &ok, &s.hs),
            Ok(()),
        ),
        (
            "RS256, one RSA key",
            forge(r#"{"alg":"RS256"}"#, &ok, &s.rsa),
            Ok(()),
        ),
        (
            "ES256, one P-256 key",
            forge(r#"{"alg":"ES256","typ":"JWT"}"#, &ok, &s.ec),
            Ok(()),
        ),
        (
            "EdDSA, two Ed25519 keys: ambiguous",
            forge(r#"{"alg":"EdDSA"}"#, &ok, &s.ed),
            Err(Key),
        ),
        (
            "PS256, no key bound to it",
            forge(r#"{"alg":"PS256"}"#, &ok, &s.rsa),
            Err(Key),
        ),
        (
            "ES384, no key bound to it",
            forge(r#"{"alg":"ES384"}"#, &ok, &s.ec),
            Err(Key),
        ),
        (
            "HS256 keyed with the RSA key's PEM",
            forge_hmac(r#"{"alg":"HS256"}"#, &ok, RSA_PUBLIC.as_bytes()),
            Err(Signature),
        ),
        (
            "none without kid",
            with_signature(r#"{"alg":"none"}"#, &ok, b""),
            Err(Algorithm),
        ),
        (
            "HS256 signed by another secret",
            forge_hmac(r#"{"alg":"HS256"}"#, &ok, &[9; 32]),
            Err(Signature),
        ),
    ];
    for (name, token, expect) in cases {
        let got = v.verify(&token).map(|_| ()).map_err(|r| r.class());
        assert_eq!(got, expect, "{name}");
        if expect.is_ok() {
            let got = strict.verify(&token).map(|_| ()).map_err(|r| r.class());
            assert_eq!(got, Err(Key), "require_kid: {name}");
        }
    }
    // A set of exactly one key of another algorithm offers nothing to an HS256 token.
    let single =
        KeySet::single(Key::from_pem("ed", Algorithm::EdDSA, ED_PUBLIC.as_bytes()).unwrap());
    let one = Validator::new(policy(&clock).build().unwrap(), single);
    assert!(one.verify(&forge(r#"{"alg":"EdDSA"}"#, &ok, &s.ed)).is_ok());
    let hs = forge_hmac(r#"{"alg":"HS256"}"#, &ok, ED_PUBLIC.as_bytes());
    assert_eq!(one.verify(&hs).unwrap_err().class(), Key);
}
