//! The in-memory store is bounded and self-expiring: families vanish at their expiry, a
//! full store refuses instead of evicting, and the reuse history is capped.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{ManualClock, StoreErrorKind, UnixTime};
use tokenward_refresh::{
    MIN_REUSE_HISTORY, MemoryRefreshStore, MintRequest, RefreshConfig, RefreshEngine, RefreshError,
    RefreshStore,
};
use tokenward_revocation::MemoryRevocationStore;

const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

fn engine(capacity: usize) -> (RefreshEngine, Arc<MemoryRefreshStore>, ManualClock) {
    let clock = ManualClock::new(T0);
    let store = Arc::new(MemoryRefreshStore::with_capacity(capacity));
    let engine = RefreshEngine::new(
        store.clone(),
        Arc::new(MemoryRevocationStore::new()),
        RefreshConfig::new()
            .idle_timeout(Duration::from_secs(60))
            .grace_window(Duration::ZERO)
            .clock(Arc::new(clock.clone())),
    );
    (engine, store, clock)
}

fn mint(_: MintRequest<'_>) -> Result<String, std::convert::Infallible> {
    Ok("access".into())
}

#[tokio::test]
async fn a_full_store_refuses_and_expired_families_make_room() {
    let (engine, store, clock) = engine(10);
    let mut families = Vec::new();
    for _ in 0..10 {
        families.push(engine.issue("alice").await.unwrap());
    }
    let err = engine.issue("alice").await.unwrap_err();
    assert!(
        matches!(&err, RefreshError::Store(e) if e.kind() == StoreErrorKind::CapacityExceeded),
        "{err:?}"
    );
    assert!(err.is_transient());
    // Every live family still works.
    for f in &families {
        engine
            .rotate(f.refresh_token.expose(), None, mint)
            .await
            .unwrap();
    }
    assert_eq!(store.stored(), 10);
    // Idle for a minute: all expire, and logins find room (a login sweeps its own shard,
    // and purges every shard before giving up).
    clock.advance(Duration::from_secs(60));
    assert!(engine.families("alice").await.unwrap().is_empty());
    for _ in 0..10 {
        engine.issue("bob").await.unwrap();
    }
    assert_eq!(store.stored(), 10, "only bob's live families are held");
    assert_eq!(engine.families("bob").await.unwrap().len(), 10);
}

#[tokio::test]
async fn expired_families_vanish_without_a_cleanup_job() {
    let (engine, store, clock) = engine(1000);
    for _ in 0..100 {
        engine.issue("alice").await.unwrap();
    }
    assert_eq!(engine.families("alice").await.unwrap().len(), 100);
    clock.advance(Duration::from_secs(59));
    assert_eq!(engine.families("alice").await.unwrap().len(), 100);
    clock.advance(Duration::from_secs(1));
    assert!(engine.families("alice").await.unwrap().is_empty());
    assert_eq!(store.purge_expired(clock_now(&clock)), 100);
    assert_eq!(store.stored(), 0);
    assert!(
        store.stored_bytes().is_empty(),
        "the subject index is emptied too"
    );
}

fn clock_now(clock: &ManualClock) -> UnixTime {
    tokenward_core::Clock::now(clock)
}

#[tokio::test]
async fn the_reuse_history_is_capped() {
    let (engine, store, _clock) = engine(10);
    let login = engine.issue("alice").await.unwrap();
    let first = login.refresh_token.expose().to_owned();
    let mut tokens = vec![first];
    for _ in 0..MIN_REUSE_HISTORY + 2 {
        let last = tokens.last().unwrap().clone();
        let r = engine.rotate(&last, None, mint).await.unwrap();
        tokens.push(r.refresh_token.expose().to_owned());
    }
    // The oldest token fell out of the history: still rejected, but no longer a theft signal.
    let err = engine.rotate(&tokens[0], None, mint).await.unwrap_err();
    assert!(matches!(err, RefreshError::Invalid), "{err:?}");
    let info = store
        .get(&login.family_id, clock_now(&_clock))
        .await
        .unwrap()
        .unwrap();
    assert!(!info.revoked);
    // One still remembered is.
    let err = engine.rotate(&tokens[2], None, mint).await.unwrap_err();
    assert!(matches!(err, RefreshError::Reused(_)), "{err:?}");
}

#[test]
fn debug_shows_no_state() {
    let store = MemoryRefreshStore::with_capacity(5);
    assert_eq!(
        format!("{store:?}"),
        "MemoryRefreshStore { stored: 0, capacity: 5 }"
    );
}
