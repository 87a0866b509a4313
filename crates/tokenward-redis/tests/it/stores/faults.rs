//! `check_token` / `check_request` when Redis fails, forgets its scripts, or is counted: outages
//! within the timeout, NOSCRIPT recovery, one `EVALSHA` per call as Redis counts it.

use super::ban::{BAN, BAN_KEY};
use super::*;

fn stores_at(url: &str) -> RedisStores {
    RedisStores::connect(&outage_config("stores-outage", url)).unwrap()
}

pub(super) fn any_token() -> TokenRef<'static> {
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
            s.check_request(&any_token(), limit, Some(BanCheck::new(&BAN_KEY, &BAN))),
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
        s.check_request(&no_ids, None, Some(BanCheck::new(&BAN_KEY, &BAN))),
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
            Some(BanCheck::new(&BAN_KEY, &BAN)),
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
pub(super) fn one_evalsha_per_call(
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
