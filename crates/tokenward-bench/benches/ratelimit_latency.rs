//! Latency percentiles of `RateLimitStore::gcra` under concurrency, and the Redis round trips
//! per call: the in-memory store and the Redis store (default pool of 8 connections), each at
//! 1 and 64 concurrent tasks.
//!
//! As in `revocation_latency`: every configuration runs a warm-up of [`WARMUP`] calls, then
//! [`CALLS`] timed calls split evenly over the tasks, which all start together and each run a
//! closed loop: time one `gcra`, record it, `yield_now` (untimed), next. A multi-thread Tokio
//! runtime with 2 workers (the machine has 2 cores, which Redis shares). Percentiles are
//! nearest-rank. The calls cycle through [`KEYS`] subject keys with a realistic per-subject
//! quota (300 per minute, burst 300): each key gets at most 3 of the 22 000 calls, so every
//! call must be admitted (the admit path, with the key's state present: its TTL is 200 ms).
//!
//! Round trips: `INFO commandstats` before and after the timed calls; the deltas of
//! `EVALSHA`, `EVAL`, `SCRIPT` and of all commands (minus the one `INFO` of the first
//! reading) per call. Other clients of a shared server add to the total; `EVALSHA` of other
//! clients too. CPU per call: this process (`/proc/self/task/*/schedstat`) and the Redis
//! server (`INFO cpu`).
//!
//! Redis: `REDIS_URL` or `redis://127.0.0.1:6379` (fails with instructions if unreachable),
//! under a fresh key prefix, deleted at the end (`SCAN MATCH` + `UNLINK` of that prefix only).
//!
//! `cargo bench -p tokenward-bench --bench ratelimit_latency`; results in `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokenward_bench::harness::{
    BoxError, command_calls, connect_redis, exit_code, finish, process_cpu, redis_cpu, runtime,
};
use tokenward_bench::latency::{
    LATENCY_COLUMNS, LatencySummary, Timings, closed_loops, micros, task_calls,
};
use tokenward_bench::revocation::token_id;
use tokenward_ratelimit::{GcraCharge, GcraQuota, LimitKey, MemoryRateLimitStore, RateLimitStore};
use tokenward_redis::{RedisConfig, RedisRateLimitStore};
use tokenward_testsupport::unique_prefix;

/// Timed calls per configuration.
const CALLS: usize = 20_000;
/// Untimed calls before them.
const WARMUP: usize = 2_000;
/// Concurrent tasks of each configuration.
const CONCURRENCY: [usize; 2] = [1, 64];
/// Distinct keys the calls cycle through.
const KEYS: usize = 10_000;
/// A per-subject quota; admits everything the benchmark sends (≤ 3 calls per key).
const QUOTA: GcraCharge = GcraCharge::single(GcraQuota::per_minute(
    std::num::NonZeroU32::new(300).unwrap(),
));

/// Command counts of `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default)]
struct Commands {
    evalsha: u64,
    eval: u64,
    script: u64,
    total: u64,
}

impl Commands {
    fn from_calls(calls: &BTreeMap<String, u64>) -> Commands {
        let mut c = Commands::default();
        for (command, &n) in calls {
            c.total += n;
            match command.as_str() {
                "evalsha" => c.evalsha += n,
                "eval" => c.eval += n,
                "script" => c.script += n,
                sub if sub.starts_with("script|") => c.script += n,
                _ => {}
            }
        }
        c
    }
}

async fn commands(conn: &mut MultiplexedConnection) -> Result<Commands, BoxError> {
    Ok(Commands::from_calls(&command_calls(conn).await?))
}

/// Runs `total` calls over `tasks` tasks started together; every call's latency and the
/// errors (a denied call is an error: the quota admits everything).
async fn run_tasks(
    store: &Arc<dyn RateLimitStore>,
    keys: &Arc<Vec<LimitKey<'static>>>,
    tasks: usize,
    total: usize,
    first: usize,
) -> Result<Timings, BoxError> {
    Ok(closed_loops(0..tasks, |task| {
        let (store, keys) = (Arc::clone(store), Arc::clone(keys));
        async move {
            let mut t = Timings::with_capacity(total / tasks + 1);
            for i in task_calls(task, tasks, total).map(|i| first + i) {
                let Some(key) = keys.get(i % keys.len()) else {
                    t.errors.push("no keys".to_owned());
                    break;
                };
                if let Some(d) = t.time(store.gcra(key, &QUOTA)).await
                    && !d.allowed
                {
                    t.errors.push(format!("denied: {d:?}"));
                }
            }
            t
        }
    })
    .await?)
}

fn per_call(d: Duration, calls: usize) -> String {
    micros(d.div_f64(calls as f64))
}

/// Measures one configuration and prints its table row (and its first error, if any).
async fn measure(
    name: &str,
    store: Arc<dyn RateLimitStore>,
    keys: &Arc<Vec<LimitKey<'static>>>,
    tasks: usize,
    mut redis: Option<&mut MultiplexedConnection>,
) -> Result<usize, BoxError> {
    run_tasks(&store, keys, tasks, WARMUP, 0).await?;
    let (cpu_before, cmd_before) = match redis.as_deref_mut() {
        Some(conn) => (Some(redis_cpu(conn).await?), Some(commands(conn).await?)),
        None => (None, None),
    };
    let client_before = process_cpu()?;
    let start = Instant::now();
    let Timings {
        mut samples,
        errors,
    } = run_tasks(&store, keys, tasks, CALLS, WARMUP).await?;
    let wall = start.elapsed();
    let client_cpu = process_cpu()?.saturating_sub(client_before);
    let (server_cpu, cmds) = match (redis, cpu_before, cmd_before) {
        (Some(conn), Some(cpu), Some(cmd)) => {
            // commandstats first: the INFO cpu above is then in `after`, not the reading.
            let after = commands(conn).await?;
            let cpu = redis_cpu(conn).await?.saturating_sub(cpu);
            let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / CALLS as f64;
            (
                per_call(cpu, CALLS),
                format!(
                    "{:.3} | {:.3} | {:.3} | {:.3}",
                    d(after.evalsha, cmd.evalsha),
                    d(after.eval, cmd.eval),
                    d(after.script, cmd.script),
                    // minus the INFO commandstats of the first reading and the INFO cpu
                    d(after.total, cmd.total + 2),
                ),
            )
        }
        _ => ("–".to_owned(), "– | – | – | –".to_owned()),
    };
    let s = LatencySummary::from_samples(&mut samples).ok_or("no samples")?;
    println!(
        "| {name} | {tasks} | {} | {:.0} | {} | {server_cpu} | {cmds} | {} |",
        s.micros_cells(),
        s.count as f64 / wall.as_secs_f64(),
        per_call(client_cpu, s.count),
        errors.len(),
    );
    if let Some(e) = errors.first() {
        println!("{name} × {tasks}: {} errors, the first: {e}", errors.len());
    }
    Ok(errors.len())
}

/// The Redis part, under `prefix`; the caller deletes the prefix whatever happens.
async fn redis_runs(
    url: &str,
    prefix: &str,
    conn: &mut MultiplexedConnection,
    keys: &Arc<Vec<LimitKey<'static>>>,
) -> Result<usize, BoxError> {
    let store: Arc<dyn RateLimitStore> = Arc::new(RedisRateLimitStore::connect(
        &RedisConfig::new(url).key_prefix(prefix),
    )?);
    let name = format!("redis, pool_size {}", RedisConfig::DEFAULT_POOL_SIZE);
    let mut errors = 0;
    for tasks in CONCURRENCY {
        errors += measure(&name, Arc::clone(&store), keys, tasks, Some(&mut *conn)).await?;
    }
    Ok(errors)
}

fn main() -> std::process::ExitCode {
    exit_code(run())
}

fn run() -> Result<(), BoxError> {
    runtime(Some(2))?.block_on(async {
        let (url, mut conn) = connect_redis(&format!(
            "{CALLS} calls per configuration after {WARMUP} warm-up"
        ))
        .await?;
        let keys: Arc<Vec<LimitKey<'static>>> = Arc::new(
            (0..KEYS as u64)
                .map(|n| LimitKey::new(format!("subject:{}", token_id(n))))
                .collect::<Result<_, _>>()?,
        );
        println!(
            "\n| store | tasks | {LATENCY_COLUMNS} | calls/s | client CPU µs/call | Redis CPU \
             µs/call | EVALSHA/call | EVAL/call | SCRIPT/call | all commands/call | errors |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let memory: Arc<dyn RateLimitStore> = Arc::new(MemoryRateLimitStore::new());
        let mut errors = 0;
        for tasks in CONCURRENCY {
            errors += measure("memory", Arc::clone(&memory), &keys, tasks, None).await?;
        }
        let prefix = unique_prefix("bench-ratelimit");
        let result = redis_runs(&url, &prefix, &mut conn, &keys).await;
        finish(&mut conn, &prefix).await;
        errors += result?;
        if errors > 0 {
            return Err(format!("{errors} calls failed or were denied").into());
        }
        Ok(())
    })
}
