//! The demo API on Redis: `GET /me` latency at 64 concurrent connections, and the Redis
//! commands and round trips per authenticated request, counted by Redis itself.
//!
//! Starts the `tokenward-demo` binary (`TOKENWARD_DEMO_BIN`, or `target/release/tokenward-demo`:
//! build it first with `cargo build --release -p tokenward-demo`, which `cargo xtask bench`
//! does) with `--redis $REDIS_URL --redis-prefix <fresh prefix> --bind 127.0.0.1:0
//! --subject-limit 1000000000` (a subject limit that never denies), logs in once as `alice`
//! (`POST /login`), and drives `GET /me` with that access token from an in-process hyper load
//! generator (`tokenward_bench::load`): 64 keep-alive connections, closed loops. Per round:
//! warm-up, then `INFO commandstats` + `INFO stats`, the timed run, the same `INFO` again; the
//! deltas divided by the requests answered in between (timed or not) give the commands per
//! request. `EVALSHA` + `EVAL` per request are the script round trips; every other command in
//! `commandstats` is listed with its count so one can see which ran inside the scripts. On a
//! Redis shared with other clients the deltas include their commands too (the harness prints
//! `connected_clients`).
//!
//! The closed loops measure the demo's capacity, and their latency is the queue at saturation
//! (64 requests in flight ÷ throughput). Then, on the same 64 connections, **paced** runs
//! offer a fixed load of 10 %, 50 % and 80 % of that capacity (`load`'s paced mode, like
//! `wrk2 -R`, without coordinated omission; a pacer thread releases each request when it is
//! due, so they arrive evenly spaced, not in the 1 ms batches of Tokio's timer): the
//! latency of `/me` when the server is not
//! saturated, each next to the same server's unauthenticated `/.well-known/jwks.json` at the
//! same offered load (the machine's, the client's and HTTP's share of that latency).
//!
//! The demo runs in its own process (as in production), pinned to the first core with
//! `taskset` and this process (the load generator) to the last, so the client does not steal
//! the server's core (Redis is not pinned; without `taskset` nothing is, and the output says
//! so). Rounds are repeated and the summary is the median. At the end the demo is stopped
//! and every key under the prefix deleted.
//!
//! `cargo bench -p tokenward-bench --bench demo_redis [-- --quick]`; results in
//! `docs/benchmarks.md`. Summary lines starting with `@bench` are read by `cargo xtask bench`.

#![expect(clippy::panic, reason = "a benchmark stops loudly on a broken setup")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use redis::aio::MultiplexedConnection;
use tokenward_bench::harness::{
    command_calls, info, load_average, pin_server_and_self, quick, runtime,
};
use tokenward_bench::load::{self, LoadSpec, median};
use tokenward_testsupport::{connect, delete_prefix, redis_url, unique_prefix};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const CONNECTIONS: usize = 64;
/// Offered loads of the paced runs, in percent of the capacity the closed loops measured.
const PACED_PERCENT: [u32; 3] = [10, 50, 80];

fn demo_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TOKENWARD_DEMO_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("release/tokenward-demo")
}

/// Calls per command (`INFO commandstats`), `total_commands_processed` and
/// `connected_clients`.
async fn snapshot(conn: &mut MultiplexedConnection) -> (BTreeMap<String, u64>, u64, String) {
    let calls = command_calls(conn)
        .await
        .unwrap_or_else(|e| panic!("INFO commandstats: {e}"));
    let stats = info(conn, "stats clients")
        .await
        .unwrap_or_else(|e| panic!("INFO: {e}"));
    let total = stats.get("total_commands_processed").unwrap_or(0);
    let clients = stats
        .get("connected_clients")
        .unwrap_or_else(|| "?".to_owned());
    (calls, total, clients)
}

fn main() {
    let (warm_up, measure, rounds) = if quick() {
        (Duration::from_millis(500), Duration::from_secs(3), 1)
    } else {
        (Duration::from_secs(2), Duration::from_secs(10), 3)
    };
    // Before the runtime starts its threads: they inherit this process's core.
    let pinning = pin_server_and_self();
    let rt = runtime(None).unwrap_or_else(|e| panic!("runtime: {e}"));
    let url = redis_url();
    let prefix = unique_prefix("bench-demo");
    let result = rt.block_on(async {
        let mut conn = match connect(&url).await {
            Ok(conn) => conn,
            Err(e) => panic!("{e}"),
        };
        let binary = demo_binary();
        assert!(
            binary.is_file(),
            "{} is missing: build it with `cargo build --release -p tokenward-demo` (or set \
             TOKENWARD_DEMO_BIN)",
            binary.display()
        );
        let mut command = match pinning {
            Some(pinning) => pinning.server_command(&binary),
            None => tokio::process::Command::new(&binary),
        };
        let mut child = command
            .args(["--redis", &url, "--redis-prefix", &prefix])
            .args(["--bind", "127.0.0.1:0", "--subject-limit", "1000000000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the demo printed nothing within 30 s"))
            .unwrap_or_else(|e| panic!("demo stdout: {e}"))
            .unwrap_or_else(|| panic!("the demo exited before listening"));
        let addr: SocketAddr = first
            .strip_prefix("listening on http://")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
        // Keep reading (and discarding) the demo's stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (status, body) = load::request(
            addr,
            Method::POST,
            "/login",
            None,
            Some(r#"{"username":"alice","password":"alice-password"}"#.to_owned()),
        )
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
        assert_eq!(status, StatusCode::OK, "login: {body:?}");
        let json: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("login body: {e}"));
        let token = json
            .get("access_token")
            .and_then(|t| t.as_str())
            .unwrap_or_else(|| panic!("no access_token in {json}"));
        let header = HeaderValue::from_str(&format!("Bearer {token}"))
            .unwrap_or_else(|e| panic!("header: {e}"));
        let (status, body) = load::request(addr, Method::GET, "/me", Some(&header), None)
            .await
            .unwrap_or_else(|e| panic!("/me: {e}"));
        assert_eq!(status, StatusCode::OK, "/me: {body:?}");

        let pinned = match pinning {
            Some(p) => format!(
                "demo pinned to core {}, load generator to core {}",
                p.server_core, p.client_core
            ),
            None => "nothing pinned (one core, or no taskset)".to_owned(),
        };
        println!(
            "demo on {addr}, Redis {url}, prefix {prefix}; {CONNECTIONS} connections, warm-up \
             {warm_up:?}, measurement {measure:?}, {rounds} round(s); {pinned}; load average {}",
            load_average()
        );
        let (mut rps, mut p50s, mut p99s, mut evals, mut totals) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let spec = LoadSpec {
                addr,
                path: "/me".to_owned(),
                authorization: Some(header.clone()),
                connections: CONNECTIONS,
                warm_up,
                measure: Duration::ZERO,
                expect: StatusCode::OK,
                rate: None,
            };
            let warm = load::run(&spec)
                .await
                .unwrap_or_else(|e| panic!("warm-up: {e}"));
            assert_eq!(warm.unexpected, 0, "warm-up: {:?}", warm.first_unexpected);
            let (before, total_before, clients) = snapshot(&mut conn).await;
            // No warm-up inside the counted run: every request in it is counted.
            let spec = LoadSpec {
                warm_up: Duration::ZERO,
                measure,
                ..spec
            };
            let result = load::run(&spec)
                .await
                .unwrap_or_else(|e| panic!("/me: {e}"));
            let (after, total_after, _) = snapshot(&mut conn).await;
            assert_eq!(
                result.unexpected, 0,
                "/me answered {:?}",
                result.first_unexpected
            );
            // Requests started in the run but answered after its end are not in `latencies`;
            // at most one per connection.
            let requests = result.latencies.len() as f64;
            let delta = |name: &str| {
                after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
            };
            let scripts = (delta("evalsha") + delta("eval")) as f64 / requests;
            // Minus the one `INFO commandstats` inside the interval.
            let total = (total_after - total_before).saturating_sub(1) as f64 / requests;
            let (r, p50, p99) = (
                result.requests_per_second(),
                result.percentile_us(5_000),
                result.percentile_us(9_900),
            );
            println!(
                "round {round}: {r:.0} req/s, p50 {p50:.1} µs, p99 {p99:.1} µs, \
                 EVALSHA+EVAL/request {scripts:.3}, commands/request (incl. inside scripts) \
                 {total:.3}; connected_clients {clients}; load average {}",
                load_average()
            );
            let mut breakdown = Vec::new();
            for (name, calls) in &after {
                let d = calls - before.get(name).copied().unwrap_or(0);
                if d > 0 {
                    breakdown.push(format!("{name} {:.3}", d as f64 / requests));
                }
            }
            println!("  per request: {}", breakdown.join(", "));
            rps.push(r);
            p50s.push(p50);
            p99s.push(p99);
            evals.push(scripts);
            totals.push(total);
        }
        // Paced: the same 64 connections at a fixed offered load, a fraction of the capacity
        // the closed loops just measured (their median req/s).
        let capacity = median(&mut rps.clone()).unwrap_or(f64::NAN);
        let mut paced = Vec::new();
        for percent in PACED_PERCENT {
            let offered = capacity * f64::from(percent) / 100.0;
            if !offered.is_finite() || offered < 1.0 {
                panic!("no capacity measured to pace against ({capacity})");
            }
            // `/me` (the Guard, one Redis round trip), then the same server's unauthenticated
            // JWKS route at the same offered load: what the machine, the client and HTTP
            // cost without tokenward.
            for (name, path, authorization) in [
                ("me", "/me", Some(header.clone())),
                ("jwks", "/.well-known/jwks.json", None),
            ] {
                let spec = LoadSpec {
                    addr,
                    path: path.to_owned(),
                    authorization,
                    connections: CONNECTIONS,
                    warm_up,
                    measure,
                    expect: StatusCode::OK,
                    rate: Some(offered),
                };
                let result = load::run(&spec)
                    .await
                    .unwrap_or_else(|e| panic!("paced {path}: {e}"));
                assert_eq!(
                    result.unexpected, 0,
                    "paced {path} answered {:?}",
                    result.first_unexpected
                );
                let us = |per_10k| result.percentile_us(per_10k);
                let line = format!(
                    "@bench redis/{name}_paced_{percent} offered_rps={offered:.0} rps={:.0} \
                     p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
                    result.requests_per_second(),
                    us(5_000),
                    us(9_900),
                    us(9_990),
                    us(10_000),
                );
                println!(
                    "paced at {percent} % of capacity ({offered:.0} req/s offered), {path}: \
                     {line}; load average {}",
                    load_average()
                );
                paced.push(line);
            }
        }
        let _ = child.kill().await;
        let deleted = delete_prefix(&mut conn, &prefix).await;
        println!("deleted keys under {prefix}: {deleted:?}");
        let medians = [
            median(&mut rps),
            median(&mut p50s),
            median(&mut p99s),
            median(&mut evals),
            median(&mut totals),
        ]
        .map(|m| m.unwrap_or(f64::NAN));
        (medians, paced)
    });
    let ([rps, p50, p99, scripts, total], paced) = result;
    println!(
        "\n| server | connections | req/s | p50 µs | p99 µs | EVALSHA+EVAL per request | Redis commands per request |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| tokenward-demo `GET /me`, Redis | {CONNECTIONS} | {rps:.0} | {p50:.1} | {p99:.1} | \
         {scripts:.3} | {total:.3} |"
    );
    println!(
        "@bench redis/me rps={rps:.0} p50_us={p50:.1} p99_us={p99:.1} \
         round_trips_per_request={scripts:.3} commands_per_request={total:.3} rounds={rounds}"
    );
    for line in paced {
        println!("{line}");
    }
    println!("load average at the end {}", load_average());
}
