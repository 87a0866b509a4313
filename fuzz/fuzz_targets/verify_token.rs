//! `Validator::verify` / `verify_with` on attacker-chosen tokens.
//!
//! The first input byte picks a mode:
//! - raw: the rest is the token. It must never verify unless it *is* one of the valid
//!   tokens below (nobody but us holds the keys, and a token has one accepted spelling).
//! - signed: the rest is `header JSON 0xFF payload JSON`, encoded and correctly signed with
//!   one of our keys, so the fuzzer reaches the header and claims rules. Whatever verifies
//!   must satisfy the policy, checked against an independent reading with `serde_json`.
//! - mutated: byte edits (replace / insert / delete) of a valid token. Only an unchanged
//!   token may verify.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use tokenward_claims::{
    Algorithm, Audience, Key, KeySet, REGISTERED_CLAIMS, ValidationPolicy, Validator, Verified,
};
use tokenward_core::{ManualClock, UnixTime};

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://issuer.example";
const AUD: &str = "api";
const LEEWAY: u64 = 30;
const MAX_LIFETIME: u64 = 3600;

struct Fixture {
    validator: Validator,
    /// The keys that sign in the `signed` mode: HS256 and Ed25519, both deterministic.
    signers: [Key; 2],
    /// Tokens that verify.
    valid: Vec<String>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(fixture);

fn fixture() -> Fixture {
    let hs = || Key::hmac("hs", Algorithm::HS256, &[7; 32]).expect("HMAC key");
    // PKCS#8 v1 of the Ed25519 seed [9; 32].
    let mut ed_der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    ed_der.extend_from_slice(&[9; 32]);
    let ed = || Key::from_pkcs8_der("ed", Algorithm::EdDSA, &ed_der).expect("Ed25519 key");
    // A verify-only P-256 key (random; only ever reached by rejections).
    let es_der = tokenward_claims::generate_pkcs8(Algorithm::ES256).expect("P-256 key");
    let es = Key::from_pkcs8_der("es", Algorithm::ES256, &es_der).expect("P-256 key");
    let es_public = es.public_jwk().expect("public part");
    let es = Key::from_jwk(&es_public, None, None).expect("P-256 public key");

    let mut keys = KeySet::new();
    for key in [hs(), ed(), es] {
        keys.insert(key).expect("distinct kids");
    }
    let policy = ValidationPolicy::builder()
        .issuer(ISS)
        .audience(AUD)
        .leeway(std::time::Duration::from_secs(LEEWAY))
        .clock(Arc::new(ManualClock::new(UnixTime::from_secs(NOW))))
        .build()
        .expect("policy");
    let signers = [hs(), ed()];
    let claims = |extra: &str| {
        format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","jti":"j-1","iat":{},"exp":{}{extra}}}"#,
            NOW - 60,
            NOW + 600
        )
    };
    let mut valid = Vec::new();
    for key in &signers {
        let alg = if key.kid() == "hs" { "HS256" } else { "EdDSA" };
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#, key.kid());
        valid.push(sign(key, header.as_bytes(), claims("").as_bytes()));
        valid.push(sign(
            key,
            header.as_bytes(),
            claims(r#","sid":"s-1","scope":"a b","nbf":1799999940"#).as_bytes(),
        ));
    }
    let validator = Validator::new(policy, keys);
    for token in &valid {
        assert!(validator.verify(token).is_ok(), "fixture token must verify");
    }
    Fixture {
        validator,
        signers,
        valid,
    }
}

fn sign(key: &Key, header: &[u8], payload: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes()).expect("signing key");
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            if fx.validator.verify(token).is_ok() {
                assert!(fx.valid.iter().any(|v| v == token), "forged token verified");
            }
        }
        1 => {
            let signer = &fx.signers[usize::from(mode / 3 % 2)];
            let (header, payload) = match rest.iter().position(|&b| b == 0xFF) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &b"{}"[..]),
            };
            let token = sign(signer, header, payload);
            if mode / 6 % 2 == 0 {
                if let Ok(verified) = fx.validator.verify(&token) {
                    check_accepted(signer, header, payload, &verified);
                }
            } else if let Ok(verified) = fx.validator.verify_with::<Map<String, Value>>(&token) {
                check_accepted(signer, header, payload, &verified);
                // Custom claims are the payload's other members, parsed in the same pass.
                let mut json: Map<String, Value> = serde_json::from_slice(payload).expect("object");
                json.retain(|name, _| !REGISTERED_CLAIMS.contains(&name.as_str()));
                assert_eq!(
                    verified.custom, json,
                    "custom claims differ from the payload"
                );
            }
        }
        _ => {
            let Some((&which, edits)) = rest.split_first() else {
                return;
            };
            let original = &fx.valid[usize::from(which) % fx.valid.len()];
            let mut bytes = original.as_bytes().to_vec();
            for edit in edits.chunks_exact(3) {
                let (op, at, byte) = (edit[0], usize::from(edit[1]), edit[2]);
                let at = at % (bytes.len() + 1);
                match op % 3 {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            let Ok(token) = String::from_utf8(bytes) else {
                return;
            };
            if fx.validator.verify(&token).is_ok() {
                assert!(fx.valid.contains(&token), "a mutated token verified");
            }
        }
    }
});

/// The header members the checks look at. (Views, not `serde_json::Value`: JSON allows
/// numbers like 1e999, which a `Value` refuses but an ignored member may hold.)
#[derive(Deserialize)]
struct HeaderView {
    alg: Option<Value>,
    kid: Option<Value>,
    typ: Option<Value>,
}

/// The registered claims as written.
#[derive(Deserialize)]
struct PayloadView {
    iss: Option<Value>,
    aud: Option<Value>,
    sub: Option<Value>,
    jti: Option<Value>,
    sid: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
}

/// A token signed by `signer` verified: what `serde_json` reads in its header and payload
/// must satisfy the policy, and the claims returned must be the ones in the payload.
fn check_accepted<C>(signer: &Key, header: &[u8], payload: &[u8], verified: &Verified<C>) {
    let names: BTreeMap<String, IgnoredAny> =
        serde_json::from_slice(header).expect("header is an object");
    let header: HeaderView = serde_json::from_slice(header).expect("header is an object");
    let alg = if signer.kid() == "hs" {
        "HS256"
    } else {
        "EdDSA"
    };
    assert_eq!(header.alg, Some(Value::from(alg)), "alg");
    // Without a `kid` a token verifies only when exactly one key of the set is bound to its
    // `alg` (this set has one key per algorithm).
    if let Some(kid) = &header.kid {
        assert_eq!(kid, &Value::from(signer.kid()), "kid");
    }
    assert_eq!(verified.kid, signer.kid());
    for forbidden in ["crit", "jwk", "jku", "x5u", "x5c", "b64", "enc", "zip"] {
        assert!(!names.contains_key(forbidden), "header member {forbidden}");
    }
    match header.typ {
        None => {}
        Some(Value::String(typ)) => {
            let typ = typ.to_ascii_lowercase();
            let typ = typ.strip_prefix("application/").unwrap_or(&typ);
            assert!(typ == "jwt" || typ == "at+jwt", "typ {typ:?}");
        }
        Some(other) => panic!("typ {other:?} accepted"),
    }

    let claims: PayloadView = serde_json::from_slice(payload).expect("payload is an object");
    let c = &verified.claims;
    assert_eq!(claims.iss, Some(Value::from(ISS)), "iss");
    assert_eq!(c.iss.as_deref(), Some(ISS));
    let aud_ok = match &claims.aud {
        Some(Value::String(aud)) => aud == AUD,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(AUD)),
        _ => false,
    };
    assert!(aud_ok, "aud {:?}", claims.aud);
    assert!(c.aud.as_ref().is_some_and(|a: &Audience| a.contains(AUD)));
    // A fractional `NumericDate` (RFC 7519 §2) is rounded towards the stricter answer:
    // `exp` and `iat` down, `nbf` up.
    let time = |v: &Option<Value>, up: bool| {
        v.as_ref().map(|v| match v.as_u64() {
            Some(secs) => secs,
            None => {
                let secs = v.as_f64().expect("a number of seconds");
                let whole = if up { secs.ceil() } else { secs.floor() };
                assert!((0.0..=9_007_199_254_740_992.0).contains(&whole), "time {secs}");
                whole as u64
            }
        })
    };
    let exp = time(&claims.exp, false).expect("exp is required");
    let iat = time(&claims.iat, false).expect("iat is required");
    assert_eq!(
        (c.exp, c.iat, c.nbf),
        (Some(exp), Some(iat), time(&claims.nbf, true))
    );
    assert!(NOW < exp.saturating_add(LEEWAY), "expired token accepted");
    assert!(iat <= NOW + LEEWAY, "token from the future accepted");
    if let Some(nbf) = c.nbf {
        assert!(nbf <= NOW + LEEWAY, "token not yet valid accepted");
    }
    assert!(
        exp > iat && exp - iat <= MAX_LIFETIME,
        "lifetime {iat}..{exp}"
    );
    for (name, written, value) in [
        ("sub", &claims.sub, &c.sub),
        ("jti", &claims.jti, &c.jti),
        ("sid", &claims.sid, &c.sid),
    ] {
        assert_eq!(
            written.as_ref().map(|v| v.as_str().expect("string claim")),
            value.as_deref(),
            "{name}"
        );
    }
    assert!(c.sub.is_some() && c.jti.is_some(), "required claims");
}
