//! The names of tokenward's metrics: a stable contract, recorded through the [`metrics`]
//! facade.
//!
//! The libraries only *record* (`tokenward-guard`, `tokenward-refresh`, `tokenward-jwks`,
//! `tokenward-anomaly`);
//! they install no recorder and no exporter. An application that wants the numbers installs
//! a recorder once at startup — `metrics-exporter-prometheus` for a Prometheus `/metrics`
//! route, as the demo does — and calls [`describe`] for the help texts and units. Without
//! a recorder every update is a no-op.
//!
//! Names follow the Prometheus conventions (`_total` counters, `_seconds` histograms) and
//! are never renamed; new names and new label values may be added. Label values are
//! `&'static str` from fixed sets: no label ever carries a token, a `sub`, a `jti` or an
//! address, so the series count is bounded and `/metrics` can be public.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | [`DECISIONS_TOTAL`] | counter | `outcome` (`allowed`, `denied`), `class` | one per Guard decision; `class` is `none` when allowed, else the denial's class (`expired`, `signature`, `revoked`, `rate_limited`, `banned`, `store_unavailable`, ...) |
//! | [`GUARD_SECONDS`] | histogram | `outcome` | time of one `Guard::authenticate`, store calls included |
//! | [`STORE_SECONDS`] | histogram | `check` | latency of one store call: `revocation`, `subject_limit`, `ban`, `ban_record`, or `combined` (the one Redis call) |
//! | [`STORE_ERRORS_TOTAL`] | counter | `check` | store calls that failed (timeout, connection, ...) |
//! | [`DEGRADED_TOTAL`] | counter | `check` | checks skipped under a fail-open policy in an allowed decision |
//! | [`REFRESH_TOTAL`] | counter | `result` | refresh engine results ([`refresh`]): `issued`, `rotated`, `grace`, `idempotent_replay`, `reused`, `revoked`, `invalid`, `store_error`, `error` |
//! | [`ANOMALIES_TOTAL`] | counter | `kind`, `action` | anomalies detected by `tokenward-anomaly` and the action chosen: `kind` = `token_shared`, `revoked_token_replay`, `forgery_burst`, `refresh_reuse`, `new_network`; `action` = `alert`, `revoke_session`, `revoke_subject`, `ban` |
//! | [`ANOMALY_ACTION_FAILURES_TOTAL`] | counter | `action` | anomaly actions that failed after their retries (store down) |
//! | [`ANOMALY_DROPPED_TOTAL`] | counter | | decisions the anomaly detector dropped because its queue was full (never waited for) |
//! | [`ANOMALY_STATE_ERRORS_TOTAL`] | counter | | observations the detector could not count (its state store failed) |
//! | [`JWKS_FETCHES_TOTAL`] | counter | `result` | JWKS fetches of a remote key set: `ok`, `error` |
//! | [`JWKS_STALE_TOTAL`] | counter | `state` | failed refreshes of a remote key set whose cached keys were stale: `serving` (past their TTL, still used), `unusable` (past their maximum staleness: that issuer's tokens are refused) |
//!
//! ```
//! use tokenward_core::metrics;
//!
//! assert_eq!(metrics::DECISIONS_TOTAL, "tokenward_decisions_total");
//! // Once, after installing a recorder: help texts and units for the exporter.
//! metrics::describe();
//! ```

use ::metrics::{Unit, describe_counter, describe_histogram};

/// Counter `tokenward_decisions_total{outcome, class}`: Guard decisions.
pub const DECISIONS_TOTAL: &str = "tokenward_decisions_total";
/// Histogram `tokenward_guard_seconds{outcome}`: the time of one `Guard::authenticate`.
pub const GUARD_SECONDS: &str = "tokenward_guard_seconds";
/// Histogram `tokenward_store_seconds{check}`: the latency of one store call.
pub const STORE_SECONDS: &str = "tokenward_store_seconds";
/// Counter `tokenward_store_errors_total{check}`: store calls that failed.
pub const STORE_ERRORS_TOTAL: &str = "tokenward_store_errors_total";
/// Counter `tokenward_degraded_total{check}`: checks skipped under a fail-open policy.
pub const DEGRADED_TOTAL: &str = "tokenward_degraded_total";
/// Counter `tokenward_refresh_total{result}`: refresh engine results.
pub const REFRESH_TOTAL: &str = "tokenward_refresh_total";
/// Counter `tokenward_anomalies_total{kind, action}`: anomalies detected and acted on.
pub const ANOMALIES_TOTAL: &str = "tokenward_anomalies_total";
/// Counter `tokenward_anomaly_action_failures_total{action}`: actions that failed after
/// their retries.
pub const ANOMALY_ACTION_FAILURES_TOTAL: &str = "tokenward_anomaly_action_failures_total";
/// Counter `tokenward_anomaly_dropped_total`: decisions dropped by a full detector queue.
pub const ANOMALY_DROPPED_TOTAL: &str = "tokenward_anomaly_dropped_total";
/// Counter `tokenward_anomaly_state_errors_total`: observations the detector's state store
/// could not count.
pub const ANOMALY_STATE_ERRORS_TOTAL: &str = "tokenward_anomaly_state_errors_total";
/// Counter `tokenward_jwks_fetches_total{result}`: fetches of a remote key set.
pub const JWKS_FETCHES_TOTAL: &str = "tokenward_jwks_fetches_total";
/// Counter `tokenward_jwks_stale_total{state}`: failed refreshes of a remote key set whose
/// cached keys were stale — `serving` (past their TTL, still used) or `unusable` (past their
/// maximum staleness, no longer used).
pub const JWKS_STALE_TOTAL: &str = "tokenward_jwks_stale_total";

/// Label `outcome` of a decision.
pub const OUTCOME: &str = "outcome";
/// Label `class` of a decision.
pub const CLASS: &str = "class";
/// Label `check` of a store call.
pub const CHECK: &str = "check";
/// Label `result` of a refresh or a JWKS fetch.
pub const RESULT: &str = "result";
/// Label `kind` of an anomaly.
pub const KIND: &str = "kind";
/// Label `action` of an anomaly.
pub const ACTION: &str = "action";
/// Label `state` of a stale remote key set.
pub const STATE: &str = "state";

/// `outcome` of an allowed decision.
pub const ALLOWED: &str = "allowed";
/// `outcome` of a refused decision.
pub const DENIED: &str = "denied";
/// `class` of an allowed decision.
pub const CLASS_NONE: &str = "none";
/// `check` of the one call that answers ban, revocation and subject limit together.
pub const CHECK_COMBINED: &str = "combined";

/// Registers the help text and unit of every metric above with the installed recorder.
/// Call it once after installing one; without a recorder it does nothing.
pub fn describe() {
    describe_counter!(
        DECISIONS_TOTAL,
        Unit::Count,
        "Guard decisions by outcome (allowed, denied) and rejection class (none when allowed)."
    );
    describe_histogram!(
        GUARD_SECONDS,
        Unit::Seconds,
        "Time of one Guard authentication, store calls included."
    );
    describe_histogram!(
        STORE_SECONDS,
        Unit::Seconds,
        "Latency of one store call by check (combined: the one Redis call)."
    );
    describe_counter!(
        STORE_ERRORS_TOTAL,
        Unit::Count,
        "Store calls that failed, by check."
    );
    describe_counter!(
        DEGRADED_TOTAL,
        Unit::Count,
        "Checks skipped under a fail-open policy in allowed decisions."
    );
    describe_counter!(
        REFRESH_TOTAL,
        Unit::Count,
        "Refresh engine results (issued, rotated, grace, idempotent_replay, reused, ...)."
    );
    describe_counter!(
        ANOMALIES_TOTAL,
        Unit::Count,
        "Anomalies detected, by kind and the action taken."
    );
    describe_counter!(
        ANOMALY_ACTION_FAILURES_TOTAL,
        Unit::Count,
        "Anomaly actions that failed after their retries, by action."
    );
    describe_counter!(
        ANOMALY_DROPPED_TOTAL,
        Unit::Count,
        "Decisions the anomaly detector dropped because its queue was full."
    );
    describe_counter!(
        ANOMALY_STATE_ERRORS_TOTAL,
        Unit::Count,
        "Observations the anomaly detector could not count (state store failed)."
    );
    describe_counter!(
        JWKS_FETCHES_TOTAL,
        Unit::Count,
        "Fetches of remote key sets, by result (ok, error)."
    );
    describe_counter!(
        JWKS_STALE_TOTAL,
        Unit::Count,
        "Failed refreshes of remote key sets whose cached keys were stale: serving (past their TTL, still used) or unusable (past their maximum staleness)."
    );
}

/// The `result` values of [`REFRESH_TOTAL`].
pub mod refresh {
    /// A login created a family (`RefreshEngine::issue`).
    pub const ISSUED: &str = "issued";
    /// The presented refresh token was current and has been rotated.
    pub const ROTATED: &str = "rotated";
    /// The previous token within the grace window: the same successor again.
    pub const GRACE: &str = "grace";
    /// The same token and idempotency key again: the recorded response.
    pub const IDEMPOTENT_REPLAY: &str = "idempotent_replay";
    /// Reuse detected: the family and its session were revoked.
    pub const REUSED: &str = "reused";
    /// The family was already revoked.
    pub const REVOKED: &str = "revoked";
    /// Not a refresh token of this engine (or a bad idempotency key).
    pub const INVALID: &str = "invalid";
    /// The refresh store could not answer.
    pub const STORE_ERROR: &str = "store_error";
    /// Anything else (minting the access token failed, sealed data invalid, ...).
    pub const ERROR: &str = "error";
}
