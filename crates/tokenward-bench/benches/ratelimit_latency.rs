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

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokenward_bench::revocation::{
    LatencySummary, connect_redis, delete_prefix, info_field, redis_url, token_id, unique_prefix,
};
use tokenward_ratelimit::{GcraCharge, GcraQuota, LimitKey, MemoryRateLimitStore, RateLimitStore};
use tokenward_redis::{RedisConfig, RedisRateLimitStore};

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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command counts of `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default)]
struct Commands {
    evalsha: u64,
    eval: u64,
    script: u64,
    total: u64,
}

async fn commands(conn: &mut MultiplexedConnection) -> Result<Commands, BoxError> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut c = Commands::default();
    for line in info.lines() {
        // cmdstat_evalsha:calls=12,usec=...
        let Some((name, stats)) = line.trim_end().split_once(':') else {
            continue;
        };
        let Some(name) = name.strip_prefix("cmdstat_") else {
            continue;
        };
        let calls = stats
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .ok_or("commandstats line without calls=")?
            .parse::<u64>()?;
        c.total += calls;
        match name {
            "evalsha" => c.evalsha += calls,
            "eval" => c.eval += calls,
            n if n == "script" || n.starts_with("script|") => c.script += calls,
            _ => {}
        }
    }
    Ok(c)
}

/// CPU time used so far by this process, all threads (`/proc/self/task/*/schedstat`, ns).
fn process_cpu() -> Result<Duration, BoxError> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        let on_cpu = stat.split_whitespace().next().ok_or("empty schedstat")?;
        nanos += on_cpu.parse::<u64>()?;
    }
    Ok(Duration::from_nanos(nanos))
}

/// CPU time used so far by the Redis server (`INFO cpu`, user + sys).
async fn redis_cpu(conn: &mut MultiplexedConnection) -> Result<Duration, BoxError> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let user = info_field(&info, "used_cpu_user").ok_or("no used_cpu_user")?;
    let sys = info_field(&info, "used_cpu_sys").ok_or("no used_cpu_sys")?;
    Ok(Duration::from_secs_f64(user + sys))
}

/// Runs `total` calls over `tasks` tasks started together; every call's latency and the
/// errors (a denied call is an error: the quota admits everything).
async fn run_tasks(
    store: &Arc<dyn RateLimitStore>,
    keys: &Arc<Vec<LimitKey<'static>>>,
    tasks: usize,
    total: usize,
    first: usize,
) -> Result<(Vec<Duration>, Vec<String>), BoxError> {
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (store, keys, barrier) =
                (Arc::clone(store), Arc::clone(keys), Arc::clone(&barrier));
            let calls = (task..total).step_by(tasks).map(move |i| first + i);
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(total / tasks + 1);
                let mut errors = Vec::new();
                barrier.wait().await;
                for i in calls {
                    let Some(key) = keys.get(i % keys.len()) else {
                        errors.push("no keys".to_owned());
                        break;
                    };
                    let start = Instant::now();
                    let result = store.gcra(key, &QUOTA).await;
                    samples.push(start.elapsed());
                    match result {
                        Ok(d) if d.allowed => {}
                        Ok(d) => errors.push(format!("denied: {d:?}")),
                        Err(e) => errors.push(e.to_string()),
                    }
                    tokio::task::yield_now().await;
                }
                (samples, errors)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for handle in handles {
        let (s, e) = handle.await?;
        samples.extend(s);
        errors.extend(e);
    }
    Ok((samples, errors))
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn per_call(d: Duration, calls: usize) -> String {
    us(d.div_f64(calls as f64))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
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
    let (mut samples, errors) = run_tasks(&store, keys, tasks, CALLS, WARMUP).await?;
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
        "| {name} | {tasks} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {server_cpu} | {cmds} | {} |",
        us(s.p50),
        us(s.p90),
        us(s.p99),
        us(s.p999),
        us(s.max),
        us(s.mean),
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
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let url = redis_url();
        // Fail before measuring anything if Redis is not there.
        let mut conn = connect_redis(&url).await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        println!(
            "redis {} at {}; {CALLS} calls per configuration after {WARMUP} warm-up; \
             load average {}",
            info.lines()
                .find_map(|l| l.trim_end().strip_prefix("redis_version:"))
                .unwrap_or("?"),
            RedisConfig::new(url.as_str()).redacted_url(),
            loadavg()
        );
        let keys: Arc<Vec<LimitKey<'static>>> = Arc::new(
            (0..KEYS as u64)
                .map(|n| LimitKey::new(format!("subject:{}", token_id(n))))
                .collect::<Result<_, _>>()?,
        );
        println!(
            "\n| store | tasks | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | mean µs | \
             calls/s | client CPU µs/call | Redis CPU µs/call | EVALSHA/call | EVAL/call | \
             SCRIPT/call | all commands/call | errors |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let memory: Arc<dyn RateLimitStore> = Arc::new(MemoryRateLimitStore::new());
        let mut errors = 0;
        for tasks in CONCURRENCY {
            errors += measure("memory", Arc::clone(&memory), &keys, tasks, None).await?;
        }
        let prefix = unique_prefix("ratelimit");
        let result = redis_runs(&url, &prefix, &mut conn, &keys).await;
        let deleted = delete_prefix(&mut conn, &prefix).await;
        println!("\nload average at the end {}", loadavg());
        match deleted {
            Ok(n) => println!("deleted {n} keys under {prefix}"),
            Err(e) => eprintln!("could not delete the keys under {prefix}: {e}"),
        }
        errors += result?;
        if errors > 0 {
            return Err(format!("{errors} calls failed or were denied").into());
        }
        Ok(())
    })
}
