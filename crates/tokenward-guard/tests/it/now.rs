//! `Guard::authenticate_now` and `Guard::authenticate_after`: what is decided without
//! waiting, what is handed over, and that nothing handed over is done twice or given to
//! another request.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tokenward_claims::{
    AccessToken, Algorithm, Key, KeyResolver, KeySet, RejectionClass, ValidationPolicy, Validator,
};
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
use tokenward_guard::{AuthRequest, Credentials, Denial, Guard, GuardStores, Unfinished};
use tokenward_ratelimit::{
    BanQuota, Decision, GcraCharge, GcraQuota, LimitKey, MemoryRateLimitStore, RateLimitStore,
    SubjectLimit,
};
use tokenward_refresh::MemoryRefreshStore;
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore};

use crate::common::{issuer, keys};

const LIMIT: u32 = 100;

fn req<'a>(ip: &str, creds: Credentials<'a>) -> AuthRequest<'a> {
    AuthRequest::new("GET", "/x", ip.parse::<IpAddr>().unwrap(), creds)
}

/// Counts the key lookups, one per verification that reaches the key.
#[derive(Debug)]
struct CountingKeys {
    keys: KeySet,
    lookups: Arc<AtomicUsize>,
}

impl KeyResolver for CountingKeys {
    fn resolve(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.keys.resolve(kid)
    }
    fn resolve_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.keys.resolve_for(kid, alg)
    }
}

/// The in-memory revocation store, answering synchronously or not, counting its checks.
#[derive(Debug)]
struct Revocations {
    inner: MemoryRevocationStore,
    answers_now: bool,
    checks: AtomicUsize,
}

#[async_trait]
impl RevocationStore for Revocations {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.inner.revoke_token(jti, until).await
    }
    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.inner.revoke_session(sid, until).await
    }
    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner.revoke_subject(sub, before, until).await
    }
    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.check(token).await
    }
    fn check_now(&self, token: &TokenRef<'_>) -> Option<Result<RevocationStatus, StoreError>> {
        if !self.answers_now {
            return None;
        }
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.check_now(token)
    }
}

/// The in-memory rate-limit store with only its async calls, as a network store has,
/// counting the subject-limit charges.
#[derive(Debug, Default)]
struct AsyncLimits {
    inner: MemoryRateLimitStore,
    charges: AtomicUsize,
}

#[async_trait]
impl RateLimitStore for AsyncLimits {
    async fn gcra(&self, key: &LimitKey<'_>, charge: &GcraCharge) -> Result<Decision, StoreError> {
        self.charges.fetch_add(1, Ordering::SeqCst);
        self.inner.gcra(key, charge).await
    }
    async fn ban_status(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        self.inner.ban_status(key, quota).await
    }
    async fn record_failure(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError> {
        self.inner.record_failure(key, quota).await
    }
    async fn lift_ban(&self, key: &LimitKey<'_>) -> Result<(), StoreError> {
        self.inner.lift_ban(key).await
    }
}

struct Setup {
    guard: Guard,
    revocations: Arc<Revocations>,
    limits: Option<Arc<AsyncLimits>>,
    lookups: Arc<AtomicUsize>,
}

/// A Guard with counting stores: revocation synchronous or not, the subject limit in
/// memory or behind an async-only store (then without a failure ban, whose check would
/// send every request to `authenticate_after` before anything else).
fn setup(revocation_now: bool, limit_now: bool) -> Setup {
    let lookups = Arc::new(AtomicUsize::new(0));
    let resolver = CountingKeys {
        keys: keys(),
        lookups: Arc::clone(&lookups),
    };
    let policy = ValidationPolicy::builder()
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    let revocations = Arc::new(Revocations {
        inner: MemoryRevocationStore::new(),
        answers_now: revocation_now,
        checks: AtomicUsize::new(0),
    });
    let limits = (!limit_now).then(|| Arc::new(AsyncLimits::default()));
    let ratelimit: Arc<dyn RateLimitStore> = match &limits {
        Some(limits) => Arc::clone(limits) as Arc<dyn RateLimitStore>,
        None => Arc::new(MemoryRateLimitStore::new()),
    };
    let stores = GuardStores::new(
        Arc::clone(&revocations) as Arc<dyn RevocationStore>,
        ratelimit,
        Arc::new(MemoryRefreshStore::new()),
    );
    let quota = GcraQuota::per_minute(NonZeroU32::new(LIMIT).unwrap());
    let mut builder = Guard::builder(Validator::new(policy, resolver), stores)
        .subject_limit(SubjectLimit::new("subject", quota).unwrap());
    if !limit_now {
        builder = builder.dangerous_no_failure_ban();
    }
    Setup {
        guard: builder.build().unwrap(),
        revocations,
        limits,
        lookups,
    }
}

/// A token of `sub` under the Guard's `kid`, signed with another secret.
fn forged(sub: &str) -> String {
    let other = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[8u8; 32]).unwrap());
    issuer(&other).issue(&AccessToken::new(sub)).unwrap().token
}

fn unfinished(guard: &Guard, req: &AuthRequest<'_>) -> Unfinished {
    match guard.authenticate_now(req) {
        Ok(decision) => panic!("decided without waiting: {decision:?}"),
        Err(unfinished) => unfinished,
    }
}

fn remaining(decision: &Result<tokenward_guard::Authenticated, Denial>) -> u32 {
    decision.as_ref().unwrap().limit.as_ref().unwrap().remaining
}

#[tokio::test]
async fn in_memory_stores_decide_without_waiting() {
    let s = setup(true, true);
    let tokens = issuer(&keys());
    let alice = tokens.issue(&AccessToken::new("alice")).unwrap().token;
    let ip = "192.0.2.1";

    let decision = s
        .guard
        .authenticate_now(&req(ip, Credentials::Bearer(&alice)))
        .expect("decided at once");
    assert_eq!(decision.as_ref().unwrap().sub(), Some("alice"));
    assert_eq!(remaining(&decision), LIMIT - 1);

    let missing = s.guard.authenticate_now(&req(ip, Credentials::Absent));
    assert!(matches!(missing, Ok(Err(Denial::MissingToken))));

    // Revoked: decided at once too (the revocation store answered in process).
    let auth = decision.unwrap();
    s.guard.revoke_token(&auth).await.unwrap();
    let revoked = s
        .guard
        .authenticate_now(&req(ip, Credentials::Bearer(&alice)))
        .expect("decided at once");
    assert!(
        matches!(revoked, Err(Denial::Revoked { .. })),
        "{revoked:?}"
    );
}

#[tokio::test]
async fn failures_the_ban_counts_are_finished_after_and_ban() {
    let s = setup(true, true);
    let tokens = issuer(&keys());
    let alice = tokens.issue(&AccessToken::new("alice")).unwrap().token;
    let forged = forged("alice");
    let attacker = "198.51.100.7";

    let malformed = req(
        attacker,
        Credentials::Malformed("two Authorization headers"),
    );
    let u = unfinished(&s.guard, &malformed);
    let denial = s.guard.authenticate_after(&malformed, u).await.unwrap_err();
    assert!(
        matches!(denial, Denial::InvalidRequest { .. }),
        "{denial:?}"
    );

    // The default ban: 5 failures; the malformed header was the first.
    let mut last = None;
    for _ in 0..4 {
        let forged_req = req(attacker, Credentials::Bearer(&forged));
        let u = unfinished(&s.guard, &forged_req);
        assert_eq!(format!("{u:?}"), r#"Unfinished { next: "rejected", .. }"#);
        last = Some(
            s.guard
                .authenticate_after(&forged_req, u)
                .await
                .unwrap_err(),
        );
    }
    assert!(matches!(last, Some(Denial::Banned { .. })), "{last:?}");

    // A ban held: every request goes through the ban check first, after.
    let banned = req(attacker, Credentials::Bearer(&alice));
    let u = unfinished(&s.guard, &banned);
    assert_eq!(format!("{u:?}"), r#"Unfinished { next: "start", .. }"#);
    let denial = s.guard.authenticate_after(&banned, u).await.unwrap_err();
    assert!(matches!(denial, Denial::Banned { .. }), "{denial:?}");
    let other = req("192.0.2.1", Credentials::Bearer(&alice));
    let u = unfinished(&s.guard, &other);
    let auth = s.guard.authenticate_after(&other, u).await.unwrap();
    assert_eq!(auth.sub(), Some("alice"));
}

#[tokio::test]
async fn an_expired_token_is_refused_at_once_and_not_counted() {
    let s = setup(true, true);
    let expired = tokenward_claims::TokenIssuer::builder(keys(), "iss")
        .audience("aud")
        .clock(Arc::new(tokenward_core::ManualClock::new(
            UnixTime::from_secs(1_000_000),
        )))
        .build()
        .unwrap()
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    for _ in 0..10 {
        let answer = s
            .guard
            .authenticate_now(&req("192.0.2.9", Credentials::Bearer(&expired)))
            .expect("an expired token counts for no ban: decided at once");
        assert!(
            matches!(
                answer,
                Err(Denial::InvalidToken {
                    class: RejectionClass::Expired
                })
            ),
            "{answer:?}"
        );
    }
}

/// Revocation in a store that needs I/O: `authenticate_now` verifies and hands the verified
/// token over; `authenticate_after` checks revocation once and charges once, without
/// verifying again.
#[tokio::test]
async fn a_verified_token_is_handed_over_not_verified_again() {
    let s = setup(false, true);
    let alice = issuer(&keys())
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let request = req("192.0.2.1", Credentials::Bearer(&alice));
    let u = unfinished(&s.guard, &request);
    assert_eq!(
        format!("{u:?}"),
        r#"Unfinished { next: "store checks", .. }"#
    );
    assert_eq!(s.lookups.load(Ordering::SeqCst), 1);
    let decision = s.guard.authenticate_after(&request, u).await;
    assert_eq!(decision.as_ref().unwrap().sub(), Some("alice"));
    assert_eq!(remaining(&decision), LIMIT - 1, "charged once");
    assert_eq!(s.lookups.load(Ordering::SeqCst), 1, "verified once");
    assert_eq!(s.revocations.checks.load(Ordering::SeqCst), 1);
}

/// Revocation in memory, the subject limit in a store that needs I/O: the revocation
/// answer is handed over with the token; only the limit is left, and charged once.
#[tokio::test]
async fn a_revocation_answered_now_is_not_asked_again() {
    let s = setup(true, false);
    let alice = issuer(&keys())
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let request = req("192.0.2.1", Credentials::Bearer(&alice));
    let u = unfinished(&s.guard, &request);
    assert_eq!(
        format!("{u:?}"),
        r#"Unfinished { next: "subject limit", .. }"#
    );
    let decision = s.guard.authenticate_after(&request, u).await;
    assert_eq!(decision.as_ref().unwrap().sub(), Some("alice"));
    assert_eq!(remaining(&decision), LIMIT - 1);
    let limits = s.limits.as_ref().unwrap();
    assert_eq!(limits.charges.load(Ordering::SeqCst), 1, "charged once");
    assert_eq!(s.revocations.checks.load(Ordering::SeqCst), 1, "asked once");
    assert_eq!(s.lookups.load(Ordering::SeqCst), 1, "verified once");

    // A revoked token is refused by the revocation answered now: nothing is charged.
    s.guard
        .revoke_token(decision.as_ref().unwrap())
        .await
        .unwrap();
    let revoked = s.guard.authenticate_now(&request);
    assert!(
        matches!(revoked, Ok(Err(Denial::Revoked { .. }))),
        "{revoked:?}"
    );
    assert_eq!(limits.charges.load(Ordering::SeqCst), 1);
}

/// What `authenticate_now` handed over for one token is never used for a request with
/// another: that request is authenticated from the start, on its own token.
#[tokio::test]
async fn a_hand_over_goes_only_to_its_own_token() {
    let s = setup(false, true);
    let tokens = issuer(&keys());
    let alice = tokens.issue(&AccessToken::new("alice")).unwrap().token;
    let bob = tokens.issue(&AccessToken::new("bob")).unwrap().token;
    let forged = forged("alice");

    let for_alice = unfinished(&s.guard, &req("192.0.2.1", Credentials::Bearer(&alice)));
    let bob_req = req("192.0.2.1", Credentials::Bearer(&bob));
    let auth = s
        .guard
        .authenticate_after(&bob_req, for_alice)
        .await
        .unwrap();
    assert_eq!(auth.sub(), Some("bob"));

    let for_alice = unfinished(&s.guard, &req("192.0.2.1", Credentials::Bearer(&alice)));
    let forged_req = req("192.0.2.1", Credentials::Bearer(&forged));
    let denial = s
        .guard
        .authenticate_after(&forged_req, for_alice)
        .await
        .unwrap_err();
    assert!(
        matches!(
            denial,
            Denial::InvalidToken {
                class: RejectionClass::Signature
            }
        ),
        "{denial:?}"
    );

    let for_alice = unfinished(&s.guard, &req("192.0.2.1", Credentials::Bearer(&alice)));
    let none = req("192.0.2.1", Credentials::Absent);
    let denial = s
        .guard
        .authenticate_after(&none, for_alice)
        .await
        .unwrap_err();
    assert!(matches!(denial, Denial::MissingToken), "{denial:?}");
}
