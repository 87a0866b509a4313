//! The whole lifecycle over real HTTP (servers on ephemeral ports, a real client), in memory
//! and on a real Redis with two instances of one service.

use tokenward_demo::lifecycle;
use tokenward_testsupport::{redis_url, shared_redis, unique_prefix};

use crate::common::{config, delete_redis_keys, keys, options, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_in_memory() {
    let server = start(&config(), keys()).await;
    let report = lifecycle::run(&options(&[&server])).await;
    assert!(report.ok(), "misbehaving steps: {:#?}", report.failures);
    assert!(report.checks >= 30, "only {} checks ran", report.checks);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_redis_with_two_instances() {
    shared_redis().await; // fails, saying how to get one, if there is no Redis
    let mut config = config();
    config.redis = Some(redis_url());
    config.redis_prefix = unique_prefix("demo-lifecycle");
    let keys = keys();
    // Two instances: same keys, same Redis and prefix, separate connections and Guards.
    let a = start(&config, keys.clone()).await;
    let b = start(&config, keys).await;
    assert_ne!(a.addr, b.addr);
    let report = lifecycle::run(&options(&[&a, &b])).await;
    assert!(report.ok(), "misbehaving steps: {:#?}", report.failures);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    delete_redis_keys(&config.redis_prefix).await;
}
