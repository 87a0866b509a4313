//! The audit events of reuse detection and of the per-subject family cap: target
//! `tokenward::audit`, `WARN`, the decision, the family's `sid` and `sub`, which kind of
//! reuse or which new family — and never a token.
//!
//! The events are captured by a subscriber set for this test's thread only (a current-thread
//! runtime polls the engine there), so the other tests of the binary run alongside.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokenward_core::{IssuerScope, ManualClock, UnixTime};
use tokenward_refresh::{
    MemoryRefreshStore, RefreshConfig, RefreshEngine, RefreshError, ReuseKind,
};
use tokenward_revocation::{MemoryRevocationStore, RevocationStore as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use super::{T0, mint, sub};

/// One captured event: target, level, and every field as a string.
#[derive(Debug, Clone)]
struct Captured {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Captured {
                target: event.metadata().target().to_owned(),
                level: *event.metadata().level(),
                fields,
            });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The audit events captured so far.
fn audit_events(capture: &Capture) -> Vec<Captured> {
    capture
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|e| e.target == "tokenward::audit")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn reuse_emits_an_audit_event_without_tokens() {
    let capture = Capture::default();
    // Thread-local: the current-thread runtime polls the engine on this thread.
    let _guard = tracing::subscriber::set_default(capture.clone());

    let clock = ManualClock::new(T0);
    let engine = RefreshEngine::with_config(
        Arc::new(MemoryRefreshStore::with_clock(Arc::new(clock.clone()))),
        Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone()))),
        IssuerScope::new("https://auth.example.com"),
        RefreshConfig::new().clock(Arc::new(clock.clone())),
    )
    .unwrap();
    let mut tokens = Vec::new();

    // An older token (grandparent), within the window.
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let a = login.refresh_token.expose().to_owned();
    let b = engine.rotate(&a, Some("key"), mint).await.unwrap();
    let c = engine
        .rotate(b.refresh_token.expose(), None, mint)
        .await
        .unwrap();
    tokens.extend([a.clone(), b.refresh_token.expose().to_owned()]);
    tokens.push(c.refresh_token.expose().to_owned());
    assert!(
        audit_events(&capture).is_empty(),
        "no audit event without reuse"
    );
    let err = engine.rotate(&a, None, mint).await.unwrap_err();
    let RefreshError::Reused(report) = err else {
        panic!("{err:?}")
    };
    assert_eq!(report.kind, ReuseKind::OlderToken);

    // The predecessor, after the window.
    let login2 = engine.issue(&sub("bob"), mint).await.unwrap();
    let p = login2.refresh_token.expose().to_owned();
    let q = engine.rotate(&p, None, mint).await.unwrap();
    tokens.extend([p.clone(), q.refresh_token.expose().to_owned()]);
    clock.advance(Duration::from_secs(31));
    let err = engine.rotate(&p, None, mint).await.unwrap_err();
    let RefreshError::Reused(report) = err else {
        panic!("{err:?}")
    };
    assert_eq!(report.kind, ReuseKind::PredecessorAfterWindow);

    let events = audit_events(&capture);
    assert_eq!(events.len(), 2, "{events:?}");
    for (event, (sid, sub, kind)) in events.iter().zip([
        (login.family_id.as_str(), "alice", "older_token"),
        (login2.family_id.as_str(), "bob", "predecessor_after_window"),
    ]) {
        assert_eq!(event.level, Level::WARN);
        let field = |name: &str| event.fields.get(name).map(String::as_str);
        assert_eq!(field("decision"), Some("refresh_reuse"));
        assert_eq!(field("sid"), Some(sid));
        assert_eq!(field("sub"), Some(sub));
        assert_eq!(field("reuse_kind"), Some(kind));
        assert_eq!(field("session_revoked"), Some("true"));
        for value in event.fields.values() {
            assert!(
                !value.contains("twr_"),
                "a token in the audit event: {value}"
            );
            for token in &tokens {
                assert!(!value.contains(token.as_str()));
                // Neither the secret part alone.
                assert!(!value.contains(&token[token.len() - 20..]));
            }
        }
    }
}

/// A login that takes a subject over `max_families_per_subject` revokes the oldest family
/// (and its session) with a `refresh_family_cap` event naming the family ids, never a token.
#[tokio::test(flavor = "current_thread")]
async fn the_family_cap_revokes_the_oldest_with_an_audit_event() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let clock = ManualClock::new(T0);
    let revocation = Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone())));
    let engine = RefreshEngine::with_config(
        Arc::new(MemoryRefreshStore::with_clock(Arc::new(clock.clone()))),
        revocation.clone(),
        IssuerScope::new("https://auth.example.com"),
        RefreshConfig::new()
            .max_families_per_subject(2)
            .clock(Arc::new(clock.clone())),
    )
    .unwrap();
    let mut logins = Vec::new();
    for _ in 0..3 {
        logins.push(engine.issue(&sub("alice"), mint).await.unwrap());
        clock.advance(Duration::from_secs(1));
    }
    engine.issue(&sub("bob"), mint).await.unwrap();

    let live: Vec<_> = engine
        .families(&sub("alice"))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(
        live,
        [logins[1].family_id.clone(), logins[2].family_id.clone()]
    );
    let err = engine
        .rotate(logins[0].refresh_token.expose(), None, mint)
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Revoked { .. }), "{err:?}");
    let sid = IssuerScope::new("https://auth.example.com")
        .token_ref(
            None,
            Some(logins[0].family_id.as_str()),
            None,
            None,
            UnixTime::from_secs(4_000_000_000),
        )
        .unwrap();
    assert!(revocation.check(&sid).await.unwrap().is_revoked());

    let events = audit_events(&capture);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.level, Level::WARN);
    let field = |name: &str| event.fields.get(name).map(String::as_str);
    assert_eq!(field("decision"), Some("refresh_family_cap"));
    assert_eq!(field("sid"), Some(logins[0].family_id.as_str()));
    assert_eq!(field("new_sid"), Some(logins[2].family_id.as_str()));
    assert_eq!(field("sub"), Some("alice"));
    assert_eq!(field("max_families"), Some("2"));
    assert_eq!(field("revoked"), Some("true"));
    assert_eq!(field("error"), None);
    for value in event.fields.values() {
        assert!(
            !value.contains("twr_"),
            "a token in the audit event: {value}"
        );
    }
}
