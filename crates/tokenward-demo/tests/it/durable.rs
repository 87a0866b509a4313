//! `--postgres` over real HTTP: sessions and revocations that outlive the demo's restart
//! (limits in memory), 100 parallel refreshes of one token across two instances, and the
//! hybrid (`--postgres` with `--redis`) after Redis restarted empty: a revoked token stays
//! refused (503 while Redis is reloaded, 401 after — never 200).

use std::time::{Duration, Instant};

use serde_json::json;
use tokenward_demo::client::{Client, Reply};
use tokenward_demo::server::DemoConfig;
use tokenward_testsupport::{ThrowawayRedis, database_url, unique_prefix, unique_schema};

use crate::common::{config, keys, login, start};

/// A config on PostgreSQL in a schema of the test's own.
fn pg_config(label: &str) -> DemoConfig {
    let mut config = config();
    config.postgres = Some(database_url());
    config.pg_schema = unique_schema(label);
    config
}

async fn drop_schema(schema: &str) {
    let pool = sqlx::PgPool::connect(&database_url()).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn refresh(client: &Client, base: &str, token: &str) -> Reply {
    client
        .post(
            &format!("{base}/refresh"),
            &[],
            Some(&json!({ "refresh_token": token })),
        )
        .await
        .unwrap()
}

async fn me(client: &Client, base: &str, access: &str) -> http::StatusCode {
    client
        .get(&format!("{base}/me"), Some(access))
        .await
        .unwrap()
        .status
}

async fn logout(client: &Client, base: &str, access: &str) {
    let auth = format!("Bearer {access}");
    let r = client
        .post(&format!("{base}/logout"), &[("authorization", &auth)], None)
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// The demo on PostgreSQL (limits in memory) restarts: a refresh token issued before the
/// restart rotates after it, and a token revoked before it is refused after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_revocations_survive_a_restart() {
    let config = pg_config("demo_pg_restart");
    let keys = keys();
    let client = Client::new();
    let first = start(&config, keys.clone()).await;
    let base = first.url();
    let kept = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(kept.status, 200, "{}", kept.text());
    let gone = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    let gone_access = gone.str_field("access_token").unwrap();
    logout(&client, &base, &gone_access).await;
    assert_eq!(me(&client, &base, &gone_access).await, 401);
    first.stop().await.unwrap();

    let second = start(&config, keys).await;
    let base = second.url();
    let r = refresh(&client, &base, &kept.str_field("refresh_token").unwrap()).await;
    assert_eq!(r.status, 200, "the session survived: {}", r.text());
    let access = r.str_field("access_token").unwrap();
    assert_eq!(me(&client, &base, &access).await, 200);
    assert_eq!(
        me(&client, &base, &gone_access).await,
        401,
        "a token revoked before the restart is refused after it"
    );
    let r = refresh(&client, &base, &gone.str_field("refresh_token").unwrap()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    second.stop().await.unwrap();
    drop_schema(&config.pg_schema).await;
}

/// Two instances on one PostgreSQL: 100 parallel refreshes of one token, split between
/// them, all succeed with one identical successor (one rotation, the rest in the grace
/// window), which either instance rotates next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_refreshes_across_two_instances_give_one_successor() {
    let config = pg_config("demo_pg_parallel");
    let keys = keys();
    let a = start(&config, keys.clone()).await;
    let b = start(&config, keys).await;
    let bases = [a.url(), b.url()];
    let client = Client::new();
    let r = login(&client, &bases[0], "alice", "alice-password")
        .await
        .unwrap();
    let token = r.str_field("refresh_token").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (client, base, token) = (client.clone(), bases[i % 2].clone(), token.clone());
        tasks.spawn(async move { refresh(&client, &base, &token).await });
    }
    let mut successors = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        successors.push(r.str_field("refresh_token").unwrap());
    }
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), 1, "one identical successor");
    assert_ne!(successors[0], token);
    let r = refresh(&client, &bases[1], &successors[0]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    drop_schema(&config.pg_schema).await;
}

/// The hybrid: Redis restarts empty. A revoked token is never accepted: refused with 503
/// while the revocations are reloaded from PostgreSQL, with 401 once they are; a live token
/// works again; a session survives in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_keeps_revocations_when_redis_restarts_empty() {
    let mut redis = ThrowawayRedis::start();
    let mut config = pg_config("demo_hybrid");
    config.redis = Some(redis.url());
    config.redis_prefix = unique_prefix("demo-hybrid");
    let server = start(&config, keys()).await;
    let base = server.url();
    let client = Client::new();
    let live = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    let live_access = live.str_field("access_token").unwrap();
    let revoked = login(&client, &base, "bob", "bob-password").await.unwrap();
    let revoked_access = revoked.str_field("access_token").unwrap();
    logout(&client, &base, &revoked_access).await;
    assert_eq!(me(&client, &base, &revoked_access).await, 401);
    assert_eq!(me(&client, &base, &live_access).await, 200);

    redis.restart(); // empty: no persistence
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let status = me(&client, &base, &revoked_access).await;
        assert_ne!(
            status, 200,
            "a revoked token was accepted after the restart"
        );
        seen.push(status);
        if status == 401 {
            break;
        }
        assert_eq!(status, 503, "{seen:?}");
        assert!(Instant::now() < deadline, "never reloaded: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(me(&client, &base, &live_access).await, 200);
    let r = refresh(&client, &base, &live.str_field("refresh_token").unwrap()).await;
    assert_eq!(
        r.status,
        200,
        "the session lives in PostgreSQL: {}",
        r.text()
    );
    server.stop().await.unwrap();
    drop_schema(&config.pg_schema).await;
}
