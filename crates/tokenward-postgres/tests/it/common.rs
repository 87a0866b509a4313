//! What the tests share: a store in a fresh schema, dropped afterwards, and a probe that
//! reads the schema's rows.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use tokenward_core::StoreError;
use tokenward_core::conformance::StoreProbe;
use tokenward_postgres::{PgBackend, PgConfig};

use tokenward_testsupport::{database_url, unique_schema};

/// The config of a test's stores: the test database, a fresh schema, a generous timeout
/// (the machine may be busy; these tests are not about timeouts).
pub fn config(label: &str) -> PgConfig {
    PgConfig::new(database_url())
        .schema(unique_schema(label))
        .max_connections(4)
        .operation_timeout(Duration::from_secs(10))
}

/// A migrated backend in a fresh schema.
pub async fn backend(label: &str) -> PgBackend {
    let config = config(label);
    match PgBackend::connect(&config).await {
        Ok(backend) => backend,
        Err(err) => panic!(
            "PostgreSQL is needed for these tests ({err}); start one on 127.0.0.1:5432 \
             (trust auth, user postgres), or set DATABASE_URL, or run `cargo xtask ci`, \
             which provides one"
        ),
    }
}

/// Drops the backend's schema and everything in it.
pub async fn drop_schema(backend: &PgBackend) {
    sqlx::query(&format!("DROP SCHEMA {} CASCADE", backend.schema()))
        .execute(backend.pool())
        .await
        .unwrap();
}

/// A probe reading the rows of a backend's schema.
pub struct PgProbe {
    pub backend: PgBackend,
}

/// Each table's columns whose bytes the probe dumps (bytea and text, raw).
const DUMP: &[(&str, &[&str])] = &[
    ("revocations", &["convert_to(id, 'UTF8')"]),
    (
        "refresh_families",
        &[
            "convert_to(id, 'UTF8')",
            "convert_to(sub, 'UTF8')",
            "current_hash",
            "previous_hash",
            "sealed_successor",
            "idem_key_hash",
            "idem_response",
        ],
    ),
    (
        "refresh_history",
        &["convert_to(family_id, 'UTF8')", "hash"],
    ),
];

#[async_trait]
impl StoreProbe for PgProbe {
    async fn stored_entries(&self) -> Result<u64, StoreError> {
        let s = self.backend.schema();
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT (SELECT count(*) FROM {s}.revocations) \
                  + (SELECT count(*) FROM {s}.refresh_families) \
                  + (SELECT count(*) FROM {s}.refresh_history)"
        ))
        .fetch_one(self.backend.pool())
        .await
        .unwrap();
        Ok(n as u64)
    }

    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let s = self.backend.schema();
        let mut out = Vec::new();
        for (table, columns) in DUMP {
            let sql = format!("SELECT {} FROM {s}.{table}", columns.join(", "));
            for row in sqlx::query(&sql)
                .fetch_all(self.backend.pool())
                .await
                .unwrap()
            {
                for i in 0..columns.len() {
                    let value: Option<Vec<u8>> = row.try_get(i).unwrap();
                    out.extend(value);
                }
            }
        }
        Ok(out)
    }

    fn round_trips(&self) -> u64 {
        self.backend.round_trips()
    }
}
