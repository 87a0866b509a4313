//! `cargo xtask bench [--quick]`: runs tokenward's benchmarks against their peers and
//! reports them side by side, from one run.
//!
//! - Criterion benches of `tokenward-bench` — `verify` (tokenward vs `jsonwebtoken::decode`),
//!   `guard` (the in-memory Guard, alone and with every anomaly detector, vs verification
//!   alone), `ratelimit` (the in-memory store vs raw `governor`) — read back from
//!   `target/criterion/<group>/<function>/new/estimates.json` (the mean and its 95 %
//!   interval).
//! - Own harnesses, whose `@bench NAME key=value ...` stdout lines are read: `http` (axum
//!   behind tokenward's layer, behind jwt-authorizer's, and without auth) and `demo_redis`
//!   (`GET /me` on the demo with Redis at 64 connections; Redis commands per request from
//!   `INFO`). Redis comes from xtask's provisioning (`REDIS_URL`, 127.0.0.1:6379, or a
//!   throwaway `redis-server`); the demo binary is built first.
//! - Full run only: `refresh_latency`, `revocation_memory`, `ratelimit_memory`,
//!   `cluster_check` (the Guard on one server and on a Redis Cluster: `REDIS_CLUSTER_URLS` or
//!   a throwaway 3-primary cluster) and `postgres_storage`, whose own tables are copied as
//!   printed. `refresh_latency` and `postgres_storage` get PostgreSQL from xtask's
//!   provisioning (`DATABASE_URL`, 127.0.0.1:5432, or a throwaway cluster).
//!
//! - Full run only, and alone as `cargo xtask bench peers [--quick]`: [`peers`] —
//!   verification against `jsonwebtoken` built as its users build it (`aws_lc_rs`,
//!   `rust_crypto`), tokenward on ring and on aws-lc-rs, and each provider's bare signature
//!   check, from `bench/peers` (a project of its own, built three times), and the rate limit
//!   against governor with its default features. Alone, it prints its tables and writes
//!   nothing.
//! - Full run only, and alone as `cargo xtask bench http-peers [--quick]`: [`http_peers`] —
//!   HTTP with each server (tokenward's `GuardLayer` on ring and on aws-lc-rs,
//!   jwt-authorizer, no auth) in a process of its own pinned to core 0, driven by wrk pinned
//!   to core 1. Alone, it prints its tables and writes nothing.
//!
//! The full run rewrites the generated section of `docs/benchmarks.md` (between
//! [`docs::BEGIN`] and [`docs::END`]; everything else in the file is left alone). `--quick`
//! shortens criterion's warm-up/measurement and the harnesses' runs
//! (`TOKENWARD_BENCH_QUICK=1`), skips the full-run-only harnesses, writes its report to
//! `target/xtask-bench/quick.md` instead of the docs, and — like the full run — prints the
//! ratios as one JSON object on its last line.
//!
//! The modules follow the run: [`runner`] runs the commands, [`results`] reads what they
//! measured, [`sections`] judges each area against its target and writes its table into the
//! [`report`], [`machine`] describes the machine, and [`docs`] splices the report into the
//! docs; this module runs them in order.

mod docs;
mod http_peers;
mod machine;
mod peers;
mod report;
mod results;
mod runner;
mod sections;
#[cfg(test)]
mod testdata;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Result, postgres, redis};
use machine::Machine;
use report::Report;
use results::{Criterion, tables};
use runner::Runner;

/// The criterion benches, run first.
const CRITERION_BENCHES: [&str; 3] = ["verify", "guard", "ratelimit"];

/// The harnesses only a full run runs, and their section titles: the report copies their
/// tables as printed (they have no peer ratio).
const FULL_RUN_ONLY: [(&str, &str); 5] = [
    (
        "refresh_latency",
        "6. Refresh rotation, memory, Redis and PostgreSQL (`refresh_latency`)",
    ),
    (
        "revocation_memory",
        "7a. Memory per live revocation at 1 000 000 entries (`revocation_memory`)",
    ),
    (
        "ratelimit_memory",
        "7b. Rate-limit state under a flood of 1 000 000 keys (`ratelimit_memory`)",
    ),
    (
        "cluster_check",
        "8. The Guard on one Redis server and on a 3-primary Redis Cluster (`cluster_check`)",
    ),
    (
        "postgres_storage",
        "9. A million revocations in PostgreSQL, imported, expired, purged (`postgres_storage`)",
    ),
];

/// Runs `cargo xtask bench [peers | http-peers] [--quick]`.
pub(crate) fn run(args: &[String]) -> Result {
    let Args { quick, only } = parse_args(args)?;
    if let Some(only) = only {
        let root = crate::workspace_root();
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let mut runner = Runner {
            root,
            target,
            quick,
            redis_url: String::new(),
            database_url: None,
            commands: Vec::new(),
        };
        match only {
            Only::Peers => peers::run(&mut runner)?,
            Only::HttpPeers => http_peers::run(&mut runner)?,
        };
        eprintln!("\ncommands:\n{}", runner.commands.join("\n"));
        return Ok(());
    }
    let started = Instant::now();
    let load_start = machine::load_average();
    let root = crate::workspace_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    eprintln!("==> redis: the Redis for the demo_redis (and full-run Redis) harnesses");
    let redis = redis::provision()?;
    let mut runner = Runner {
        root,
        target,
        quick,
        redis_url: redis.url.clone(),
        database_url: None,
        commands: Vec::new(),
    };

    eprintln!("==> build the demo binary (demo_redis starts it)");
    runner.build_demo()?;
    for bench in CRITERION_BENCHES {
        eprintln!("==> criterion: {bench}");
        runner.criterion(bench)?;
    }
    eprintln!("==> http");
    let http = runner.harness("http")?;
    eprintln!("==> demo_redis");
    let demo_redis = runner.harness("demo_redis")?;
    let mut full_run_only = Vec::new();
    // Stopped (if xtask started it) when dropped at the end of the run.
    let _postgres = if quick {
        None
    } else {
        eprintln!("==> postgres: the PostgreSQL of refresh_latency and postgres_storage");
        let postgres = postgres::provision()?;
        runner.database_url = Some(postgres.url.clone());
        Some(postgres)
    };
    if !quick {
        for (bench, title) in FULL_RUN_ONLY {
            eprintln!("==> {bench}");
            full_run_only.push((title, runner.harness(bench)?));
        }
        full_run_only.push((peers::TITLE, peers::run(&mut runner)?));
        full_run_only.push((http_peers::TITLE, http_peers::run(&mut runner)?));
    }

    let took = started.elapsed();
    let machine = Machine::probe(&runner.root, &runner.redis_url, load_start).table();
    let report = render(&Run {
        quick,
        took,
        machine: &machine,
        criterion: &Criterion {
            dir: runner.target.join("criterion"),
        },
        http: &http,
        demo_redis: &demo_redis,
        full_run_only: &full_run_only,
        commands: &runner.commands,
    })?;

    let (path, text) = if quick {
        let dir = runner.target.join("xtask-bench");
        std::fs::create_dir_all(&dir)?;
        (dir.join("quick.md"), report.text.clone())
    } else {
        let path = runner.root.join("docs/benchmarks.md");
        let docs = std::fs::read_to_string(&path)?;
        let spliced = docs::splice(&docs, &report.text);
        (path, spliced)
    };
    write(&path, &text)?;
    println!("\n{}", report.text);
    eprintln!("wrote {}", path.display());
    drop(redis);
    println!("{}", report.json());
    Ok(())
}

/// What one run produced, to be reported.
struct Run<'a> {
    /// A `--quick` run.
    quick: bool,
    /// How long the benchmarks took.
    took: Duration,
    /// The machine table ([`Machine::table`]).
    machine: &'a str,
    /// Where criterion wrote its results.
    criterion: &'a Criterion,
    /// The stdout of the `http` harness.
    http: &'a str,
    /// The stdout of the `demo_redis` harness.
    demo_redis: &'a str,
    /// The title and stdout of each full-run-only harness that ran.
    full_run_only: &'a [(&'static str, String)],
    /// Every command run, as a person would type it.
    commands: &'a [String],
}

/// The report of `run`: what the run was, the machine, a section per area, the commands; an
/// error when a result it needs is missing.
fn render(run: &Run<'_>) -> Result<Report> {
    let mut report = Report::new();
    let mode = if run.quick {
        "`cargo xtask bench --quick` (criterion warm-up 0.5 s and measurement 1.5 s; harnesses with `TOKENWARD_BENCH_QUICK=1`: `http` three interleaved rounds of 1 s, `demo_redis` one round and paced runs of 3 s)"
    } else {
        "`cargo xtask bench` (criterion defaults: 3 s warm-up, 5 s measurement, 100 samples; harnesses: `http` seven interleaved rounds of 3 s, `demo_redis` three rounds of 10 s then paced runs of 10 s, medians)"
    };
    let _ = writeln!(
        report.text,
        "All figures below come from **one run** of {mode}, taking {:.0} s; every comparison is between numbers measured side by side in that run.\n",
        run.took.as_secs_f64()
    );
    report.text.push_str(run.machine);
    sections::verification(run.criterion, &mut report)?;
    sections::guard(run.criterion, &mut report)?;
    sections::ratelimit(run.criterion, &mut report)?;
    sections::http(run.http, &mut report)?;
    sections::redis_me(run.demo_redis, &mut report)?;
    for (title, output) in run.full_run_only {
        let _ = writeln!(
            report.text,
            "\n### {title}\n\nThe harness's own tables, as printed:"
        );
        report.text.push_str(&tables(output));
    }
    let _ = writeln!(report.text, "\n### Commands\n\n```sh");
    for line in run.commands {
        let _ = writeln!(report.text, "{line}");
    }
    let _ = writeln!(report.text, "```");
    Ok(report)
}

/// What `cargo xtask bench` was asked for.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    /// `--quick`.
    quick: bool,
    /// One comparison alone, printed, nothing written; `None` for the whole run.
    only: Option<Only>,
}

/// The comparisons that run alone.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Only {
    /// `peers`: [`peers`].
    Peers,
    /// `http-peers`: [`http_peers`].
    HttpPeers,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut parsed = Args {
        quick: false,
        only: None,
    };
    for arg in args {
        let only = match arg.as_str() {
            "--quick" => {
                parsed.quick = true;
                continue;
            }
            "peers" => Only::Peers,
            "http-peers" => Only::HttpPeers,
            other => {
                return Err(format!(
                    "`cargo xtask bench` takes only `peers` or `http-peers`, and `--quick`, got \
                     `{other}`"
                )
                .into());
            }
        };
        if parsed.only.is_some_and(|o| o != only) {
            return Err("`cargo xtask bench` runs `peers` or `http-peers`, not both".into());
        }
        parsed.only = Some(only);
    }
    Ok(parsed)
}

fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::testdata::{
        HTTP_OUTPUT, REDIS_OUTPUT, criterion_fixture, golden_sections, temp_dir,
    };
    use super::*;

    /// The whole report of a full run and of a quick one, from fixed results.
    #[test]
    fn reports_are_rendered_from_the_results() {
        let (_dir, criterion) = criterion_fixture();
        let full_run_only = [(
            "6. Refresh rotation, memory, Redis and PostgreSQL (`refresh_latency`)",
            "noise\nStore:\n| a | b |\n|---|---|\n| 1 | 2 |\n@bench x y=1\n".to_owned(),
        )];
        let commands = ["cargo bench -p tokenward-bench --bench verify".to_owned()];
        let mut run = Run {
            quick: false,
            took: Duration::from_millis(820_600),
            machine: "| | |\n|---|---|\n| cores (available parallelism) | 2 |\n",
            criterion: &criterion,
            http: HTTP_OUTPUT,
            demo_redis: REDIS_OUTPUT,
            full_run_only: &full_run_only,
            commands: &commands,
        };
        let (sections, json) = golden_sections();
        let report = render(&run).unwrap();
        assert_eq!(report.json(), json);
        let head = "All figures below come from **one run** of `cargo xtask bench` (criterion defaults: 3 s warm-up, 5 s measurement, 100 samples; harnesses: `http` seven interleaved rounds of 3 s, `demo_redis` three rounds of 10 s then paced runs of 10 s, medians), taking 821 s; every comparison is between numbers measured side by side in that run.\n\n| | |\n|---|---|\n| cores (available parallelism) | 2 |\n";
        let tail = "\n### 6. Refresh rotation, memory, Redis and PostgreSQL (`refresh_latency`)\n\nThe harness's own tables, as printed:\n\nStore:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n### Commands\n\n```sh\ncargo bench -p tokenward-bench --bench verify\n```\n";
        assert_eq!(report.text, format!("{head}{sections}{tail}"));

        run.quick = true;
        run.full_run_only = &[];
        let quick = render(&run).unwrap();
        assert!(
            quick
                .text
                .starts_with("All figures below come from **one run** of `cargo xtask bench --quick` (criterion warm-up 0.5 s")
        );
        assert!(quick.text.contains(&sections));
        assert!(!quick.text.contains("### 6."));
        assert_eq!(quick.json(), json);
    }

    #[test]
    fn a_missing_result_is_an_error() {
        let dir = temp_dir();
        let criterion = Criterion {
            dir: dir.path().join("criterion"),
        };
        let run = Run {
            quick: true,
            took: Duration::ZERO,
            machine: "",
            criterion: &criterion,
            http: HTTP_OUTPUT,
            demo_redis: REDIS_OUTPUT,
            full_run_only: &[],
            commands: &[],
        };
        let err = render(&run).err().unwrap().to_string();
        assert!(err.contains("did the bench run?"), "{err}");
    }

    #[test]
    fn arguments() {
        let parsed = |quick, only| Some(Args { quick, only });
        for (args, expected) in [
            (&[][..], parsed(false, None)),
            (&["--quick"][..], parsed(true, None)),
            (&["--quick", "--quick"][..], parsed(true, None)),
            (&["peers"][..], parsed(false, Some(Only::Peers))),
            (&["peers", "--quick"][..], parsed(true, Some(Only::Peers))),
            (
                &["--quick", "http-peers"][..],
                parsed(true, Some(Only::HttpPeers)),
            ),
            (&["peers", "http-peers"][..], None),
            (&["--help"][..], None),
            (&["--quick", "verify"][..], None),
        ] {
            let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(parse_args(&args).ok(), expected, "{args:?}");
        }
        assert_eq!(
            parse_args(&["--full".to_owned()]).unwrap_err().to_string(),
            "`cargo xtask bench` takes only `peers` or `http-peers`, and `--quick`, got `--full`"
        );
    }
}
