//! Failure-ban state of the in-memory store: a sharded map of keys to their counted failures
//! and ban, each entry expiring on its own, under one cap.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokenward_core::StoreError;

use super::{lock, nanos};
use crate::key::LimitKey;
use crate::quota::BanQuota;
use crate::store::Decision;

const SHARDS: usize = 16;

/// Every key's failures and ban.
pub(super) struct BanTable {
    shards: Box<[Mutex<BanShard>]>,
    hasher: RandomState,
    /// Entries whose `banned_until` is set (in force or run out but not yet cleared), over
    /// all shards: while it is zero no key is banned ([`holds_no_ban`](Self::holds_no_ban)).
    /// Changed only under the lock of the shard whose entry changes.
    banned: AtomicUsize,
    /// The cap over all shards, and its share per shard.
    capacity: usize,
    shard_capacity: usize,
}

#[derive(Debug, Default)]
struct BanShard {
    map: HashMap<String, BanEntry>,
    /// Clock nanos before which a full shard is not swept again.
    next_sweep: u64,
}

#[derive(Debug)]
struct BanEntry {
    /// Times (clock nanos) of the failures counted, oldest first; at most `maxretry`.
    failures: VecDeque<u64>,
    /// When set and in the future: banned until then.
    banned_until: Option<u64>,
    /// When nothing in this entry matters any more (pruned from then on).
    expires_at: u64,
}

impl BanTable {
    pub(super) fn new(capacity: usize) -> Self {
        BanTable {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(BanShard::default()))
                .collect(),
            hasher: RandomState::new(),
            banned: AtomicUsize::new(0),
            capacity,
            shard_capacity: capacity.div_ceil(SHARDS),
        }
    }

    /// Whether no entry holds a ban: then no key is banned. (An entry whose ban has run out
    /// still counts until it is cleared or pruned, so this errs towards `false`.)
    #[inline]
    pub(super) fn holds_no_ban(&self) -> bool {
        self.banned.load(Ordering::Acquire) == 0
    }

    /// Drops the entries of `shard` that no longer matter at `now`, keeping the count of
    /// banned entries in step.
    fn retain_live(&self, shard: &mut BanShard, now: u64) {
        let mut unbanned = 0;
        shard.map.retain(|_, e| {
            let keep = e.expires_at > now;
            if !keep && e.banned_until.is_some() {
                unbanned += 1;
            }
            keep
        });
        self.unbanned(unbanned);
    }

    fn unbanned(&self, n: usize) {
        if n > 0 {
            self.banned.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// `key`'s ban decision at `now`; records nothing.
    pub(super) fn status(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
        now: u64,
    ) -> Result<Decision, StoreError> {
        let shard = lock(self.shard(key)?);
        Ok(decision(shard.map.get(key.as_str()), quota, now))
    }

    /// Records a failure of `key` at `now`. A full shard is swept of expired entries at most
    /// once per `sweep_every` nanoseconds before a new key is refused.
    pub(super) fn record(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
        now: u64,
        sweep_every: u64,
    ) -> Result<Decision, StoreError> {
        let findtime = nanos(quota.findtime());
        let mut shard = lock(self.shard(key)?);
        if !shard.map.contains_key(key.as_str()) && shard.map.len() >= self.shard_capacity {
            if now >= shard.next_sweep {
                self.retain_live(&mut shard, now);
                shard.next_sweep = now.saturating_add(sweep_every);
            }
            if shard.map.len() >= self.shard_capacity {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.capacity,
                });
            }
        }
        let entry = match shard.map.entry(key.as_str().to_owned()) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(BanEntry {
                failures: VecDeque::new(),
                banned_until: None,
                expires_at: now,
            }),
        };
        match entry.banned_until {
            // Banned: the failure neither counts nor extends the ban.
            Some(until) if until > now => {}
            Some(_) => {
                // The ban ended: counting starts afresh.
                entry.banned_until = None;
                entry.failures.clear();
                self.unbanned(1);
            }
            None => {}
        }
        if entry.banned_until.is_none() {
            while entry
                .failures
                .front()
                .is_some_and(|&f| f.saturating_add(findtime) <= now)
            {
                entry.failures.pop_front();
            }
            entry.failures.push_back(now);
            let max = usize::try_from(quota.maxretry()).unwrap_or(usize::MAX);
            while entry.failures.len() > max {
                entry.failures.pop_front();
            }
            if entry.failures.len() >= max {
                entry.failures.clear();
                entry.failures.shrink_to_fit();
                let until = now.saturating_add(nanos(quota.bantime()));
                entry.banned_until = Some(until);
                entry.expires_at = until;
                // Before the shard's lock is released: a reader that sees the ban's entry
                // sees the count too.
                self.banned.fetch_add(1, Ordering::AcqRel);
            } else {
                entry.expires_at = now.saturating_add(findtime);
            }
        }
        Ok(decision(Some(entry), quota, now))
    }

    /// Forgets `key`'s failures and ban.
    pub(super) fn lift(&self, key: &LimitKey<'_>) -> Result<(), StoreError> {
        let mut shard = lock(self.shard(key)?);
        if shard
            .map
            .remove(key.as_str())
            .is_some_and(|e| e.banned_until.is_some())
        {
            self.unbanned(1);
        }
        Ok(())
    }

    /// Drops every entry whose failures and ban have run out.
    pub(super) fn prune(&self, now: u64) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            self.retain_live(&mut shard, now);
            shard.map.shrink_to_fit();
        }
    }

    /// Keys tracked.
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// The keys tracked, as bytes.
    #[cfg(feature = "conformance")]
    pub(super) fn keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(lock(shard).map.keys().map(|k| k.as_bytes().to_vec()));
        }
        out
    }

    fn shard(&self, key: &LimitKey<'_>) -> Result<&Mutex<BanShard>, StoreError> {
        let i = (self.hasher.hash_one(key.as_str()) % SHARDS as u64) as usize;
        self.shards
            .get(i)
            .ok_or_else(|| StoreError::corrupt("ban shard index out of range"))
    }
}

/// The contract's ban decision for `entry` at `now` (no allocation: this is the Guard's
/// per-request ban check).
fn decision(entry: Option<&BanEntry>, quota: &BanQuota, now: u64) -> Decision {
    let maxretry = quota.maxretry();
    let Some(entry) = entry else {
        return Decision::allowed(maxretry, maxretry, Duration::ZERO);
    };
    if let Some(until) = entry.banned_until.filter(|&u| u > now) {
        let left = Duration::from_nanos(until - now);
        return Decision::denied(maxretry, left, left);
    }
    let findtime = nanos(quota.findtime());
    // Oldest first: the first failure still in the window is the oldest counted.
    let mut counted = entry
        .failures
        .iter()
        .filter(|&&f| f.saturating_add(findtime) > now);
    let Some(&oldest) = counted.next() else {
        return Decision::allowed(maxretry, maxretry, Duration::ZERO);
    };
    let count = u32::try_from(counted.count())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    Decision::allowed(
        maxretry,
        maxretry.saturating_sub(count),
        Duration::from_nanos(oldest.saturating_add(findtime) - now),
    )
}
