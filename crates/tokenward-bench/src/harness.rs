//! The preamble and plumbing the benchmark harnesses (`benches/*_latency.rs`,
//! `*_memory.rs`, `http`, `demo_redis`) share: exit codes, runtimes, the `--quick` switch and
//! the configuration filter, CPU time and load average, and the benchmark Redis (`REDIS_URL`
//! or `redis://127.0.0.1:6379`: connected and described before anything is measured, its
//! counters read, the run's key prefix deleted at the end).
//!
//! ```
//! use tokenward_bench::harness::{BoxError, exit_code, quick, runtime};
//!
//! fn run() -> Result<(), BoxError> {
//!     let rt = runtime(Some(2))?;
//!     rt.block_on(async {
//!         // … measure; `?` on any error …
//!         Ok(())
//!     })
//! }
//!
//! assert!(!quick());
//! assert_eq!(exit_code(run()), std::process::ExitCode::SUCCESS);
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{InfoDict, IntoConnectionInfo as _};

/// What a harness fails with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A harness's exit: success, or the error printed (`error: …`) and failure.
pub fn exit_code(result: Result<(), BoxError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-thread Tokio runtime with every driver: `workers` worker threads, or one per core.
/// The concurrency benchmarks use 2 (the machine has 2 cores, which Redis shares).
pub fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

/// Whether a short run was asked for: `--quick`, or `TOKENWARD_BENCH_QUICK` set (what
/// `cargo xtask bench --quick` does).
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick") || std::env::var_os("TOKENWARD_BENCH_QUICK").is_some()
}

/// Whether the configuration `name` at `tasks` concurrent tasks is to run: those whose
/// `name × tasks` contains the first command-line argument that is not an option (all without
/// one), as criterion's filter does.
pub fn selected(name: &str, tasks: usize) -> bool {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    filter.is_none_or(|f| format!("{name} × {tasks}").contains(&f))
}

/// Cores for a server in its own process and for the load generator driving it, so the
/// client does not steal the server's core: the server on the first core, the caller (this
/// process, every thread) on the last. `None` — nothing pinned — when the machine has one
/// core or no `taskset` (util-linux), or pinning this process failed; the caller says so in
/// its output.
pub fn pin_server_and_self() -> Option<Pinning> {
    let cores = std::thread::available_parallelism().ok()?.get();
    if cores < 2 {
        return None;
    }
    let client_core = cores - 1;
    let status = std::process::Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid"])
        .arg(client_core.to_string())
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then_some(Pinning {
        server_core: 0,
        client_core,
    })
}

/// Where [`pin_server_and_self`] put the server and the load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinning {
    /// The core the server is to run on (`taskset --cpu-list` it).
    pub server_core: usize,
    /// The core this process now runs on.
    pub client_core: usize,
}

impl Pinning {
    /// `program args…` run under `taskset --cpu-list <server_core>`.
    pub fn server_command(&self, program: &std::path::Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("taskset");
        cmd.arg("--cpu-list")
            .arg(self.server_core.to_string())
            .arg(program);
        cmd
    }
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), `?` where there are none.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

/// CPU time used so far by this process, all threads (`/proc/self/task/*/schedstat`).
pub fn process_cpu() -> Result<Duration, BoxError> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        let on_cpu = stat.split_whitespace().next().ok_or("empty schedstat")?;
        nanos += on_cpu.parse::<u64>()?;
    }
    Ok(Duration::from_nanos(nanos))
}

/// The benchmark Redis: [`tokenward_testsupport::redis_url`], connected (failing, saying how
/// to get one, before anything is measured), with its version, its address (never a
/// password) and the load average printed after `what` the run does. Returns the URL and a
/// connection for the harness's own `INFO` readings.
pub async fn connect_redis(what: &str) -> Result<(String, MultiplexedConnection), BoxError> {
    let url = tokenward_testsupport::redis_url();
    let mut conn = tokenward_testsupport::connect(&url).await?;
    let server = info(&mut conn, "server").await?;
    let version: String = server
        .get("redis_version")
        .unwrap_or_else(|| "?".to_owned());
    let addr = url.as_str().into_connection_info()?.addr().to_string();
    println!(
        "redis {version} at {addr}; {what}; load average {}",
        load_average()
    );
    Ok((url, conn))
}

/// `INFO section` (several sections: space-separated).
pub async fn info(conn: &mut MultiplexedConnection, section: &str) -> Result<InfoDict, BoxError> {
    let mut cmd = redis::cmd("INFO");
    for section in section.split_whitespace() {
        cmd.arg(section);
    }
    Ok(cmd.query_async(conn).await?)
}

/// CPU time used so far by the Redis server (`INFO cpu`, user + sys).
pub async fn redis_cpu(conn: &mut MultiplexedConnection) -> Result<Duration, BoxError> {
    let cpu = info(conn, "cpu").await?;
    let user: f64 = cpu.get("used_cpu_user").ok_or("no used_cpu_user")?;
    let sys: f64 = cpu.get("used_cpu_sys").ok_or("no used_cpu_sys")?;
    Ok(Duration::from_secs_f64(user + sys))
}

/// Calls per command so far (`INFO commandstats`).
pub async fn command_calls(
    conn: &mut MultiplexedConnection,
) -> Result<BTreeMap<String, u64>, BoxError> {
    Ok(tokenward_testsupport::command_calls(
        &info(conn, "commandstats").await?,
    ))
}

/// The end of a run on Redis: deletes every key under the run's `prefix` (only those), then
/// prints how many it deleted (or why it could not) and the load average.
pub async fn finish(conn: &mut MultiplexedConnection, prefix: &str) {
    let deleted = tokenward_testsupport::delete_prefix(conn, prefix).await;
    println!("\nload average at the end {}", load_average());
    match deleted {
        Ok(n) => println!("deleted {n} keys under {prefix}"),
        Err(e) => eprintln!("could not delete the keys under {prefix}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_moves_and_the_load_average_is_read() {
        let before = process_cpu().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1 || before == Duration::MAX); // keep the loop
        assert!(process_cpu().unwrap() > before);
        assert_eq!(load_average().split_whitespace().count(), 3);
    }

    /// The preamble, the counters and the cleanup on the real Redis (fails, saying how to get
    /// one, if there is none).
    #[tokio::test(flavor = "current_thread")]
    async fn redis_counters_and_cleanup() {
        let (_, mut conn) = connect_redis("a unit test").await.unwrap();
        // The connection answered a PING, which the server counted.
        assert!(command_calls(&mut conn).await.unwrap()["ping"] > 0);
        assert!(redis_cpu(&mut conn).await.unwrap() > Duration::ZERO);
        let prefix = tokenward_testsupport::unique_prefix("bench-harness");
        let key = format!("{prefix}k");
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        finish(&mut conn, &prefix).await;
        let left: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, None);
    }
}
