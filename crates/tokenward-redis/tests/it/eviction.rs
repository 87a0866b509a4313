//! `RedisBackend::check_server` against throwaway servers (never the shared test Redis, whose
//! configuration is not ours to change): an evicting `maxmemory-policy` is refused unless
//! `dangerous_allow_eviction`, `noeviction` passes, and a server where `CONFIG` is renamed or
//! denied passes with a warning.

use std::time::Duration;

use tokenward_core::StoreErrorKind;
use tokenward_redis::{RedisBackend, RedisConfig, ServerCheckError};
use tokenward_testsupport::{LogCapture, ThrowawayRedis, free_port};

fn backend(url: &str, allow: bool) -> RedisBackend {
    RedisBackend::new(
        &RedisConfig::new(url)
            .operation_timeout(Duration::from_secs(2))
            .dangerous_allow_eviction(allow),
    )
    .unwrap()
}

async fn admin(server: &ThrowawayRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn evicting_policies_are_refused_unless_dangerously_allowed() {
    let logs = LogCapture::global();
    let server = ThrowawayRedis::builder()
        .arg("--maxmemory-policy")
        .arg("allkeys-lru")
        .start();
    let mut conn = admin(&server).await;
    let endpoint = format!("127.0.0.1:{}", server.port());
    for policy in [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg(policy)
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = backend(&server.url(), false)
            .check_server()
            .await
            .unwrap_err();
        match &err {
            ServerCheckError::EvictionPolicy {
                endpoint: e,
                policy: p,
            } => assert_eq!((e.as_str(), p.as_str()), (endpoint.as_str(), policy)),
            other => panic!("{policy}: {other:?}"),
        }
        let text = err.to_string();
        for says in [
            &format!("redis at {endpoint}"),
            policy,
            "CONFIG SET maxmemory-policy noeviction",
            "dangerous_allow_eviction",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }

        // Allowed: passes, naming the policy, with one warning per backend.
        let allowed = backend(&server.url(), true);
        for _ in 0..2 {
            let check = allowed.check_server().await.unwrap();
            assert_eq!(check.maxmemory_policy.as_deref(), Some(policy));
        }
    }
    let warnings = logs.lines_with(&endpoint);
    assert_eq!(warnings.len(), 7, "{warnings:#?}");
    assert!(
        warnings.iter().all(|w| w.contains("WARN")
            && w.contains("tokenward::redis")
            && w.contains("dangerous_allow_eviction")),
        "{warnings:#?}"
    );

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .unwrap();
    let check = backend(&server.url(), false).check_server().await.unwrap();
    assert_eq!(check.maxmemory_policy.as_deref(), Some("noeviction"));
}

#[tokio::test]
async fn a_renamed_or_denied_config_command_warns_once_and_passes() {
    let logs = LogCapture::global();
    let renamed = ThrowawayRedis::builder()
        .arg("--rename-command")
        .arg("CONFIG")
        .arg("")
        .arg("--maxmemory-policy")
        .arg("allkeys-lru")
        .start();
    let backend_renamed = backend(&renamed.url(), false);
    for _ in 0..2 {
        let check = backend_renamed.check_server().await.unwrap();
        assert_eq!(check.maxmemory_policy, None);
    }
    let lines = logs.lines_with(&format!("127.0.0.1:{}", renamed.port()));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("cannot read maxmemory-policy"),
        "{lines:#?}"
    );

    // A user whose ACL denies CONFIG (NOPERM); its password never shows.
    let server = ThrowawayRedis::start();
    let mut conn = admin(&server).await;
    let () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">hunter2", "~*", "+@all", "-config"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = format!("redis://app:hunter2@127.0.0.1:{}", server.port());
    let check = backend(&url, false).check_server().await.unwrap();
    assert_eq!(check.maxmemory_policy, None);
    let lines = logs.lines_with(&format!("127.0.0.1:{}", server.port()));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(!lines[0].contains("hunter2"), "{lines:#?}");
}

#[tokio::test]
async fn an_unreachable_server_fails_the_check() {
    let url = format!("redis://:hunter2@127.0.0.1:{}", free_port());
    let err = backend(&url, false).check_server().await.unwrap_err();
    match &err {
        ServerCheckError::Store(e) => assert_eq!(e.kind(), StoreErrorKind::Unavailable),
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
