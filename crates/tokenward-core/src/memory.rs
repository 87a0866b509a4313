//! Building blocks of the in-process stores: a keyed set of shards with a sweep cursor, and a
//! capacity counter that refuses instead of evicting.
//!
//! The in-memory revocation and refresh stores share one shape: entries spread over shards
//! by a per-store keyed hash (so ids cannot be chosen to pile into one shard), each write
//! also sweeping one more shard in turn (so expired entries go away even in shards no write
//! hashes to), and a global count that a write must reserve a slot in before it adds an
//! entry (a full store refuses; it never forgets a live entry). These two types are that
//! shape, for them and for your own in-process backends.
//!
//! ```
//! use std::sync::Mutex;
//! use tokenward_core::memory::{Capacity, Shards};
//!
//! let shards: Shards<Mutex<Vec<String>>> = Shards::new(4, || Mutex::new(Vec::new()));
//! let capacity = Capacity::new(1);
//! let (_, shard) = shards.of("jti-1");
//! assert!(capacity.try_reserve());
//! shard.lock().unwrap().push("jti-1".to_owned());
//! // Full: the next write is refused.
//! assert!(!capacity.try_reserve());
//! // An entry goes away: its slot is given back.
//! shard.lock().unwrap().clear();
//! capacity.release(1);
//! assert_eq!(capacity.stored(), 0);
//! ```

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};

/// At least one shard, each a `T` (typically a lock around a map), picked by a keyed hash
/// that is random per store.
pub struct Shards<T> {
    shards: Box<[T]>,
    hasher: RandomState,
    sweep_cursor: AtomicUsize,
}

impl<T> Shards<T> {
    /// `count` shards (at least one), each made by `make`.
    pub fn new(count: usize, make: impl FnMut() -> T) -> Self {
        let mut make = make;
        Shards {
            shards: (0..count.max(1)).map(|_| make()).collect(),
            hasher: RandomState::new(),
            sweep_cursor: AtomicUsize::new(0),
        }
    }

    /// The number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always `false`: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The index and the shard of `key`.
    pub fn of<K: Hash>(&self, key: K) -> (usize, &T) {
        self.of_hash(self.hash(key))
    }

    /// The keyed hash of `key`, random per store: what [`of`](Self::of) picks the shard by.
    ///
    /// A shard's own table can key its entries by the same value (a `hashbrown::HashTable`,
    /// say), so that a lookup hashes its key once rather than once for the shard and again
    /// in the shard's map. The shard is taken from bits 32 to 55 of the hash, which such a
    /// table uses for neither its bucket index (the low bits) nor its tag (the top 7 bits),
    /// so the entries of one shard still spread over all of its buckets.
    pub fn hash<K: Hash>(&self, key: K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The index and the shard of a key whose [`hash`](Self::hash) is `hash`.
    pub fn of_hash(&self, hash: u64) -> (usize, &T) {
        // 24 bits; the remainder is below `len`, so the conversion cannot truncate.
        let bits = (hash >> 32) & 0x00FF_FFFF;
        let index = usize::try_from(bits % self.shards.len() as u64).unwrap_or_default();
        (index, self.at(index))
    }

    /// The shard at `index` (taken modulo the number of shards).
    #[expect(
        clippy::indexing_slicing,
        reason = "reduced modulo len, and len is at least 1"
    )]
    pub fn at(&self, index: usize) -> &T {
        &self.shards[index % self.shards.len()]
    }

    /// The next shard to sweep in turn, with its index: a write that sweeps its own shard
    /// sweeps this one too unless the indexes are equal (never holding two shard locks at
    /// once).
    pub fn next_to_sweep(&self) -> (usize, &T) {
        let index = self.sweep_cursor.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        (index, self.at(index))
    }

    /// Every shard, in index order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.shards.iter()
    }
}

/// Shows the number of shards only, never what they hold.
impl<T> std::fmt::Debug for Shards<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("len", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// The number of entries a store holds against its limit. A write reserves a slot before it
/// adds an entry and fails when there is none; whoever removes entries releases their slots.
#[derive(Debug)]
pub struct Capacity {
    stored: AtomicUsize,
    limit: usize,
}

impl Capacity {
    /// A counter at zero with room for `limit` entries.
    pub fn new(limit: usize) -> Self {
        Capacity {
            stored: AtomicUsize::new(0),
            limit,
        }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Entries held now.
    pub fn stored(&self) -> usize {
        self.stored.load(Ordering::Acquire)
    }

    /// Takes one slot if there is one.
    pub fn try_reserve(&self) -> bool {
        self.stored
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back `n` slots (of entries removed); never below zero.
    pub fn release(&self, n: usize) {
        if n > 0 {
            let _ = self
                .stored
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |stored| {
                    Some(stored.saturating_sub(n))
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_always_land_in_the_same_shard_and_every_shard_is_swept_in_turn() {
        let shards = Shards::new(3, || ());
        let (a, _) = shards.of("a");
        assert_eq!(shards.of("a").0, a);
        assert_eq!(shards.of_hash(shards.hash("a")).0, a);
        assert!(a < 3);
        let swept: Vec<usize> = (0..6).map(|_| shards.next_to_sweep().0).collect();
        assert_eq!(swept, [0, 1, 2, 0, 1, 2]);
        assert_eq!(Shards::new(0, || ()).len(), 1, "at least one shard");
    }

    #[test]
    fn keys_spread_over_every_shard() {
        // The shard comes from the middle bits of the hash: every shard gets keys, and
        // about as many as the others.
        let shards = Shards::new(8, || ());
        let mut counts = [0u32; 8];
        for n in 0..8_000 {
            let (index, ()) = shards.of(n);
            counts[index] += 1;
        }
        assert!(
            counts.iter().all(|&c| (700..1300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_full_capacity_refuses_until_slots_are_released() {
        let capacity = Capacity::new(2);
        assert!(capacity.try_reserve() && capacity.try_reserve());
        assert!(!capacity.try_reserve());
        assert_eq!(capacity.stored(), 2);
        capacity.release(1);
        assert!(capacity.try_reserve());
        capacity.release(5);
        assert_eq!(capacity.stored(), 0, "never below zero");
    }
}
