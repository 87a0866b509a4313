//! Throughput and latency percentiles of `RefreshEngine::rotate` under concurrency, at 1 and
//! 64 concurrent tasks: the in-memory refresh store, and `RedisRefreshStore` (default pool of
//! 8 connections) with its Redis round trips per rotation. The revocation store is a
//! `MemoryRevocationStore` in both (the engine only uses it on reuse, which no scenario
//! triggers).
//!
//! Scenarios:
//! - **own family**: every task rotates its *own* family (one login per task, issued before
//!   the timed part) in a closed loop, presenting the successor it just got: every call must
//!   come back `RotationKind::Rotated` (the common case: the current token, rotated);
//! - **grace, one token**: one family, rotated once before the timed part; every task keeps
//!   presenting that *rotated* token (parallel refreshes on app resume): every call must come
//!   back `RotationKind::Grace` with the same successor. In memory the engine's clock is a
//!   `ManualClock` that does not move, so the 30 s grace window never closes during the run;
//!   the Redis store uses the server's clock (a configuration takes a few seconds at most).
//!
//! Access tokens: the mint closure either returns a **fake** access token — a fixed
//! [`FAKE_ACCESS_TOKEN_LEN`]-byte string (one allocation, no signing), so the figures are the
//! engine and the store alone — or signs a **real EdDSA JWT** with tokenward's `TokenIssuer`
//! (the `Fixture` key, `sub` and `sid` = the family id, as a server would).
//!
//! As in `revocation_latency`: every configuration runs a warm-up of [`WARMUP`] rotations,
//! then [`ROTATIONS`] timed ones split evenly over the tasks, which all start together and
//! each run a closed loop: time one `rotate`, record it, `yield_now` (untimed), next. A
//! multi-thread Tokio runtime with 2 workers (the machine has 2 cores). Percentiles are
//! nearest-rank. Each configuration gets fresh stores. An unexpected result (an error, or a
//! kind other than the scenario's) fails the run. CPU per rotation: this process, all threads
//! (`/proc/self/task/*/schedstat`).
//!
//! Redis round trips: `INFO commandstats` before and after the timed rotations; the delta of
//! every command (except `INFO`) per rotation. Commands a Lua script runs inside Redis are
//! counted too (they are not round trips); other clients of a shared server add to the counts.
//!
//! Redis: `REDIS_URL` or `redis://127.0.0.1:6379` (fails with instructions if unreachable),
//! under a fresh key prefix, deleted at the end (`SCAN MATCH` + `UNLINK` of that prefix only).
//!
//! `cargo bench -p tokenward-bench --bench refresh_latency [-- FILTER]`, where `FILTER`
//! selects the configurations whose "name × tasks" contains it (`-- "grace"`); results in
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use redis::aio::MultiplexedConnection;
use tokenward_bench::Fixture;
use tokenward_bench::revocation::{
    LatencySummary, T0, connect_redis, delete_prefix, redis_url, unique_prefix,
};
use tokenward_claims::AccessToken;
use tokenward_core::ManualClock;
use tokenward_redis::{RedisConfig, RedisRefreshStore};
use tokenward_refresh::{
    MemoryRefreshStore, MintRequest, RefreshConfig, RefreshEngine, RefreshError, Rotation,
    RotationKind,
};
use tokenward_revocation::MemoryRevocationStore;

/// Timed rotations per configuration.
const ROTATIONS: usize = 20_000;
/// Untimed rotations before them.
const WARMUP: usize = 2_000;
/// Concurrent tasks of each configuration.
const CONCURRENCY: [usize; 2] = [1, 64];
/// Length of the fake access token (about an EdDSA JWT with `iss`, `aud`, `sub`, `iat`,
/// `nbf`, `exp`, `jti`, `sid`).
const FAKE_ACCESS_TOKEN_LEN: usize = 320;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the tasks present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Each task rotates its own family.
    OwnFamily,
    /// Every task presents the same rotated token within the grace window.
    Grace,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::OwnFamily => "own family",
            Scenario::Grace => "grace, one token",
        }
    }

    fn expected(self) -> RotationKind {
        match self {
            Scenario::OwnFamily => RotationKind::Rotated,
            Scenario::Grace => RotationKind::Grace,
        }
    }
}

/// How the access token of each rotation is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mint {
    /// A fixed-size fake string.
    Fake,
    /// A real EdDSA JWT from `TokenIssuer`.
    EdDsa,
}

impl Mint {
    fn name(self) -> String {
        match self {
            Mint::Fake => format!("fake, {FAKE_ACCESS_TOKEN_LEN} B"),
            Mint::EdDsa => "EdDSA JWT".to_owned(),
        }
    }
}

/// One configuration's engine and minter.
struct Setup {
    store: String,
    engine: RefreshEngine,
    mint: Mint,
    fake: String,
    fixture: Arc<Fixture>,
}

impl Setup {
    fn memory(mint: Mint, fixture: &Arc<Fixture>) -> Setup {
        let clock = Arc::new(ManualClock::new(T0));
        Setup {
            store: "memory".to_owned(),
            engine: RefreshEngine::new(
                Arc::new(MemoryRefreshStore::new()),
                Arc::new(MemoryRevocationStore::new()),
                RefreshConfig::new().clock(clock),
            ),
            mint,
            fake: "a".repeat(FAKE_ACCESS_TOKEN_LEN),
            fixture: Arc::clone(fixture),
        }
    }

    /// A fresh `RedisRefreshStore` under `prefix` (default pool) and the system clock.
    fn redis(
        url: &str,
        prefix: &str,
        mint: Mint,
        fixture: &Arc<Fixture>,
    ) -> Result<Setup, BoxError> {
        let store = RedisRefreshStore::connect(&RedisConfig::new(url).key_prefix(prefix))?;
        Ok(Setup {
            store: format!("Redis, pool_size {}", RedisConfig::DEFAULT_POOL_SIZE),
            engine: RefreshEngine::new(
                Arc::new(store),
                Arc::new(MemoryRevocationStore::new()),
                RefreshConfig::new(),
            ),
            mint,
            fake: "a".repeat(FAKE_ACCESS_TOKEN_LEN),
            fixture: Arc::clone(fixture),
        })
    }

    async fn rotate(&self, presented: &str) -> Result<Rotation, RefreshError> {
        match self.mint {
            Mint::Fake => {
                self.engine
                    .rotate(presented, None, |_req: MintRequest<'_>| {
                        Ok::<_, Infallible>(self.fake.clone())
                    })
                    .await
            }
            Mint::EdDsa => {
                self.engine
                    .rotate(presented, None, |req: MintRequest<'_>| {
                        self.fixture
                            .issue(&AccessToken::new(req.sub).sid(req.family_id.as_str()))
                    })
                    .await
            }
        }
    }
}

/// Runs `total` rotations over `tasks` tasks started together; every call's latency and the
/// errors.
async fn run_tasks(
    setup: &Arc<Setup>,
    scenario: Scenario,
    tasks: usize,
    total: usize,
) -> Result<(Vec<Duration>, Vec<String>), BoxError> {
    // The token each task starts from, prepared before the timed part.
    let mut starts = Vec::with_capacity(tasks);
    match scenario {
        Scenario::OwnFamily => {
            for task in 0..tasks {
                let family = setup.engine.issue(&format!("user-{task}")).await?;
                starts.push(family.refresh_token.expose().to_owned());
            }
        }
        Scenario::Grace => {
            let family = setup.engine.issue("user-grace").await?;
            let first = family.refresh_token.expose().to_owned();
            let rotation = setup.rotate(&first).await?;
            if rotation.kind != RotationKind::Rotated {
                return Err(format!("first rotation was {:?}", rotation.kind).into());
            }
            starts.resize(tasks, first);
        }
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = starts
        .into_iter()
        .enumerate()
        .map(|(task, mut current)| {
            let setup = Arc::clone(setup);
            let barrier = Arc::clone(&barrier);
            let calls = (task..total).step_by(tasks).count();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(calls);
                let mut errors = Vec::new();
                barrier.wait().await;
                for _ in 0..calls {
                    let start = Instant::now();
                    let result = setup.rotate(&current).await;
                    samples.push(start.elapsed());
                    match result {
                        Ok(r) if r.kind == scenario.expected() => {
                            if scenario == Scenario::OwnFamily {
                                current = r.refresh_token.expose().to_owned();
                            }
                        }
                        Ok(r) => errors.push(format!("unexpected {:?}", r.kind)),
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

/// The configurations to run: those whose `name × tasks` contains the first command-line
/// argument that is not an option (all without one), as criterion's filter does.
fn selected(name: &str, tasks: usize) -> bool {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    filter.is_none_or(|f| format!("{name} × {tasks}").contains(&f))
}

/// Calls per command of `INFO commandstats`.
async fn commands(conn: &mut MultiplexedConnection) -> Result<BTreeMap<String, u64>, BoxError> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut counts = BTreeMap::new();
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
        counts.insert(name.to_owned(), calls);
    }
    Ok(counts)
}

/// The commands that ran between `before` and `after`, per rotation (`INFO` left out).
fn per_rotation(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    rotations: usize,
) -> String {
    let deltas: Vec<String> = after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, &calls)| {
            let delta = calls.saturating_sub(before.get(name).copied().unwrap_or(0));
            (delta > 0).then(|| format!("{name} {:.3}", delta as f64 / rotations as f64))
        })
        .collect();
    deltas.join(", ")
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Measures one configuration and prints its table row (and its first error, if any);
/// returns the number of errors.
async fn measure(
    setup: Setup,
    scenario: Scenario,
    tasks: usize,
    mut redis: Option<&mut MultiplexedConnection>,
) -> Result<usize, BoxError> {
    let name = format!(
        "{} | {} | {}",
        setup.store,
        setup.mint.name(),
        scenario.name()
    );
    if !selected(&name, tasks) {
        return Ok(0);
    }
    let setup = Arc::new(setup);
    run_tasks(&setup, scenario, tasks, WARMUP).await?;
    let cmd_before = match redis.as_deref_mut() {
        Some(conn) => Some(commands(conn).await?),
        None => None,
    };
    let cpu_before = process_cpu()?;
    let start = Instant::now();
    let (mut samples, errors) = run_tasks(&setup, scenario, tasks, ROTATIONS).await?;
    let wall = start.elapsed();
    let cpu = process_cpu()?.saturating_sub(cpu_before);
    let cmds = match (redis, cmd_before) {
        (Some(conn), Some(before)) => per_rotation(&before, &commands(conn).await?, ROTATIONS),
        _ => "–".to_owned(),
    };
    let s = LatencySummary::from_samples(&mut samples).ok_or("no samples")?;
    println!(
        "| {name} | {tasks} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {cmds} | {} |",
        us(s.p50),
        us(s.p90),
        us(s.p99),
        us(s.p999),
        us(s.max),
        us(s.mean),
        s.count as f64 / wall.as_secs_f64(),
        us(cpu.div_f64(s.count as f64)),
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
    fixture: &Arc<Fixture>,
) -> Result<usize, BoxError> {
    let mut errors = 0;
    for scenario in [Scenario::OwnFamily, Scenario::Grace] {
        for tasks in CONCURRENCY {
            let setup = Setup::redis(url, prefix, Mint::Fake, fixture)?;
            errors += measure(setup, scenario, tasks, Some(&mut *conn)).await?;
        }
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
            "redis {} at {}; {ROTATIONS} rotations per configuration after {WARMUP} warm-up; \
             load average {}",
            info.lines()
                .find_map(|l| l.trim_end().strip_prefix("redis_version:"))
                .unwrap_or("?"),
            RedisConfig::new(url.as_str()).redacted_url(),
            loadavg()
        );
        let fixture = Arc::new(Fixture::new(Algorithm::EdDSA)?);
        println!(
            "\n| store | access token | scenario | tasks | p50 µs | p90 µs | p99 µs | p99.9 µs | \
             max µs | mean µs | rotations/s | client CPU µs/rotation | Redis commands/rotation \
             | errors |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut errors = 0;
        for (mint, scenario) in [
            (Mint::Fake, Scenario::OwnFamily),
            (Mint::EdDsa, Scenario::OwnFamily),
            (Mint::Fake, Scenario::Grace),
        ] {
            for tasks in CONCURRENCY {
                errors += measure(Setup::memory(mint, &fixture), scenario, tasks, None).await?;
            }
        }
        let prefix = unique_prefix("refresh");
        let result = redis_runs(&url, &prefix, &mut conn, &fixture).await;
        let deleted = delete_prefix(&mut conn, &prefix).await;
        println!("\nload average at the end {}", loadavg());
        match deleted {
            Ok(n) => println!("deleted {n} keys under {prefix}"),
            Err(e) => eprintln!("could not delete the keys under {prefix}: {e}"),
        }
        errors += result?;
        if errors > 0 {
            return Err(format!("{errors} rotations failed or had the wrong kind").into());
        }
        Ok(())
    })
}
