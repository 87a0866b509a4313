//! `RedisStores::check_token`: the revocation check and the per-subject limit in one script,
//! and `check_request`: the same plus the client's failure-ban status. Equivalence with the
//! separate stores over tables of cases, a revoked token (or a banned client) consuming no
//! rate-limit cell, a limit shared by two instances, a hash-tagged prefix, outages, NOSCRIPT,
//! and the round trips counted by Redis itself.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokenward_core::{StoreErrorKind, StoreId, TokenRef, UnixTime};
use tokenward_ratelimit::{
    BanCheck, BanQuota, Decision, GcraCharge, GcraQuota, LimitKey, RateLimitStore,
};
use tokenward_redis::{RedisConfig, RedisStores, RequestCheck};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use tokenward_testsupport::{ThrowawayRedis, command_calls, free_port, redis_url, unique_prefix};

use crate::common::{
    OUTAGE, bounded_failure, config, delete_under, dump_prefix, info, keys_under, outage_config,
    own_server_stores, raw_connection, set_raw, set_wrong_type, stat,
};

mod ban;
mod faults;

/// 2 per hour, burst 2: nothing replenishes while a test runs (T = 30 min).
const QUOTA: GcraQuota = GcraQuota::per_hour(NonZeroU32::new(2).unwrap());
const IAT_MS: u64 = 1_700_000_000_000;
static LIMIT_KEY: LazyLock<LimitKey<'static>> = LazyLock::new(|| key("subject:u"));

fn key(k: &str) -> LimitKey<'static> {
    LimitKey::new(k.to_owned()).unwrap()
}

/// `cost` (1 or 2) cells of [`QUOTA`].
fn cells(cost: u32) -> &'static GcraCharge {
    static CHARGES: LazyLock<[GcraCharge; 2]> =
        LazyLock::new(|| [QUOTA.charge(1).unwrap(), QUOTA.charge(2).unwrap()]);
    &CHARGES[cost as usize - 1]
}

/// One cell of `limit` per hour.
fn per_hour(limit: u32) -> GcraCharge {
    GcraCharge::single(GcraQuota::per_hour(NonZeroU32::new(limit).unwrap()))
}

async fn stores(test: &str) -> RedisStores {
    raw_connection().await;
    RedisStores::connect(&config(test)).unwrap()
}

/// What a revocation key holds before the check.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Value(&'static str),
    /// A hash: the wrong type.
    Hash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Token,
    Session,
    Subject,
}

/// The rate-limit part of a case: no limit, or the cells used up before, and the cost.
#[derive(Debug, Clone, Copy)]
enum Limit {
    None,
    Used { before: u32, cost: u32 },
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    entries: &'static [(Rule, Entry)],
    /// `(jti, sid, sub)` present?
    claims: (bool, bool, bool),
    iat: Option<u64>,
}

const ALL: (bool, bool, bool) = (true, true, true);

const CASES: &[Case] = &[
    Case {
        name: "active, nothing revoked",
        entries: &[],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "token revoked",
        entries: &[(Rule::Token, Entry::Value("1999999999999"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "session revoked",
        entries: &[(Rule::Session, Entry::Value("1999999999999"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject cutoff after iat",
        entries: &[(Rule::Subject, Entry::Value("1700000000001"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject cutoff at iat",
        entries: &[(Rule::Subject, Entry::Value("1700000000000"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject cutoff before iat",
        entries: &[(Rule::Subject, Entry::Value("1699999999999"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject cutoff, no iat",
        entries: &[(Rule::Subject, Entry::Value("1"))],
        claims: ALL,
        iat: None,
    },
    Case {
        name: "subject cutoff 0, iat 0",
        entries: &[(Rule::Subject, Entry::Value("0"))],
        claims: ALL,
        iat: Some(0),
    },
    Case {
        name: "subject cutoff with leading zeros after iat",
        entries: &[(Rule::Subject, Entry::Value("0001700000000001"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject cutoff with leading zeros before iat",
        entries: &[(Rule::Subject, Entry::Value("0001699999999999"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject cutoff u64::MAX",
        entries: &[(Rule::Subject, Entry::Value("18446744073709551615"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject cutoff far before a huge iat",
        entries: &[(Rule::Subject, Entry::Value("9007199254740993"))],
        claims: ALL,
        iat: Some(9_007_199_254_740_994),
    },
    Case {
        name: "subject cutoff just after a huge iat",
        entries: &[(Rule::Subject, Entry::Value("9007199254740993"))],
        claims: ALL,
        iat: Some(9_007_199_254_740_992),
    },
    Case {
        name: "token and subject: token wins",
        entries: &[
            (Rule::Token, Entry::Value("1999999999999")),
            (Rule::Subject, Entry::Value("1700000000001")),
        ],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "session and subject: session wins",
        entries: &[
            (Rule::Session, Entry::Value("1999999999999")),
            (Rule::Subject, Entry::Value("1700000000001")),
        ],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "subject entry of an unrelated claim set: no sub",
        entries: &[(Rule::Subject, Entry::Value("1700000000001"))],
        claims: (true, true, false),
        iat: Some(IAT_MS),
    },
    Case {
        name: "only a sub",
        entries: &[],
        claims: (false, false, true),
        iat: Some(IAT_MS),
    },
    Case {
        name: "only a jti, revoked",
        entries: &[(Rule::Token, Entry::Value("1999999999999"))],
        claims: (true, false, false),
        iat: None,
    },
    Case {
        name: "no claims at all",
        entries: &[],
        claims: (false, false, false),
        iat: None,
    },
    Case {
        name: "corrupt token entry (word)",
        entries: &[(Rule::Token, Entry::Value("revoked"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "corrupt session entry (empty)",
        entries: &[(Rule::Session, Entry::Value(""))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "corrupt subject entry (negative)",
        entries: &[(Rule::Subject, Entry::Value("-5"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "corrupt subject entry (float)",
        entries: &[(Rule::Subject, Entry::Value("1.5e12"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "corrupt subject entry (trailing space)",
        entries: &[(Rule::Subject, Entry::Value("12 "))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "corrupt subject entry (over u64)",
        entries: &[(Rule::Subject, Entry::Value("18446744073709551616"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "corrupt subject entry (21 digits)",
        entries: &[(Rule::Subject, Entry::Value("100000000000000000000"))],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "corrupt subject not outranked by a revoked token",
        entries: &[
            (Rule::Token, Entry::Value("1999999999999")),
            (Rule::Subject, Entry::Value("x")),
        ],
        claims: ALL,
        iat: Some(IAT_MS),
    },
    Case {
        name: "wrong type at the token key",
        entries: &[(Rule::Token, Entry::Hash)],
        claims: ALL,
        iat: Some(IAT_MS),
    },
];

const LIMITS: &[Limit] = &[
    Limit::None,
    Limit::Used { before: 0, cost: 1 },
    Limit::Used { before: 1, cost: 1 },
    Limit::Used { before: 2, cost: 1 },
    Limit::Used { before: 0, cost: 2 },
    Limit::Used { before: 1, cost: 2 },
];

fn token(case: &Case) -> TokenRef<'static> {
    let (jti, sid, sub) = case.claims;
    TokenRef::from_parts(
        jti.then_some("j"),
        sid.then_some("s"),
        sub.then_some("u"),
        case.iat.map(UnixTime::from_millis),
        UnixTime::from_secs(4_000_000_000),
    )
    .unwrap()
}

/// Writes a case's revocation entries and uses up `before` cells of the limit.
async fn prepare(stores: &RedisStores, case: &Case, limit: Limit) {
    let revocation = stores.revocation();
    for &(rule, entry) in case.entries {
        let key = match rule {
            Rule::Token => revocation.token_key("j"),
            Rule::Session => revocation.session_key("s"),
            Rule::Subject => revocation.subject_key("u"),
        };
        match entry {
            Entry::Value(v) => set_raw(&key, v).await,
            Entry::Hash => set_wrong_type(&key).await,
        }
    }
    if let Limit::Used { before, .. } = limit {
        for _ in 0..before {
            assert!(
                stores
                    .ratelimit()
                    .gcra(&LIMIT_KEY, cells(1))
                    .await
                    .unwrap()
                    .allowed
            );
        }
    }
}

type Outcome = Result<(RevocationStatus, Option<Decision>), StoreErrorKind>;

/// The separate stores: `check`, then `gcra` only for an active token.
async fn separately(stores: &RedisStores, token: &TokenRef<'_>, limit: Limit) -> Outcome {
    let status = stores
        .revocation()
        .check(token)
        .await
        .map_err(|e| e.kind())?;
    match (status, limit) {
        (RevocationStatus::Active, Limit::Used { cost, .. }) => {
            let d = stores
                .ratelimit()
                .gcra(&LIMIT_KEY, cells(cost))
                .await
                .map_err(|e| e.kind())?;
            Ok((status, Some(d)))
        }
        _ => Ok((status, None)),
    }
}

async fn combined(stores: &RedisStores, token: &TokenRef<'_>, limit: Limit) -> Outcome {
    let limit = match limit {
        Limit::None => None,
        Limit::Used { cost, .. } => Some((&*LIMIT_KEY, cells(cost))),
    };
    stores.check_token(token, limit).await.map_err(|e| e.kind())
}

/// Equal, with the decisions' durations (server-clock relative) within a second.
fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Err(a), Err(b)) => a == b,
        (Ok((sa, da)), Ok((sb, db))) => sa == sb && same_decision(da, db),
        _ => false,
    }
}

/// Equal, with the durations (server-clock relative) within a second.
fn same_decision(a: &Option<Decision>, b: &Option<Decision>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let close = |x: Duration, y: Duration| x.abs_diff(y) < Duration::from_secs(1);
            a.allowed == b.allowed
                && a.limit == b.limit
                && a.remaining == b.remaining
                && close(a.reset, b.reset)
                && match (a.retry_after, b.retry_after) {
                    (None, None) => true,
                    (Some(x), Some(y)) => close(x, y),
                    _ => false,
                }
        }
        _ => false,
    }
}

async fn get_raw(key: &str) -> Option<Vec<u8>> {
    let mut conn = raw_connection().await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn check_token_equals_the_separate_stores() {
    let mut seen = BTreeMap::<&str, usize>::new();
    for case in CASES {
        for &limit in LIMITS {
            let a = stores("eq-separate").await;
            let b = stores("eq-combined").await;
            prepare(&a, case, limit).await;
            prepare(&b, case, limit).await;
            let t = token(case);
            let expected = separately(&a, &t, limit).await;
            let gcra_key = b.ratelimit().gcra_key(&LIMIT_KEY);
            let tat_before = get_raw(&gcra_key).await;
            let got = combined(&b, &t, limit).await;
            assert!(
                same(&expected, &got),
                "{} with {limit:?}:\n  separate stores: {expected:?}\n  check_token:     {got:?}",
                case.name
            );
            // Not active (revoked or unreadable): the limit's state is untouched.
            if !matches!(got, Ok((RevocationStatus::Active, _))) {
                assert_eq!(get_raw(&gcra_key).await, tat_before, "{}", case.name);
            }
            let class = match &got {
                Ok((RevocationStatus::Active, Some(d))) if d.allowed => "active, allowed",
                Ok((RevocationStatus::Active, Some(_))) => "active, denied",
                Ok((RevocationStatus::Active, None)) => "active, no limit",
                Ok((RevocationStatus::Revoked(_), _)) => "revoked",
                Err(StoreErrorKind::Corrupt) => "corrupt",
                _ => "other",
            };
            *seen.entry(class).or_default() += 1;
        }
    }
    // The table covers every outcome.
    covers_every_class(
        &seen,
        &[
            "active, allowed",
            "active, denied",
            "active, no limit",
            "revoked",
            "corrupt",
        ],
    );
}

/// Every one of `classes` was the outcome of at least one case in `seen`.
fn covers_every_class(seen: &BTreeMap<&str, usize>, classes: &[&str]) {
    for class in classes {
        assert!(
            seen.get(class).is_some_and(|&n| n > 0),
            "no case is {class}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn statuses_and_decisions_in_detail() {
    let s = stores("detail").await;
    let exp = UnixTime::from_secs(4_000_000_000);
    let t = |jti| {
        TokenRef::from_parts(
            Some(jti),
            Some("s"),
            Some("u"),
            Some(UnixTime::from_millis(IAT_MS)),
            exp,
        )
        .unwrap()
    };
    let limit = Some((&*LIMIT_KEY, cells(1)));
    let (status, d) = s.check_token(&t("a"), limit).await.unwrap();
    let d = d.unwrap();
    assert_eq!(status, RevocationStatus::Active);
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 2, 1));
    let (_, d) = s.check_token(&t("a"), limit).await.unwrap();
    assert_eq!(d.unwrap().remaining, 0);
    let (_, d) = s.check_token(&t("a"), limit).await.unwrap();
    let d = d.unwrap();
    assert!(!d.allowed);
    // The next cell in T = 30 min.
    let retry = d.retry_after.unwrap();
    assert!(
        retry > Duration::from_secs(1790) && retry <= Duration::from_secs(1800),
        "{retry:?}"
    );

    s.revocation()
        .revoke_token(&StoreId::new("b").unwrap(), exp)
        .await
        .unwrap();
    assert_eq!(
        s.check_token(&t("b"), limit).await.unwrap(),
        (RevocationStatus::Revoked(RevokedBy::Token), None)
    );
    assert_eq!(
        s.check_token(&t("a"), None).await.unwrap(),
        (RevocationStatus::Active, None)
    );
    // Invalid input cannot be asked for: an empty or oversized key, a cost above the burst or
    // a zero limit are refused where `LimitKey`, `GcraCharge` and `GcraQuota` are made, and
    // oversized ids where the token's `StoreId`s are read (tokenward_ratelimit's and
    // tokenward_core's tests).
}

#[tokio::test]
async fn a_revoked_token_consumes_no_rate_limit_cell() {
    let s = stores("revoked-no-cell").await;
    let exp = UnixTime::from_secs(4_000_000_000);
    s.revocation()
        .revoke_token(&StoreId::new("stolen").unwrap(), exp)
        .await
        .unwrap();
    let stolen = TokenRef::from_parts(
        Some("stolen"),
        None,
        Some("victim"),
        Some(UnixTime::from_millis(IAT_MS)),
        exp,
    )
    .unwrap();
    let key = &key("subject:victim");
    for _ in 0..50 {
        let got = s.check_token(&stolen, Some((key, cells(1)))).await.unwrap();
        assert_eq!(got, (RevocationStatus::Revoked(RevokedBy::Token), None));
    }
    // Not even a key was written, and the victim's own token still has its whole budget.
    assert_eq!(get_raw(&s.ratelimit().gcra_key(key)).await, None);
    let own = TokenRef {
        jti: Some(StoreId::new("fresh").unwrap()),
        ..stolen.clone()
    };
    let (status, d) = s.check_token(&own, Some((key, cells(1)))).await.unwrap();
    assert_eq!(
        (status, d.unwrap().remaining),
        (RevocationStatus::Active, 1)
    );
    // And a revoked token leaves an existing state byte for byte as it was.
    let before = get_raw(&s.ratelimit().gcra_key(key)).await;
    assert!(before.is_some());
    s.check_token(&stolen, Some((key, cells(1)))).await.unwrap();
    assert_eq!(get_raw(&s.ratelimit().gcra_key(key)).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_exactly() {
    raw_connection().await;
    let config = config("stores-shared").pool_size(4);
    let a = RedisStores::connect(&config).unwrap();
    let b = RedisStores::connect(&config).unwrap();
    // 300 per hour: nothing replenishes (T = 12 s) while the test runs.
    let q = per_hour(300);
    // Revoked tokens hammer the same key in between and must not count.
    a.revocation()
        .revoke_token(
            &StoreId::new("revoked").unwrap(),
            UnixTime::from_secs(4_000_000_000),
        )
        .await
        .unwrap();
    let admitted = Arc::new(AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let stores = if i % 2 == 0 { a.clone() } else { b.clone() };
        let admitted = admitted.clone();
        tasks.spawn(async move {
            let jti = if i % 4 == 3 {
                "revoked".to_owned()
            } else {
                format!("t{i}")
            };
            let token = TokenRef::from_parts(
                Some(&jti),
                Some("s"),
                Some("u"),
                Some(UnixTime::from_millis(IAT_MS)),
                UnixTime::from_secs(4_000_000_000),
            )
            .unwrap();
            for _ in 0..8 {
                let (status, d) = stores
                    .check_token(&token, Some((&LIMIT_KEY, &q)))
                    .await
                    .unwrap();
                if d.is_some_and(|d| d.allowed) {
                    assert_eq!(status, RevocationStatus::Active);
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // 48 active tokens × 8 = 384 attempts for 300 cells.
    assert_eq!(admitted.load(Ordering::Relaxed), 300);
}

#[tokio::test]
async fn a_hash_tagged_prefix_works() {
    raw_connection().await;
    let prefix = format!("{{{}}}:", unique_prefix("tagged"));
    let s = RedisStores::connect(
        &RedisConfig::new(redis_url())
            .key_prefix(&prefix)
            .operation_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let exp = UnixTime::from_secs(4_000_000_000);
    s.revocation()
        .revoke_session(&StoreId::new("{fam}").unwrap(), exp)
        .await
        .unwrap();
    let t = |jti, sid| {
        TokenRef::from_parts(
            Some(jti),
            Some(sid),
            Some("{u}"),
            Some(UnixTime::from_millis(IAT_MS)),
            exp,
        )
        .unwrap()
    };
    let sub = key("{sub}");
    let limit = Some((&sub, cells(1)));
    let (status, d) = s.check_token(&t("a", "other"), limit).await.unwrap();
    assert_eq!(
        (status, d.unwrap().remaining),
        (RevocationStatus::Active, 1)
    );
    assert_eq!(
        s.check_token(&t("a", "{fam}"), limit).await.unwrap(),
        (RevocationStatus::Revoked(RevokedBy::Session), None)
    );
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        assert!(key.starts_with(&prefix), "{key}");
    }
    delete_under(&prefix).await;
}
