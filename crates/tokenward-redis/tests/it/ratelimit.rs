//! `RedisRateLimitStore` against a real Redis: the conformance suite, TTLs on every key, the
//! documented key layout, two application instances sharing one limit, corrupt state.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokenward_core::StoreErrorKind;
use tokenward_ratelimit::conformance::{RateLimitEnv, RealClock};
use tokenward_ratelimit::{BanQuota, GcraCharge, GcraQuota, LimitKey, RateLimitStore};
use tokenward_redis::{RedisConfig, RedisRateLimitStore};
use tokenward_testsupport::{redis_url, unique_prefix};

use crate::common::{
    RedisProbe, config, keys_under, ratelimit_store, raw_connection, set_raw, set_wrong_type,
};

async fn make_env() -> RateLimitEnv {
    let store = ratelimit_store("rl-conformance").await;
    let probe = RedisProbe {
        backend: store.backend().clone(),
    };
    RateLimitEnv::new(Arc::new(store), Arc::new(RealClock::new()), Arc::new(probe))
}

/// The whole suite, in a module of its own (its case names overlap this file's tests).
mod conformance {
    tokenward_ratelimit::ratelimit_conformance_tests!(super::make_env);
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// One cell of `limit` per `period`, burst `burst`.
fn gcra(limit: u32, period: Duration, burst: u32) -> GcraCharge {
    GcraCharge::single(
        GcraQuota::new(nz(limit), period)
            .and_then(|q| q.with_burst(nz(burst)))
            .unwrap(),
    )
}

fn ban(maxretry: u32, findtime: Duration, bantime: Duration) -> BanQuota {
    BanQuota::new(nz(maxretry), findtime, bantime).unwrap()
}

fn key(k: &str) -> LimitKey<'static> {
    LimitKey::new(k.to_owned()).unwrap()
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
async fn every_key_has_a_ttl_and_the_documented_name() {
    let store = ratelimit_store("rl-ttl").await;
    let prefix = store.backend().key_prefix().to_owned();
    let q = gcra(300, Duration::from_secs(60), 300);
    let b = ban(2, Duration::from_secs(60), Duration::from_secs(3600));
    store.gcra(&key("sub:alice"), &q).await.unwrap();
    store
        .gcra(&key("{tag}"), &q.quota().charge(7).unwrap())
        .await
        .unwrap();
    store.record_failure(&key("ip:10.0.0.1"), &b).await.unwrap();
    store.record_failure(&key("ip:10.0.0.2"), &b).await.unwrap();
    store.record_failure(&key("ip:10.0.0.2"), &b).await.unwrap();

    let keys = keys_under(&prefix).await;
    let expected = [
        format!("{prefix}rl:x:{{7b7461677d}}:g"),
        format!("{prefix}rl:{{ip:10.0.0.1}}:f"),
        format!("{prefix}rl:{{ip:10.0.0.2}}:b"),
        format!("{prefix}rl:{{sub:alice}}:g"),
    ];
    assert_eq!(keys, expected);
    assert_eq!(store.gcra_key(&key("sub:alice")), expected[3]);
    assert_eq!(store.failures_key(&key("ip:10.0.0.1")), expected[1]);
    assert_eq!(store.ban_key(&key("ip:10.0.0.2")), expected[2]);

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
                if store.gcra(&key("subject"), &q).await.unwrap().allowed {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 300);
    assert!(!a.gcra(&key("subject"), &q).await.unwrap().allowed);
    assert!(!b.gcra(&key("subject"), &q).await.unwrap().allowed);

    // Failure bans are shared too: 2 + 1 failures from two instances ban the key on both.
    let bq = ban(3, Duration::from_secs(60), Duration::from_secs(60));
    a.record_failure(&key("ip"), &bq).await.unwrap();
    a.record_failure(&key("ip"), &bq).await.unwrap();
    assert!(!b.record_failure(&key("ip"), &bq).await.unwrap().allowed);
    assert!(!a.ban_status(&key("ip"), &bq).await.unwrap().allowed);
    b.lift_ban(&key("ip")).await.unwrap();
    assert!(a.ban_status(&key("ip"), &bq).await.unwrap().allowed);
}

#[tokio::test]
async fn corrupt_state_is_an_error() {
    let store = ratelimit_store("rl-corrupt").await;
    let q = gcra(5, Duration::from_secs(1), 5);
    let b = ban(3, Duration::from_secs(1), Duration::from_secs(1));
    for (i, garbage) in ["x", "", "-5", "1.5e12"].into_iter().enumerate() {
        let k = key(&format!("k{i}"));
        set_raw(&store.gcra_key(&k), garbage).await;
        set_raw(&store.failures_key(&k), garbage).await;
        let got = store.gcra(&k, &q).await;
        assert_eq!(
            got.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Corrupt)
        );
        let got = store.record_failure(&k, &b).await;
        assert_eq!(
            got.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Corrupt)
        );
        let got = store.ban_status(&k, &b).await;
        assert_eq!(
            got.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Corrupt)
        );
        // An operator can always clear it.
        store.lift_ban(&k).await.unwrap();
        assert!(store.ban_status(&k, &b).await.unwrap().allowed);
    }
    // A key of the wrong type.
    let hash_key = store.gcra_key(&key("hash"));
    set_wrong_type(&hash_key).await;
    let got = store.gcra(&key("hash"), &q).await;
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
    store.gcra(&key("k"), &q).await.unwrap();
    store.record_failure(&key("k"), &b).await.unwrap();
    store.ban_status(&key("k"), &b).await.unwrap();
    let mut conn = raw_connection().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.gcra(&key("k"), &q).await.unwrap().remaining, 3);
    assert_eq!(
        store.record_failure(&key("k"), &b).await.unwrap().remaining,
        1
    );
    assert_eq!(store.ban_status(&key("k"), &b).await.unwrap().remaining, 1);
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
    assert!(a.gcra(&key("k"), &q).await.unwrap().allowed);
    assert!(!a.gcra(&key("k"), &q).await.unwrap().allowed);
    assert!(b.gcra(&key("k"), &q).await.unwrap().allowed);
}
