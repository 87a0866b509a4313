//! Refresh-store outages: a Redis that is killed, one that freezes (SIGSTOP) and thaws, one
//! that never answers (black hole), one that is not there. Every call must come back within
//! the operation timeout with `Unavailable` or `Timeout` — a refresh then fails with "try
//! again", never with reuse detection and never by revoking anything — and the store must
//! recover by itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::convert::Infallible;
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use tokenward_core::{StoreErrorKind, TokenRef, UnixTime};
use tokenward_redis::{RedisConfig, RedisRefreshStore};
use tokenward_refresh::{
    FamilyId, MintRequest, RefreshConfig, RefreshEngine, RefreshError, RefreshStore, RotationKind,
};
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

use common::{MARGIN, TIMEOUT, ThrowawayRedis, bounded_failure, free_port, unique_prefix};

const OUTAGE: &[StoreErrorKind] = &[StoreErrorKind::Unavailable, StoreErrorKind::Timeout];

fn store_at(url: &str) -> RedisRefreshStore {
    let config = RedisConfig::new(url)
        .key_prefix(unique_prefix("rf-outage"))
        .operation_timeout(TIMEOUT);
    RedisRefreshStore::connect(&config).expect("connect never needs Redis to be up")
}

fn mint(req: MintRequest<'_>) -> Result<String, Infallible> {
    Ok(format!("access.{}.{}", req.sub, req.family_id))
}

struct App {
    store: RedisRefreshStore,
    engine: RefreshEngine,
    revocation: Arc<MemoryRevocationStore>,
}

fn app(url: &str) -> App {
    let store = store_at(url);
    let revocation = Arc::new(MemoryRevocationStore::new());
    let engine = RefreshEngine::new(
        Arc::new(store.clone()),
        revocation.clone(),
        RefreshConfig::new(),
    );
    App {
        store,
        engine,
        revocation,
    }
}

async fn sid_revoked(app: &App, id: &FamilyId) -> bool {
    let token = TokenRef::from_parts(
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

/// Every store method fails within the timeout.
async fn all_calls_fail(store: &RedisRefreshStore, id: &FamilyId, kinds: &[StoreErrorKind]) {
    let now = UnixTime::EPOCH;
    bounded_failure("get", kinds, store.get(id, now)).await;
    bounded_failure("revoke", kinds, store.revoke(id, now)).await;
    bounded_failure("families_of", kinds, store.families_of("alice", now)).await;
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_then_the_family_rotates_unharmed() {
    let server = ThrowawayRedis::start(free_port());
    let app = app(&server.url());
    let login = app.engine.issue("alice").await.unwrap();
    let id = login.family_id.clone();
    let a = login.refresh_token.expose().to_owned();
    let b = app.engine.rotate(&a, None, mint).await.unwrap();

    signal(server.pid(), "-STOP");
    for token in [a.as_str(), b.refresh_token.expose()] {
        refresh_fails_transiently(&app, token, &id).await;
    }
    // A write that times out may still be applied once Redis thaws (its bytes were sent), so
    // the revocations go to another family.
    let other = FamilyId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    all_calls_fail(&app.store, &other, &[StoreErrorKind::Timeout]).await;
    let r = app.engine.revoke_family(&other).await;
    assert!(matches!(&r, Err(e) if e.is_transient()), "{r:?}");
    signal(server.pid(), "-CONT");

    // Back: the family is intact and not revoked; its current token rotates.
    let info = app.store.get(&id, UnixTime::EPOCH).await.unwrap().unwrap();
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
    let port = free_port();
    let server = ThrowawayRedis::start(port);
    let app = app(&server.url());
    let login = app.engine.issue("alice").await.unwrap();
    let id = login.family_id.clone();
    let a = login.refresh_token.expose().to_owned();
    let b = app.engine.rotate(&a, None, mint).await.unwrap();

    server.kill();
    for token in [a.as_str(), b.refresh_token.expose()] {
        refresh_fails_transiently(&app, token, &id).await;
    }
    all_calls_fail(&app.store, &id, OUTAGE).await;

    // Back on the same port without persistence: the family is gone (Invalid, not Reused);
    // the same store serves new logins.
    let _server = ThrowawayRedis::start(port);
    let r = app
        .engine
        .rotate(b.refresh_token.expose(), None, mint)
        .await;
    assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    let login = app.engine.issue("alice").await.unwrap();
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let app = app(&format!("redis://127.0.0.1:{port}"));
    let id = FamilyId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    all_calls_fail(&app.store, &id, &[StoreErrorKind::Timeout]).await;
    let r = app.engine.issue("alice").await;
    assert!(matches!(&r, Err(e) if e.is_transient()), "{r:?}");

    // Many refreshes at once: each gets its answer within the deadlines.
    let app = Arc::new(app);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let app = Arc::clone(&app);
        tasks.spawn(async move {
            let token = format!("twr_{}", "A".repeat(64));
            app.engine.rotate(&token, None, mint).await.map(|_| ())
        });
    }
    while let Some(result) = tasks.join_next().await {
        let r = result.unwrap();
        assert!(
            matches!(&r, Err(RefreshError::Store(e)) if e.kind() == StoreErrorKind::Timeout),
            "{r:?}"
        );
    }
    let took = start.elapsed();
    assert!(took < 2 * TIMEOUT + MARGIN, "32 refreshes took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable() {
    let port = free_port();
    let app = app(&format!("redis://:hunter2@127.0.0.1:{port}"));
    let id = FamilyId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    all_calls_fail(&app.store, &id, &[StoreErrorKind::Unavailable]).await;
    let err = app
        .store
        .families_of("alice", UnixTime::EPOCH)
        .await
        .unwrap_err();
    let shown = format!("{err} / {err:?}");
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
