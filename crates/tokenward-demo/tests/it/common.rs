//! Helpers for the demo's end-to-end tests: servers on ephemeral ports with small limits, the
//! lifecycle driver's options, logging in. Redis (the shared one, throwaway ones, key
//! prefixes) comes from `tokenward-testsupport`.

use std::time::Duration;

use serde_json::json;
use tokenward_claims::KeySet;
use tokenward_demo::client::{Client, ClientError, Reply};
use tokenward_demo::lifecycle::Options;
use tokenward_demo::server::{DemoConfig, Running, spawn};
use tokenward_testsupport::{delete_prefix, shared_redis};

/// The servers' settings in the lifecycle tests (small, so the 429 steps are quick).
pub const SUBJECT_LIMIT: u32 = 10;
pub const GRACE: Duration = Duration::from_secs(2);
pub const MAXRETRY: u32 = 3;

/// A config on an ephemeral port with the lifecycle tests' small limits.
pub fn config() -> DemoConfig {
    let mut config = DemoConfig::default();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.subject_limit = SUBJECT_LIMIT;
    config.refresh_grace = GRACE;
    config.ban_maxretry = MAXRETRY;
    // Generous: the machine may be busy; these tests are not about timeouts.
    config.redis_timeout = Duration::from_secs(2);
    config
}

/// The driver's options for `servers`.
pub fn options(servers: &[&Running]) -> Options {
    Options::new(servers.iter().map(|s| s.url()).collect())
        .refresh_grace(GRACE)
        .subject_limit(SUBJECT_LIMIT)
        .ban_maxretry(MAXRETRY)
}

/// One key set for every instance of a test (what a shared `--keys` gives).
pub fn keys() -> KeySet {
    tokenward_demo::keys::ephemeral().unwrap()
}

/// Starts a demo for `config` with `keys`.
pub async fn start(config: &DemoConfig, keys: KeySet) -> Running {
    spawn(config, keys).await.unwrap()
}

/// `POST {base}/login` as `username` with `password`.
pub async fn login(
    client: &Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<Reply, ClientError> {
    let body = json!({ "username": username, "password": password });
    client
        .post(&format!("{base}/login"), &[], Some(&body))
        .await
}

/// Deletes the keys under `prefix` on the test Redis at the end of a test (refresh families
/// would otherwise linger for their idle timeout), and fails if there were none: then Redis
/// was not used at all.
pub async fn delete_redis_keys(prefix: &str) {
    let mut conn = shared_redis().await;
    let deleted = delete_prefix(&mut conn, prefix).await.unwrap();
    assert!(
        deleted > 0,
        "no keys under {prefix}: was Redis used at all?"
    );
}
