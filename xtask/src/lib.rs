//! The command-line surface of `cargo xtask`, shared by the binary and the tidy tests.
//!
//! The binary (`src/main.rs`) dispatches on [`Subcommand`] with an exhaustive `match`, and
//! the tidy tests check every `cargo xtask …` command in the documentation against
//! [`Subcommand::from_name`], so the two cannot drift apart.
//!
//! ```
//! use xtask::Subcommand;
//!
//! assert_eq!(Subcommand::from_name("ci"), Some(Subcommand::Ci));
//! assert_eq!(Subcommand::from_name("deploy"), None);
//! assert!(xtask::usage().contains("cargo xtask ci"));
//! ```

use std::fmt::Write as _;

/// A `cargo xtask` subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand {
    /// Run every check CI runs.
    Ci,
    /// Run the demo (`cargo xtask demo [--redis | --redis-tls | --redis-cluster]`).
    Demo,
    /// Run the benchmarks against their peers (`cargo xtask bench [--quick]`).
    Bench,
    /// Run the fuzz targets (`cargo xtask fuzz --smoke`, `cargo xtask fuzz [TARGET] --time SECS`).
    Fuzz,
    /// Print usage.
    Help,
}

impl Subcommand {
    /// Every subcommand, in the order `help` lists them.
    pub const ALL: &'static [Self] = &[Self::Ci, Self::Demo, Self::Bench, Self::Fuzz, Self::Help];

    /// The name typed on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ci => "ci",
            Self::Demo => "demo",
            Self::Bench => "bench",
            Self::Fuzz => "fuzz",
            Self::Help => "help",
        }
    }

    /// One line for the usage text.
    pub const fn summary(self) -> &'static str {
        match self {
            Self::Ci => {
                "run every check CI runs: fmt, clippy, tests (incl. tidy), feature matrix, \
                 rustdoc, cargo-deny, fuzz smoke"
            }
            Self::Demo => {
                "run the demo: the tokenward-demo API driven over HTTP (login, refresh, \
                 reuse, logout, limits, bans), then the CLI; `--redis`: two instances on Redis"
            }
            Self::Bench => {
                "run the benchmarks side by side with their peers (verify, guard, rate limit, \
                 HTTP, Redis, refresh, memory, peers as their users build them) and rewrite \
                 docs/benchmarks.md; `--quick`: a short run that prints the ratios as JSON; \
                 `peers`: only verification against jsonwebtoken's own backends, printed"
            }
            Self::Fuzz => {
                "run the cargo-fuzz targets in fuzz/: `--smoke` runs each briefly (part of ci); \
                 `[TARGET]... --time SECS` runs longer"
            }
            Self::Help => "print this message",
        }
    }

    /// The subcommand called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|cmd| cmd.name() == name)
    }
}

/// The usage text printed by `cargo xtask help`.
pub fn usage() -> String {
    let width = Subcommand::ALL
        .iter()
        .map(|cmd| cmd.name().len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("Usage: cargo xtask <COMMAND> [ARGS]...\n\nCommands:\n");
    for cmd in Subcommand::ALL {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "  {:width$}  {}", cmd.name(), cmd.summary());
    }
    text.push_str("\nEvery check CI runs is `cargo xtask ci`; `.ci/run` calls exactly that.\n");
    text
}

#[cfg(test)]
mod tests {
    use super::Subcommand;

    #[test]
    fn names_round_trip() {
        for &cmd in Subcommand::ALL {
            assert_eq!(Subcommand::from_name(cmd.name()), Some(cmd));
        }
        assert_eq!(Subcommand::from_name(""), None);
        assert_eq!(Subcommand::from_name("CI"), None);
    }

    #[test]
    fn usage_lists_every_subcommand() {
        let usage = super::usage();
        for cmd in Subcommand::ALL {
            assert!(
                usage.contains(cmd.name()),
                "{} missing from:\n{usage}",
                cmd.name()
            );
        }
    }
}
