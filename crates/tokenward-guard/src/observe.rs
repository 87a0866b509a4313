//! Metrics and tracing spans of the Guard (audit events are [`crate::audit`]).
//!
//! Metric names are [`tokenward_core::metrics`]'s; every label value is a `&'static str`, so
//! recording allocates nothing per request. Spans: `tokenward.authenticate` (target
//! [`SPAN_TARGET`]) around each [`Guard::authenticate`](crate::Guard::authenticate), with
//! OpenTelemetry field names, and a `tokenward.store` child span (field `check`) around
//! each store call. Without a subscriber interested in them they cost a level check.

use std::time::{Duration, Instant};

use metrics::{Key, Label, Level, Metadata};
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

/// A store call of `check` that started at `started` has returned; returns now, the start
/// of a store call that follows at once (a clock read costs tens of nanoseconds on some
/// machines: the allowed path reads the clock as few times as it can).
pub(crate) fn store_done(check: &'static str, started: Instant, failed: bool) -> Instant {
    let now = Instant::now();
    histogram(
        names::STORE_SECONDS,
        check_labels(check),
        names::CHECK,
        check,
        now.saturating_duration_since(started),
    );
    if failed {
        counter(
            names::STORE_ERRORS_TOTAL,
            check_labels(check),
            names::CHECK,
            check,
        );
    }
    now
}

/// A decision: `tokenward_decisions_total`.
pub(crate) fn decision(outcome: &'static str, class: &'static str) {
    match decision_labels(outcome, class) {
        Some(labels) => increment(names::DECISIONS_TOTAL, labels),
        // A class this table does not know yet (a new rejection class): correct, but the
        // labels are allocated.
        None => metrics::counter!(
            names::DECISIONS_TOTAL,
            names::OUTCOME => outcome,
            names::CLASS => class
        )
        .increment(1),
    }
}

/// Checks skipped under a fail-open policy in an allowed decision.
pub(crate) fn degraded(checks: &[Check]) {
    for check in checks {
        let check = check.as_str();
        counter(
            names::DEGRADED_TOTAL,
            check_labels(check),
            names::CHECK,
            check,
        );
    }
}

/// The end of one `authenticate`: the span's outcome and class, `tokenward_guard_seconds`.
pub(crate) fn authenticated(span: &Span, result: Result<(), &Denial>, elapsed: Duration) {
    let (outcome, class) = outcome(result);
    span.record("tokenward.outcome", outcome);
    span.record("tokenward.class", class);
    histogram(
        names::GUARD_SECONDS,
        one_label!(names::OUTCOME; outcome; "allowed", "denied"),
        names::OUTCOME,
        outcome,
        elapsed,
    );
}

/// The `outcome` and `class` labels of a decision.
pub(crate) fn outcome(result: Result<(), &Denial>) -> (&'static str, &'static str) {
    match result {
        Ok(()) => (names::ALLOWED, names::CLASS_NONE),
        Err(denial) => (names::DENIED, denial.class()),
    }
}

// Recording without allocating: `metrics::counter!` with label values that are not literals
// builds a `Vec` of labels per call, even without a recorder. The Guard's label values come
// from fixed sets, so each (name, value) pair has a `static` label array here, and the key
// is built from static parts. A value missing from a table (a future rejection class) still
// counts, through the allocating macro.

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A static one-label set for `$value` if it is one of the literals.
macro_rules! one_label {
    ($key:expr; $value:expr; $($v:literal),+ $(,)?) => {
        match $value {
            $($v => {
                static LABELS: [Label; 1] = [Label::from_static_parts($key, $v)];
                Some(&LABELS as &'static [Label])
            })+
            _ => None,
        }
    };
}
use one_label;

/// The static `{outcome, class}` labels of a decision.
fn decision_labels(outcome: &str, class: &str) -> Option<&'static [Label]> {
    macro_rules! two {
        ($outcome:literal; $($v:literal),+ $(,)?) => {
            match class {
                $($v => {
                    static LABELS: [Label; 2] = [
                        Label::from_static_parts(names::OUTCOME, $outcome),
                        Label::from_static_parts(names::CLASS, $v),
                    ];
                    Some(&LABELS as &'static [Label])
                })+
                _ => None,
            }
        };
    }
    match outcome {
        "allowed" => two!("allowed"; "none"),
        "denied" => two!("denied";
            "malformed", "algorithm", "key", "signature", "header", "typ", "expired",
            "not_yet_valid", "issuer", "audience", "claims", "scope", "revoked",
            "insufficient_scope", "insufficient_role", "rate_limited", "banned",
            "store_unavailable", "missing_token", "invalid_request", "misconfigured",
        ),
        _ => None,
    }
}

/// The static `{check}` label of a store check.
fn check_labels(check: &str) -> Option<&'static [Label]> {
    one_label!(names::CHECK; check;
        "revocation", "subject_limit", "ban", "ban_record", "refresh", "combined")
}

fn increment(name: &'static str, labels: &'static [Label]) {
    let key = Key::from_static_parts(name, labels);
    metrics::with_recorder(|r| r.register_counter(&key, &METADATA).increment(1));
}

/// `name{label=value}` + 1, without allocating when `labels` is the static set.
fn counter(
    name: &'static str,
    labels: Option<&'static [Label]>,
    label: &'static str,
    value: &'static str,
) {
    match labels {
        Some(labels) => increment(name, labels),
        None => metrics::counter!(name, label => value).increment(1),
    }
}

/// Records `elapsed` in `name{label=value}`, without allocating when `labels` is the static
/// set.
fn histogram(
    name: &'static str,
    labels: Option<&'static [Label]>,
    label: &'static str,
    value: &'static str,
    elapsed: Duration,
) {
    match labels {
        Some(labels) => {
            let key = Key::from_static_parts(name, labels);
            metrics::with_recorder(|r| r.register_histogram(&key, &METADATA).record(elapsed));
        }
        None => metrics::histogram!(name, label => value).record(elapsed),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokenward_claims::RejectionClass;
    use tokenward_ratelimit::Decision;
    use tokenward_revocation::RevokedBy;

    use super::*;

    /// Every class a denial can have, and every check, has its static labels (no allocation
    /// on any path the Guard knows).
    #[test]
    fn every_known_label_value_is_static() {
        use RejectionClass::*;
        let classes = [
            Malformed,
            Algorithm,
            Key,
            Signature,
            Header,
            Typ,
            Expired,
            NotYetValid,
            Issuer,
            Audience,
            Claims,
            Scope,
        ];
        let decision = Decision::denied(1, Duration::ZERO, Duration::ZERO);
        let mut denials: Vec<Denial> = classes
            .into_iter()
            .map(|class| Denial::InvalidToken { class })
            .collect();
        denials.extend([
            Denial::Revoked {
                by: RevokedBy::Token,
            },
            Denial::InsufficientScope {
                required: String::new(),
            },
            Denial::InsufficientRole {
                required: String::new(),
            },
            Denial::RateLimited {
                decision,
                policy: String::new(),
                ratelimit: String::new(),
            },
            Denial::Banned {
                decision,
                policy: String::new(),
                ratelimit: String::new(),
            },
            Denial::Unavailable {
                check: Check::Revocation,
                retry_after: Duration::ZERO,
            },
            Denial::MissingToken,
            Denial::InvalidRequest { reason: "" },
            Denial::Misconfigured,
        ]);
        for denial in &denials {
            let labels = decision_labels(names::DENIED, denial.class());
            assert!(labels.is_some(), "{denial:?}");
            let class = labels.unwrap_or_default().get(1).map(Label::value);
            assert_eq!(class, Some(denial.class()));
        }
        assert!(decision_labels(names::ALLOWED, names::CLASS_NONE).is_some());
        for check in [
            Check::Revocation,
            Check::SubjectLimit,
            Check::Ban,
            Check::BanRecord,
            Check::Refresh,
        ] {
            assert!(check_labels(check.as_str()).is_some(), "{check}");
        }
        assert!(check_labels(names::CHECK_COMBINED).is_some());
    }
}
