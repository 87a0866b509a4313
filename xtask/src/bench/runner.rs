//! Running the benchmarks: the demo binary build, the criterion benches and the own
//! harnesses of `tokenward-bench`, each command noted for the report.

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, cmd};

/// Runs the benchmarks' commands in the workspace, noting each one.
pub(super) struct Runner {
    pub(super) root: PathBuf,
    /// Cargo's target directory (criterion's results and the demo binary are there).
    pub(super) target: PathBuf,
    pub(super) quick: bool,
    /// The Redis the harnesses use.
    pub(super) redis_url: String,
    /// The PostgreSQL of the full run's PostgreSQL harnesses (`None` with `--quick`).
    pub(super) database_url: Option<String>,
    /// Every command run, as a person would type it.
    pub(super) commands: Vec<String>,
}

impl Runner {
    /// Builds the release `tokenward-demo` binary that `demo_redis` starts.
    pub(super) fn build_demo(&mut self) -> Result {
        let mut build = cmd::cargo();
        build
            .current_dir(&self.root)
            .args(["build", "--release", "-p", "tokenward-demo"]);
        self.commands.push(cmd::display(&build));
        cmd::run(&mut build)?;
        Ok(())
    }

    /// Runs a criterion bench (shortened with `--quick`).
    pub(super) fn criterion(&mut self, bench: &str) -> Result {
        let mut cargo = self.criterion_command(bench);
        self.commands.push(cmd::display(&cargo));
        cmd::run(&mut cargo)?;
        Ok(())
    }

    fn criterion_command(&self, bench: &str) -> Command {
        let mut cargo = self.cargo_bench(bench);
        if self.quick {
            cargo.args(["--", "--warm-up-time", "0.5", "--measurement-time", "1.5"]);
        }
        cargo
    }

    /// Runs an own harness, echoing and returning its stdout.
    pub(super) fn harness(&mut self, bench: &str) -> Result<String> {
        let mut cargo = self.harness_command(bench);
        self.commands.push(cmd::display(&cargo));
        Ok(cmd::tee(&mut cargo)?)
    }

    fn harness_command(&self, bench: &str) -> Command {
        let mut cargo = self.cargo_bench(bench);
        cargo.env("REDIS_URL", &self.redis_url);
        if let Some(url) = &self.database_url {
            cargo.env(crate::postgres::DATABASE_URL_VAR, url);
        }
        if bench == "demo_redis" {
            cargo.env(
                "TOKENWARD_DEMO_BIN",
                self.target.join("release/tokenward-demo"),
            );
        }
        if self.quick {
            cargo.env("TOKENWARD_BENCH_QUICK", "1");
        }
        cargo
    }

    fn cargo_bench(&self, bench: &str) -> Command {
        let mut cargo = cmd::cargo();
        cargo
            .current_dir(&self.root)
            .args(["bench", "-p", "tokenward-bench", "--bench", bench]);
        cargo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(quick: bool) -> Runner {
        Runner {
            root: PathBuf::from("/w"),
            target: PathBuf::from("/w/target"),
            quick,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            database_url: None,
            commands: Vec::new(),
        }
    }

    /// The commands as the report's "Commands" section shows them.
    #[test]
    fn criterion_commands_are_shortened_when_quick() {
        assert_eq!(
            cmd::display(&runner(false).criterion_command("verify")),
            "cargo bench -p tokenward-bench --bench verify"
        );
        assert_eq!(
            cmd::display(&runner(true).criterion_command("guard")),
            "cargo bench -p tokenward-bench --bench guard -- --warm-up-time 0.5 \
             --measurement-time 1.5"
        );
    }

    #[test]
    fn harness_commands_carry_their_environment() {
        for (quick, bench, line) in [
            (
                false,
                "http",
                "REDIS_URL=redis://127.0.0.1:6379 cargo bench -p tokenward-bench --bench http",
            ),
            (
                true,
                "http",
                "REDIS_URL=redis://127.0.0.1:6379 TOKENWARD_BENCH_QUICK=1 cargo bench -p \
                 tokenward-bench --bench http",
            ),
            (
                false,
                "demo_redis",
                "REDIS_URL=redis://127.0.0.1:6379 \
                 TOKENWARD_DEMO_BIN=/w/target/release/tokenward-demo cargo bench -p \
                 tokenward-bench --bench demo_redis",
            ),
        ] {
            let shown = cmd::display(&runner(quick).harness_command(bench));
            // `Command::get_envs` lists the variables sorted.
            assert_eq!(shown, line);
        }
    }
}
