//! `rediss://` against a throwaway TLS `redis-server` (certificates from a throwaway CA):
//! every conformance suite over TLS (one server for the whole binary, each case under its own
//! prefix), mutual TLS, a wrong CA, a wrong hostname, the platform's trust store, TLS to a
//! plain-text port, unusable TLS files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::conformance::{BoxError, Fixture};
use tokenward_core::{StoreError, StoreErrorKind, StoreId, UnixTime};
use tokenward_guard::conformance::{CombinedEnv, SeparateStores};
use tokenward_ratelimit::conformance::RateLimitEnv;
use tokenward_redis::{
    RedisBackend, RedisConfig, RedisConfigError, RedisRateLimitStore, RedisRefreshStore,
    RedisRevocationStore, RedisStores,
};
use tokenward_refresh::conformance::RefreshEnv;
use tokenward_revocation::RevocationStore;
use tokenward_revocation::conformance::{RealClock, RevocationEnv};
use tokenward_testsupport::{ThrowawayTlsRedis, unique_prefix};

use crate::common::{OUTAGE, ServerProbe, TIMEOUT, bounded_failure};

/// The binary's one TLS server (certificate for `localhost` and 127.0.0.1, client
/// certificates optional), shared by every case; it ends with the test process.
fn server() -> &'static ThrowawayTlsRedis {
    static SERVER: OnceLock<ThrowawayTlsRedis> = OnceLock::new();
    SERVER.get_or_init(ThrowawayTlsRedis::start)
}

/// A config for `url` trusting the throwaway CA, under a fresh prefix.
fn tls_config(server: &ThrowawayTlsRedis, url: &str, test: &str) -> RedisConfig {
    RedisConfig::new(url)
        .tls_ca_file(server.ca_file())
        .key_prefix(unique_prefix(test))
        .operation_timeout(Duration::from_secs(2))
}

async fn admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(server().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The suites' fixture: stores over TLS under a fresh prefix per case, whose keys (read and
/// deleted over the server's plain-text admin port) go after it.
struct TlsFixture {
    admin: redis::aio::MultiplexedConnection,
    prefixes: Mutex<HashMap<&'static str, Vec<String>>>,
}

impl TlsFixture {
    async fn setup() -> Result<Self, BoxError> {
        Ok(TlsFixture {
            admin: admin().await,
            prefixes: Mutex::new(HashMap::new()),
        })
    }

    /// A config for `case` on the TLS URL, its prefix remembered for the teardown.
    fn config(&self, case: &'static str) -> RedisConfig {
        let config = tls_config(server(), &server().tls_url(), &format!("tls-{case}"));
        let mut prefixes = self.prefixes.lock().unwrap();
        prefixes
            .entry(case)
            .or_default()
            .push(config.key_prefix.clone());
        config
    }

    fn probe(&self, backend: &RedisBackend) -> Arc<ServerProbe> {
        Arc::new(ServerProbe {
            backend: backend.clone(),
            admin: self.admin.clone(),
        })
    }

    async fn delete(&self, case: &'static str) -> Result<(), BoxError> {
        let prefixes = self.prefixes.lock().unwrap().remove(case);
        for prefix in prefixes.unwrap_or_default() {
            tokenward_testsupport::delete_prefix(&mut self.admin.clone(), &prefix).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Fixture<RevocationEnv> for TlsFixture {
    async fn env(&self, case: &'static str) -> Result<RevocationEnv, BoxError> {
        let store = RedisRevocationStore::connect(&self.config(case))?;
        let probe = self.probe(store.backend());
        Ok(RevocationEnv::new(
            Arc::new(store),
            Arc::new(RealClock::new()),
            probe,
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

#[async_trait]
impl Fixture<RateLimitEnv> for TlsFixture {
    async fn env(&self, case: &'static str) -> Result<RateLimitEnv, BoxError> {
        let store = RedisRateLimitStore::connect(&self.config(case))?;
        let probe = self.probe(store.backend());
        Ok(RateLimitEnv::new(
            Arc::new(store),
            Arc::new(tokenward_ratelimit::conformance::RealClock::new()),
            probe,
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

#[async_trait]
impl Fixture<RefreshEnv> for TlsFixture {
    async fn env(&self, case: &'static str) -> Result<RefreshEnv, BoxError> {
        let store = RedisRefreshStore::connect(&self.config(case))?;
        let probe = self.probe(store.backend());
        Ok(RefreshEnv::new(
            Arc::new(store),
            Arc::new(tokenward_refresh::conformance::RealClock::new()),
            probe,
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

fn separate(stores: &RedisStores) -> SeparateStores {
    SeparateStores {
        revocation: Arc::new(stores.revocation()),
        ratelimit: Arc::new(stores.ratelimit()),
    }
}

#[async_trait]
impl Fixture<CombinedEnv> for TlsFixture {
    async fn env(&self, case: &'static str) -> Result<CombinedEnv, BoxError> {
        let backend = RedisStores::connect(&self.config(case))?;
        let reference = RedisStores::connect(&self.config(case))?;
        Ok(CombinedEnv::new(
            Arc::new(backend.clone()),
            separate(&backend),
            separate(&reference),
            Arc::new(tokenward_guard::conformance::RealClock::new()),
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

mod revocation_conformance {
    tokenward_revocation::revocation_conformance_tests!(
        fixture = super::TlsFixture,
        setup = super::TlsFixture::setup
    );
}

mod ratelimit_conformance {
    tokenward_ratelimit::ratelimit_conformance_tests!(
        fixture = super::TlsFixture,
        setup = super::TlsFixture::setup
    );
}

mod refresh_conformance {
    tokenward_refresh::refresh_conformance_tests!(
        fixture = super::TlsFixture,
        setup = super::TlsFixture::setup
    );
}

mod combined_conformance {
    tokenward_guard::combined_conformance_tests!(
        fixture = super::TlsFixture,
        setup = super::TlsFixture::setup
    );
}

/// `err`, its sources included, as one string.
fn shown(err: &dyn std::error::Error) -> String {
    let mut shown = format!("{err} / {err:?}");
    let mut source = err.source();
    while let Some(e) = source {
        shown.push_str(&format!(" / {e}"));
        source = e.source();
    }
    shown
}

/// `url`'s startup check fails with `Unavailable`, naming the endpoint and saying `says`
/// (lower-cased), never the password `hunter2`; returns the message.
async fn refused(config: &RedisConfig, endpoint: &str, says: &[&str]) -> String {
    let backend = RedisBackend::new(config).unwrap();
    let err = backend.ping().await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    let text = shown(&err);
    assert!(text.contains(&format!("redis at {endpoint}")), "{text}");
    for word in says {
        assert!(text.to_lowercase().contains(word), "{word}: {text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
    // The startup check reports the same.
    let check = backend.check_server().await.unwrap_err().to_string();
    assert!(
        check.contains(endpoint) && !check.contains("hunter2"),
        "{check}"
    );
    err.to_string()
}

#[tokio::test]
async fn tls_with_the_private_ca_works_and_checks_the_server() {
    let server = server();
    let config = tls_config(server, &server.tls_url(), "tls-ok");
    let store = RedisRevocationStore::connect(&config).unwrap();
    store.backend().ping().await.unwrap();
    let check = store.backend().check_server().await.unwrap();
    assert_eq!(check.maxmemory_policy.as_deref(), Some("noeviction"));
    let exp = UnixTime::from_secs(4_000_000_000);
    store
        .revoke_token(&StoreId::new("j").unwrap(), exp)
        .await
        .unwrap();
    // The key is on the TLS server (read over its admin port).
    let keys = tokenward_testsupport::keys_under(&mut admin().await, store.backend().key_prefix())
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    tokenward_testsupport::delete_prefix(&mut admin().await, store.backend().key_prefix())
        .await
        .unwrap();
    // `localhost` is covered by the certificate too.
    let url = format!("rediss://localhost:{}", server.tls_port());
    RedisBackend::new(&tls_config(server, &url, "tls-localhost"))
        .unwrap()
        .ping()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_ca_is_a_clear_certificate_error() {
    let server = server();
    let url = format!("rediss://:hunter2@127.0.0.1:{}", server.tls_port());
    let config = tls_config(server, &url, "tls-wrong-ca").tls_ca_file(server.other_ca_file());
    let endpoint = format!("127.0.0.1:{}", server.tls_port());
    let message = refused(
        &config,
        &endpoint,
        &["tls handshake failed", "certificate", "unknownissuer"],
    )
    .await;
    eprintln!("wrong CA: {message}");
}

#[tokio::test]
async fn the_platform_trust_store_does_not_know_a_private_ca() {
    let server = server();
    let config = RedisConfig::new(format!("rediss://:hunter2@127.0.0.1:{}", server.tls_port()))
        .operation_timeout(Duration::from_secs(2));
    let endpoint = format!("127.0.0.1:{}", server.tls_port());
    refused(&config, &endpoint, &["tls handshake failed", "certificate"]).await;
}

#[tokio::test]
async fn a_wrong_hostname_is_a_clear_certificate_error() {
    // A certificate from the trusted CA, for another name than the URL's host.
    let server = ThrowawayTlsRedis::builder()
        .server_names(["redis.example.com"])
        .start();
    let config = tls_config(&server, &server.tls_url(), "tls-wrong-name");
    let endpoint = format!("127.0.0.1:{}", server.tls_port());
    let message = refused(
        &config,
        &endpoint,
        &["tls handshake failed", "certificate", "not valid for name"],
    )
    .await;
    eprintln!("wrong hostname: {message}");
}

#[tokio::test]
async fn mutual_tls_works_with_a_client_certificate_and_is_refused_without() {
    let server = ThrowawayTlsRedis::builder().require_client_certs().start();
    let config = tls_config(&server, &server.tls_url(), "tls-mtls");
    let with_cert = config
        .clone()
        .tls_client_cert(server.client_cert_file(), server.client_key_file());
    let store = RedisRevocationStore::connect(&with_cert).unwrap();
    store.backend().check_server().await.unwrap();
    let exp = UnixTime::from_secs(4_000_000_000);
    store
        .revoke_token(&StoreId::new("j").unwrap(), exp)
        .await
        .unwrap();

    let endpoint = format!("127.0.0.1:{}", server.tls_port());
    let message = refused(&config, &endpoint, &["tls"]).await;
    eprintln!("no client certificate: {message}");
}

#[tokio::test]
async fn tls_to_a_plain_text_port_fails_within_the_timeout() {
    let server = server();
    let url = format!("rediss://127.0.0.1:{}", server.port());
    let config = tls_config(server, &url, "tls-plain").operation_timeout(TIMEOUT);
    let backend = RedisBackend::new(&config).unwrap();
    for _ in 0..2 {
        bounded_failure("rediss:// to a plain port", OUTAGE, backend.ping()).await;
    }
}

#[test]
fn unusable_tls_files_are_configuration_errors_naming_the_setting() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pem");
    let url = format!("rediss://:hunter2@127.0.0.1:{}", server.tls_port());
    let base = RedisConfig::new(url.as_str());
    for (config, says) in [
        (
            base.clone().tls_ca_file(&missing),
            "`tls_ca_file`: ".to_owned() + &missing.display().to_string(),
        ),
        (
            base.clone().tls_ca_file(&empty),
            "no PEM certificate".to_owned(),
        ),
        (
            base.clone()
                .tls_client_cert(server.client_cert_file(), &missing),
            "`tls_client_key_file`".to_owned(),
        ),
        (
            base.clone()
                .tls_client_cert(&empty, server.client_key_file()),
            "`tls_client_cert_file`".to_owned(),
        ),
        (
            // The CA certificate is no key.
            base.clone()
                .tls_client_cert(server.client_cert_file(), server.ca_file()),
            "`tls_client_key_file`".to_owned(),
        ),
    ] {
        let err = RedisBackend::new(&config).unwrap_err();
        assert!(matches!(err, RedisConfigError::Tls { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&says), "{says}: {text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    // TLS files with a plain URL: refused, not silently ignored.
    let err = RedisBackend::new(&RedisConfig::new("redis://h").tls_ca_file(&empty)).unwrap_err();
    assert!(
        err.to_string()
            .contains("`tls_ca_file`: needs a rediss:// url"),
        "{err}"
    );
}

#[tokio::test]
async fn the_error_of_a_failed_handshake_is_unavailable_not_a_verdict() {
    let server = server();
    let config =
        tls_config(server, &server.tls_url(), "tls-verdict").tls_ca_file(server.other_ca_file());
    let store = RedisRevocationStore::connect(&config).unwrap();
    let token = tokenward_core::TokenRef::from_parts(
        Some("j"),
        None,
        None,
        None,
        UnixTime::from_secs(4_000_000_000),
    )
    .unwrap();
    let err: StoreError = store.check(&token).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_refused_tls_connection_says_connection_refused() {
    let port = tokenward_testsupport::free_port();
    let config = tls_config(
        server(),
        &format!("rediss://:hunter2@127.0.0.1:{port}"),
        "tls-refused",
    );
    let message = refused(
        &config,
        &format!("127.0.0.1:{port}"),
        &["connection refused"],
    )
    .await;
    assert!(!message.contains("TLS"), "{message}");
}
