//! `RedisRateLimitStore` against a real Redis: the conformance suite, TTLs on every key, the
//! documented key layout, two application instances sharing one limit, corrupt state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokenward_core::StoreErrorKind;
use tokenward_ratelimit::conformance::{RealClock, TestClock};
use tokenward_ratelimit::{BanQuota, GcraQuota, RateLimitStore};
use tokenward_redis::{RedisConfig, RedisRateLimitStore};
use tokenward_testsupport::{redis_url, unique_prefix};

use crate::common::{config, keys_under, ratelimit_store, raw_connection, set_raw, set_wrong_type};

async fn make_env() -> (Arc<dyn RateLimitStore>, Arc<dyn TestClock>) {
    (
        Arc::new(ratelimit_store("rl-conformance").await),
        Arc::new(RealClock::new()),
    )
}

/// The whole suite, in a module of its own (its case names overlap this file's tests).
mod conformance {
    tokenward_ratelimit::ratelimit_conformance_tests!(super::make_env);
}

fn gcra(limit: u32, period: Duration, burst: u32) -> GcraQuota {
    GcraQuota {
        limit,
        period,
        burst,
    }
}

fn ban(maxretry: u32, findtime: Duration, bantime: Duration) -> BanQuota {
    BanQuota {
        maxretry,
        findtime,
        bantime,
    }
}

async fn pttl(key: &str) -> i64 {
    let mut conn = raw_connection().await;
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn gcra_decisions() {
    let store = ratelimit_store("rl-gcra").await;
    // 5 per second, burst 5: T = 200 ms.
    let q = gcra(5, Duration::from_secs(1), 5);
    for expected_remaining in (0..5).rev() {
        let d = store.gcra("k", &q, 1).await.unwrap();
        assert!(d.allowed, "{d:?}");
        assert_eq!(
            (d.limit, d.remaining, d.retry_after),
            (5, expected_remaining, None)
        );
        assert!(d.reset <= Duration::from_secs(1), "{d:?}");
    }
    let d = store.gcra("k", &q, 1).await.unwrap();
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.remaining, 0);
    let retry = d.retry_after.unwrap();
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(200),
        "{d:?}"
    );
    assert!(d.reset > Duration::from_millis(800) && d.reset <= Duration::from_secs(1));

    // After retry_after, exactly one more is admitted.
    tokio::time::sleep(retry + Duration::from_millis(5)).await;
    assert!(store.gcra("k", &q, 1).await.unwrap().allowed);
    assert!(!store.gcra("k", &q, 1).await.unwrap().allowed);

    // Costs: 2 + 3 fill a fresh burst of 5; more than the burst is never admissible.
    let d = store.gcra("c", &q, 2).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 3));
    let d = store.gcra("c", &q, 3).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0));
    // A denied check consumes nothing.
    let d = store.gcra("c", &q, 1).await.unwrap();
    assert!(!d.allowed, "{d:?}");
    tokio::time::sleep(d.retry_after.unwrap() + Duration::from_millis(5)).await;
    assert!(store.gcra("c", &q, 1).await.unwrap().allowed);

    // Keys are independent.
    assert!(store.gcra("other", &q, 1).await.unwrap().allowed);
}

#[tokio::test]
async fn invalid_requests_are_rejected() {
    let store = ratelimit_store("rl-invalid").await;
    let q = gcra(5, Duration::from_secs(1), 5);
    let b = ban(3, Duration::from_secs(1), Duration::from_secs(1));
    fn kind<T: std::fmt::Debug>(r: Result<T, tokenward_core::StoreError>) -> StoreErrorKind {
        r.unwrap_err().kind()
    }
    assert_eq!(
        kind(store.gcra("", &q, 1).await),
        StoreErrorKind::InvalidInput
    );
    assert_eq!(
        kind(store.gcra("k", &q, 0).await),
        StoreErrorKind::InvalidInput
    );
    // More than the burst could never be admitted.
    assert_eq!(
        kind(store.gcra("k", &q, 6).await),
        StoreErrorKind::InvalidInput
    );
    let long = "k".repeat(1025);
    assert_eq!(
        kind(store.gcra(&long, &q, 1).await),
        StoreErrorKind::InvalidInput
    );
    for bad in [
        gcra(0, Duration::from_secs(1), 1),
        gcra(1, Duration::ZERO, 1),
        gcra(1, Duration::from_secs(1), 0),
    ] {
        assert_eq!(
            kind(store.gcra("k", &bad, 1).await),
            StoreErrorKind::InvalidInput
        );
    }
    assert_eq!(
        kind(store.record_failure("", &b).await),
        StoreErrorKind::InvalidInput
    );
    assert_eq!(
        kind(store.ban_status("", &b).await),
        StoreErrorKind::InvalidInput
    );
    assert_eq!(kind(store.lift_ban("").await), StoreErrorKind::InvalidInput);
    let zero = ban(0, Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(
        kind(store.record_failure("k", &zero).await),
        StoreErrorKind::InvalidInput
    );
}

#[tokio::test]
async fn ban_lifecycle() {
    let store = ratelimit_store("rl-ban").await;
    let q = ban(3, Duration::from_secs(10), Duration::from_millis(600));
    let d = store.ban_status("ip", &q).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.retry_after), (true, 3, None));
    for remaining in [2, 1] {
        let d = store.record_failure("ip", &q).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, remaining), "{d:?}");
        assert!(d.reset <= Duration::from_secs(10) && d.reset > Duration::from_secs(9));
    }
    let d = store.record_failure("ip", &q).await.unwrap();
    assert!(!d.allowed, "{d:?}");
    assert!(d.retry_after.unwrap() <= Duration::from_millis(600));
    let d = store.ban_status("ip", &q).await.unwrap();
    assert!(!d.allowed, "{d:?}");
    // The ban outlasts nothing it should not: other keys are untouched.
    assert!(store.ban_status("ip2", &q).await.unwrap().allowed);

    // Failures while banned neither count nor extend the ban.
    let d = store.record_failure("ip", &q).await.unwrap();
    assert!(!d.allowed && d.retry_after.unwrap() <= Duration::from_millis(600));

    // The ban ends on its own after bantime (well inside findtime); counting starts afresh.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let d = store.ban_status("ip", &q).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 3), "{d:?}");

    // An operator lifts a ban, and the failures counted go with it.
    for _ in 0..3 {
        store.record_failure("ip", &q).await.unwrap();
    }
    assert!(!store.ban_status("ip", &q).await.unwrap().allowed);
    store.lift_ban("ip").await.unwrap();
    let d = store.ban_status("ip", &q).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 3));
    store.record_failure("ip", &q).await.unwrap();
    store.lift_ban("ip").await.unwrap();
    assert_eq!(store.ban_status("ip", &q).await.unwrap().remaining, 3);
    store.lift_ban("never-seen").await.unwrap();
}

#[tokio::test]
async fn failures_count_in_a_sliding_window() {
    let store = ratelimit_store("rl-findtime").await;
    let q = ban(3, Duration::from_millis(800), Duration::from_secs(60));
    assert!(store.record_failure("ip", &q).await.unwrap().allowed); // t = 0
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = store.record_failure("ip", &q).await.unwrap(); // t = 500
    assert_eq!((d.allowed, d.remaining), (true, 1), "{d:?}");
    assert!(
        d.reset <= Duration::from_millis(300),
        "oldest leaves at 800: {d:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // t = 900: the first failure has left the window, the second still counts.
    let d = store.ban_status("ip", &q).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 2), "{d:?}");
    let d = store.record_failure("ip", &q).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 1), "{d:?}");
    // A fixed window starting at t = 0 would have forgotten both by now; this one bans.
    let d = store.record_failure("ip", &q).await.unwrap();
    assert!(!d.allowed, "{d:?}");
}

#[tokio::test]
async fn every_key_has_a_ttl_and_the_documented_name() {
    let store = ratelimit_store("rl-ttl").await;
    let prefix = store.backend().key_prefix().to_owned();
    let q = gcra(300, Duration::from_secs(60), 300);
    let b = ban(2, Duration::from_secs(60), Duration::from_secs(3600));
    store.gcra("sub:alice", &q, 1).await.unwrap();
    store.gcra("{tag}", &q, 7).await.unwrap();
    store.record_failure("ip:10.0.0.1", &b).await.unwrap();
    store.record_failure("ip:10.0.0.2", &b).await.unwrap();
    store.record_failure("ip:10.0.0.2", &b).await.unwrap();

    let keys = keys_under(&prefix).await;
    let expected = [
        format!("{prefix}rl:x:{{7b7461677d}}:g"),
        format!("{prefix}rl:{{ip:10.0.0.1}}:f"),
        format!("{prefix}rl:{{ip:10.0.0.2}}:b"),
        format!("{prefix}rl:{{sub:alice}}:g"),
    ];
    assert_eq!(keys, expected);
    assert_eq!(store.gcra_key("sub:alice"), expected[3]);
    assert_eq!(store.failures_key("ip:10.0.0.1"), expected[1]);
    assert_eq!(store.ban_key("ip:10.0.0.2"), expected[2]);

    // GCRA keys live until the TAT falls back to now: one cell is 200 ms, seven are 1.4 s.
    let ttls = [(0, 1_400), (1, 60_000), (2, 3_600_000), (3, 200)];
    for (i, max) in ttls {
        let ttl = pttl(&keys[i]).await;
        assert!(
            ttl > 0 && ttl <= max,
            "{}: TTL {ttl} ms, expected (0, {max}]",
            keys[i]
        );
        assert!(
            ttl > max - 1_000,
            "{}: TTL {ttl} ms, expected about {max}",
            keys[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_exactly() {
    // Two app servers: separate pools, same Redis and prefix.
    raw_connection().await;
    let config = config("rl-shared").pool_size(4);
    let a = RedisRateLimitStore::connect(&config).unwrap();
    let b = RedisRateLimitStore::connect(&config).unwrap();
    // 300 per hour: nothing replenishes (T = 12 s) while the test runs.
    let q = gcra(300, Duration::from_secs(3600), 300);
    let admitted = Arc::new(AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let admitted = admitted.clone();
        tasks.spawn(async move {
            for _ in 0..8 {
                if store.gcra("subject", &q, 1).await.unwrap().allowed {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 300);
    assert!(!a.gcra("subject", &q, 1).await.unwrap().allowed);
    assert!(!b.gcra("subject", &q, 1).await.unwrap().allowed);

    // Failure bans are shared too: 2 + 1 failures from two instances ban the key on both.
    let bq = ban(3, Duration::from_secs(60), Duration::from_secs(60));
    a.record_failure("ip", &bq).await.unwrap();
    a.record_failure("ip", &bq).await.unwrap();
    assert!(!b.record_failure("ip", &bq).await.unwrap().allowed);
    assert!(!a.ban_status("ip", &bq).await.unwrap().allowed);
    b.lift_ban("ip").await.unwrap();
    assert!(a.ban_status("ip", &bq).await.unwrap().allowed);
}

#[tokio::test]
async fn corrupt_state_is_an_error() {
    let store = ratelimit_store("rl-corrupt").await;
    let q = gcra(5, Duration::from_secs(1), 5);
    let b = ban(3, Duration::from_secs(1), Duration::from_secs(1));
    for (i, garbage) in ["x", "", "-5", "1.5e12"].into_iter().enumerate() {
        let key = format!("k{i}");
        set_raw(&store.gcra_key(&key), garbage).await;
        set_raw(&store.failures_key(&key), garbage).await;
        let got = store.gcra(&key, &q, 1).await;
        assert_eq!(
            got.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Corrupt)
        );
        let got = store.record_failure(&key, &b).await;
        assert_eq!(
            got.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Corrupt)
        );
        let got = store.ban_status(&key, &b).await;
        assert_eq!(
            got.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Corrupt)
        );
        // An operator can always clear it.
        store.lift_ban(&key).await.unwrap();
        assert!(store.ban_status(&key, &b).await.unwrap().allowed);
    }
    // A key of the wrong type.
    let key = store.gcra_key("hash");
    set_wrong_type(&key).await;
    let got = store.gcra("hash", &q, 1).await;
    assert_eq!(
        got.map_err(|e| e.kind()).err(),
        Some(StoreErrorKind::Corrupt)
    );
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let store = ratelimit_store("rl-noscript").await;
    let q = gcra(5, Duration::from_secs(1), 5);
    let b = ban(3, Duration::from_secs(1), Duration::from_secs(1));
    store.gcra("k", &q, 1).await.unwrap();
    store.record_failure("k", &b).await.unwrap();
    store.ban_status("k", &b).await.unwrap();
    let mut conn = raw_connection().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.gcra("k", &q, 1).await.unwrap().remaining, 3);
    assert_eq!(store.record_failure("k", &b).await.unwrap().remaining, 1);
    assert_eq!(store.ban_status("k", &b).await.unwrap().remaining, 1);
}

#[tokio::test]
async fn works_behind_arc_dyn_and_prefixes_separate_stores() {
    let a: Arc<dyn RateLimitStore> = Arc::new(ratelimit_store("rl-dyn-a").await);
    let b: Arc<dyn RateLimitStore> = Arc::new(
        RedisRateLimitStore::connect(
            &RedisConfig::new(redis_url()).key_prefix(unique_prefix("rl-dyn-b")),
        )
        .unwrap(),
    );
    let q = gcra(1, Duration::from_secs(60), 1);
    assert!(a.gcra("k", &q, 1).await.unwrap().allowed);
    assert!(!a.gcra("k", &q, 1).await.unwrap().allowed);
    assert!(b.gcra("k", &q, 1).await.unwrap().allowed);
}
