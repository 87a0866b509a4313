//! Running the `tokenward` binary, shared by the test binaries of this crate (`mod common;`).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// What a run of `tokenward` printed, and its exit status.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tokenward args` with `stdin` (none: an empty standard input) and `env` added to the
/// environment, from which `TOKENWARD_REDIS_URL` and `TOKENWARD_POSTGRES_URL` are removed so
/// that only what a test passes counts. Fails the test if the binary panicked.
pub fn run_with(args: &[&str], stdin: Option<Vec<u8>>, env: &[(&str, &str)]) -> Out {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenward"));
    command
        .args(args)
        .env_remove("TOKENWARD_REDIS_URL")
        .env_remove("TOKENWARD_POSTGRES_URL")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn tokenward");
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("a piped stdin");
        // The binary may stop reading early; a broken pipe here is not a failure.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let output = child.wait_with_output().expect("wait for tokenward");
    if let Some(writer) = writer {
        writer.join().expect("the stdin writer");
    }
    let out = Out {
        code: output.status.code().expect("exited with a status"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "tokenward {args:?} panicked: {}",
        out.stderr
    );
    out
}

/// Runs `tokenward args` with an empty standard input.
pub fn run(args: &[&str]) -> Out {
    run_with(args, None, &[])
}

/// The arguments of a command line written as a template: words split on whitespace, and a
/// word `{name}` replaced by the value of `name` in `vars` (values may contain spaces).
pub fn words<'a>(template: &'a str, vars: &[(&str, &'a str)]) -> Vec<&'a str> {
    template
        .split_whitespace()
        .map(|word| {
            word.strip_prefix('{')
                .and_then(|w| w.strip_suffix('}'))
                .map_or(word, |name| {
                    vars.iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, value)| *value)
                        .unwrap_or_else(|| panic!("{template}: no value for {{{name}}}"))
                })
        })
        .collect()
}
