//! Metrics and spans of the Guard, as a recorder and a subscriber see them: every decision
//! counted under its exact labels, store latencies and errors recorded, and one
//! `tokenward.authenticate` span per request with its OpenTelemetry fields.
//!
//! Each test installs its recorder (`metrics::set_default_local_recorder`) and subscriber
//! (`tracing::subscriber::set_default`) for its own thread only, on a current-thread
//! runtime, so the tests of this binary do not see each other's numbers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokenward_claims::{AccessToken, TokenIssuer};
use tokenward_core::{FailurePolicy, ManualClock, StoreError, StoreId, TokenRef, UnixTime};
use tokenward_guard::{AuthRequest, Credentials, Guard, GuardConfig, GuardStores};
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::common::{issuer, keys};
use crate::pipeline::down_stores;

/// `name{label=value,...}` (labels sorted) → counter value, and → number of histogram samples.
struct Metrics {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, usize>,
}

fn read(snapshotter: &Snapshotter) -> Metrics {
    let mut m = Metrics {
        counters: BTreeMap::new(),
        histograms: BTreeMap::new(),
    };
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => {
                m.counters.insert(name, n);
            }
            DebugValue::Histogram(samples) => {
                m.histograms.insert(name, samples.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    m
}

fn req<'a>(ip: &str, creds: Credentials<'a>) -> AuthRequest<'a> {
    AuthRequest::new("GET", "/orders", ip.parse().unwrap(), creds)
}

fn memory_guard(stores: GuardStores) -> Guard {
    GuardConfig::new("iss", "aud")
        .guard_builder(keys(), stores, None)
        .unwrap()
        .build()
        .unwrap()
}

/// An issuer whose clock stands long ago: its tokens are expired.
fn expired_issuer() -> TokenIssuer {
    TokenIssuer::builder(keys(), "iss")
        .audience("aud")
        .clock(Arc::new(ManualClock::new(UnixTime::from_secs(1_000_000))))
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_decision_counts_under_its_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let guard = memory_guard(GuardStores::memory());
    let issuer = issuer(&keys());
    let ip = "192.0.2.1";
    // 3 allowed.
    let token = issuer.issue(&AccessToken::new("alice")).unwrap().token;
    let mut auth = None;
    for _ in 0..3 {
        auth = Some(
            guard
                .authenticate(&req(ip, Credentials::Bearer(&token)))
                .await
                .unwrap(),
        );
    }
    // 2 expired (late, not forged: never counted for the ban).
    let expired = expired_issuer()
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    for _ in 0..2 {
        let denial = guard
            .authenticate(&req(ip, Credentials::Bearer(&expired)))
            .await
            .unwrap_err();
        assert_eq!(denial.class(), "expired");
    }
    // 2 revoked.
    guard.revoke_token(&auth.unwrap()).await.unwrap();
    for _ in 0..2 {
        let denial = guard
            .authenticate(&req(ip, Credentials::Bearer(&token)))
            .await
            .unwrap_err();
        assert_eq!(denial.class(), "revoked");
    }
    // 1 without a token.
    guard
        .authenticate(&req(ip, Credentials::Absent))
        .await
        .unwrap_err();
    // Forged tokens from another client: the ban's maxretry is 5, and the failure that
    // reaches it is already answered 429; the next request is refused by the ban before
    // anything else.
    let forged = format!("{token}x");
    let attacker = "198.51.100.9";
    for _ in 0..5 {
        let _ = guard
            .authenticate(&req(attacker, Credentials::Bearer(&forged)))
            .await;
    }
    let denial = guard
        .authenticate(&req(attacker, Credentials::Bearer(&token)))
        .await
        .unwrap_err();
    assert_eq!(denial.class(), "banned");

    // A store outage, closed (503) and open (allowed, degraded).
    let closed = memory_guard(down_stores());
    let denial = closed
        .authenticate(&req(ip, Credentials::Bearer(&token)))
        .await
        .unwrap_err();
    assert_eq!(
        (denial.status(), denial.class()),
        (503, "store_unavailable")
    );
    let open = GuardConfig::new("iss", "aud")
        .guard_builder(keys(), down_stores(), None)
        .unwrap()
        .revocation_failure_policy(FailurePolicy::DangerousOpen)
        .build()
        .unwrap();
    open.authenticate(&req(ip, Credentials::Bearer(&token)))
        .await
        .unwrap();

    let m = read(&snapshotter);
    let decisions: BTreeMap<&str, u64> = m
        .counters
        .iter()
        .filter(|(k, _)| k.starts_with("tokenward_decisions_total{"))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let expected = BTreeMap::from([
        ("tokenward_decisions_total{class=banned,outcome=denied}", 2),
        ("tokenward_decisions_total{class=expired,outcome=denied}", 2),
        (
            "tokenward_decisions_total{class=missing_token,outcome=denied}",
            1,
        ),
        (
            "tokenward_decisions_total{class=none,outcome=allowed}",
            3 + 1,
        ),
        ("tokenward_decisions_total{class=revoked,outcome=denied}", 2),
        (
            "tokenward_decisions_total{class=signature,outcome=denied}",
            4,
        ),
        (
            "tokenward_decisions_total{class=store_unavailable,outcome=denied}",
            1,
        ),
    ]);
    assert_eq!(decisions, expected, "{:#?}", m.counters);
    assert_eq!(
        m.counters["tokenward_store_errors_total{check=revocation}"],
        2
    );
    assert_eq!(m.counters["tokenward_degraded_total{check=revocation}"], 1);
    // Every authenticate is timed: 3 + 4 allowed... by outcome.
    assert_eq!(m.histograms["tokenward_guard_seconds{outcome=allowed}"], 4);
    assert_eq!(m.histograms["tokenward_guard_seconds{outcome=denied}"], 12);
    // Store calls: the ban check only while a ban is in force (the in-memory store answers
    // "nothing banned" without a call): the attacker's request after its ban; the revocation
    // check of every verified token (3 + 2 + 2 on the outage guards), the subject limit for
    // the unrevoked ones (3 allowed + the degraded one), a ban record per forged token.
    assert_eq!(m.histograms["tokenward_store_seconds{check=ban}"], 1);
    assert_eq!(m.histograms["tokenward_store_seconds{check=revocation}"], 7);
    assert_eq!(
        m.histograms["tokenward_store_seconds{check=subject_limit}"],
        4
    );
    assert_eq!(m.histograms["tokenward_store_seconds{check=ban_record}"], 5);
    // No label carries a subject, a token id or an address.
    for key in m.counters.keys().chain(m.histograms.keys()) {
        for secret in ["alice", "192.0.2.1", "198.51.100.9", token.as_str()] {
            assert!(!key.contains(secret), "{key}");
        }
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_combined_check_is_one_timed_store_call() {
    use tokenward_redis::{RedisConfig, RedisStores};
    use tokenward_testsupport::{delete_prefix, redis_url, shared_redis, unique_prefix};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut conn = shared_redis().await;
    let prefix = unique_prefix("guard-metrics");
    let stores = RedisStores::connect(&RedisConfig::new(redis_url()).key_prefix(&prefix)).unwrap();
    let guard = memory_guard(GuardStores::redis(&stores));
    let token = issuer(&keys())
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    for _ in 0..2 {
        guard
            .authenticate(&req("192.0.2.1", Credentials::Bearer(&token)))
            .await
            .unwrap();
    }
    let m = read(&snapshotter);
    assert_eq!(m.histograms["tokenward_store_seconds{check=combined}"], 2);
    assert!(
        !m.histograms.keys().any(|k| k.contains("check=revocation")),
        "{:?}",
        m.histograms
    );
    assert_eq!(
        m.counters["tokenward_decisions_total{class=none,outcome=allowed}"],
        2
    );
    delete_prefix(&mut conn, &prefix).await.unwrap();
}

/// The spans a test saw: name, parent name, fields (as text), in the order they closed.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<SpansInner>>);

#[derive(Default)]
struct SpansInner {
    open: HashMap<Id, Captured>,
    closed: Vec<Captured>,
}

#[derive(Debug, Clone)]
struct Captured {
    name: &'static str,
    target: String,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.name());
        let captured = Captured {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            parent,
            fields,
        };
        self.0.lock().unwrap().open.insert(id.clone(), captured);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.0.lock().unwrap().open.get_mut(id) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut inner = self.0.lock().unwrap();
        if let Some(span) = inner.open.remove(&id) {
            inner.closed.push(span);
        }
    }
}

/// A revocation store with only the async calls (no synchronous `check_now`), as a network
/// store has.
#[derive(Debug)]
struct AsyncOnly(MemoryRevocationStore);

#[async_trait::async_trait]
impl RevocationStore for AsyncOnly {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.0.revoke_token(jti, until).await
    }
    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.0.revoke_session(sid, until).await
    }
    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.0.revoke_subject(sub, before, until).await
    }
    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        self.0.check(token).await
    }
}

#[tokio::test]
async fn one_span_per_authentication_with_otel_fields() {
    // While only one dispatcher exists, tracing-core computes a callsite's interest from the
    // registering thread's subscriber alone and caches it: a Guard callsite that another test
    // thread (without a subscriber) hits first would stay disabled for this one. With a
    // second live dispatcher, every registration asks all of them.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _default = tracing::subscriber::set_default(subscriber);

    // The in-memory revocation store answers synchronously (`check_now`), without a span;
    // behind a wrapper that only has the async `check`, as a network store would be, each
    // check is a store call with its span.
    let mut stores = GuardStores::memory();
    let in_process = memory_guard(stores.clone());
    stores.revocation = Arc::new(AsyncOnly(MemoryRevocationStore::new()));
    let guard = memory_guard(stores.clone());
    let token = issuer(&keys())
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let expired = expired_issuer()
        .issue(&AccessToken::new("bob"))
        .unwrap()
        .token;
    let store_spans = || -> Vec<(String, Option<&'static str>)> {
        let mut inner = spans.0.lock().unwrap();
        let out = inner
            .closed
            .iter()
            .filter(|s| s.name == "tokenward.store")
            .map(|s| (s.fields["check"].clone(), s.parent))
            .collect();
        inner.closed.clear();
        out
    };
    in_process
        .authenticate(&req("192.0.2.7", Credentials::Bearer(&token)))
        .await
        .unwrap();
    assert_eq!(store_spans(), [], "in-memory stores answer without a span");
    // No key banned: the in-memory store says so at once, and the ban check reads nothing
    // (no store call, no span); the revocation check does.
    guard
        .authenticate(&req("192.0.2.7", Credentials::Bearer(&token)))
        .await
        .unwrap();
    assert_eq!(
        store_spans(),
        [("revocation".to_owned(), Some("tokenward.authenticate"))]
    );
    // Another network banned: now every ban check reads the store.
    let ban = guard.failure_ban().unwrap();
    ban.ban_network(
        &*stores.ratelimit,
        "198.51.100.9".parse().unwrap(),
        std::time::Duration::from_secs(600),
    )
    .await
    .unwrap();
    guard
        .authenticate(&req("192.0.2.7", Credentials::Bearer(&token)))
        .await
        .unwrap();
    guard
        .authenticate(&req("2001:db8::7", Credentials::Bearer(&expired)))
        .await
        .unwrap_err();

    let closed = spans.0.lock().unwrap().closed.clone();
    let auth: Vec<&Captured> = closed
        .iter()
        .filter(|s| s.name == "tokenward.authenticate")
        .collect();
    assert_eq!(auth.len(), 2, "{closed:#?}");
    let fields = |s: &Captured| -> Vec<(String, String)> {
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(auth[0].target, "tokenward::guard");
    assert_eq!(
        fields(auth[0]),
        expect(&[
            ("client.address", "192.0.2.7"),
            ("enduser.id", "alice"),
            ("http.request.method", "GET"),
            ("tokenward.class", "none"),
            ("tokenward.outcome", "allowed"),
            ("url.path", "/orders"),
        ])
    );
    // Refused before the `sub` was verified: no `enduser.id`.
    assert_eq!(
        fields(auth[1]),
        expect(&[
            ("client.address", "2001:db8::7"),
            ("http.request.method", "GET"),
            ("tokenward.class", "expired"),
            ("tokenward.outcome", "denied"),
            ("url.path", "/orders"),
        ])
    );
    // Store calls are children of the authentication they belong to (entered across awaits):
    // the ban check, then the revocation check (the in-memory subject limit answers
    // synchronously, without a span); the expired token never reaches the stores.
    let parent = Some("tokenward.authenticate");
    let store: Vec<(&str, Option<&str>)> = closed
        .iter()
        .filter(|s| s.name == "tokenward.store")
        .map(|s| (s.fields["check"].as_str(), s.parent))
        .collect();
    assert_eq!(
        store,
        [("ban", parent), ("revocation", parent), ("ban", parent),]
    );
}
