//! The `tracing` signals: warnings for skipped keys and failed fetches, audit events for
//! serving stale keys, for keys past their maximum staleness, and for recovery; and the
//! metrics `tokenward_jwks_fetches_total{result}` and `tokenward_jwks_stale_total{state}`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokenward_claims::{ManualClock, UnixTime};
use tokenward_jwks::{JwksSource, RemoteKeySet};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::common::{jwks, signer};
use crate::server::{Reply, TestServer};

/// One recorded event: target, level, and its fields as text.
#[derive(Debug, Clone)]
struct Recorded {
    target: String,
    level: Level,
    fields: Vec<(String, String)>,
}

impl Recorded {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal subscriber that records every event (no spans are used by the crate).
#[derive(Debug, Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(Recorded {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The one audit event with this `decision` among `events` (fails unless exactly one).
fn audit<'a>(events: &'a [Recorded], decision: &str) -> &'a Recorded {
    let found: Vec<&Recorded> = events
        .iter()
        .filter(|e| e.target == "tokenward::audit" && e.field("decision") == Some(decision))
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!("expected one `{decision}` audit event: {events:?}"),
    }
}

/// The counters recorded so far: `name{label=value}` → value.
fn counters(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Counter(n) = value else {
                return None;
            };
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            Some((format!("{}{{{}}}", key.name(), labels.join(",")), n))
        })
        .collect()
}

// A current-thread runtime: the fetch tasks run on this thread, under the recorders.
#[tokio::test(flavor = "current_thread")]
async fn skipped_keys_failures_staleness_and_recovery_are_signalled() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let metrics_recorder = DebuggingRecorder::new();
    let snapshotter = metrics_recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&metrics_recorder);

    let server = TestServer::start().await;
    let k1 = signer("k1");
    let k1_jwk = serde_json::to_value(&k1.public_jwks().keys[0]).unwrap();
    let body = serde_json::json!({ "keys": [
        k1_jwk,
        { "kty": "oct", "kid": "shared-secret", "alg": "HS256", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI" },
    ]});
    server.set(
        "/jwks",
        Reply::json(body.to_string()).header("cache-control", "max-age=600"),
    );
    let clock = ManualClock::new(UnixTime::from_secs(1_800_000_000));
    let remote = RemoteKeySet::builder(JwksSource::url(server.url("/jwks")))
        .dangerous_allow_http(true)
        .max_staleness(Duration::from_secs(3600))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    remote.refresh().await.unwrap();

    // The symmetric key was skipped with a warning naming its kid (never its secret).
    let events = recorder.take();
    let skipped: Vec<_> = events
        .iter()
        .filter(|e| e.target == "tokenward::jwks" && e.level == Level::WARN)
        .collect();
    assert_eq!(skipped.len(), 1, "{events:?}");
    assert_eq!(skipped[0].field("kid"), Some("shared-secret"));
    assert!(!format!("{events:?}").contains("c2VjcmV0"));

    // A failed refresh within the TTL: a warning, no audit event yet.
    server.set("/jwks", Reply::json("down").status(503));
    assert!(remote.refresh().await.is_err());
    let events = recorder.take();
    assert!(
        events
            .iter()
            .any(|e| e.target == "tokenward::jwks" && e.level == Level::WARN)
    );
    assert!(
        events.iter().all(|e| e.target != "tokenward::audit"),
        "{events:?}"
    );

    // Past the TTL: serving stale keys is audited.
    clock.advance(Duration::from_secs(601));
    assert!(remote.refresh().await.is_err());
    let events = recorder.take();
    let stale = audit(&events, "jwks_serving_stale");
    assert_eq!(stale.level, Level::WARN);
    assert_eq!(stale.field("consecutive_failures"), Some("2"));

    // Past the maximum staleness: an error-level audit event.
    clock.advance(Duration::from_secs(3600));
    assert!(remote.refresh().await.is_err());
    let events = recorder.take();
    assert_eq!(audit(&events, "jwks_stale_unusable").level, Level::ERROR);

    // Back: recovery is audited.
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    remote.refresh().await.unwrap();
    let events = recorder.take();
    let recovered = audit(&events, "jwks_recovered");
    assert_eq!(recovered.field("failed_fetches"), Some("3"));

    // Two good fetches, three failed ones: the first within the TTL, one while serving the
    // stale keys, one past the maximum staleness.
    let expected: BTreeMap<String, u64> = [
        ("tokenward_jwks_fetches_total{result=ok}", 2),
        ("tokenward_jwks_fetches_total{result=error}", 3),
        ("tokenward_jwks_stale_total{state=serving}", 1),
        ("tokenward_jwks_stale_total{state=unusable}", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counters(&snapshotter), expected);
}
