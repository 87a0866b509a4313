//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (a project of its own, outside the
//! workspace), and the `fuzz` step of `cargo xtask ci`.
//!
//! - `cargo xtask fuzz --smoke`: every target for [`SMOKE_SECS`] seconds on *ring*, then the
//!   targets that verify signatures ([`CRYPTO_TARGETS`]) again on aws-lc-rs (what CI runs).
//! - `cargo xtask fuzz [TARGET]... [--time SECS] [--provider ring|aws-lc-rs]`: the named
//!   targets (all by default), each for `SECS` seconds ([`DEFAULT_SECS`] by default), one
//!   after the other, on the crypto provider given (*ring* by default).
//!
//! Targets run one at a time, single-process, on the stable toolchain with
//! `--sanitizer none` (sanitizers need nightly; the code under test forbids `unsafe`), with
//! debug assertions and overflow checks on. Each target's corpus is `fuzz/corpus/<target>/`:
//! its committed `seeds/` plus what libFuzzer adds beside them (git-ignored). Crash inputs
//! go to `fuzz/artifacts/<target>/` (git-ignored too).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tool::PinnedTool;
use crate::{Result, cmd};

/// The cargo-fuzz release used, installed on demand (`--locked`) when
/// `cargo fuzz --version` reports anything else. 0.13 builds on stable with
/// `--sanitizer none`.
pub(crate) const CARGO_FUZZ: PinnedTool = PinnedTool {
    package: "cargo-fuzz",
    version: "0.13.2",
};

/// Seconds per target in a smoke run (`cargo xtask fuzz --smoke`, and CI).
pub(crate) const SMOKE_SECS: u32 = 15;

/// Seconds per target when `--time` is not given.
const DEFAULT_SECS: u32 = 60;

/// The longest input libFuzzer generates, in bytes (tokens are capped at 8 KiB anyway).
const MAX_LEN: u32 = 4096;

/// The fuzz targets: `[[bin]]` names in `fuzz/Cargo.toml`, and what each one checks.
pub(crate) const TARGETS: &[(&str, &str)] = &[
    (
        "verify_token",
        "Validator::verify / verify_with: raw, correctly signed, and mutated valid tokens",
    ),
    (
        "jwks",
        "KeySet::from_jwks_json / Key::from_jwk_json: loaded keys round-trip through JWKS",
    ),
    (
        "refresh_token",
        "RefreshToken::parse / FamilyId::parse against an exact model of the format",
    ),
    (
        "authorization",
        "bearer_credentials / cookie_credentials against a model of RFC 6750 b64token",
    ),
    (
        "client_ip",
        "ClientIp::resolve over Forwarded / X-Forwarded-For behind trusted proxies",
    ),
];

/// The targets whose inputs reach signature verification: the smoke run repeats them on
/// every crypto provider tokenward-claims has.
pub(crate) const CRYPTO_TARGETS: &[&str] = &["verify_token", "jwks"];

/// The crypto provider tokenward-claims is built with for a run (the fuzz crate's features).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    /// *ring*, tokenward-claims' default.
    Ring,
    /// aws-lc-rs (the fuzz crate's `aws-lc-rs` feature).
    AwsLcRs,
}

impl Provider {
    fn parse(name: &str) -> Option<Provider> {
        match name {
            "ring" => Some(Provider::Ring),
            "aws-lc-rs" => Some(Provider::AwsLcRs),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Provider::Ring => "ring",
            Provider::AwsLcRs => "aws-lc-rs",
        }
    }

    /// `cargo fuzz` arguments selecting this provider.
    fn args(self) -> &'static [&'static str] {
        match self {
            Provider::Ring => &[],
            Provider::AwsLcRs => &["--features", "aws-lc-rs"],
        }
    }
}

/// `cargo xtask fuzz ...`.
pub(crate) fn run(args: &[String]) -> Result {
    let request = parse_args(args)?;
    let root = crate::workspace_root();
    if let Err(why) = ensure_toolchain(&root) {
        return Err(format!("cannot fuzz: {why}").into());
    }
    if request.smoke {
        return smoke(&root);
    }
    run_targets(&root, &request.targets, request.secs, request.provider)
}

/// Every target on *ring*, then [`CRYPTO_TARGETS`] on aws-lc-rs, [`SMOKE_SECS`] each.
fn smoke(root: &Path) -> Result {
    run_targets(root, &all_targets(), SMOKE_SECS, Provider::Ring)?;
    run_targets(root, CRYPTO_TARGETS, SMOKE_SECS, Provider::AwsLcRs)
}

/// The `fuzz` step of `cargo xtask ci`: the smoke run when the fuzzing toolchain is
/// available (installing the pinned cargo-fuzz if needed); otherwise it says why it is
/// skipped, and passes. A target that does not build or finds a crash fails the step.
pub(crate) fn ci_step(ctx: &crate::ci::Ctx) -> Result {
    match ensure_toolchain(&ctx.root) {
        Ok(()) => smoke(&ctx.root),
        Err(why) => {
            eprintln!("fuzzing SKIPPED: {why}");
            Ok(())
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Request {
    targets: Vec<&'static str>,
    secs: u32,
    provider: Provider,
    smoke: bool,
}

fn all_targets() -> Vec<&'static str> {
    TARGETS.iter().map(|(name, _)| *name).collect()
}

fn parse_args(args: &[String]) -> Result<Request> {
    let mut targets = Vec::new();
    let mut secs = None;
    let mut smoke = false;
    let mut provider = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--provider" => {
                let value = args.next().ok_or("`--provider` needs ring or aws-lc-rs")?;
                provider = Some(Provider::parse(value).ok_or_else(|| {
                    format!("`--provider {value}`: the providers are ring and aws-lc-rs")
                })?);
            }
            "--time" => {
                let value = args.next().ok_or("`--time` needs a number of seconds")?;
                let parsed = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("`--time {value}`: not a positive whole number"))?;
                secs = Some(parsed);
            }
            name => match TARGETS.iter().find(|(target, _)| *target == name) {
                Some((target, _)) => targets.push(*target),
                None => {
                    return Err(format!(
                        "unknown fuzz target or option `{name}`; targets: {}",
                        all_targets().join(", ")
                    )
                    .into());
                }
            },
        }
    }
    if smoke && (secs.is_some() || !targets.is_empty() || provider.is_some()) {
        return Err(
            "`--smoke` runs every target for a fixed time on both providers; give no \
                    targets, --time or --provider"
                .into(),
        );
    }
    if targets.is_empty() {
        targets = all_targets();
    }
    let secs = if smoke {
        SMOKE_SECS
    } else {
        secs.unwrap_or(DEFAULT_SECS)
    };
    Ok(Request {
        targets,
        secs,
        provider: provider.unwrap_or(Provider::Ring),
        smoke,
    })
}

/// Checks that fuzzing can work here, installing the pinned cargo-fuzz if it is missing;
/// `Err` says why not, for a person.
fn ensure_toolchain(root: &Path) -> std::result::Result<(), String> {
    let supported_os = cfg!(any(target_os = "linux", target_os = "macos"));
    let supported_arch = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
    if !(supported_os && supported_arch) {
        return Err(
            "libFuzzer (cargo-fuzz) runs on Linux and macOS, x86_64 and aarch64 only".into(),
        );
    }
    // libfuzzer-sys compiles libFuzzer (C++) from source with the `cc` crate.
    let cxx = std::env::var_os("CXX").unwrap_or_else(|| "c++".into());
    if cmd::read(Command::new(&cxx).arg("--version")).is_err() {
        return Err(format!(
            "no C++ compiler (`{}`): libfuzzer-sys builds libFuzzer from source; install g++ \
             or clang, or set CXX",
            cxx.to_string_lossy()
        ));
    }
    CARGO_FUZZ.ensure(|| {
        let mut cargo = cmd::cargo();
        cargo.current_dir(root);
        cargo
    })
}

/// Builds every target on `provider`, then runs each of `targets` for `secs` seconds, one at
/// a time.
fn run_targets(root: &Path, targets: &[&str], secs: u32, provider: Provider) -> Result {
    let fuzz_dir = root.join("fuzz");
    cmd::run(
        cargo_fuzz(&fuzz_dir)
            .args(["build", "--sanitizer", "none"])
            .args(provider.args()),
    )?;
    let mut failed = Vec::new();
    for &target in targets {
        eprintln!("--- fuzz {target}: {secs}s on {}", provider.name());
        // cargo-fuzz's own choice (`-artifact_prefix`), git-ignored.
        let artifacts = fuzz_dir.join("artifacts").join(target);
        let corpus = corpus_dir(&fuzz_dir, target);
        let mut fuzz = cargo_fuzz(&fuzz_dir);
        fuzz.args(["run", "--sanitizer", "none"])
            .args(provider.args())
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg(format!("-max_len={MAX_LEN}"))
            .arg("-print_final_stats=1");
        if let Err(err) = cmd::run(&mut fuzz) {
            eprintln!(
                "fuzz target `{target}` failed: {err}\n  the crashing input is in {}; make it a \
                 regression test in the affected crate",
                artifacts.display()
            );
            failed.push(target);
        }
    }
    if failed.is_empty() {
        eprintln!(
            "fuzzing: {} target(s) ran {secs}s each on {} without a finding",
            targets.len(),
            provider.name()
        );
        Ok(())
    } else {
        Err(format!(
            "fuzz target(s) failed on {}: {}",
            provider.name(),
            failed.join(", ")
        )
        .into())
    }
}

/// A `cargo fuzz` command that runs in `fuzz_dir`.
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut cargo = cmd::cargo();
    cargo.current_dir(fuzz_dir).arg("fuzz");
    cargo
}

fn corpus_dir(fuzz_dir: &Path, target: &str) -> PathBuf {
    fuzz_dir.join("corpus").join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        use Provider::{AwsLcRs, Ring};
        let all = all_targets();
        for (given, expected) in [
            (&[][..], Some((all.clone(), DEFAULT_SECS, Ring, false))),
            (
                &["--smoke"][..],
                Some((all.clone(), SMOKE_SECS, Ring, true)),
            ),
            (
                &["jwks", "--time", "300"][..],
                Some((vec!["jwks"], 300, Ring, false)),
            ),
            (
                &["--time", "5", "jwks", "client_ip"][..],
                Some((vec!["jwks", "client_ip"], 5, Ring, false)),
            ),
            (
                &["verify_token", "--provider", "aws-lc-rs"][..],
                Some((vec!["verify_token"], DEFAULT_SECS, AwsLcRs, false)),
            ),
            (
                &["--provider", "ring"][..],
                Some((all.clone(), DEFAULT_SECS, Ring, false)),
            ),
            (&["--provider", "openssl"][..], None),
            (&["--provider"][..], None),
            (&["--smoke", "--provider", "aws-lc-rs"][..], None),
            (&["--smoke", "jwks"][..], None),
            (&["--smoke", "--time", "5"][..], None),
            (&["--time"][..], None),
            (&["--time", "0"][..], None),
            (&["--time", "-1"][..], None),
            (&["no_such_target"][..], None),
        ] {
            let got = parse_args(&args(given)).ok();
            let expected = expected.map(|(targets, secs, provider, smoke)| Request {
                targets,
                secs,
                provider,
                smoke,
            });
            assert_eq!(got, expected, "{given:?}");
        }
        for target in CRYPTO_TARGETS {
            assert!(all.contains(target), "{target} is not a fuzz target");
        }
    }

    /// Every `[[bin]]` of fuzz/Cargo.toml is in [`TARGETS`], which has nothing else, and
    /// every target has committed seeds.
    #[test]
    fn targets_match_the_fuzz_manifest_and_have_seeds() {
        let fuzz_dir = crate::workspace_root().join("fuzz");
        let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).unwrap();
        let mut bins = Vec::new();
        let mut in_bin = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                bins.push(name.trim_matches('"').to_owned());
            }
        }
        bins.sort();
        let mut targets: Vec<String> = all_targets().into_iter().map(str::to_owned).collect();
        targets.sort();
        assert_eq!(bins, targets);
        for target in all_targets() {
            let seeds = corpus_dir(&fuzz_dir, target).join("seeds");
            let count = std::fs::read_dir(&seeds).map_or(0, Iterator::count);
            assert!(count > 0, "{}: no seed inputs", seeds.display());
        }
    }
}
