//! `cargo xtask bench [--quick]`: runs tokenward's benchmarks against their peers and
//! reports them side by side, from one run.
//!
//! - Criterion benches of `tokenward-bench` — `verify` (tokenward vs `jsonwebtoken::decode`),
//!   `guard` (the in-memory Guard vs verification alone), `ratelimit` (the in-memory store vs
//!   raw `governor`) — read back from `target/criterion/<group>/<function>/new/estimates.json`
//!   (the mean and its 95 % interval).
//! - Own harnesses, whose `@bench NAME key=value ...` stdout lines are read: `http` (axum
//!   behind tokenward's layer, behind jwt-authorizer's, and without auth) and `demo_redis`
//!   (`GET /me` on the demo with Redis at 64 connections; Redis commands per request from
//!   `INFO`). Redis comes from xtask's provisioning (`REDIS_URL`, 127.0.0.1:6379, or a
//!   throwaway `redis-server`); the demo binary is built first.
//! - Full run only: `refresh_latency`, `revocation_memory`, `ratelimit_memory`, whose own
//!   tables are copied as printed.
//!
//! The full run rewrites the generated section of `docs/benchmarks.md` (between
//! [`docs::BEGIN`] and [`docs::END`]; everything else in the file is left alone). `--quick`
//! shortens criterion's warm-up/measurement and the harnesses' runs
//! (`TOKENWARD_BENCH_QUICK=1`), skips the full-run-only harnesses, writes its report to
//! `target/xtask-bench/quick.md` instead of the docs, and — like the full run — prints the
//! ratios as one JSON object on its last line.
//!
//! The modules follow the run: [`runner`] runs the commands, [`results`] reads what they
//! measured, [`sections`] judges each area against its target, [`report`] puts the report
//! together with the [`machine`] it ran on, and [`docs`] splices it into the docs.

mod docs;
mod machine;
mod report;
mod results;
mod runner;
mod sections;
#[cfg(test)]
mod testdata;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::{Result, redis};
use machine::Machine;
use report::{Report, Run};
use results::Criterion;
use runner::Runner;

/// The criterion benches, run first.
const CRITERION_BENCHES: [&str; 3] = ["verify", "guard", "ratelimit"];

/// The harnesses only a full run runs, and their section titles: the report copies their
/// tables as printed (they have no peer ratio).
const FULL_RUN_ONLY: [(&str, &str); 3] = [
    (
        "refresh_latency",
        "6. Refresh rotation, memory and Redis (`refresh_latency`)",
    ),
    (
        "revocation_memory",
        "7a. Memory per live revocation at 1 000 000 entries (`revocation_memory`)",
    ),
    (
        "ratelimit_memory",
        "7b. Rate-limit state under a flood of 1 000 000 keys (`ratelimit_memory`)",
    ),
];

/// Runs `cargo xtask bench [--quick]`.
pub(crate) fn run(args: &[String]) -> Result {
    let quick = parse_args(args)?;
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
    if !quick {
        for (bench, title) in FULL_RUN_ONLY {
            eprintln!("==> {bench}");
            full_run_only.push((title, runner.harness(bench)?));
        }
    }

    let took = started.elapsed();
    let machine = Machine::probe(&runner.root, &runner.redis_url, load_start).table();
    let report = Report::render(&Run {
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

/// `--quick`, or nothing.
fn parse_args(args: &[String]) -> Result<bool> {
    let mut quick = false;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            other => {
                return Err(
                    format!("`cargo xtask bench` takes only `--quick`, got `{other}`").into(),
                );
            }
        }
    }
    Ok(quick)
}

fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        for (args, quick) in [
            (&[][..], Some(false)),
            (&["--quick"][..], Some(true)),
            (&["--quick", "--quick"][..], Some(true)),
            (&["--help"][..], None),
            (&["--quick", "verify"][..], None),
        ] {
            let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(parse_args(&args).ok(), quick, "{args:?}");
        }
        assert_eq!(
            parse_args(&["--full".to_owned()]).unwrap_err().to_string(),
            "`cargo xtask bench` takes only `--quick`, got `--full`"
        );
    }
}
