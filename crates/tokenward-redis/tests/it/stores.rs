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
use tokenward_ratelimit::{BanQuota, Decision, GcraCharge, GcraQuota, LimitKey, RateLimitStore};
use tokenward_redis::{RedisConfig, RedisStores, RequestCheck};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use tokenward_testsupport::{ThrowawayRedis, command_calls, free_port, redis_url, unique_prefix};

use crate::common::{
    OUTAGE, bounded_failure, config, delete_under, dump_prefix, info, keys_under, outage_config,
    own_server_stores, raw_connection, set_raw, set_wrong_type, stat,
};

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

fn stores_at(url: &str) -> RedisStores {
    RedisStores::connect(&outage_config("stores-outage", url)).unwrap()
}

fn any_token() -> TokenRef<'static> {
    TokenRef::from_parts(
        Some("j"),
        Some("s"),
        Some("u"),
        Some(UnixTime::from_millis(IAT_MS)),
        UnixTime::from_secs(4_000_000_000),
    )
    .unwrap()
}

async fn check_fails(s: &RedisStores, kinds: &[StoreErrorKind], what: &str) {
    for limit in [None, Some((&*LIMIT_KEY, cells(1)))] {
        bounded_failure(
            &format!("{what}, limit {limit:?}"),
            kinds,
            s.check_token(&any_token(), limit),
        )
        .await;
        bounded_failure(
            &format!("{what}, check_request with a ban, limit {limit:?}"),
            kinds,
            s.check_request(&any_token(), limit, Some((&*BAN_KEY, &*BAN))),
        )
        .await;
    }
    // Only a ban (a token without ids): still a round trip, still bounded.
    let no_ids = TokenRef {
        jti: None,
        sid: None,
        sub: None,
        ..any_token()
    };
    bounded_failure(
        &format!("{what}, check_request with only a ban"),
        kinds,
        s.check_request(&no_ids, None, Some((&*BAN_KEY, &*BAN))),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_fail_within_the_timeout_and_recover() {
    let mut server = ThrowawayRedis::start();
    let s = stores_at(&server.url());
    let (status, d) = s
        .check_token(&any_token(), Some((&*LIMIT_KEY, cells(1))))
        .await
        .unwrap();
    assert_eq!(
        (status, d.unwrap().allowed),
        (RevocationStatus::Active, true)
    );

    server.kill();
    for round in 0..3 {
        check_fails(&s, OUTAGE, &format!("killed, round {round}")).await;
    }
    server.restart();
    let (status, d) = s
        .check_token(&any_token(), Some((&*LIMIT_KEY, cells(1))))
        .await
        .unwrap();
    // No persistence: the state is gone, the budget is whole again.
    assert_eq!(
        (status, d.unwrap().remaining),
        (RevocationStatus::Active, 1)
    );

    let check = s
        .check_request(
            &any_token(),
            Some((&*LIMIT_KEY, cells(1))),
            Some((&*BAN_KEY, &*BAN)),
        )
        .await
        .unwrap();
    assert_eq!(check.revocation, RevocationStatus::Active);
    assert_eq!(check.ban.map(|b| (b.allowed, b.remaining)), Some((true, 3)));
    assert_eq!(check.limit.map(|d| d.remaining), Some(0));

    // Nothing listening at all.
    let nobody = stores_at(&format!("redis://127.0.0.1:{}", free_port()));
    check_fails(&nobody, &[StoreErrorKind::Unavailable], "nothing listening").await;
    // Nothing to ask Redis: answered without a round trip, even with nobody there.
    let no_ids = TokenRef {
        jti: None,
        sid: None,
        sub: None,
        ..any_token()
    };
    let check = nobody.check_request(&no_ids, None, None).await.unwrap();
    assert_eq!(
        (check.ban, check.revocation, check.limit),
        (None, RevocationStatus::Active, None)
    );
}

/// What a server of the test's own processed between the `INFO`s `before` and `after`, in
/// which the client sent `n` calls of `what` (and the one `INFO` of `after`). Checks that each
/// call was one `EVALSHA` and nothing else (no `EVAL`, `SCRIPT`, `PING`, handshake), that no
/// connection was opened, and that the commands `internal` the scripts ran are, with the
/// client's `n + 1`, everything the server processed. Returns the calls of each command.
fn one_evalsha_per_call(
    what: &str,
    before: &redis::InfoDict,
    after: &redis::InfoDict,
    n: u64,
    internal: &[&str],
) -> impl Fn(&str) -> u64 + use<> {
    let (before_calls, after_calls) = (command_calls(before), command_calls(after));
    let delta = move |c: &str| {
        after_calls.get(c).copied().unwrap_or(0) - before_calls.get(c).copied().unwrap_or(0)
    };
    assert_eq!(delta("evalsha"), n);
    assert_eq!(delta("info"), 1);
    for quiet in [
        "eval", "script", "ping", "hello", "client", "select", "auth",
    ] {
        assert_eq!(delta(quiet), 0, "{quiet}");
    }
    let inside = internal.iter().map(|c| delta(c)).sum::<u64>();
    let processed =
        stat(after, "total_commands_processed") - stat(before, "total_commands_processed");
    assert_eq!(processed, n + 1 + inside, "commands not accounted for");
    assert_eq!(
        stat(after, "total_connections_received"),
        stat(before, "total_connections_received"),
        "reconnects"
    );
    eprintln!(
        "{n} {what}: {} EVALSHA, {processed} commands processed in all ({inside} inside the \
         scripts)",
        delta("evalsha")
    );
    delta
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_evalsha_per_check_counted_by_redis() {
    let server = ThrowawayRedis::start();
    let (s, mut conn) = own_server_stores(&server, "rt:", 2).await;
    let exp = UnixTime::from_secs(4_000_000_000);
    s.revocation()
        .revoke_token(&StoreId::new("revoked").unwrap(), exp)
        .await
        .unwrap();
    let token = |jti| {
        TokenRef::from_parts(
            Some(jti),
            Some("s"),
            Some("u"),
            Some(UnixTime::from_millis(IAT_MS)),
            exp,
        )
        .unwrap()
    };
    let q = GcraCharge::single(GcraQuota::per_second(NonZeroU32::new(1_000_000).unwrap()));
    let limit = Some((&*LIMIT_KEY, &q));
    // Warm up: every connection open, the script loaded.
    for _ in 0..8 {
        s.check_token(&token("active"), limit).await.unwrap();
    }
    let before = info(&mut conn).await;

    const N: u64 = 60;
    let (mut active, mut revoked, mut unlimited) = (0, 0, 0);
    for i in 0..N {
        match i % 3 {
            0 => {
                let (st, d) = s.check_token(&token("active"), limit).await.unwrap();
                assert!(st == RevocationStatus::Active && d.unwrap().allowed);
                active += 1;
            }
            1 => {
                let (st, d) = s.check_token(&token("revoked"), limit).await.unwrap();
                assert!(st.is_revoked() && d.is_none());
                revoked += 1;
            }
            _ => {
                let (st, d) = s.check_token(&token("active"), None).await.unwrap();
                assert!(st == RevocationStatus::Active && d.is_none());
                unlimited += 1;
            }
        }
    }
    let after = info(&mut conn).await;
    let delta = one_evalsha_per_call("checks", &before, &after, N, &["get", "time", "set"]);
    // Inside the scripts: 3 GETs of revocation keys per check, plus TIME, GET and SET of
    // the GCRA step for an active token with a limit (none for a revoked one).
    assert_eq!(delta("get"), 3 * N + active);
    assert_eq!(delta("time"), active);
    assert_eq!(delta("set"), active);
    assert_eq!(revoked + unlimited + active, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_is_reloaded_after_script_flush() {
    let server = ThrowawayRedis::start();
    let (s, mut conn) =
        own_server_stores(&server, "noscript:", RedisConfig::DEFAULT_POOL_SIZE).await;
    let limit = Some((&*LIMIT_KEY, cells(1)));
    let (_, d) = s.check_token(&any_token(), limit).await.unwrap();
    assert_eq!(d.unwrap().remaining, 1);
    assert_eq!(cached_scripts(&mut conn).await, 1);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cached_scripts(&mut conn).await, 0);
    let (status, d) = s.check_token(&any_token(), limit).await.unwrap();
    assert_eq!(
        (status, d.unwrap().remaining),
        (RevocationStatus::Active, 0)
    );
    // The one script is cached again (SCRIPT FLUSH emptied the cache).
    assert_eq!(cached_scripts(&mut conn).await, 1);
}

async fn cached_scripts(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    stat(&info(conn).await, "number_of_cached_scripts")
}

// ---- check_request: the client's ban status too -------------------------------------------

/// 3 failures within an hour ban for an hour: nothing expires while a test runs.
static BAN: LazyLock<BanQuota> = LazyLock::new(|| {
    BanQuota::new(
        NonZeroU32::new(MAXRETRY).unwrap(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .unwrap()
});
const MAXRETRY: u32 = 3;
static BAN_KEY: LazyLock<LimitKey<'static>> = LazyLock::new(|| key("ip:203.0.113.7"));

/// The client's ban state before the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ban {
    /// No ban asked for.
    NotAsked,
    /// Asked, with this many failures recorded (`maxretry` or more: banned).
    Failures(u32),
    /// A ban marker without a TTL: corrupt, as `ban_status` reports it.
    MarkerWithoutTtl,
}

const BANS: &[Ban] = &[
    Ban::NotAsked,
    Ban::Failures(0),
    Ban::Failures(2),
    Ban::Failures(MAXRETRY),
    Ban::MarkerWithoutTtl,
];

/// The revocation cases `check_request` is run with (a subset of [`CASES`]: the ban is
/// orthogonal to them, and `check_token_equals_the_separate_stores` covers them all).
const REQUEST_CASES: &[&str] = &[
    "active, nothing revoked",
    "token revoked",
    "subject cutoff after iat",
    "corrupt token entry (word)",
    "no claims at all",
];

async fn prepare_ban(stores: &RedisStores, ban: Ban) {
    match ban {
        Ban::NotAsked => {}
        Ban::Failures(n) => {
            for _ in 0..n {
                stores
                    .ratelimit()
                    .record_failure(&BAN_KEY, &BAN)
                    .await
                    .unwrap();
            }
        }
        Ban::MarkerWithoutTtl => {
            let mut conn = raw_connection().await;
            let _: () = redis::cmd("SET")
                .arg(stores.ratelimit().ban_key(&BAN_KEY))
                .arg("1")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

type RequestOutcome =
    Result<(Option<Decision>, RevocationStatus, Option<Decision>), StoreErrorKind>;

fn ban_arg(ban: Ban) -> Option<(&'static LimitKey<'static>, &'static BanQuota)> {
    (ban != Ban::NotAsked).then_some((&*BAN_KEY, &*BAN))
}

fn limit_arg(limit: Limit) -> Option<(&'static LimitKey<'static>, &'static GcraCharge)> {
    match limit {
        Limit::None => None,
        Limit::Used { cost, .. } => Some((&*LIMIT_KEY, cells(cost))),
    }
}

/// What the Guard did before `check_request`: `ban_status`, then `check_token` — without the
/// limit when the client is banned (a banned request never reaches the limit).
async fn ban_then_check_token(
    stores: &RedisStores,
    token: &TokenRef<'_>,
    limit: Limit,
    ban: Ban,
) -> RequestOutcome {
    let ban = match ban_arg(ban) {
        Some((key, quota)) => Some(
            stores
                .ratelimit()
                .ban_status(key, quota)
                .await
                .map_err(|e| e.kind())?,
        ),
        None => None,
    };
    let banned = ban.is_some_and(|b| !b.allowed);
    let limit = if banned { None } else { limit_arg(limit) };
    let (status, d) = stores
        .check_token(token, limit)
        .await
        .map_err(|e| e.kind())?;
    Ok((ban, status, d))
}

async fn check_request(
    stores: &RedisStores,
    token: &TokenRef<'_>,
    limit: Limit,
    ban: Ban,
) -> RequestOutcome {
    stores
        .check_request(token, limit_arg(limit), ban_arg(ban))
        .await
        .map(|c: RequestCheck| (c.ban, c.revocation, c.limit))
        .map_err(|e| e.kind())
}

fn same_request(a: &RequestOutcome, b: &RequestOutcome) -> bool {
    match (a, b) {
        (Err(a), Err(b)) => a == b,
        (Ok((ba, sa, la)), Ok((bb, sb, lb))) => {
            same_decision(ba, bb) && sa == sb && same_decision(la, lb)
        }
        _ => false,
    }
}

/// Every key under the stores' prefix and its value, but the GCRA key.
async fn dump_but_gcra(stores: &RedisStores) -> Vec<Vec<u8>> {
    let gcra = stores.ratelimit().gcra_key(&LIMIT_KEY).into_bytes();
    let dump = dump_prefix(stores.backend().key_prefix()).await;
    // The dump is key, values…, key, values…: drop the GCRA key and its value.
    let mut out = Vec::new();
    let mut skip = false;
    for item in dump {
        if item == gcra {
            skip = true;
            continue;
        }
        if skip {
            skip = false;
            continue;
        }
        out.push(item);
    }
    out
}

#[tokio::test]
async fn check_request_equals_ban_status_then_check_token() {
    let mut seen = BTreeMap::<&str, usize>::new();
    for name in REQUEST_CASES {
        let case = CASES.iter().find(|c| c.name == *name).unwrap();
        for &ban in BANS {
            for &limit in LIMITS {
                let a = stores("req-separate").await;
                let b = stores("req-combined").await;
                for s in [&a, &b] {
                    prepare(s, case, limit).await;
                    prepare_ban(s, ban).await;
                }
                let t = token(case);
                let what = format!("{} / {ban:?} / {limit:?}", case.name);
                let expected = ban_then_check_token(&a, &t, limit, ban).await;
                let gcra_key = b.ratelimit().gcra_key(&LIMIT_KEY);
                let tat_before = get_raw(&gcra_key).await;
                let rest_before = dump_but_gcra(&b).await;
                let got = check_request(&b, &t, limit, ban).await;
                assert!(
                    same_request(&expected, &got),
                    "{what}:\n  ban_status + check_token: {expected:?}\n  check_request:            {got:?}"
                );
                // The ban read and the revocation check write nothing.
                assert_eq!(dump_but_gcra(&b).await, rest_before, "{what}");
                // No decision (banned, revoked, no limit, an error): the limit's state is
                // untouched, byte for byte.
                if !matches!(got, Ok((_, _, Some(_)))) {
                    assert_eq!(get_raw(&gcra_key).await, tat_before, "{what}");
                }
                let class = match &got {
                    Ok((Some(b), RevocationStatus::Revoked(_), _)) if !b.allowed => {
                        "revoked and banned"
                    }
                    Ok((Some(b), _, l)) if !b.allowed => {
                        assert_eq!(*l, None, "{what}");
                        assert_eq!((b.limit, b.remaining), (BAN.maxretry(), 0), "{what}");
                        "banned"
                    }
                    Ok((Some(b), RevocationStatus::Active, Some(_))) if b.remaining == 3 => {
                        "not banned, 0 failures, limited"
                    }
                    Ok((Some(b), RevocationStatus::Active, Some(_))) if b.remaining == 1 => {
                        "not banned, 2 failures, limited"
                    }
                    Ok((None, RevocationStatus::Active, Some(_))) => "no ban asked, limited",
                    Ok((_, RevocationStatus::Revoked(_), _)) => "revoked",
                    Err(StoreErrorKind::Corrupt) if ban == Ban::MarkerWithoutTtl => {
                        "corrupt ban marker"
                    }
                    Err(StoreErrorKind::Corrupt) => "corrupt revocation entry",
                    _ => "other",
                };
                *seen.entry(class).or_default() += 1;
                delete_under(a.backend().key_prefix()).await;
                delete_under(b.backend().key_prefix()).await;
            }
        }
    }
    covers_every_class(
        &seen,
        &[
            "revoked and banned",
            "banned",
            "not banned, 0 failures, limited",
            "not banned, 2 failures, limited",
            "no ban asked, limited",
            "revoked",
            "corrupt ban marker",
            "corrupt revocation entry",
        ],
    );
}

#[tokio::test]
async fn check_request_in_detail() {
    let s = stores("req-detail").await;
    let limit = Some((&*LIMIT_KEY, cells(1)));
    let ban = Some((&*BAN_KEY, &*BAN));
    let t = any_token();
    let c = s.check_request(&t, limit, ban).await.unwrap();
    let b = c.ban.unwrap();
    assert_eq!(
        (b.allowed, b.limit, b.remaining, b.reset, b.retry_after),
        (true, 3, 3, Duration::ZERO, None)
    );
    assert_eq!(c.revocation, RevocationStatus::Active);
    assert_eq!(c.limit.map(|d| (d.allowed, d.remaining)), Some((true, 1)));

    // Failures show in the ban status; the request is still limited as usual.
    s.ratelimit().record_failure(&BAN_KEY, &BAN).await.unwrap();
    let c = s.check_request(&t, limit, ban).await.unwrap();
    let b = c.ban.unwrap();
    assert_eq!((b.allowed, b.remaining), (true, 2));
    assert!(b.reset > Duration::from_secs(3590), "{:?}", b.reset);
    assert_eq!(c.limit.map(|d| (d.allowed, d.remaining)), Some((true, 0)));

    // Banned: no cell consumed, however many requests.
    s.ratelimit().record_failure(&BAN_KEY, &BAN).await.unwrap();
    let third = s.ratelimit().record_failure(&BAN_KEY, &BAN).await.unwrap();
    assert!(!third.allowed);
    let tat = get_raw(&s.ratelimit().gcra_key(&LIMIT_KEY)).await;
    for _ in 0..20 {
        let c = s.check_request(&t, limit, ban).await.unwrap();
        let b = c.ban.unwrap();
        assert!(!b.allowed);
        assert!(b.retry_after.unwrap() > Duration::from_secs(3590));
        assert_eq!((c.revocation, c.limit), (RevocationStatus::Active, None));
    }
    assert_eq!(get_raw(&s.ratelimit().gcra_key(&LIMIT_KEY)).await, tat);
    // Another client's ban does not concern this request.
    let c = s
        .check_request(&t, limit, Some((&key("ip:198.51.100.1"), &BAN)))
        .await
        .unwrap();
    assert_eq!(c.ban.map(|b| b.allowed), Some(true));
    assert_eq!(c.limit.map(|d| d.allowed), Some(false)); // the budget is spent: T = 30 min

    // Invalid input (empty or long keys, maxretry 0, findtime 0, a cost above the burst)
    // cannot be asked for: the types refuse it where it is made.
    delete_under(s.backend().key_prefix()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_evalsha_per_check_request_counted_by_redis() {
    let server = ThrowawayRedis::start();
    let (s, mut conn) = own_server_stores(&server, "rq:", 2).await;
    let t = any_token();
    let q = GcraCharge::single(GcraQuota::per_second(NonZeroU32::new(1_000_000).unwrap()));
    let limit = Some((&*LIMIT_KEY, &q));
    let (clean, failing, banned) = (key("ip:clean"), key("ip:failing"), key("ip:banned"));
    s.ratelimit().record_failure(&failing, &BAN).await.unwrap();
    s.ratelimit().record_failure(&failing, &BAN).await.unwrap();
    for _ in 0..BAN.maxretry() {
        s.ratelimit().record_failure(&banned, &BAN).await.unwrap();
    }
    // Warm up: every connection open, the script loaded.
    for _ in 0..8 {
        s.check_request(&t, limit, Some((&clean, &BAN)))
            .await
            .unwrap();
    }
    let before = info(&mut conn).await;

    const N: u64 = 60;
    let (mut charged, mut with_failures, mut was_banned) = (0, 0, 0);
    for i in 0..N {
        let ip = [&clean, &failing, &banned][usize::try_from(i % 3).unwrap()];
        let c = s.check_request(&t, limit, Some((ip, &BAN))).await.unwrap();
        assert_eq!(c.revocation, RevocationStatus::Active);
        let b = c.ban.unwrap();
        if b.allowed {
            assert!(c.limit.unwrap().allowed);
            charged += 1;
            if b.remaining < BAN.maxretry() {
                with_failures += 1;
            }
        } else {
            assert_eq!(c.limit, None);
            was_banned += 1;
        }
    }
    let after = info(&mut conn).await;
    let internal = ["pttl", "zcount", "zrangebyscore", "time", "get", "set"];
    let delta = one_evalsha_per_call(
        "check_request calls (ban + token + limit)",
        &before,
        &after,
        N,
        &internal,
    );
    assert_eq!((charged, with_failures, was_banned), (40, 20, 20));
    // Inside the script: PTTL of the ban marker; not banned, TIME and ZCOUNT (and the oldest
    // failure when there are some); 3 GETs of revocation keys; TIME, GET and SET of the GCRA
    // step unless banned.
    assert_eq!(delta("pttl"), N);
    assert_eq!(delta("zcount"), charged);
    assert_eq!(delta("zrangebyscore"), with_failures);
    assert_eq!(delta("time"), 2 * charged);
    assert_eq!(delta("get"), 3 * N + charged);
    assert_eq!(delta("set"), charged);
}
