//! Refresh-store outages: a Redis that is killed, one that freezes (SIGSTOP) and thaws, one
//! that never answers (black hole), one that is not there. Every call must come back within
//! the operation timeout with `Unavailable` or `Timeout` — a refresh then fails with "try
//! again", never with reuse detection and never by revoking anything — and the store must
//! recover by itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use tokenward_core::{IssuerScope, StoreErrorKind, StoreId, UnixTime};
use tokenward_redis::RedisRefreshStore;
use tokenward_refresh::{
    FamilyId, MintRequest, MintedToken, RefreshEngine, RefreshError, RefreshStore, RotationKind,
};
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

use tokenward_testsupport::{BlackHole, ThrowawayRedis, free_port};

use crate::common::{
    Call, EveryMethod, MARGIN, OUTAGE, TIMEOUT, all_calls_fail, black_hole_times_out,
    outage_config, shows_the_address_not_the_password,
};

fn store_at(url: &str) -> RedisRefreshStore {
    RedisRefreshStore::connect(&outage_config("rf-outage", url))
        .expect("connect never needs Redis to be up")
}

fn mint(req: MintRequest<'_>) -> Result<MintedToken, Infallible> {
    let token = format!("access.{}.{}", req.sub.as_str(), req.family_id);
    Ok(MintedToken::new(token, req.covered_until))
}

fn alice() -> StoreId<'static> {
    StoreId::new("alice").unwrap()
}

struct App {
    store: RedisRefreshStore,
    engine: RefreshEngine,
    revocation: Arc<MemoryRevocationStore>,
}

fn app(url: &str) -> App {
    let store = store_at(url);
    let revocation = Arc::new(MemoryRevocationStore::new());
    let engine = RefreshEngine::new(Arc::new(store.clone()), revocation.clone(), issuer());
    App {
        store,
        engine,
        revocation,
    }
}

fn issuer() -> IssuerScope {
    IssuerScope::new("https://auth.example.com")
}

async fn sid_revoked(app: &App, id: &FamilyId) -> bool {
    let token = issuer()
        .token_ref(
            None,
            Some(id.as_str()),
            None,
            None,
            UnixTime::from_secs(4_000_000_000),
        )
        .unwrap();
    app.revocation.check(&token).await.unwrap().is_revoked()
}

/// A refresh during the outage: a transient store error within the timeout (one store call:
/// the atomic `rotate`), never `Reused`, nothing revoked.
async fn refresh_fails_transiently(app: &App, token: &str, id: &FamilyId) {
    let start = Instant::now();
    let r = app.engine.rotate(token, None, mint).await;
    let took = start.elapsed();
    assert!(
        matches!(&r, Err(e @ RefreshError::Store(_)) if e.is_transient()),
        "an outage is a transient store error: {r:?}"
    );
    assert!(took < TIMEOUT + MARGIN, "refresh took {took:?}");
    assert!(!sid_revoked(app, id).await, "nothing revoked");
}

/// A family no test logs in. A write that times out may still be applied once Redis thaws
/// (its bytes were sent), so the outage calls go to this family, never to one a test checks.
fn other_family() -> FamilyId {
    FamilyId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap()
}

impl EveryMethod for RedisRefreshStore {
    fn every_method(&self) -> Vec<Call<'_>> {
        let id = other_family();
        let later = UnixTime::from_secs(4_000_000_000);
        vec![
            ("get", {
                let id = id.clone();
                Box::pin(async move { self.get(&id).await.map(drop) })
            }),
            ("revoke", {
                let id = id.clone();
                Box::pin(async move { self.revoke(&id).await.map(drop) })
            }),
            ("record_access_exp", {
                let id = id.clone();
                Box::pin(async move { self.record_access_exp(&id, later).await.map(drop) })
            }),
            (
                "families_of",
                Box::pin(async move { self.families_of(&alice()).await.map(drop) }),
            ),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_then_the_family_rotates_unharmed() {
    let server = ThrowawayRedis::start();
    let app = app(&server.url());
    let login = app.engine.issue(&alice(), mint).await.unwrap();
    let id = login.family_id.clone();
    let a = login.refresh_token.expose().to_owned();
    let b = app.engine.rotate(&a, None, mint).await.unwrap();

    server.freeze();
    for token in [a.as_str(), b.refresh_token.expose()] {
        refresh_fails_transiently(&app, token, &id).await;
    }
    all_calls_fail(&app.store, &[StoreErrorKind::Timeout], 1).await;
    let r = app.engine.revoke_family(&other_family()).await;
    assert!(matches!(&r, Err(e) if e.is_transient()), "{r:?}");
    server.thaw();

    // Back: the family is intact and not revoked; its current token rotates.
    let info = app.store.get(&id).await.unwrap().unwrap();
    assert!(!info.revoked);
    let c = app
        .engine
        .rotate(b.refresh_token.expose(), None, mint)
        .await
        .unwrap();
    assert_eq!(c.kind, RotationKind::Rotated);
    assert!(!sid_revoked(&app, &id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_without_rebuilding_the_store() {
    let mut server = ThrowawayRedis::start();
    let app = app(&server.url());
    let login = app.engine.issue(&alice(), mint).await.unwrap();
    let id = login.family_id.clone();
    let a = login.refresh_token.expose().to_owned();
    let b = app.engine.rotate(&a, None, mint).await.unwrap();

    server.kill();
    for token in [a.as_str(), b.refresh_token.expose()] {
        refresh_fails_transiently(&app, token, &id).await;
    }
    all_calls_fail(&app.store, OUTAGE, 1).await;

    // Back on the same port without persistence: the family is gone (Invalid, not Reused);
    // the same store serves new logins.
    server.restart();
    let r = app
        .engine
        .rotate(b.refresh_token.expose(), None, mint)
        .await;
    assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    let login = app.engine.issue(&alice(), mint).await.unwrap();
    let r = app
        .engine
        .rotate(login.refresh_token.expose(), None, mint)
        .await
        .unwrap();
    assert_eq!(r.kind, RotationKind::Rotated);
    assert!(!sid_revoked(&app, &id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_times_out_within_the_deadline() {
    let hole = BlackHole::start();
    let app = Arc::new(app(&hole.redis_url()));
    let r = app.engine.issue(&alice(), mint).await;
    assert!(matches!(&r, Err(e) if e.is_transient()), "{r:?}");

    // Many refreshes at once too: each gets its answer within the deadlines.
    black_hole_times_out(&app.store, 2 * TIMEOUT + MARGIN, |_| {
        let app = Arc::clone(&app);
        async move {
            let token = format!("twr_{}", "A".repeat(64));
            match app.engine.rotate(&token, None, mint).await {
                Err(RefreshError::Store(e)) => Err(e),
                other => panic!("a refresh against a black hole: {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable() {
    let port = free_port();
    let app = app(&format!("redis://:hunter2@127.0.0.1:{port}"));
    all_calls_fail(&app.store, &[StoreErrorKind::Unavailable], 1).await;
    let err = app.store.families_of(&alice()).await.unwrap_err();
    shows_the_address_not_the_password(&err, port);
}
