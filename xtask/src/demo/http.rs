//! The demo's API half: `tokenward-demo` started with the demo's keys (one instance on
//! in-memory stores, or two sharing one Redis, a TLS Redis or a Redis Cluster), `tokenward-demo-lifecycle` driving it over
//! HTTP (its transcript goes straight to stdout), and the servers stopped afterwards.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::process::{Server, delete_keys};
use super::{Demo, Stores, strings};
use crate::{Result, cmd};

/// The servers' settings for the demo: small, so the 429 steps and the grace window are
/// quick. The lifecycle driver is told the same values.
const SUBJECT_LIMIT: &str = "20";
const REFRESH_GRACE: &str = "2";
const BAN_MAXRETRY: &str = "5";

/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

impl Demo {
    /// Starts the server(s) with the key directory, runs the lifecycle driver, stops the
    /// servers.
    pub(super) fn http(&mut self, stores: Stores) -> Result {
        // Declared first, dropped last: the servers stop before a throwaway Redis does.
        let (redis, tls_redis, cluster) = match stores {
            Stores::Memory => {
                println!("== The demo API over HTTP (in-memory stores) ==\n");
                (None, None, None)
            }
            Stores::Redis => {
                println!("== The demo API over HTTP: two instances sharing one Redis ==\n");
                (Some(crate::redis::provision()?), None, None)
            }
            Stores::RedisTls => {
                println!(
                    "== The demo API over HTTP: two instances sharing one Redis over TLS ==\n"
                );
                (None, Some(crate::redis::start_tls(&self.dir)?), None)
            }
            Stores::RedisCluster => {
                println!(
                    "== The demo API over HTTP: two instances sharing one 3-primary Redis \
                     Cluster ==\n"
                );
                (None, None, Some(crate::redis::start_cluster(&self.dir)?))
            }
        };
        let mut args = strings(&[
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
        ]);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let prefix = format!("tokenward-xtask-demo:{}-{nanos:x}:", std::process::id());
        if let Some(redis) = &redis {
            args.extend(["--redis".to_owned(), redis.url.clone()]);
            args.extend(["--redis-prefix".to_owned(), prefix.clone()]);
        }
        if let Some(redis) = &tls_redis {
            args.extend(["--redis".to_owned(), redis.url.clone()]);
            args.extend(["--redis-ca".to_owned(), redis.ca_file.display().to_string()]);
            args.extend(["--redis-prefix".to_owned(), prefix.clone()]);
        }
        if let Some(cluster) = &cluster {
            // The seed nodes, comma-separated; the keys spread over the three primaries.
            args.extend(["--redis-cluster".to_owned(), "--redis".to_owned()]);
            args.push(cluster.urls.clone());
            args.extend(["--redis-prefix".to_owned(), prefix.clone()]);
        }
        let names: &[&str] = if stores == Stores::Memory {
            &["A"]
        } else {
            &["A", "B"]
        };
        let mut servers = Vec::with_capacity(names.len());
        for name in names {
            self.begin_step(&format!("Start tokenward-demo {name}"));
            let mut server = Command::new(&self.server_bin);
            server.args(&args).current_dir(&self.dir);
            println!("  $ {}", cmd::display(&server));
            let log = self.dir.join(format!("server-{name}.log"));
            let server = Server::start(server, &log, STARTUP_TIMEOUT)?;
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
        self.begin_step("Drive the whole lifecycle over HTTP");
        println!("  $ {}\n", cmd::display(&driver));
        // Its transcript, indented under this step.
        let status = cmd::stream(driver.current_dir(&self.dir).stdin(Stdio::null()), |line| {
            if line.is_empty() {
                println!("  │");
            } else {
                println!("  │ {line}");
            }
        })
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
}
