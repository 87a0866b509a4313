//! What the demo shows operators: `GET /metrics` in the Prometheus text format, and logs as
//! text or JSON lines (`--log-format`).
//!
//! The libraries record metrics through the `metrics` facade under the names of
//! [`tokenward_core::metrics`]; the demo installs `metrics-exporter-prometheus` as the
//! process-wide recorder the first time it is asked for it ([`prometheus`]) and renders the
//! text in the `/metrics` handler — no listener or push gateway of the exporter's own. The
//! recorder is per process: several demo servers in one process (tests) share one set of
//! counts. `/metrics` is unauthenticated, like the JWKS route: its labels are fixed sets
//! (outcome, class, check, result), never a subject, a token id or an address.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram buckets of every `_seconds` metric: 25 µs to 2.5 s.
const SECONDS_BUCKETS: [f64; 15] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0, 2.5,
];

/// The process-wide Prometheus recorder, installed (with the metrics' descriptions) on the
/// first call; `None` if another recorder was installed first.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            tokenward_core::metrics::describe();
            Some(handle)
        })
        .as_ref()
}

/// `GET /metrics`: the Prometheus text of this process's metrics.
pub fn metrics_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/metrics", get(render))
}

async fn render() -> Response {
    match prometheus() {
        Some(handle) => {
            ([(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], handle.render()).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process\n",
        )
            .into_response(),
    }
}

/// The format of the log lines on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default format).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target` (`tokenward::audit` for
    /// audit events), `fields`, and the current `span` with its fields.
    Json,
}

/// Installs the process's `tracing` subscriber: every event at `INFO` and above to stderr,
/// in `format`. Errors if a subscriber is already installed.
pub fn init_logging(format: LogFormat) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(true);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
}
