//! PostgreSQL backends for tokenward's durable stores, on [sqlx](https://docs.rs/sqlx).
//!
//! Redis is where the per-request path lives, but many teams run it without persistence:
//! a restart forgets every revocation and every refresh family. These stores keep both in
//! the database the application already backs up:
//!
//! - [`PgRefreshStore`] — a [`RefreshStore`](tokenward_refresh::RefreshStore): one row per
//!   refresh-token family, **one statement per rotation** (a PL/pgSQL function holding the
//!   family's row lock), reuse detection that revokes the family, tombstones, idempotency
//!   records — the whole contract, checked by the conformance suite.
//! - [`PgRevocationStore`] — a [`RevocationStore`](tokenward_revocation::RevocationStore):
//!   one row per revoked `jti`, `sid` or subject; a check is one `SELECT`. Plus
//!   [`import_tokens`](PgRevocationStore::import_tokens) (a denylist in one transaction)
//!   and [`live_revocations`](PgRevocationStore::live_revocations) (what a Redis restarted
//!   empty must be given back: `tokenward_guard::hybrid`, feature `postgres`).
//!
//! **The database's clock decides.** Every expiry, grace window and "now" is PostgreSQL's
//! (`now()`, `clock_timestamp()`), never the application's, as the Redis stores use Redis's
//! `TIME`: instances with skewed clocks agree.
//!
//! **Expiry without a cron job.** A row past its expiry is never answered. Each write deletes
//! up to 8 expired rows on its way (so the tables follow the live entries while they are
//! written to), and the backend's background task ([`PgConfig::purge_interval`], every
//! minute by default) deletes the rest in batches ([`PgBackend::purge_expired`]).
//!
//! **Schema.** Tables, indexes and functions live in their own schema (`tokenward` by
//! default, [`PgConfig::schema`]), with their own `_sqlx_migrations` table, so they never
//! collide with the application's tables or migrations. [`PgBackend::connect`] migrates at
//! startup; with [`PgBackend::from_pool`] (the application's `PgPool`) call
//! [`PgBackend::migrate`] yourself. Every table and index is described in
//! `docs/operations.md` ("PostgreSQL").
//!
//! ```no_run
//! use tokenward_postgres::{PgConfig, PgStores};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = PgStores::connect(&PgConfig::new("postgres://app@db.internal/app")).await?;
//! let refresh = stores.refresh();       // for RefreshEngine
//! let revocation = stores.revocation(); // for the Guard, logout, the CLI
//! # let _ = (refresh, revocation);
//! # Ok(()) }
//! ```
//!
//! Every call returns within [`PgConfig::operation_timeout`] (2 s by default; waiting for a
//! pooled connection included). Outages come back as
//! [`StoreError::Unavailable`](tokenward_core::StoreError::Unavailable) or
//! [`StoreError::Timeout`](tokenward_core::StoreError::Timeout), rows that do not decode as
//! [`StoreError::Corrupt`](tokenward_core::StoreError::Corrupt) — never as "not revoked".

mod backend;
mod config;
mod refresh;
mod revocation;

pub use backend::{MIGRATOR, PgBackend, PgSetupError};
pub use config::PgConfig;
pub use refresh::PgRefreshStore;
pub use revocation::{ImportReport, LiveRevocation, PgRevocationStore};

/// Both stores on one [`PgBackend`].
#[derive(Clone, Debug)]
pub struct PgStores {
    backend: PgBackend,
}

impl PgStores {
    /// [`PgBackend::connect`]: its own pool, migrated.
    pub async fn connect(config: &PgConfig) -> Result<Self, PgSetupError> {
        Ok(PgStores {
            backend: PgBackend::connect(config).await?,
        })
    }

    /// [`PgBackend::connect_lazy`]: no I/O until first use; migrate at startup.
    pub fn connect_lazy(config: &PgConfig) -> Result<Self, PgSetupError> {
        Ok(PgStores {
            backend: PgBackend::connect_lazy(config)?,
        })
    }

    /// The stores on `backend`.
    pub fn new(backend: PgBackend) -> Self {
        PgStores { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &PgBackend {
        &self.backend
    }

    /// The refresh-family store.
    pub fn refresh(&self) -> PgRefreshStore {
        PgRefreshStore::new(self.backend.clone())
    }

    /// The revocation store.
    pub fn revocation(&self) -> PgRevocationStore {
        PgRevocationStore::new(self.backend.clone())
    }
}
