//! Issuing, typed custom claims, and several issuers in one process.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use serde::{Deserialize, Serialize};
use tokenward_claims::{
    AccessToken, Algorithm, Audience, IssueError, IssuerRouter, Key, KeySet, RejectionClass,
    TokenIssuer, ValidationPolicy, Validator,
};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Tenant {
    tenant: String,
    plan: Option<String>,
}

fn ed_keys(kid: &str) -> KeySet {
    KeySet::single(generated_key(kid, Algorithm::EdDSA))
}

#[test]
fn issued_tokens_carry_every_registered_claim() {
    let clock = clock();
    let keys = ed_keys("k1");
    let issuer = issuer(keys.clone(), &clock);
    let t = issuer
        .issue(
            &AccessToken::new("alice")
                .sid("fam-1")
                .scope("read")
                .scope("write"),
        )
        .unwrap();
    let c = &t.claims;
    assert_eq!(
        (c.iat, c.nbf, c.exp),
        (Some(NOW), Some(NOW), Some(NOW + 900)),
        "15 minute default"
    );
    assert_eq!(c.iss.as_deref(), Some(ISS));
    assert_eq!(c.aud, Some(Audience::One(AUD.into())));
    assert_eq!(c.sid.as_deref(), Some("fam-1"));
    assert_eq!(c.scope.as_deref(), Some("read write"));
    assert_eq!(c.jti.as_ref().unwrap().len(), 22, "128-bit jti");
    assert!(
        !format!("{t:?}").contains(&t.token),
        "Debug must redact the token"
    );

    let header: serde_json::Value =
        serde_json::from_slice(&unb64(t.token.split('.').next().unwrap())).unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"})
    );

    let v = Validator::new(policy(&clock).require_typ().build().unwrap(), keys);
    let verified = v.verify(&t.token).unwrap();
    assert_eq!(verified.claims, t.claims);
    assert_eq!(verified.kid, "k1");
    // The store ids, each scoped by the token's issuer.
    let r = verified.token_ref().unwrap();
    let scope = tokenward_core::IssuerScope::new(c.iss.as_deref().unwrap());
    let scoped = |id: Option<&str>| id.map(|id| scope.id(id).unwrap());
    assert_eq!(
        [r.jti, r.sid, r.sub],
        [
            scoped(c.jti.as_deref()),
            scoped(Some("fam-1")),
            scoped(Some("alice"))
        ]
    );
    assert_eq!(
        (r.iat, r.exp),
        (
            c.iat.map(tokenward_core::UnixTime::from_secs),
            tokenward_core::UnixTime::from_secs(c.exp.unwrap())
        )
    );

    // jti values are unique.
    let jtis: HashSet<String> = (0..500)
        .map(|_| {
            issuer
                .issue(&AccessToken::new("a"))
                .unwrap()
                .claims
                .jti
                .unwrap()
        })
        .collect();
    assert_eq!(jtis.len(), 500);
    // Overrides.
    let t = issuer
        .issue(
            &AccessToken::new("bob")
                .ttl(Duration::from_secs(60))
                .audience(vec!["a".to_owned(), "b".to_owned()]),
        )
        .unwrap();
    assert_eq!(t.claims.exp, Some(NOW + 60));
    assert_eq!(
        t.claims.aud,
        Some(Audience::Many(vec!["a".into(), "b".into()]))
    );
}

#[test]
fn typed_custom_claims() {
    let keys = ed_keys("k");
    let clock = clock();
    let issuer = issuer(keys.clone(), &clock);
    let custom = Tenant {
        tenant: "acme".into(),
        plan: Some("gold".into()),
    };
    let t = issuer
        .issue_with(&AccessToken::new("alice"), &custom)
        .unwrap();
    let v = Validator::new(policy(&clock).build().unwrap(), keys);
    let verified = v.verify_with::<Tenant>(&t.token).unwrap();
    assert_eq!(verified.custom, custom);
    assert_eq!(verified.claims.sub.as_deref(), Some("alice"));
    // A token without the custom claim fails typed verification with `claims`...
    let plain = issuer.issue(&AccessToken::new("alice")).unwrap();
    assert_eq!(
        v.verify_with::<Tenant>(&plain.token).unwrap_err().class(),
        RejectionClass::Claims
    );
    // ... but is fine when only registered claims are asked for.
    assert!(v.verify(&plain.token).is_ok());
    // Custom claims cannot smuggle registered ones.
    let err = issuer
        .issue_with(
            &AccessToken::new("alice"),
            &serde_json::json!({"sub": "admin"}),
        )
        .unwrap_err();
    assert!(matches!(err, IssueError::CustomClaims(_)));
    let err = issuer
        .issue_with(&AccessToken::new("alice"), &42)
        .unwrap_err();
    assert!(matches!(err, IssueError::CustomClaims(_)));
}

#[test]
fn issuing_needs_an_active_signing_key() {
    let mut keys = KeySet::new();
    keys.insert(Key::from_pem("pub", Algorithm::EdDSA, ED_PUBLIC.as_bytes()).unwrap())
        .unwrap();
    let issuer = TokenIssuer::builder(keys, ISS).build().unwrap();
    assert!(matches!(
        issuer.issue(&AccessToken::new("a")),
        Err(IssueError::NoSigningKey)
    ));
    assert!(TokenIssuer::builder(KeySet::new(), "").build().is_err());
    assert!(
        TokenIssuer::builder(KeySet::new(), ISS)
            .ttl(Duration::ZERO)
            .build()
            .is_err()
    );
}

/// Token times are whole seconds: a lifetime of zero or with a fraction of a second is an
/// error naming `ttl`, where it used to be rounded (a zero per-token TTL became 1 s).
#[test]
fn lifetimes_out_of_range_are_errors_not_rounded() {
    let keys = ed_keys("k");
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_millis(1500),
    ] {
        let err = TokenIssuer::builder(keys.clone(), ISS)
            .ttl(ttl)
            .build()
            .unwrap_err();
        assert!(err.to_string().starts_with("`ttl`"), "{ttl:?}: {err}");
        let issuer = TokenIssuer::builder(keys.clone(), ISS).build().unwrap();
        let err = issuer
            .issue(&AccessToken::new("alice").ttl(ttl))
            .unwrap_err();
        assert!(
            matches!(err, IssueError::Invalid { field: "ttl", .. }),
            "{ttl:?}: {err}"
        );
    }
    let issuer = TokenIssuer::builder(keys, ISS)
        .ttl(Duration::from_secs(1))
        .clock(Arc::new(clock()))
        .build()
        .unwrap();
    let t = issuer.issue(&AccessToken::new("alice")).unwrap();
    assert_eq!(t.claims.exp, Some(NOW + 1));
}

#[test]
fn several_issuers_never_mix_keys() {
    let clock = clock();
    // Both issuers use the same kid and algorithm: only their own key may verify.
    let keys_a = KeySet::single(Key::hmac("k", Algorithm::HS256, &[1u8; 32]).unwrap());
    let keys_b = KeySet::single(Key::hmac("k", Algorithm::HS256, &[2u8; 32]).unwrap());
    let pol = |iss: &str, aud: &str| {
        ValidationPolicy::builder()
            .issuer(iss)
            .audience(aud)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
    };
    let router = IssuerRouter::new()
        .route(Validator::new(
            pol("https://a.example", "api"),
            keys_a.clone(),
        ))
        .unwrap()
        .route(Validator::new(
            pol("https://b.example", "admin"),
            keys_b.clone(),
        ))
        .unwrap();
    let issue = |keys: &KeySet, iss: &str, aud: &str| {
        TokenIssuer::builder(keys.clone(), iss)
            .audience(aud)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
            .issue(&AccessToken::new("alice"))
            .unwrap()
            .token
    };
    assert!(
        router
            .verify(&issue(&keys_a, "https://a.example", "api"))
            .is_ok()
    );
    assert!(
        router
            .verify(&issue(&keys_b, "https://b.example", "admin"))
            .is_ok()
    );
    // A's key signing a token that claims to be from B: routed to B, whose key rejects it.
    let forged = issue(&keys_a, "https://b.example", "admin");
    assert_eq!(
        router.verify(&forged).unwrap_err().class(),
        RejectionClass::Signature
    );
    // B's audience on A's issuer.
    assert_eq!(
        router
            .verify(&issue(&keys_a, "https://a.example", "admin"))
            .unwrap_err()
            .class(),
        RejectionClass::Audience
    );
    // Unknown issuer.
    assert_eq!(
        router
            .verify(&issue(&keys_a, "https://c.example", "api"))
            .unwrap_err()
            .class(),
        RejectionClass::Issuer
    );
    // Duplicate iss in the payload cannot confuse routing.
    let s = Key::hmac("k", Algorithm::HS256, &[1u8; 32]).unwrap();
    let dup = forge(
        &header("HS256", "k"),
        &format!(
            r#"{{"iss":"https://b.example","iss":"https://a.example","aud":"api","sub":"a","jti":"j","iat":{0},"exp":{1}}}"#,
            NOW,
            NOW + 60
        ),
        &s,
    );
    assert_ne!(
        router.verify(&dup).map(|_| ()).map_err(|r| r.class()),
        Ok(())
    );
    // Routing the same issuer twice is a configuration error.
    assert!(
        IssuerRouter::new()
            .route(Validator::new(
                pol("https://a.example", "api"),
                keys_a.clone()
            ))
            .unwrap()
            .route(Validator::new(pol("https://a.example", "x"), keys_b))
            .is_err()
    );
}
