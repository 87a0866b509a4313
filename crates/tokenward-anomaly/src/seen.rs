//! What this instance reported to the state lately: a bounded, coarse-clocked cache that
//! keeps the request path from sending the same (token, network) pair to the worker — and
//! the shared state — on every request.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

const SHARDS: usize = 16;
/// Pairs remembered per shard; a full shard forgets what expired, then everything.
const SHARD_CAPACITY: usize = 4096;

/// The cache. Time is counted in ticks of the detector's ticker (one per second), read with
/// one atomic load: the request path reads no clock.
#[derive(Debug)]
pub(crate) struct Seen {
    shards: Box<[Mutex<HashMap<u64, u32>>]>,
    hasher: RandomState,
    tick: AtomicU32,
}

impl Seen {
    pub(crate) fn new() -> Self {
        Seen {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            tick: AtomicU32::new(0),
        }
    }

    /// One more second.
    pub(crate) fn advance(&self) {
        self.tick.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `key` was seen within the last `ttl` ticks; remembers it for `ttl` ticks if not.
    pub(crate) fn check_and_remember(&self, key: impl Hash, ttl: u32) -> bool {
        let hash = self.hasher.hash_one(key);
        let now = self.tick.load(Ordering::Relaxed);
        let i = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(i) else {
            return false;
        };
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&until) = map.get(&hash)
            && until > now
        {
            return true;
        }
        if map.len() >= SHARD_CAPACITY {
            map.retain(|_, until| *until > now);
            if map.len() >= SHARD_CAPACITY {
                map.clear();
            }
        }
        map.insert(hash, now.saturating_add(ttl.max(1)));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_its_ticks_and_stays_bounded() {
        let seen = Seen::new();
        assert!(!seen.check_and_remember(("a", 1), 2));
        assert!(seen.check_and_remember(("a", 1), 2));
        assert!(!seen.check_and_remember(("a", 2), 2));
        seen.advance();
        assert!(seen.check_and_remember(("a", 1), 2));
        seen.advance();
        assert!(!seen.check_and_remember(("a", 1), 2));
        for n in 0..100_000u32 {
            seen.check_and_remember(n, 1000);
        }
        let held: usize = seen
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum();
        assert!(held <= SHARDS * SHARD_CAPACITY);
    }
}
