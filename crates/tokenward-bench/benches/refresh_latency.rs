//! Throughput and latency percentiles of `RefreshEngine::rotate` under concurrency, at 1 and
//! 64 concurrent tasks: the in-memory refresh store, `RedisRefreshStore` (default pool of
//! 8 connections) with its Redis round trips per rotation, and `PgRefreshStore` (default
//! pool of 10 connections) with its statements per rotation. The revocation store is a
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
//! PostgreSQL: `DATABASE_URL` or `postgres://postgres@127.0.0.1:5432/postgres`, in a fresh
//! schema, dropped at the end; statements per rotation from the backend's own count
//! (`PgBackend::round_trips`: one per store call).
//!
//! `cargo bench -p tokenward-bench --bench refresh_latency [-- FILTER]`, where `FILTER`
//! selects the configurations whose "name × tasks" contains it (`-- "grace"`); results in
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::Algorithm;
use redis::aio::MultiplexedConnection;
use tokenward_bench::harness::{
    BoxError, command_calls, connect_redis, exit_code, finish, process_cpu, runtime, selected,
};
use tokenward_bench::latency::{
    LATENCY_COLUMNS, LatencySummary, Timings, closed_loops, micros, task_calls,
};
use tokenward_bench::revocation::T0;
use tokenward_bench::{Fixture, TOKEN_TTL};
use tokenward_claims::AccessToken;
use tokenward_core::{Clock, IssuerScope, ManualClock, StoreId, SystemClock};
use tokenward_postgres::{PgBackend, PgConfig, PgRefreshStore};
use tokenward_redis::{RedisConfig, RedisRefreshStore};
use tokenward_refresh::{
    MemoryRefreshStore, MintRequest, MintedToken, RefreshConfig, RefreshEngine, RefreshError,
    Rotation, RotationKind,
};
use tokenward_revocation::MemoryRevocationStore;
use tokenward_testsupport::{unique_prefix, unique_schema};

/// Timed rotations per configuration.
const ROTATIONS: usize = 20_000;
/// Untimed rotations before them.
const WARMUP: usize = 2_000;
/// Concurrent tasks of each configuration.
const CONCURRENCY: [usize; 2] = [1, 64];
/// Length of the fake access token (about an EdDSA JWT with `iss`, `aud`, `sub`, `iat`,
/// `nbf`, `exp`, `jti`, `sid`).
const FAKE_ACCESS_TOKEN_LEN: usize = 320;

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

/// An engine over `store` with a `MemoryRevocationStore`, expecting the fixture's access-token
/// lifetime (so no rotation needs a second store call).
fn engine(store: Arc<dyn tokenward_refresh::RefreshStore>) -> Result<RefreshEngine, BoxError> {
    let config = RefreshConfig::new().max_access_token_lifetime(TOKEN_TTL);
    Ok(RefreshEngine::with_config(
        store,
        Arc::new(MemoryRevocationStore::new()),
        IssuerScope::new("https://bench.tokenward.test"),
        config,
    )?)
}

/// The login's access token (not timed): a placeholder expiring when the engine expects.
fn fake_mint(req: MintRequest<'_>) -> Result<MintedToken, Infallible> {
    Ok(MintedToken::new("login", req.covered_until))
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
    fn memory(mint: Mint, fixture: &Arc<Fixture>) -> Result<Setup, BoxError> {
        // The store keeps its own time: a manual clock that does not move.
        let clock = Arc::new(ManualClock::new(T0));
        Ok(Setup {
            store: "memory".to_owned(),
            engine: engine(Arc::new(MemoryRefreshStore::with_clock(clock)))?,
            mint,
            fake: "a".repeat(FAKE_ACCESS_TOKEN_LEN),
            fixture: Arc::clone(fixture),
        })
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
            engine: engine(Arc::new(store))?,
            mint,
            fake: "a".repeat(FAKE_ACCESS_TOKEN_LEN),
            fixture: Arc::clone(fixture),
        })
    }

    /// A `PgRefreshStore` on `backend` and the database's clock.
    fn postgres(
        backend: &PgBackend,
        mint: Mint,
        fixture: &Arc<Fixture>,
    ) -> Result<Setup, BoxError> {
        Ok(Setup {
            store: format!("PostgreSQL, pool {}", PgConfig::DEFAULT_MAX_CONNECTIONS),
            engine: engine(Arc::new(PgRefreshStore::new(backend.clone())))?,
            mint,
            fake: "a".repeat(FAKE_ACCESS_TOKEN_LEN),
            fixture: Arc::clone(fixture),
        })
    }

    async fn rotate(&self, presented: &str) -> Result<Rotation, RefreshError> {
        match self.mint {
            Mint::Fake => {
                self.engine
                    .rotate(presented, None, |req: MintRequest<'_>| {
                        let fake = MintedToken::new(self.fake.clone(), req.covered_until);
                        Ok::<_, Infallible>(fake)
                    })
                    .await
            }
            Mint::EdDsa => {
                self.engine
                    .rotate(presented, None, |req: MintRequest<'_>| {
                        let token = self.fixture.issue(
                            &AccessToken::new(req.sub.as_str()).sid(req.family_id.as_str()),
                        )?;
                        // The issuer's `exp` (system clock) is at most this.
                        let exp = SystemClock.now().saturating_add(TOKEN_TTL);
                        Ok::<_, tokenward_bench::FixtureError>(MintedToken::new(token, exp))
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
) -> Result<Timings, BoxError> {
    // The token each task starts from, prepared before the timed part.
    let mut starts = Vec::with_capacity(tasks);
    match scenario {
        Scenario::OwnFamily => {
            for task in 0..tasks {
                let sub = StoreId::new(format!("user-{task}"))?;
                let family = setup.engine.issue(&sub, fake_mint).await?;
                starts.push(family.refresh_token.expose().to_owned());
            }
        }
        Scenario::Grace => {
            let family = setup
                .engine
                .issue(&StoreId::new("user-grace")?, fake_mint)
                .await?;
            let first = family.refresh_token.expose().to_owned();
            let rotation = setup.rotate(&first).await?;
            if rotation.kind != RotationKind::Rotated {
                return Err(format!("first rotation was {:?}", rotation.kind).into());
            }
            starts.resize(tasks, first);
        }
    }
    let timings = closed_loops(starts.into_iter().enumerate(), |(task, mut current)| {
        let setup = Arc::clone(setup);
        let calls = task_calls(task, tasks, total).count();
        async move {
            let mut t = Timings::with_capacity(calls);
            for _ in 0..calls {
                let Some(r) = t.time(setup.rotate(&current)).await else {
                    continue;
                };
                if r.kind != scenario.expected() {
                    t.errors.push(format!("unexpected {:?}", r.kind));
                } else if scenario == Scenario::OwnFamily {
                    // The task's own family: the successor is the next token to present.
                    current = r.refresh_token.expose().to_owned();
                }
            }
            t
        }
    })
    .await?;
    Ok(timings)
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

/// Measures one configuration and prints its table row (and its first error, if any);
/// returns the number of errors.
async fn measure(
    setup: Setup,
    scenario: Scenario,
    tasks: usize,
    mut redis: Option<&mut MultiplexedConnection>,
    postgres: Option<&PgBackend>,
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
        Some(conn) => Some(command_calls(conn).await?),
        None => None,
    };
    let statements_before = postgres.map(PgBackend::round_trips);
    let cpu_before = process_cpu()?;
    let start = Instant::now();
    let Timings {
        mut samples,
        errors,
    } = run_tasks(&setup, scenario, tasks, ROTATIONS).await?;
    let wall = start.elapsed();
    let cpu = process_cpu()?.saturating_sub(cpu_before);
    let cmds = match (redis, cmd_before, postgres.zip(statements_before)) {
        (Some(conn), Some(before), _) => {
            per_rotation(&before, &command_calls(conn).await?, ROTATIONS)
        }
        (_, _, Some((pg, before))) => format!(
            "SQL statements {:.3}",
            pg.round_trips().saturating_sub(before) as f64 / ROTATIONS as f64
        ),
        _ => "–".to_owned(),
    };
    let s = LatencySummary::from_samples(&mut samples).ok_or("no samples")?;
    println!(
        "| {name} | {tasks} | {} | {:.0} | {} | {cmds} | {} |",
        s.micros_cells(),
        s.count as f64 / wall.as_secs_f64(),
        micros(cpu.div_f64(s.count as f64)),
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
            errors += measure(setup, scenario, tasks, Some(&mut *conn), None).await?;
        }
    }
    Ok(errors)
}

/// The PostgreSQL part, in a fresh schema dropped at the end.
async fn postgres_runs(fixture: &Arc<Fixture>) -> Result<usize, BoxError> {
    let url = tokenward_testsupport::database_url();
    let schema = unique_schema("bench_refresh");
    let config = PgConfig::new(url).schema(schema);
    let backend = PgBackend::connect(&config)
        .await
        .map_err(|e| format!("PostgreSQL for the bench (set DATABASE_URL): {e}"))?;
    let mut result = Ok(0);
    for scenario in [Scenario::OwnFamily, Scenario::Grace] {
        for tasks in CONCURRENCY {
            let run = match Setup::postgres(&backend, Mint::Fake, fixture) {
                Ok(setup) => measure(setup, scenario, tasks, None, Some(&backend)).await,
                Err(e) => Err(e),
            };
            result = match (result, run) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
    }
    let drop = format!("DROP SCHEMA {} CASCADE", backend.schema());
    sqlx::query(&drop).execute(backend.pool()).await?;
    result
}

fn main() -> std::process::ExitCode {
    exit_code(run())
}

fn run() -> Result<(), BoxError> {
    runtime(Some(2))?.block_on(async {
        let (url, mut conn) = connect_redis(&format!(
            "{ROTATIONS} rotations per configuration after {WARMUP} warm-up"
        ))
        .await?;
        let fixture = Arc::new(Fixture::new(Algorithm::EdDSA)?);
        println!(
            "\n| store | access token | scenario | tasks | {LATENCY_COLUMNS} | rotations/s | client \
             CPU µs/rotation | Redis commands or SQL statements/rotation | errors |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut errors = 0;
        for (mint, scenario) in [
            (Mint::Fake, Scenario::OwnFamily),
            (Mint::EdDsa, Scenario::OwnFamily),
            (Mint::Fake, Scenario::Grace),
        ] {
            for tasks in CONCURRENCY {
                let setup = Setup::memory(mint, &fixture)?;
                errors += measure(setup, scenario, tasks, None, None).await?;
            }
        }
        let prefix = unique_prefix("bench-refresh");
        let result = redis_runs(&url, &prefix, &mut conn, &fixture).await;
        finish(&mut conn, &prefix).await;
        errors += result?;
        errors += postgres_runs(&fixture).await?;
        if errors > 0 {
            return Err(format!("{errors} rotations failed or had the wrong kind").into());
        }
        Ok(())
    })
}
