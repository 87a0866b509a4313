//! Cargo subcommands xtask installs at a pinned release (`cargo-deny`, `cargo-fuzz`), so CI
//! and a developer's machine run the same one.

use std::process::Command;

use crate::cmd;

/// A cargo subcommand at a pinned release.
pub(crate) struct PinnedTool {
    /// The crate and its binary, `cargo-<subcommand>`.
    pub(crate) package: &'static str,
    /// The release required.
    pub(crate) version: &'static str,
}

impl PinnedTool {
    /// Makes sure `cargo <subcommand> --version` reports [`Self::version`], installing it
    /// with `cargo install --locked` if not; `Err` says why it could not, for a person.
    /// `cargo` makes each cargo command (where it runs, with which environment).
    pub(crate) fn ensure(&self, cargo: impl Fn() -> Command) -> Result<(), String> {
        let Self { package, version } = self;
        let subcommand = package.trim_start_matches("cargo-");
        let installed = || {
            cmd::read(cargo().args([subcommand, "--version"]))
                .ok()
                .map(|out| out.trim().trim_start_matches(package).trim().to_owned())
        };
        let found = installed();
        if found.as_deref() == Some(*version) {
            return Ok(());
        }
        eprintln!(
            "{package} {version} is required, found {}; installing it",
            found.as_deref().unwrap_or("none")
        );
        cmd::run(cargo().args(["install", package, "--version", version, "--locked"])).map_err(
            |err| {
                format!(
                    "{package} {version} is not installed and installing it failed ({err}); run \
                     `cargo install {package} --version {version} --locked`"
                )
            },
        )?;
        match installed() {
            Some(found) if found == *version => Ok(()),
            other => Err(format!(
                "installed {package} {version}, but `cargo {subcommand} --version` now reports \
                 {}; is another {package} earlier on PATH?",
                other.as_deref().unwrap_or("nothing")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE: PinnedTool = PinnedTool {
        package: "cargo-fake",
        version: "1.2.3",
    };

    /// A stand-in for `cargo`: `script` runs with cargo's arguments as `$1`, `$2`, ...
    fn fake_cargo(script: &'static str) -> impl Fn() -> Command {
        move || {
            let mut cargo = Command::new("sh");
            cargo.args(["-c", script, "cargo"]);
            cargo
        }
    }

    #[test]
    fn the_pinned_release_is_kept_or_installed() {
        for (script, result) in [
            // Installed at the pinned release: nothing to do.
            ("echo 'cargo-fake 1.2.3'", Ok(())),
            // Missing; installing it leaves it missing.
            (
                r#"if [ "$1" = install ]; then exit 0; fi; exit 1"#,
                Err(
                    "installed cargo-fake 1.2.3, but `cargo fake --version` now reports \
                     nothing; is another cargo-fake earlier on PATH?",
                ),
            ),
            // Another release, still there after installing (earlier on PATH).
            (
                "echo 'cargo-fake 1.0.0'",
                Err(
                    "installed cargo-fake 1.2.3, but `cargo fake --version` now reports 1.0.0; \
                     is another cargo-fake earlier on PATH?",
                ),
            ),
        ] {
            let got = FAKE.ensure(fake_cargo(script));
            assert_eq!(got, result.map_err(str::to_owned), "{script}");
        }
    }

    #[test]
    fn a_failed_install_says_how_to_install_by_hand() {
        let script = r#"if [ "$1" = install ]; then exit 101; fi; echo 'cargo-fake 1.0.0'"#;
        let err = FAKE.ensure(fake_cargo(script)).unwrap_err();
        assert!(
            err.starts_with("cargo-fake 1.2.3 is not installed and installing it failed (`sh -c "),
            "{err}"
        );
        assert!(
            err.ends_with(
                " cargo install cargo-fake --version 1.2.3 --locked` failed (exit status: 101)); \
                 run `cargo install cargo-fake --version 1.2.3 --locked`"
            ),
            "{err}"
        );
    }
}
