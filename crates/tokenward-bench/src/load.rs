//! An in-process HTTP/1.1 load generator for the HTTP benchmarks (`http`, `demo_redis`):
//! `connections` keep-alive connections on loopback — in-process, so it needs nothing
//! installed and runs wherever the workspace builds. Two modes:
//!
//! - **closed loop** ([`LoadSpec::rate`] `None`): each connection sends a request, reads the
//!   whole response, sends the next, as `wrk -c N` does. This finds the server's capacity;
//!   its latencies are queueing at saturation (Little's law: connections ÷ throughput).
//!   Every request started after the warm-up and answered before the end of the measurement
//!   is timed (`Instant` around send + full body); requests per second = timed requests ÷
//!   the measurement time.
//! - **paced** (`rate` `Some(r)`): an offered load of `r` requests per second over all
//!   connections, each connection sending on its own fixed schedule (every
//!   `connections / r` seconds, the connections' schedules staggered), as `wrk2 -c N -R r`
//!   does. The schedule is kept by a thread of its own (the pacer), which sleeps until each
//!   request is due and hands it to its connection: requests leave evenly spaced, within
//!   the tens of microseconds a thread's sleep overshoots. (Until 2026-12-07 each connection
//!   slept on Tokio's timer, whose wheel has a resolution of 1 ms: every request due within
//!   the same millisecond left at once, so 5 000 req/s arrived as bursts of five every
//!   millisecond — a harsher load than the rate says, see docs/benchmarks.md.) A request's
//!   latency runs from the moment it was **due** when the connection was still busy with
//!   an earlier, late response (so a slow response also counts against the requests it
//!   held up: no coordinated omission), and from its actual send otherwise (the pacer's
//!   wake-up delay, a client-side delay, is not charged to the server). Every request due
//!   within the measurement is timed, however late it is answered. All connections are open
//!   before the first request is due.
//!
//! Any status other than the expected one is counted, so a harness can refuse to report a
//! run that measured an error path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::latency::percentile;

/// Why a load run or a single request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The TCP connection could not be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
    /// HTTP/1.1 handshake, send or receive failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad header value or path).
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// The paced mode's pacer thread could not be started.
    #[error("starting the pacer thread: {source}")]
    Pacer {
        /// Why not.
        source: std::io::Error,
    },
    /// A connection task panicked or was cancelled.
    #[error("connection task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What to send, where, and for how long.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server.
    pub addr: SocketAddr,
    /// `GET` path (and query).
    pub path: String,
    /// The `Authorization` header sent with every request, if any.
    pub authorization: Option<HeaderValue>,
    /// Concurrent keep-alive connections, one closed loop each.
    pub connections: usize,
    /// Untimed time before the measurement.
    pub warm_up: Duration,
    /// Timed time.
    pub measure: Duration,
    /// The status every response must have.
    pub expect: StatusCode,
    /// `None`: closed loops. `Some(r)`: paced at `r` requests per second in all (see the
    /// module documentation).
    pub rate: Option<f64>,
}

/// The outcome of one load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Latency of every timed request, sorted.
    pub latencies: Vec<Duration>,
    /// The measurement time.
    pub measured: Duration,
    /// Responses (timed or not) whose status was not [`LoadSpec::expect`].
    pub unexpected: u64,
    /// The first such status.
    pub first_unexpected: Option<StatusCode>,
}

impl LoadResult {
    /// Nothing timed yet, over a measurement of `measured`.
    fn empty(measured: Duration) -> Self {
        LoadResult {
            latencies: Vec::new(),
            measured,
            unexpected: 0,
            first_unexpected: None,
        }
    }

    /// Timed requests per second.
    pub fn requests_per_second(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 {
            self.latencies.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency at `per_10k` / 10 000 (nearest rank), e.g. 9 900 for p99.
    pub fn percentile(&self, per_10k: usize) -> Option<Duration> {
        percentile(&self.latencies, per_10k)
    }

    /// The same in microseconds; NaN when nothing was timed.
    pub fn percentile_us(&self, per_10k: usize) -> f64 {
        self.percentile(per_10k)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    }
}

/// Runs `spec`: warm-up, then measurement, on the current Tokio runtime.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult, LoadError> {
    if let Some(rate) = spec.rate {
        return run_paced(spec, rate).await;
    }
    let start = Instant::now();
    let timed_from = start + spec.warm_up;
    let end = timed_from + spec.measure;
    let spec = Arc::new(spec.clone());
    let mut tasks = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let spec = Arc::clone(&spec);
        tasks.push(tokio::spawn(async move {
            connection(&spec, timed_from, end).await
        }));
    }
    gather(spec.measure, tasks).await
}

/// The connections' results, merged; the first error if one failed.
async fn gather(
    measured: Duration,
    tasks: Vec<tokio::task::JoinHandle<Result<LoadResult, LoadError>>>,
) -> Result<LoadResult, LoadError> {
    let mut result = LoadResult::empty(measured);
    for task in tasks {
        let one = task.await??;
        result.latencies.extend(one.latencies);
        result.unexpected += one.unexpected;
        if result.first_unexpected.is_none() {
            result.first_unexpected = one.first_unexpected;
        }
    }
    result.latencies.sort_unstable();
    Ok(result)
}

async fn connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, LoadError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| LoadError::Connect { addr, source })?;
    stream
        .set_nodelay(true)
        .map_err(|source| LoadError::Connect { addr, source })?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

fn get(spec: &LoadSpec) -> Result<Request<Full<Bytes>>, LoadError> {
    let mut builder = Request::get(spec.path.as_str()).header(HOST, "127.0.0.1");
    if let Some(value) = &spec.authorization {
        builder = builder.header(AUTHORIZATION, value.clone());
    }
    Ok(builder.body(Full::new(Bytes::new()))?)
}

/// The paced mode: every connection opened first, then the pacer thread started.
async fn run_paced(spec: &LoadSpec, rate: f64) -> Result<LoadResult, LoadError> {
    let spec = Arc::new(spec.clone());
    let mut senders = Vec::with_capacity(spec.connections);
    let mut tasks = Vec::with_capacity(spec.connections);
    let mut dues = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let sender = connect(spec.addr).await?;
        let (due_tx, due_rx) = tokio::sync::mpsc::unbounded_channel();
        dues.push(due_tx);
        senders.push((sender, due_rx));
    }
    let start = Instant::now();
    let timed_from = start + spec.warm_up;
    let end = timed_from + spec.measure;
    for (sender, due_rx) in senders {
        let spec = Arc::clone(&spec);
        tasks.push(tokio::spawn(async move {
            paced(&spec, sender, due_rx, timed_from).await
        }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_pacer = Arc::clone(&stop);
    let pacer = std::thread::Builder::new()
        .name("load-pacer".to_owned())
        .spawn(move || pace(rate, start, end, &dues, &stop_pacer))
        .map_err(|source| LoadError::Pacer { source })?;
    let result = gather(spec.measure, tasks).await;
    // After a run, the pacer has already stopped (the connections' loops end when it drops
    // their channels). After a failed connection, it stops at its next request.
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    result
}

/// The schedule: request `k` is due at `start + k / rate` and goes to connection
/// `k mod connections`, so each connection sends every `connections / rate` seconds,
/// offset by `index / rate`. Sleeps until each request is due, then hands it over; stops
/// at `end`, when a connection has gone (its task failed), or when told to.
fn pace(
    rate: f64,
    start: Instant,
    end: Instant,
    dues: &[tokio::sync::mpsc::UnboundedSender<Instant>],
    stop: &AtomicBool,
) {
    // From one request per 1 000 s to 10⁹ per second (an infinite rate would never end).
    let rate = if rate.is_nan() {
        1e-3
    } else {
        rate.clamp(1e-3, 1e9)
    };
    for (k, connection) in (0u64..).zip(dues.iter().cycle()) {
        let Ok(offset) = Duration::try_from_secs_f64(k as f64 / rate) else {
            return;
        };
        let due = start + offset;
        if due >= end || stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if connection.send(due).is_err() {
            return;
        }
    }
}

/// A paced connection: one request per due time the pacer hands it.
async fn paced(
    spec: &LoadSpec,
    mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    mut dues: tokio::sync::mpsc::UnboundedReceiver<Instant>,
    timed_from: Instant,
) -> Result<LoadResult, LoadError> {
    let mut result = LoadResult::empty(spec.measure);
    let mut previous_done = Instant::now();
    while let Some(due) = dues.recv().await {
        let req = get(spec)?;
        sender.ready().await?;
        let sent = Instant::now();
        // Held up by a late response: the wait counts. Otherwise the pacer's lateness does not.
        let start = if previous_done > due { due } else { sent };
        let res = sender.send_request(req).await?;
        let status = res.status();
        let _body = res.into_body().collect().await?;
        let done = Instant::now();
        previous_done = done;
        if status != spec.expect {
            result.unexpected += 1;
            result.first_unexpected.get_or_insert(status);
        }
        if due >= timed_from {
            result.latencies.push(done - start);
        }
    }
    Ok(result)
}

async fn connection(
    spec: &LoadSpec,
    timed_from: Instant,
    end: Instant,
) -> Result<LoadResult, LoadError> {
    let mut sender = connect(spec.addr).await?;
    let mut result = LoadResult::empty(spec.measure);
    loop {
        let req = get(spec)?;
        sender.ready().await?;
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let res = sender.send_request(req).await?;
        let status = res.status();
        let _body = res.into_body().collect().await?;
        let done = Instant::now();
        if status != spec.expect {
            result.unexpected += 1;
            result.first_unexpected.get_or_insert(status);
        }
        if sent >= timed_from && done <= end {
            result.latencies.push(done - sent);
        }
    }
    Ok(result)
}

/// Sends one request on a fresh connection and returns the status and body: for the checks
/// before a run and for logging in.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    authorization: Option<&HeaderValue>,
    json_body: Option<String>,
) -> Result<(StatusCode, Bytes), LoadError> {
    let mut sender = connect(addr).await?;
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1");
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value.clone());
    }
    let body = match json_body {
        Some(json) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Bytes::from(json)
        }
        None => Bytes::new(),
    };
    let res = sender.send_request(builder.body(Full::new(body))?).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Median of `values` (the lower middle one for an even count); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len().checked_sub(1)? / 2;
    values.get(mid).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut []), None);
    }

    /// Serves `GET /` with the answer of `delay` later, and paces `connections` connections at
    /// `rate` requests per second against it.
    async fn paced_against(
        delay: Duration,
        connections: usize,
        rate: f64,
        warm_up: Duration,
        measure: Duration,
    ) -> LoadResult {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                "ok"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let spec = LoadSpec {
            addr,
            path: "/".to_owned(),
            authorization: None,
            connections,
            warm_up,
            measure,
            expect: StatusCode::OK,
            rate: Some(rate),
        };
        let result = run(&spec).await.unwrap();
        assert_eq!(result.unexpected, 0);
        result
    }

    /// A paced run sends exactly the requests its schedule makes due within the measurement
    /// (±1 per connection at the edges), whatever the machine's speed: late requests are sent
    /// late and timed, never skipped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_run_sends_what_is_due() {
        let ms = Duration::from_millis;
        let result = paced_against(Duration::ZERO, 4, 200.0, ms(100), ms(500)).await;
        let timed = result.latencies.len();
        assert!(
            (96..=104).contains(&timed),
            "{timed} timed requests, 100 due"
        );
    }

    /// A response slower than the schedule holds up the requests due after it on its
    /// connection, and they are timed from when they were due (no coordinated omission): with
    /// a 50 ms server and a request due every 10 ms, the later requests wait far longer than
    /// 50 ms. Timing them from their late send would show 50 ms throughout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_run_charges_the_wait_behind_a_slow_response() {
        let ms = Duration::from_millis;
        let result = paced_against(ms(50), 1, 100.0, Duration::ZERO, ms(200)).await;
        // 20 requests due, every one timed though most are answered after the measurement.
        assert!((19..=21).contains(&result.latencies.len()), "{result:?}");
        let slowest = result.percentile(10_000).unwrap();
        // The last is due at ≈ 190 ms and sent after ≈ 19 × 50 ms: it waited ≈ 800 ms.
        assert!(slowest >= Duration::from_millis(500), "slowest {slowest:?}");
        assert!(result.percentile(0).unwrap() >= Duration::from_millis(50));
    }

    /// Serves `GET` on `connections` keep-alive connections from plain threads, one per
    /// connection, and records when each request arrived: a thread blocked in `read` wakes
    /// for each request on its own, so the record is the arrivals' spacing, not a runtime's
    /// batching of its tasks.
    fn arrival_recorder(connections: usize) -> (SocketAddr, Arc<std::sync::Mutex<Vec<Instant>>>) {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&arrivals);
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (mut stream, _) = listener.accept().unwrap();
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut pending = Vec::new();
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        let now = Instant::now();
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            seen.lock().unwrap().push(now);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, arrivals)
    }

    /// The share of gaps between consecutive arrivals of a paced run at 2 000 req/s over
    /// 4 connections (one request due every 500 µs) that are at least 250 µs.
    async fn evenly_spaced_share() -> f64 {
        let (addr, arrivals) = arrival_recorder(4);
        let spec = LoadSpec {
            addr,
            path: "/".to_owned(),
            authorization: None,
            connections: 4,
            warm_up: Duration::from_millis(50),
            measure: Duration::from_millis(700),
            expect: StatusCode::OK,
            rate: Some(2_000.0),
        };
        let result = run(&spec).await.unwrap();
        assert_eq!(result.unexpected, 0);
        let mut arrivals = arrivals.lock().unwrap().clone();
        arrivals.sort_unstable();
        let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 1_200, "{} arrivals, 1 500 due", arrivals.len());
        let spaced = gaps
            .iter()
            .filter(|g| **g >= Duration::from_micros(250))
            .count();
        spaced as f64 / gaps.len() as f64
    }

    /// Paced requests leave evenly spaced, not in the millisecond batches of Tokio's timer:
    /// at one request due every 500 µs, batches (two per millisecond) put half the gaps
    /// between arrivals near 0 µs; evenly spaced, nearly every gap is about 500 µs.
    /// Measured: the generator before the pacer thread had 37–40 % of the gaps ≥ 250 µs,
    /// with or without other load; the pacer has 99 % on an idle machine and 60–78 % with
    /// three busy loops on two cores (a late wake-up of the pacer sends what is overdue at
    /// once). A loaded machine can still push one run under the line, so the property must
    /// hold in one of three runs; the old generator fails all three.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_requests_arrive_evenly_spaced() {
        let mut shares = Vec::new();
        for _ in 0..3 {
            let share = evenly_spaced_share().await;
            if share >= 0.5 {
                return;
            }
            shares.push(share);
        }
        panic!("the share of gaps between arrivals ≥ 250 µs (due every 500 µs) was {shares:.2?}");
    }

    /// A paced run whose connections the server closes ends with the error at once, not
    /// after the measurement time: the failed connections stop the pacer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_run_stops_when_its_connections_fail() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            while open.len() < 4 {
                open.push(listener.accept().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
            // Dropping them closes every connection.
        });
        let spec = LoadSpec {
            addr,
            path: "/".to_owned(),
            authorization: None,
            connections: 4,
            warm_up: Duration::ZERO,
            measure: Duration::from_secs(20),
            expect: StatusCode::OK,
            rate: Some(100.0),
        };
        let started = Instant::now();
        let err = run(&spec).await.unwrap_err();
        assert!(matches!(err, LoadError::Http(_)), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connection_refused_is_an_error() {
        let addr = SocketAddr::from(([127, 0, 0, 1], tokenward_testsupport::free_port()));
        let err = request(addr, Method::GET, "/", None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, LoadError::Connect { .. }), "{err}");
    }
}
