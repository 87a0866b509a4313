//! The demo's stores for its flags: memory, `--redis`, `--postgres`, or both (the hybrid).

use tokenward_guard::GuardStores;
use tokenward_guard::hybrid::HybridStores;
use tokenward_postgres::PgBackend;
use tokenward_redis::RedisBackend;

use super::{DemoConfig, StartError};

/// The stores of a demo, and the backends its startup check needs.
pub(super) struct Stores {
    /// What the Guard and the endpoints use.
    pub(super) guard: GuardStores,
    /// `--redis`.
    pub(super) redis: Option<RedisBackend>,
    /// `--postgres`: migrated by `Demo::check_stores`.
    pub(super) postgres: Option<PgBackend>,
    /// `--postgres` with `--redis`: loaded by `Demo::check_stores`.
    pub(super) hybrid: Option<HybridStores>,
}

impl Stores {
    /// The stores for `config`, without connecting anywhere.
    pub(super) fn build(config: &DemoConfig) -> Result<Stores, StartError> {
        let redis = match &config.redis {
            Some(url) => {
                let redis = if config.redis_cluster {
                    let seeds = url.split(',').map(str::trim).filter(|u| !u.is_empty());
                    tokenward_redis::RedisConfig::default().cluster(seeds)
                } else {
                    tokenward_redis::RedisConfig::new(url.as_str())
                };
                let mut redis = redis
                    .key_prefix(config.redis_prefix.as_str())
                    .operation_timeout(config.redis_timeout)
                    .dangerous_allow_eviction(config.redis_dangerous_allow_eviction);
                redis.tls_ca_file.clone_from(&config.redis_ca);
                redis
                    .tls_client_cert_file
                    .clone_from(&config.redis_client_cert);
                redis
                    .tls_client_key_file
                    .clone_from(&config.redis_client_key);
                Some(tokenward_redis::RedisStores::connect(&redis)?)
            }
            None => None,
        };
        let postgres = match &config.postgres {
            Some(url) => {
                let pg = tokenward_postgres::PgConfig::new(url.as_str())
                    .schema(config.pg_schema.as_str());
                Some(tokenward_postgres::PgStores::connect_lazy(&pg)?)
            }
            None => None,
        };
        let hybrid = match (&redis, &postgres) {
            (Some(redis), Some(pg)) => Some(tokenward_guard::hybrid::HybridStores::new(pg, redis)?),
            _ => None,
        };
        let stores = match (&redis, &postgres, &hybrid) {
            (_, _, Some(hybrid)) => hybrid.guard_stores(),
            (Some(redis), _, None) => GuardStores::redis(redis),
            (None, Some(pg), None) => GuardStores::postgres(pg),
            (None, None, None) => GuardStores::memory(),
        };
        let postgres = postgres.map(|pg| pg.backend().clone());
        let redis = redis.map(|r| r.backend().clone());
        Ok(Stores {
            guard: stores,
            redis,
            postgres,
            hybrid,
        })
    }
}
