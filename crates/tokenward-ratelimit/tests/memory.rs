//! In-memory store specifics: the GCRA bound (property test), the GCRA step against
//! governor's own limiter (differential property test), bounded memory under floods of
//! distinct keys, and the capacity behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::Duration;

use proptest::prelude::*;
use tokenward_core::{ManualClock, StoreError, StoreErrorKind, UnixTime};
use tokenward_ratelimit::{
    BanQuota, GcraCharge, GcraQuota, LimitKey, LimiterClock, MemoryRateLimitConfig,
    MemoryRateLimitStore, RateLimitStore,
};

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().build()
}

fn manual_store(config: MemoryRateLimitConfig) -> (MemoryRateLimitStore, ManualClock) {
    let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
    let store = MemoryRateLimitStore::with_config(config.clock(LimiterClock::manual(&clock)))
        .expect("a valid config");
    (store, clock)
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn quota(limit: u32, period: Duration, burst: u32) -> GcraQuota {
    GcraQuota::new(nz(limit), period)
        .and_then(|q| q.with_burst(nz(burst)))
        .unwrap()
}

fn one(quota: GcraQuota) -> GcraCharge {
    GcraCharge::single(quota)
}

fn key(key: impl Into<String>) -> LimitKey<'static> {
    LimitKey::new(key.into()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For random request times, the admitted requests in any window of length `w` never
    /// exceed `burst + limit * w / period` (rounded up: a cell replenishes in whole
    /// emission intervals).
    #[test]
    fn gcra_never_admits_more_than_rate_times_window_plus_burst(
        limit in 1u32..20,
        period_ms in 100u64..5_000,
        burst_frac in 1u32..=100,
        gaps in proptest::collection::vec(0u64..400, 1..400),
        window_ms in 1u64..10_000,
    ) {
        let burst = (limit * burst_frac).div_ceil(100).max(1);
        let quota = quota(limit, Duration::from_millis(period_ms), burst);
        let (store, clock) = manual_store(MemoryRateLimitConfig::new());
        let mut admitted = Vec::new();
        let mut now = 0u64;
        runtime().unwrap().block_on(async {
            for gap in &gaps {
                clock.advance(Duration::from_millis(*gap));
                now += gap;
                let d = store.gcra(&key("p:k"), &one(quota)).await.unwrap_or_else(|e| panic!("{e}"));
                if d.allowed {
                    admitted.push(now);
                }
            }
        });
        // Sliding window over the admitted times (ms); the emission interval in ns.
        let t_ns = quota.emission_interval().as_nanos();
        let bound = u128::from(burst) + (u128::from(window_ms) * 1_000_000).div_ceil(t_ns);
        let mut in_window: VecDeque<u64> = VecDeque::new();
        for &a in &admitted {
            in_window.push_back(a);
            while in_window.front().is_some_and(|&f| f + window_ms <= a) {
                in_window.pop_front();
            }
            prop_assert!(
                in_window.len() as u128 <= bound,
                "{} admitted within {window_ms} ms, bound {bound} ({quota:?})",
                in_window.len()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The store runs governor's GCRA step itself (to read the clock once and compute
    /// `remaining` without a division): for random request times and costs, every decision
    /// is the one governor's own limiter takes — admitted or not, `remaining` as governor's
    /// `StateSnapshot::remaining_burst_capacity`, and the wait as its `NotUntil`.
    #[test]
    fn gcra_decides_as_governors_limiter(
        limit in 1u32..50,
        period_ms in 1u64..5_000,
        burst in 1u32..20,
        steps in proptest::collection::vec((0u64..300_000_000, 1u32..=20), 1..300),
    ) {
        use governor::clock::FakeRelativeClock;
        use governor::middleware::StateInformationMiddleware;
        use governor::{Quota, RateLimiter};

        let quota = quota(limit, Duration::from_millis(period_ms), burst);
        let governor_quota = Quota::with_period(quota.emission_interval())
            .unwrap()
            .allow_burst(NonZeroU32::new(burst).unwrap());
        let governor_clock = FakeRelativeClock::default();
        let governor = RateLimiter::direct_with_clock(governor_quota, governor_clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        let (store, clock) = manual_store(MemoryRateLimitConfig::new());
        for (i, &(gap_ns, cost)) in steps.iter().enumerate() {
            let cost = cost.min(burst);
            clock.advance(Duration::from_nanos(gap_ns));
            governor_clock.advance(Duration::from_nanos(gap_ns));
            let ours = store
                .gcra_now(&key("p:k"), &quota.charge(cost).unwrap())
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}"));
            let theirs = governor
                .check_n(NonZeroU32::new(cost).unwrap())
                .unwrap_or_else(|e| panic!("{e}"));
            match theirs {
                Ok(snapshot) => {
                    prop_assert!(ours.allowed, "step {i}: governor admits, tokenward {ours:?}");
                    prop_assert_eq!(
                        ours.remaining,
                        snapshot.remaining_burst_capacity(),
                        "step {}: remaining",
                        i
                    );
                }
                Err(not_until) => {
                    prop_assert!(!ours.allowed, "step {i}: governor denies, tokenward {ours:?}");
                    let wait = not_until
                        .wait_time_from(governor::clock::Clock::now(&governor_clock))
                        .max(Duration::from_nanos(1));
                    prop_assert_eq!(ours.retry_after, Some(wait), "step {}: retry-after", i);
                }
            }
        }
    }
}

/// A flood of distinct keys stays under the cap: new keys past it are refused with
/// `CapacityExceeded`, tracked keys keep working, and once the flood's state goes stale the
/// next new key prunes it and is admitted.
#[tokio::test]
async fn flood_of_distinct_keys_stays_under_the_cap() {
    const CAP: usize = 100_000;
    const FLOOD: usize = 1_000_000;
    let (store, clock) = manual_store(
        MemoryRateLimitConfig::new()
            .capacity(CAP)
            .prune_interval(Duration::from_secs(10)),
    );
    let quota = GcraQuota::per_minute(nz(10));
    let mut refused = 0;
    for i in 0..FLOOD {
        // Time moves a little; the flood keys stay live (each for 6 s).
        if i % 1000 == 0 {
            clock.advance(Duration::from_millis(1));
        }
        match store.gcra(&key(format!("flood:{i}")), &one(quota)).await {
            Ok(d) => assert!(d.allowed),
            Err(e) => {
                assert_eq!(e.kind(), StoreErrorKind::CapacityExceeded, "{e}");
                refused += 1;
            }
        }
        assert!(store.tracked_keys() <= CAP, "over the cap at {i}");
    }
    assert_eq!(refused, FLOOD - CAP, "everything past the cap refused");
    // A key tracked before the cap still works.
    let d = store
        .gcra(&key("flood:0"), &one(quota))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(d.allowed);
    // The flood goes stale; the next new key prunes and is admitted.
    clock.advance(Duration::from_secs(60));
    let d = store
        .gcra(&key("fresh"), &one(quota))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(d.allowed);
    assert!(
        store.tracked_keys() <= 2,
        "pruned: {}",
        store.tracked_keys()
    );
}

/// Periodic pruning without any cap pressure: stale keys vanish by themselves.
#[tokio::test]
async fn periodic_pruning_forgets_stale_keys() {
    let (store, clock) =
        manual_store(MemoryRateLimitConfig::new().prune_interval(Duration::from_secs(1)));
    let quota = GcraQuota::per_second(nz(10));
    let ban = BanQuota::new(nz(3), Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    for i in 0..10_000 {
        store
            .gcra(&key(format!("k{i}")), &one(quota))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .record_failure(&key(format!("b{i}")), &ban)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(store.tracked_keys(), 10_000);
    assert_eq!(store.ban_keys(), 10_000);
    clock.advance(Duration::from_secs(3));
    // Any call past the interval prunes.
    store
        .gcra(&key("other"), &one(quota))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.tracked_keys(), 1);
    assert_eq!(store.ban_keys(), 0);
}

/// The ban map is capped too; live bans are never evicted to make room.
#[tokio::test]
async fn ban_map_is_capped() {
    const CAP: usize = 1_600;
    let (store, clock) = manual_store(MemoryRateLimitConfig::new().ban_capacity(CAP));
    let ban = BanQuota::new(nz(1), Duration::from_secs(60), Duration::from_secs(300)).unwrap();
    let mut refused = 0;
    for i in 0..(CAP * 4) {
        match store.record_failure(&key(format!("ban:{i}")), &ban).await {
            Ok(d) => assert!(!d.allowed, "maxretry 1 bans"),
            Err(e) => {
                assert_eq!(e.kind(), StoreErrorKind::CapacityExceeded);
                refused += 1;
            }
        }
    }
    assert!(store.ban_keys() <= CAP, "{} ban keys", store.ban_keys());
    assert_eq!(refused, CAP * 4 - store.ban_keys());
    // Every admitted ban still holds; checks of unknown keys never fail.
    let banned = count_banned(&store, &ban, CAP * 4).await.unwrap();
    assert_eq!(banned, store.ban_keys());
    // After the bans end, room is made again.
    clock.advance(Duration::from_secs(301));
    let d = store
        .record_failure(&key("ban:new"), &ban)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!d.allowed);
}

async fn count_banned(
    store: &MemoryRateLimitStore,
    ban: &BanQuota,
    n: usize,
) -> Result<usize, StoreError> {
    let mut banned = 0;
    for i in 0..n {
        if !store
            .ban_status(&key(format!("ban:{i}")), ban)
            .await?
            .allowed
        {
            banned += 1;
        }
    }
    Ok(banned)
}

/// Distinct quotas get distinct limiters, capped.
#[tokio::test]
async fn quota_count_is_capped() {
    let (store, _clock) = manual_store(MemoryRateLimitConfig::new().max_quotas(2));
    for limit in 1..=2 {
        store
            .gcra(&key("q"), &one(GcraQuota::per_minute(nz(limit))))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let err = store
        .gcra(&key("q"), &one(GcraQuota::per_minute(nz(3))))
        .await
        .err();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(StoreErrorKind::CapacityExceeded)
    );
}

/// The GCRA cap is exact under concurrency: threads racing to add new keys (over two
/// quotas, which share the cap) never get more than `capacity` of them tracked, and every
/// refused call stores nothing.
#[test]
fn cap_is_exact_under_concurrent_new_keys() {
    const CAP: usize = 1_000;
    const THREADS: usize = 4;
    const PER_THREAD: usize = 1_000;
    let (store, _clock) = manual_store(MemoryRateLimitConfig::new().capacity(CAP));
    let quotas = [GcraQuota::per_minute(nz(10)), GcraQuota::per_second(nz(5))];
    let (admitted, refused) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (store, quotas) = (&store, &quotas);
                s.spawn(move || {
                    let rt = runtime().unwrap();
                    let (mut admitted, mut refused) = (0, 0);
                    for i in 0..PER_THREAD {
                        let quota = &quotas[i % 2];
                        match rt.block_on(store.gcra(&key(format!("new:{t}:{i}")), &one(*quota))) {
                            Ok(d) => {
                                assert!(d.allowed);
                                admitted += 1;
                            }
                            Err(e) => {
                                assert_eq!(e.kind(), StoreErrorKind::CapacityExceeded, "{e}");
                                refused += 1;
                            }
                        }
                    }
                    (admitted, refused)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |(a, r), (a2, r2)| (a + a2, r + r2))
    });
    assert_eq!(admitted, CAP);
    assert_eq!(refused, THREADS * PER_THREAD - CAP);
    assert_eq!(store.tracked_keys(), CAP);
}

/// A key refused at the cap leaves no state: once room is made, it starts with a full
/// burst, and the first new key after the flood went stale is admitted by the forced prune.
#[tokio::test]
async fn refused_key_leaves_no_state() {
    let (store, clock) = manual_store(
        MemoryRateLimitConfig::new()
            .capacity(2)
            .prune_interval(Duration::from_secs(600)),
    );
    let quota = quota(3, Duration::from_secs(60), 3);
    for k in ["a", "b"] {
        store
            .gcra(&key(k), &one(quota))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for _ in 0..5 {
        let err = store.gcra(&key("c"), &one(quota)).await.err();
        assert_eq!(
            err.map(|e| e.kind()),
            Some(StoreErrorKind::CapacityExceeded)
        );
    }
    assert_eq!(store.tracked_keys(), 2);
    // "a" and "b" go stale (60 s period). The periodic prune is not due (600 s), but a
    // forced one is allowed (60 s, a tenth of the interval, since the store began): it makes
    // room, and the call is retried.
    clock.advance(Duration::from_secs(61));
    let d = store
        .gcra(&key("c"), &one(quota))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(d.allowed);
    assert_eq!(
        d.remaining, 2,
        "a full burst: the refused calls took nothing"
    );
    assert_eq!(store.tracked_keys(), 1);
}

#[tokio::test]
async fn fast_path_and_async_path_share_one_state() {
    let (store, clock) = manual_store(MemoryRateLimitConfig::new());
    let dyn_store: &dyn RateLimitStore = &store;
    let quota = GcraQuota::per_minute(nz(3));
    // Two cells through the fast path, one through the async call: the budget is spent.
    for _ in 0..2 {
        let d = dyn_store.gcra_now(&key("k"), &one(quota)).unwrap().unwrap();
        assert!(d.allowed);
    }
    assert!(
        dyn_store
            .gcra(&key("k"), &one(quota))
            .await
            .unwrap()
            .allowed
    );
    let denied = dyn_store.gcra_now(&key("k"), &one(quota)).unwrap().unwrap();
    assert!(!denied.allowed);
    assert_eq!(
        denied,
        dyn_store.gcra(&key("k"), &one(quota)).await.unwrap()
    );
    // One emission interval later one cell is back, whichever path asks.
    clock.advance(Duration::from_secs(20));
    assert!(
        dyn_store
            .gcra_now(&key("k"), &one(quota))
            .unwrap()
            .unwrap()
            .allowed
    );
    // The ban status agrees too.
    let ban = BanQuota::fail2ban_default();
    for _ in 0..5 {
        dyn_store.record_failure(&key("ip"), &ban).await.unwrap();
    }
    let now = dyn_store.ban_status_now(&key("ip"), &ban).unwrap().unwrap();
    assert!(!now.allowed);
    assert_eq!(now, dyn_store.ban_status(&key("ip"), &ban).await.unwrap());
}

/// `holds_no_ban` is `true` exactly while no entry holds a ban: counted failures do not change
/// it, a ban does until it is lifted, or has run out and been cleared (by the key's next
/// failure or by a prune).
#[tokio::test]
async fn holds_no_ban_follows_the_bans() {
    let (store, clock) =
        manual_store(MemoryRateLimitConfig::new().prune_interval(Duration::from_secs(60)));
    let ban = BanQuota::new(nz(2), Duration::from_secs(10), Duration::from_secs(30)).unwrap();
    assert!(store.holds_no_ban(), "a new store");
    let d = store.record_failure(&key("a"), &ban).await.unwrap();
    assert!(d.allowed);
    assert!(store.holds_no_ban(), "one counted failure is no ban");
    // The second failure bans "a": no longer "no ban", for any key's caller.
    assert!(!store.record_failure(&key("a"), &ban).await.unwrap().allowed);
    assert!(!store.holds_no_ban());
    // Lifted: nothing banned again.
    store.lift_ban(&key("a")).await.unwrap();
    assert!(store.holds_no_ban());
    // Lifting a key with no ban (or none at all) never drives the count below zero.
    store.lift_ban(&key("a")).await.unwrap();
    store.lift_ban(&key("never")).await.unwrap();
    assert!(store.holds_no_ban());

    // A ban that runs out: `false` (errs on the safe side) until the entry is cleared, by the
    // key's next failure (counting starts afresh)...
    for _ in 0..2 {
        store.record_failure(&key("b"), &ban).await.unwrap();
    }
    assert!(!store.holds_no_ban());
    clock.advance(Duration::from_secs(31));
    assert!(store.ban_status(&key("b"), &ban).await.unwrap().allowed);
    assert!(store.record_failure(&key("b"), &ban).await.unwrap().allowed);
    assert!(store.holds_no_ban());
    // ...or by the prune that drops it.
    for k in ["c", "d"] {
        for _ in 0..2 {
            store.record_failure(&key(k), &ban).await.unwrap();
        }
    }
    assert!(!store.holds_no_ban());
    clock.advance(Duration::from_secs(61));
    store.prune();
    assert!(store.holds_no_ban());
    assert_eq!(store.ban_keys(), 0);
}
