//! The attack suite: tables of hostile and valid tokens, each with the exact outcome expected.
//!
//! Built from public knowledge of JWT attacks: `alg: none`, HS/RS key confusion, psychic ECDSA
//! signatures (CVE-2022-21449), embedded keys, `kid` injection, `crit`/`b64`, base64url
//! malleability, JWE/JSON-serialized shapes, oversize and nested input, duplicate members,
//! ill-typed claims, time boundaries, and lifetime caps.

mod claims;
mod encoding;
mod keys_and_headers;
mod provider;

use tokenward_claims::{PolicyBuilder, RejectionClass, Validator};

use crate::common::*;

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

fn validator_with(s: &Signers, build: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> Validator {
    let clock = clock();
    Validator::new(build(policy(&clock)).build().unwrap(), verifier_keys(s))
}

fn default_validator(s: &Signers) -> Validator {
    validator_with(s, |p| p)
}
