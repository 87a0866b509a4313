//! Every suite again on a cluster reached over TLS: `rediss://` seeds, the nodes' TLS ports
//! (`tls-cluster yes`), the throwaway CA as `tls_ca_file`.
mod revocation_conformance {
    tokenward_revocation::revocation_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::setup_tls
    );
}

mod ratelimit_conformance {
    tokenward_ratelimit::ratelimit_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::setup_tls
    );
}

mod refresh_conformance {
    tokenward_refresh::refresh_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::setup_tls
    );
}

mod combined_conformance {
    tokenward_guard::combined_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::setup_tls
    );
}

use std::time::Duration;

use tokenward_redis::{RedisBackend, RedisConfig};

/// A TLS cluster with a CA the client does not trust fails with a TLS error, naming no
/// password; without the CA file (the system's roots) too.
#[tokio::test]
async fn an_untrusted_certificate_fails_clearly() {
    let cluster = tokio::task::spawn_blocking(super::tls_cluster)
        .await
        .unwrap();
    let seeds: Vec<String> = cluster
        .tls_urls()
        .iter()
        .map(|u| u.replace("rediss://", "rediss://:hunter2@"))
        .collect();
    // A CA of another server's (kept alive: its files go with it).
    let other = tokenward_testsupport::ThrowawayTlsRedis::start();
    for ca in [Some(other.other_ca_file()), None] {
        let mut config = RedisConfig::default()
            .cluster(seeds.clone())
            .operation_timeout(Duration::from_secs(2));
        config.tls_ca_file = ca;
        let backend = RedisBackend::new(&config).unwrap();
        let error = backend.ping().await.unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
        let lower = error.to_lowercase();
        assert!(
            lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("unknownissuer"),
            "{error}"
        );
    }
}

/// Seeds are all `rediss://` or all `redis://`.
#[test]
fn mixed_seeds_are_refused() {
    let config =
        RedisConfig::default().cluster(["redis://127.0.0.1:7000", "rediss://127.0.0.1:7001"]);
    let error = RedisBackend::new(&config).unwrap_err().to_string();
    assert!(error.contains("all redis:// or all rediss://"), "{error}");
}
