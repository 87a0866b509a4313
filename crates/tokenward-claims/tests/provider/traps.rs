//! The `jsonwebtoken` 11 traps docs/security.md lists, measured: each case is accepted by
//! `jsonwebtoken::decode` with a straightforward `Validation` and rejected by tokenward.
//! If a `jsonwebtoken` upgrade fixes one, the test says so and the docs must be updated.

use crate::common::*;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::json;
use tokenward_claims::{Algorithm, Key, KeySet, RejectionClass, ValidationPolicy, Validator};

fn jwt_accepts(token: &str) -> bool {
    tokenward_claims::crypto::install_provider();
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_secret(HS_SECRET), &v)
        .is_ok()
}

fn tokenward_class(token: &str) -> Option<RejectionClass> {
    // Both sides on the system clock, with default settings.
    let keys = KeySet::single(Key::hmac("hs", Algorithm::HS256, HS_SECRET).unwrap());
    let policy = ValidationPolicy::builder()
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    Validator::new(policy, keys)
        .verify(token)
        .err()
        .map(|r| r.class())
}

#[test]
fn traps_jsonwebtoken_falls_into_and_tokenward_does_not() {
    let key = Key::hmac("hs", Algorithm::HS256, HS_SECRET).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let base = |extra: serde_json::Value| {
        let mut c = json!({"iss": ISS, "aud": AUD, "sub": "alice", "jti": "j", "iat": now - 10, "exp": now + 600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c.to_string()
    };
    let hs = header("HS256", "hs");
    let cases: Vec<(&str, String, RejectionClass)> = vec![
        (
            "nbf in the future is not validated by default",
            forge(&hs, &base(json!({"nbf": now + 86_400})), &key),
            RejectionClass::NotYetValid,
        ),
        (
            "typ is never checked",
            forge(
                r#"{"alg":"HS256","kid":"hs","typ":"refresh+jwt"}"#,
                &base(json!({})),
                &key,
            ),
            RejectionClass::Typ,
        ),
        (
            "crit is never checked",
            forge(
                r#"{"alg":"HS256","kid":"hs","crit":["exp"]}"#,
                &base(json!({})),
                &key,
            ),
            RejectionClass::Header,
        ),
        (
            "wrong-typed sub is accepted when not required",
            forge(&hs, &base(json!({"sub": 42})), &key),
            RejectionClass::Claims,
        ),
        (
            "no size cap",
            forge(&hs, &base(json!({"pad": "x".repeat(1 << 20)})), &key),
            RejectionClass::Malformed,
        ),
    ];
    for (what, token, class) in &cases {
        assert!(
            jwt_accepts(token),
            "jsonwebtoken no longer falls for: {what} — update docs/security.md"
        );
        assert_eq!(tokenward_class(token), Some(*class), "{what}");
    }
}
