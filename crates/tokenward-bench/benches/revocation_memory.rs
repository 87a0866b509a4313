//! Memory per live revocation, and whether it goes away at expiry.
//!
//! **In-memory store.** The heap is measured exactly with `stats_alloc`'s counting wrapper of
//! the system allocator (bytes requested from the allocator, live = allocated − freed; no
//! unsafe code of ours), and coarsely with the resident set size (`VmRSS` of
//! `/proc/self/status`: includes malloc's per-block overhead, but glibc keeps freed memory for
//! reuse rather than returning all of it to the OS). Two cycles of: fill with 1 000 000 token
//! revocations (22-character `jti`s, each until a pseudo-random point of the next 15 minutes),
//! move the `ManualClock` past every expiry, then one revoke per shard (each revoke sweeps its
//! own shard and the next in turn) and `purge_expired`. The second cycle shows whether
//! anything accumulates.
//!
//! **Redis store.** 100 000 token revocations through `RedisRevocationStore` under a fresh
//! short key prefix: `MEMORY USAGE` of sample keys, and the `used_memory` delta of
//! `INFO memory` (which also counts the expiry index; other clients of a shared server move
//! it too). Then the prefix is deleted (`SCAN MATCH` + `UNLINK`) and `used_memory` is read
//! again. `REDIS_URL` or `redis://127.0.0.1:6379`; fails with instructions if unreachable.
//!
//! `cargo bench -p tokenward-bench --bench revocation_memory`; results in `docs/benchmarks.md`.

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokenward_bench::harness::{BoxError, connect_redis, exit_code, info};
use tokenward_bench::memory::{Heap, mib, rss};
use tokenward_bench::revocation::{T0, TOKEN_LIFETIME, token_id};
use tokenward_core::{Clock, ManualClock, StoreId, SystemClock, UnixTime};
use tokenward_redis::{RedisConfig, RedisRevocationStore};
use tokenward_revocation::{MemoryRevocationConfig, MemoryRevocationStore, RevocationStore};
use tokenward_testsupport::{delete_prefix, keys_under};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Token revocations in the in-memory store.
const MEMORY_ENTRIES: u64 = 1_000_000;
/// Token revocations under the Redis prefix.
const REDIS_ENTRIES: u64 = 100_000;
/// Concurrent revokes while filling Redis.
const REDIS_FILL_TASKS: u64 = 16;
/// Keys whose `MEMORY USAGE` is read.
const REDIS_SAMPLES: u64 = 1_000;

fn heap() -> Heap {
    Heap::live(GLOBAL)
}

/// One row of the in-memory table, relative to the baseline.
struct Row {
    stage: String,
    stored: usize,
    live: usize,
    heap: Heap,
    rss: usize,
}

fn row(stage: &str, store: &MemoryRevocationStore) -> Result<Row, BoxError> {
    Ok(Row {
        stage: stage.to_owned(),
        stored: store.stored(),
        live: store.len(),
        heap: heap(),
        rss: rss()?,
    })
}

/// The `until` of revocation `n`: its token's `exp`, somewhere in the 15 minutes after `now`.
fn until_of(n: u64, now: UnixTime) -> UnixTime {
    now.saturating_add(Duration::from_secs(60 + n.wrapping_mul(7919) % 840))
}

async fn memory_store() -> Result<(), BoxError> {
    let clock = ManualClock::new(T0);
    let shards = MemoryRevocationConfig::DEFAULT_SHARDS;
    // Room for the million and the sweeping writes (the default capacity is exactly 1 M).
    let store = MemoryRevocationStore::with_config(
        MemoryRevocationConfig::new()
            .capacity(2 * MEMORY_ENTRIES as usize)
            .clock(Arc::new(clock.clone())),
    )?;
    let mut rows = vec![row("baseline: empty store", &store)?];
    let mut sweep_id = 0;
    for cycle in 1..=2 {
        let now = clock.now();
        for n in 0..MEMORY_ENTRIES {
            store
                .revoke_token(
                    &StoreId::new(token_id(n + cycle * (1 << 32)))?,
                    until_of(n, now),
                )
                .await?;
        }
        rows.push(row(&format!("cycle {cycle}: 1 000 000 live"), &store)?);
        // Past every `until` of this cycle: nothing matches any more, nothing was freed yet.
        clock.advance(TOKEN_LIFETIME);
        rows.push(row(
            &format!("cycle {cycle}: all expired, no write yet"),
            &store,
        )?);
        // One write per shard: each sweeps its own shard and the next one in turn. (An
        // `until` already past is a no-op that sweeps nothing: these live for a second.)
        for _ in 0..shards {
            sweep_id += 1;
            store
                .revoke_token(
                    &StoreId::new(token_id(1 << 60 | sweep_id))?,
                    clock.now().saturating_add(Duration::from_secs(1)),
                )
                .await?;
        }
        rows.push(row(
            &format!("cycle {cycle}: after {shards} writes"),
            &store,
        )?);
        clock.advance(Duration::from_secs(1));
        let purged = store.purge_expired();
        rows.push(row(
            &format!("cycle {cycle}: purge_expired() (dropped {purged})"),
            &store,
        )?);
    }
    let base = rows.first().map(|r| (r.heap, r.rss)).ok_or("no rows")?;
    println!("\nIn-memory store ({shards} shards), relative to the empty store:\n");
    println!("| stage | stored | live | heap MiB | heap blocks | RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.stage,
            r.stored,
            r.live,
            mib(r.heap.bytes as f64 - base.0.bytes as f64),
            r.heap.blocks as i64 - base.0.blocks as i64,
            mib(r.rss as f64 - base.1 as f64),
        );
    }
    if let Some(full) = rows.get(1) {
        let n = MEMORY_ENTRIES as f64;
        println!(
            "\nper live entry at 1 000 000: {:.1} bytes of heap in {:.2} blocks; RSS {:.1} bytes",
            (full.heap.bytes - base.0.bytes) as f64 / n,
            (full.heap.blocks - base.0.blocks) as f64 / n,
            (full.rss as f64 - base.1 as f64) / n,
        );
    }
    drop(store);
    let after = heap();
    println!(
        "after dropping the store: heap {:+} bytes, {:+} blocks relative to the empty store",
        after.bytes as i64 - base.0.bytes as i64,
        after.blocks as i64 - base.0.blocks as i64
    );
    Ok(())
}

async fn used_memory(conn: &mut MultiplexedConnection) -> Result<f64, BoxError> {
    let memory = info(conn, "memory").await?;
    Ok(memory
        .get("used_memory")
        .ok_or("no used_memory in INFO memory")?)
}

/// The Redis part, under `prefix`; the caller deletes the prefix whatever happens.
async fn redis_fill(
    url: &str,
    prefix: &str,
    conn: &mut MultiplexedConnection,
) -> Result<(), BoxError> {
    if !keys_under(conn, prefix).await?.is_empty() {
        return Err(format!("keys under {prefix} exist already").into());
    }
    let store = RedisRevocationStore::connect(&RedisConfig::new(url).key_prefix(prefix))?;
    // Open every pooled connection before the baseline (each costs Redis some memory).
    let mut pings = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let store = store.clone();
        pings.spawn(async move { store.backend().ping().await });
    }
    while let Some(ping) = pings.join_next().await {
        ping??;
    }
    let before = used_memory(conn).await?;

    let until = SystemClock.now().saturating_add(Duration::from_secs(3600));
    let mut fill = tokio::task::JoinSet::new();
    for task in 0..REDIS_FILL_TASKS {
        let store = store.clone();
        fill.spawn(async move {
            for n in (task..REDIS_ENTRIES).step_by(REDIS_FILL_TASKS as usize) {
                store
                    .revoke_token(&StoreId::new(token_id(n))?, until)
                    .await?;
            }
            Ok::<_, tokenward_core::StoreError>(())
        });
    }
    while let Some(task) = fill.join_next().await {
        task??;
    }
    let after = used_memory(conn).await?;
    let keys = keys_under(conn, prefix).await?.len();

    let mut usage = Vec::new();
    let mut ttl_ok = 0;
    for n in (0..REDIS_ENTRIES).step_by((REDIS_ENTRIES / REDIS_SAMPLES) as usize) {
        let key = store.token_key(&token_id(n));
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(conn)
            .await?;
        usage.push(bytes);
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(conn).await?;
        if pttl > 0 {
            ttl_ok += 1;
        }
    }
    let sample_key = store.token_key(&token_id(0));
    let mean = usage.iter().sum::<u64>() as f64 / usage.len().max(1) as f64;
    println!(
        "\nRedis store: {REDIS_ENTRIES} token revocations under {prefix:?} \
         (key {:?}, {} bytes; value = until in ms, 13 digits):\n",
        sample_key,
        sample_key.len()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| keys under the prefix | {keys} |");
    println!(
        "| `MEMORY USAGE` per key ({} samples) | mean {mean:.1} B, min {} B, max {} B |",
        usage.len(),
        usage.iter().min().copied().unwrap_or_default(),
        usage.iter().max().copied().unwrap_or_default()
    );
    println!(
        "| sampled keys with a TTL (`PTTL` > 0) | {ttl_ok} of {} |",
        usage.len()
    );
    println!(
        "| `used_memory` before → after | {} → {} MiB |",
        mib(before),
        mib(after)
    );
    println!(
        "| `used_memory` delta per revocation | {:.1} B |",
        (after - before) / REDIS_ENTRIES as f64
    );
    let deleted = delete_prefix(conn, prefix).await?;
    // Give the server's cron a moment to resize its now sparse hash tables.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cleaned = used_memory(conn).await?;
    println!(
        "| after deleting the {deleted} keys (+3 s) | {} MiB ({:+.1} KiB vs before) |",
        mib(cleaned),
        (cleaned - before) / 1024.0
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit_code(run())
}

fn run() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (url, mut conn) =
            connect_redis("1 000 000 revocations in memory, 100 000 in Redis").await?;
        memory_store().await?;

        // A short prefix, like a production one (`tokenward:`), so that key sizes are
        // realistic; unique to this run.
        let nanos = SystemClock.now().as_duration().subsec_nanos();
        let prefix = format!("twm{:x}:", nanos ^ std::process::id());
        let result = redis_fill(&url, &prefix, &mut conn).await;
        match delete_prefix(&mut conn, &prefix).await {
            Ok(0) => {}
            Ok(n) => println!("deleted {n} remaining keys under {prefix}"),
            Err(e) => eprintln!("could not delete the keys under {prefix}: {e}"),
        }
        result
    })
}
