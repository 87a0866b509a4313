//! [`PgBackend`]: the pool, the schema, deadlines, error mapping and the purge task every
//! PostgreSQL store shares.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokenward_core::{SettingError, StoreError, UnixTime, redact_url};

use crate::config::{PgConfig, check_schema};

/// The embedded migrations (`crates/tokenward-postgres/migrations`), run in the store's
/// schema by [`PgBackend::migrate`].
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Why a backend could not be built or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgSetupError {
    /// A setting is out of range.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The URL does not parse (shown without its password).
    #[error("invalid PostgreSQL URL {url}: {reason}")]
    Url {
        /// The URL, password redacted.
        url: String,
        /// What sqlx said.
        reason: String,
    },
    /// The database refused or failed a setup step (shown without the password).
    #[error("PostgreSQL at {url}: {step} failed: {source}")]
    Database {
        /// The URL, password redacted.
        url: String,
        /// What was being done.
        step: &'static str,
        /// sqlx's error.
        #[source]
        source: sqlx::Error,
    },
}

/// What the stores on one pool share: the pool, the schema their tables are in, the
/// per-call deadline, a round-trip counter, and the purge settings.
///
/// Cheap to clone. Build it with [`connect`](Self::connect) (its own pool, from a URL) or
/// [`from_pool`](Self::from_pool) (the application's `PgPool`: the stores share its
/// connections and settings).
#[derive(Clone)]
pub struct PgBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    schema: String,
    label: String,
    timeout: Duration,
    purge_batch: u32,
    round_trips: AtomicU64,
    purge: Option<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.purge {
            task.abort();
        }
    }
}

impl PgBackend {
    /// A pool on `config.url`, the schema migrated (unless
    /// [`PgConfig::migrate`] is off) and — inside a Tokio runtime, with a
    /// [`purge_interval`](PgConfig::purge_interval) — the background purge started. Connects
    /// (to migrate) and fails if the database does not answer: run it at startup.
    pub async fn connect(config: &PgConfig) -> Result<Self, PgSetupError> {
        let backend = PgBackend::connect_lazy(config)?;
        if config.migrate {
            backend.migrate().await?;
        }
        Ok(backend)
    }

    /// The backend of [`connect`](Self::connect) without any I/O: the pool connects on
    /// first use and nothing is migrated — call [`migrate`](Self::migrate) (or
    /// [`ping`](Self::ping)) at startup. For applications that build their state
    /// synchronously and check their stores afterwards.
    pub fn connect_lazy(config: &PgConfig) -> Result<Self, PgSetupError> {
        config.validate()?;
        let url = config.redacted_url();
        let options = PgConnectOptions::from_str(&config.url).map_err(|e| PgSetupError::Url {
            url: url.clone(),
            reason: scrub(&e.to_string(), &config.url),
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.operation_timeout)
            .connect_lazy_with(options);
        PgBackend::build(pool, &config.schema, url, config)
    }

    /// The stores on the application's pool, tables in `schema` (see
    /// [`PgConfig::schema`]); the rest of `config` (its URL and pool size unused) sets the
    /// deadline and the purge. Does not migrate: call [`migrate`](Self::migrate) (or run
    /// [`MIGRATOR`] in that schema) first.
    pub fn from_pool(pool: PgPool, config: &PgConfig) -> Result<Self, PgSetupError> {
        config.validate()?;
        let label = format!("application pool, schema {}", config.schema);
        PgBackend::build(pool, &config.schema, label, config)
    }

    fn build(
        pool: PgPool,
        schema: &str,
        label: String,
        config: &PgConfig,
    ) -> Result<Self, PgSetupError> {
        check_schema(schema)?;
        let mut inner = Inner {
            pool,
            schema: schema.to_owned(),
            label,
            timeout: config.operation_timeout,
            purge_batch: config.purge_batch,
            round_trips: AtomicU64::new(0),
            purge: None,
        };
        let purge = match (config.purge_interval, tokio::runtime::Handle::try_current()) {
            (Some(every), Ok(runtime)) => Some(every).zip(Some(runtime)),
            _ => None,
        };
        let Some((every, runtime)) = purge else {
            return Ok(PgBackend {
                inner: Arc::new(inner),
            });
        };
        // The task holds the backend weakly: it ends with the last store.
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let task = runtime.spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let backend = PgBackend { inner };
                    if let Err(err) = backend.purge_expired().await {
                        tracing::warn!(
                            target: "tokenward::postgres",
                            error = %err,
                            "purge of expired rows failed; retried at the next interval"
                        );
                    }
                }
            });
            inner.purge = Some(task.abort_handle());
            inner
        });
        Ok(PgBackend { inner })
    }

    /// Creates the schema if needed and runs the embedded migrations in it, on a connection
    /// of its own (the pool's connect options with `search_path` set to the schema; closed
    /// afterwards, so no pooled connection has its `search_path` changed). Safe to run from
    /// several instances at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), PgSetupError> {
        let fail = |step: &'static str| {
            let url = self.inner.label.clone();
            move |source| PgSetupError::Database { url, step, source }
        };
        let schema = &self.inner.schema;
        let options = (*self.inner.pool.connect_options())
            .clone()
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.inner.timeout)
            .connect_with(options)
            .await
            .map_err(fail("connect"))?;
        let result = async {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&pool)
                .await
                .map_err(fail("CREATE SCHEMA"))?;
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| PgSetupError::Database {
                    url: self.inner.label.clone(),
                    step: "migration",
                    source: e.into(),
                })
        }
        .await;
        pool.close().await;
        result
    }

    /// The pool the stores use.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema of the stores' tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Statements sent so far by the stores on this backend (each call of a store is one
    /// statement, except where its docs say otherwise): what the conformance suites'
    /// one-round-trip cases count.
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// Whether the database answers (`SELECT 1`) within the operation timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call("ping", |pool| async move {
            sqlx::query("SELECT 1").execute(&pool).await.map(|_| ())
        })
        .await
    }

    /// Deletes every expired row (revocations past `until`, families past their expiry with
    /// their history), in batches of [`PgConfig::purge_batch`] rows, each its own short
    /// statement; returns how many it deleted. The background task calls it every
    /// [`PgConfig::purge_interval`]; call it yourself from your own scheduler if you turned
    /// the task off. Rows are never *answered* once expired, purged or not.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let s = self.schema();
        let statements = [
            format!(
                "DELETE FROM {s}.revocations WHERE ctid = ANY (ARRAY(SELECT ctid FROM \
                 {s}.revocations WHERE until <= now() LIMIT $1 FOR UPDATE SKIP LOCKED))"
            ),
            format!(
                "DELETE FROM {s}.refresh_families WHERE ctid = ANY (ARRAY(SELECT ctid FROM \
                 {s}.refresh_families WHERE expires_at <= now() LIMIT $1 \
                 FOR UPDATE SKIP LOCKED))"
            ),
        ];
        let batch = i64::from(self.inner.purge_batch);
        let mut total = 0;
        for sql in &statements {
            loop {
                let sql = sql.clone();
                let deleted = self
                    .call("purge", |pool| async move {
                        sqlx::query(&sql)
                            .bind(batch)
                            .execute(&pool)
                            .await
                            .map(|r| r.rows_affected())
                    })
                    .await?;
                total += deleted;
                if deleted < u64::from(self.inner.purge_batch) {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Runs `f` (a transaction of many statements: an import) without the per-call deadline,
    /// counting it as one round trip.
    pub(crate) async fn call_long<T, F, Fut>(
        &self,
        what: &'static str,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
        f(self.inner.pool.clone())
            .await
            .map_err(|err| store_error(what, err))
    }

    /// Runs one statement (`f` gets a handle on the pool) within the deadline, counting it
    /// as one round trip and mapping sqlx's errors onto [`StoreError`].
    pub(crate) async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
        let timeout = self.inner.timeout;
        match tokio::time::timeout(timeout, f(self.inner.pool.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(store_error(what, err)),
            Err(_) => Err(StoreError::Timeout { after: timeout }),
        }
    }
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend")
            .field("database", &self.inner.label)
            .field("schema", &self.inner.schema)
            .field("operation_timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// sqlx's error as a [`StoreError`]: outages and refusals are `Unavailable` (transient),
/// rows that do not decode are `Corrupt`. Messages are sqlx's and the database's, which
/// carry no parameters (tokenward never inlines values into SQL).
fn store_error(what: &'static str, err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut => StoreError::unavailable(
            format!("PostgreSQL {what}: no pooled connection became free"),
            err,
        ),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::RowNotFound => {
            StoreError::corrupt(format!("PostgreSQL {what}: unexpected reply: {err}"))
        }
        other => StoreError::unavailable(format!("PostgreSQL {what} failed"), other),
    }
}

/// `text` with every occurrence of the URL's password removed (sqlx may echo a URL).
fn scrub(text: &str, url: &str) -> String {
    let redacted = redact_url(url);
    text.replace(url, &redacted)
}

/// An instant as microseconds since the epoch, rounded **up** (a revocation or an access
/// expiry never ends earlier than asked). Saturates at `i64::MAX`.
pub(crate) fn micros_ceil(t: UnixTime) -> i64 {
    let d = t.as_duration();
    let micros = d.as_micros() + u128::from(!d.subsec_nanos().is_multiple_of(1_000));
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// A duration in microseconds, rounded up, saturating.
pub(crate) fn duration_micros(d: Duration) -> i64 {
    let micros = d.as_micros() + u128::from(!d.subsec_nanos().is_multiple_of(1_000));
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// Microseconds since the epoch read back: a negative value is corrupt data.
pub(crate) fn from_micros(us: i64, what: &str) -> Result<UnixTime, StoreError> {
    u64::try_from(us)
        .map(|us| UnixTime::from_duration(Duration::from_micros(us)))
        .map_err(|_| StoreError::corrupt(format!("PostgreSQL {what}: time before 1970")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_up_to_the_microsecond() {
        let t = UnixTime::from_duration(Duration::new(5, 1_500));
        assert_eq!(micros_ceil(t), 5_000_002);
        assert_eq!(micros_ceil(UnixTime::from_millis(7)), 7_000);
        assert_eq!(duration_micros(Duration::from_nanos(1)), 1);
        assert_eq!(
            from_micros(3, "t").unwrap(),
            UnixTime::from_duration(Duration::from_micros(3))
        );
        assert!(from_micros(-1, "t").is_err());
    }

    #[test]
    fn passwords_are_scrubbed() {
        let url = "postgres://u:hunter2@h/db";
        assert_eq!(
            scrub(&format!("bad {url}"), url),
            "bad postgres://u:***@h/db"
        );
    }
}
