//! `check_request`: the client's failure-ban status in the same script — equivalence with
//! `ban_status` over tables of cases, no cell consumed by a banned client.

use super::faults::{any_token, one_evalsha_per_call};
use super::*;

/// 3 failures within an hour ban for an hour: nothing expires while a test runs.
pub(super) static BAN: LazyLock<BanQuota> = LazyLock::new(|| {
    BanQuota::new(
        NonZeroU32::new(MAXRETRY).unwrap(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .unwrap()
});
const MAXRETRY: u32 = 3;
pub(super) static BAN_KEY: LazyLock<LimitKey<'static>> = LazyLock::new(|| key("ip:203.0.113.7"));

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

fn ban_arg(ban: Ban) -> Option<BanCheck<'static>> {
    (ban != Ban::NotAsked).then(|| BanCheck::new(&BAN_KEY, &BAN))
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
        Some(ban) => Some(
            stores
                .ratelimit()
                .ban_status(ban.address, ban.quota)
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
    let ban = Some(BanCheck::new(&BAN_KEY, &BAN));
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
        .check_request(
            &t,
            limit,
            Some(BanCheck::new(&key("ip:198.51.100.1"), &BAN)),
        )
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
    // The Guard always reads the client's network too (never banned here).
    let network = key("net:open");
    s.ratelimit().record_failure(&failing, &BAN).await.unwrap();
    s.ratelimit().record_failure(&failing, &BAN).await.unwrap();
    for _ in 0..BAN.maxretry() {
        s.ratelimit().record_failure(&banned, &BAN).await.unwrap();
    }
    // Warm up: every connection open, the script loaded.
    for _ in 0..8 {
        s.check_request(
            &t,
            limit,
            Some(BanCheck::new(&clean, &BAN).network(&network)),
        )
        .await
        .unwrap();
    }
    let before = info(&mut conn).await;

    const N: u64 = 60;
    let (mut charged, mut with_failures, mut was_banned) = (0, 0, 0);
    for i in 0..N {
        let ip = [&clean, &failing, &banned][usize::try_from(i % 3).unwrap()];
        let ban = BanCheck::new(ip, &BAN).network(&network);
        let c = s.check_request(&t, limit, Some(ban)).await.unwrap();
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
        "check_request calls (address and network ban + token + limit)",
        &before,
        &after,
        N,
        &internal,
    );
    assert_eq!((charged, with_failures, was_banned), (40, 20, 20));
    // Inside the script: PTTL of each ban marker (the address's and the network's); for each
    // key not banned, ZCOUNT (and the oldest failure when there are some) after TIME (once
    // per call: the other ban key and the GCRA step reuse it — the network is never banned
    // here, so every call reads it); 3 GETs of revocation keys; GET and SET of the GCRA
    // step unless banned.
    assert_eq!(delta("pttl"), 2 * N);
    assert_eq!(delta("zcount"), charged + N);
    assert_eq!(delta("zrangebyscore"), with_failures);
    assert_eq!(delta("time"), N);
    assert_eq!(delta("get"), 3 * N + charged);
    assert_eq!(delta("set"), charged);
}

/// The client's network key is read in the same script as its address key: a banned network
/// refuses an address with no failures of its own (no cell consumed, the longer ban
/// reported), another network does not, and a banned address in an open network is still
/// banned — all in one `EVALSHA`.
#[tokio::test]
async fn network_ban_in_the_same_script() {
    let s = stores("req-network").await;
    let limit = Some((&*LIMIT_KEY, cells(1)));
    let t = any_token();
    let (address, network, other) = (
        key("ip:203.0.113.7/32"),
        key("net:203.0.113.0/24"),
        key("net:198.51.100.0/24"),
    );
    let one = BanQuota::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(600),
    )
    .unwrap();
    let banned = s.ratelimit().record_failure(&network, &one).await.unwrap();
    assert!(!banned.allowed);
    let tat = get_raw(&s.ratelimit().gcra_key(&LIMIT_KEY)).await;
    let calls_before = s.backend().round_trips();
    for _ in 0..5 {
        let ban = BanCheck::new(&address, &BAN).network(&network);
        let c = s.check_request(&t, limit, Some(ban)).await.unwrap();
        let b = c.ban.unwrap();
        assert!(!b.allowed, "{c:?}");
        assert_eq!((b.limit, b.remaining), (BAN.maxretry(), 0));
        let retry = b.retry_after.unwrap();
        assert!(retry > Duration::from_secs(590) && retry <= Duration::from_secs(600));
        assert_eq!((c.revocation, c.limit), (RevocationStatus::Active, None));
    }
    assert_eq!(
        s.backend().round_trips() - calls_before,
        5,
        "one round trip per call"
    );
    assert_eq!(get_raw(&s.ratelimit().gcra_key(&LIMIT_KEY)).await, tat);
    // Without the network key, or with another network's, the address is not banned.
    let c = s
        .check_request(&t, limit, Some(BanCheck::new(&address, &BAN)))
        .await
        .unwrap();
    assert_eq!(c.ban.map(|b| (b.allowed, b.remaining)), Some((true, 3)));
    assert_eq!(c.limit.map(|d| d.allowed), Some(true));
    let ban = BanCheck::new(&address, &BAN).network(&other);
    let c = s.check_request(&t, None, Some(ban)).await.unwrap();
    assert_eq!(c.ban.map(|b| b.allowed), Some(true));
    // The address's own ban (an hour) is longer than the network's: it is the one reported;
    // and it holds in an open network.
    for _ in 0..BAN.maxretry() {
        s.ratelimit().record_failure(&address, &BAN).await.unwrap();
    }
    for net in [&network, &other] {
        let ban = BanCheck::new(&address, &BAN).network(net);
        let c = s.check_request(&t, limit, Some(ban)).await.unwrap();
        let b = c.ban.unwrap();
        assert!(!b.allowed);
        assert!(b.retry_after.unwrap() > Duration::from_secs(3590), "{b:?}");
        assert_eq!(c.limit, None);
    }
    delete_under(s.backend().key_prefix()).await;
}
