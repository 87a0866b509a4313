//! Metrics and tracing spans of the Guard (audit events are [`crate::audit`]).
//!
//! Metric names are [`tokenward_core::metrics`]'s; every label value is a `&'static str`, so
//! recording allocates nothing per request. Spans: `tokenward.authenticate` (target
//! [`SPAN_TARGET`]) around each [`Guard::authenticate`](crate::Guard::authenticate), with
//! OpenTelemetry field names, and a `tokenward.store` child span (field `check`) around
//! each store call. Without a subscriber interested in them they cost a level check.

use std::time::{Duration, Instant};

use tokenward_core::metrics as names;
use tracing::Span;
use tracing::field::Empty;

use crate::audit::capped_request;
use crate::check::Check;
use crate::denial::Denial;
use crate::request::AuthRequest;

/// The target of the Guard's spans.
pub const SPAN_TARGET: &str = "tokenward::guard";

/// The span of one authentication: `enduser.id` (the `sub`, once verified),
/// `tokenward.outcome`, `tokenward.class`, `client.address`, `http.request.method` and
/// `url.path` (never the query).
pub(crate) fn authenticate_span(req: &AuthRequest<'_>) -> Span {
    let (method, path) = capped_request(req);
    tracing::info_span!(
        target: SPAN_TARGET,
        "tokenward.authenticate",
        "enduser.id" = Empty,
        "tokenward.outcome" = Empty,
        "tokenward.class" = Empty,
        "client.address" = %req.client_ip,
        "http.request.method" = method,
        "url.path" = path,
    )
}

/// The span of one store call.
pub(crate) fn store_span(check: &'static str) -> Span {
    tracing::info_span!(target: SPAN_TARGET, "tokenward.store", check)
}

/// A store call of `check` that started at `started` has returned.
pub(crate) fn store_done(check: &'static str, started: Instant, failed: bool) {
    metrics::histogram!(names::STORE_SECONDS, names::CHECK => check).record(started.elapsed());
    if failed {
        metrics::counter!(names::STORE_ERRORS_TOTAL, names::CHECK => check).increment(1);
    }
}

/// A decision: `tokenward_decisions_total`.
pub(crate) fn decision(outcome: &'static str, class: &'static str) {
    metrics::counter!(names::DECISIONS_TOTAL, names::OUTCOME => outcome, names::CLASS => class)
        .increment(1);
}

/// Checks skipped under a fail-open policy in an allowed decision.
pub(crate) fn degraded(checks: &[Check]) {
    for check in checks {
        metrics::counter!(names::DEGRADED_TOTAL, names::CHECK => check.as_str()).increment(1);
    }
}

/// The end of one `authenticate`: the span's outcome and class, `tokenward_guard_seconds`.
pub(crate) fn authenticated(span: &Span, result: Result<(), &Denial>, elapsed: Duration) {
    let (outcome, class) = outcome(result);
    span.record("tokenward.outcome", outcome);
    span.record("tokenward.class", class);
    metrics::histogram!(names::GUARD_SECONDS, names::OUTCOME => outcome).record(elapsed);
}

/// The `outcome` and `class` labels of a decision.
pub(crate) fn outcome(result: Result<(), &Denial>) -> (&'static str, &'static str) {
    match result {
        Ok(()) => (names::ALLOWED, names::CLASS_NONE),
        Err(denial) => (names::DENIED, denial.class()),
    }
}
