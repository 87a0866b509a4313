//! Attacks on the claims: duplicate and ill-typed members, time boundaries with and without leeway,
//! lifetime caps, issuer, audience, required claims and `typ` rules.

use std::time::Duration;

use serde_json::json;
use tokenward_claims::Algorithm;

use super::*;

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
        ("exp", json!(1.8e30)),
        ("exp", json!(-0.5)),
        ("nbf", json!(-1.5)),
        ("jti", json!("")),
        ("sub", json!("")),
        ("sid", json!("")),
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

/// RFC 7519 NumericDates may carry a fraction; it rounds towards the stricter answer (`exp`
/// and `iat` down, `nbf` up). NaN and Infinity are not JSON; negative values stay refused.
#[test]
fn fractional_numeric_dates() {
    let s = signers();
    let sign =
        |overrides: serde_json::Value| forge(&header("EdDSA", "ed"), &claims(overrides), &s.ed);
    let now = NOW as f64;
    // Zero leeway so the boundaries are exact.
    let v = validator_with(&s, |p| p.leeway(Duration::ZERO));
    let cases = vec![
        case(
            "fractional exp, iat, nbf",
            sign(json!({"exp": now + 600.5, "iat": now - 9.25, "nbf": now - 9.75})),
            Ok(()),
        ),
        case(
            "exp now + 0.5 (rounds down to now)",
            sign(json!({"exp": now + 0.5})),
            Err(Expired),
        ),
        case("exp now + 1.5", sign(json!({"exp": now + 1.5})), Ok(())),
        case(
            "nbf now + 0.5 (rounds up)",
            sign(json!({"nbf": now + 0.5})),
            Err(NotYetValid),
        ),
        case("nbf now - 0.5", sign(json!({"nbf": now - 0.5})), Ok(())),
        case("exp 1e300", sign(json!({"exp": 1e300})), Err(Claims)),
        case("exp -0.5", sign(json!({"exp": -0.5})), Err(Claims)),
        case("iat -1.0", sign(json!({"iat": -1.0})), Err(Claims)),
    ];
    check(&v, &cases);
    // Infinity and NaN cannot be written in JSON; their usual spellings are malformed.
    let base = claims(json!({}));
    for bad in ["Infinity", "NaN", "1e400"] {
        let payload = base.replacen(&format!("{}", NOW + 600), bad, 1);
        let got = v
            .verify(&forge(&header("EdDSA", "ed"), &payload, &s.ed))
            .unwrap_err();
        assert!(matches!(got.class(), Malformed | Claims), "{bad}: {got}");
    }
}
