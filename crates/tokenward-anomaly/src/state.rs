//! Where the detectors keep what they count: the [`AnomalyStore`] trait and its in-memory
//! backend (the Redis one is `crate::redis`).
//!
//! Two primitives, each on one key, each self-expiring: a **bounded set** (the networks a
//! token or subject was seen from) and a **counter** (replays, forgeries from a network). A
//! key lives a fixed window from its creation: what it counts is "within the window since
//! the first sighting". Keys are built by the detectors (`ts:…`, `nn:…`); a backend may put
//! them under a prefix.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::{SharedClock, StoreError, SystemClock, UnixTime};

/// What adding a member found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetAnswer {
    /// Whether the member was new (and stored).
    pub added: bool,
    /// The members now in the set.
    pub count: u32,
}

impl SetAnswer {
    /// An answer (for backends outside this crate).
    pub fn new(added: bool, count: u32) -> Self {
        SetAnswer { added, count }
    }
}

/// The detectors' state. Implement it to keep it elsewhere; every key must expire on its own.
///
/// # Contract
/// - [`add_member`](Self::add_member): a set that holds at most `cap` members; a member
///   already in it, or one beyond `cap`, is not added (`added = false`) — atomically, so of
///   several concurrent adds of new members exactly one sees any given count. A new set lives
///   `window` from its creation; adding does not extend it.
/// - [`count`](Self::count): adds one and returns the new count; a new counter lives `window`
///   from its creation.
/// - [`members`](Self::members): the set's members, in any order (empty when it does not
///   exist).
#[async_trait]
pub trait AnomalyStore: Send + Sync + 'static {
    /// Adds `member` to the set `key` (see the [contract](Self#contract)).
    async fn add_member(
        &self,
        key: &str,
        member: &str,
        window: Duration,
        cap: u32,
    ) -> Result<SetAnswer, StoreError>;

    /// The members of the set `key`.
    async fn members(&self, key: &str) -> Result<Vec<String>, StoreError>;

    /// Counts one more under `key` and returns the count.
    async fn count(&self, key: &str, window: Duration) -> Result<u64, StoreError>;
}

const SHARDS: usize = 16;

/// The detectors' state in this process: bounded (default [`Self::DEFAULT_CAPACITY`] keys;
/// a full store sweeps what expired, then refuses new keys with
/// [`StoreError::CapacityExceeded`]), expired keys never answered.
#[derive(Debug)]
pub struct MemoryAnomalyStore {
    shards: Box<[Mutex<HashMap<String, Item>>]>,
    hasher: RandomState,
    shard_capacity: usize,
    capacity: usize,
    clock: SharedClock,
}

#[derive(Debug)]
struct Item {
    members: Vec<String>,
    count: u64,
    expires_at: UnixTime,
}

impl Default for MemoryAnomalyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryAnomalyStore {
    /// The default capacity: 100 000 keys.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store with the default capacity on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Self::DEFAULT_CAPACITY, Arc::new(SystemClock))
    }

    /// A store of `capacity` keys (at least one per shard) on `clock`.
    pub fn with_clock(capacity: usize, clock: SharedClock) -> Self {
        let capacity = capacity.max(SHARDS);
        MemoryAnomalyStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            shard_capacity: capacity.div_ceil(SHARDS),
            capacity,
            clock,
        }
    }

    /// The keys held, expired ones not yet swept included.
    pub fn stored(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Drops every expired key; returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        let mut purged = 0;
        for shard in self.shards.iter() {
            let mut map = lock(shard);
            let before = map.len();
            map.retain(|_, item| item.expires_at > now);
            purged += before - map.len();
        }
        purged
    }

    /// The item under `key`, live, created (empty, expiring after `window`) if needed.
    fn with_item<T>(
        &self,
        key: &str,
        window: Duration,
        f: impl FnOnce(&mut Item) -> T,
    ) -> Result<T, StoreError> {
        let now = self.clock.now();
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let shard = self
            .shards
            .get(i)
            .ok_or_else(|| StoreError::invalid_input("no shard"))?;
        let mut map = lock(shard);
        if !map.contains_key(key) && map.len() >= self.shard_capacity {
            map.retain(|_, item| item.expires_at > now);
            if map.len() >= self.shard_capacity {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.capacity,
                });
            }
        }
        let fresh = || Item {
            members: Vec::new(),
            count: 0,
            expires_at: now.saturating_add(window),
        };
        let item = match map.entry(key.to_owned()) {
            Entry::Occupied(o) => {
                let item = o.into_mut();
                if item.expires_at <= now {
                    *item = fresh();
                }
                item
            }
            Entry::Vacant(v) => v.insert(fresh()),
        };
        Ok(f(item))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn count_of(members: &[String]) -> u32 {
    u32::try_from(members.len()).unwrap_or(u32::MAX)
}

#[async_trait]
impl AnomalyStore for MemoryAnomalyStore {
    async fn add_member(
        &self,
        key: &str,
        member: &str,
        window: Duration,
        cap: u32,
    ) -> Result<SetAnswer, StoreError> {
        self.with_item(key, window, |item| {
            let count = count_of(&item.members);
            if item.members.iter().any(|m| m == member) || count >= cap {
                return SetAnswer::new(false, count);
            }
            item.members.push(member.to_owned());
            SetAnswer::new(true, count.saturating_add(1))
        })
    }

    async fn members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(i) else {
            return Ok(Vec::new());
        };
        Ok(lock(shard)
            .get(key)
            .filter(|item| item.expires_at > now)
            .map(|item| item.members.clone())
            .unwrap_or_default())
    }

    async fn count(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.with_item(key, window, |item| {
            item.count = item.count.saturating_add(1);
            item.count
        })
    }
}
