//! Caching: TTLs from `Cache-Control` within bounds, the last good keys kept up to the maximum
//! staleness while the server is down, recovery, and the background refresher.

use std::time::{Duration, Instant};

use tokenward_claims::{KeyResolver, RejectionClass, UnixTime};
use tokenward_jwks::{JwksError, JwksSource, RemoteKeySet};

use crate::common::*;
use crate::server::{Reply, TestServer};

#[tokio::test]
async fn server_down_keeps_the_last_good_keys_until_max_staleness_then_a_typed_error() {
    let server = TestServer::start().await;
    let k1 = signer("k1");
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1])).header("cache-control", "max-age=600"),
    );
    let clock = clock();
    let remote = builder(server.url("/jwks"), &clock)
        .max_staleness(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let validator = validator(&remote, &clock);
    server.stop().await;

    // Past the TTL (600 s), the refresh fails: the last good keys keep working.
    clock.advance(Duration::from_secs(601));
    let err = remote.refresh().await.unwrap_err();
    assert!(
        matches!(err, JwksError::Http { status: None, .. }),
        "{err:?}"
    );
    let stats = remote.stats();
    assert!(stats.stale && !stats.unusable);
    assert_eq!(stats.consecutive_failures, 1);
    assert!(stats.last_error.is_some());
    assert!(remote.resolve(Some("k1")).is_some());
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // Just before TTL + max staleness: still working.
    clock.advance(Duration::from_secs(3600 - 2));
    assert!(remote.snapshot().is_ok());
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // Past it: no key resolves, verification fails with class `key`, snapshot says why.
    clock.advance(Duration::from_secs(1));
    match remote.snapshot() {
        Err(JwksError::Stale { age }) => assert_eq!(age, Duration::from_secs(600 + 3600)),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(remote.resolve(Some("k1")).is_none());
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Err(RejectionClass::Key)
    );
    let stats = remote.stats();
    assert!(stats.unusable);
    assert!(stats.consecutive_failures >= 2);
}

#[tokio::test]
async fn the_keys_come_back_when_the_server_does() {
    let k1 = signer("k1");
    let (server, clock, remote) = serving(Reply::json(jwks(&[&k1]))).await;
    server.set("/jwks", Reply::json("oops").status(503));
    clock.advance(Duration::from_secs(301));
    assert!(matches!(
        remote.refresh().await,
        Err(JwksError::Http {
            status: Some(503),
            ..
        })
    ));
    assert!(remote.stats().stale);
    server.set("/jwks", Reply::json(jwks(&[&k1])));
    remote.refresh().await.unwrap();
    let stats = remote.stats();
    assert!(!stats.stale);
    assert_eq!(
        (stats.consecutive_failures, stats.failures, stats.fetches),
        (0, 1, 3)
    );
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_within_bounds() {
    let k1 = signer("k1");
    let cases = [
        (None, 300),                         // default TTL
        (Some("max-age=3600"), 3600),        // honoured
        (Some("public, max-age=5"), 60),     // raised to the minimum
        (Some("max-age=999999999"), 86_400), // capped at the maximum
        (Some("no-store"), 60),              // as short as allowed
    ];
    for (header, ttl) in cases {
        let mut reply = Reply::json(jwks(&[&k1]));
        if let Some(value) = header {
            reply = reply.header("cache-control", value);
        }
        let (_server, _clock, remote) = serving(reply).await;
        assert_eq!(
            remote.stats().expires_at,
            Some(UnixTime::from_secs(1_800_000_000 + ttl)),
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn the_background_refresher_picks_up_new_keys_and_stops_with_the_last_handle() {
    // Real time here: the refresher sleeps on tokio's timer until the (system) clock says the
    // key set is due. `max-age=1` with a 1 s minimum TTL makes that every half second.
    let server = TestServer::start().await;
    let (k1, k2) = (signer("k1"), signer("k2"));
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1])).header("cache-control", "max-age=1"),
    );
    let remote = RemoteKeySet::builder(JwksSource::url(server.url("/jwks")))
        .dangerous_allow_http(true)
        .ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .default_ttl(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1, &k2])).header("cache-control", "max-age=1"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while remote.resolve(Some("k2")).is_none() {
        assert!(Instant::now() < deadline, "the refresher never fetched k2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(remote.stats().failures, 0);

    // Dropping the last handle aborts the refresher: no more requests.
    let clone = remote.clone();
    drop(remote);
    let before = server.hits("/jwks");
    while server.hits("/jwks") == before {
        assert!(
            Instant::now() < deadline,
            "the refresher stopped while a clone exists"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(clone);
    // A request already on the wire may still arrive; nothing after that.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after_drop = server.hits("/jwks");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(server.hits("/jwks"), after_drop, "the refresher stopped");
}
