//! `cargo xtask bench http-peers [--quick]`, and the last section of a full run: HTTP with
//! each server in a process of its own, driven by wrk. `bench/peers`'s `http_server` is built
//! twice ([`builds`]: tokenward on ring and on aws-lc-rs; jwt-authorizer and the no-auth floor
//! are the same in both), and for each build and algorithm ([`ALGORITHMS`]) the three stacks
//! ([`STACKS`]) are started pinned to core 0 (`taskset -c 0`), each on a current-thread Tokio
//! runtime, while wrk runs pinned to core 1 (`taskset -c 1 wrk -t1 -c32 --latency`), so the
//! load generator never takes the server's core.
//!
//! Before anything is measured, every server must answer the same valid token with 200 and,
//! when it authenticates, a forged signature and an expired token with 401 (a plain HTTP/1.1
//! request from here). Then a warm-up run per server, and interleaved rounds: every stack once
//! per round, the order rotated each round, all sent the same token. The report gives the
//! medians of wrk's req/s and latency percentiles, and tokenward ÷ jwt-authorizer's req/s of
//! each round (measured seconds apart): its median and min–max over the rounds.
//!
//! Then **side-by-side rounds**: tokenward and jwt-authorizer loaded at the same time, both
//! servers on core 0 and one wrk for each on core 1. The scheduler gives the two servers equal
//! shares of their core, so the ratio of their req/s is the inverse ratio of their CPU time
//! per request, and whatever else slows the machine in that second slows both alike. On a
//! shared VM, where one stack's req/s moves by ±10 % from one run to the next, this is the
//! ratio that holds still. Every side-by-side round starts a fresh pair of servers, in the
//! opposite order to the round before, and loads them in that order: two processes of one
//! binary run side by side differ by 1–3 % for as long as they live (which one is ahead
//! changes with the processes, not with the order), so a pair kept for every round puts its
//! own offset into every round's ratio; fresh pairs turn it into noise the median averages.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use super::peers::{self, Build};
use super::runner::Runner;
use crate::redis::{apt_install, can_apt_install, free_port, which};
use crate::{Result, cmd};

/// The builds of `bench/peers` that have the server (feature `http`): `ring` and
/// `aws-lc-rs`, shared with `bench peers`.
fn builds() -> impl Iterator<Item = &'static Build> {
    peers::BUILDS
        .iter()
        .filter(|b| b.features.split(',').any(|f| f == "http"))
}

const ALGORITHMS: [&str; 2] = ["HS256", "EdDSA"];

/// The stacks `http_server serve` knows; the first two are the ratio's.
const STACKS: [&str; 3] = ["tokenward", "jwt-authorizer", "none"];

/// The core of the servers and the core of wrk.
const SERVER_CORE: &str = "0";
const CLIENT_CORE: &str = "1";
const CONNECTIONS: usize = 32;

/// The section's title in a full run's report.
pub(super) const TITLE: &str =
    "11. HTTP against jwt-authorizer, servers in their own processes, wrk (`http-peers`)";

/// Rounds, seconds per measured run, seconds of warm-up per server.
fn plan(quick: bool) -> (usize, u32, u32) {
    if quick { (3, 2, 1) } else { (7, 10, 2) }
}

/// Side-by-side rounds of the same length as the interleaved ones: an even number, so that
/// each stack is started and loaded first in half of them.
fn side_by_side_rounds(quick: bool) -> usize {
    if quick { 4 } else { 8 }
}

/// Builds the server twice, measures every build, algorithm and stack, and returns the
/// report's text (also printed as it comes).
pub(super) fn run(runner: &mut Runner) -> Result<String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        return Err("`bench http-peers` needs two cores (the server's and wrk's)".into());
    }
    if which("taskset").is_none() {
        let hint = "Debian/Ubuntu: `apt-get install util-linux`";
        return Err(format!("`taskset` is missing: it pins the server and wrk ({hint})").into());
    }
    let wrk = ensure_wrk()?;
    let manifest = runner.root.join("bench/peers/Cargo.toml");
    let (rounds, secs, warm_up) = plan(runner.quick);
    let mut output = format!(
        "Servers pinned to core {SERVER_CORE}, `wrk -t1 -c{CONNECTIONS} --latency` pinned to \
         core {CLIENT_CORE}; {rounds} interleaved rounds of {secs} s per stack (order rotated), \
         after {warm_up} s of warm-up each; medians over the rounds. ratio = tokenward ÷ \
         jwt-authorizer req/s per round: median (min–max), rounds ≥ 1.05.\n\n\
         | provider | alg | stack | req/s | p50 µs | p99 µs |\n|---|---|---|---|---|---|\n"
    );
    let mut ratios = String::from(
        "\n| provider | alg | tokenward ÷ jwt-authorizer req/s | rounds ≥ 1.05 |\n|---|---|---|---|\n",
    );
    let side_rounds = side_by_side_rounds(runner.quick);
    let mut side = format!(
        "\nSide by side: tokenward and jwt-authorizer loaded at once, both servers on core \
         {SERVER_CORE} (equal shares of it), one wrk each on core {CLIENT_CORE}; {side_rounds} \
         rounds of {secs} s, fresh servers every round (checked, warmed up {warm_up} s \
         together), started and loaded in alternating order. ratio = tokenward ÷ \
         jwt-authorizer req/s per round.\n\n\
         | provider | alg | tokenward ÷ jwt-authorizer req/s, side by side | rounds ≥ 1.05 |\n\
         |---|---|---|---|\n"
    );
    for build in builds() {
        eprintln!("==> http-peers: {}", build.name);
        let target = runner.target.join(format!("peers-{}", build.name));
        let mut cargo = peers::build_command(&manifest, &target, build);
        runner.commands.push(cmd::display(&cargo));
        cmd::run(&mut cargo)?;
        let server = target.join("release/http_server");
        for alg in ALGORITHMS {
            let tokens = Tokens::issue(&server, alg)?;
            let servers = STACKS
                .iter()
                .map(|stack| Server::start(&server, stack, alg))
                .collect::<Result<Vec<_>>>()?;
            for server in &servers {
                server.check(&tokens)?;
                runner.commands.push(server.line.clone());
            }
            let load = Load {
                wrk: &wrk,
                token: &tokens.valid,
            };
            for server in &servers {
                load.run(server, warm_up)?;
            }
            let mut samples: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                for k in 0..servers.len() {
                    let i = (round + k) % servers.len();
                    if let (Some(server), Some(s)) = (servers.get(i), samples.get_mut(i)) {
                        let sample = load.run(server, secs)?;
                        eprintln!(
                            "round {} {} {alg} {:<14} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs",
                            round + 1,
                            build.name,
                            server.stack,
                            sample.rps,
                            sample.p50_us,
                            sample.p99_us
                        );
                        s.push(sample);
                    }
                }
            }
            if let Some(command) = servers.first().map(|s| load.command(s.port, secs)) {
                runner.commands.push(cmd::display(&command));
            }
            for (stack, s) in STACKS.iter().zip(&samples) {
                let pick = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
                let (rps, p50, p99) = (pick(|s| s.rps), pick(|s| s.p50_us), pick(|s| s.p99_us));
                let _ = writeln!(
                    output,
                    "| {} | {alg} | {stack} | {rps:.0} | {p50:.0} | {p99:.0} |",
                    build.name
                );
                println!(
                    "@bench http-peers/{}/{alg}/{stack} rps={rps:.0} p50_us={p50:.1} p99_us={p99:.1} rounds={rounds}",
                    build.name
                );
            }
            if let [ours, theirs, _] = samples.as_slice() {
                let per_round: Vec<f64> = ours
                    .iter()
                    .zip(theirs)
                    .map(|(o, t)| o.rps / t.rps)
                    .collect();
                report_ratios(&mut ratios, build.name, alg, "ratio", &per_round);
            }
            drop(servers);
            let mut per_round = Vec::with_capacity(side_rounds);
            for round in 0..side_rounds {
                let flip = round % 2 == 1;
                let (o, t) = side_by_side_round(&server, alg, &tokens, &load, warm_up, secs, flip)?;
                eprintln!(
                    "side by side {} {} {alg}: tokenward {:>9.0} req/s, jwt-authorizer {:>9.0} req/s",
                    round + 1,
                    build.name,
                    o.rps,
                    t.rps
                );
                per_round.push(o.rps / t.rps);
            }
            report_ratios(&mut side, build.name, alg, "side_by_side", &per_round);
        }
    }
    output.push_str(&ratios);
    output.push_str(&side);
    println!("\n{output}");
    Ok(output)
}

/// One side-by-side round: a fresh tokenward server and a fresh jwt-authorizer server, each
/// checked for equal work, warmed up together, then loaded together for `secs`; their
/// samples (tokenward's first). Fresh every round, and started and loaded in the order
/// `flip` gives: two processes of one binary, side by side, differ by 1–3 % in a way that
/// lasts as long as the processes (measured in docs/benchmarks.md); kept for every round,
/// that difference would be in every round's ratio.
fn side_by_side_round(
    binary: &Path,
    alg: &str,
    tokens: &Tokens,
    load: &Load<'_>,
    warm_up: u32,
    secs: u32,
    flip: bool,
) -> Result<(Sample, Sample)> {
    let [ours, theirs, _] = STACKS;
    let (first, second) = if flip { (theirs, ours) } else { (ours, theirs) };
    let first = Server::start(binary, first, alg)?;
    let second = Server::start(binary, second, alg)?;
    first.check(tokens)?;
    second.check(tokens)?;
    load.run_side_by_side(&first, &second, warm_up)?;
    let (a, b) = load.run_side_by_side(&first, &second, secs)?;
    Ok(if flip { (b, a) } else { (a, b) })
}

/// tokenward ÷ jwt-authorizer's req/s of each round: a row of `table` (median, min–max,
/// rounds ≥ 1.05) and an `@bench http-peers/<build>/<alg>/<what>` line.
fn report_ratios(table: &mut String, build: &str, alg: &str, what: &str, per_round: &[f64]) {
    let rounds = per_round.len();
    let (min, max) = min_max(per_round);
    let above = per_round.iter().filter(|&&r| r >= 1.05).count();
    let med = median(per_round.to_vec());
    let _ = writeln!(
        table,
        "| {build} | {alg} | {med:.2} ({min:.2}–{max:.2}) | {above} of {rounds} |"
    );
    println!(
        "@bench http-peers/{build}/{alg}/{what} rps_ratio_median={med:.4} rps_ratio_min={min:.4} rps_ratio_max={max:.4} rounds_at_least_1_05={above} rounds={rounds}"
    );
}

/// wrk, installed from Debian's package when missing and xtask runs as root.
fn ensure_wrk() -> Result<PathBuf> {
    if let Some(path) = which("wrk") {
        return Ok(path);
    }
    let hint = "install wrk (Debian/Ubuntu: `sudo apt-get install wrk`)";
    if !can_apt_install() {
        return Err(format!("`wrk` is not installed: {hint}").into());
    }
    eprintln!("`wrk` is missing; installing Debian's wrk package");
    apt_install("wrk")?;
    which("wrk").ok_or_else(|| format!("wrk still missing after apt-get install: {hint}").into())
}

/// The tokens of `http_server tokens`.
struct Tokens {
    valid: String,
    forged: String,
    expired: String,
}

impl Tokens {
    fn issue(server: &Path, alg: &str) -> Result<Tokens> {
        let out = cmd::read(Command::new(server).args(["tokens", alg]))?;
        let line = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| format!("`http_server tokens {alg}` printed no `{name}` token"))
        };
        Ok(Tokens {
            valid: line("valid")?,
            forged: line("forged")?,
            expired: line("expired")?,
        })
    }
}

/// A running `http_server serve`, pinned to [`SERVER_CORE`]; killed when dropped.
struct Server {
    stack: &'static str,
    port: u16,
    /// The command line, as printed.
    line: String,
    child: Child,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(binary: &Path, stack: &'static str, alg: &str) -> Result<Server> {
        let port = free_port()?;
        let mut command = Command::new("taskset");
        command
            .args(["-c", SERVER_CORE])
            .arg(binary)
            .args(["serve", stack, alg, &port.to_string()])
            .stdout(Stdio::piped());
        let line = cmd::display(&command);
        eprintln!("$ {line}");
        let mut child = command.spawn().map_err(|e| format!("`{line}`: {e}"))?;
        let mut stdout = child.stdout.take().map(BufReader::new).ok_or("no stdout")?;
        let mut ready = String::new();
        stdout.read_line(&mut ready)?;
        if !ready.starts_with("ready ") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{line}` did not print `ready`: {ready:?}").into());
        }
        Ok(Server {
            stack,
            port,
            line,
            child,
            _stdout: stdout,
        })
    }

    /// Equal work: 200 to the valid token; 401 to the forged and the expired one unless the
    /// stack has no authentication.
    fn check(&self, tokens: &Tokens) -> Result {
        let denied = if self.stack == "none" { 200 } else { 401 };
        for (what, token, expected) in [
            ("the valid token", &tokens.valid, 200),
            ("a forged signature", &tokens.forged, denied),
            ("an expired token", &tokens.expired, denied),
        ] {
            let status = status(self.port, token)?;
            if status != expected {
                return Err(format!(
                    "{} answered {what} with {status}, not {expected}",
                    self.stack
                )
                .into());
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET /hello` with `token`, on a connection of its own.
fn status(port: u16, token: &str) -> Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    parse_status(&response).ok_or_else(|| format!("not an HTTP response: {response:?}").into())
}

fn parse_status(response: &str) -> Option<u16> {
    response
        .strip_prefix("HTTP/1.1 ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// One wrk run's figures.
#[derive(Debug, PartialEq)]
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

/// wrk with the token, pinned to [`CLIENT_CORE`].
struct Load<'a> {
    wrk: &'a Path,
    token: &'a str,
}

impl Load<'_> {
    fn command(&self, port: u16, secs: u32) -> Command {
        let mut command = Command::new("taskset");
        command
            .args(["-c", CLIENT_CORE])
            .arg(self.wrk)
            .args(["-t1", &format!("-c{CONNECTIONS}"), &format!("-d{secs}s")])
            .args(["--latency", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("http://127.0.0.1:{port}/hello"));
        command
    }

    fn run(&self, server: &Server, secs: u32) -> Result<Sample> {
        let mut command = self.command(server.port, secs);
        let line = cmd::display(&command);
        let out = command.output().map_err(|e| format!("`{line}`: {e}"))?;
        sample(server, &line, &out)
    }

    /// Both servers loaded at once, one wrk each (started together, on the same core).
    fn run_side_by_side(&self, a: &Server, b: &Server, secs: u32) -> Result<(Sample, Sample)> {
        let spawn = |server: &Server| -> Result<(String, Child)> {
            let mut command = self.command(server.port, secs);
            let line = cmd::display(&command);
            let child = command
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("`{line}`: {e}"))?;
            Ok((line, child))
        };
        let (line_a, child_a) = spawn(a)?;
        // A failure to start the second leaves the first to finish (wait_with_output below).
        let second = spawn(b);
        let out_a = child_a.wait_with_output()?;
        let (line_b, child_b) = second?;
        let out_b = child_b.wait_with_output()?;
        Ok((sample(a, &line_a, &out_a)?, sample(b, &line_b, &out_b)?))
    }
}

/// The figures of a finished wrk run against `server`.
fn sample(server: &Server, line: &str, out: &std::process::Output) -> Result<Sample> {
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("`{line}` failed: {text}").into());
    }
    parse_wrk(&text).map_err(|e| format!("{} behind `{line}`: {e}", server.stack).into())
}

/// req/s and the 50th and 99th latency percentiles of wrk's `--latency` output; an error
/// when a response was not 2xx/3xx or a socket failed.
fn parse_wrk(text: &str) -> std::result::Result<Sample, String> {
    for bad in ["Non-2xx or 3xx responses:", "Socket errors:"] {
        if let Some(line) = text.lines().find(|l| l.trim_start().starts_with(bad)) {
            return Err(line.trim().to_owned());
        }
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .map(str::trim)
            .ok_or_else(|| format!("no `{prefix}` in wrk's output"))
    };
    let rps = field("Requests/sec:")?
        .parse()
        .map_err(|e| format!("req/s: {e}"))?;
    let micros = |prefix| field(prefix).and_then(duration_us);
    Ok(Sample {
        rps,
        p50_us: micros("50%")?,
        p99_us: micros("99%")?,
    })
}

/// A wrk duration (`812.00us`, `1.20ms`, `2.01s`) in microseconds.
fn duration_us(text: &str) -> std::result::Result<f64, String> {
    let (number, scale) = [("us", 1.0), ("ms", 1e3), ("s", 1e6), ("m", 60e6)]
        .into_iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, scale)))
        .ok_or_else(|| format!("a duration without unit: {text:?}"))?;
    number
        .parse::<f64>()
        .map(|n| n * scale)
        .map_err(|e| format!("{text:?}: {e}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match (values.get(mid.wrapping_sub(1)), values.get(mid)) {
        (Some(a), Some(b)) if values.len().is_multiple_of(2) => (a + b) / 2.0,
        (_, Some(m)) => *m,
        _ => f64::NAN,
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://127.0.0.1:40000/hello
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  210.11us   4.90ms   88.00%
    Req/Sec    31.52k     1.20k   33.01k    80.00%
  Latency Distribution
     50%  812.00us
     75%    1.01ms
     90%    1.30ms
     99%    2.50ms
  62731 requests in 2.00s, 8.20MB read
Requests/sec:  31365.50
Transfer/sec:      4.10MB
";

    #[test]
    fn wrk_output_is_parsed() {
        assert_eq!(
            parse_wrk(WRK),
            Ok(Sample {
                rps: 31365.5,
                p50_us: 812.0,
                p99_us: 2500.0
            })
        );
        let refused = WRK.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 62731\nRequests/sec",
        );
        assert_eq!(
            parse_wrk(&refused),
            Err("Non-2xx or 3xx responses: 62731".to_owned())
        );
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn durations() {
        for (text, us) in [("812.00us", 812.0), ("1.5ms", 1500.0), ("2.00s", 2e6)] {
            assert_eq!(duration_us(text), Ok(us), "{text}");
        }
        assert!(duration_us("12").is_err());
    }

    #[test]
    fn statuses_and_statistics() {
        assert_eq!(parse_status("HTTP/1.1 401 Unauthorized\r\n"), Some(401));
        assert_eq!(parse_status("SSH-2.0"), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
        assert_eq!(min_max(&[1.1, 0.9, 1.0]), (0.9, 1.1));
    }

    #[test]
    fn ratio_rows() {
        let mut table = String::new();
        report_ratios(&mut table, "ring", "HS256", "ratio", &[1.04, 1.07, 1.06]);
        assert_eq!(table, "| ring | HS256 | 1.06 (1.04–1.07) | 2 of 3 |\n");
    }

    #[test]
    fn wrk_command() {
        let load = Load {
            wrk: Path::new("/usr/bin/wrk"),
            token: "a.b.c",
        };
        assert_eq!(
            cmd::display(&load.command(4000, 10)),
            "taskset -c 1 /usr/bin/wrk -t1 -c32 -d10s --latency -H 'Authorization: Bearer a.b.c' \
             http://127.0.0.1:4000/hello"
        );
    }

    #[test]
    fn the_server_is_built_on_ring_and_on_aws_lc_rs() {
        let names: Vec<&str> = builds().map(|b| b.name).collect();
        assert_eq!(names, ["ring", "aws-lc-rs"]);
    }
}
