//! `cargo xtask demo [--redis]`: a readable transcript of tokenward doing its job.
//!
//! In a fresh temporary directory:
//! 1. `tokenward keygen` writes an EdDSA key directory;
//! 2. the reference API `tokenward-demo` starts on a free port with those keys (`--keys`,
//!    in-memory stores; with `--redis`: two instances sharing one Redis under a random key
//!    prefix, so they are one service), with small limits so the 429 steps are quick, and
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

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Result;
use crate::cmd;
use crate::workdir::WorkDir;

const KID: &str = "demo-2026-11";
const ISS: &str = "https://auth.demo.example";
const AUD: &str = "orders-api";
const TTL: u64 = 900;

/// The servers' settings for the demo: small, so the 429 steps and the grace window are
/// quick. The lifecycle driver is told the same values.
const SUBJECT_LIMIT: &str = "20";
const REFRESH_GRACE: &str = "2";
const BAN_MAXRETRY: &str = "5";

/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the demo.
pub(crate) fn run(args: &[String]) -> Result {
    let redis = match args {
        [] => false,
        [flag] if flag == "--redis" => true,
        [other, ..] => {
            return Err(format!("`cargo xtask demo` takes only `--redis` (got `{other}`)").into());
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
    let result = demo.script(redis);
    match (&result, demo.failures.is_empty()) {
        (Ok(()), true) => {
            println!(
                "All {} steps gave the expected result: the API over HTTP{}, then the CLI.",
                demo.step,
                if redis {
                    " (two instances on Redis)"
                } else {
                    ""
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

/// What a step must produce.
enum Expect {
    /// Exit status 0.
    Success,
    /// `verify --json`: exit 0 and a `{"valid":true,...}` line.
    Valid,
    /// `verify --json`: exit 1 and a rejection of this class.
    Rejected(&'static str),
}

impl Expect {
    /// Whether a step that exited with `code` and printed `stdout` did what was expected.
    fn is_met(&self, code: Option<i32>, stdout: &str) -> bool {
        // `verify --json` prints one JSON object per token: `{"valid":true,"claims":{...}}`
        // or `{"valid":false,"class":"...","reason":"..."}`.
        let answer = || {
            let line = stdout.lines().next()?;
            serde_json::from_str::<serde_json::Value>(line).ok()
        };
        match self {
            Expect::Success => code == Some(0),
            Expect::Valid => {
                code == Some(0) && answer().is_some_and(|a| a.get("valid") == Some(&true.into()))
            }
            Expect::Rejected(class) => {
                code == Some(1)
                    && answer().is_some_and(|a| {
                        a.get("valid") == Some(&false.into())
                            && a.get("class").and_then(|c| c.as_str()) == Some(*class)
                    })
            }
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Success => f.write_str("exit 0"),
            Expect::Valid => f.write_str("valid, exit 0"),
            Expect::Rejected(class) => write!(f, "rejected with class `{class}`, exit 1"),
        }
    }
}

struct Demo {
    bin: PathBuf,
    server_bin: PathBuf,
    lifecycle_bin: PathBuf,
    dir: PathBuf,
    step: usize,
    failures: Vec<String>,
}

impl Demo {
    fn script(&mut self, redis: bool) -> Result {
        println!("== Keys ==\n");
        self.exec(
            "Generate an EdDSA signing key: the private key stays here, jwks.json is what \
             verifying services get",
            &["keygen", "--alg", "EdDSA", "--kid", KID, "--out", "keys"],
            &[],
            &Expect::Success,
        )?;

        self.http(redis)?;

        println!("== The same keys from the command line ==\n");
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();

        let issued = self.exec(
            "Issue a 15-minute access token for alice (random jti, kid and typ headers); call it TOKEN",
            &[
                "issue",
                "--keys",
                "keys",
                "--iss",
                ISS,
                "--aud",
                AUD,
                "--sub",
                "alice",
                "--sid",
                "session-1",
                "--scope",
                "orders:read",
                "--ttl",
                &TTL.to_string(),
                "--now",
                &now.to_string(),
            ],
            &[],
            &Expect::Success,
        )?;
        let token = issued.trim_end().to_owned();
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("`tokenward issue` printed no JWS: {token:?}").into());
        };
        let vars = [("TOKEN", token.as_str())];

        let verify = |extra: &[&'static str]| -> Vec<String> {
            let mut args: Vec<String> = [
                "verify",
                "--jwks",
                "keys/jwks.json",
                "--iss",
                ISS,
                "--aud",
                AUD,
                "--json",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            args
        };

        let mut args = verify(&[]);
        args.push(token.clone());
        self.exec_owned(
            "Verify it: the key pins the algorithm; issuer, audience, lifetime, typ all checked",
            None,
            &args,
            &vars,
            &Expect::Valid,
        )?;

        // An attacker edits the claims and keeps the signature.
        let claims = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(payload)
                .map_err(|_| "the issued token's payload is not base64url")?,
        )?;
        if !claims.contains(r#""sub":"alice""#) {
            return Err(format!("unexpected claims in the issued token: {claims}").into());
        }
        let forged_claims = claims.replace(r#""sub":"alice""#, r#""sub":"admin""#);
        let tampered = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(forged_claims.as_bytes())
        );
        let mut args = verify(&[]);
        args.push(tampered.clone());
        self.exec_owned(
            "Tampered token: `sub` changed from alice to admin, original signature kept",
            Some(&format!(
                "TAMPERED = TOKEN with its claims edited to {forged_claims}"
            )),
            &args,
            &[("TAMPERED", tampered.as_str())],
            &Expect::Rejected("signature"),
        )?;

        let later = (now + TTL + 60).to_string();
        let mut args = verify(&["--now"]);
        args.push(later);
        args.push(token.clone());
        self.exec_owned(
            "Expired token: the same token verified 16 minutes after it was issued \
             (--now; past exp and the 30 s leeway)",
            None,
            &args,
            &vars,
            &Expect::Rejected("expired"),
        )?;

        let mut args: Vec<String> = [
            "verify",
            "--jwks",
            "keys/jwks.json",
            "--iss",
            ISS,
            "--aud",
            "admin-api",
            "--json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(token.clone());
        self.exec_owned(
            "Wrong audience: alice's orders-api token presented to admin-api",
            None,
            &args,
            &vars,
            &Expect::Rejected("audience"),
        )?;

        let none_header = format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{KID}"}}"#);
        let unsigned = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(none_header.as_bytes())
        );
        let mut args = verify(&[]);
        args.push(unsigned.clone());
        self.exec_owned(
            "`alg: none` forgery: an unsigned token with alice's claims",
            Some(&format!(
                "UNSIGNED = header {none_header} + TOKEN's claims + an empty signature"
            )),
            &args,
            &[("UNSIGNED", unsigned.as_str())],
            &Expect::Rejected("algorithm"),
        )?;
        Ok(())
    }

    /// The reference API over HTTP: starts the server(s) with the key directory, runs the
    /// lifecycle driver (its transcript goes straight to stdout), stops the servers.
    fn http(&mut self, redis: bool) -> Result {
        // Declared first, dropped last: the servers stop before a throwaway Redis does.
        let redis = if redis {
            println!("== The demo API over HTTP: two instances sharing one Redis ==\n");
            Some(crate::redis::provision()?)
        } else {
            println!("== The demo API over HTTP (in-memory stores) ==\n");
            None
        };
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1:0",
            "--keys",
            "keys",
            "--subject-limit",
            SUBJECT_LIMIT,
            "--refresh-grace",
            REFRESH_GRACE,
            "--ban-maxretry",
            BAN_MAXRETRY,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let prefix = format!("tokenward-xtask-demo:{}-{nanos:x}:", std::process::id());
        if let Some(redis) = &redis {
            args.extend(["--redis".to_owned(), redis.url.clone()]);
            args.extend(["--redis-prefix".to_owned(), prefix.clone()]);
        }
        let names: &[&str] = if redis.is_some() { &["A", "B"] } else { &["A"] };
        let mut servers = Vec::with_capacity(names.len());
        for name in names {
            self.step += 1;
            println!("[{}] Start tokenward-demo {name}", self.step);
            println!("  $ tokenward-demo {}", shell_words(&args));
            let log = self.dir.join(format!("server-{name}.log"));
            let server = Server::start(&self.server_bin, &args, &self.dir, &log)?;
            println!("  | listening on {}", server.url);
            println!(
                "  => as expected: `listening on http://HOST:PORT` first (log: {})\n",
                log.display()
            );
            servers.push(server);
        }

        let mut driver = Command::new(&self.lifecycle_bin);
        for server in &servers {
            driver.args(["--url", &server.url]);
        }
        driver.args([
            "--refresh-grace",
            REFRESH_GRACE,
            "--subject-limit",
            SUBJECT_LIMIT,
            "--ban-maxretry",
            BAN_MAXRETRY,
        ]);
        self.step += 1;
        println!(
            "[{}] Drive the whole lifecycle over HTTP\n  $ {}\n",
            self.step,
            cmd::display(&driver)
        );
        let status = run_indented(driver.current_dir(&self.dir))
            .map_err(|e| format!("could not run {}: {e}", self.lifecycle_bin.display()));
        // Stop the servers whatever happened.
        for server in servers {
            server.stop();
        }
        if let Some(redis) = &redis {
            delete_keys(&redis.url, &prefix);
        }
        let status = status?;
        if status.success() {
            println!("  => the lifecycle went as expected; servers stopped\n");
        } else {
            println!("  => UNEXPECTED: the lifecycle driver exited with {status}\n");
            self.failures.push(format!(
                "step {} (the HTTP lifecycle): some steps misbehaved (see the transcript above \
                 and the server logs)",
                self.step
            ));
        }
        Ok(())
    }

    fn exec(
        &mut self,
        what: &str,
        args: &[&str],
        vars: &[(&str, &str)],
        expect: &Expect,
    ) -> Result<String> {
        let owned: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        self.exec_owned(what, None, &owned, vars, expect)
    }

    /// Runs one step, prints it, and records a failure if the result is not `expect`. Returns
    /// stdout; an error only when the tool cannot be run or a setup step fails (later steps
    /// depend on it).
    fn exec_owned(
        &mut self,
        what: &str,
        note: Option<&str>,
        args: &[String],
        vars: &[(&str, &str)],
        expect: &Expect,
    ) -> Result<String> {
        self.step += 1;
        println!("[{}] {what}", self.step);
        if let Some(note) = note {
            println!("  {note}");
        }
        let shown: Vec<String> = args
            .iter()
            .map(|arg| match vars.iter().find(|(_, value)| value == arg) {
                Some((name, _)) => format!("\"${name}\""),
                None => shell_quote(arg),
            })
            .collect();
        println!("  $ tokenward {}", shown.join(" "));
        let output = Command::new(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        for line in stdout.lines() {
            println!("  | {}", abbreviate(line));
        }
        for line in stderr.lines() {
            println!("  ! {line}");
        }
        let code = output.status.code();
        let ok = expect.is_met(code, &stdout);
        let expected = expect.to_string();
        let status = code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
        if ok {
            println!("  => as expected: {expected}\n");
        } else {
            println!("  => UNEXPECTED: wanted {expected}, got {status}\n");
            let failure = format!(
                "step {} ({what}): wanted {expected}, got {status}",
                self.step
            );
            if matches!(expect, Expect::Success) {
                return Err(failure.into());
            }
            self.failures.push(failure);
        }
        Ok(stdout)
    }
}

/// A running `tokenward-demo`: killed (and reaped) when stopped or dropped, so a failing
/// demo never leaves a server behind.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts `bin` with `args` in `dir`, its log in `log`, and waits for its first stdout
    /// line, `listening on http://HOST:PORT`.
    fn start(bin: &Path, args: &[String], dir: &Path, log: &Path) -> Result<Server> {
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(bin)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the server's stdout is not captured".into());
        };
        // Read the first line on a thread, so a server that never prints cannot hang us.
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = send.send(reader.read_line(&mut line).map(|_| line));
            // Keep reading (and discarding) so the server never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let mut server = Server {
            child,
            url: String::new(),
        };
        let line = match receive.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(format!("reading the server's stdout: {e}").into()),
            Err(_) => {
                return Err(format!(
                    "the server printed no `listening on` line within {STARTUP_TIMEOUT:?} \
                     (log: {})",
                    log.display()
                )
                .into());
            }
        };
        match line.trim_end().strip_prefix("listening on ") {
            Some(url) if url.starts_with("http://") => {
                server.url = url.to_owned();
                Ok(server)
            }
            _ => Err(format!(
                "the server's first line is {line:?}, not `listening on http://HOST:PORT` \
                 (log: {})",
                log.display()
            )
            .into()),
        }
    }

    /// SIGTERM (the server shuts down gracefully), SIGKILL if it is still running 5 s later.
    fn stop(self) {
        // Drop does it.
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let terminated = cfg!(unix)
                && Command::new("kill")
                    .args(["-TERM", &self.child.id().to_string()])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if terminated {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while std::time::Instant::now() < deadline {
                    if !matches!(self.child.try_wait(), Ok(None)) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Best effort: deletes the demo's keys under `prefix` with `redis-cli` (SCAN + UNLINK, never
/// FLUSHALL), so its refresh families do not linger on a shared Redis for their idle
/// timeout. Without `redis-cli` the keys expire on their own.
fn delete_keys(url: &str, prefix: &str) {
    let listed = Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", &format!("{prefix}*")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(listed) = listed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()) else {
        println!(
            "(redis-cli not found: the demo's Redis keys under {prefix} expire on their own)\n"
        );
        return;
    };
    let keys: Vec<&str> = listed.lines().filter(|k| k.starts_with(prefix)).collect();
    if keys.is_empty() {
        return;
    }
    let deleted = Command::new("redis-cli")
        .args(["-u", url, "UNLINK"])
        .args(&keys)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if deleted {
        println!(
            "Deleted the demo's {} Redis keys under {prefix}\n",
            keys.len()
        );
    }
}

/// Runs `cmd`, printing its stdout indented under the current step (stderr as is).
fn run_indented(cmd: &mut Command) -> std::io::Result<std::process::ExitStatus> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) if line.is_empty() => println!("  │"),
                Ok(line) => println!("  │ {line}"),
                Err(_) => break,
            }
        }
    }
    child.wait()
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line of output with long tokens shortened, so the transcript stays readable.
fn abbreviate(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            let jws_like = word.matches('.').count() == 2
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if word.len() > 60 && jws_like {
                let head: String = word.chars().take(24).collect();
                format!("{head}…({} bytes)", word.len())
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
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

    #[test]
    fn verify_answers_are_judged_on_exit_code_valid_and_class() {
        let valid = r#"{"valid":true,"claims":{"sub":"alice","class":"x"}}"#;
        let rejected = r#"{"valid":false,"class":"signature","reason":"InvalidSignature"}"#;
        for (expect, code, stdout, met) in [
            (Expect::Success, Some(0), "", true),
            (Expect::Success, Some(1), "", false),
            (Expect::Success, None, "", false),
            (Expect::Valid, Some(0), valid, true),
            (Expect::Valid, Some(1), valid, false),
            (Expect::Valid, Some(0), rejected, false),
            (Expect::Valid, Some(0), "valid", false),
            (Expect::Rejected("signature"), Some(1), rejected, true),
            (Expect::Rejected("expired"), Some(1), rejected, false),
            (Expect::Rejected("signature"), Some(0), rejected, false),
            (Expect::Rejected("signature"), Some(1), valid, false),
            (Expect::Rejected("signature"), Some(1), "", false),
        ] {
            assert_eq!(
                expect.is_met(code, stdout),
                met,
                "{expect} {code:?} {stdout}"
            );
        }
        assert_eq!(
            Expect::Rejected("audience").to_string(),
            "rejected with class `audience`, exit 1"
        );
    }

    #[test]
    fn long_tokens_are_abbreviated() {
        let token = format!("{}.{}.{}", "a".repeat(30), "b".repeat(30), "c".repeat(30));
        let line = abbreviate(&format!("token: {token}"));
        assert_eq!(line, format!("token: {}…(92 bytes)", "a".repeat(24)));
        let json = r#"{"valid":true,"claims":{"iss":"https://auth.demo.example","sub":"alice"}}"#;
        assert_eq!(abbreviate(json), json);
    }
}
