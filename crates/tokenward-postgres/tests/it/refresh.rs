//! `PgRefreshStore` against a real PostgreSQL: the conformance suite (a fresh schema per
//! case, dropped after it), 100 concurrent rotations of one token over two pools, the
//! history cap, one statement per rotation, and corrupt rows.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokenward_core::conformance::BoxError;
use tokenward_core::{IssuerScope, StoreErrorKind, StoreId};
use tokenward_postgres::{PgBackend, PgRefreshStore};
use tokenward_refresh::conformance::{Fixture, RealClock, RefreshEnv};
use tokenward_refresh::{
    MintRequest, MintedToken, RefreshEngine, RefreshError, RefreshStore, RotationKind,
};
use tokenward_revocation::MemoryRevocationStore;

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
impl Fixture<RefreshEnv> for PgFixture {
    async fn env(&self, case: &'static str) -> Result<RefreshEnv, BoxError> {
        let backend = backend(&format!("rf_{case}")).await;
        self.backends.lock().unwrap().insert(case, backend.clone());
        Ok(RefreshEnv::new(
            Arc::new(PgRefreshStore::new(backend.clone())),
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
    tokenward_refresh::refresh_conformance_tests!(
        fixture = super::PgFixture,
        setup = super::PgFixture::setup
    );
}

fn sub(s: &str) -> StoreId<'_> {
    StoreId::new(s).unwrap()
}

fn mint(req: MintRequest<'_>) -> Result<MintedToken, Infallible> {
    let token = format!("access.{}.{}", req.sub.as_str(), req.family_id);
    Ok(MintedToken::new(token, req.covered_until))
}

fn engine(store: PgRefreshStore) -> RefreshEngine {
    RefreshEngine::new(
        Arc::new(store),
        Arc::new(MemoryRevocationStore::new()),
        IssuerScope::new("https://auth.example.com"),
    )
}

/// Two application instances (two pools, so many connections) rotate one refresh token 100
/// times in parallel: exactly one rotation, one identical successor, which the other
/// instance rotates next. The family's row lock orders them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_across_pools_share_one_successor() {
    let first = backend("rf_concurrent").await;
    let config = crate::common::config("unused").schema(first.schema());
    let second = PgBackend::connect(&config).await.unwrap();
    let engines = [
        Arc::new(engine(PgRefreshStore::new(first.clone()))),
        Arc::new(engine(PgRefreshStore::new(second))),
    ];
    let login = engines[0].issue(&sub("alice"), mint).await.unwrap();
    let token = login.refresh_token.expose().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let engine = Arc::clone(&engines[i % 2]);
        let token = token.clone();
        tasks.spawn(async move { engine.rotate(&token, None, mint).await });
    }
    let mut successors = Vec::new();
    let mut rotated = 0;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap().unwrap();
        if r.kind == RotationKind::Rotated {
            rotated += 1;
        }
        successors.push(r.refresh_token.expose().to_owned());
    }
    assert_eq!(rotated, 1);
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), 1, "one identical successor");
    let next = engines[1].rotate(&successors[0], None, mint).await.unwrap();
    assert_eq!(next.kind, RotationKind::Rotated);
    drop_schema(&first).await;
}

/// The history keeps the newest `MIN_REUSE_HISTORY` hashes: older ones are `Invalid`, the
/// oldest kept is reuse.
#[tokio::test]
async fn history_is_capped_and_dropped_hashes_are_invalid_not_reused() {
    let backend = backend("rf_history").await;
    let engine = engine(PgRefreshStore::new(backend.clone()));
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let cap = tokenward_refresh::MIN_REUSE_HISTORY;
    let mut tokens = vec![login.refresh_token.expose().to_owned()];
    for _ in 0..cap + 6 {
        let last = tokens.last().unwrap().clone();
        let r = engine.rotate(&last, None, mint).await.unwrap();
        assert_eq!(r.kind, RotationKind::Rotated);
        tokens.push(r.refresh_token.expose().to_owned());
    }
    let held: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.refresh_history",
        backend.schema()
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap();
    assert_eq!(held, cap as i64);
    for dropped in &tokens[..5] {
        let r = engine.rotate(dropped, None, mint).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    }
    let r = engine.rotate(&tokens[5], None, mint).await;
    assert!(matches!(r, Err(RefreshError::Reused(_))), "{r:?}");
    // Reuse revoked the family: its history is gone with it.
    let held: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.refresh_history",
        backend.schema()
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap();
    assert_eq!(held, 0);
    drop_schema(&backend).await;
}

/// A row that does not make sense (written by hand, or by a broken migration) is `Corrupt`,
/// never a rotation and never reuse.
#[tokio::test]
async fn corrupt_rows_are_corrupt() {
    let backend = backend("rf_corrupt").await;
    let store = PgRefreshStore::new(backend.clone());
    let engine = engine(store.clone());
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    sqlx::query(&format!(
        "UPDATE {}.refresh_families SET sub = '' WHERE id = $1",
        backend.schema()
    ))
    .bind(login.family_id.as_str())
    .execute(backend.pool())
    .await
    .unwrap();
    let err = store.get(&login.family_id).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    let r = engine
        .rotate(login.refresh_token.expose(), None, mint)
        .await;
    assert!(matches!(r, Err(RefreshError::Store(_))), "{r:?}");
    drop_schema(&backend).await;
}
