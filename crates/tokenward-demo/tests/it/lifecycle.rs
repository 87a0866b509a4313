//! The whole lifecycle over real HTTP (servers on ephemeral ports, a real client), in memory
//! and on a real Redis (one server, and a Redis Cluster) with two instances of one service.

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

/// The same two instances on a Redis Cluster (`REDIS_CLUSTER_URLS`, or a throwaway
/// 3-primary cluster), named by its seed nodes with `redis_cluster`: the keys of one user
/// spread over the nodes, and the lifecycle — logout on one instance honoured by the other,
/// shared limits, parallel refreshes with one successor — holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_a_redis_cluster_with_two_instances() {
    let seeds = tokenward_testsupport::cluster_urls();
    let mut config = config();
    config.redis = Some(seeds.join(","));
    config.redis_cluster = true;
    config.redis_prefix = unique_prefix("demo-cluster");
    let keys = keys();
    let a = start(&config, keys.clone()).await;
    let b = start(&config, keys).await;
    let report = lifecycle::run(&options(&[&a, &b])).await;
    assert!(report.ok(), "misbehaving steps: {:#?}", report.failures);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    let deleted = tokenward_testsupport::delete_prefix_on_cluster(&seeds, &config.redis_prefix)
        .await
        .unwrap();
    assert!(
        deleted > 0,
        "no keys under {}: was the cluster used?",
        config.redis_prefix
    );
}
