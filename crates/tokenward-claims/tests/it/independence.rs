//! tokenward's independence from `jsonwebtoken`'s process-wide crypto provider, which this
//! binary never installs.

use serde_json::json;
use tokenward_claims::Validator;

use crate::common::*;

#[test]
fn tokenward_works_without_touching_jsonwebtoken_default_provider() {
    // No provider is installed in this process: verifying must not call into jsonwebtoken's
    // crypto (which panics with both or neither backend enabled).
    let s = signers();
    for (kid, alg, signer) in [
        ("hs", "HS256", &s.hs),
        ("rsa", "RS256", &s.rsa),
        ("ec", "ES256", &s.ec),
        ("ed", "EdDSA", &s.ed),
    ] {
        let token = forge(&header(alg, kid), &claims(json!({})), signer);
        let clock = clock();
        let v = Validator::new(policy(&clock).build().unwrap(), verifier_keys(&s));
        assert!(v.verify(&token).is_ok(), "{alg}");
    }
}
