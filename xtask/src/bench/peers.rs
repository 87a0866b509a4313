//! `cargo xtask bench peers [--quick]`, and the peers section of a full run: verification
//! against `jsonwebtoken` as its users build it, from `bench/peers` (a Cargo project of its
//! own) built three times — see [`BUILDS`]. Each build measures its libraries side by side in
//! one process; the builds run one after the other, each pinned to one core with `taskset`
//! when there is one to spare, so that the harness does not migrate between cores mid-batch.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::runner::Runner;
use crate::{Result, cmd};

/// One build of `bench/peers`: its name (also its target directory's suffix), its features
/// and what it compares.
pub(super) struct Build {
    pub(super) name: &'static str,
    pub(super) features: &'static str,
    pub(super) compares: &'static str,
}

/// The builds, in the order they run. The first two also build `http_server` (feature
/// `http`) for [`http_peers`](super::http_peers), so that the two commands share one build
/// each instead of rebuilding every dependency whose features the server changes.
pub(super) const BUILDS: [Build; 3] = [
    Build {
        name: "ring",
        features: "jwt-aws-lc-rs,http",
        compares: "tokenward on ring (its default) vs jsonwebtoken with aws_lc_rs",
    },
    Build {
        name: "aws-lc-rs",
        features: "jwt-aws-lc-rs,tokenward-aws-lc-rs,http",
        compares: "tokenward on aws-lc-rs (feature aws-lc-rs) vs jsonwebtoken with aws_lc_rs",
    },
    Build {
        name: "rust-crypto",
        features: "jwt-rust-crypto",
        compares: "tokenward on ring vs jsonwebtoken with rust_crypto",
    },
];

/// The section's title in a full run's report.
pub(super) const TITLE: &str =
    "10. Verification against peers as their users build them (`bench/peers`)";

/// Builds and runs every build, returning their stdout (their tables) one after the other.
pub(super) fn run(runner: &mut Runner) -> Result<String> {
    let manifest = runner.root.join("bench/peers/Cargo.toml");
    let pin = pinning();
    let mut output = String::new();
    for build in &BUILDS {
        eprintln!("==> peers: {} ({})", build.name, build.compares);
        let target = runner.target.join(format!("peers-{}", build.name));
        let mut cargo = build_command(&manifest, &target, build);
        runner.commands.push(cmd::display(&cargo));
        cmd::run(&mut cargo)?;
        let mut harness = run_command(&binary(&target), pin.as_deref(), build, runner.quick);
        runner.commands.push(cmd::display(&harness));
        output.push_str(&cmd::tee(&mut harness)?);
    }
    Ok(output)
}

pub(super) fn build_command(manifest: &Path, target: &Path, build: &Build) -> Command {
    let mut cargo = cmd::cargo();
    cargo
        .env("CARGO_TARGET_DIR", target)
        .args(["build", "--release", "--manifest-path"])
        .arg(manifest)
        .args(["--features", build.features]);
    cargo
}

fn binary(target: &Path) -> PathBuf {
    target.join("release/tokenward-bench-peers")
}

fn run_command(binary: &Path, pin: Option<&str>, build: &Build, quick: bool) -> Command {
    let mut command = match pin {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", cpu]).arg(binary);
            taskset
        }
        None => Command::new(binary),
    };
    command.env("TOKENWARD_PEERS_BUILD", build.name);
    if quick {
        command.env("TOKENWARD_BENCH_QUICK", "1");
    }
    command
}

/// The core to pin the harness to: the last one, when `taskset` exists and there are at
/// least two (the first keeps the machine's own work).
fn pinning() -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let has_taskset = cmd::read(Command::new("taskset").arg("--version")).is_ok();
    (cores >= 2 && has_taskset).then(|| (cores - 1).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_select_one_jsonwebtoken_backend_each() {
        let manifest =
            std::fs::read_to_string(crate::workspace_root().join("bench/peers/Cargo.toml"))
                .unwrap();
        for build in &BUILDS {
            let backends = build
                .features
                .split(',')
                .filter(|f| f.starts_with("jwt-"))
                .count();
            assert_eq!(backends, 1, "{}", build.name);
            for feature in build.features.split(',') {
                assert!(
                    manifest.contains(&format!("\n{feature} = ")),
                    "{feature} is not a feature of bench/peers"
                );
            }
        }
    }

    #[test]
    fn commands() {
        let build = &BUILDS[1];
        let target = Path::new("/w/target/peers-aws-lc-rs");
        assert_eq!(
            cmd::display(&build_command(
                Path::new("/w/bench/peers/Cargo.toml"),
                target,
                build
            )),
            "CARGO_TARGET_DIR=/w/target/peers-aws-lc-rs cargo build --release --manifest-path \
             /w/bench/peers/Cargo.toml --features jwt-aws-lc-rs,tokenward-aws-lc-rs,http"
        );
        assert_eq!(
            cmd::display(&run_command(&binary(target), Some("1"), build, false)),
            "TOKENWARD_PEERS_BUILD=aws-lc-rs taskset -c 1 \
             /w/target/peers-aws-lc-rs/release/tokenward-bench-peers"
        );
        assert_eq!(
            cmd::display(&run_command(&binary(target), None, build, true)),
            "TOKENWARD_BENCH_QUICK=1 TOKENWARD_PEERS_BUILD=aws-lc-rs tokenward-bench-peers"
        );
    }
}
