//! The state stores' contract — bounded sets, counters, fixed windows that expire — on
//! memory (a manual clock) and on Redis (real expiry, short windows).

use std::sync::Arc;
use std::time::Duration;

use tokenward_anomaly::{AnomalyStore, MemoryAnomalyStore, RedisAnomalyStore, SetAnswer};
use tokenward_core::{ManualClock, UnixTime};
use tokenward_redis::{RedisBackend, RedisConfig};
use tokenward_testsupport::{delete_prefix, keys_under, redis_url, shared_redis, unique_prefix};

/// Sets and counters, whatever the backend.
async fn contract(store: &dyn AnomalyStore) {
    let w = Duration::from_secs(60);
    assert_eq!(
        store.add_member("s", "a", w, 3).await.unwrap(),
        SetAnswer::new(true, 1)
    );
    assert_eq!(
        store.add_member("s", "a", w, 3).await.unwrap(),
        SetAnswer::new(false, 1)
    );
    assert_eq!(
        store.add_member("s", "b", w, 3).await.unwrap(),
        SetAnswer::new(true, 2)
    );
    assert_eq!(
        store.add_member("s", "c", w, 3).await.unwrap(),
        SetAnswer::new(true, 3)
    );
    // Full: a new member is not added.
    assert_eq!(
        store.add_member("s", "d", w, 3).await.unwrap(),
        SetAnswer::new(false, 3)
    );
    let mut members = store.members("s").await.unwrap();
    members.sort();
    assert_eq!(members, ["a", "b", "c"]);
    assert!(store.members("nothing").await.unwrap().is_empty());
    assert_eq!(store.count("c", w).await.unwrap(), 1);
    assert_eq!(store.count("c", w).await.unwrap(), 2);
    assert_eq!(store.count("other", w).await.unwrap(), 1);
    // Keys are opaque: the characters of scoped ids are fine.
    let odd = "ts:{AbC}:a{b}c:é";
    assert_eq!(
        store.add_member(odd, "x", w, 3).await.unwrap(),
        SetAnswer::new(true, 1)
    );
}

#[tokio::test]
async fn memory_contract_and_expiry() {
    let clock = ManualClock::new(UnixTime::from_secs(1_000_000));
    let store = MemoryAnomalyStore::with_clock(1000, Arc::new(clock.clone()));
    contract(&store).await;
    let w = Duration::from_secs(10);
    store.add_member("e", "a", w, 5).await.unwrap();
    store.count("n", w).await.unwrap();
    clock.advance(Duration::from_secs(9));
    // Adding does not extend the window.
    assert_eq!(
        store.add_member("e", "b", w, 5).await.unwrap(),
        SetAnswer::new(true, 2)
    );
    clock.advance(Duration::from_secs(1));
    assert!(store.members("e").await.unwrap().is_empty());
    assert_eq!(
        store.add_member("e", "b", w, 5).await.unwrap(),
        SetAnswer::new(true, 1)
    );
    assert_eq!(store.count("n", w).await.unwrap(), 1);
    clock.advance(Duration::from_secs(3600));
    assert!(store.purge_expired() >= 4);
    assert_eq!(store.stored(), 0);
}

#[tokio::test]
async fn memory_is_bounded() {
    let store =
        MemoryAnomalyStore::with_clock(64, Arc::new(ManualClock::new(UnixTime::from_secs(1))));
    let mut refused = 0;
    for n in 0..1000 {
        if store
            .count(&format!("k{n}"), Duration::from_secs(60))
            .await
            .is_err()
        {
            refused += 1;
        }
    }
    assert!(store.stored() <= 64 + 16, "{}", store.stored());
    assert!(refused > 0);
}

#[tokio::test]
async fn redis_contract_and_expiry() {
    let prefix = unique_prefix("anomaly-state");
    let backend = RedisBackend::new(&RedisConfig::new(redis_url()).key_prefix(&prefix)).unwrap();
    let store = RedisAnomalyStore::new(backend);
    contract(&store).await;
    let mut conn = shared_redis().await;
    // Every key expires, within its window.
    let keys = keys_under(&mut conn, &prefix).await.unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((1..=60_000).contains(&ttl), "{key}: {ttl}");
    }
    let w = Duration::from_millis(400);
    store.add_member("e", "a", w, 5).await.unwrap();
    store.count("n", w).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.add_member("e", "b", w, 5).await.unwrap(),
        SetAnswer::new(true, 2)
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(store.members("e").await.unwrap().is_empty());
    assert_eq!(
        store.add_member("e", "b", w, 5).await.unwrap(),
        SetAnswer::new(true, 1)
    );
    assert_eq!(store.count("n", w).await.unwrap(), 1);
    delete_prefix(&mut conn, &prefix).await.unwrap();
}
