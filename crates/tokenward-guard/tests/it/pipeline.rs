//! The Guard pipeline without a web framework: the adapters' case table run through a
//! minimal in-process "adapter", failure policies, the combined check, key refetch.
//! (Configuration: `config.rs`, `issuers.rs`; audit events: `tests/audit.rs`.)

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, SharedKeySet};
use tokenward_core::{FailurePolicy, StoreError, StoreId, TokenRef, UnixTime};
use tokenward_guard::http::{HeaderSource, HttpRequest, Outcome, RouteAuth};
use tokenward_guard::testkit::{self, Fixture};
use tokenward_guard::{
    AuthRequest, Check, CombinedAnswer, CombinedCheck, Credentials, Denial, Guard, GuardConfig,
    GuardStores, KeyRefetch, KeySource, Requirements,
};
use tokenward_ratelimit::{
    BanCheck, BanQuota, Decision, GcraCharge, GcraQuota, LimitKey, RateLimitStore,
};
use tokenward_refresh::MemoryRefreshStore;
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore};

use crate::common::{issuer, keys};

/// A case's headers as the Guard reads them.
struct CaseHeaders<'a>(&'a [(String, String)]);

impl HeaderSource for CaseHeaders<'_> {
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
}

/// The smallest adapter: what tokenward-axum and tokenward-actix do, minus HTTP — one
/// `Guard::authorize` call, then translation.
async fn serve(f: &Fixture, case: &testkit::Case) -> (u16, Vec<(String, String)>, String) {
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let path = case.path.split('?').next().unwrap();
    let route = match path {
        "/optional" => RouteAuth::optional(),
        "/admin" => RouteAuth::required().require(f.admin.clone()),
        "/ops" => RouteAuth::required().require(f.ops.clone()),
        _ => RouteAuth::required(),
    };
    let headers = CaseHeaders(&case.headers);
    let req = HttpRequest::new(case.method, path, Some(peer), &headers);
    let (sub, added) = match f.guard.authorize(&req, None, &route).await {
        Outcome::Authenticated(allowed) => (
            allowed.auth.sub().map(str::to_owned),
            allowed.response_headers,
        ),
        Outcome::Continue => (None, vec![]),
        Outcome::Deny(d) => {
            let mut headers: Vec<(String, String)> = d
                .headers()
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect();
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            return (d.status(), headers, d.body());
        }
        other => panic!("unexpected outcome {other:?}"),
    };
    // The handler's response, then the Guard's fields where the handler set none.
    let mut headers = Vec::new();
    if path == "/own-ratelimit" {
        headers.push((
            "ratelimit".to_owned(),
            testkit::HANDLER_RATELIMIT.to_owned(),
        ));
    }
    for (name, value) in added {
        if !headers.iter().any(|(n, _)| n == name) {
            headers.push((name.to_owned(), value));
        }
    }
    (200, headers, serde_json::json!({ "sub": sub }).to_string())
}

/// The table twice: with in-memory stores (decided by `authorize_now` wherever no failure
/// has to be counted) and with a revocation store that only answers asynchronously (decided
/// by `authorize_after`, from the verified token `authorize_now` hands over).
#[tokio::test]
async fn the_adapter_table_against_the_guard() {
    for f in [Fixture::new().await, Fixture::awaiting_stores().await] {
        let cases = testkit::cases(&f).await;
        let mut failures = Vec::new();
        for case in &cases {
            let (status, headers, body) = serve(&f, case).await;
            if let Err(e) = testkit::check(case, status, &headers, &body) {
                failures.push(e);
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}

#[tokio::test]
async fn check_catches_a_wrong_answer() {
    let f = Fixture::new().await;
    let cases = testkit::cases(&f).await;
    let valid = cases.iter().find(|c| c.name == "valid token").unwrap();
    // A 200 for a case expecting 401 and vice versa must fail.
    assert!(testkit::check(&cases[0], 200, &[], r#"{"sub":null}"#).is_err());
    assert!(testkit::check(valid, 200, &[], r#"{"sub":"bob"}"#).is_err());
    // Echoing the token fails even with the right status.
    let token = valid.headers[1].1.trim_start_matches("Bearer ").to_owned();
    let body = format!(r#"{{"sub":"alice","t":"{token}"}}"#);
    assert!(testkit::check(valid, 200, &[], &body).is_err());
}

fn request<'a>(creds: Credentials<'a>) -> AuthRequest<'a> {
    AuthRequest::new("GET", "/x", "192.0.2.1".parse().unwrap(), creds)
}

/// A revocation store that is down.
#[derive(Debug)]
pub(crate) struct Down;

#[async_trait]
impl RevocationStore for Down {
    async fn revoke_token(&self, _: &StoreId<'_>, _: UnixTime) -> Result<(), StoreError> {
        Err(StoreError::Timeout {
            after: Duration::from_millis(1),
        })
    }
    async fn revoke_session(&self, _: &StoreId<'_>, _: UnixTime) -> Result<(), StoreError> {
        Err(StoreError::Timeout {
            after: Duration::from_millis(1),
        })
    }
    async fn revoke_subject(
        &self,
        _: &StoreId<'_>,
        _: UnixTime,
        _: UnixTime,
    ) -> Result<(), StoreError> {
        Err(StoreError::Timeout {
            after: Duration::from_millis(1),
        })
    }
    async fn check(&self, _: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        Err(StoreError::Timeout {
            after: Duration::from_millis(1),
        })
    }
}

pub(crate) fn down_stores() -> GuardStores {
    GuardStores::new(
        Arc::new(Down),
        Arc::new(tokenward_ratelimit::MemoryRateLimitStore::new()),
        Arc::new(MemoryRefreshStore::new()),
    )
}

#[tokio::test]
async fn outage_is_503_when_closed_and_degraded_when_open() {
    let keys = keys();
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let config = GuardConfig::new("iss", "aud");

    let closed = config
        .guard_builder(keys.clone(), down_stores(), None)
        .unwrap()
        .build()
        .unwrap();
    let denial = closed
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap_err();
    assert_eq!(denial.status(), 503);
    assert!(matches!(
        denial,
        Denial::Unavailable {
            check: Check::Revocation,
            ..
        }
    ));
    assert!(denial.headers().contains(&("retry-after", "5".to_owned())));

    let open = config
        .guard_builder(keys.clone(), down_stores(), None)
        .unwrap()
        .revocation_failure_policy(FailurePolicy::DangerousOpen)
        .build()
        .unwrap();
    let auth = open
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap();
    assert_eq!(auth.degraded, [Check::Revocation]);

    // An invalid token is still 401 during the outage, never 503 and never 200.
    let denial = closed
        .authenticate(&request(Credentials::Bearer("a.b.c")))
        .await
        .unwrap_err();
    assert_eq!(denial.status(), 401);
}

/// A combined check that counts calls and charges a fake limit.
#[derive(Debug, Default)]
struct Counting {
    banned: bool,
    revoked: bool,
    calls: AtomicUsize,
    charged: AtomicUsize,
}

#[async_trait]
impl CombinedCheck for Counting {
    async fn check_request(
        &self,
        _token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
        ban: Option<BanCheck<'_>>,
    ) -> Result<CombinedAnswer, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(
            ban.is_some_and(|b| b.network.is_some()),
            "the ban — address and network — is read in the combined call"
        );
        let ban = Some(if self.banned {
            Decision::denied(5, Duration::from_secs(300), Duration::from_secs(300))
        } else {
            Decision::allowed(5, 5, Duration::ZERO)
        });
        if self.banned {
            return Ok(CombinedAnswer::new(ban, RevocationStatus::Active, None));
        }
        if self.revoked {
            return Ok(CombinedAnswer::new(
                ban,
                RevocationStatus::Revoked(tokenward_revocation::RevokedBy::Session),
                None,
            ));
        }
        let limit = limit.map(|_| {
            self.charged.fetch_add(1, Ordering::SeqCst);
            Decision::allowed(300, 299, Duration::from_millis(200))
        });
        Ok(CombinedAnswer::new(ban, RevocationStatus::Active, limit))
    }
}

/// A rate-limit store whose per-request calls must not happen separately when there is a
/// combined check (only recording failures is its own call, and then reading the network's
/// ban key: the combined call that would have read it is not made for a failure).
#[derive(Debug, Default)]
struct Unused {
    failures: AtomicUsize,
    network_reads: AtomicUsize,
}

#[async_trait]
impl RateLimitStore for Unused {
    async fn gcra(&self, _: &LimitKey<'_>, _: &GcraCharge) -> Result<Decision, StoreError> {
        panic!("gcra called separately despite the combined check")
    }
    async fn ban_status(&self, key: &LimitKey<'_>, _: &BanQuota) -> Result<Decision, StoreError> {
        assert!(
            key.as_str().contains(":net:"),
            "ban_status of {key:?} called separately despite the combined check"
        );
        self.network_reads.fetch_add(1, Ordering::SeqCst);
        Ok(Decision::allowed(2, 2, Duration::ZERO))
    }
    async fn record_failure(&self, _: &LimitKey<'_>, _: &BanQuota) -> Result<Decision, StoreError> {
        let n = self.failures.fetch_add(1, Ordering::SeqCst);
        Ok(if n + 1 >= 2 {
            Decision::denied(2, Duration::from_secs(300), Duration::from_secs(300))
        } else {
            Decision::allowed(2, 1, Duration::ZERO)
        })
    }
    async fn lift_ban(&self, _: &LimitKey<'_>) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test]
async fn the_combined_check_replaces_every_per_request_call() {
    let keys = keys();
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    for (banned, revoked) in [(false, false), (false, true), (true, false), (true, true)] {
        let combined = Arc::new(Counting {
            banned,
            revoked,
            ..Counting::default()
        });
        let stores = GuardStores::new(
            Arc::new(Down),
            Arc::new(Unused::default()),
            Arc::new(MemoryRefreshStore::new()),
        )
        .with_combined_check(combined.clone());
        let guard = GuardConfig::new("iss", "aud")
            .guard_builder(keys.clone(), stores, None)
            .unwrap()
            .build()
            .unwrap();
        let result = guard
            .authenticate(&request(Credentials::Bearer(&token)))
            .await;
        assert_eq!(combined.calls.load(Ordering::SeqCst), 1);
        match (banned, revoked) {
            (true, _) => {
                assert!(matches!(result.unwrap_err(), Denial::Banned { .. }));
                assert_eq!(combined.charged.load(Ordering::SeqCst), 0);
            }
            (false, true) => {
                assert_eq!(result.unwrap_err().status(), 401);
                assert_eq!(combined.charged.load(Ordering::SeqCst), 0);
            }
            (false, false) => {
                let auth = result.unwrap();
                assert_eq!(auth.limit.unwrap().remaining, 299);
                let headers = guard.ratelimit_headers(&auth).unwrap();
                assert_eq!(
                    headers[0],
                    ("ratelimit-policy", "\"subject\";q=300;w=60".to_owned())
                );
            }
        }
        // No token: no store call at all.
        let d = guard
            .authenticate(&request(Credentials::Absent))
            .await
            .unwrap_err();
        assert_eq!(d, Denial::MissingToken);
        assert_eq!(combined.calls.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn with_a_combined_check_failures_learn_the_ban_from_recording() {
    let keys = keys();
    let combined = Arc::new(Counting::default());
    let ratelimit = Arc::new(Unused::default());
    let stores = GuardStores::new(
        Arc::new(Down),
        ratelimit.clone(),
        Arc::new(MemoryRefreshStore::new()),
    )
    .with_combined_check(combined.clone());
    let guard = GuardConfig::new("iss", "aud")
        .guard_builder(keys, stores, None)
        .unwrap()
        .build()
        .unwrap();
    // The store bans at the second failure: 401, then 429 — without a combined call.
    let first = guard
        .authenticate(&request(Credentials::Bearer("x.y.z")))
        .await;
    assert_eq!(first.unwrap_err().status(), 401);
    let second = guard
        .authenticate(&request(Credentials::Malformed("bad")))
        .await
        .unwrap_err();
    assert!(matches!(second, Denial::Banned { .. }), "{second:?}");
    assert!(
        second
            .headers()
            .contains(&("retry-after", "300".to_owned()))
    );
    assert_eq!(combined.calls.load(Ordering::SeqCst), 0);
    // The first failure (its address not banned) read its network's ban key; the second,
    // banned by its address, did not need to.
    assert_eq!(ratelimit.network_reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failures_ban_the_client_and_login_failures_count() {
    let keys = keys();
    let guard = GuardConfig::new("iss", "aud")
        .guard_builder(keys.clone(), GuardStores::memory(), None)
        .unwrap()
        .build()
        .unwrap();
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    // Three bad tokens and two wrong passwords: banned.
    for _ in 0..3 {
        let d = guard
            .authenticate(&request(Credentials::Bearer("x.y.z")))
            .await
            .unwrap_err();
        assert_eq!(d.status(), 401);
    }
    for _ in 0..2 {
        guard
            .check_client(&request(Credentials::Absent))
            .await
            .unwrap();
        guard
            .record_failure(&request(Credentials::Absent), "bad_password")
            .await;
    }
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let d = guard
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap_err();
    assert!(matches!(d, Denial::Banned { .. }), "{d:?}");
    assert!(d.headers().contains(&("retry-after", "300".to_owned())));
    assert!(
        guard
            .check_client(&request(Credentials::Absent))
            .await
            .is_err()
    );
    // Another client is unaffected; missing tokens never count.
    let other = AuthRequest::new(
        "GET",
        "/",
        "192.0.2.2".parse().unwrap(),
        Credentials::Absent,
    );
    for _ in 0..10 {
        assert_eq!(guard.authenticate(&other).await.unwrap_err().status(), 401);
    }
    guard.check_client(&other).await.unwrap();
    // An operator lifts the ban.
    guard
        .failure_ban()
        .unwrap()
        .lift_ip(guard.ratelimit_store(), ip)
        .await
        .unwrap();
    guard
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap();
}

/// Hands out a rotated key on the first refetch.
#[derive(Debug)]
struct Rotating {
    keys: SharedKeySet,
    next: Mutex<Option<Key>>,
    calls: AtomicUsize,
}

impl tokenward_claims::KeyResolver for Rotating {
    fn resolve(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        self.keys.resolve(kid)
    }
}

#[async_trait]
impl KeyRefetch for Rotating {
    async fn refetch_for_token(&self, _token: &str) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Some(key) = self.next.lock().unwrap().take() else {
            return false;
        };
        self.keys.update(|k| k.insert(key)).unwrap();
        true
    }
}

#[tokio::test]
async fn unknown_kid_triggers_one_refetch_then_verifies() {
    let old = keys();
    let new_key = Key::hmac("k2", Algorithm::HS256, &[3u8; 32]).unwrap();
    let new_keys = KeySet::single(Key::hmac("k2", Algorithm::HS256, &[3u8; 32]).unwrap());
    let shared = SharedKeySet::new(old);
    // The key source is given once: the refetching keys verify and refetch.
    let refetch = Arc::new(Rotating {
        keys: shared.clone(),
        next: Mutex::new(Some(new_key)),
        calls: AtomicUsize::new(0),
    });
    let guard = GuardConfig::new("iss", "aud")
        .guard_builder(
            KeySource::Refetching(refetch.clone()),
            GuardStores::memory(),
            None,
        )
        .unwrap()
        .build()
        .unwrap();
    let token = issuer(&new_keys)
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    guard
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap();
    assert_eq!(refetch.calls.load(Ordering::SeqCst), 1);
    // Known now: no further refetch. A bad signature never refetches.
    guard
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap();
    let forged = format!("{}x", &token[..token.len() - 1]);
    let _ = guard
        .authenticate(&request(Credentials::Bearer(&forged)))
        .await;
    assert_eq!(refetch.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn requirements_scope_and_audience() {
    let keys = keys();
    let guard = GuardConfig::new("iss", "aud")
        .guard_builder(keys.clone(), GuardStores::memory(), None)
        .unwrap()
        .build()
        .unwrap();
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice").scope("read"))
        .unwrap()
        .token;
    let req = request(Credentials::Bearer(&token));
    let auth = guard.authenticate(&req).await.unwrap();
    guard
        .check_requirements(
            &req,
            &auth,
            &Requirements::new().scope("read").audience("aud"),
        )
        .unwrap();
    let d = guard
        .check_requirements(
            &req,
            &auth,
            &Requirements::new().scope("read").scope("admin"),
        )
        .unwrap_err();
    assert_eq!(d.status(), 403);
    assert_eq!(d.error(), "insufficient_scope");
    let d = guard
        .check_requirements(&req, &auth, &Requirements::new().audience("admin-api"))
        .unwrap_err();
    assert_eq!(d.status(), 401);
}

#[tokio::test]
async fn custom_claims_are_typed_on_demand() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Tenant {
        tenant: String,
    }
    let keys = keys();
    let guard = GuardConfig::new("iss", "aud")
        .guard_builder(keys.clone(), GuardStores::memory(), None)
        .unwrap()
        .build()
        .unwrap();
    let token = issuer(&keys)
        .issue_with(
            &AccessToken::new("alice"),
            &Tenant {
                tenant: "acme".into(),
            },
        )
        .unwrap()
        .token;
    let auth = guard
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap();
    assert_eq!(
        auth.custom::<Tenant>().unwrap(),
        Tenant {
            tenant: "acme".into()
        }
    );
}

#[tokio::test]
async fn revoking_through_the_guard() {
    let keys = keys();
    let stores = GuardStores::new(
        Arc::new(MemoryRevocationStore::new()),
        Arc::new(tokenward_ratelimit::MemoryRateLimitStore::new()),
        Arc::new(MemoryRefreshStore::new()),
    );
    let guard = GuardConfig::new("iss", "aud")
        .guard_builder(keys.clone(), stores, None)
        .unwrap()
        .build()
        .unwrap();
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let req = request(Credentials::Bearer(&token));
    let auth = guard.authenticate(&req).await.unwrap();
    guard.revoke_token(&auth).await.unwrap();
    let d = guard.authenticate(&req).await.unwrap_err();
    assert_eq!(d.reason(), "token");
}

/// A revocation store, rate-limit store and combined check that are all down.
#[derive(Debug)]
struct CombinedDown;

#[async_trait]
impl CombinedCheck for CombinedDown {
    async fn check_request(
        &self,
        _: &TokenRef<'_>,
        _: Option<(&LimitKey<'_>, &GcraCharge)>,
        _: Option<BanCheck<'_>>,
    ) -> Result<CombinedAnswer, StoreError> {
        Err(StoreError::Timeout {
            after: Duration::from_millis(1),
        })
    }
}

/// Regression: a combined-store outage with every policy open recorded only `revocation` as
/// degraded, although the ban and the subject limit were skipped too.
#[tokio::test]
async fn a_combined_outage_with_every_policy_open_records_every_skipped_check() {
    let keys = keys();
    let token = issuer(&keys)
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let stores = down_stores().with_combined_check(Arc::new(CombinedDown));
    let mut config = GuardConfig::new("iss", "aud");
    config.failure_policy = FailurePolicy::DangerousOpen;
    let guard = config
        .guard_builder(keys.clone(), stores.clone(), None)
        .unwrap()
        .build()
        .unwrap();
    let auth = guard
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap();
    assert_eq!(
        auth.degraded,
        [Check::Revocation, Check::SubjectLimit, Check::Ban]
    );
    // One closed policy among them refuses, naming it.
    config.ban.failure_policy = Some(FailurePolicy::Closed);
    let guard = config
        .guard_builder(keys, stores, None)
        .unwrap()
        .build()
        .unwrap();
    let denial = guard
        .authenticate(&request(Credentials::Bearer(&token)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            denial,
            Denial::Unavailable {
                check: Check::Ban,
                ..
            }
        ),
        "{denial:?}"
    );
}

/// Regression: `GuardBuilder::failure_policy` overwrote the failure policy of a
/// `SubjectLimit` / `FailureBan` passed in earlier, so a closed ban silently became
/// fail-open. An explicitly given policy keeps its own; the builder's applies to the rest.
#[tokio::test]
async fn failure_policy_never_overrides_an_explicit_policy() {
    use tokenward_ratelimit::{FailureBan, SubjectLimit};
    let keys = keys();
    let policy = tokenward_claims::ValidationPolicy::builder()
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    let ban = FailureBan::new("auth-ban", BanQuota::fail2ban_default()).unwrap();
    let limit = SubjectLimit::new(
        "subject",
        GcraQuota::per_minute(NonZeroU32::new(9).unwrap()),
    )
    .unwrap();
    let guard = Guard::builder(
        tokenward_guard::Verifier::new(policy.clone(), keys.clone()),
        GuardStores::memory(),
    )
    .failure_ban(ban.clone())
    .subject_limit(limit.clone())
    .failure_policy(FailurePolicy::DangerousOpen)
    .build()
    .unwrap();
    assert_eq!(
        guard.failure_ban().unwrap().on_store_failure(),
        FailurePolicy::Closed
    );
    assert_eq!(
        guard.subject_limit().unwrap().on_store_failure(),
        FailurePolicy::Closed
    );
    assert_eq!(
        guard.revocation_failure_policy(),
        FailurePolicy::DangerousOpen
    );

    // The defaults take the builder's policy, whichever order the calls come in.
    let guard = Guard::builder(
        tokenward_guard::Verifier::new(policy, keys),
        GuardStores::memory(),
    )
    .failure_policy(FailurePolicy::DangerousOpen)
    .build()
    .unwrap();
    assert_eq!(
        guard.failure_ban().unwrap().on_store_failure(),
        FailurePolicy::DangerousOpen
    );
    assert_eq!(
        guard.subject_limit().unwrap().on_store_failure(),
        FailurePolicy::DangerousOpen
    );
}

#[tokio::test]
async fn outage_retry_after_out_of_range_is_an_error_not_clamped() {
    let builder = || {
        GuardConfig::new("iss", "aud")
            .guard_builder(keys(), GuardStores::memory(), None)
            .unwrap()
    };
    for bad in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(3601),
    ] {
        let e = builder().outage_retry_after(bad).unwrap_err();
        assert_eq!(e.setting(), "outage_retry_after", "{bad:?}");
    }
    assert!(builder().outage_retry_after(Duration::from_secs(1)).is_ok());
}

/// Regression: `stores.backend = "redis"` without `[stores.redis]` silently connected to
/// `redis://127.0.0.1:6379`.
#[cfg(feature = "redis")]
#[test]
fn redis_backend_without_its_table_is_an_error_naming_the_field() {
    let c: GuardConfig = toml::from_str(
        "[validation]\nissuers = [\"i\"]\naudiences = [\"a\"]\n[stores]\nbackend = \"redis\"",
    )
    .unwrap();
    assert_eq!(c.validate().unwrap_err().field, "stores.redis");
    assert_eq!(c.connect_stores().unwrap_err().field, "stores.redis");
    let c: GuardConfig = toml::from_str(
        "[validation]\nissuers = [\"i\"]\naudiences = [\"a\"]\n[stores]\nbackend = \"redis\"\n[stores.redis]\nurl = \"redis://127.0.0.1:6390\"",
    )
    .unwrap();
    c.validate().unwrap();
}
