//! Where `revoke` and `check` work: the Redis revocation store the applications' Guards read,
//! the PostgreSQL one (`tokenward-postgres`), or both — the hybrid deployment, where
//! PostgreSQL holds the durable copy and Redis answers each request.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::{self, TryStreamExt as _};
use tokenward_core::{StoreError, StoreId, UnixTime};
use tokenward_postgres::{PgConfig, PgRevocationStore, PgStores};
use tokenward_redis::{RedisConfig, RedisRevocationStore};
use tokenward_revocation::RevocationStore;

use crate::error::CliError;
use crate::escape::escape_controls;

/// The key (after the prefix) `tokenward_guard::hybrid` sets once Redis holds every live
/// revocation of PostgreSQL. Without it the applications' checks fail closed (503) and
/// reload Redis from PostgreSQL: Redis's own answer is not what they decide by.
pub(crate) const HYBRID_LOADED_MARK: &str = "hybrid:loaded";

/// Revocations an import into Redis has in flight at once.
pub(crate) const REDIS_IMPORT_CONCURRENCY: usize = 256;

/// The Redis revocation store. The URL may carry a password: prefer the environment
/// variable to the command line, where other users can see it (`ps`).
#[derive(Debug, clap::Args)]
pub(crate) struct RedisArgs {
    /// The Redis of the revocation store: `redis://[[user]:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS (the platform's trust store, or --redis-ca). Give --redis,
    /// --postgres or both.
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "TOKENWARD_REDIS_URL",
        hide_env_values = true
    )]
    pub(crate) redis_url: Option<String>,
    /// The key prefix the applications use (`tokenward:` is the default of every tokenward
    /// component, `RedisConfig::DEFAULT_KEY_PREFIX`, the demo's included). Both commands
    /// print the prefix they used.
    #[arg(long, value_name = "PREFIX", default_value = RedisConfig::DEFAULT_KEY_PREFIX)]
    pub(crate) prefix: String,
    /// How long to wait for each call to Redis or PostgreSQL, in milliseconds (an import's
    /// transaction in PostgreSQL excepted).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub(crate) timeout_ms: u64,
    /// With `rediss://`: trust exactly the CA certificates in this PEM file (a private CA)
    /// instead of the platform's trust store.
    #[arg(long = "redis-ca", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// With `rediss://`: a client certificate chain (PEM) for servers that require one
    /// (mutual TLS); needs --redis-client-key.
    #[arg(
        long = "redis-client-cert",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// The private key (PEM) of --redis-client-cert.
    #[arg(
        long = "redis-client-key",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
    /// Work with a Redis whose maxmemory-policy may evict keys (refused otherwise: it
    /// silently forgets revocations when full).
    #[arg(long)]
    dangerous_allow_eviction: bool,
    /// --redis names seed nodes of a Redis Cluster: one `redis://host:port` URL or a
    /// comma-separated list, all `redis://` or all `rediss://` (then `--redis-ca` and the
    /// client certificate flags apply to every node). The startup check runs
    /// on every primary.
    #[arg(long = "redis-cluster")]
    cluster: bool,
}

impl RedisArgs {
    /// The store at `url`, after the startup check on `runtime` (Redis answers over TLS if
    /// asked, its `maxmemory-policy` does not evict unless --dangerous-allow-eviction).
    fn store(
        &self,
        url: &str,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<RedisRevocationStore, CliError> {
        let config = if self.cluster {
            let seeds = url.split(',').map(str::trim).filter(|u| !u.is_empty());
            RedisConfig::default().cluster(seeds)
        } else {
            RedisConfig::new(url)
        };
        let mut config = config
            .key_prefix(&self.prefix)
            .operation_timeout(Duration::from_millis(self.timeout_ms))
            .dangerous_allow_eviction(self.dangerous_allow_eviction);
        config.tls_ca_file.clone_from(&self.ca);
        config.tls_client_cert_file.clone_from(&self.client_cert);
        config.tls_client_key_file.clone_from(&self.client_key);
        let store = RedisRevocationStore::connect(&config)?;
        let check = runtime.block_on(store.backend().check_server())?;
        let endpoint = escape_controls(store.backend().endpoint());
        let warning = match check.maxmemory_policy.as_deref() {
            None => Some(
                "cannot read maxmemory-policy (CONFIG is renamed, disabled or denied); make \
                 sure it is noeviction"
                    .to_owned(),
            ),
            Some("noeviction") => None,
            Some(policy) => Some(format!(
                "maxmemory-policy is {}: Redis may evict revocations when full \
                 (--dangerous-allow-eviction)",
                escape_controls(policy)
            )),
        };
        if let Some(warning) = warning {
            let _ = writeln!(
                std::io::stderr().lock(),
                "tokenward: warning: redis at {endpoint}: {warning}"
            );
        }
        Ok(store)
    }

    /// The flags that only mean something with --redis, if one was given without it.
    fn stray_flag(&self) -> Option<&'static str> {
        if self.cluster {
            Some("--redis-cluster")
        } else if self.ca.is_some() {
            Some("--redis-ca")
        } else if self.client_cert.is_some() {
            Some("--redis-client-cert")
        } else if self.dangerous_allow_eviction {
            Some("--dangerous-allow-eviction")
        } else {
            None
        }
    }
}

/// The PostgreSQL revocation store (`tokenward-postgres`: its tables in their own schema,
/// created or migrated on first use). The URL may carry a password: prefer the environment
/// variable to the command line.
#[derive(Debug, clap::Args)]
pub(crate) struct PgArgs {
    /// The PostgreSQL of the revocation store: `postgres://[user[:password]@]host[:port]/db`
    /// (any `sslmode`). With --redis too, PostgreSQL is the durable copy and is written
    /// first; `check` reads both.
    #[arg(
        long = "postgres",
        value_name = "URL",
        env = "TOKENWARD_POSTGRES_URL",
        hide_env_values = true
    )]
    pub(crate) pg_url: Option<String>,
    /// The schema of tokenward's tables in that database (the applications' `PgConfig`
    /// schema; `tokenward` by default). Printed with each answer.
    #[arg(long = "pg-schema", value_name = "NAME", default_value = PgConfig::DEFAULT_SCHEMA)]
    pub(crate) pg_schema: String,
}

/// Both stores' flags.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    #[command(flatten)]
    pub(crate) postgres: PgArgs,
}

impl StoreArgs {
    /// A usage error unless at least one store is named (checked before anything else).
    pub(crate) fn check_usage(&self) -> Result<(), CliError> {
        if self.redis.redis_url.is_none() {
            if self.postgres.pg_url.is_none() {
                return Err(CliError::Usage(
                    "give --redis URL (or TOKENWARD_REDIS_URL), --postgres URL (or \
                     TOKENWARD_POSTGRES_URL), or both"
                        .into(),
                ));
            }
            if let Some(flag) = self.redis.stray_flag() {
                return Err(CliError::Usage(format!("{flag} needs --redis")));
            }
        }
        Ok(())
    }

    /// The stores, connected and checked: Redis's startup check and PostgreSQL's
    /// migration both run before anything is written to either.
    pub(crate) fn connect(&self, runtime: &tokio::runtime::Runtime) -> Result<Stores, CliError> {
        self.check_usage()?;
        let postgres = match &self.postgres.pg_url {
            Some(url) => {
                let config = PgConfig::new(url.as_str())
                    .schema(self.postgres.pg_schema.as_str())
                    .operation_timeout(Duration::from_millis(self.redis.timeout_ms))
                    .max_connections(2)
                    // A command's lifetime: the stores' own bounded purge per write is enough.
                    .purge_interval(None);
                let stores = runtime.block_on(PgStores::connect(&config))?;
                Some(stores.revocation())
            }
            None => None,
        };
        let redis = match &self.redis.redis_url {
            Some(url) => Some(self.redis.store(url, runtime)?),
            None => None,
        };
        Ok(Stores { redis, postgres })
    }

    /// The lines of human output that say where the answer comes from: the Redis key
    /// prefix (a revocation under another prefix than the applications' is one they never
    /// see) and the PostgreSQL schema.
    pub(crate) fn where_lines(&self) -> String {
        let mut text = String::new();
        if self.redis.redis_url.is_some() {
            let _ = write!(text, "\nredis key prefix: {}", self.redis.prefix);
        }
        if self.postgres.pg_url.is_some() {
            let _ = write!(text, "\npostgres schema: {}", self.postgres.pg_schema);
        }
        text
    }
}

/// The connected stores (at least one).
#[derive(Debug)]
pub(crate) struct Stores {
    pub(crate) redis: Option<RedisRevocationStore>,
    pub(crate) postgres: Option<PgRevocationStore>,
}

/// One revocation of `tokenward revoke`.
#[derive(Debug)]
pub(crate) enum Revocation {
    Token(StoreId<'static>, UnixTime),
    Session(StoreId<'static>, UnixTime),
    Subject {
        id: StoreId<'static>,
        before: UnixTime,
        until: UnixTime,
    },
}

impl Revocation {
    async fn apply(&self, store: &dyn RevocationStore) -> Result<(), StoreError> {
        match self {
            Revocation::Token(id, until) => store.revoke_token(id, *until).await,
            Revocation::Session(id, until) => store.revoke_session(id, *until).await,
            Revocation::Subject { id, before, until } => {
                store.revoke_subject(id, *before, *until).await
            }
        }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Revocations written.
    pub(crate) imported: u64,
    /// Revocations PostgreSQL found already ended by its own clock (a clock behind the
    /// database's; normally 0).
    pub(crate) expired_by_database: u64,
}

impl Stores {
    /// With both stores: whether Redis carries the hybrid's loaded mark
    /// ([`HYBRID_LOADED_MARK`] under its key prefix). `None` with one store.
    pub(crate) async fn redis_loaded(&self) -> Result<Option<bool>, CliError> {
        let (Some(redis), Some(_)) = (&self.redis, &self.postgres) else {
            return Ok(None);
        };
        let backend = redis.backend();
        let key = format!("{}{HYBRID_LOADED_MARK}", backend.key_prefix());
        let script = redis::Script::new("return redis.call('EXISTS', KEYS[1])");
        let seen: i64 = backend.invoke_script(&script, &[&key], &[]).await?;
        Ok(Some(seen == 1))
    }

    /// Writes `revocation` to PostgreSQL first (the durable copy), then to Redis.
    pub(crate) async fn revoke(&self, revocation: &Revocation) -> Result<(), CliError> {
        if let Some(postgres) = &self.postgres {
            revocation.apply(postgres).await?;
        }
        if let Some(redis) = &self.redis {
            revocation
                .apply(redis)
                .await
                .map_err(|source| match self.postgres {
                    Some(_) => CliError::RedisAfterDurable {
                        what: "the revocation",
                        done: None,
                        source,
                    },
                    None => CliError::Store(source),
                })?;
        }
        Ok(())
    }

    /// Imports the token revocations `live` (`(jti id, until)`, each id once): into
    /// PostgreSQL in one transaction (all or nothing), then into Redis, which has no
    /// transaction over them: up to [`REDIS_IMPORT_CONCURRENCY`] at once, stopping at the
    /// first failure (what was written stays; re-running the import is harmless).
    pub(crate) async fn import(
        &self,
        live: &[(StoreId<'static>, UnixTime)],
    ) -> Result<Written, CliError> {
        let total = live.len() as u64;
        let mut written = Written {
            imported: total,
            expired_by_database: 0,
        };
        if let Some(postgres) = &self.postgres {
            let report = postgres
                .import_tokens(live.iter().map(|(id, until)| (id.borrowed(), *until)))
                .await?;
            written = Written {
                imported: report.imported,
                expired_by_database: report.skipped_expired,
            };
        }
        if let Some(redis) = &self.redis {
            let done = Cell::new(0u64);
            let result = stream::iter(live.iter().map(Ok))
                .try_for_each_concurrent(REDIS_IMPORT_CONCURRENCY, |(id, until)| {
                    let done = &done;
                    async move {
                        redis.revoke_token(id, *until).await?;
                        done.set(done.get() + 1);
                        Ok::<(), StoreError>(())
                    }
                })
                .await;
            if let Err(source) = result {
                let done = Some((done.get(), total));
                return Err(match self.postgres {
                    Some(_) => CliError::RedisAfterDurable {
                        what: "every revocation of the import",
                        done,
                        source,
                    },
                    None => CliError::RedisImport {
                        done: done.map_or(0, |(d, _)| d),
                        total,
                        source,
                    },
                });
            }
        }
        Ok(written)
    }
}
