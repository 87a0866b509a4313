//! Memory of `MemoryRateLimitStore` under a flood of 1 000 000 distinct GCRA keys, and whether
//! it goes away once the keys are stale.
//!
//! The heap is measured exactly with `stats_alloc`'s counting wrapper of the system allocator
//! (live = allocated − freed), and coarsely with the resident set size (`VmRSS`), as in
//! `revocation_memory`. Two stores, each with a core `ManualClock` and the default
//! `prune_interval` (10 s):
//!
//! - **default cap** (`capacity` 1 000 000): the flood fits; this gives the cost per key;
//! - **cap 100 000**: the flood overflows; keys beyond the cap are refused with
//!   `CapacityExceeded` (the documented hard cap: nothing live is evicted).
//!
//! Each store goes through two cycles of: one `gcra` call (quota 300 per minute, cost 1) for
//! each of 1 000 000 new keys (`subject:` + a 22-character id, as a `SubjectLimit` builds
//! them); move the clock 61 s (past the quota's 60 s period, so every key's state equals a
//! fresh one); one more `gcra` call, which runs the periodic prune (`retain_recent` +
//! `shrink_to_fit`). The second cycle shows whether anything accumulates. The wall time of
//! each flood is printed too (ns per call, including the refused ones).
//!
//! `cargo bench -p tokenward-bench --bench ratelimit_memory`; results in `docs/benchmarks.md`.

use std::alloc::System;
use std::time::{Duration, Instant};

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokenward_bench::harness::{BoxError, exit_code};
use tokenward_bench::memory::{Heap, mib, rss};
use tokenward_bench::revocation::token_id;
use tokenward_core::{ManualClock, StoreError, UnixTime};
use tokenward_ratelimit::{
    GcraCharge, GcraQuota, LimitKey, LimiterClock, MemoryRateLimitConfig, MemoryRateLimitStore,
    RateLimitStore,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Distinct keys per flood.
const FLOOD: u64 = 1_000_000;
/// The smaller cap.
const SMALL_CAP: usize = 100_000;
/// The quota of every call.
const QUOTA: GcraCharge = GcraCharge::single(GcraQuota::per_minute(
    std::num::NonZeroU32::new(300).unwrap(),
));
/// Past the quota's period: every key's state is then indistinguishable from a fresh one.
const STALE: Duration = Duration::from_secs(61);

fn heap() -> Heap {
    Heap::live(GLOBAL)
}

struct Row {
    stage: String,
    tracked: usize,
    heap: Heap,
    rss: usize,
}

fn row(stage: String, store: &MemoryRateLimitStore) -> Result<Row, BoxError> {
    Ok(Row {
        stage,
        tracked: store.tracked_keys(),
        heap: heap(),
        rss: rss()?,
    })
}

/// Key number `n` of cycle `cycle`.
fn key(cycle: u64, n: u64) -> Result<LimitKey<'static>, BoxError> {
    Ok(LimitKey::new(format!(
        "subject:{}",
        token_id(n + cycle * (1 << 32))
    ))?)
}

async fn flood(name: &str, capacity: usize) -> Result<(), BoxError> {
    let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
    let store = MemoryRateLimitStore::with_config(
        MemoryRateLimitConfig::new()
            .capacity(capacity)
            .clock(LimiterClock::manual(&clock)),
    )?;
    let warm_up = LimitKey::new("subject:warm-up")?;
    // The store creates the quota's limiter (its governor state map) on first use: do that (with a
    // key that goes stale with the rest) before the baseline.
    store.gcra(&warm_up, &QUOTA).await?;
    let mut rows = vec![row(
        "baseline: store with its limiter, 1 key".to_owned(),
        &store,
    )?];
    for cycle in 1..=2 {
        let (mut admitted, mut refused) = (0u64, 0u64);
        let start = Instant::now();
        for n in 0..FLOOD {
            match store.gcra(&key(cycle, n)?, &QUOTA).await {
                Ok(d) if d.allowed => admitted += 1,
                Ok(d) => return Err(format!("a new key was denied: {d:?}").into()),
                Err(StoreError::CapacityExceeded { .. }) => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
        let took = start.elapsed();
        rows.push(row(
            format!(
                "cycle {cycle}: after 1 000 000 new keys ({admitted} admitted, {refused} refused)"
            ),
            &store,
        )?);
        println!(
            "{name}, cycle {cycle}: flood of {FLOOD} keys in {took:.2?} ({:.0} ns per call)",
            took.as_nanos() as f64 / FLOOD as f64
        );
        if admitted + refused != FLOOD {
            return Err("lost calls".into());
        }
        clock.advance(STALE);
        rows.push(row(format!("cycle {cycle}: +61 s, no call yet"), &store)?);
        // The first call after the prune interval prunes.
        store.gcra(&warm_up, &QUOTA).await?;
        rows.push(row(
            format!("cycle {cycle}: one call (periodic prune)"),
            &store,
        )?);
    }
    let base = rows.first().map(|r| (r.heap, r.rss)).ok_or("no rows")?;
    println!("\n{name} (capacity {capacity}), relative to the baseline:\n");
    println!("| stage | tracked keys | heap MiB | heap blocks | RSS MiB |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.stage,
            r.tracked,
            mib(r.heap.bytes as f64 - base.0.bytes as f64),
            r.heap.blocks as i64 - base.0.blocks as i64,
            mib(r.rss as f64 - base.1 as f64),
        );
    }
    if let Some(full) = rows.get(1) {
        let n = full.tracked.saturating_sub(1).max(1) as f64;
        println!(
            "\nper tracked key at {}: {:.1} bytes of heap in {:.2} blocks",
            full.tracked,
            (full.heap.bytes as f64 - base.0.bytes as f64) / n,
            (full.heap.blocks as f64 - base.0.blocks as f64) / n,
        );
    }
    let before_drop = heap();
    drop(store);
    let after = heap();
    println!(
        "after dropping the store: heap {:+} bytes ({:+} blocks) relative to the baseline; \
         the store itself held {} bytes at the end\n",
        after.bytes as i64 - base.0.bytes as i64,
        after.blocks as i64 - base.0.blocks as i64,
        before_drop.bytes.saturating_sub(after.bytes),
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit_code(run())
}

fn run() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async {
        flood("default cap", MemoryRateLimitConfig::DEFAULT_CAPACITY).await?;
        flood("cap 100 000", SMALL_CAP).await
    })
}
