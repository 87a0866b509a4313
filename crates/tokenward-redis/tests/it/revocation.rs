//! `RedisRevocationStore` against a real Redis: the conformance suite, TTLs on every key, the
//! documented key layout, corrupt data, configuration errors.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{Clock, StoreErrorKind, StoreId, SystemClock, TokenRef, UnixTime};
use tokenward_redis::{RedisConfig, RedisConfigError, RedisRevocationStore};
use tokenward_revocation::conformance::{RealClock, RevocationEnv};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use crate::common::{RedisProbe, keys_under, raw_connection, set_raw, set_wrong_type, store};

async fn make_env() -> RevocationEnv {
    let store = store("conformance").await;
    let probe = RedisProbe {
        backend: store.backend().clone(),
    };
    RevocationEnv::new(Arc::new(store), Arc::new(RealClock::new()), Arc::new(probe))
}

tokenward_revocation::revocation_conformance_tests!(make_env);

fn now() -> UnixTime {
    SystemClock.now()
}

fn token<'a>(jti: Option<&'a str>, sid: Option<&'a str>, sub: Option<&'a str>) -> TokenRef<'a> {
    TokenRef::from_parts(
        jti,
        sid,
        sub,
        Some(now()),
        now().saturating_add(Duration::from_secs(900)),
    )
    .unwrap()
}

#[tokio::test]
async fn every_key_has_a_ttl_and_the_documented_name() {
    let store = store("ttl").await;
    let prefix = store.backend().key_prefix().to_owned();
    let t0 = now();
    let hour = t0.saturating_add(Duration::from_secs(3600));
    store
        .revoke_token(&StoreId::new("j-1").unwrap(), hour)
        .await
        .unwrap();
    store
        .revoke_session(&StoreId::new("s-1").unwrap(), hour)
        .await
        .unwrap();
    store
        .revoke_subject(&StoreId::new("alice").unwrap(), t0, hour)
        .await
        .unwrap();
    store
        .revoke_token(&StoreId::new("{tag}").unwrap(), hour)
        .await
        .unwrap();
    // An absurd `until` (attacker-chosen exp) is clamped, not an error, and still gets a TTL.
    store
        .revoke_token(&StoreId::new("far").unwrap(), UnixTime::from_secs(u64::MAX))
        .await
        .unwrap();
    // Re-revoking with an earlier until must not shorten the TTL.
    store
        .revoke_session(
            &StoreId::new("s-1").unwrap(),
            t0.saturating_add(Duration::from_secs(5)),
        )
        .await
        .unwrap();

    let keys = keys_under(&prefix).await;
    let expected = [
        format!("{prefix}rv:j:far"),
        format!("{prefix}rv:j:j-1"),
        format!("{prefix}rv:jx:7b7461677d"),
        format!("{prefix}rv:s:s-1"),
        format!("{prefix}rv:u:alice"),
    ];
    assert_eq!(keys, expected);

    let mut conn = raw_connection().await;
    for key in &keys {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 0, "{key} has no TTL ({pttl})");
        if !key.ends_with(":far") {
            assert!(
                (3_500_000..=3_600_000).contains(&pttl),
                "{key}: TTL {pttl} ms should be about an hour"
            );
        }
        let value: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            value.bytes().all(|b| b.is_ascii_digit()),
            "{key} = {value:?}"
        );
    }
    let cutoff: u64 = redis::cmd("GET")
        .arg(format!("{prefix}rv:u:alice"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // Stored rounded up to the millisecond: never a cutoff earlier than the one given.
    assert_eq!(cutoff, t0.as_millis_ceil());
    assert_eq!(store.token_key("j-1"), expected[1]);
    assert_eq!(store.session_key("s-1"), expected[3]);
    assert_eq!(store.subject_key("alice"), expected[4]);
}

#[tokio::test]
async fn past_until_writes_nothing() {
    let store = store("past").await;
    let prefix = store.backend().key_prefix().to_owned();
    let past = now().saturating_sub(Duration::from_secs(1));
    store
        .revoke_token(&StoreId::new("j").unwrap(), past)
        .await
        .unwrap();
    store
        .revoke_session(&StoreId::new("s").unwrap(), UnixTime::EPOCH)
        .await
        .unwrap();
    store
        .revoke_subject(&StoreId::new("u").unwrap(), now(), past)
        .await
        .unwrap();
    assert!(keys_under(&prefix).await.is_empty());
}

#[tokio::test]
async fn corrupt_entries_are_errors_never_active() {
    let store = store("corrupt").await;
    for (i, garbage) in ["revoked", "", "-5", "1.5e12", "12 "]
        .into_iter()
        .enumerate()
    {
        let (j, s, u) = (format!("j{i}"), format!("s{i}"), format!("u{i}"));
        set_raw(&store.token_key(&j), garbage).await;
        set_raw(&store.session_key(&s), garbage).await;
        set_raw(&store.subject_key(&u), garbage).await;
        for t in [
            token(Some(&j), None, None),
            token(None, Some(&s), None),
            token(None, None, Some(&u)),
            // Garbage is not outranked by another rule into a verdict.
            token(Some("fine"), Some("fine"), Some(&u)),
        ] {
            let got = store.check(&t).await;
            assert_eq!(
                got.as_ref().map_err(|e| e.kind()),
                Err(StoreErrorKind::Corrupt),
                "{garbage:?} in {t:?}: {got:?}"
            );
        }
    }

    // A key of the wrong type, read by check and written by a revoke.
    let key = store.token_key("hash");
    set_wrong_type(&key).await;
    let got = store.check(&token(Some("hash"), None, None)).await;
    assert_eq!(got.map_err(|e| e.kind()), Err(StoreErrorKind::Corrupt));
    let got = store
        .revoke_token(
            &StoreId::new("hash").unwrap(),
            now().saturating_add(Duration::from_secs(60)),
        )
        .await;
    assert_eq!(got.map_err(|e| e.kind()), Err(StoreErrorKind::Corrupt));

    // A revoke overwrites garbage with a valid entry (revoking must not be blocked by it).
    store
        .revoke_token(
            &StoreId::new("j0").unwrap(),
            now().saturating_add(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(
        store.check(&token(Some("j0"), None, None)).await.unwrap(),
        RevocationStatus::Revoked(RevokedBy::Token)
    );
}

#[tokio::test]
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let a = store("prefix-a").await;
    let b = store("prefix-b").await;
    let until = now().saturating_add(Duration::from_secs(60));
    a.revoke_token(&StoreId::new("shared").unwrap(), until)
        .await
        .unwrap();
    let t = token(Some("shared"), None, None);
    assert!(a.check(&t).await.unwrap().is_revoked());
    assert_eq!(b.check(&t).await.unwrap(), RevocationStatus::Active);
}

#[tokio::test]
async fn script_is_reloaded_after_script_flush() {
    // SCRIPT FLUSH affects only the script cache (what a Redis restart or failover does to it).
    let store = store("noscript").await;
    let until = now().saturating_add(Duration::from_secs(60));
    store
        .revoke_token(&StoreId::new("before").unwrap(), until)
        .await
        .unwrap();
    let mut conn = raw_connection().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    store
        .revoke_token(&StoreId::new("after").unwrap(), until)
        .await
        .unwrap();
    assert!(
        store
            .check(&token(Some("after"), None, None))
            .await
            .unwrap()
            .is_revoked()
    );
}

#[test]
fn configuration_errors_never_show_the_password() {
    for url in [
        "http://:hunter2@example.com",
        "redis://:hunter2@",
        "not a url hunter2",
    ] {
        let err = RedisRevocationStore::connect(&RedisConfig::new(url)).unwrap_err();
        assert!(
            matches!(err, RedisConfigError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let zero = RedisConfig::default().operation_timeout(Duration::ZERO);
    assert!(matches!(
        RedisRevocationStore::connect(&zero),
        Err(RedisConfigError::Setting(_))
    ));
    let empty = RedisConfig::default().pool_size(0);
    assert!(matches!(
        RedisRevocationStore::connect(&empty),
        Err(RedisConfigError::Setting(_))
    ));
    // Debug output of a store does not leak the password either.
    let store =
        RedisRevocationStore::connect(&RedisConfig::new("redis://:hunter2@127.0.0.1:1")).unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
}
