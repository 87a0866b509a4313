//! The hybrid stores (PostgreSQL + Redis) below HTTP: revokes write through to both, the
//! startup load copies every live revocation into an empty Redis (and nothing when the mark
//! is there), a check after Redis lost its data fails closed until the reload is done, and
//! a Redis Cluster is refused.

use std::time::{Duration, Instant};

use tokenward_core::{StoreErrorKind, StoreId, TokenRef, UnixTime};
use tokenward_guard::hybrid::{HybridError, HybridStores};
use tokenward_postgres::{PgConfig, PgStores};
use tokenward_redis::{RedisConfig, RedisStores};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};
use tokenward_testsupport::{ThrowawayRedis, database_url, unique_prefix};

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
    let schema: String = unique_prefix(label)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let schema = schema.trim_end_matches('_').to_owned();
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
