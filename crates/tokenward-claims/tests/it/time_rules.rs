//! Property tests: the time rules (exp, nbf, iat, leeway, max lifetime) against a plain
//! reference model written from RFC 7519 in wide integer arithmetic.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use proptest::prelude::*;
use tokenward_claims::{Algorithm, Key, KeySet, RejectionClass, ValidationPolicy, Validator};
use tokenward_core::{ManualClock, UnixTime};

#[derive(Debug, Clone)]
struct Times {
    now: u64,
    leeway: u64,
    max_lifetime: u64,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
}

/// RFC 7519 §4.1.4–4.1.6 plus the lifetime cap, checked in the documented order:
/// required claims, exp, nbf, iat, lifetime.
fn model(t: &Times) -> Result<(), RejectionClass> {
    let (Some(exp), Some(iat)) = (t.exp, t.iat) else {
        return Err(RejectionClass::Claims); // exp and iat are required by default
    };
    let (now, l) = (i128::from(t.now), i128::from(t.leeway));
    let (exp, iat) = (i128::from(exp), i128::from(iat));
    if now >= exp + l {
        return Err(RejectionClass::Expired);
    }
    if let Some(nbf) = t.nbf
        && now < i128::from(nbf) - l
    {
        return Err(RejectionClass::NotYetValid);
    }
    if iat > now + l {
        return Err(RejectionClass::NotYetValid);
    }
    if exp <= iat || exp - iat > i128::from(t.max_lifetime) {
        return Err(RejectionClass::Claims);
    }
    Ok(())
}

fn verify(t: &Times) -> Result<(), RejectionClass> {
    let key = Key::hmac("k", Algorithm::HS256, HS_SECRET).unwrap();
    let mut payload = serde_json::json!({"iss": ISS, "aud": AUD, "sub": "s", "jti": "j"});
    for (name, v) in [("exp", t.exp), ("nbf", t.nbf), ("iat", t.iat)] {
        if let Some(v) = v {
            payload[name] = v.into();
        }
    }
    let token = forge(&header("HS256", "k"), &payload.to_string(), &key);
    let clock = ManualClock::new(UnixTime::from_secs(t.now));
    let policy = ValidationPolicy::builder()
        .issuer(ISS)
        .audience(AUD)
        .leeway(Duration::from_secs(t.leeway))
        .max_lifetime(Duration::from_secs(t.max_lifetime))
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    Validator::new(policy, KeySet::single(key))
        .verify(&token)
        .map(|_| ())
        .map_err(|r| r.class())
}

fn around(now: u64) -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        1 => Just(None),
        8 => (now - 8000..now + 8000).prop_map(Some),
        1 => prop_oneof![Just(0u64), Just(u64::MAX), Just(now)].prop_map(Some),
    ]
}

fn times() -> impl Strategy<Value = Times> {
    (1_000_000u64..4_000_000_000).prop_flat_map(|now| {
        (
            Just(now),
            0u64..=300,
            1u64..=7200,
            around(now),
            around(now),
            around(now),
        )
            .prop_map(|(now, leeway, max_lifetime, exp, nbf, iat)| Times {
                now,
                leeway,
                max_lifetime,
                exp,
                nbf,
                iat,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn validator_agrees_with_the_reference_model(t in times()) {
        prop_assert_eq!(verify(&t), model(&t), "{:?}", t);
    }

    #[test]
    fn more_leeway_never_rejects_a_valid_token(t in times(), extra in 0u64..=100) {
        if verify(&t).is_ok() {
            let wider = Times { leeway: (t.leeway + extra).min(300), ..t.clone() };
            prop_assert_eq!(verify(&wider), Ok(()));
        }
    }

    #[test]
    fn nothing_is_valid_at_or_after_exp_plus_leeway(t in times()) {
        if let Some(exp) = t.exp {
            let late = Times { now: exp.saturating_add(t.leeway).max(t.now), ..t.clone() };
            if late.now >= exp.saturating_add(t.leeway) {
                prop_assert!(verify(&late).is_err());
            }
        }
    }
}
