//! Memory is proportional to live revocations: a burst of short-lived revocations goes away on
//! its own, and a full store refuses instead of forgetting. Time is a manual clock; nothing
//! sleeps.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{Clock, ManualClock, StoreError, StoreErrorKind, StoreId, TokenRef, UnixTime};
use tokenward_revocation::{
    MemoryRevocationConfig, MemoryRevocationStore, RevocationStatus, RevocationStore, RevokedBy,
};

const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

#[expect(clippy::unwrap_used, reason = "a test helper")]
fn store(capacity: usize) -> (MemoryRevocationStore, ManualClock) {
    let clock = ManualClock::new(T0);
    let config = MemoryRevocationConfig::new()
        .capacity(capacity)
        .clock(Arc::new(clock.clone()));
    (MemoryRevocationStore::with_config(config).unwrap(), clock)
}

#[expect(clippy::unwrap_used, reason = "a test helper")]
fn id(id: &str) -> StoreId<'_> {
    StoreId::new(id).unwrap()
}

#[expect(clippy::unwrap_used, reason = "a test helper")]
fn jti(jti: &str) -> TokenRef<'_> {
    TokenRef::from_parts(
        Some(jti),
        None,
        None,
        None,
        T0.saturating_add(Duration::from_secs(3600)),
    )
    .unwrap()
}

#[tokio::test]
async fn a_burst_of_short_lived_revocations_goes_away_on_its_own() {
    const N: usize = 100_000;
    let (store, clock) = store(MemoryRevocationConfig::DEFAULT_CAPACITY);
    // 15-minute tokens, revoked at various points of their life.
    for i in 0..N {
        let secs = 60 + (i as u64 % 840);
        let until = T0.saturating_add(Duration::from_secs(secs));
        store
            .revoke_token(&id(&format!("jti-{i:06}")), until)
            .await
            .unwrap();
    }
    assert_eq!(store.len(), N);
    assert_eq!(store.stored(), N);
    assert_eq!(
        store.check(&jti("jti-000042")).await.unwrap(),
        RevocationStatus::Revoked(RevokedBy::Token)
    );

    // Half-way: some have expired, the others are still in force.
    clock.set(T0.saturating_add(Duration::from_secs(60 + 420)));
    let live = store.len();
    assert!(live > 0 && live < N, "{live} live half-way");
    assert_eq!(store.purge_expired(), N - live);
    assert_eq!(store.stored(), live);

    // Every token has expired by now: nothing matches any more ...
    clock.set(T0.saturating_add(Duration::from_secs(900)));
    assert_eq!(store.len(), 0);
    assert!(store.is_empty());
    assert_eq!(
        store.check(&jti("jti-099999")).await.unwrap(),
        RevocationStatus::Active
    );
    // ... and ordinary writes reclaim the memory, without any cleanup job: each revoke
    // drops the expired entries of its own shard and of one more, in turn.
    for i in 0..MemoryRevocationConfig::DEFAULT_SHARDS {
        let until = clock.now().saturating_add(Duration::from_secs(1));
        store
            .revoke_session(&id(&format!("sid-{i}")), until)
            .await
            .unwrap();
    }
    assert_eq!(
        store.stored(),
        MemoryRevocationConfig::DEFAULT_SHARDS,
        "only the new, live sessions are held"
    );

    // And once those have expired, one purge returns the store to empty.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        store.purge_expired(),
        MemoryRevocationConfig::DEFAULT_SHARDS
    );
    assert_eq!(store.stored(), 0);
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_full_store_refuses_and_never_forgets() {
    const CAPACITY: usize = 100;
    let (store, clock) = store(CAPACITY);
    let soon = T0.saturating_add(Duration::from_secs(60));
    let later = T0.saturating_add(Duration::from_secs(600));
    // Half of the entries expire soon, half later; tokens, sessions and subjects all count.
    for i in 0..CAPACITY / 2 {
        store
            .revoke_token(&id(&format!("soon-{i}")), soon)
            .await
            .unwrap();
    }
    for i in 0..CAPACITY / 4 {
        store
            .revoke_session(&id(&format!("later-{i}")), later)
            .await
            .unwrap();
        store
            .revoke_subject(&id(&format!("later-{i}")), T0, later)
            .await
            .unwrap();
    }
    assert_eq!(store.len(), CAPACITY);

    // Full: new revocations are refused, with the capacity in the error ...
    for call in 0..3 {
        let err = match call {
            0 => store.revoke_token(&id("one-too-many"), later).await,
            1 => store.revoke_session(&id("one-too-many"), later).await,
            _ => store.revoke_subject(&id("one-too-many"), T0, later).await,
        }
        .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::CapacityExceeded);
        assert!(matches!(
            err,
            StoreError::CapacityExceeded { capacity: CAPACITY }
        ));
        assert!(err.is_transient());
    }
    // ... re-revoking (and extending) what is held still works ...
    store.revoke_token(&id("soon-0"), later).await.unwrap();
    // ... and nothing live was dropped to make room.
    assert_eq!(store.len(), CAPACITY);
    for i in 0..CAPACITY / 2 {
        let id = format!("soon-{i}");
        assert!(store.check(&jti(&id)).await.unwrap().is_revoked(), "{id}");
    }

    // After the first half expires (except the extended "soon-0"), there is room again:
    // the revoke purges expired entries before giving up.
    clock.set(soon);
    for i in 0..CAPACITY / 2 - 1 {
        store
            .revoke_token(&id(&format!("new-{i}")), later)
            .await
            .unwrap();
    }
    assert_eq!(store.len(), CAPACITY);
    assert_eq!(store.stored(), CAPACITY);
    let err = store
        .revoke_token(&id("one-too-many"), later)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::CapacityExceeded);
    assert!(store.check(&jti("soon-0")).await.unwrap().is_revoked());
    assert!(!store.check(&jti("soon-1")).await.unwrap().is_revoked());
}
