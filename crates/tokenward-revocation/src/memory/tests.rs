//! Unit tests of the in-memory store's internals: the shard index, extension, capacity and
//! sweeping.

use std::time::Duration;

use tokenward_core::{ManualClock, StoreErrorKind};

use super::*;

const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn store(capacity: usize, shards: usize) -> (MemoryRevocationStore, ManualClock) {
    let clock = ManualClock::new(T0);
    let store = MemoryRevocationStore::with_config(
        MemoryRevocationConfig::new()
            .capacity(capacity)
            .shards(shards)
            .clock(Arc::new(clock.clone())),
    )
    .expect("a valid config");
    (store, clock)
}

/// Checks the shard invariant: one expiry element per map entry, with its `until`, and
/// the global count equal to the sum of the shards.
fn assert_consistent(store: &MemoryRevocationStore) {
    let mut total = 0;
    for shard in store.shards.iter() {
        let shard = read(shard);
        assert_eq!(
            shard.expiry.len(),
            shard.stored(),
            "one index element per entry"
        );
        for (until, kind, id) in &shard.expiry {
            let hash = store.key_hash(*kind, id);
            let entry = shard
                .find(hash, *kind, id)
                .expect("indexed entry exists, filed under its key's hash");
            assert_eq!(entry.until, *until, "index carries the entry's until");
        }
        total += shard.stored();
    }
    assert_eq!(store.stored(), total, "global count matches the shards");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn id(id: &str) -> StoreId<'_> {
    StoreId::new(id).expect("a valid id")
}

fn jti(jti: &str) -> TokenRef<'_> {
    TokenRef::from_parts(Some(jti), None, None, None, T0.saturating_add(secs(3600)))
        .expect("valid ids")
}

#[test]
fn extension_moves_the_index_element() {
    block_on(async {
        let (store, clock) = store(100, 4);
        let short = T0.saturating_add(secs(10));
        let long = T0.saturating_add(secs(100));
        store.revoke_token(&id("a"), short).await.unwrap();
        store.revoke_token(&id("a"), long).await.unwrap();
        store.revoke_token(&id("a"), short).await.unwrap(); // does not shorten
        store.revoke_session(&id("a"), short).await.unwrap(); // another namespace
        assert_consistent(&store);
        assert_eq!(store.stored(), 2);
        let held = |kind| {
            let hash = store.key_hash(kind, "a");
            let shard = read(store.shards.of_hash(hash).1);
            shard.find(hash, kind, "a").map(|e| e.until)
        };
        assert_eq!(held(Kind::Token), Some(long));
        assert_eq!(held(Kind::Session), Some(short));

        clock.set(short);
        assert_eq!(store.purge_expired(), 1, "only the session expired");
        assert_eq!(
            store.check(&jti("a")).await.unwrap(),
            RevocationStatus::Revoked(RevokedBy::Token)
        );
        clock.set(long);
        assert_eq!(store.purge_expired(), 1);
        assert_consistent(&store);
        assert_eq!(store.stored(), 0);
    });
}

#[test]
fn subject_extension_keeps_the_later_cutoff_and_until() {
    block_on(async {
        let (store, _clock) = store(100, 1);
        let early = T0.saturating_add(secs(10));
        let late = T0.saturating_add(secs(20));
        store.revoke_subject(&id("u"), late, early).await.unwrap();
        store.revoke_subject(&id("u"), early, late).await.unwrap();
        assert_consistent(&store);
        let shard = read(store.shards.at(0));
        let hash = store.key_hash(Kind::Subject, "u");
        assert_eq!(
            shard.find(hash, Kind::Subject, "u"),
            Some(Entry {
                until: late,
                before: late
            })
        );
    });
}

#[test]
fn an_expired_entry_is_replaced_not_extended() {
    block_on(async {
        let (store, clock) = store(100, 1);
        let late_cutoff = T0.saturating_add(secs(50));
        store
            .revoke_subject(&id("u"), late_cutoff, T0.saturating_add(secs(10)))
            .await
            .unwrap();
        clock.advance(secs(10));
        store
            .revoke_subject(&id("u"), T0, T0.saturating_add(secs(100)))
            .await
            .unwrap();
        let hash = store.key_hash(Kind::Subject, "u");
        let before = read(store.shards.at(0))
            .find(hash, Kind::Subject, "u")
            .map(|e| e.before);
        assert_eq!(before, Some(T0));
        assert_consistent(&store);
        assert_eq!(store.stored(), 1);
    });
}

#[test]
fn capacity_counts_entries_and_refuses_without_evicting() {
    block_on(async {
        let (store, clock) = store(3, 2);
        let until = T0.saturating_add(secs(10));
        for name in ["a", "b", "c"] {
            store.revoke_token(&id(name), until).await.unwrap();
        }
        let err = store.revoke_session(&id("d"), until).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::CapacityExceeded);
        assert!(matches!(err, StoreError::CapacityExceeded { capacity: 3 }));
        // Re-revoking held ids (also extending them) needs no room.
        store.revoke_token(&id("a"), until).await.unwrap();
        store
            .revoke_token(&id("b"), until.saturating_add(secs(10)))
            .await
            .unwrap();
        // A no-op (past `until`) needs no room either.
        store.revoke_token(&id("z"), T0).await.unwrap();
        assert_eq!(store.stored(), 3);
        assert_consistent(&store);

        clock.set(until);
        // "a" and "c" expired; the refused revoke now fits. Which expired entries the
        // write swept depends on the (randomly keyed) shard of each id: its own shard and
        // one more in rotation, or a full purge if the store was still full.
        store
            .revoke_session(&id("d"), until.saturating_add(secs(1)))
            .await
            .unwrap();
        assert_eq!(store.len(), 2);
        assert!(store.stored() <= 3, "stored {}", store.stored());
        store.purge_expired();
        assert_eq!(store.stored(), 2);
        assert_consistent(&store);
    });
}

#[test]
fn zero_capacity_refuses_everything() {
    block_on(async {
        let (store, _clock) = store(0, 1);
        let err = store
            .revoke_token(&id("a"), T0.saturating_add(secs(1)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::CapacityExceeded);
        assert!(store.is_empty());
    });
}

#[test]
fn writes_reclaim_every_shard_in_turn() {
    block_on(async {
        let (store, clock) = store(10_000, 8);
        let until = T0.saturating_add(secs(1));
        for i in 0..1000 {
            store
                .revoke_token(&id(&format!("t{i}")), until)
                .await
                .unwrap();
        }
        assert_eq!(store.stored(), 1000);
        clock.advance(secs(1));
        assert_eq!(store.len(), 0, "expired entries stop counting at once");
        assert_eq!(store.stored(), 1000, "nothing reclaimed without a write");
        let long = T0.saturating_add(secs(100));
        for i in 0..8 {
            store
                .revoke_session(&id(&format!("s{i}")), long)
                .await
                .unwrap();
        }
        assert_eq!(store.stored(), 8, "eight writes swept all eight shards");
        assert_consistent(&store);
    });
}

#[test]
fn boundary_is_exclusive() {
    block_on(async {
        let (store, clock) = store(10, 4);
        let until = T0.saturating_add(secs(5));
        store.revoke_token(&id("a"), until).await.unwrap();
        clock.set(until.saturating_sub(Duration::from_nanos(1)));
        assert!(store.check(&jti("a")).await.unwrap().is_revoked());
        assert_eq!(store.len(), 1);
        clock.set(until);
        assert!(!store.check(&jti("a")).await.unwrap().is_revoked());
        assert_eq!(store.len(), 0);
        // `until == now` is a no-op.
        store.revoke_token(&id("b"), until).await.unwrap();
        assert_eq!(store.stored(), 1, "only the expired \"a\" is still held");
    });
}

#[test]
fn out_of_range_shards_are_refused() {
    let max = MemoryRevocationConfig::MAX_SHARDS;
    for bad in [0, max + 1, usize::MAX] {
        let err = MemoryRevocationStore::with_config(MemoryRevocationConfig::new().shards(bad))
            .expect_err("out of range");
        assert_eq!(err.setting(), "shards");
    }
    for good in [1, max] {
        let s = MemoryRevocationStore::with_config(MemoryRevocationConfig::new().shards(good))
            .expect("in range");
        assert_eq!(s.shards.len(), good);
    }
    let s = MemoryRevocationStore::default();
    assert_eq!(s.shards.len(), MemoryRevocationConfig::DEFAULT_SHARDS);
    assert_eq!(s.capacity(), MemoryRevocationConfig::DEFAULT_CAPACITY);
}

#[test]
fn debug_shows_no_ids() {
    block_on(async {
        let (store, _clock) = store(10, 2);
        let until = T0.saturating_add(secs(5));
        store
            .revoke_token(&id("secret-jti-123"), until)
            .await
            .unwrap();
        store
            .revoke_session(&id("secret-sid-456"), until)
            .await
            .unwrap();
        store
            .revoke_subject(&id("alice@example.com"), until, until)
            .await
            .unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("stored: 3"), "{debug}");
        for id in ["secret-jti-123", "secret-sid-456", "alice@example.com"] {
            assert!(!debug.contains(id), "{debug}");
        }
    });
}

#[test]
fn a_table_shrinks_after_a_burst_expires_and_keeps_finding_what_is_left() {
    block_on(async {
        let (store, clock) = store(10_000, 1);
        let short = T0.saturating_add(secs(10));
        let long = T0.saturating_add(secs(100));
        for n in 0..2_000 {
            store
                .revoke_token(&id(&format!("burst-{n}")), short)
                .await
                .unwrap();
        }
        for n in 0..10 {
            store
                .revoke_token(&id(&format!("kept-{n}")), long)
                .await
                .unwrap();
        }
        let peak = read(store.shards.at(0)).tokens.capacity();
        clock.set(short);
        assert_eq!(store.purge_expired(), 2_000);
        let after = read(store.shards.at(0)).tokens.capacity();
        assert!(after < peak / 8, "shrunk from {peak} to {after}");
        assert_consistent(&store);
        for n in 0..10 {
            assert_eq!(
                store.check(&jti(&format!("kept-{n}"))).await.unwrap(),
                RevocationStatus::Revoked(RevokedBy::Token),
                "rehashed on shrink, still found"
            );
        }
        assert_eq!(
            store.check(&jti("burst-1")).await.unwrap(),
            RevocationStatus::Active
        );
    });
}
