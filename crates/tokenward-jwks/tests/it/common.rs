//! Helpers shared by the modules: key sets and their JWKS, tokens, validators, and a remote key
//! set on a manual clock against the test server.

use std::sync::Arc;
use std::time::Duration;

use tokenward_claims::{
    AccessToken, Algorithm, Key, KeySet, ManualClock, RejectionClass, TokenIssuer, UnixTime,
    ValidationPolicy, Validator, generate_pkcs8,
};
use tokenward_jwks::{JwksError, JwksSource, RemoteKeySet, RemoteKeySetBuilder};

use crate::server::{Reply, TestServer};

pub const ISSUER: &str = "https://auth.example.com";
pub const COOLDOWN: Duration = Duration::from_secs(30);

pub fn clock() -> ManualClock {
    ManualClock::new(UnixTime::from_secs(1_800_000_000))
}

pub fn builder(url: String, clock: &ManualClock) -> RemoteKeySetBuilder {
    RemoteKeySet::builder(JwksSource::url(url))
        .dangerous_allow_http(true)
        .clock(Arc::new(clock.clone()))
}

/// A token for alice from `ISSUER`, signed with `keys`.
pub fn token(keys: &KeySet, clock: &ManualClock) -> String {
    token_from(keys, ISSUER, clock)
}

/// A token for alice from `iss` (audience `api`), signed with `keys`.
pub fn token_from(keys: &KeySet, iss: &str, clock: &ManualClock) -> String {
    TokenIssuer::builder(keys.clone(), iss)
        .audience("api")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token
}

/// A validator of `ISSUER`'s tokens (audience `api`) with the keys of `remote`.
pub fn validator(remote: &RemoteKeySet, clock: &ManualClock) -> Validator {
    validator_for(remote, ISSUER, clock)
}

/// A validator of `iss`'s tokens (audience `api`) with the keys of `remote`.
pub fn validator_for(remote: &RemoteKeySet, iss: &str, clock: &ManualClock) -> Validator {
    let policy = ValidationPolicy::builder()
        .issuer(iss)
        .audience("api")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    Validator::new(policy, remote.clone())
}

/// What the Guard does: verify; on class `key`, refetch and retry once.
pub async fn verify(
    remote: &RemoteKeySet,
    validator: &Validator,
    token: &str,
) -> Result<(), RejectionClass> {
    match validator.verify(token) {
        Ok(_) => Ok(()),
        Err(r) if r.class() == RejectionClass::Key && remote.refetch_for_token(token).await => {
            validator.verify(token).map(|_| ()).map_err(|r| r.class())
        }
        Err(r) => Err(r.class()),
    }
}

/// A test server answering `/jwks` with `reply`, and a remote key set started against it on a
/// manual clock.
pub async fn serving(reply: Reply) -> (TestServer, ManualClock, RemoteKeySet) {
    let server = TestServer::start().await;
    server.set("/jwks", reply);
    let clock = clock();
    let remote = builder(server.url("/jwks"), &clock).start().await.unwrap();
    (server, clock, remote)
}

/// One fetch of `reply` with `configure`d limits: its result.
pub async fn fetch_once(
    reply: Reply,
    configure: impl FnOnce(RemoteKeySetBuilder) -> RemoteKeySetBuilder,
) -> Result<RemoteKeySet, JwksError> {
    let server = TestServer::start().await;
    server.set("/jwks", reply);
    let clock = clock();
    configure(builder(server.url("/jwks"), &clock))
        .start()
        .await
}

/// An Ed25519 signing key set with one key `kid`.
pub fn signer(kid: &str) -> KeySet {
    let pkcs8 = generate_pkcs8(Algorithm::EdDSA).unwrap();
    KeySet::single(Key::from_pkcs8_der(kid, Algorithm::EdDSA, &pkcs8).unwrap())
}

/// The public JWKS of these key sets, as JSON text.
pub fn jwks(sets: &[&KeySet]) -> String {
    let keys: Vec<_> = sets
        .iter()
        .flat_map(|s| s.public_jwks().keys.into_iter())
        .collect();
    serde_json::to_string(&serde_json::json!({ "keys": keys })).unwrap()
}
