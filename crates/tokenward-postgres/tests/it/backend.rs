//! The backend: migrations that coexist with the application's, settings refused clearly,
//! an unreachable database failing fast with a typed error and no password.

use std::time::Duration;

use tokenward_core::{StoreErrorKind, StoreId, UnixTime};
use tokenward_postgres::{PgBackend, PgConfig, PgRevocationStore, PgSetupError};
use tokenward_revocation::RevocationStore;

use crate::common::{backend, config, drop_schema};

/// Migrating twice (two instances starting) is harmless, and the stores' migrations live in
/// their own schema: an application's own `_sqlx_migrations` elsewhere is untouched.
#[tokio::test]
async fn migrations_are_idempotent_and_kept_apart() {
    let backend = backend("migrate").await;
    backend.migrate().await.unwrap();
    let s = backend.schema();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
         ORDER BY 1",
    )
    .bind(s)
    .fetch_all(backend.pool())
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "refresh_families",
            "refresh_history",
            "revocations"
        ]
    );
    drop_schema(&backend).await;
}

/// A store on the application's own pool, migrated explicitly.
#[tokio::test]
async fn stores_run_on_an_application_pool() {
    let migrated = backend("app_pool").await;
    let pool = migrated.pool().clone();
    let config = PgConfig::new("unused").schema(migrated.schema());
    let backend = PgBackend::from_pool(pool, &config).unwrap();
    let store = PgRevocationStore::new(backend.clone());
    let until = UnixTime::from_secs(4_000_000_000);
    store
        .revoke_token(&StoreId::new("j").unwrap(), until)
        .await
        .unwrap();
    assert_eq!(backend.round_trips(), 1);
    drop_schema(&migrated).await;
}

/// Nothing listens: the setup fails within the timeout, naming the URL without its
/// password; calls on a lazily built pool fail as `Unavailable`/`Timeout`, never as an
/// answer.
#[tokio::test]
async fn an_unreachable_database_fails_clearly() {
    let port = tokenward_testsupport::free_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/db");
    let config = PgConfig::new(&url).operation_timeout(Duration::from_millis(500));
    let err = PgBackend::connect(&config).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, PgSetupError::Database { .. }), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");

    let backend = PgBackend::connect(&config.migrate(false)).await.unwrap();
    let store = PgRevocationStore::new(backend);
    let err = store
        .revoke_token(
            &StoreId::new("j").unwrap(),
            UnixTime::from_secs(4_000_000_000),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            StoreErrorKind::Unavailable | StoreErrorKind::Timeout
        ),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("hunter2"));
}

/// A schema name that would need quoting (or inject SQL) is refused before anything runs.
#[tokio::test]
async fn odd_schema_names_are_refused() {
    let err = PgBackend::connect(&config("x").schema("x; DROP TABLE y"))
        .await
        .unwrap_err();
    assert!(matches!(err, PgSetupError::Setting(_)), "{err}");
}
