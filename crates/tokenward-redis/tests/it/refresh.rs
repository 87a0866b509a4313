//! `RedisRefreshStore` against a real Redis: the conformance suite (through its fixture form:
//! one check that Redis is there, a fresh key prefix per case, the prefix's keys deleted
//! after each case), TTLs on every key, a family's keys in one hash slot, two application
//! instances rotating one token, corrupt family data, families written before `aexp`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokenward_core::conformance::BoxError;
use tokenward_core::{IssuerScope, StoreErrorKind, StoreId, UnixTime};
use tokenward_redis::RedisRefreshStore;
use tokenward_refresh::conformance::{Fixture, RealClock, RefreshEnv};
use tokenward_refresh::{
    FamilyId, MintRequest, MintedToken, RefreshConfig, RefreshEngine, RefreshError, RefreshStore,
    RotationKind,
};
use tokenward_revocation::MemoryRevocationStore;

use crate::common::{RedisProbe, config, delete_under, keys_under, raw_connection, refresh_store};

/// The suite's fixture: a store under a fresh prefix per case, whose keys go after it.
struct RedisFixture {
    prefixes: Mutex<HashMap<&'static str, String>>,
}

impl RedisFixture {
    /// Once per test binary: fails with instructions if no Redis answers.
    async fn setup() -> Result<Self, Infallible> {
        raw_connection().await;
        Ok(RedisFixture {
            prefixes: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait]
impl Fixture<RefreshEnv> for RedisFixture {
    async fn env(&self, case: &'static str) -> Result<RefreshEnv, BoxError> {
        let store = RedisRefreshStore::connect(&config(&format!("rf-{case}")))?;
        let prefix = store.backend().key_prefix().to_owned();
        self.prefixes.lock().unwrap().insert(case, prefix);
        let probe = RedisProbe {
            backend: store.backend().clone(),
        };
        Ok(RefreshEnv::new(
            Arc::new(store),
            Arc::new(RealClock::new()),
            Arc::new(probe),
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        let prefix = self.prefixes.lock().unwrap().remove(case);
        if let Some(prefix) = prefix {
            delete_under(&prefix).await;
        }
        Ok(())
    }
}

/// The whole suite, in a module of its own.
mod conformance {
    tokenward_refresh::refresh_conformance_tests!(
        fixture = super::RedisFixture,
        setup = super::RedisFixture::setup
    );
}

fn sub(s: &str) -> StoreId<'_> {
    StoreId::new(s).unwrap()
}

fn mint(req: MintRequest<'_>) -> Result<MintedToken, Infallible> {
    let token = format!("access.{}.{}", req.sub.as_str(), req.family_id);
    Ok(MintedToken::new(token, req.covered_until))
}

fn engine(store: RedisRefreshStore, revocation: Arc<MemoryRevocationStore>) -> RefreshEngine {
    RefreshEngine::new(
        Arc::new(store),
        revocation,
        IssuerScope::new("https://auth.example.com"),
    )
}

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

/// The hash tag Redis Cluster hashes (the text between the first `{` and the next `}`).
fn hash_tag(key: &str) -> &str {
    let open = key.find('{').expect("every key has a hash tag");
    let close = key[open + 1..].find('}').expect("closed hash tag") + open + 1;
    &key[open + 1..close]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_a_ttl_and_a_family_shares_one_slot() {
    let store = refresh_store("rf-ttl").await;
    let prefix = store.backend().key_prefix().to_owned();
    let revocation = Arc::new(MemoryRevocationStore::new());
    let engine = engine(store.clone(), revocation);
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let mut token = login.refresh_token.expose().to_owned();
    for _ in 0..3 {
        token = engine
            .rotate(&token, None, mint)
            .await
            .unwrap()
            .refresh_token
            .expose()
            .to_owned();
    }
    engine.issue(&sub("bob"), mint).await.unwrap();

    let keys = keys_under(&prefix).await;
    let family = store.family_key(&login.family_id);
    let history = store.history_key(&login.family_id);
    let index = store.subject_key("alice");
    for key in [&family, &history, &index] {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    // 2 families × (record + history of 1 only for alice) + 2 subject indexes.
    assert_eq!(keys.len(), 5, "{keys:?}");

    let mut conn = raw_connection().await;
    let idle = RefreshConfig::DEFAULT_IDLE_TIMEOUT.as_millis() as i64;
    for key in &keys {
        let ttl = pttl(&mut conn, key).await;
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
    for key in [&family, &history] {
        let ttl = pttl(&mut conn, key).await;
        assert!(ttl <= idle && ttl > idle - 60_000, "{key}: {ttl} ms");
    }
    assert_eq!(hash_tag(&family), login.family_id.as_str());
    assert_eq!(hash_tag(&family), hash_tag(&history));
    assert_eq!(hash_tag(&index), "616c696365"); // hex of "alice": its own slot
    delete_under(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_capped_and_dropped_hashes_are_invalid_not_reused() {
    let store = refresh_store("rf-history").await;
    let prefix = store.backend().key_prefix().to_owned();
    let engine = engine(store.clone(), Arc::new(MemoryRevocationStore::new()));
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let cap = tokenward_refresh::MIN_REUSE_HISTORY;
    let mut tokens = vec![login.refresh_token.expose().to_owned()];
    for _ in 0..cap + 6 {
        let last = tokens.last().unwrap().clone();
        let r = engine.rotate(&last, None, mint).await.unwrap();
        assert_eq!(r.kind, RotationKind::Rotated);
        tokens.push(r.refresh_token.expose().to_owned());
    }
    // Current: the last; previous: the one before; history: the `cap` before that.
    let mut conn = raw_connection().await;
    let held: usize = redis::cmd("ZCARD")
        .arg(store.history_key(&login.family_id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held, cap);
    for dropped in &tokens[..5] {
        let r = engine.rotate(dropped, None, mint).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    }
    let r = engine.rotate(&tokens[5], None, mint).await;
    assert!(matches!(r, Err(RefreshError::Reused(_))), "{r:?}");
    delete_under(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_rotating_one_token_share_one_successor() {
    raw_connection().await;
    let config = config("rf-two-instances");
    two_instances_share_one_successor(&config).await;
    delete_under(&config.key_prefix).await;
}

/// Two application servers (separate connections, the same Redis — or Redis Cluster — and
/// prefix) rotate one refresh token 100 times in parallel, split between them: exactly one
/// rotation, one identical successor, which either of them rotates next.
pub async fn two_instances_share_one_successor(config: &tokenward_redis::RedisConfig) {
    let a = RedisRefreshStore::connect(config).unwrap();
    let b = RedisRefreshStore::connect(config).unwrap();
    let revocation = Arc::new(MemoryRevocationStore::new());
    let engines = [
        Arc::new(engine(a, revocation.clone())),
        Arc::new(engine(b, revocation)),
    ];
    let login = engines[0].issue(&sub("alice"), mint).await.unwrap();
    let token = login.refresh_token.expose().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let engine = Arc::clone(&engines[i % 2]);
        let token = token.clone();
        tasks.spawn(async move { engine.rotate(&token, None, mint).await });
    }
    let mut successors = Vec::new();
    let mut rotated = 0;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap().unwrap();
        if r.kind == RotationKind::Rotated {
            rotated += 1;
        }
        successors.push(r.refresh_token.expose().to_owned());
    }
    assert_eq!(rotated, 1);
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), 1, "one identical successor");
    let next = engines[1].rotate(&successors[0], None, mint).await.unwrap();
    assert_eq!(next.kind, RotationKind::Rotated);
}

async fn corrupt_with(test: &str, corrupt: impl AsyncFnOnce(&RedisRefreshStore, &FamilyId)) {
    let store = refresh_store(test).await;
    let revocation = Arc::new(MemoryRevocationStore::new());
    let engine = engine(store.clone(), revocation);
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let a = login.refresh_token.expose().to_owned();
    let b = engine.rotate(&a, None, mint).await.unwrap();
    corrupt(&store, &login.family_id).await;

    for token in [a.as_str(), b.refresh_token.expose()] {
        let r = engine.rotate(token, None, mint).await;
        assert!(
            matches!(&r, Err(RefreshError::Store(e)) if e.kind() == StoreErrorKind::Corrupt),
            "{test}: {r:?}"
        );
    }
    let r = store.get(&login.family_id).await;
    assert!(
        matches!(&r, Err(e) if e.kind() == StoreErrorKind::Corrupt),
        "{r:?}"
    );
    let r = store.revoke(&login.family_id).await;
    assert!(
        matches!(&r, Err(e) if e.kind() == StoreErrorKind::Corrupt),
        "{r:?}"
    );
    let mut conn = raw_connection().await;
    let _: () = redis::cmd("DEL")
        .arg(store.family_key(&login.family_id))
        .arg(store.history_key(&login.family_id))
        .arg(store.subject_key("alice"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn hset(key: String, field: &str, value: &[u8]) {
    let mut conn = raw_connection().await;
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(value)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_family_data_is_corrupt_never_rotated() {
    for (field, value) in [
        ("cur", &b"short"[..]),
        ("prev", b"x"),
        ("last", b"soon"),
        ("rev", b"maybe"),
        ("ikey", b"no response"),
        ("aexp", b"later"),
    ] {
        corrupt_with(
            &format!("rf-corrupt-{field}"),
            async |store: &RedisRefreshStore, id: &FamilyId| {
                hset(store.family_key(id), field, value).await;
            },
        )
        .await;
    }
    corrupt_with(
        "rf-corrupt-type",
        async |store: &RedisRefreshStore, id: &FamilyId| {
            let mut conn = raw_connection().await;
            let key = store.family_key(id);
            let _: () = redis::pipe()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("SET")
                .arg(&key)
                .arg("not a hash")
                .arg("PX")
                .arg(60_000)
                .ignore()
                .query_async(&mut conn)
                .await
                .unwrap();
        },
    )
    .await;
}

/// A family written before the access-token expiry was recorded (no `aexp` field) reads as
/// if its tokens lived until the family's own expiry; the next rotation records one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_without_aexp_reads_as_its_own_expiry() {
    let store = refresh_store("rf-legacy").await;
    let prefix = store.backend().key_prefix().to_owned();
    let engine = engine(store.clone(), Arc::new(MemoryRevocationStore::new()));
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let mut conn = raw_connection().await;
    let _: i64 = redis::cmd("HDEL")
        .arg(store.family_key(&login.family_id))
        .arg("aexp")
        .query_async(&mut conn)
        .await
        .unwrap();
    let info = store.get(&login.family_id).await.unwrap().unwrap();
    assert_eq!(info.access_exp, info.expires_at);
    // A later exp than that is recorded (rounded up to the millisecond).
    let later = info
        .expires_at
        .saturating_add(std::time::Duration::from_nanos(1_500_000));
    let info = store
        .record_access_exp(&login.family_id, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.access_exp,
        UnixTime::from_millis(later.as_millis_ceil())
    );
    delete_under(&prefix).await;
}

/// Issue 17, item 2: one account looping login/logout left every family (with its history
/// and its subject-index entry) for its 7-day idle timeout, so the keys grew without bound.
/// Now a logout leaves a tombstone of a few fields that expires after the grace window plus
/// the margin (90 s by default), no history key and nothing in the subject's index; logins
/// without logout are capped at 50 live families; a family written before the retention
/// was recorded keeps 180 s once revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_logout_loop_leaves_only_short_lived_tombstones() {
    let store = refresh_store("rf-loop").await;
    let prefix = store.backend().key_prefix().to_owned();
    let engine = engine(store.clone(), Arc::new(MemoryRevocationStore::new()));
    let retention = RefreshConfig::new().revoked_retention().as_millis() as i64;
    assert_eq!(retention, 90_000);
    let mut families = Vec::new();
    for _ in 0..200 {
        let login = engine.issue(&sub("mallory"), mint).await.unwrap();
        engine
            .rotate(login.refresh_token.expose(), None, mint)
            .await
            .unwrap();
        assert!(engine.revoke_family(&login.family_id).await.unwrap());
        families.push(login.family_id);
    }
    let keys = keys_under(&prefix).await;
    assert_eq!(
        keys.len(),
        200,
        "one tombstone per family, nothing else: {keys:?}"
    );
    let mut conn = raw_connection().await;
    for id in &families {
        let key = store.family_key(id);
        let ttl = pttl(&mut conn, &key).await;
        assert!(ttl > 0 && ttl <= retention, "{key}: {ttl} ms");
        let fields: Vec<String> = redis::cmd("HKEYS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        for gone in ["cur", "prev", "seal", "rot", "ikey", "iresp"] {
            assert!(!fields.iter().any(|f| f == gone), "{key}: {fields:?}");
        }
    }
    assert!(engine.families(&sub("mallory")).await.unwrap().is_empty());

    for _ in 0..60 {
        engine.issue(&sub("bob"), mint).await.unwrap();
    }
    assert_eq!(engine.families(&sub("bob")).await.unwrap().len(), 50);
    let indexed: usize = redis::cmd("ZCARD")
        .arg(store.subject_key("bob"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(indexed, 50, "the 10 oldest left bob's index");

    let legacy = engine.issue(&sub("carol"), mint).await.unwrap();
    let key = store.family_key(&legacy.family_id);
    let _: i64 = redis::cmd("HDEL")
        .arg(&key)
        .arg("ret")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(engine.revoke_family(&legacy.family_id).await.unwrap());
    let ttl = pttl(&mut conn, &key).await;
    assert!(ttl > 170_000 && ttl <= 180_000, "{key}: {ttl} ms");
    delete_under(&prefix).await;
}
