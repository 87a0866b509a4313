//! The demo's Redis startup check: `rediss://` with a private CA (`--redis-ca`) and client
//! certificates works end to end; a wrong CA and an evicting `maxmemory-policy` stop it from
//! starting, with a message naming the server (never the password), unless
//! `--dangerous-allow-eviction`.

use std::io::Read as _;
use std::process::{Command, Stdio};

use tokenward_demo::client::Client;
use tokenward_demo::server::spawn;
use tokenward_testsupport::{ThrowawayRedis, ThrowawayTlsRedis, unique_prefix};

use crate::common::{config, keys, login, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_mutual_tls_with_a_private_ca() {
    let redis = ThrowawayTlsRedis::builder().require_client_certs().start();
    let mut config = config();
    config.redis = Some(redis.tls_url());
    config.redis_prefix = unique_prefix("demo-tls");
    config.redis_ca = Some(redis.ca_file());
    config.redis_client_cert = Some(redis.client_cert_file());
    config.redis_client_key = Some(redis.client_key_file());
    let server = start(&config, keys()).await;
    let client = Client::new();
    let r = login(&client, &server.url(), "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The session is on the TLS server.
    let mut admin = tokenward_testsupport::connect(&redis.url()).await.unwrap();
    let stored = tokenward_testsupport::keys_under(&mut admin, &config.redis_prefix)
        .await
        .unwrap();
    assert!(!stored.is_empty());

    // Without the client certificate, or trusting another CA: no start.
    for (ca, client_cert, says) in [
        (redis.ca_file(), false, "TLS connection failed"),
        (
            redis.other_ca_file(),
            true,
            "TLS handshake failed: invalid peer certificate: UnknownIssuer",
        ),
    ] {
        let mut config = config.clone();
        config.redis = Some(format!("rediss://:hunter2@127.0.0.1:{}", redis.tls_port()));
        config.redis_ca = Some(ca);
        if !client_cert {
            config.redis_client_cert = None;
            config.redis_client_key = None;
        }
        let err = spawn(&config, keys()).await.unwrap_err().to_string();
        assert!(err.contains(says), "{says}: {err}");
        assert!(
            err.contains(&format!("redis at 127.0.0.1:{}", redis.tls_port())),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_redis_is_refused_unless_dangerously_allowed() {
    let redis = ThrowawayRedis::builder()
        .arg("--maxmemory-policy")
        .arg("allkeys-lru")
        .start();
    let mut config = config();
    config.redis = Some(redis.url());
    config.redis_prefix = unique_prefix("demo-evict");
    let err = spawn(&config, keys()).await.unwrap_err().to_string();
    for says in ["maxmemory-policy is allkeys-lru", "noeviction"] {
        assert!(err.contains(says), "{says}: {err}");
    }
    config.redis_dangerous_allow_eviction = true;
    let server = start(&config, keys()).await;
    let r = login(&Client::new(), &server.url(), "bob", "bob-password")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The binary's flags reach the check: it exits with the message before listening.
#[test]
fn the_binary_refuses_to_start_and_says_why() {
    let redis = ThrowawayTlsRedis::start();
    let evicting = ThrowawayRedis::builder()
        .arg("--maxmemory-policy")
        .arg("volatile-ttl")
        .start();
    let url = format!("rediss://:hunter2@127.0.0.1:{}", redis.tls_port());
    let other_ca = redis.other_ca_file();
    for (args, says) in [
        (
            vec!["--redis", &url, "--redis-ca", other_ca.to_str().unwrap()],
            "TLS handshake failed: invalid peer certificate: UnknownIssuer",
        ),
        (
            vec!["--redis", &evicting.url()],
            "maxmemory-policy is volatile-ttl",
        ),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenward-demo"))
            .args(["--bind", "127.0.0.1:0"])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = child.wait().unwrap();
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(!status.success(), "{args:?}: {stdout}");
        assert!(!stdout.contains("listening"), "{stdout}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}
