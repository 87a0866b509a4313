//! Identity providers' key sets and tokens, shaped as Entra ID, Keycloak, Cognito, Okta, Auth0
//! and Google publish and issue them (extra members included), with keys generated for the
//! tests: what must load and verify, and the attacks their quirks invite.

mod jwks;
mod profiles;

use serde_json::{Value, json};
use tokenward_claims::{Algorithm, Key};

use crate::common::*;

/// The signing key of every provider fixture (the private half of `rsa2048`).
pub fn signing_key(kid: &str) -> Key {
    Key::from_pem(kid, Algorithm::RS256, RSA_PRIVATE.as_bytes()).unwrap()
}

/// The `n` and `e` members of a public RSA key PEM.
pub fn rsa_ne(public_pem: &str) -> (String, String) {
    let key = Key::from_pem("x", Algorithm::RS256, public_pem.as_bytes()).unwrap();
    let jwk = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    (
        jwk["n"].as_str().unwrap().to_owned(),
        jwk["e"].as_str().unwrap().to_owned(),
    )
}

/// The signing key as a JWK without `alg` (Entra ID's shape), with `members` merged in.
pub fn rsa_jwk(kid: &str, members: Value) -> Value {
    let (n, e) = rsa_ne(RSA_PUBLIC);
    let mut jwk = json!({"kty": "RSA", "kid": kid, "n": n, "e": e});
    for (k, v) in members.as_object().unwrap() {
        jwk[k] = v.clone();
    }
    jwk
}

/// Base64 standing in for an X.509 certificate: the *encryption* key's DER, so a loader that
/// took keys from `x5c` would verify with the wrong key.
pub fn x5c() -> Value {
    let der = pem::parse(RSA_ENC_PUBLIC).unwrap().into_contents();
    json!([base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        der
    )])
}

/// Entra ID's `discovery/v2.0/keys`: RSA keys without `alg`, with `x5t`, `x5c`, `issuer`,
/// `cloud_instance_name`.
pub fn entra_jwks() -> Value {
    let extra = json!({
        "use": "sig", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg", "x5c": x5c(),
        "cloud_instance_name": "microsoftonline.com",
        "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
    });
    json!({"keys": [rsa_jwk("entra-1", extra.clone()), rsa_jwk("entra-2", extra)]})
}

/// A Keycloak realm's `protocol/openid-connect/certs`: the RS256 signing key and, beside it,
/// an `RSA-OAEP` encryption key (`use: enc`) with its own key pair.
pub fn keycloak_jwks() -> Value {
    let (n, e) = rsa_ne(RSA_ENC_PUBLIC);
    json!({"keys": [
        rsa_jwk("kc-sig", json!({"alg": "RS256", "use": "sig", "x5c": x5c(),
            "x5t": "abc", "x5t#S256": "def"})),
        {"kid": "kc-enc", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": n, "e": e,
         "x5c": x5c(), "x5t": "ghi", "x5t#S256": "jkl"},
    ]})
}

/// Cognito's `.well-known/jwks.json`, Okta's `v1/keys`, Auth0's and Google's key sets: RSA
/// with `alg` (Auth0 with `x5c`/`x5t`).
pub fn simple_jwks(kid: &str) -> Value {
    json!({"keys": [rsa_jwk(kid, json!({"alg": "RS256", "use": "sig"}))]})
}

pub fn auth0_jwks() -> Value {
    json!({"keys": [rsa_jwk("auth0-1", json!({"alg": "RS256", "use": "sig", "x5c": x5c(),
        "x5t": "xyz"}))]})
}
