//! Soak (issue 9): the `tokenward-demo` binary on Redis under sustained load for minutes.
//!
//! ```sh
//! cargo bench -p tokenward-demo --bench soak -- --minutes 3
//! ```
//!
//! Starts the demo binary as a child process (`--redis`, a fresh key prefix, `--bind
//! 127.0.0.1:0`), logs `--clients` sessions in (the four demo users), and has each one call
//! `GET /me` continuously, refresh every few seconds (the old refresh token is then dead,
//! the old access token still valid), and every `--logout-every` seconds log out — after
//! which its access token must get 401 on `/me` and its refresh token 401 on `/refresh` —
//! and log in again. Every answer is checked against the one status it must have; anything
//! else (including a client timeout) is counted as unexpected. Every `--sample-secs` it
//! samples the demo's resident memory (`VmRSS` of `/proc/PID/status`) and the number of
//! Redis keys under the run's prefix (SCAN).
//!
//! Exits 1 if any answer was unexpected, or (runs of 2 minutes or more) if the demo's RSS
//! grew by more than 10 % over the second half of the run. The run's keys are deleted at the
//! end (SCAN + UNLINK under its prefix). Without `--minutes` it does nothing, so a
//! workspace-wide `cargo bench` does not start a several-minute soak.
//!
//! Redis: `--redis URL`, else `REDIS_URL`, else `redis://127.0.0.1:6379` if it answers, else
//! a throwaway `redis-server` started (and stopped) here.

use std::error::Error;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tokenward_demo::client::{Client, Reply};
use tokenward_testsupport::{
    DEFAULT_REDIS_URL, ThrowawayRedis, connect, delete_prefix, keys_under, unique_prefix,
};

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

/// The tokenward-demo soak: sustained load on the demo over Redis.
#[derive(Debug, Parser)]
struct Args {
    /// How long to run, in minutes (required: without it nothing runs).
    #[arg(long)]
    minutes: Option<f64>,
    /// Concurrent client sessions (the machine may be shared: keep it modest).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Pause between a client's requests, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pace_ms: u64,
    /// Seconds between a session's refreshes.
    #[arg(long, default_value_t = 3)]
    refresh_every: u64,
    /// Seconds between a session's logouts (then it logs in again).
    #[arg(long, default_value_t = 20)]
    logout_every: u64,
    /// Seconds between memory / key-count samples.
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
    /// The Redis to use (default: REDIS_URL, 127.0.0.1:6379, or a throwaway server).
    #[arg(long)]
    redis: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const USERS: [(&str, &str); 4] = [
    ("alice", "alice-password"),
    ("bob", "bob-password"),
    ("carol", "carol-password"),
    ("admin", "admin-password"),
];

/// Operations and the counts of their statuses.
const OPS: [&str; 6] = [
    "login",
    "me",
    "refresh",
    "logout",
    "me_after_logout",
    "refresh_after_logout",
];

#[derive(Default)]
struct Counters {
    /// (op, status) → count; status 0 = no answer (client error).
    by_status: Mutex<Vec<(usize, u16, u64)>>,
    unexpected: AtomicU64,
    examples: Mutex<Vec<String>>,
    max_latency_us: [AtomicU64; 6],
    total: AtomicU64,
}

impl Counters {
    fn record(&self, op: usize, status: u16, want: u16, took: Duration, detail: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(max) = self.max_latency_us.get(op) {
            max.fetch_max(
                u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        {
            let mut by = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
            match by.iter_mut().find(|(o, s, _)| *o == op && *s == status) {
                Some(entry) => entry.2 += 1,
                None => by.push((op, status, 1)),
            }
        }
        if status != want {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            let mut ex = self.examples.lock().unwrap_or_else(|e| e.into_inner());
            if ex.len() < 20 {
                let op = OPS.get(op).copied().unwrap_or("?");
                ex.push(format!("{op}: {status} (wanted {want}) {detail}"));
            }
        }
    }
}

struct Session {
    access: String,
    refresh: String,
}

struct Load {
    client: Client,
    base: String,
    counters: Counters,
    stop: AtomicBool,
}

impl Load {
    /// Sends one request and checks its status; the reply if it had the wanted status.
    async fn call(
        &self,
        op: usize,
        want: u16,
        request: impl std::future::Future<Output = Result<Reply, tokenward_demo::client::ClientError>>,
    ) -> Option<Reply> {
        let started = Instant::now();
        let reply = request.await;
        let took = started.elapsed();
        match reply {
            Ok(r) => {
                let status = r.status.as_u16();
                let detail = if status == want {
                    String::new()
                } else {
                    r.text().chars().take(200).collect()
                };
                self.counters.record(op, status, want, took, &detail);
                (status == want).then_some(r)
            }
            Err(e) => {
                self.counters.record(op, 0, want, took, &e.to_string());
                None
            }
        }
    }

    async fn login(&self, user: usize) -> Option<Session> {
        let (name, password) = USERS.get(user % USERS.len()).copied()?;
        let body = json!({ "username": name, "password": password });
        let url = format!("{}/login", self.base);
        let r = self
            .call(0, 200, self.client.post(&url, &[], Some(&body)))
            .await?;
        Some(Session {
            access: r.str_field("access_token")?,
            refresh: r.str_field("refresh_token")?,
        })
    }
}

async fn session_loop(load: Arc<Load>, n: usize, args: Arc<Args>) {
    let me = format!("{}/me", load.base);
    let refresh_url = format!("{}/refresh", load.base);
    let logout_url = format!("{}/logout", load.base);
    let refresh_every = Duration::from_secs(args.refresh_every.max(1));
    let logout_every = Duration::from_secs(args.logout_every.max(1));
    let pace = Duration::from_millis(args.pace_ms);
    let mut session: Option<Session> = None;
    let mut last_refresh = Instant::now();
    // Staggered, so that logouts do not all happen at once.
    let stagger = logout_every.mul_f64(n as f64 / args.clients.max(1) as f64);
    let mut next_logout = Instant::now() + stagger.max(Duration::from_secs(1));
    while !load.stop.load(Ordering::Relaxed) {
        let Some(s) = &mut session else {
            session = load.login(n).await;
            if session.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            last_refresh = Instant::now();
            continue;
        };
        load.call(1, 200, load.client.get(&me, Some(&s.access)))
            .await;
        if last_refresh.elapsed() >= refresh_every {
            last_refresh = Instant::now();
            let body = json!({ "refresh_token": s.refresh });
            if let Some(r) = load
                .call(2, 200, load.client.post(&refresh_url, &[], Some(&body)))
                .await
                && let (Some(access), Some(refresh)) =
                    (r.str_field("access_token"), r.str_field("refresh_token"))
            {
                s.access = access;
                s.refresh = refresh;
            }
        }
        if Instant::now() >= next_logout {
            next_logout = Instant::now() + logout_every;
            let bearer = format!("Bearer {}", s.access);
            let auth = [("authorization", bearer.as_str())];
            if load
                .call(3, 204, load.client.post(&logout_url, &auth, None))
                .await
                .is_some()
            {
                load.call(4, 401, load.client.get(&me, Some(&s.access)))
                    .await;
                let body = json!({ "refresh_token": s.refresh });
                load.call(5, 401, load.client.post(&refresh_url, &[], Some(&body)))
                    .await;
            }
            session = None;
        }
        tokio::time::sleep(pace).await;
    }
}

/// The `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A child process killed (SIGKILL) on drop unless stopped before.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Redis URL to use, and the throwaway server if one was started (stopped when dropped).
async fn provision(args: &Args) -> (String, Option<ThrowawayRedis>) {
    if let Some(url) = args
        .redis
        .clone()
        .or_else(|| std::env::var("REDIS_URL").ok())
    {
        return (url, None);
    }
    if connect(DEFAULT_REDIS_URL).await.is_ok() {
        return (DEFAULT_REDIS_URL.to_owned(), None);
    }
    // Fails, saying how to install it, without `redis-server`.
    let server = ThrowawayRedis::start();
    eprintln!(
        "soak: started a throwaway redis-server on port {}",
        server.port()
    );
    (server.url(), Some(server))
}

/// Starts the demo binary; its pid and base URL.
fn start_demo(redis: &str, prefix: &str) -> Result<(ChildGuard, u32, String)> {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenward-demo"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--redis",
            redis,
            "--redis-prefix",
            prefix,
        ])
        // The sessions' own refreshes and /me calls must never meet the subject limit.
        .args(["--subject-limit", "1000000"])
        // Every session connects from 127.0.0.1: --clients may exceed the per-address cap.
        .args(["--max-connections-per-ip", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let guard = ChildGuard(Some(child));
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected first line from the demo: {line:?}"))?
        .to_owned();
    Ok((guard, pid, url))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let Some(minutes) = args.minutes else {
        eprintln!(
            "soak: nothing to do without --minutes \
             (cargo bench -p tokenward-demo --bench soak -- --minutes 3)"
        );
        return Ok(true);
    };
    let duration = Duration::from_secs_f64((minutes * 60.0).max(1.0));
    let (redis_url, _redis_server) = provision(&args).await;
    let mut conn = connect(&redis_url).await?;
    let prefix = unique_prefix("soak");
    let (mut demo, pid, base) = start_demo(&redis_url, &prefix)?;
    println!(
        "soak: demo pid {pid} at {base}, redis prefix {prefix}, {} clients, {:.1} min",
        args.clients, minutes
    );

    let load = Arc::new(Load {
        client: Client::new(),
        base,
        counters: Counters::default(),
        stop: AtomicBool::new(false),
    });
    let args = Arc::new(args);
    let tasks: Vec<_> = (0..args.clients)
        .map(|n| tokio::spawn(session_loop(Arc::clone(&load), n, Arc::clone(&args))))
        .collect();

    let started = Instant::now();
    let mut samples: Vec<(f64, u64, usize, u64)> = Vec::new(); // (s, rss KiB, keys, requests)
    let sample_every = Duration::from_secs(args.sample_secs.max(1));
    let mut last_total = 0u64;
    println!(
        "{:>7} {:>9} {:>8} {:>10} {:>7}",
        "t (s)", "requests", "req/s", "RSS (KiB)", "keys"
    );
    loop {
        let t = started.elapsed();
        let rss = rss_kib(pid).ok_or("the demo process is gone")?;
        let keys = keys_under(&mut conn, &prefix).await?.len();
        let total = load.counters.total.load(Ordering::Relaxed);
        let rate = (total - last_total) as f64 / sample_every.as_secs_f64();
        last_total = total;
        println!(
            "{:>7.0} {total:>9} {rate:>8.0} {rss:>10} {keys:>7}",
            t.as_secs_f64()
        );
        samples.push((t.as_secs_f64(), rss, keys, total));
        if t >= duration {
            break;
        }
        tokio::time::sleep(sample_every.min(duration.saturating_sub(t) + Duration::from_millis(1)))
            .await;
    }
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();

    // Stop the demo (SIGTERM, graceful) and delete the run's keys.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if let Some(child) = &mut demo.0 {
        let _ = child.wait();
    }
    demo.0 = None;
    let deleted = delete_prefix(&mut conn, &prefix).await?;

    let c = &load.counters;
    let total = c.total.load(Ordering::Relaxed);
    let unexpected = c.unexpected.load(Ordering::Relaxed);
    println!(
        "\nsoak: {total} requests in {:.0} s ({:.0}/s), unexpected: {unexpected}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let mut by = c
        .by_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    by.sort_unstable();
    for (op, status, n) in by {
        let name = OPS.get(op).copied().unwrap_or("?");
        let max = c
            .max_latency_us
            .get(op)
            .map_or(0, |m| m.load(Ordering::Relaxed));
        println!(
            "  {name:<21} {status:>3}: {n:>8}   (max latency of the op {:.1} ms)",
            max as f64 / 1000.0
        );
    }
    let rss: Vec<u64> = samples.iter().map(|s| s.1).collect();
    let key_counts: Vec<usize> = samples.iter().map(|s| s.2).collect();
    // Flat = the second half of the run adds nothing (the first half includes warm-up: the
    // allocator keeping the memory of the Argon2id password hashes of the first logins).
    let half = samples
        .iter()
        .find(|s| s.0 >= duration.as_secs_f64() / 2.0)
        .map_or(0, |s| s.1);
    let last = rss.last().copied().unwrap_or(0);
    println!(
        "  demo RSS (KiB): first {}, at half time {half}, last {last} ({:+} over the second \
         half), max {}",
        rss.first().copied().unwrap_or(0),
        i128::from(last) - i128::from(half),
        rss.iter().max().copied().unwrap_or(0),
    );
    println!(
        "  redis keys under the prefix: first {}, last {}, max {} (deleted {} at the end)",
        key_counts.first().copied().unwrap_or(0),
        key_counts.last().copied().unwrap_or(0),
        key_counts.iter().max().copied().unwrap_or(0),
        deleted
    );
    let examples = c.examples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for e in &examples {
        println!("  unexpected: {e}");
    }
    // Judged on runs of 2 minutes or more: the second half may add at most 10 %.
    let flat = if duration >= Duration::from_secs(120) {
        let flat = last.saturating_mul(10) <= half.saturating_mul(11);
        println!("  memory {}", if flat { "flat" } else { "NOT flat" });
        flat
    } else {
        println!("  memory: run too short to judge (needs --minutes 2 or more)");
        true
    };
    Ok(unexpected == 0 && flat)
}
