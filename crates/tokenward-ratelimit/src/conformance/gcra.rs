//! The GCRA cases: admission, `remaining`, `reset` and `retry_after` as the contract's
//! formulas say, costs, bursts, independence and atomicity.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokenward_core::conformance::{
    CaseResult, Step, advance_past, advance_to, joined, just_after, just_before,
};

use super::{
    RateLimitEnv, assert_about, assert_allowed, assert_denied, cells, key, ms, one, quota, secs,
};

/// `limit` requests are admitted (with `remaining` counting down), the next is denied, and a
/// denial consumes nothing.
pub async fn n_allowed_then_denied(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, .. } = env;
    // 5 per hour: nothing replenishes while the case runs.
    let q = one(quota(5, secs(3600), 5));
    let k = key("n:k");
    for i in 0..5 {
        let d = store.gcra(&k, &q).await.step("gcra")?;
        assert_allowed(&d, 4 - i, &format!("request {}", i + 1));
        assert_eq!(d.limit, 5);
    }
    for _ in 0..3 {
        let d = store.gcra(&k, &q).await.step("gcra")?;
        assert_denied(&d, "request over the limit");
        assert_eq!(d.limit, 5);
    }
    Ok(())
}

/// A denial's `retry_after` is when one cell is back; retrying then is admitted, retrying
/// before is not.
pub async fn retry_after_is_correct(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    // 3 per 3 s: one cell every second.
    let q = one(quota(3, secs(3), 3));
    let k = key("ra:k");
    for _ in 0..3 {
        let d = store.gcra(&k, &q).await.step("gcra")?;
        assert!(d.allowed, "within the limit: {d:?}");
    }
    let d = store.gcra(&k, &q).await.step("gcra")?;
    let retry = assert_denied(&d, "4th request");
    assert_about(retry, secs(1), &*clock, "retry_after");
    assert_about(d.reset, secs(3), &*clock, "reset when empty");

    clock.advance(ms(500)).await;
    let d = store.gcra(&k, &q).await.step("gcra")?;
    let retry = assert_denied(&d, "half-way to retry_after");
    assert_about(retry, ms(500), &*clock, "retry_after half-way");

    advance_past(&*clock, ms(500)).await;
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_allowed(&d, 0, "at retry_after");
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_denied(&d, "right after the replenished cell");
    Ok(())
}

/// After a whole period without requests the full burst is available again.
pub async fn reset_after_the_period(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = one(quota(2, secs(1), 2));
    let k = key("rp:k");
    for round in 0..2 {
        for i in 0..2 {
            let d = store.gcra(&k, &q).await.step("gcra")?;
            assert!(d.allowed, "round {round}, request {i}: {d:?}");
        }
        let d = store.gcra(&k, &q).await.step("gcra")?;
        assert_denied(&d, "over the limit");
        advance_past(&*clock, secs(1)).await;
    }
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_allowed(&d, 1, "after the period, a full burst is back");
    Ok(())
}

/// `burst < limit`: only `burst` at once, then one per emission interval.
pub async fn burst_narrower_than_limit(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    // 60 per minute (one per second), at most 3 at once.
    let q = one(quota(60, secs(60), 3));
    let k = key("b:k");
    for i in 0..3 {
        let d = store.gcra(&k, &q).await.step("gcra")?;
        assert_allowed(&d, 2 - i, "within the burst");
        assert_eq!(d.limit, 60, "limit is the rate, not the burst");
    }
    let d = store.gcra(&k, &q).await.step("gcra")?;
    let retry = assert_denied(&d, "past the burst");
    assert_about(retry, secs(1), &*clock, "retry_after past the burst");
    assert_about(d.reset, secs(3), &*clock, "reset past the burst");

    advance_past(&*clock, secs(1)).await;
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_allowed(&d, 0, "one cell replenished");
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_denied(&d, "only one replenished");
    Ok(())
}

/// A request of cost `n` takes `n` cells, all or nothing.
pub async fn cost_above_one(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    // 10 per minute: one cell every 6 s.
    let q = quota(10, secs(60), 10);
    let k = key("c:k");
    let d = store.gcra(&k, &cells(q, 4)).await.step("gcra cost 4")?;
    assert_allowed(&d, 6, "first cost 4");
    let d = store.gcra(&k, &cells(q, 4)).await.step("gcra cost 4")?;
    assert_allowed(&d, 2, "second cost 4");
    let d = store.gcra(&k, &cells(q, 4)).await.step("gcra cost 4")?;
    let retry = assert_denied(&d, "third cost 4 (2 left)");
    assert_about(retry, secs(12), &*clock, "retry_after for 2 missing cells");
    // The denial took nothing: the 2 cells left still serve a cost-2 request.
    let d = store.gcra(&k, &cells(q, 2)).await.step("gcra cost 2")?;
    assert_allowed(&d, 0, "cost 2 with 2 left");
    let d = store.gcra(&k, &cells(q, 1)).await.step("gcra cost 1")?;
    assert_denied(&d, "empty");
    Ok(())
}

/// The contract's GCRA, step by step against a model of it: admitted iff
/// `TAT + n·T − B·T ≤ now` (equality admits), `remaining = ⌊(now + B·T − TAT') / T⌋`,
/// `reset = TAT' − now` when admitted; `retry_after = TAT + n·T − B·T − now` and
/// `reset = TAT − now` when denied. Exact on an exact clock (off the cell grid too: a
/// `reset` rounded to whole emission intervals fails), within the tolerance on a real one.
pub async fn gcra_decisions_follow_the_formulas(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    // 4 per 4 s (T = 1 s), burst 3.
    let q = quota(4, secs(4), 3);
    let k = key("gf:k");
    // Any first call may open a connection: not on the clock of the case.
    store
        .ban_status(&key("gf:warm-up"), &super::ban_quota(1, secs(1), secs(1)))
        .await
        .step("a warm-up call")?;
    let tol = clock.tolerance();
    let mut model = Gcra {
        t: secs(1),
        burst: 3,
        tat: Duration::ZERO,
    };
    // (time since the first call, cost): the times sit half-way between cell boundaries, but
    // for the one at TAT + n·T − B·T exactly (just after it on a real clock).
    let steps = [
        (Duration::ZERO, 1),
        (Duration::ZERO, 2),
        (Duration::ZERO, 1),
        (ms(1_500), 2),
        (ms(1_500), 1),
        (secs(4) + tol, 3),
        (ms(6_500), 1),
        (ms(6_500), 2),
    ];
    let t0 = clock.now();
    for (i, (at, cost)) in steps.into_iter().enumerate() {
        advance_to(&*clock, t0.saturating_add(at)).await;
        let d = store.gcra(&k, &cells(q, cost)).await.step("gcra")?;
        let what = format!("step {i} (cost {cost} at {at:?})");
        let (allowed, remaining, reset, retry) = model.check(at, cost);
        assert_eq!(d.allowed, allowed, "{what}: admission in {d:?}");
        assert_eq!(d.limit, 4, "{what}: limit in {d:?}");
        assert_eq!(d.remaining, remaining, "{what}: remaining in {d:?}");
        assert_about(d.reset, reset, &*clock, &format!("{what}: reset"));
        match (d.retry_after, retry) {
            (Some(got), Some(expected)) => {
                assert_about(got, expected, &*clock, &format!("{what}: retry_after"));
            }
            (got, expected) => assert_eq!(got, expected, "{what}: retry_after"),
        }
    }
    Ok(())
}

/// The contract's GCRA for one key, times as offsets from the case's first call.
struct Gcra {
    t: Duration,
    burst: u32,
    tat: Duration,
}

impl Gcra {
    /// (allowed, remaining, reset, retry_after) of a charge of `n` at `now`.
    fn check(&mut self, now: Duration, n: u32) -> (bool, u32, Duration, Option<Duration>) {
        let tat = self.tat.max(now);
        let allow_at = (tat + self.t * n).saturating_sub(self.t * self.burst);
        if allow_at > now {
            return (false, 0, tat - now, Some(allow_at - now));
        }
        self.tat = tat + self.t * n;
        let left = (now + self.t * self.burst).saturating_sub(self.tat);
        let remaining = u32::try_from(left.as_nanos() / self.t.as_nanos()).unwrap_or(u32::MAX);
        (true, remaining, self.tat - now, None)
    }
}

/// The emission interval `T = period / limit` is never rounded down: with 3 per second
/// (`T` = 333 333 333.3… ns) and a burst of 1, a second request is denied at 333 333 333 ns
/// (on an exact clock; a tolerance before `T` on a real one), and admitted once `T` rounded
/// up to the millisecond has passed (a store keeping coarser time may round `T` up to its
/// unit, at most 1 ms). A store that truncated `T` to whole milliseconds (333 ms) — or to
/// whole nanoseconds — would admit more than the quota.
pub async fn emission_interval_is_never_rounded_down(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = one(quota(3, secs(1), 1));
    let k = key("er:k");
    let t0 = clock.now();
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_allowed(&d, 0, "the first request");
    // ⌈T⌉ = 333 333 334 ns; just before it is ⌊T⌋, still a third of a nanosecond short of T.
    let below = t0.saturating_add(Duration::from_nanos(333_333_334));
    advance_to(&*clock, just_before(&*clock, below)).await;
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_denied(&d, "before T (333.333… ms) has passed");
    advance_to(&*clock, just_after(&*clock, t0.saturating_add(ms(334)))).await;
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_allowed(&d, 0, "once ⌈T⌉ (334 ms) has passed");
    let d = store.gcra(&k, &q).await.step("gcra")?;
    assert_denied(&d, "right after");
    Ok(())
}

/// Exhausting one key leaves the others untouched.
pub async fn distinct_keys_are_independent(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, .. } = env;
    let q = one(quota(2, secs(3600), 2));
    for _ in 0..2 {
        store.gcra(&key("d:a"), &q).await.step("gcra a")?;
    }
    let d = store.gcra(&key("d:a"), &q).await.step("gcra a")?;
    assert_denied(&d, "a exhausted");
    let d = store.gcra(&key("d:b"), &q).await.step("gcra b")?;
    assert_allowed(&d, 1, "b untouched");
    // Keys that merely share a prefix or differ in case are distinct too.
    let d = store.gcra(&key("d:a:"), &q).await.step("gcra a:")?;
    assert_allowed(&d, 1, "prefix of another key");
    let d = store.gcra(&key("D:A"), &q).await.step("gcra A")?;
    assert_allowed(&d, 1, "case differs");
    // The same key under another quota is another limit's state; it is not mixed in here.
    Ok(())
}

/// 64 tasks hammering one key with a limit of 300 admit exactly 300.
pub async fn no_over_admission_under_concurrency(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, .. } = env;
    // 300 per hour: one cell every 12 s, far longer than the hammering takes.
    let q = one(quota(300, secs(3600), 300));
    let admitted = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = Arc::clone(&store);
        let admitted = Arc::clone(&admitted);
        tasks.push(tokio::spawn(async move {
            for _ in 0..8 {
                let d = store.gcra(&key("cc:k"), &q).await?;
                if d.allowed {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), tokenward_core::StoreError>(())
        }));
    }
    for task in tasks {
        joined(task).await?.step("concurrent gcra")?;
    }
    assert_eq!(
        admitted.load(Ordering::Relaxed),
        300,
        "64 × 8 requests, limit 300"
    );
    Ok(())
}
