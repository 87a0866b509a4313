//! GCRA state of the in-memory store: governor's lock-free per-key cells in one DashMap per
//! quota, keyed by a keyed 128-bit hash of the key, under one cap on tracked keys.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use siphasher::sip128::SipHasher13;
use strength_reduce::StrengthReducedU64;
use tokenward_core::StoreError;

use super::{lock, nanos};
use crate::key::LimitKey;
use crate::quota::{GcraCharge, GcraQuota};
use crate::store::Decision;

/// Every quota's GCRA state, and the cap they share.
pub(super) struct GcraTable {
    quotas: QuotaTable,
    key_hasher: KeyHasher,
    budget: Arc<KeyBudget>,
}

impl GcraTable {
    pub(super) fn new(capacity: usize, max_quotas: usize) -> Self {
        GcraTable {
            quotas: QuotaTable::new(max_quotas),
            key_hasher: KeyHasher::new(),
            budget: Arc::new(KeyBudget {
                tracked: AtomicUsize::new(0),
                capacity,
            }),
        }
    }

    /// One GCRA step for `key` at `now` (clock nanoseconds); `Ok(None)` when `key` is new and
    /// the store is full — then nothing was stored. (Inlined into the store's one caller: the
    /// check is a few dozen instructions, and a call would add a tenth.)
    #[inline(always)]
    pub(super) fn check(
        &self,
        key: &LimitKey<'_>,
        charge: &GcraCharge,
        now: u64,
    ) -> Result<Option<Decision>, StoreError> {
        let l = self.limiter_for(charge.quota())?;
        let key = GcraKey {
            hash: self.key_hasher.hash(key.as_str()),
            refused: Cell::new(false),
        };
        let cost = charge.cost();
        let outcome = l.check(&key, now, cost);
        if key.refused.get() {
            return Ok(None);
        }
        // Decisions are computed in nanoseconds and become `Duration`s once (the formulas
        // are the trait's contract).
        let quota = &l.quota;
        Ok(Some(match outcome {
            Ok(tat) => {
                // remaining = ⌊(now + B·T − TAT') / T⌋ (governor's
                // `StateSnapshot::remaining_burst_capacity`); reset = TAT' − now.
                let left = now
                    .saturating_add(l.burst_nanos)
                    .saturating_sub(tat)
                    .min(l.burst_nanos);
                let remaining = u32::try_from(left / l.emission_div)
                    .unwrap_or(u32::MAX)
                    .min(quota.burst());
                let reset = Duration::from_nanos(tat.saturating_sub(now));
                Decision::allowed(quota.limit(), remaining, reset)
            }
            Err(tat) => {
                // retry_after = TAT + n·T − B·T − now; reset = TAT − now.
                let earliest = tat
                    .saturating_add(l.emission_nanos.saturating_mul(u64::from(cost)))
                    .saturating_sub(l.burst_nanos);
                Decision::denied(
                    quota.limit(),
                    Duration::from_nanos(tat.saturating_sub(now)),
                    Duration::from_nanos(earliest.saturating_sub(now)),
                )
            }
        }))
    }

    /// Drops every key whose state is indistinguishable from a fresh one.
    pub(super) fn prune(&self, now: u64) {
        for l in self.quotas.limiters() {
            // governor's `RateLimiter::retain_recent`: a key whose TAT is at most `now − T`
            // is indistinguishable from a fresh one. Releases the dropped keys' slots.
            l.state
                .retain_recent(Nanos::from(now.saturating_sub(l.emission_nanos)));
            l.state.shrink_to_fit();
        }
    }

    /// Whether a new key would be admitted under the cap.
    pub(super) fn has_room(&self) -> bool {
        self.budget.tracked() < self.budget.capacity
    }

    /// The cap on tracked keys.
    pub(super) fn capacity(&self) -> usize {
        self.budget.capacity
    }

    /// Keys tracked, counted in the limiters' tables.
    pub(super) fn tracked_keys(&self) -> usize {
        self.quotas.limiters().iter().map(|l| l.state.len()).sum()
    }

    /// The keyed hashes of the tracked keys (what the store holds instead of the keys).
    #[cfg(feature = "conformance")]
    pub(super) fn tracked_hashes(&self) -> Vec<u128> {
        let mut out = Vec::new();
        for l in self.quotas.limiters() {
            out.extend(l.state.map.iter().map(|e| *e.key()));
        }
        out
    }

    /// The limiter of `quota`, created on first use.
    #[inline]
    fn limiter_for(&self, quota: &GcraQuota) -> Result<&QuotaLimiter, StoreError> {
        if let Some(l) = self.quotas.get(quota) {
            return Ok(l);
        }
        self.quotas
            .get_or_create(quota, || QuotaLimiter::new(quota, &self.budget))
    }
}

/// Keys GCRA state by a keyed 128-bit hash of the key: SipHash-1-3 with a 128-bit output,
/// under a random key drawn per store.
///
/// Two distinct keys share state only if their hashes collide. SipHash is a keyed
/// pseudorandom function: without the store's secret 128-bit key (never exposed; its
/// hashes are never shown either), an attacker can neither compute nor search for a
/// collision offline, and online each guess is one request; by the birthday bound, even
/// 2³² tracked keys collide by chance with probability about 2⁻⁶⁵. In exchange, a call neither
/// allocates nor compares the key's bytes, and a tracked key takes 24 bytes of table (hash
/// and state) instead of a heap-allocated `String` of its own.
#[derive(Clone)]
struct KeyHasher(SipHasher13);

impl KeyHasher {
    fn new() -> Self {
        // std's `RandomState` is seeded from the OS's randomness; its SipHash of two
        // constants gives two unpredictable 64-bit words.
        let seed = RandomState::new();
        KeyHasher(SipHasher13::new_with_keys(
            seed.hash_one(0u8),
            seed.hash_one(1u8),
        ))
    }

    #[inline]
    fn hash(&self, key: &str) -> u128 {
        self.0.hash(key.as_bytes()).as_u128()
    }
}

/// The DashMap's hasher for keys that are already keyed hashes: it folds the 128 bits to 64
/// instead of hashing them again.
#[derive(Clone, Copy, Default)]
struct PreHashed;

#[derive(Default)]
struct PreHashedHasher(u64);

impl BuildHasher for PreHashed {
    type Hasher = PreHashedHasher;

    fn build_hasher(&self) -> PreHashedHasher {
        PreHashedHasher(0)
    }
}

impl Hasher for PreHashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, i: u128) {
        // Truncation intended: both halves of a uniformly random value, folded.
        self.0 ^= (i as u64) ^ ((i >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u128` keys are hashed here (`write_u128`); this path is never taken, but
        // must still be a hash (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// GCRA keys tracked, over all quotas, against the hard cap. A key's slot is reserved
/// before its entry is inserted (under the DashMap shard's write lock) and released when a
/// prune removes the entry, so the count is exact and the cap holds under concurrency.
#[derive(Debug)]
struct KeyBudget {
    tracked: AtomicUsize,
    capacity: usize,
}

impl KeyBudget {
    fn try_reserve(&self) -> bool {
        self.tracked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.tracked.fetch_sub(n, Ordering::AcqRel);
    }

    fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Acquire)
    }
}

type StateMap = DashMapStateStore<u128, PreHashed>;

/// The key of a GCRA state lookup: the key's hash, and a flag the state store sets when the
/// key is new and the store is full (its state is then neither created nor changed).
/// (Governor's `StateStore` asks keys for `Clone` and `Eq` too; equality is the hash's.)
#[derive(Clone)]
struct GcraKey {
    hash: u128,
    refused: Cell<bool>,
}

impl PartialEq for GcraKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for GcraKey {}

impl Hash for GcraKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash.hash(state);
    }
}

/// One quota's keyed GCRA state: governor's DashMap (keyed by hash), with new keys admitted
/// only under the store's [`KeyBudget`].
struct SharedState {
    map: StateMap,
    budget: Arc<KeyBudget>,
}

impl StateStore for SharedState {
    type Key = GcraKey;

    #[inline(always)]
    fn measure_and_replace<T, F, E>(&self, key: &GcraKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // governor's DashMap store, less the key clone, and with new keys under the cap.
        if let Some(state) = self.map.get(&key.hash) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.budget.tracked() >= self.budget.capacity {
            // Full (a flood of new keys): refused without taking the shard's write lock.
            return Self::refuse(key, f);
        }
        let inserted = self.map.entry(key.hash).or_try_insert_with(|| {
            if self.budget.try_reserve() {
                Ok(InMemoryState::default())
            } else {
                Err(())
            }
        });
        match inserted {
            Ok(state) => state.measure_and_replace(&NotKeyed::NonKey, f),
            Err(()) => Self::refuse(key, f),
        }
    }
}

impl SharedState {
    /// A new key met a full store: no state is created. The decision governor would take
    /// for a fresh key is returned, but the caller sees the flag and answers
    /// `CapacityExceeded` instead.
    fn refuse<T, F, E>(key: &GcraKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        key.refused.set(true);
        f(None).map(|(t, _)| t)
    }
}

impl ShrinkableKeyedStateStore<GcraKey> for SharedState {
    fn retain_recent(&self, drop_below: Nanos) {
        // governor's `retain_recent`, counting what it drops. Reading a state: a closure
        // that refuses to replace it returns the value it was shown.
        let mut dropped = 0;
        self.map.retain(|_, state| {
            let tat = state.measure_and_replace(&NotKeyed::NonKey, |tat| {
                Err::<((), Nanos), _>(tat.unwrap_or_default())
            });
            let keep = tat.is_err_and(|tat| tat > drop_below);
            if !keep {
                dropped += 1;
            }
            keep
        });
        self.budget.release(dropped);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One quota's GCRA: its parameters in clock nanoseconds, and its keys' state.
struct QuotaLimiter {
    state: SharedState,
    quota: GcraQuota,
    /// `T`, the emission interval `⌈period / limit⌉` in nanoseconds (at least 1).
    emission_nanos: u64,
    /// `T`, prepared for division by multiplication (a 64-bit division was an eighth of an
    /// admitted check in a profile).
    emission_div: StrengthReducedU64,
    /// `τ`, the delay tolerance: `T × (burst − 1)`.
    tau_nanos: u64,
    /// `B·T`: the time a full burst takes to come back (`τ + T`).
    burst_nanos: u64,
}

/// A GCRA step's answer: admitted, with the new theoretical arrival time (TAT') stored; or
/// denied, with the key's TAT (nothing stored). Both in clock nanoseconds.
type Outcome = Result<u64, u64>;

impl QuotaLimiter {
    fn new(quota: &GcraQuota, budget: &Arc<KeyBudget>) -> Self {
        // A quota's interval is at least 1 ns and its burst at least 1 (checked when made).
        let emission_nanos = nanos(quota.emission_interval()).max(1);
        let burst = u64::from(quota.burst());
        QuotaLimiter {
            state: SharedState {
                map: StateMap::with_hasher(PreHashed),
                budget: Arc::clone(budget),
            },
            quota: *quota,
            emission_nanos,
            emission_div: StrengthReducedU64::new(emission_nanos),
            tau_nanos: emission_nanos.saturating_mul(burst.saturating_sub(1)),
            burst_nanos: emission_nanos.saturating_mul(burst),
        }
    }

    /// The GCRA step of governor's limiter (`Gcra::test_and_update` /
    /// `test_n_all_and_update`) for `cost` cells (`1..=burst`) at `now`: with a TAT (a fresh
    /// key's is `now`), the request conforms unless `now` is before
    /// `TAT + T × (cost − 1) − τ` — the contract's `TAT + n·T − B·T ≤ now`; if it conforms,
    /// the TAT becomes `max(TAT, now) + T × cost`. The update is governor's lock-free
    /// compare-and-swap on the key's state.
    ///
    /// The step is done here rather than through governor's `RateLimiter`, which would read
    /// the clock a second time (the store reads it once per call for its pruning schedule
    /// and answers) and hands back a snapshot from which `remaining` costs a division.
    #[inline(always)]
    fn check(&self, key: &GcraKey, now: u64, cost: u32) -> Outcome {
        let additional = self
            .emission_nanos
            .saturating_mul(u64::from(cost.saturating_sub(1)));
        let increment = self.emission_nanos.saturating_add(additional);
        self.state.measure_and_replace(key, |tat| {
            let tat = tat.map_or(now, Nanos::as_u64);
            let earliest = tat
                .saturating_add(additional)
                .saturating_sub(self.tau_nanos);
            if now < earliest {
                // Denied only when the TAT is ahead of now (`additional ≤ τ`).
                Err(tat)
            } else {
                let next = tat.max(now).saturating_add(increment);
                Ok((next, Nanos::from(next)))
            }
        })
    }
}

/// The quotas' limiters: an open-addressing table (linear probing, at most half full) of
/// write-once slots, so finding a quota's limiter takes no lock, no `Arc` clone and no
/// SipHash. Limiters are created under `filled` and never removed.
struct QuotaTable {
    slots: Box<[OnceLock<Box<QuotaLimiter>>]>,
    /// Held while creating a limiter: the slots filled, in creation order.
    filled: Mutex<Vec<usize>>,
    max: usize,
}

impl QuotaTable {
    fn new(max: usize) -> Self {
        let len = (max * 2).next_power_of_two();
        QuotaTable {
            slots: (0..len).map(|_| OnceLock::new()).collect(),
            filled: Mutex::new(Vec::new()),
            max,
        }
    }

    /// The probe sequence of `quota`: every slot index once, starting at its hash.
    #[inline]
    fn probe(&self, quota: &GcraQuota) -> impl Iterator<Item = usize> {
        // Quotas are the application's configuration, not attacker input: a multiplicative
        // mix of the fields spreads them well enough.
        let period = quota.period();
        let x = u64::from(quota.limit())
            ^ period.as_secs().rotate_left(13)
            ^ (u64::from(period.subsec_nanos()) << 32)
            ^ u64::from(quota.burst()).rotate_left(47);
        let h = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize;
        // The length is a power of two: masking wraps around. (An index walk: the chained
        // slice iterators it replaced took 24 more instructions per check in callgrind.)
        let mask = self.slots.len() - 1;
        (0..self.slots.len()).map(move |k| h.wrapping_add(k) & mask)
    }

    #[inline]
    fn get(&self, quota: &GcraQuota) -> Option<&QuotaLimiter> {
        for i in self.probe(quota) {
            match self.slots.get(i)?.get() {
                Some(l) if l.quota == *quota => return Some(l),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    fn get_or_create(
        &self,
        quota: &GcraQuota,
        create: impl FnOnce() -> QuotaLimiter,
    ) -> Result<&QuotaLimiter, StoreError> {
        if let Some(l) = self.get(quota) {
            return Ok(l);
        }
        let mut filled = lock(&self.filled);
        for i in self.probe(quota) {
            let Some(slot) = self.slots.get(i) else {
                break;
            };
            match slot.get() {
                Some(l) if l.quota == *quota => return Ok(l),
                Some(_) => {}
                None => {
                    if filled.len() >= self.max {
                        break;
                    }
                    let limiter = create();
                    filled.push(i);
                    // Only this thread, under `filled`, fills slots: this one is empty.
                    return Ok(slot.get_or_init(|| Box::new(limiter)));
                }
            }
        }
        Err(StoreError::CapacityExceeded { capacity: self.max })
    }

    /// The limiters created so far.
    fn limiters(&self) -> Vec<&QuotaLimiter> {
        lock(&self.filled)
            .iter()
            .filter_map(|&i| self.slots.get(i)?.get().map(|l| &**l))
            .collect()
    }
}
