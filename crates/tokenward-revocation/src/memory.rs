//! The in-memory [`RevocationStore`]: sharded, self-expiring, bounded.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use hashbrown::HashTable;
use tokenward_core::memory::{Capacity, Shards};
use tokenward_core::{
    SettingError, SharedClock, StoreError, StoreId, SystemClock, TokenRef, UnixTime,
};

use crate::store::{RevocationStatus, RevocationStore, RevokedBy};

/// Configuration of a [`MemoryRevocationStore`]: capacity, shard count and clock.
///
/// ```
/// use std::sync::Arc;
/// use tokenward_core::{ManualClock, UnixTime};
/// use tokenward_revocation::{MemoryRevocationStore, MemoryRevocationConfig};
///
/// let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
/// let store = MemoryRevocationStore::with_config(
///     MemoryRevocationConfig::new().capacity(10_000).clock(Arc::new(clock.clone())),
/// )?;
/// assert_eq!(store.capacity(), 10_000);
/// // Out-of-range settings are refused when the store is built, never clamped.
/// assert!(MemoryRevocationStore::with_config(MemoryRevocationConfig::new().shards(0)).is_err());
/// # Ok::<(), tokenward_core::SettingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRevocationConfig {
    capacity: usize,
    shards: usize,
    clock: SharedClock,
}

impl MemoryRevocationConfig {
    /// The default [`capacity`](Self::capacity): one million entries.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;
    /// The default number of [`shards`](Self::shards).
    pub const DEFAULT_SHARDS: usize = 32;
    /// The largest accepted number of shards.
    pub const MAX_SHARDS: usize = 4096;

    /// The defaults: [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) entries,
    /// [`DEFAULT_SHARDS`](Self::DEFAULT_SHARDS) shards, the [`SystemClock`].
    pub fn new() -> Self {
        MemoryRevocationConfig {
            capacity: Self::DEFAULT_CAPACITY,
            shards: Self::DEFAULT_SHARDS,
            clock: Arc::new(SystemClock),
        }
    }

    /// The most entries (tokens, sessions and subjects together) the store holds. Expired
    /// entries are purged before a revoke is refused, so this bounds *live* revocations. A
    /// revoke that would exceed it fails with [`StoreError::CapacityExceeded`].
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How many independently locked shards the entries are spread over (by a keyed hash of
    /// the id). More shards mean less contention between concurrent revokes; checks only ever
    /// take shared locks. `1..=`[`MAX_SHARDS`](Self::MAX_SHARDS); another value makes
    /// [`MemoryRevocationStore::with_config`] fail.
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Where "now" comes from (a `ManualClock` in tests).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for MemoryRevocationConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`RevocationStore`] in process memory: concurrent, self-expiring and bounded.
///
/// - **Concurrent.** Entries are spread over shards (see [`MemoryRevocationConfig::shards`]), each
///   behind its own `RwLock`. A [`check`](RevocationStore::check) takes a shared lock on at
///   most three shards, one at a time (those of the token's `jti`, `sid` and `sub`); there is
///   no global lock.
/// - **Self-expiring.** An entry revoked "until T" matches while `now < T` and never after.
///   Each shard keeps its entries ordered by expiry as well, and every revoke first drops the
///   expired entries of its shard and of one more shard in turn, so memory is reclaimed
///   without any cleanup job: after a burst of revocations, at most one write per shard
///   returns the store to its live size. [`purge_expired`](Self::purge_expired) sweeps every
///   shard at once, for callers who want that now.
/// - **Bounded.** At most [`capacity`](MemoryRevocationConfig::capacity) entries (default one
///   million). **A full store refuses, it never forgets:** when a revoke would exceed the
///   capacity, expired entries are purged first; if the store is still full the revoke fails
///   with [`StoreError::CapacityExceeded`] and every live revocation stays in force. Evicting
///   one instead would silently un-revoke a token. The caller's `FailurePolicy` decides what
///   the refusal means (fail closed by default), and operators see it. Re-revoking an id the
///   store already holds never counts against the capacity.
///
/// Revocations only ever extend: revoking an id again keeps the later `until` (and, for
/// subjects, the later cutoff).
///
/// `Debug` output shows the configuration and the number of entries, never ids.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tokenward_core::{Clock, ManualClock, StoreError, StoreId, UnixTime};
/// use tokenward_revocation::{MemoryRevocationConfig, MemoryRevocationStore, RevocationStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
/// let store = MemoryRevocationStore::with_config(
///     MemoryRevocationConfig::new().capacity(2).clock(Arc::new(clock.clone())),
/// )?;
/// let exp = clock.now().saturating_add(Duration::from_secs(900));
/// let [a, b, c] = ["a", "b", "c"].map(|id| StoreId::new(id).expect("a valid id"));
/// store.revoke_token(&a, exp).await?;
/// store.revoke_token(&b, exp).await?;
/// // Full: the third revoke is refused, "a" and "b" stay revoked.
/// let err = store.revoke_token(&c, exp).await.unwrap_err();
/// assert!(matches!(err, StoreError::CapacityExceeded { capacity: 2 }));
/// // Once "a" and "b" have expired there is room again.
/// clock.advance(Duration::from_secs(900));
/// store.revoke_token(&c, exp.saturating_add(Duration::from_secs(900))).await?;
/// assert_eq!(store.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct MemoryRevocationStore {
    /// Picked by a hash keyed per store, so ids cannot be chosen to pile into one shard.
    shards: Shards<RwLock<Shard>>,
    /// Entries held in all shards (live or not yet reclaimed). Only changed while holding the
    /// lock of the shard the entry belongs to.
    stored: Capacity,
    clock: SharedClock,
}

/// Which rule an entry belongs to; rules are separate namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Token,
    Session,
    Subject,
    /// A subject cutoff for tokens without a `sid` only.
    SubjectWithoutSession,
}

/// What an entry is keyed by: its rule and its id, hashed as the rule's byte then the id's
/// bytes (injective: the rule is one byte). Hashed once per lookup, by
/// [`Shards::hash`]: the same hash picks the shard and finds the entry in it.
struct KeyOf<'a>(Kind, &'a str);

impl std::hash::Hash for KeyOf<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(self.0 as u8);
        state.write(self.1.as_bytes());
    }
}

/// One revocation. `before` is only meaningful for subjects (and `EPOCH` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    until: UnixTime,
    before: UnixTime,
}

/// A rule's entries in a shard: the id and its revocation, filed under [`KeyOf`]'s hash (the
/// same bucket layout as a `HashMap<Arc<str>, Entry>`; the hash is not stored, it is
/// recomputed when the table grows or shrinks and when an entry expires).
type Table = HashTable<(Arc<str>, Entry)>;

/// The keyed hash of `(kind, id)`: [`MemoryRevocationStore::key_hash`], handed to a shard
/// for the moments it must rehash.
type HashOf<'a> = &'a dyn Fn(Kind, &str) -> u64;

/// One shard: a table per rule, plus every entry ordered by expiry.
///
/// Invariant: `expiry` holds exactly one `(until, kind, id)` for each table entry, with the
/// entry's `until`. The ids are shared (`Arc<str>`), so each is stored once.
#[derive(Debug, Default)]
struct Shard {
    tokens: Table,
    sessions: Table,
    subjects: Table,
    sessionless_subjects: Table,
    expiry: BTreeSet<(UnixTime, Kind, Arc<str>)>,
}

/// What [`Shard::extend`] found.
enum Extended {
    /// The id was present and live; it now carries the later `until` / cutoff.
    Done,
    /// The id is not in the shard.
    Absent,
}

impl Shard {
    fn table(&self, kind: Kind) -> &Table {
        match kind {
            Kind::Token => &self.tokens,
            Kind::Session => &self.sessions,
            Kind::Subject => &self.subjects,
            Kind::SubjectWithoutSession => &self.sessionless_subjects,
        }
    }

    fn table_mut(&mut self, kind: Kind) -> &mut Table {
        match kind {
            Kind::Token => &mut self.tokens,
            Kind::Session => &mut self.sessions,
            Kind::Subject => &mut self.subjects,
            Kind::SubjectWithoutSession => &mut self.sessionless_subjects,
        }
    }

    /// The entry for `(kind, id)`, filed under `hash`, live or not.
    fn find(&self, hash: u64, kind: Kind, id: &str) -> Option<Entry> {
        self.table(kind)
            .find(hash, |(key, _)| **key == *id)
            .map(|(_, entry)| *entry)
    }

    /// Removes every entry with `until <= now`; returns how many entries were removed.
    fn pop_expired(&mut self, now: UnixTime, hash_of: HashOf<'_>) -> usize {
        let mut removed = 0;
        while let Some(first) = self.expiry.first() {
            if first.0 > now {
                break;
            }
            let Some((until, kind, id)) = self.expiry.pop_first() else {
                break;
            };
            // The invariant says the table entry has this `until`; checking keeps a stale
            // index element (which the invariant rules out) from removing a live entry.
            if let Ok(found) = self
                .table_mut(kind)
                .find_entry(hash_of(kind, &id), |(key, _)| *key == id)
                && found.get().1.until == until
            {
                found.remove();
                removed += 1;
            }
        }
        if removed > 0 {
            self.shrink_sparse_tables(hash_of);
        }
        removed
    }

    /// A hash table never gives memory back on `remove`: after a burst expires, a shard
    /// would keep its peak bucket array forever. Tables under a quarter full shrink to twice
    /// their length, so memory follows live entries (amortized: a table shrinks only after
    /// losing three quarters of its capacity).
    fn shrink_sparse_tables(&mut self, hash_of: HashOf<'_>) {
        for kind in [
            Kind::Token,
            Kind::Session,
            Kind::Subject,
            Kind::SubjectWithoutSession,
        ] {
            let table = self.table_mut(kind);
            if table.capacity() > 64 && table.len() < table.capacity() / 4 {
                table.shrink_to(table.len() * 2, |(key, _)| hash_of(kind, key));
            }
        }
    }

    /// How many entries have `until <= now` (without removing them).
    fn expired_count(&self, now: UnixTime) -> usize {
        self.expiry.iter().take_while(|e| e.0 <= now).count()
    }

    fn stored(&self) -> usize {
        self.tokens.len()
            + self.sessions.len()
            + self.subjects.len()
            + self.sessionless_subjects.len()
    }

    /// Extends the entry for `id` if present. Call after [`pop_expired`](Self::pop_expired),
    /// so that a present entry is a live one.
    fn extend(&mut self, hash: u64, kind: Kind, id: &str, new: Entry) -> Extended {
        let Some((key, entry)) = self.table_mut(kind).find_mut(hash, |(key, _)| **key == *id)
        else {
            return Extended::Absent;
        };
        let old = *entry;
        let merged = Entry {
            until: old.until.max(new.until),
            before: old.before.max(new.before),
        };
        *entry = merged;
        let key = Arc::clone(key);
        if merged.until != old.until {
            self.expiry.remove(&(old.until, kind, Arc::clone(&key)));
            self.expiry.insert((merged.until, kind, key));
        }
        Extended::Done
    }

    /// Inserts a new entry (the id must be absent).
    fn insert(&mut self, hash: u64, kind: Kind, id: &str, entry: Entry, hash_of: HashOf<'_>) {
        let key: Arc<str> = Arc::from(id);
        self.expiry.insert((entry.until, kind, Arc::clone(&key)));
        self.table_mut(kind)
            .insert_unique(hash, (key, entry), |(key, _)| hash_of(kind, key));
    }
}

impl MemoryRevocationStore {
    /// A store with the default configuration ([`MemoryRevocationConfig::new`]).
    pub fn new() -> Self {
        Self::build(MemoryRevocationConfig::new())
    }

    /// A store with the default configuration, reading time from `clock` (a `ManualClock` in
    /// tests).
    pub fn with_clock(clock: SharedClock) -> Self {
        Self::build(MemoryRevocationConfig::new().clock(clock))
    }

    /// A store with the given configuration; a setting out of range is an error.
    pub fn with_config(config: MemoryRevocationConfig) -> Result<Self, SettingError> {
        SettingError::check_range(
            "shards",
            config.shards,
            1..=MemoryRevocationConfig::MAX_SHARDS,
        )?;
        Ok(Self::build(config))
    }

    /// `config.shards` is in range (the defaults are).
    fn build(config: MemoryRevocationConfig) -> Self {
        MemoryRevocationStore {
            shards: Shards::new(config.shards, || RwLock::new(Shard::default())),
            stored: Capacity::new(config.capacity),
            clock: config.clock,
        }
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.stored.limit()
    }

    /// The number of live revocations (entries whose `until` is still ahead). Expired entries
    /// not yet reclaimed are not counted; see [`stored`](Self::stored) for those.
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|shard| {
                let shard = read(shard);
                shard.stored().saturating_sub(shard.expired_count(now))
            })
            .sum()
    }

    /// Whether no revocation is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of entries held in memory: the live ones plus expired ones not yet
    /// reclaimed (they no longer match anything). A metric for operators; it never exceeds
    /// the capacity.
    pub fn stored(&self) -> usize {
        self.stored.stored()
    }

    /// Every id held, each as one buffer (the conformance probe's `stored_bytes`).
    #[cfg(feature = "conformance")]
    pub(crate) fn stored_ids(&self) -> Vec<Vec<u8>> {
        self.shards
            .iter()
            .flat_map(|shard| {
                let shard = read(shard);
                shard
                    .expiry
                    .iter()
                    .map(|(_, _, id)| id.as_bytes().to_vec())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Drops every expired entry from every shard now and returns how many were dropped.
    ///
    /// Never required for correctness or for bounded memory (revokes reclaim expired entries
    /// as they go, and a full store purges before refusing); useful to shrink the store
    /// right away, e.g. after a burst of short-lived revocations.
    pub fn purge_expired(&self) -> usize {
        self.purge_expired_at(self.clock.now())
    }

    /// Pops the expired entries of a locked shard and keeps the global count in step.
    fn sweep(&self, shard: &mut Shard, now: UnixTime) -> usize {
        let removed = shard.pop_expired(now, &|kind, id| self.key_hash(kind, id));
        self.stored.release(removed);
        removed
    }

    /// The hash `(kind, id)` is filed under (the shard's and the shard table's).
    fn key_hash(&self, kind: Kind, id: &str) -> u64 {
        self.shards.hash(KeyOf(kind, id))
    }

    /// The entry for `id`, if any, live or expired (the caller compares `until` with the
    /// time); a shared lock on one shard, one hash of the key.
    fn lookup(&self, kind: Kind, id: &str) -> Option<Entry> {
        let hash = self.key_hash(kind, id);
        read(self.shards.of_hash(hash).1).find(hash, kind, id)
    }

    fn revoke(&self, kind: Kind, id: &str, new: Entry) -> Result<(), StoreError> {
        let now = self.clock.now();
        if new.until <= now {
            // Nothing this entry could match is still valid.
            return Ok(());
        }
        let hash = self.key_hash(kind, id);
        let (index, shard) = self.shards.of_hash(hash);
        let result = self.revoke_in_shard(hash, kind, id, new, shard, now);
        // Reclaim one more shard in turn, so that expired entries go away even in shards
        // that no revoke happens to hash to. Never while holding another shard's lock.
        let (other, next) = self.shards.next_to_sweep();
        if other != index {
            self.sweep(&mut write(next), now);
        }
        result
    }

    fn revoke_in_shard(
        &self,
        hash: u64,
        kind: Kind,
        id: &str,
        new: Entry,
        shard: &RwLock<Shard>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let mut purged_everything = false;
        loop {
            {
                let mut shard = write(shard);
                self.sweep(&mut shard, now);
                if let Extended::Done = shard.extend(hash, kind, id, new) {
                    return Ok(());
                }
                if self.stored.try_reserve() {
                    shard.insert(hash, kind, id, new, &|kind, id| self.key_hash(kind, id));
                    return Ok(());
                }
            }
            // Full. Make room from expired entries (all shards, with this one unlocked so
            // that no two shard locks are ever held together), then try once more.
            if purged_everything {
                return Err(StoreError::CapacityExceeded {
                    capacity: self.capacity(),
                });
            }
            self.purge_expired_at(now);
            purged_everything = true;
        }
    }

    fn purge_expired_at(&self, now: UnixTime) -> usize {
        self.shards
            .iter()
            .map(|shard| self.sweep(&mut write(shard), now))
            .sum()
    }
}

/// Our critical sections leave a shard consistent at every point where a panic could occur
/// (and the expiry sweep tolerates a stale index element), so a poisoned lock is recovered
/// rather than turning every later request into an error.
fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocationStore")
            .field("capacity", &self.capacity())
            .field("shards", &self.shards.len())
            .field("stored", &self.stored())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RevocationStore for MemoryRevocationStore {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        let entry = Entry {
            until,
            before: UnixTime::EPOCH,
        };
        self.revoke(Kind::Token, jti.as_str(), entry)
    }

    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        let entry = Entry {
            until,
            before: UnixTime::EPOCH,
        };
        self.revoke(Kind::Session, sid.as_str(), entry)
    }

    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.revoke(Kind::Subject, sub.as_str(), Entry { until, before })
    }

    async fn revoke_subject_without_session(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        let entry = Entry { until, before };
        self.revoke(Kind::SubjectWithoutSession, sub.as_str(), entry)
    }

    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        Ok(self.status(token))
    }

    fn check_now(&self, token: &TokenRef<'_>) -> Option<Result<RevocationStatus, StoreError>> {
        Some(Ok(self.status(token)))
    }
}

impl MemoryRevocationStore {
    /// [`RevocationStore::check`], in process: it cannot fail.
    fn status(&self, token: &TokenRef<'_>) -> RevocationStatus {
        // The clock is read once, and only when an entry is found: most checks find none,
        // and a clock read costs as much as a lookup on some machines.
        let mut now = None;
        let mut live = |entry: &Entry| entry.until > *now.get_or_insert_with(|| self.clock.now());
        if let Some(jti) = &token.jti
            && self
                .lookup(Kind::Token, jti.as_str())
                .is_some_and(|e| live(&e))
        {
            return RevocationStatus::Revoked(RevokedBy::Token);
        }
        if let Some(sid) = &token.sid
            && self
                .lookup(Kind::Session, sid.as_str())
                .is_some_and(|e| live(&e))
        {
            return RevocationStatus::Revoked(RevokedBy::Session);
        }
        let Some(sub) = &token.sub else {
            return RevocationStatus::Active;
        };
        // The cutoff for every token, then (for a token without a session) the one for
        // tokens without a session.
        let kinds: &[Kind] = match token.sid {
            Some(_) => &[Kind::Subject],
            None => &[Kind::Subject, Kind::SubjectWithoutSession],
        };
        for &kind in kinds {
            if let Some(entry) = self.lookup(kind, sub.as_str()).filter(|e| live(e))
                && token.iat.is_none_or(|iat| iat < entry.before)
            {
                return RevocationStatus::Revoked(RevokedBy::Subject {
                    before: entry.before,
                });
            }
        }
        RevocationStatus::Active
    }
}

#[cfg(test)]
mod tests;
