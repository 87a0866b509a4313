//! The programs the demo starts besides the CLI: the API servers, stopped whatever happens,
//! and `redis-cli` to clean up after them.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::Result;

/// A running `tokenward-demo`: killed (and reaped) when stopped or dropped, so a failing
/// demo never leaves a server behind.
pub(super) struct Server {
    child: Child,
    /// `http://HOST:PORT`, from its first line.
    pub(super) url: String,
}

impl Server {
    /// Starts `command` (stdin closed, stderr to `log`) and waits up to `timeout` for its
    /// first stdout line, `listening on http://HOST:PORT`.
    pub(super) fn start(mut command: Command, log: &Path, timeout: Duration) -> Result<Server> {
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| {
                format!(
                    "could not start {}: {e}",
                    Path::new(command.get_program()).display()
                )
            })?;
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
        // From here on, dropping `server` stops the process.
        let mut server = Server {
            child,
            url: String::new(),
        };
        let line = match receive.recv_timeout(timeout) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(format!("reading the server's stdout: {e}").into()),
            Err(_) => {
                return Err(format!(
                    "the server printed no `listening on` line within {timeout:?} (log: {})",
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
    pub(super) fn stop(self) {
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
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
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
pub(super) fn delete_keys(url: &str, prefix: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workdir::WorkDir;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn a_server_is_started_read_and_stopped() {
        let dir = WorkDir::create("xtask-demo-test").unwrap();
        let log = dir.path().join("server.log");
        let server = Server::start(
            sh("echo starting >&2; echo 'listening on http://127.0.0.1:4321'; exec sleep 60"),
            &log,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(server.url, "http://127.0.0.1:4321");
        let stopping = Instant::now();
        server.stop();
        // SIGTERM ended it: no wait for the SIGKILL 5 s later.
        assert!(stopping.elapsed() < Duration::from_secs(4));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "starting\n");
    }

    #[test]
    fn a_server_that_does_not_announce_itself_is_an_error() {
        let dir = WorkDir::create("xtask-demo-test").unwrap();
        let log = dir.path().join("server.log");
        for (script, error) in [
            (
                "echo 'listening on 127.0.0.1:1'; exec sleep 60",
                "the server's first line is \"listening on 127.0.0.1:1\\n\", not `listening on \
                 http://HOST:PORT`",
            ),
            (
                "exec sleep 60",
                "the server printed no `listening on` line within 300ms",
            ),
        ] {
            let started = Instant::now();
            let err = Server::start(sh(script), &log, Duration::from_millis(300))
                .err()
                .unwrap()
                .to_string();
            assert!(err.starts_with(error), "{err}");
            assert!(started.elapsed() < Duration::from_secs(4), "{script}");
        }
        let err = Server::start(
            Command::new("/nonexistent/tokenward-demo"),
            &log,
            Duration::from_secs(1),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.starts_with("could not start /nonexistent/tokenward-demo: "),
            "{err}"
        );
    }

    /// Only the keys under the prefix go (on the tests' real Redis).
    #[test]
    fn delete_keys_deletes_only_under_the_prefix() {
        let redis = crate::redis::provision().unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("tokenward-xtask-test:{}-{nanos:x}:", std::process::id());
        let other = format!("{prefix}other");
        let prefix = format!("{prefix}demo:");
        let cli = |args: &[&str]| {
            let output = Command::new("redis-cli")
                .args(["-u", &redis.url])
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "redis-cli {args:?}");
            String::from_utf8(output.stdout).unwrap()
        };
        for key in ["a", "b", "c"] {
            cli(&["SET", &format!("{prefix}{key}"), "1", "EX", "60"]);
        }
        cli(&["SET", &other, "1", "EX", "60"]);
        delete_keys(&redis.url, &prefix);
        let left = cli(&["--scan", "--pattern", &format!("{prefix}*")]);
        let other_left = cli(&["EXISTS", &other]);
        cli(&["UNLINK", &other]);
        assert_eq!(left, "");
        assert_eq!(other_left.trim(), "1");
    }
}
