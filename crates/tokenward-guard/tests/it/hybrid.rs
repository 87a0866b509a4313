//! The hybrid stores (PostgreSQL + Redis) below HTTP: the `CombinedCheck` conformance suite
//! on the hybrid's gated check (a PostgreSQL schema and a Redis prefix per case), revokes
//! that write through to both, the startup load copying every live revocation into an empty
//! Redis (and nothing when the mark is there), a check after Redis lost its data failing
//! closed until the reload is done, and a Redis Cluster refused.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokenward_core::conformance::BoxError;
use tokenward_guard::conformance::{CombinedEnv, Fixture, RealClock, SeparateStores};

use tokenward_core::{StoreErrorKind, StoreId, TokenRef, UnixTime};
use tokenward_guard::hybrid::{HybridError, HybridStores};
use tokenward_postgres::{PgConfig, PgStores};
use tokenward_redis::{RedisConfig, RedisStores};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};
use tokenward_testsupport::{ThrowawayRedis, database_url, unique_prefix, unique_schema};

fn id(s: &str) -> StoreId<'static> {
    StoreId::new(s.to_owned()).unwrap()
}

fn token(jti: &str) -> TokenRef<'static> {
    TokenRef {
        jti: Some(id(jti)),
        sid: None,
        sub: None,
        iat: None,
        exp: UnixTime::from_secs(4_000_000_000),
    }
}

async fn postgres(label: &str) -> PgStores {
    let schema = unique_schema(label);
    PgStores::connect(&PgConfig::new(database_url()).schema(schema))
        .await
        .unwrap()
}

async fn drop_schema(pg: &PgStores) {
    let sql = format!("DROP SCHEMA {} CASCADE", pg.backend().schema());
    sqlx::query(&sql)
        .execute(pg.backend().pool())
        .await
        .unwrap();
}

/// The suite's fixture: hybrid stores on a fresh schema and a fresh Redis prefix per case,
/// loaded as at startup; the reference is the plain Redis stores of another prefix.
struct HybridFixture {
    /// Each case's schema and Redis prefixes (the hybrid's mark has no TTL: deleted here).
    cases: Mutex<HashMap<&'static str, (PgStores, [String; 2])>>,
}

impl HybridFixture {
    async fn setup() -> Result<Self, Infallible> {
        Ok(HybridFixture {
            cases: Mutex::new(HashMap::new()),
        })
    }
}

fn redis_stores(prefix: &str) -> RedisStores {
    RedisStores::connect(
        &RedisConfig::new(tokenward_testsupport::redis_url())
            .key_prefix(prefix)
            .operation_timeout(Duration::from_secs(2)),
    )
    .unwrap()
}

#[async_trait]
impl Fixture<CombinedEnv> for HybridFixture {
    async fn env(&self, case: &'static str) -> Result<CombinedEnv, BoxError> {
        tokenward_testsupport::shared_redis().await;
        let pg = postgres(&format!("hy_{case}")).await;
        let prefixes = [
            unique_prefix("hybrid-combined"),
            unique_prefix("hybrid-combined-reference"),
        ];
        self.cases
            .lock()
            .unwrap()
            .insert(case, (pg.clone(), prefixes.clone()));
        let redis = redis_stores(&prefixes[0]);
        let hybrid = HybridStores::new(&pg, &redis)?;
        hybrid.load().await?;
        let stores = hybrid.guard_stores();
        let reference = redis_stores(&prefixes[1]);
        Ok(CombinedEnv::new(
            stores
                .combined
                .clone()
                .ok_or("the hybrid has a combined check")?,
            SeparateStores {
                revocation: stores.revocation.clone(),
                ratelimit: stores.ratelimit.clone(),
            },
            SeparateStores {
                revocation: Arc::new(reference.revocation()),
                ratelimit: Arc::new(reference.ratelimit()),
            },
            Arc::new(RealClock::new()),
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        let found = self.cases.lock().unwrap().remove(case);
        if let Some((pg, prefixes)) = found {
            drop_schema(&pg).await;
            let mut conn = tokenward_testsupport::shared_redis().await;
            for prefix in prefixes {
                tokenward_testsupport::delete_prefix(&mut conn, &prefix).await?;
            }
        }
        Ok(())
    }
}

mod conformance {
    tokenward_guard::combined_conformance_tests!(
        fixture = super::HybridFixture,
        setup = super::HybridFixture::setup
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_an_empty_redis_and_checks_fail_closed_meanwhile() {
    let mut server = ThrowawayRedis::start();
    let pg = postgres("hybrid_reload").await;
    let redis = RedisStores::connect(
        &RedisConfig::new(server.url()).operation_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let hybrid = HybridStores::new(&pg, &redis).unwrap();
    let stores = hybrid.guard_stores();

    // First start: no mark yet, nothing to copy.
    let report = hybrid.load().await.unwrap();
    assert!(report.reloaded && report.revocations == 0, "{report:?}");
    assert!(!hybrid.load().await.unwrap().reloaded, "the mark is set");

    let until = UnixTime::from_secs(4_000_000_000);
    for i in 0..300 {
        stores
            .revocation
            .revoke_token(&id(&format!("j{i}")), until)
            .await
            .unwrap();
    }
    // Written through: both stores answer.
    for store in [
        &pg.revocation() as &dyn RevocationStore,
        &redis.revocation() as &dyn RevocationStore,
    ] {
        assert_eq!(
            store.check(&token("j7")).await.unwrap(),
            RevocationStatus::Revoked(RevokedBy::Token)
        );
    }

    server.restart(); // empty
    let start = Instant::now();
    let mut unavailable = 0;
    loop {
        match stores.revocation.check(&token("j7")).await {
            Ok(status) => {
                assert_eq!(status, RevocationStatus::Revoked(RevokedBy::Token));
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}");
                unavailable += 1;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        unavailable >= 1,
        "the check after the restart must not answer at once"
    );
    assert_eq!(hybrid.reloads(), 2);
    // Every revocation is back in Redis itself.
    for i in [0, 150, 299] {
        assert!(
            redis
                .revocation()
                .check(&token(&format!("j{i}")))
                .await
                .unwrap()
                .is_revoked()
        );
    }
    assert_eq!(
        stores.revocation.check(&token("other")).await.unwrap(),
        RevocationStatus::Active
    );
    drop_schema(&pg).await;
}

#[tokio::test]
async fn a_redis_cluster_is_refused() {
    let pg = PgStores::connect_lazy(&PgConfig::new(database_url())).unwrap();
    let redis = RedisStores::connect(
        &RedisConfig::default().cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]),
    )
    .unwrap();
    assert!(matches!(
        HybridStores::new(&pg, &redis),
        Err(HybridError::UnsupportedRedis)
    ));
}
