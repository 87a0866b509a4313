//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Result, cmd, deny, fuzz, postgres, redis};

/// One check. Steps run in table order; a failing step stops the run.
struct Step {
    /// Short name, shown in headers and in the summary.
    name: &'static str,
    /// What the step checks, shown in its header.
    description: &'static str,
    run: fn(&Ctx) -> Result,
}

const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        description: "formatting (rustfmt)",
        run: fmt,
    },
    Step {
        name: "clippy",
        description: "lints on all targets and features, warnings denied",
        run: clippy,
    },
    Step {
        name: "test (incl. tidy)",
        description: "all tests with all features, the tidy checks in xtask/tests/tidy.rs \
                      among them, then doctests",
        run: test,
    },
    Step {
        name: "feature-matrix",
        description: "tests under other feature configurations (FEATURE_MATRIX)",
        run: feature_matrix,
    },
    Step {
        name: "rustdoc",
        description: "documentation builds without warnings",
        run: rustdoc,
    },
    Step {
        name: "deny",
        description: "cargo-deny: advisories, bans, licenses, sources",
        run: deny::check,
    },
    Step {
        name: "fuzz",
        description: "each cargo-fuzz target briefly (cargo xtask fuzz --smoke); skipped, \
                      saying why, where libFuzzer cannot run",
        run: fuzz::ci_step,
    },
];

/// A package tested with a particular set of its features, beyond the `--all-features` run
/// of the `test` step.
struct FeatureConfig {
    package: &'static str,
    /// Features enabled on top of the defaults; empty tests the default build.
    features: &'static [&'static str],
    /// Without the package's default features.
    no_default_features: bool,
    /// Tested, or only checked (`cargo check` of the library): where the tests'
    /// dev-dependencies would turn the defaults back on, a test run would not test the
    /// configuration.
    run: Run,
    /// The crypto provider tokenward-claims must have selected in this configuration, passed
    /// to the tests as [`PROVIDER_VAR`] (tests/it/attacks/provider.rs checks it).
    provider: &'static str,
    /// Why this configuration matters.
    why: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Test,
    Check,
}

/// The variable naming the crypto provider tokenward-claims must have selected.
const PROVIDER_VAR: &str = "TOKENWARD_CRYPTO_PROVIDER";

/// The provider of the `test` step: `--all-features` enables tokenward-claims' `ring` and
/// `aws-lc-rs`, and aws-lc-rs wins. *ring* is tested by the feature matrix's default builds
/// of tokenward-claims (the attack suite) and of the Guard.
const ALL_FEATURES_PROVIDER: &str = "aws-lc-rs";

/// jsonwebtoken panics at run time when both or neither of its crypto backends are enabled,
/// and tokenward-claims must be correct whatever the user's dependency graph enables. The
/// `test` step covers both backends (`--all-features`); these cover neither and one.
/// tokenward-claims' own providers: the `test` step runs everything on aws-lc-rs; these run
/// the claims tests (the attack suite among them) on *ring* and on aws-lc-rs alone, and the
/// Guard's on *ring*. The Guard must build and pass without its optional backends too,
/// tokenward-ratelimit must build without its in-memory store (a user with a store of their own compiles no governor), and
/// tokenward-redis without its `deadpool` feature.
const FEATURE_MATRIX: &[FeatureConfig] = &[
    FeatureConfig {
        package: "tokenward-claims",
        features: &[],
        no_default_features: false,
        run: Run::Test,
        provider: "ring",
        why: "default build: no jsonwebtoken crypto backend",
    },
    FeatureConfig {
        package: "tokenward-claims",
        features: &["__jsonwebtoken-rust-crypto"],
        no_default_features: false,
        run: Run::Test,
        provider: "ring",
        why: "jsonwebtoken's rust_crypto backend enabled",
    },
    FeatureConfig {
        package: "tokenward-claims",
        features: &["aws-lc-rs"],
        no_default_features: true,
        run: Run::Test,
        provider: "aws-lc-rs",
        why: "aws-lc-rs as the only crypto provider: no ring in the library (the attack suite \
              checks signatures against ring as a dev-dependency)",
    },
    FeatureConfig {
        package: "tokenward-guard",
        features: &["testkit"],
        no_default_features: false,
        run: Run::Test,
        provider: "ring",
        why: "the Guard without its redis and jwks features (in-memory stores only)",
    },
    FeatureConfig {
        package: "tokenward-redis",
        features: &[],
        no_default_features: true,
        run: Run::Check,
        provider: "ring",
        why: "without the deadpool feature (the `test` step enables it; checked, not tested)",
    },
    FeatureConfig {
        package: "tokenward-ratelimit",
        features: &[],
        no_default_features: true,
        run: Run::Check,
        provider: "ring",
        why: "without the in-memory store: no governor, dashmap or quanta (checked, not tested)",
    },
    FeatureConfig {
        package: "tokenward-guard",
        features: &["postgres"],
        no_default_features: true,
        run: Run::Check,
        provider: "ring",
        why: "PostgreSQL stores without Redis: GuardStores::postgres, no hybrid (checked, not \
              tested)",
    },
    FeatureConfig {
        package: "tokenward-anomaly",
        features: &[],
        no_default_features: true,
        run: Run::Check,
        provider: "ring",
        why: "without the redis feature: no tokenward-redis, no redis-rs (checked, not tested)",
    },
];

/// Build settings for every cargo command of the run: a CI build is a clean build that is
/// run once, so it skips what only pays off when a developer rebuilds or debugs.
/// - No incremental compilation: its bookkeeping slows a build from scratch and fills the
///   disk, and nothing is rebuilt.
/// - Debug info of the test builds reduced to line tables: a failing test's backtrace still
///   names files and lines, while the compiler emits and the linker copies far less of the
///   DWARF that only a debugger reads (the test binaries link axum, actix-web, redis-rs,
///   sqlx and aws-lc-rs each).
///
/// Release builds (the pinned tools' `cargo install`, the fuzz targets) are not affected.
const CI_BUILD_ENV: &[(&str, &str)] = &[
    ("CARGO_INCREMENTAL", "0"),
    ("CARGO_PROFILE_DEV_DEBUG", "line-tables-only"),
];

/// What the steps need to know about where they run.
pub(crate) struct Ctx {
    /// The workspace root; every command runs there.
    pub(crate) root: PathBuf,
    /// The Redis server tests use, passed to them as `REDIS_URL`.
    redis_url: String,
    /// The seed nodes of the Redis Cluster tests use, passed as `REDIS_CLUSTER_URLS`.
    cluster_urls: String,
    /// The PostgreSQL server tests use, passed to them as `DATABASE_URL`.
    database_url: String,
}

impl Ctx {
    /// A `cargo` command that runs in the workspace root, with `REDIS_URL`,
    /// `REDIS_CLUSTER_URLS` and `DATABASE_URL` set, and the build settings of
    /// [`CI_BUILD_ENV`].
    pub(crate) fn cargo(&self) -> Command {
        let mut cmd = cmd::cargo();
        cmd.current_dir(&self.root)
            .env("REDIS_URL", &self.redis_url)
            .env(redis::CLUSTER_URLS_VAR, &self.cluster_urls)
            .env(postgres::DATABASE_URL_VAR, &self.database_url)
            .envs(CI_BUILD_ENV.iter().copied());
        cmd
    }
}

/// Runs every step, prints a summary, and fails if a step failed.
pub(crate) fn run(args: &[String]) -> Result {
    if let Some(arg) = args.first() {
        return Err(format!("`cargo xtask ci` takes no arguments, got `{arg}`").into());
    }
    eprintln!("==> redis: a real server for the tests that need one (they never skip)");
    // Stopped (if xtask started it) when `redis` is dropped at the end of the run.
    let redis = redis::provision()?;
    eprintln!("==> redis cluster: three primaries for the cluster suites (they never skip)");
    let cluster_dir = crate::workdir::WorkDir::create("ci-redis-cluster")?;
    // Stopped (if xtask started it) when `cluster` is dropped at the end of the run.
    let cluster = redis::provision_cluster(cluster_dir.path())?;
    eprintln!("==> postgres: a real server for the tests that need one (they never skip)");
    // Stopped (if xtask started it) when `postgres` is dropped at the end of the run.
    let postgres = postgres::provision()?;
    let ctx = Ctx {
        root: crate::workspace_root(),
        redis_url: redis.url.clone(),
        cluster_urls: cluster.urls.clone(),
        database_url: postgres.url.clone(),
    };

    let started = Instant::now();
    // One (duration, result) per step that ran, in table order.
    let mut outcomes: Vec<(Duration, Result)> = Vec::with_capacity(STEPS.len());
    for (index, step) in STEPS.iter().enumerate() {
        eprintln!(
            "\n==> [{}/{}] {}: {}",
            index + 1,
            STEPS.len(),
            step.name,
            step.description
        );
        let step_started = Instant::now();
        let result = (step.run)(&ctx);
        let failed = result.is_err();
        outcomes.push((step_started.elapsed(), result));
        if failed {
            break;
        }
    }

    eprintln!("\n==> summary");
    let mut failed_step = None;
    for (index, step) in STEPS.iter().enumerate() {
        match outcomes.get(index) {
            Some((took, Ok(()))) => eprintln!("  ok       {:>8}  {}", secs(*took), step.name),
            Some((took, Err(err))) => {
                eprintln!("  FAILED   {:>8}  {}: {err}", secs(*took), step.name);
                failed_step = Some(step.name);
            }
            None => eprintln!("  skipped  {:>8}  {}", "", step.name),
        }
    }
    eprintln!("  total    {:>8}", secs(started.elapsed()));

    match failed_step {
        Some(name) => Err(format!("`cargo xtask ci` failed at step `{name}`").into()),
        None => {
            eprintln!("\nall {} steps passed", STEPS.len());
            Ok(())
        }
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

fn fmt(ctx: &Ctx) -> Result {
    cmd::run(ctx.cargo().args(["fmt", "--all", "--check"]))?;
    Ok(())
}

fn clippy(ctx: &Ctx) -> Result {
    cmd::run(ctx.cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(())
}

fn test(ctx: &Ctx) -> Result {
    let cargo = || {
        let mut cargo = ctx.cargo();
        cargo.env(PROVIDER_VAR, ALL_FEATURES_PROVIDER);
        cargo
    };
    if cmd::read(ctx.cargo().args(["nextest", "--version"])).is_ok() {
        // nextest fails a run that finds no tests; the workspace always has some (tidy.rs).
        cmd::run(cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
        ]))?;
        // nextest does not run doctests.
        cmd::run(cargo().args(["test", "--workspace", "--all-features", "--doc"]))?;
    } else {
        eprintln!("cargo-nextest is not installed; running the tests with `cargo test`");
        // Doctests included.
        cmd::run(cargo().args(["test", "--workspace", "--all-features", "--no-fail-fast"]))?;
    }
    Ok(())
}

fn feature_matrix(ctx: &Ctx) -> Result {
    for config in FEATURE_MATRIX {
        eprintln!("--- {}: {}", config.package, config.why);
        let mut cargo = ctx.cargo();
        cargo.env(PROVIDER_VAR, config.provider);
        match config.run {
            Run::Test => cargo.args(["test", "--package", config.package]),
            Run::Check => cargo.args(["check", "--package", config.package]),
        };
        if config.no_default_features {
            cargo.arg("--no-default-features");
        }
        if !config.features.is_empty() {
            cargo.arg("--features").arg(config.features.join(","));
        }
        cmd::run(&mut cargo)?;
    }
    Ok(())
}

fn rustdoc(ctx: &Ctx) -> Result {
    cmd::run(ctx.cargo().env("RUSTDOCFLAGS", "-D warnings").args([
        "doc",
        "--workspace",
        "--no-deps",
        "--all-features",
    ]))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FEATURE_MATRIX, STEPS};
    use std::collections::HashSet;

    #[test]
    fn step_names_are_unique() {
        let mut seen = HashSet::new();
        for step in STEPS {
            assert!(
                seen.insert(step.name),
                "duplicate step name `{}`",
                step.name
            );
        }
    }

    #[test]
    fn feature_configs_are_distinct() {
        let mut seen = HashSet::new();
        for config in FEATURE_MATRIX {
            assert!(
                seen.insert((config.package, config.features, config.no_default_features)),
                "{} {:?} is listed twice",
                config.package,
                config.features
            );
        }
    }
}
