//! Running external programs: every command is printed before it runs, and a failure names
//! the exact command line so it can be copied and rerun.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead as _, BufReader};
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

/// Prints `cmd`, runs it, echoes its stdout line by line as it comes, and returns that
/// stdout if it exits successfully (its stderr is inherited).
pub(crate) fn tee(cmd: &mut Command) -> Result<String, CommandError> {
    let line = display(cmd);
    eprintln!("$ {line}");
    let mut output = String::new();
    let status = stream(cmd, |text| {
        println!("{text}");
        output.push_str(text);
        output.push('\n');
    });
    match status {
        Ok(status) if status.success() => Ok(output),
        Ok(status) => Err(CommandError::Failed { line, status }),
        Err(source) => Err(CommandError::Spawn { line, source }),
    }
}

/// Runs `cmd` with its stdout piped, handing each line to `on_line` as it comes, and waits
/// for it. When its stdout cannot be read (not UTF-8), the program is killed and the read
/// error returned.
pub(crate) fn stream(
    cmd: &mut Command,
    mut on_line: impl FnMut(&str),
) -> std::io::Result<ExitStatus> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    if let Some(stdout) = child.stdout.take() {
        for text in BufReader::new(stdout).lines() {
            match text {
                Ok(text) => on_line(&text),
                Err(err) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err);
                }
            }
        }
    }
    child.wait()
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
    shell_quote(&arg.to_string_lossy())
}

/// `arg` as a POSIX shell word: as is when plain, else single-quoted.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A command that could not be started or did not succeed.
#[derive(Debug)]
pub(crate) enum CommandError {
    /// The program could not be started (not installed, not executable, ...), or its
    /// output could not be read.
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
    fn tee_returns_stdout_and_fails_with_the_program() {
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo one; echo two >&2; printf three"])
            .stderr(Stdio::null());
        assert_eq!(tee(&mut ok).unwrap(), "one\nthree\n");
        let mut failing = Command::new("sh");
        failing.args(["-c", "echo partial; exit 3"]);
        let err = tee(&mut failing).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`sh -c 'echo partial; exit 3'` failed ("),
            "{err}"
        );
    }

    #[test]
    fn stream_hands_over_lines_and_stops_at_unreadable_output() {
        let mut lines = Vec::new();
        let status = stream(Command::new("printf").arg("a\n\nb"), |line| {
            lines.push(line.to_owned());
        })
        .unwrap();
        assert!(status.success());
        assert_eq!(lines, ["a", "", "b"]);
        // Not UTF-8, then a program that would run for a minute: killed, not waited for.
        let started = std::time::Instant::now();
        let err = stream(
            Command::new("sh").args(["-c", r"printf '\377\n'; exec sleep 60"]),
            |_| {},
        )
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        for (arg, quoted) in [
            ("keys/jwks.json", "keys/jwks.json"),
            ("https://auth.demo.example", "https://auth.demo.example"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", r"'it'\''s'"),
            (r#"{"alg":"none"}"#, r#"'{"alg":"none"}'"#),
        ] {
            assert_eq!(shell_quote(arg), quoted, "{arg}");
        }
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
