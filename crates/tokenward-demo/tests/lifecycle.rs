//! The whole lifecycle over real HTTP (servers on ephemeral ports, a real client), in memory
//! and on a real Redis with two instances of one service.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use tokenward_demo::lifecycle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_in_memory() {
    let server = common::start(&common::config(), common::keys()).await;
    let report = lifecycle::run(&common::options(&[&server])).await;
    assert!(report.ok(), "misbehaving steps: {:#?}", report.failures);
    assert!(report.checks >= 30, "only {} checks ran", report.checks);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_redis_with_two_instances() {
    let url = common::require_redis();
    let mut config = common::config();
    config.redis = Some(url.clone());
    config.redis_prefix = common::unique_prefix("lifecycle");
    let keys = common::keys();
    // Two instances: same keys, same Redis and prefix, separate connections and Guards.
    let a = common::start(&config, keys.clone()).await;
    let b = common::start(&config, keys).await;
    assert_ne!(a.addr, b.addr);
    let report = lifecycle::run(&common::options(&[&a, &b])).await;
    assert!(report.ok(), "misbehaving steps: {:#?}", report.failures);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    common::delete_under(&url, &config.redis_prefix).await;
}
