//! The in-memory store is bounded and self-expiring: families vanish at their expiry, a
//! full store refuses instead of evicting, and the reuse history is capped.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{IssuerScope, ManualClock, StoreErrorKind};
use tokenward_refresh::conformance::StoreProbe;
use tokenward_refresh::{
    MIN_REUSE_HISTORY, MemoryRefreshConfig, MemoryRefreshStore, RefreshConfig, RefreshEngine,
    RefreshError, RefreshStore,
};
use tokenward_revocation::MemoryRevocationStore;

use super::{T0, mint, sub};

fn engine(capacity: usize) -> (RefreshEngine, Arc<MemoryRefreshStore>, ManualClock) {
    let clock = ManualClock::new(T0);
    let config = MemoryRefreshConfig::new()
        .capacity(capacity)
        .clock(Arc::new(clock.clone()));
    let store = Arc::new(MemoryRefreshStore::with_config(config).unwrap());
    let engine = RefreshEngine::with_config(
        store.clone(),
        Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone()))),
        IssuerScope::new("https://auth.example.com"),
        RefreshConfig::new()
            .idle_timeout(Duration::from_secs(60))
            .grace_window(Duration::ZERO)
            .max_families_per_subject(100)
            .clock(Arc::new(clock.clone())),
    )
    .unwrap();
    (engine, store, clock)
}

#[tokio::test]
async fn a_full_store_refuses_and_expired_families_make_room() {
    let (engine, store, clock) = engine(10);
    let mut families = Vec::new();
    for _ in 0..10 {
        families.push(engine.issue(&sub("alice"), mint).await.unwrap());
    }
    let err = engine.issue(&sub("alice"), mint).await.unwrap_err();
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
    // Idle for a minute: all expire, and logins find room (a login sweeps its own shard and
    // one more, and purges every shard before giving up).
    clock.advance(Duration::from_secs(60));
    assert!(engine.families(&sub("alice")).await.unwrap().is_empty());
    for _ in 0..10 {
        engine.issue(&sub("bob"), mint).await.unwrap();
    }
    assert_eq!(store.stored(), 10, "only bob's live families are held");
    assert_eq!(engine.families(&sub("bob")).await.unwrap().len(), 10);
}

#[tokio::test]
async fn expired_families_vanish_without_a_cleanup_job() {
    let (engine, store, clock) = engine(1000);
    for _ in 0..100 {
        engine.issue(&sub("alice"), mint).await.unwrap();
    }
    assert_eq!(engine.families(&sub("alice")).await.unwrap().len(), 100);
    clock.advance(Duration::from_secs(59));
    assert_eq!(engine.families(&sub("alice")).await.unwrap().len(), 100);
    clock.advance(Duration::from_secs(1));
    assert!(engine.families(&sub("alice")).await.unwrap().is_empty());
    assert_eq!(store.purge_expired(), 100);
    assert_eq!(store.stored(), 0);
    assert!(
        store.stored_bytes().await.unwrap().is_empty(),
        "the subject index is emptied too"
    );
}

#[tokio::test]
async fn the_reuse_history_is_capped() {
    let (engine, store, _clock) = engine(10);
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
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
    let info = store.get(&login.family_id).await.unwrap().unwrap();
    assert!(!info.revoked);
    // One still remembered is.
    let err = engine.rotate(&tokens[2], None, mint).await.unwrap_err();
    assert!(matches!(err, RefreshError::Reused(_)), "{err:?}");
}

#[test]
fn out_of_range_settings_are_refused_at_build() {
    let err = MemoryRefreshStore::with_config(MemoryRefreshConfig::new().capacity(0)).unwrap_err();
    assert_eq!(err.setting(), "capacity");
    let engine = |config| {
        RefreshEngine::with_config(
            Arc::new(MemoryRefreshStore::new()),
            Arc::new(MemoryRevocationStore::new()),
            IssuerScope::new("https://auth.example.com"),
            config,
        )
    };
    for (config, setting) in [
        (
            RefreshConfig::new().grace_window(Duration::from_secs(121)),
            "grace_window",
        ),
        (
            RefreshConfig::new().idle_timeout(Duration::ZERO),
            "idle_timeout",
        ),
        (
            RefreshConfig::new().max_access_token_lifetime(Duration::from_secs(2 * 86_400)),
            "max_access_token_lifetime",
        ),
    ] {
        assert_eq!(engine(config).unwrap_err().setting(), setting);
    }
}

#[test]
fn debug_shows_no_state() {
    let store = MemoryRefreshStore::with_config(MemoryRefreshConfig::new().capacity(5)).unwrap();
    assert_eq!(
        format!("{store:?}"),
        "MemoryRefreshStore { stored: 0, capacity: 5 }"
    );
}

/// An engine with the default settings (a 7-day idle timeout, a 30 s grace window) over a
/// store of `capacity` families.
fn default_engine(capacity: usize) -> (RefreshEngine, Arc<MemoryRefreshStore>, ManualClock) {
    let clock = ManualClock::new(T0);
    let config = MemoryRefreshConfig::new()
        .capacity(capacity)
        .clock(Arc::new(clock.clone()));
    let store = Arc::new(MemoryRefreshStore::with_config(config).unwrap());
    let engine = RefreshEngine::with_config(
        store.clone(),
        Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone()))),
        IssuerScope::new("https://auth.example.com"),
        RefreshConfig::new().clock(Arc::new(clock.clone())),
    )
    .unwrap();
    (engine, store, clock)
}

/// The most families [`default_engine`]'s store holds at once under one login a second,
/// beyond the live ones: the tombstones of the last 90 s (the default grace window plus the
/// retention margin), plus expired ones no write has swept yet (each write sweeps its own
/// shard and one more in turn: all 32 within 16 login/logout rounds).
const TOMBSTONES: usize = 91 + 16;

/// Issue 17, item 2: one account looping login/logout used to fill the store (a revoked
/// family kept its slot until its 7-day idle timeout), after which every login got
/// `CapacityExceeded` (at login 1 000 here; 10 000 families held in a store big enough). A
/// revoked family now leaves its subject's index at once and the store after the grace
/// window plus the margin: at one logout a second, at most [`TOMBSTONES`] are held, and
/// other users keep logging in.
#[tokio::test]
async fn a_login_logout_loop_of_one_account_stays_bounded() {
    assert_eq!(
        RefreshConfig::new().revoked_retention(),
        Duration::from_secs(90)
    );
    let (engine, store, clock) = default_engine(1_000);
    let mut most = 0;
    for i in 0..10_000 {
        let login = engine
            .issue(&sub("mallory"), mint)
            .await
            .unwrap_or_else(|e| panic!("login {i}: {e:?} ({} held)", store.stored()));
        assert!(engine.revoke_family(&login.family_id).await.unwrap());
        clock.advance(Duration::from_secs(1));
        most = most.max(store.stored());
    }
    assert!(most <= 1 + TOMBSTONES, "{most} families held at once");
    assert!(engine.families(&sub("mallory")).await.unwrap().is_empty());
    engine.issue(&sub("alice"), mint).await.unwrap();
    clock.advance(Duration::from_secs(91));
    store.purge_expired();
    assert_eq!(store.stored(), 1, "only alice's family is left");
    assert_eq!(
        store.stored_entries().await.unwrap(),
        2,
        "and its index entry"
    );
}

/// Issue 17, item 2: logins without logout are capped per subject (50 live families by
/// default; the oldest is revoked), so one account can no longer fill the store either
/// (before: `CapacityExceeded` at login 1 000).
#[tokio::test]
async fn logins_without_logout_are_capped_per_subject() {
    let (engine, store, clock) = default_engine(1_000);
    let mut logins = Vec::new();
    for i in 0..10_000 {
        let login = engine
            .issue(&sub("mallory"), mint)
            .await
            .unwrap_or_else(|e| panic!("login {i}: {e:?} ({} held)", store.stored()));
        logins.push(login);
        clock.advance(Duration::from_secs(1));
        assert!(store.stored() <= 50 + TOMBSTONES, "{} held", store.stored());
    }
    let live = engine.families(&sub("mallory")).await.unwrap();
    let newest: Vec<_> = logins[logins.len() - 50..]
        .iter()
        .map(|l| l.family_id.clone())
        .collect();
    assert_eq!(
        live.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        newest,
        "the 50 newest families live, oldest first"
    );
    let err = engine
        .rotate(logins[9_949].refresh_token.expose(), None, mint)
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Revoked { .. }), "{err:?}");
    engine
        .rotate(logins[9_950].refresh_token.expose(), None, mint)
        .await
        .unwrap();
    engine.issue(&sub("alice"), mint).await.unwrap();
    assert_eq!(
        RefreshConfig::new().families_per_subject(),
        RefreshConfig::DEFAULT_MAX_FAMILIES_PER_SUBJECT
    );
}
