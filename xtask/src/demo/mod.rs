//! `cargo xtask demo [--redis | --redis-tls | --redis-cluster]`: a readable transcript of tokenward doing its
//! job.
//!
//! In a fresh temporary directory:
//! 1. `tokenward keygen` writes an EdDSA key directory;
//! 2. the reference API `tokenward-demo` starts on a free port with those keys (`--keys`,
//!    in-memory stores; with `--redis`: two instances sharing one Redis under a random key
//!    prefix, so they are one service; with `--redis-tls`: the same on a throwaway
//!    `redis-server` speaking TLS only to them — `rediss://` and `--redis-ca` with a CA made
//!    for the run; with `--redis-cluster`: the same on a throwaway 3-primary Redis Cluster,
//!    `--redis-cluster` with its seed nodes), with small limits so the 429 steps are quick, and
//!    `tokenward-demo-lifecycle` drives its whole lifecycle over real HTTP: login, `/me`, a
//!    tampered token, the admin scope, parallel refreshes (one successor), an idempotent
//!    retry, reuse after the grace window, logout, logout-all, the subject limit and the
//!    failure ban. The servers are stopped afterwards, also on failure;
//! 3. the `tokenward` CLI issues a token with the same keys, verifies it, and shows the typed
//!    rejections of a tampered token (`signature`), an expired one (`expired`), a token
//!    presented to the wrong audience (`audience`) and an `alg: none` forgery (`algorithm`).
//!
//! Every step states what it expects and what it got; the demo fails if any step gives
//! another result, so it doubles as an end-to-end check.
//!
//! This module builds the binaries and keeps the transcript; [`cli`] runs the CLI's steps
//! (1 and 3), [`http`] the API's lifecycle (2), and [`process`] the servers and other
//! programs they start.

mod cli;
mod http;
mod process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::cmd;
use crate::workdir::WorkDir;

/// Where the demo's API instances keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stores {
    /// One instance, in-memory stores.
    Memory,
    /// Two instances on the test Redis.
    Redis,
    /// Two instances on a throwaway TLS Redis (`rediss://`, `--redis-ca`).
    RedisTls,
    /// Two instances on a throwaway 3-primary Redis Cluster (`--redis-cluster`).
    RedisCluster,
}

/// Runs the demo.
pub(crate) fn run(args: &[String]) -> Result {
    let stores = match args {
        [] => Stores::Memory,
        [flag] if flag == "--redis" => Stores::Redis,
        [flag] if flag == "--redis-tls" => Stores::RedisTls,
        [flag] if flag == "--redis-cluster" => Stores::RedisCluster,
        [other, ..] => {
            return Err(format!(
                "`cargo xtask demo` takes only `--redis`, `--redis-tls` or `--redis-cluster` \
                 (got `{other}`)"
            )
            .into());
        }
    };
    let root = crate::workspace_root();
    cmd::run(cmd::cargo().current_dir(&root).args([
        "build",
        "-p",
        "tokenward-cli",
        "-p",
        "tokenward-demo",
        "--quiet",
    ]))?;
    let debug = target_dir(&root)?.join("debug");
    let binary = |name: &str| -> Result<PathBuf> {
        let bin = debug.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{}: not found after building", bin.display()).into())
        }
    };

    let work = WorkDir::create("tokenward-demo")?;
    println!("tokenward demo — working in {}\n", work.path().display());
    let mut demo = Demo {
        bin: binary("tokenward")?,
        server_bin: binary("tokenward-demo")?,
        lifecycle_bin: binary("tokenward-demo-lifecycle")?,
        dir: work.path().to_owned(),
        step: 0,
        failures: Vec::new(),
    };
    let result = demo.script(stores);
    match (&result, demo.failures.is_empty()) {
        (Ok(()), true) => {
            println!(
                "All {} steps gave the expected result: the API over HTTP{}, then the CLI.",
                demo.step,
                match stores {
                    Stores::Memory => "",
                    Stores::Redis => " (two instances on Redis)",
                    Stores::RedisTls => " (two instances on Redis over TLS)",
                    Stores::RedisCluster => " (two instances on a Redis Cluster)",
                }
            );
            Ok(())
        }
        _ => {
            // Keep the files (and the server logs) for a look at what went wrong.
            work.keep();
            let mut message = format!(
                "the demo did not go as expected (files and server logs kept in {}):",
                demo.dir.display()
            );
            for failure in &demo.failures {
                let _ = write!(message, "\n  - {failure}");
            }
            if let Err(err) = result {
                let _ = write!(message, "\n  - {err}");
            }
            Err(message.into())
        }
    }
}

/// The demo's binaries and its transcript so far.
struct Demo {
    /// `tokenward` (the CLI).
    bin: PathBuf,
    /// `tokenward-demo` (the API).
    server_bin: PathBuf,
    /// `tokenward-demo-lifecycle` (the HTTP client that drives the API).
    lifecycle_bin: PathBuf,
    /// The working directory every program runs in.
    dir: PathBuf,
    /// The number of the last step printed.
    step: usize,
    /// The steps that did not give the expected result.
    failures: Vec<String>,
}

impl Demo {
    fn script(&mut self, stores: Stores) -> Result {
        self.keygen()?;
        self.http(stores)?;
        self.cli()
    }

    /// Numbers and prints the next step's header.
    fn begin_step(&mut self, what: &str) {
        self.step += 1;
        println!("[{}] {what}", self.step);
    }
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` when absolute, else `cargo metadata`'s.
fn target_dir(root: &Path) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
    {
        return Ok(dir);
    }
    let metadata = cmd::read(cmd::cargo().current_dir(root).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    target_directory(&metadata)
}

/// The `target_directory` of `cargo metadata`'s JSON output.
fn target_directory(metadata: &str) -> Result<PathBuf> {
    let metadata: serde_json::Value = serde_json::from_str(metadata)
        .map_err(|e| format!("`cargo metadata` printed no JSON: {e}"))?;
    metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| "`cargo metadata` output has no target_directory".into())
}

/// Owned copies of `args`, for a command line assembled from constants and values.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_directory_from_metadata() {
        let json = r#"{"packages":[],"target_directory":"C:\\work\\target","version":1}"#;
        assert_eq!(
            target_directory(json).unwrap(),
            PathBuf::from(r"C:\work\target")
        );
        for bad in [
            r#"{"packages":[],"workspace_root":"/w","version":1}"#,
            r#"{"target_directory":7}"#,
            "error: could not find `Cargo.toml`",
        ] {
            assert!(target_directory(bad).is_err(), "{bad}");
        }
    }

    /// `cargo metadata` on this workspace names a target directory (where the demo finds
    /// its binaries).
    #[test]
    fn target_dir_of_this_workspace() {
        let dir = target_dir(&crate::workspace_root()).unwrap();
        assert!(dir.is_absolute(), "{}", dir.display());
    }
}
