//! The PostgreSQL the tests share (feature `postgres`): where it is, and a schema of one
//! test's own on it, dropped afterwards.
//!
//! Tests share one server the way they share one Redis: each works in its own fresh schema
//! ([`TestSchema`]), so they run in parallel without seeing each other's tables, and never
//! touch anything else on the server.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection as _, PgPool};

/// The PostgreSQL used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long [`TestSchema::create`] waits for the connection and its `CREATE SCHEMA`, and a
/// pool connection may be waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`TestSchema::drop`] waits for its `DROP SCHEMA`.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections of a [`TestSchema`]'s pool: enough for a test's concurrency, few enough for
/// many tests in parallel on one server.
const MAX_CONNECTIONS: u32 = 4;

/// PostgreSQL's limit on identifiers, in bytes (`NAMEDATALEN - 1`).
const MAX_IDENTIFIER: usize = 63;

/// The PostgreSQL the tests use: `DATABASE_URL`, or [`DEFAULT_DATABASE_URL`].
/// `cargo xtask ci` sets `DATABASE_URL` (to a throwaway cluster when there is no other).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// Why the shared PostgreSQL could not be used, with what to do about it. Shows the server's
/// address only, never the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error(
    "this needs a PostgreSQL at {addr} that lets the URL's user create schemas (set \
     DATABASE_URL to use another one), and it failed: {why}. Start one (Debian/Ubuntu: \
     `apt-get install postgresql`, with trust authentication for `postgres` on 127.0.0.1) or \
     `docker run --rm -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:17`, or run \
     `cargo xtask ci`, which provides one."
)]
pub struct PostgresUnavailable {
    /// `host:port` (or the socket directory) of the server, no credentials.
    pub addr: String,
    /// What went wrong.
    pub why: String,
}

/// A schema of one test's own on the shared PostgreSQL, with a pool whose connections work
/// in it (`search_path` is the schema). [`TestSchema::drop`] removes it and everything in it.
///
/// ```
/// use tokenward_testsupport::TestSchema;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sqlx::Error> {
/// // Fails the test, saying how to get a PostgreSQL, when none answers.
/// let schema = TestSchema::create("doc").await;
/// sqlx::raw_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
///     .execute(&schema.pool)
///     .await?;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
///     .fetch_one(&schema.pool)
///     .await?;
/// assert_eq!(n, 1);
/// // Code under test that opens its own pool gets the same schema from the URL.
/// assert!(schema.url().ends_with(&format!("options=-c%20search_path%3D{}", schema.schema())));
/// schema.drop().await;
/// # Ok(())
/// # }
/// ```
pub struct TestSchema {
    /// The schema's name: `twtest_<test>_<pid>_<nanos>_<n>`, lowercase, at most 63 bytes.
    pub name: String,
    /// Up to four connections, each with `search_path` set to [`TestSchema::name`].
    pub pool: PgPool,
    /// The server's URL, as given (without the schema).
    database_url: String,
}

impl fmt::Debug for TestSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("TestSchema")
            .field("name", &self.name)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl TestSchema {
    /// A fresh schema on the shared PostgreSQL ([`database_url`]), named after `test`; fails
    /// the calling test, saying how to get a PostgreSQL, if none answers. Tests never skip.
    pub async fn create(test: &str) -> TestSchema {
        TestSchema::create_at(&database_url(), test)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh schema on the PostgreSQL at `url`, named after `test` (`CREATE SCHEMA`
    /// within 10 s), and a pool whose connections have it as their `search_path`.
    pub async fn create_at(url: &str, test: &str) -> Result<TestSchema, PostgresUnavailable> {
        let Ok(options) = PgConnectOptions::from_str(url) else {
            return Err(PostgresUnavailable {
                addr: "(unparsable URL)".to_owned(),
                why: "the URL is not a PostgreSQL URL".to_owned(),
            });
        };
        let addr = match options.get_socket() {
            Some(dir) => dir.display().to_string(),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        let name = unique_schema(test);
        // One connection of its own, not the pool's: a pool retries a refused connection
        // until its timeout, where this fails at once.
        let attempt = async {
            let mut conn = PgConnection::connect_with(&options).await?;
            sqlx::raw_sql(&format!("CREATE SCHEMA \"{name}\""))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        let why = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(())) => {
                let pool = PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with(options.options([("search_path", &name)]));
                return Ok(TestSchema {
                    name,
                    pool,
                    database_url: url.to_owned(),
                });
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
        };
        Err(PostgresUnavailable { addr, why })
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.name
    }

    /// The server's URL with the schema as the `search_path` of its connections
    /// (`…?options=-c%20search_path%3D<schema>`, or `&options=…` after other parameters),
    /// for code under test that opens its own connections from a URL.
    pub fn url(&self) -> String {
        schema_url(&self.database_url, &self.name)
    }

    /// The options the pool connects with (the schema as `search_path`), for code under
    /// test that opens its own connections from options.
    pub fn connect_options(&self) -> PgConnectOptions {
        (*self.pool.connect_options()).clone()
    }

    /// Drops the schema and everything in it (`DROP SCHEMA … CASCADE`), then closes the
    /// pool; fails the calling test if that does not succeed within 30 s. Close the pools
    /// the code under test opened on [`TestSchema::url`] first: their sessions may hold
    /// locks on the schema's tables.
    pub async fn drop(self) {
        let sql = format!("DROP SCHEMA \"{}\" CASCADE", self.name);
        match tokio::time::timeout(DROP_TIMEOUT, sqlx::raw_sql(&sql).execute(&self.pool)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("dropping test schema {}: {e}", self.name),
            Err(_) => panic!(
                "dropping test schema {} took over {DROP_TIMEOUT:?}: is a session of the code \
                 under test still using its tables?",
                self.name
            ),
        }
        self.pool.close().await;
    }
}

/// `twtest_<test>_<pid>_<nanos>_<n>`: a valid, lowercase PostgreSQL identifier of at most 63
/// bytes that no other call returns; `test` is cut short (never the unique part) and every
/// character of it other than `[a-z0-9]` becomes `_`.
pub fn unique_schema(test: &str) -> String {
    let unique = crate::prefix::unique_id('_');
    let budget = MAX_IDENTIFIER.saturating_sub("twtest__".len() + unique.len());
    let label: String = test
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(budget)
        .collect();
    format!("twtest_{label}_{unique}")
}

/// `url` with `options=-c search_path=<schema>` (percent-encoded) as one more parameter, which
/// sqlx (and libpq) send as the connections' startup options.
fn schema_url(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_short_lowercase_identifiers_and_unique() {
        let long = "Module::Some-Test ".repeat(20);
        for test in ["isolation", "", "ünïcode ✓", long.as_str()] {
            let name = unique_schema(test);
            assert!(name.len() <= MAX_IDENTIFIER, "{name}");
            assert!(name.starts_with("twtest_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_ne!(name, unique_schema(test));
        }
        assert!(unique_schema("A::b").starts_with("twtest_a__b_"));
    }

    #[test]
    fn the_url_carries_the_schema_as_search_path() {
        for (base, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/postgres?options=-c%20search_path%3Ds1",
            ),
            (
                "postgres://u:p@h/db?sslmode=disable",
                "postgres://u:p@h/db?sslmode=disable&options=-c%20search_path%3Ds1",
            ),
        ] {
            let url = schema_url(base, "s1");
            assert_eq!(url, expected);
            let options = PgConnectOptions::from_str(&url).unwrap();
            assert_eq!(options.get_options(), Some("-c search_path=s1"));
        }
    }

    #[tokio::test]
    async fn nobody_listening_is_unavailable_without_the_password() {
        let port = crate::free_port();
        let err = TestSchema::create_at(&format!("postgres://u:hunter2@127.0.0.1:{port}/db"), "x")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("apt-get install postgresql"), "{err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = TestSchema::create_at("postgres://u:hunter2@127.0.0.1:port/db", "x")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("not a PostgreSQL URL") && !err.contains("hunter2"),
            "{err}"
        );
    }

    /// On the shared PostgreSQL (fails, saying how to get one, if there is none): a schema
    /// is created, its pool and URL work in it alone, and it is gone after `drop`.
    #[tokio::test]
    async fn schemas_are_created_isolated_and_dropped() {
        let a = TestSchema::create("isolation_a").await;
        let b = TestSchema::create("isolation_b").await;
        assert_ne!(a.schema(), b.schema());
        sqlx::raw_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
            .execute(&a.pool)
            .await
            .unwrap();

        let current = "SELECT current_schema()::text";
        let in_a: String = sqlx::query_scalar(current)
            .fetch_one(&a.pool)
            .await
            .unwrap();
        assert_eq!(in_a, a.name);
        // `t` is a's alone: unknown on b's connections.
        let unknown: Option<String> = sqlx::query_scalar("SELECT to_regclass('t')::text")
            .fetch_one(&b.pool)
            .await
            .unwrap();
        assert_eq!(unknown, None);
        let err = sqlx::query("SELECT * FROM t")
            .fetch_all(&b.pool)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42P01"),
            "{err}"
        );

        // A pool of the code under test, from the URL or the options, works in a.
        for own in [
            PgPool::connect(&a.url()).await.unwrap(),
            PgPool::connect_with(a.connect_options()).await.unwrap(),
        ] {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
                .fetch_one(&own)
                .await
                .unwrap();
            assert_eq!(n, 2);
            own.close().await;
        }

        let name = a.name.clone();
        a.drop().await;
        let exists = "SELECT count(*) FROM pg_namespace WHERE nspname = $1";
        let left: i64 = sqlx::query_scalar(exists)
            .bind(&name)
            .fetch_one(&b.pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "schema {name} is still there");
        let b_name = b.name.clone();
        b.drop().await;
        let probe = TestSchema::create("isolation_probe").await;
        let left: i64 = sqlx::query_scalar(exists)
            .bind(&b_name)
            .fetch_one(&probe.pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "schema {b_name} is still there");
        probe.drop().await;
    }
}
