//! A Redis outage over real HTTP: a throwaway `redis-server` is killed mid-test. Every route
//! that needs a store answers 503 with `Retry-After` within the operation timeout (never 401,
//! never 200), and the service recovers once Redis is back on the same port.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::json;
use tokenward_demo::client::{Client, ClientError, Reply};
use tokenward_testsupport::{ThrowawayRedis, unique_prefix};

use crate::common::{config, keys, login, start};

/// The Redis operation timeout configured here.
const TIMEOUT: Duration = Duration::from_millis(250);
/// Scheduling slack on a shared, loaded 2-core machine (HTTP round trip included).
const MARGIN: Duration = Duration::from_millis(750);

/// `request` is answered 503 with `Retry-After` and the JSON error within the timeout.
async fn unavailable(what: &str, request: impl Future<Output = Result<Reply, ClientError>>) {
    let start = Instant::now();
    let reply = request.await.unwrap();
    let took = start.elapsed();
    assert_eq!(
        reply.status,
        503,
        "{what}: {} {}",
        reply.status,
        reply.text()
    );
    let retry_after: u64 = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"))
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{what}: Retry-After {retry_after}");
    assert_eq!(
        reply.str_field("error").as_deref(),
        Some("temporarily_unavailable"),
        "{what}: {}",
        reply.text()
    );
    assert!(
        took < TIMEOUT + MARGIN,
        "{what} took {took:?}, more than the {TIMEOUT:?} timeout (+{MARGIN:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_closed_then_recovers() {
    let mut redis = ThrowawayRedis::start();
    let mut config = config();
    config.redis = Some(redis.url());
    config.redis_prefix = unique_prefix("demo-outage");
    config.redis_timeout = TIMEOUT;
    let server = start(&config, keys()).await;
    let base = server.url();
    let client = Client::new();

    let r = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let access = r.str_field("access_token").unwrap();
    let refresh = r.str_field("refresh_token").unwrap();
    let r = client
        .get(&format!("{base}/me"), Some(&access))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    redis.kill();

    let bearer = format!("Bearer {access}");
    for attempt in 0..3 {
        let me = format!("{base}/me");
        unavailable(
            &format!("GET /me #{attempt}"),
            client.get(&me, Some(&access)),
        )
        .await;
    }
    unavailable(
        "POST /login",
        login(&client, &base, "alice", "alice-password"),
    )
    .await;
    let (url, body) = (
        format!("{base}/refresh"),
        json!({ "refresh_token": refresh }),
    );
    unavailable("POST /refresh", client.post(&url, &[], Some(&body))).await;
    let (url, auth) = (
        format!("{base}/logout"),
        [("authorization", bearer.as_str())],
    );
    unavailable("POST /logout", client.post(&url, &auth, None)).await;

    // Back on the same port (empty: no persistence): the service recovers on its own.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = client
            .get(&format!("{base}/me"), Some(&access))
            .await
            .unwrap();
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "while recovering: {} {}", r.status, r.text());
        assert!(Instant::now() < deadline, "no recovery within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop().await.unwrap();
}
