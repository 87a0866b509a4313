//! An in-process HTTP/1.1 load generator for the HTTP benchmarks (`http`, `demo_redis`):
//! `connections` keep-alive connections on loopback, each a closed loop (send a request, read
//! the whole response, send the next), as `wrk -c N` does — in-process, so it needs nothing
//! installed and runs wherever the workspace builds.
//!
//! Every request started after the warm-up and answered before the end of the measurement
//! is timed (`Instant` around send + full body); requests per second = timed requests ÷ the
//! measurement time. Any status other than the expected one is counted, so a harness can
//! refuse to report a run that measured an error path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::revocation::percentile;

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
}

/// Runs `spec`: warm-up, then measurement, on the current Tokio runtime.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult, LoadError> {
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
    let mut result = LoadResult {
        latencies: Vec::new(),
        measured: spec.measure,
        unexpected: 0,
        first_unexpected: None,
    };
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

async fn connection(
    spec: &LoadSpec,
    timed_from: Instant,
    end: Instant,
) -> Result<LoadResult, LoadError> {
    let mut sender = connect(spec.addr).await?;
    let mut result = LoadResult {
        latencies: Vec::new(),
        measured: spec.measure,
        unexpected: 0,
        first_unexpected: None,
    };
    loop {
        let mut builder = Request::get(spec.path.as_str()).header(HOST, "127.0.0.1");
        if let Some(value) = &spec.authorization {
            builder = builder.header(AUTHORIZATION, value.clone());
        }
        let req = builder.body(Full::new(Bytes::new()))?;
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

/// The 1-minute load average from `/proc/loadavg` (`"?"` where there is none).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
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

    #[tokio::test(flavor = "current_thread")]
    async fn connection_refused_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = request(addr, Method::GET, "/", None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, LoadError::Connect { .. }), "{err}");
    }
}
