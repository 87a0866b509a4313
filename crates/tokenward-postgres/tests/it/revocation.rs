//! `PgRevocationStore` against a real PostgreSQL: the conformance suite (a fresh schema per
//! case, dropped after it), the bulk import, the live-revocation pages, and the purge.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::conformance::BoxError;
use tokenward_core::{StoreId, TokenRef, UnixTime};
use tokenward_postgres::{LiveRevocation, PgBackend, PgRevocationStore};
use tokenward_revocation::conformance::{Fixture, RealClock, RevocationEnv};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use crate::common::{PgProbe, backend, drop_schema};

/// The suite's fixture: a store in a fresh schema per case, dropped after it.
struct PgFixture {
    backends: Mutex<HashMap<&'static str, PgBackend>>,
}

impl PgFixture {
    async fn setup() -> Result<Self, Infallible> {
        Ok(PgFixture {
            backends: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait]
impl Fixture<RevocationEnv> for PgFixture {
    async fn env(&self, case: &'static str) -> Result<RevocationEnv, BoxError> {
        let backend = backend(&format!("rv_{case}")).await;
        self.backends.lock().unwrap().insert(case, backend.clone());
        let store = PgRevocationStore::new(backend.clone());
        Ok(RevocationEnv::new(
            Arc::new(store),
            Arc::new(RealClock::new()),
            Arc::new(PgProbe { backend }),
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        let backend = self.backends.lock().unwrap().remove(case);
        if let Some(backend) = backend {
            drop_schema(&backend).await;
        }
        Ok(())
    }
}

mod conformance {
    tokenward_revocation::revocation_conformance_tests!(
        fixture = super::PgFixture,
        setup = super::PgFixture::setup
    );
}

fn id(s: &str) -> StoreId<'static> {
    StoreId::new(s.to_owned()).unwrap()
}

fn now() -> UnixTime {
    tokenward_core::Clock::now(&tokenward_core::SystemClock)
}

fn by_jti(jti: &str) -> TokenRef<'static> {
    TokenRef {
        jti: Some(id(jti)),
        sid: None,
        sub: None,
        iat: None,
        exp: now().saturating_add(Duration::from_secs(600)),
    }
}

/// An import is one transaction: rows already expired are skipped, a `jti` named twice
/// keeps its later `until`, and what it wrote is revoked.
#[tokio::test]
async fn import_skips_expired_rows_and_merges_duplicates() {
    let backend = backend("import").await;
    let store = PgRevocationStore::new(backend.clone());
    let live = now().saturating_add(Duration::from_secs(3600));
    let past = now().saturating_sub(Duration::from_secs(10));
    let rows = vec![
        (id("a"), live),
        (id("b"), past),
        (id("c"), live),
        (id("a"), past),
        (id("c"), live.saturating_add(Duration::from_secs(60))),
    ];
    let report = store.import_tokens(rows).await.unwrap();
    assert_eq!(
        (report.imported, report.skipped_expired, report.duplicates),
        (2, 1, 2)
    );
    for (jti, revoked) in [("a", true), ("b", false), ("c", true), ("d", false)] {
        let status = store.check(&by_jti(jti)).await.unwrap();
        assert_eq!(status.is_revoked(), revoked, "{jti}");
    }
    // The later `until` of the duplicate `c` was kept.
    let page = store.live_revocations(None, 10).await.unwrap();
    let c = page
        .iter()
        .find_map(|r| match r {
            LiveRevocation::Token { id, until } if id.as_str() == "c" => Some(*until),
            _ => None,
        })
        .unwrap();
    assert!(c >= live.saturating_add(Duration::from_secs(60)));
    drop_schema(&backend).await;
}

/// Every live revocation comes back through the pages, each once, expired ones never.
#[tokio::test]
async fn live_revocations_page_through_every_rule() {
    let backend = backend("live_pages").await;
    let store = PgRevocationStore::new(backend.clone());
    let until = now().saturating_add(Duration::from_secs(3600));
    let before = now();
    for i in 0..25 {
        store
            .revoke_token(&id(&format!("j{i}")), until)
            .await
            .unwrap();
    }
    store.revoke_session(&id("s"), until).await.unwrap();
    store.revoke_subject(&id("u"), before, until).await.unwrap();
    store
        .revoke_subject_without_session(&id("u"), before, until)
        .await
        .unwrap();
    store
        .revoke_token(
            &id("soon"),
            now().saturating_add(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut all = Vec::new();
    let mut after: Option<LiveRevocation> = None;
    loop {
        let page = store.live_revocations(after.as_ref(), 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        all.extend(page);
    }
    assert_eq!(all.len(), 28, "{all:?}");
    let subjects = all
        .iter()
        .filter(|r| matches!(r, LiveRevocation::Subject { .. }))
        .count();
    assert_eq!(subjects, 2);
    assert!(
        !all.iter()
            .any(|r| matches!(r, LiveRevocation::Token { id, .. } if id.as_str() == "soon"))
    );
    drop_schema(&backend).await;
}

/// The purge deletes every expired row and nothing live; a subject's cutoff survives it.
#[tokio::test]
async fn the_purge_deletes_expired_rows_only() {
    let backend = backend("purge").await;
    let store = PgRevocationStore::new(backend.clone());
    let soon = now().saturating_add(Duration::from_millis(300));
    let rows: Vec<_> = (0..5000).map(|i| (id(&format!("x{i}")), soon)).collect();
    assert_eq!(store.import_tokens(rows).await.unwrap().imported, 5000);
    let later = now().saturating_add(Duration::from_secs(3600));
    store
        .revoke_subject(&id("alice"), now(), later)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let deleted = backend.purge_expired().await.unwrap();
    assert!(deleted >= 4990, "deleted {deleted}");
    let left: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.revocations",
        backend.schema()
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap();
    assert_eq!(left, 1);
    let token = TokenRef {
        jti: None,
        sid: None,
        sub: Some(id("alice")),
        iat: None,
        exp: later,
    };
    assert!(matches!(
        store.check(&token).await.unwrap(),
        RevocationStatus::Revoked(RevokedBy::Subject { .. })
    ));
    drop_schema(&backend).await;
}
