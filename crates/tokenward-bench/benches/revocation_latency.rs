//! Latency percentiles of `RevocationStore::check` under concurrency, which criterion does not
//! give: the in-memory store, and the Redis store with connection pools of 8 (the default), 1
//! and 64, each at 1, 8 and 64 concurrent tasks; plus the floor under the Redis store: the
//! same three pipelined `GET`s sent with redis-rs directly, all tasks sharing one multiplexed
//! connection.
//!
//! Every configuration runs a warm-up of [`WARMUP`] checks, then [`CHECKS`] timed checks of
//! *active* tokens (no rule matches — the common case; the Redis store answers any check
//! with one pipelined round trip of three `GET`s either way), split evenly over the tasks,
//! which all start together and each run a closed loop: time one `check`, record it,
//! `yield_now` (outside the timed part, so that tasks interleave as a server's requests do),
//! next. A multi-thread Tokio runtime with 2 workers (the machine has 2 cores, which Redis
//! shares). Latencies are sorted; percentiles are nearest-rank. CPU per check: this process
//! (all threads, `/proc/self/task/*/schedstat`) and the Redis server (`INFO cpu`, user + sys;
//! includes other clients of a shared server).
//!
//! Redis: `REDIS_URL` or `redis://127.0.0.1:6379` (fails with instructions if unreachable),
//! under a fresh key prefix holding 10 000 revocations, deleted at the end (`SCAN MATCH` +
//! `UNLINK` of that prefix only).
//!
//! `cargo bench -p tokenward-bench --bench revocation_latency [-- FILTER]`, where `FILTER`
//! selects the configurations whose "name × tasks" contains it (`-- "pool_size 8 × 64"`),
//! and `REVOCATION_LATENCY_CHECKS=N` replaces the 20 000 timed checks (for profiling);
//! results in `docs/benchmarks.md`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokenward_bench::harness::{
    BoxError, connect_redis, exit_code, finish, process_cpu, redis_cpu, runtime, selected,
};
use tokenward_bench::latency::{
    LATENCY_COLUMNS, LatencySummary, Timings, closed_loops, micros, task_calls,
};
use tokenward_bench::revocation::{Population, T0, TokenIds};
use tokenward_core::{Clock, ManualClock, SystemClock};
use tokenward_redis::{RedisConfig, RedisRevocationStore};
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore};
use tokenward_testsupport::unique_prefix;

/// Timed checks per configuration, unless `REVOCATION_LATENCY_CHECKS` says otherwise (more
/// make the timed part dominate a profile).
const CHECKS: usize = 20_000;

fn checks() -> usize {
    std::env::var("REVOCATION_LATENCY_CHECKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CHECKS)
}
/// Untimed checks before them.
const WARMUP: usize = 2_000;
/// Concurrent tasks of each configuration.
const CONCURRENCY: [usize; 3] = [1, 8, 64];
/// Distinct active tokens the checks cycle through.
const TOKENS: usize = 4096;
/// Live revocations in the in-memory store (as in the criterion benchmark).
const MEMORY_LIVE: usize = 100_000;
/// Live revocations under the Redis prefix.
const REDIS_LIVE: usize = 10_000;
/// Connection pool sizes of the Redis store: the default, a single connection, and one
/// connection per task at the highest concurrency.
const POOL_SIZES: [usize; 3] = [RedisConfig::DEFAULT_POOL_SIZE, 1, 64];

/// The name of the in-memory configurations.
const MEMORY: &str = "memory (100 000 live)";
/// The name of the redis-rs floor.
const RAW: &str = "raw redis-rs pipeline, 1 connection";

/// One operation to time: call number `i`.
trait Probe: Send + Sync + 'static {
    fn call(&self, i: usize) -> impl Future<Output = Result<(), String>> + Send;
}

/// `store.check` of active tokens, which must come back `Active`.
struct Check<S> {
    store: S,
    tokens: Vec<TokenIds>,
}

impl<S: RevocationStore> Probe for Check<S> {
    async fn call(&self, i: usize) -> Result<(), String> {
        let token = self.tokens.get(i % self.tokens.len()).ok_or("no tokens")?;
        let token = token.token_ref().map_err(|e| e.to_string())?;
        match self.store.check(&token).await {
            Ok(RevocationStatus::Active) => Ok(()),
            Ok(other) => Err(format!("active token answered {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The Redis store's `check` without the store: the same three `GET`s in one pipeline, with
/// redis-rs on one shared multiplexed connection.
struct RawPipeline {
    conn: MultiplexedConnection,
    keys: Vec<[String; 3]>,
}

impl Probe for RawPipeline {
    async fn call(&self, i: usize) -> Result<(), String> {
        let keys = self.keys.get(i % self.keys.len()).ok_or("no keys")?;
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("GET").arg(key);
        }
        let mut conn = self.conn.clone();
        let values: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if values.iter().all(|v| matches!(v, Value::Nil)) {
            Ok(())
        } else {
            Err(format!("active token's keys answered {values:?}"))
        }
    }
}

/// One configuration's figures.
struct Run {
    name: String,
    tasks: usize,
    summary: LatencySummary,
    wall: Duration,
    errors: usize,
    first_error: Option<String>,
    client_cpu: Duration,
    redis_cpu: Option<Duration>,
}

/// Runs `total` calls of `probe` over `tasks` tasks started together; returns every call's
/// latency and the errors.
async fn run_tasks<P: Probe>(
    probe: &Arc<P>,
    tasks: usize,
    total: usize,
    first: usize,
) -> Result<Timings, BoxError> {
    Ok(closed_loops(0..tasks, |task| {
        let probe = Arc::clone(probe);
        async move {
            let mut t = Timings::with_capacity(total / tasks + 1);
            for i in task_calls(task, tasks, total) {
                t.time(probe.call(first + i)).await;
            }
            t
        }
    })
    .await?)
}

async fn measure<P: Probe>(
    runs: &mut Vec<Run>,
    name: &str,
    probe: P,
    tasks: usize,
    mut redis: Option<&mut MultiplexedConnection>,
) -> Result<(), BoxError> {
    if !selected(name, tasks) {
        return Ok(());
    }
    let probe = Arc::new(probe);
    run_tasks(&probe, tasks, WARMUP, 0).await?;
    let redis_before = match redis.as_deref_mut() {
        Some(conn) => Some(redis_cpu(conn).await?),
        None => None,
    };
    let cpu_before = process_cpu()?;
    let start = Instant::now();
    let Timings {
        mut samples,
        errors,
    } = run_tasks(&probe, tasks, checks(), WARMUP).await?;
    let wall = start.elapsed();
    let client_cpu = process_cpu()?.saturating_sub(cpu_before);
    let redis_cpu = match (redis, redis_before) {
        (Some(conn), Some(before)) => Some(redis_cpu(conn).await?.saturating_sub(before)),
        _ => None,
    };
    let summary = LatencySummary::from_samples(&mut samples).ok_or("no samples")?;
    runs.push(Run {
        name: name.to_owned(),
        tasks,
        summary,
        wall,
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        client_cpu,
        redis_cpu,
    });
    Ok(())
}

fn per_check(d: Duration, checks: usize) -> String {
    micros(d.div_f64(checks as f64))
}

fn print_table(runs: &[Run]) {
    println!(
        "\n| store | tasks | {LATENCY_COLUMNS} | checks/s | client CPU µs/check | Redis CPU \
         µs/check | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let s = &r.summary;
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            r.name,
            r.tasks,
            s.micros_cells(),
            s.count as f64 / r.wall.as_secs_f64(),
            per_check(r.client_cpu, s.count),
            r.redis_cpu
                .map_or_else(|| "–".to_owned(), |cpu| per_check(cpu, s.count)),
            r.errors,
        );
    }
    for r in runs {
        if let Some(e) = &r.first_error {
            println!(
                "{} × {}: {} errors, the first: {e}",
                r.name, r.tasks, r.errors
            );
        }
    }
}

/// The Redis part, under `prefix`; the caller deletes the prefix whatever happens.
async fn redis_runs(
    url: &str,
    prefix: &str,
    conn: &mut MultiplexedConnection,
    tokens: &[TokenIds],
    runs: &mut Vec<Run>,
) -> Result<(), BoxError> {
    let store = RedisRevocationStore::connect(&RedisConfig::new(url).key_prefix(prefix))?;
    let now = SystemClock.now();
    Population::new(REDIS_LIVE).revoke_into(&store, now).await?;
    let keys: Vec<[String; 3]> = tokens
        .iter()
        .map(|t| {
            [
                store.token_key(&t.jti),
                store.session_key(&t.sid),
                store.subject_key(&t.sub),
            ]
        })
        .collect();
    for pool_size in POOL_SIZES {
        let store = RedisRevocationStore::connect(
            &RedisConfig::new(url)
                .key_prefix(prefix)
                .pool_size(pool_size),
        )?;
        let name = format!("redis, pool_size {pool_size}");
        for tasks in CONCURRENCY {
            let probe = Check {
                store: store.clone(),
                tokens: tokens.to_vec(),
            };
            measure(runs, &name, probe, tasks, Some(&mut *conn)).await?;
        }
    }
    for tasks in CONCURRENCY {
        let probe = RawPipeline {
            conn: conn.clone(),
            keys: keys.clone(),
        };
        measure(runs, RAW, probe, tasks, Some(&mut *conn)).await?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit_code(run())
}

fn run() -> Result<(), BoxError> {
    runtime(Some(2))?.block_on(async {
        let (url, mut conn) = connect_redis(&format!(
            "{} checks per configuration after {WARMUP} warm-up",
            checks()
        ))
        .await?;

        let population = Population::new(MEMORY_LIVE);
        let tokens: Vec<TokenIds> = (0..TOKENS as u64)
            .map(|n| population.active_token(n, T0))
            .collect();
        let mut runs = Vec::new();

        if CONCURRENCY.iter().any(|&tasks| selected(MEMORY, tasks)) {
            let clock = ManualClock::new(T0);
            let memory = Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock)));
            population.revoke_into(&*memory, T0).await?;
            for tasks in CONCURRENCY {
                let probe = Check {
                    store: Arc::clone(&memory),
                    tokens: tokens.clone(),
                };
                measure(&mut runs, MEMORY, probe, tasks, None).await?;
            }
        }

        // Redis tokens are checked against the real clock: issue them now.
        let now = SystemClock.now();
        let redis_tokens: Vec<TokenIds> = tokens
            .iter()
            .map(|t| TokenIds {
                iat: now,
                ..t.clone()
            })
            .collect();
        let prefix = unique_prefix("bench-latency");
        let result = redis_runs(&url, &prefix, &mut conn, &redis_tokens, &mut runs).await;
        print_table(&runs);
        finish(&mut conn, &prefix).await;
        result
    })
}
