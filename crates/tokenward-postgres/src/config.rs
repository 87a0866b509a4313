//! [`PgConfig`]: where the stores live and how long they wait.

use std::fmt;
use std::time::Duration;

use tokenward_core::{SettingError, redact_url};

/// How [`PgBackend::connect`](crate::PgBackend::connect) builds its pool, and the settings
/// every store on the backend shares.
///
/// ```
/// use std::time::Duration;
/// use tokenward_postgres::PgConfig;
///
/// let config = PgConfig::new("postgres://app:secret@db.internal/app?sslmode=verify-full")
///     .schema("tokenward")
///     .operation_timeout(Duration::from_secs(1));
/// assert!(config.validate().is_ok());
/// // The password never reaches logs or errors.
/// assert_eq!(config.redacted_url(), "postgres://app:***@db.internal/app?sslmode=verify-full");
/// ```
#[derive(Clone)]
pub struct PgConfig {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) max_connections: u32,
    pub(crate) operation_timeout: Duration,
    pub(crate) purge_interval: Option<Duration>,
    pub(crate) purge_batch: u32,
    pub(crate) migrate: bool,
}

impl PgConfig {
    /// The schema the stores' tables live in, unless [`schema`](Self::schema) says otherwise.
    pub const DEFAULT_SCHEMA: &'static str = "tokenward";
    /// Connections in the pool the backend builds.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    /// How long one call may take, waiting for a connection included.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
    /// How often the background task purges expired rows.
    pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);
    /// Rows one purge statement deletes at most.
    pub const DEFAULT_PURGE_BATCH: u32 = 10_000;

    /// The stores on the database at `url` (`postgres://user:password@host:port/db`, with
    /// any `sslmode`), defaults for everything else.
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: Self::DEFAULT_SCHEMA.to_owned(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            purge_interval: Some(Self::DEFAULT_PURGE_INTERVAL),
            purge_batch: Self::DEFAULT_PURGE_BATCH,
            migrate: true,
        }
    }

    /// The schema of the stores' tables (created if missing; a lowercase SQL identifier:
    /// `a-z`, `0-9`, `_`, not starting with a digit, at most 63 bytes). Its own
    /// `_sqlx_migrations` table keeps tokenward's migrations apart from the application's.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Connections in the pool (1..=1000).
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// How long one call may take, waiting for a pooled connection included (1 ms..=60 s).
    /// A call past it fails with `StoreError::Timeout`.
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How often the backend's background task deletes expired rows (`None`: never; the
    /// bounded purge of every write still runs). 1 s..=1 day.
    #[must_use]
    pub fn purge_interval(mut self, interval: Option<Duration>) -> Self {
        self.purge_interval = interval;
        self
    }

    /// Rows one purge statement deletes at most (100..=1 000 000): each batch is its own
    /// short transaction, so a purge never holds locks for long.
    #[must_use]
    pub fn purge_batch(mut self, rows: u32) -> Self {
        self.purge_batch = rows;
        self
    }

    /// Whether [`PgBackend::connect`](crate::PgBackend::connect) runs the embedded
    /// migrations (default: yes). Turn it off where the schema is migrated by a deploy
    /// step ([`PgBackend::migrate`](crate::PgBackend::migrate)) and the application's role
    /// may not create tables.
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Checks every setting; [`PgBackend::connect`](crate::PgBackend::connect) calls it.
    pub fn validate(&self) -> Result<(), SettingError> {
        check_schema(&self.schema)?;
        SettingError::check_range("max_connections", self.max_connections, 1..=1000)?;
        check_duration(
            "operation_timeout",
            self.operation_timeout,
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?;
        if let Some(interval) = self.purge_interval {
            check_duration(
                "purge_interval",
                interval,
                Duration::from_secs(1),
                Duration::from_secs(86_400),
            )?;
        }
        SettingError::check_range("purge_batch", self.purge_batch, 100..=1_000_000)?;
        Ok(())
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("operation_timeout", &self.operation_timeout)
            .field("purge_interval", &self.purge_interval)
            .field("purge_batch", &self.purge_batch)
            .field("migrate", &self.migrate)
            .finish()
    }
}

fn check_duration(
    setting: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), SettingError> {
    if value < min || value > max {
        return Err(SettingError::new(
            setting,
            format!("must be {min:?}..={max:?}, got {value:?}"),
        ));
    }
    Ok(())
}

/// A schema name tokenward accepts: a lowercase identifier that needs no quoting.
pub(crate) fn check_schema(schema: &str) -> Result<(), SettingError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(SettingError::new(
            "schema",
            format!(
                "{schema:?} is not a lowercase SQL identifier (a-z, 0-9, _; not starting with \
                 a digit or pg_; at most 63 bytes)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_plain_identifiers() {
        for good in ["tokenward", "tw_1", "a"] {
            assert!(check_schema(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Tokenward",
            "1tw",
            "tw-1",
            "tw;drop",
            "pg_tw",
            "\"x\"",
            &long,
        ] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_range_checked() {
        let base = PgConfig::new("postgres://h/db");
        assert!(base.clone().validate().is_ok());
        assert!(base.clone().max_connections(0).validate().is_err());
        assert!(
            base.clone()
                .operation_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            base.clone()
                .purge_interval(Some(Duration::from_millis(10)))
                .validate()
                .is_err()
        );
        assert!(base.clone().purge_interval(None).validate().is_ok());
        assert!(base.purge_batch(10).validate().is_err());
    }
}
