//! The Guard's per-request store work on one Redis server and on a 3-primary Redis Cluster:
//! latency, round trips and Redis commands per authenticated request.
//!
//! Three setups, one `Guard` each on `RedisStores` with the default subject limit and
//! failure ban (the combined check: ban, revocation, limit), every request a valid token of
//! one of 100 subjects (with `jti` and `sid`) from one of 100 client addresses:
//! - `one server` — `REDIS_URL` (or 127.0.0.1:6379), a fresh prefix: one script per request;
//! - `cluster, untagged prefix` — the keys of one request spread over the slots they hash to:
//!   one script per slot, sent concurrently (one round trip of latency);
//! - `cluster, {tw} prefix` — a prefix with a hash tag (`{tw}:…`): every key in one slot, one
//!   script, as on one server (the layout for a deployment that wants one script per request
//!   and accepts one node holding all of tokenward's keys).
//!
//! The cluster: `REDIS_CLUSTER_URLS`, or a throwaway one (`tokenward-testsupport`). Each setup
//! runs [`WARMUP`] requests, then [`REQUESTS`] timed ones one after the other (latency of one
//! request, no queueing), then the same number from 16 concurrent tasks (throughput). Round
//! trips are the backend's count (`RedisBackend::round_trips`: concurrent per-slot scripts
//! count once); commands are the deltas of `total_commands_processed` summed over the nodes
//! (a shared server's other clients count too).
//!
//! `cargo bench -p tokenward-bench --bench cluster_check`; run by a full `cargo xtask bench`;
//! results in `docs/benchmarks.md`.

#![expect(clippy::panic, reason = "a benchmark stops loudly on a broken setup")]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use tokenward_bench::harness::{BoxError, exit_code, info, load_average, quick, runtime};
use tokenward_bench::latency::{LATENCY_COLUMNS, LatencySummary};
use tokenward_claims::{
    AccessToken, Algorithm, Key, KeySet, TokenIssuer, ValidationPolicy, Validator,
};
use tokenward_guard::{AuthRequest, Credentials, Guard, GuardStores};
use tokenward_redis::{RedisBackend, RedisConfig, RedisStores};
use tokenward_testsupport::{cluster_urls, delete_prefix_on_cluster, redis_url, unique_prefix};

const WARMUP: usize = 500;
const REQUESTS: usize = 5_000;
const TASKS: usize = 16;
const ISSUER: &str = "https://issuer.bench.example";

struct Setup {
    name: &'static str,
    config: RedisConfig,
    /// Every node (one for the single server), for `INFO`.
    nodes: Vec<String>,
}

struct Row {
    name: &'static str,
    latency: LatencySummary,
    per_second: f64,
    round_trips: f64,
    commands: f64,
}

fn keys() -> KeySet {
    KeySet::single(
        Key::hmac("k1", Algorithm::HS256, &[0x42; 32]).unwrap_or_else(|e| panic!("key: {e}")),
    )
}

async fn total_commands(nodes: &[String]) -> Result<u64, BoxError> {
    let mut total = 0;
    for node in nodes {
        let mut conn = tokenward_testsupport::connect(node).await?;
        let stats = info(&mut conn, "stats").await?;
        total += stats
            .get::<u64>("total_commands_processed")
            .ok_or("no total")?;
    }
    Ok(total)
}

async fn measure(setup: &Setup, tokens: &[String], requests: usize) -> Result<Row, BoxError> {
    let backend = RedisBackend::new(&setup.config)?;
    let stores = GuardStores::redis(&RedisStores::new(backend.clone()));
    let policy = ValidationPolicy::builder()
        .issuer(ISSUER)
        .audience("api")
        .build()?;
    let guard = Guard::builder(Validator::new(policy, keys()), stores).build()?;
    let call = |guard: Guard, n: usize| {
        let token = tokens.get(n % tokens.len()).cloned().unwrap_or_default();
        async move {
            let octet = u8::try_from(n % 100).unwrap_or(0);
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, octet));
            guard
                .authenticate(&AuthRequest::new(
                    "GET",
                    "/me",
                    ip,
                    Credentials::Bearer(&token),
                ))
                .await
                .map(|_| ())
                .map_err(|d| format!("{d:?}"))
        }
    };
    for n in 0..WARMUP {
        call(guard.clone(), n).await?;
    }
    let (trips0, commands0) = (backend.round_trips(), total_commands(&setup.nodes).await?);
    let mut samples = Vec::with_capacity(requests);
    for n in 0..requests {
        let started = Instant::now();
        call(guard.clone(), n).await?;
        samples.push(started.elapsed());
    }
    let trips = backend.round_trips() - trips0;
    // Minus the INFO of the first reading on each node.
    let commands = total_commands(&setup.nodes).await? - commands0 - setup.nodes.len() as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let guard = guard.clone();
        tasks.push(tokio::spawn({
            let jobs: Vec<_> = (task..requests)
                .step_by(TASKS)
                .map(|n| call(guard.clone(), n))
                .collect();
            async move {
                for job in jobs {
                    job.await?;
                }
                Ok::<(), String>(())
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let per_second = requests as f64 / started.elapsed().as_secs_f64();
    Ok(Row {
        name: setup.name,
        latency: LatencySummary::from_samples(&mut samples).ok_or("no samples")?,
        per_second,
        round_trips: trips as f64 / requests as f64,
        commands: commands as f64 / requests as f64,
    })
}

fn main() -> std::process::ExitCode {
    exit_code(run())
}

fn run() -> Result<(), BoxError> {
    let rt = runtime(Some(2))?;
    let requests = if quick() { REQUESTS / 5 } else { REQUESTS };
    let issuer = TokenIssuer::builder(keys(), ISSUER)
        .audience("api")
        .ttl(Duration::from_secs(3600))
        .build()?;
    let tokens = (0..100)
        .map(|n| {
            issuer
                .issue(&AccessToken::new(format!("user-{n}")).sid(format!("session-{n}")))
                .map(|t| t.token)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let seeds = cluster_urls();
    let single = redis_url();
    let timeout = Duration::from_secs(2);
    let setups = [
        Setup {
            name: "one server",
            config: RedisConfig::new(single.clone())
                .key_prefix(unique_prefix("bench-cluster-single"))
                .operation_timeout(timeout),
            nodes: vec![single],
        },
        Setup {
            name: "cluster, untagged prefix",
            config: RedisConfig::default()
                .cluster(seeds.clone())
                .key_prefix(unique_prefix("bench-cluster-spread"))
                .operation_timeout(timeout),
            nodes: seeds.clone(),
        },
        Setup {
            name: "cluster, {tw} prefix",
            config: RedisConfig::default()
                .cluster(seeds.clone())
                .key_prefix(format!("{{tw}}:{}", unique_prefix("bench-cluster-tagged")))
                .operation_timeout(timeout),
            nodes: seeds.clone(),
        },
    ];
    println!("load average at the start {}", load_average());
    let mut rows = Vec::new();
    for setup in &setups {
        rows.push(rt.block_on(measure(setup, &tokens, requests))?);
        let prefix = setup.config.key_prefix.clone();
        rt.block_on(async {
            let deleted = if setup.nodes.len() > 1 {
                delete_prefix_on_cluster(&seeds, &prefix).await
            } else {
                let node = setup.nodes.first().ok_or("no node")?;
                let mut conn = tokenward_testsupport::connect(node).await?;
                tokenward_testsupport::delete_prefix(&mut conn, &prefix).await
            };
            deleted.map(|_| ()).map_err(BoxError::from)
        })?;
    }
    println!(
        "\n| setup | {LATENCY_COLUMNS} | req/s ({TASKS} tasks) | round trips / request | Redis commands / request |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.2} |",
            row.name,
            row.latency.micros_cells(),
            row.per_second,
            row.round_trips,
            row.commands
        );
    }
    println!("\nload average at the end {}", load_average());
    Ok(())
}
