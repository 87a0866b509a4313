//! The names of the Guard's store checks and of its store backends, as types.
//!
//! Both serialize to the same lowercase strings that appear in audit events, metrics and
//! the demo's `/health` (`revocation`, `subject_limit`, `ban`, `ban_record`, `refresh`; `memory`,
//! `redis`, `custom`), so nothing external depends on the Rust names.

use std::fmt;

use serde::Serialize;

/// One store check of the Guard: what an outage, a [`Denial::Unavailable`](crate::Denial)
/// and [`Authenticated::degraded`](crate::Authenticated::degraded) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// The revocation check (jti, sid, subject cutoff).
    Revocation,
    /// The per-subject limit.
    SubjectLimit,
    /// The failure-ban check of the client.
    Ban,
    /// Recording an authentication failure for the ban (never changes the answer).
    BanRecord,
    /// The refresh-token store, for endpoints next to the Guard (refresh, logout) that answer
    /// its outage with [`Denial::Unavailable`](crate::Denial).
    Refresh,
}

impl Check {
    /// The name in audit events: `revocation`, `subject_limit`, `ban`, `ban_record`,
    /// `refresh`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Check::Revocation => "revocation",
            Check::SubjectLimit => "subject_limit",
            Check::Ban => "ban",
            Check::BanRecord => "ban_record",
            Check::Refresh => "refresh",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of stores back a Guard ([`GuardStores::backend`](crate::GuardStores::backend)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Backend {
    /// tokenward's in-memory stores (one process).
    Memory,
    /// tokenward's Redis stores.
    Redis,
    /// Stores given to [`GuardStores::new`](crate::GuardStores::new).
    Custom,
    /// PostgreSQL for refresh families and revocations, memory for limits and bans
    /// (`GuardStores::postgres`, feature `postgres`).
    Postgres,
    /// PostgreSQL for refresh families and durable revocations, Redis for the rest
    /// (`tokenward_guard::hybrid`, features `redis` and `postgres`).
    Hybrid,
}

impl Backend {
    /// `memory`, `redis`, `custom`, `postgres` or `hybrid`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::Custom => "custom",
            Backend::Postgres => "postgres",
            Backend::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serialized_names_are_the_audit_names() {
        for check in [
            Check::Revocation,
            Check::SubjectLimit,
            Check::Ban,
            Check::BanRecord,
            Check::Refresh,
        ] {
            assert_eq!(
                serde_json::to_value(check).unwrap(),
                serde_json::Value::String(check.as_str().to_owned())
            );
        }
        for backend in [Backend::Memory, Backend::Redis, Backend::Custom] {
            assert_eq!(
                serde_json::to_value(backend).unwrap(),
                serde_json::Value::String(backend.to_string())
            );
        }
    }
}
