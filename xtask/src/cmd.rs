//! Running external programs: every command is printed before it runs, and a failure names
//! the exact command line so it can be copied and rerun.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// A `cargo` command: the `cargo` that runs xtask (`$CARGO`), or the one on `PATH`.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Prints `cmd`, runs it with inherited stdio, and fails unless it exits successfully.
pub(crate) fn run(cmd: &mut Command) -> Result<(), CommandError> {
    let line = display(cmd);
    eprintln!("$ {line}");
    match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(CommandError::Failed { line, status }),
        Err(source) => Err(CommandError::Spawn { line, source }),
    }
}

/// Prints `cmd`, runs it, and returns its stdout if it exits successfully.
///
/// Its stderr is discarded: this is for probes like `--version`, whose failure the caller
/// handles.
pub(crate) fn read(cmd: &mut Command) -> Result<String, CommandError> {
    let line = display(cmd);
    eprintln!("$ {line}");
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|source| CommandError::Spawn {
            line: line.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(CommandError::Failed {
            line,
            status: output.status,
        })
    }
}

/// `cmd` as a shell command line: environment overrides, program name, arguments.
pub(crate) fn display(cmd: &Command) -> String {
    let envs = cmd.get_envs().filter_map(|(key, value)| {
        value.map(|value| format!("{}={}", key.to_string_lossy(), quote(value)))
    });
    // `$CARGO` is an absolute path into the toolchain; show the name a person would type.
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_else(|| cmd.get_program())
        .to_string_lossy()
        .into_owned();
    let args = cmd.get_args().map(quote);
    envs.chain([program])
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.into_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A command that could not be started or did not succeed.
#[derive(Debug)]
pub(crate) enum CommandError {
    /// The program could not be started (not installed, not executable, ...).
    Spawn {
        /// The command line, as printed.
        line: String,
        /// Why it could not be started.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    Failed {
        /// The command line, as printed.
        line: String,
        /// How it exited.
        status: ExitStatus,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn { line, source } => write!(f, "could not run `{line}`: {source}"),
            Self::Failed { line, status } => write!(f, "`{line}` failed ({status})"),
        }
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } => Some(source),
            Self::Failed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_env_program_name_and_quoted_args() {
        let mut cmd = Command::new("/opt/rust/bin/cargo");
        cmd.env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--workspace", "it's"]);
        assert_eq!(
            display(&cmd),
            r"RUSTDOCFLAGS='-D warnings' cargo doc --workspace 'it'\''s'"
        );
    }

    #[test]
    fn failure_names_the_command_line() {
        let err = run(Command::new("false").arg("--flag")).unwrap_err();
        assert!(
            err.to_string().starts_with("`false --flag` failed ("),
            "{err}"
        );
    }

    #[test]
    fn missing_program_is_reported_with_its_command_line() {
        let err = read(&mut Command::new("xtask-no-such-program-here")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("could not run `xtask-no-such-program-here`"),
            "{err}"
        );
    }
}
