//! `--redis-cluster`, on a plain and on a TLS cluster.

use super::*;

/// `--redis-cluster`: the seed nodes of a Redis Cluster (`REDIS_CLUSTER_URLS`, or a throwaway
/// cluster), one URL or a comma-separated list; what the CLI revokes there, an application's
/// cluster-configured store sees.
#[test]
fn a_redis_cluster_named_by_its_seed_nodes() {
    let seeds = cluster_urls();
    let prefix = unique_prefix("cli-cluster");
    let all = seeds.join(",");
    let exp = (now() + 600).to_string();
    for (url, jti) in [(all.as_str(), "j-all"), (seeds[0].as_str(), "j-one")] {
        let out = run(&[
            "revoke",
            "--redis-cluster",
            "--redis",
            url,
            "--prefix",
            &prefix,
            "--jti",
            jti,
            "--exp",
            &exp,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let out = run(&[
            "check",
            "--redis-cluster",
            "--redis",
            url,
            "--prefix",
            &prefix,
            "--jti",
            jti,
            "--sid",
            "s",
            "--sub",
            "alice",
        ]);
        assert_eq!(out.code, 1, "{} / {}", out.stdout, out.stderr);
        assert!(out.stdout.starts_with("revoked by token"), "{}", out.stdout);
        let config = RedisConfig::default()
            .cluster(seeds.clone())
            .key_prefix(&prefix)
            .operation_timeout(Duration::from_secs(5));
        let store = RedisRevocationStore::connect(&config).unwrap();
        let status = block_on(store.check(&token(Some(jti), Some("s"), Some("alice"), None)));
        assert_eq!(status.unwrap(), RevocationStatus::Revoked(RevokedBy::Token));
    }
    // Over TLS: `rediss://` seeds (the nodes' TLS ports) and the cluster's CA.
    let tls = tokenward_testsupport::ThrowawayCluster::start_tls();
    let ca = tls.ca_file();
    let tls_seeds = tls.tls_urls().join(",");
    let redis_ca = ca.to_str().unwrap();
    let out = run(&[
        "revoke",
        "--redis-cluster",
        "--redis",
        &tls_seeds,
        "--redis-ca",
        redis_ca,
        "--prefix",
        &prefix,
        "--jti",
        "j-tls",
        "--exp",
        &exp,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&[
        "check",
        "--redis-cluster",
        "--redis",
        &tls_seeds,
        "--redis-ca",
        redis_ca,
        "--prefix",
        &prefix,
        "--jti",
        "j-tls",
    ]);
    assert_eq!(out.code, 1, "{} / {}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("revoked by token"), "{}", out.stdout);
    // Without the CA (the system's roots), the certificate is refused at the startup check.
    let out = run(&[
        "check",
        "--redis-cluster",
        "--redis",
        &tls_seeds,
        "--prefix",
        &prefix,
        "--jti",
        "j-tls",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid peer certificate"),
        "{}",
        out.stderr
    );
    block_on(tokenward_testsupport::delete_prefix_on_cluster(
        &seeds, &prefix,
    ))
    .unwrap();
}
