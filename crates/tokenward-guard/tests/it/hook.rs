//! The decision hook sees every decision of `Guard::authenticate`, typed: allowed with the
//! token's scoped ids, revoked with them too, a forgery with the unverified token, a
//! missing token with nothing.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokenward_claims::{AccessToken, ValidationPolicy, Validator};
use tokenward_core::IssuerScope;
use tokenward_guard::{
    AuthRequest, Credentials, DecisionEvent, DecisionHook, Denial, Guard, GuardStores,
};

use crate::common::{issuer, keys};

/// What the hook saw of each decision.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    ip: IpAddr,
    class: &'static str,
    sub: Option<String>,
    scoped_sid: Option<String>,
    unverified: Option<String>,
}

#[derive(Debug, Default)]
struct Record(Mutex<Vec<Seen>>);

impl DecisionHook for Record {
    fn decided(&self, e: &DecisionEvent<'_>) {
        assert_eq!(e.allowed(), e.denial.is_none());
        self.0.lock().unwrap().push(Seen {
            ip: e.client_ip,
            class: e.denial.map_or("none", Denial::class),
            sub: e.claims.and_then(|c| c.sub.clone()),
            scoped_sid: e
                .token
                .and_then(|t| t.sid.as_ref())
                .map(|s| s.as_str().to_owned()),
            unverified: e.unverified_token.map(str::to_owned),
        });
    }
}

#[tokio::test]
async fn the_hook_sees_every_decision_typed() {
    let record = Arc::new(Record::default());
    let keys = keys();
    let policy = ValidationPolicy::builder()
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    let guard = Guard::builder(Validator::new(policy, keys.clone()), GuardStores::memory())
        .decision_hook(record.clone())
        .build()
        .unwrap();
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice").sid("s-1"))
        .unwrap()
        .token;
    let ip: IpAddr = "198.51.100.4".parse().unwrap();
    let call = |creds| {
        let guard = guard.clone();
        async move {
            guard
                .authenticate(&AuthRequest::new("GET", "/x", ip, creds))
                .await
        }
    };
    let auth = call(Credentials::Bearer(&token)).await.unwrap();
    guard.revoke_token(&auth).await.unwrap();
    assert!(call(Credentials::Bearer(&token)).await.is_err());
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.AAAA");
    assert!(call(Credentials::Bearer(&forged)).await.is_err());
    assert!(call(Credentials::Absent).await.is_err());

    let sid = IssuerScope::new("iss")
        .id("s-1")
        .unwrap()
        .as_str()
        .to_owned();
    let seen = record.0.lock().unwrap().clone();
    let expected = [
        ("none", Some("alice"), Some(sid.as_str()), None),
        ("revoked", Some("alice"), Some(sid.as_str()), None),
        ("signature", None, None, Some(forged.as_str())),
        ("missing_token", None, None, None),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for (seen, (class, sub, scoped_sid, unverified)) in seen.iter().zip(expected) {
        assert_eq!(seen.ip, ip);
        assert_eq!(seen.class, class, "{seen:?}");
        assert_eq!(seen.sub.as_deref(), sub, "{seen:?}");
        assert_eq!(seen.scoped_sid.as_deref(), scoped_sid, "{seen:?}");
        assert_eq!(seen.unverified.as_deref(), unverified, "{seen:?}");
    }
}
