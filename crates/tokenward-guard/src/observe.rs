//! Metrics and tracing spans of the Guard (audit events are [`crate::audit`]).
//!
//! Metric names are [`tokenward_core::metrics`]'s; every label value is a `&'static str`, so
//! recording allocates nothing per request. Spans: `tokenward.authenticate` (target
//! [`SPAN_TARGET`]) around each [`Guard::authenticate`](crate::Guard::authenticate), with
//! OpenTelemetry field names, and a `tokenward.store` child span (field `check`) around
//! each store call that awaits: a store answering synchronously in process (the in-memory
//! revocation check and subject limit) has nothing to await and gets no span, while its
//! latency is still recorded in `tokenward_store_seconds`. Without a subscriber interested
//! in them spans cost a level check.

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
    let elapsed = now.saturating_duration_since(started);
    match store_seconds_key(check) {
        Some(key) => histogram(key, elapsed),
        None => metrics::histogram!(names::STORE_SECONDS, names::CHECK => check).record(elapsed),
    }
    if failed {
        match store_errors_key(check) {
            Some(key) => increment(key),
            None => {
                metrics::counter!(names::STORE_ERRORS_TOTAL, names::CHECK => check).increment(1)
            }
        }
    }
    now
}

/// A decision: `tokenward_decisions_total`.
pub(crate) fn decision(outcome: &'static str, class: &'static str) {
    match decision_key(outcome, class) {
        Some(key) => increment(key),
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
        match degraded_key(check) {
            Some(key) => increment(key),
            None => metrics::counter!(names::DEGRADED_TOTAL, names::CHECK => check).increment(1),
        }
    }
}

/// The end of one `authenticate`: the span's outcome and class, `tokenward_guard_seconds`.
pub(crate) fn authenticated(span: &Span, result: Result<(), &Denial>, elapsed: Duration) {
    let (outcome, class) = outcome(result);
    span.record("tokenward.outcome", outcome);
    span.record("tokenward.class", class);
    match static_key!(names::GUARD_SECONDS, names::OUTCOME; outcome; "allowed", "denied") {
        Some(key) => histogram(key, elapsed),
        None => {
            metrics::histogram!(names::GUARD_SECONDS, names::OUTCOME => outcome).record(elapsed)
        }
    }
}

/// The `outcome` and `class` labels of a decision.
pub(crate) fn outcome(result: Result<(), &Denial>) -> (&'static str, &'static str) {
    match result {
        Ok(()) => (names::ALLOWED, names::CLASS_NONE),
        Err(denial) => (names::DENIED, denial.class()),
    }
}

// Recording without allocating or hashing: `metrics::counter!` with label values that are
// not literals builds a `Vec` of labels per call, even without a recorder, and every `Key`
// built at run time hashes its name and labels. The Guard's label values come from fixed
// sets, so each (metric, label values) pair has a `static` key here, built — and hashed —
// at compile time. A value missing from a table (a future rejection class) still counts,
// through the allocating macro.

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The static key `$name{$label=$value}` if `$value` is one of the literals.
macro_rules! static_key {
    ($name:expr, $label:expr; $value:expr; $($v:literal),+ $(,)?) => {
        match $value {
            $($v => {
                static LABELS: [Label; 1] = [Label::from_static_parts($label, $v)];
                static KEY: Key = Key::from_static_parts($name, &LABELS);
                Some(&KEY)
            })+
            _ => None,
        }
    };
}
use static_key;

/// The check names a `{check}` label takes.
macro_rules! check_key {
    ($name:expr, $check:expr) => {
        static_key!($name, names::CHECK; $check;
            "revocation", "subject_limit", "ban", "ban_record", "refresh", "combined")
    };
}

/// `tokenward_store_seconds{check}`.
fn store_seconds_key(check: &str) -> Option<&'static Key> {
    check_key!(names::STORE_SECONDS, check)
}

/// `tokenward_store_errors_total{check}`.
fn store_errors_key(check: &str) -> Option<&'static Key> {
    check_key!(names::STORE_ERRORS_TOTAL, check)
}

/// `tokenward_degraded_total{check}`.
fn degraded_key(check: &str) -> Option<&'static Key> {
    check_key!(names::DEGRADED_TOTAL, check)
}

/// The static `tokenward_decisions_total{outcome, class}` key of a decision.
fn decision_key(outcome: &str, class: &str) -> Option<&'static Key> {
    macro_rules! two {
        ($outcome:literal; $($v:literal),+ $(,)?) => {
            match class {
                $($v => {
                    static LABELS: [Label; 2] = [
                        Label::from_static_parts(names::OUTCOME, $outcome),
                        Label::from_static_parts(names::CLASS, $v),
                    ];
                    static KEY: Key = Key::from_static_parts(names::DECISIONS_TOTAL, &LABELS);
                    Some(&KEY)
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

fn increment(key: &'static Key) {
    metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
}

fn histogram(key: &'static Key, elapsed: Duration) {
    metrics::with_recorder(|r| r.register_histogram(key, &METADATA).record(elapsed));
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
            let key = decision_key(names::DENIED, denial.class());
            assert!(key.is_some(), "{denial:?}");
            let key = key.unwrap();
            assert_eq!(key.name(), names::DECISIONS_TOTAL);
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(
                labels,
                [
                    (names::OUTCOME, names::DENIED),
                    (names::CLASS, denial.class())
                ]
            );
        }
        assert!(decision_key(names::ALLOWED, names::CLASS_NONE).is_some());
        for check in [
            Check::Revocation,
            Check::SubjectLimit,
            Check::Ban,
            Check::BanRecord,
            Check::Refresh,
        ] {
            for key in [
                store_seconds_key(check.as_str()),
                store_errors_key(check.as_str()),
                degraded_key(check.as_str()),
            ] {
                let key = key.unwrap_or_else(|| panic!("{check}"));
                let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [(names::CHECK, check.as_str())]);
            }
        }
        assert!(store_seconds_key(names::CHECK_COMBINED).is_some());
    }
}
