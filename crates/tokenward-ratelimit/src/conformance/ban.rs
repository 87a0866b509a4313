//! The failure-ban cases: counting in a sliding `findtime`, bans that outlast it and end on
//! their own, the decisions' numbers as the contract's formulas say, lifting, independence.

use std::time::Duration;

use tokenward_core::conformance::{CaseResult, Step, advance_past, advance_to, just_after};

use super::{RateLimitEnv, assert_about, assert_allowed, assert_denied, ban_quota, key, ms, secs};

/// `maxretry - 1` failures: not banned (one failure left); `maxretry`: banned for `bantime`.
pub async fn ban_lifecycle(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = ban_quota(3, secs(60), secs(300));
    let k = key("bl:k");
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 3, "no failures yet");
    assert_eq!(d.limit, 3);
    for i in 0..2 {
        let d = store.record_failure(&k, &q).await.step("record_failure")?;
        assert_allowed(&d, 2 - i, "below maxretry");
    }
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 1, "maxretry - 1 failures");
    assert!(
        d.reset > Duration::ZERO && d.reset <= secs(60),
        "reset within findtime: {d:?}"
    );

    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    let retry = assert_denied(&d, "maxretry-th failure bans");
    assert_about(retry, secs(300), &*clock, "ban length");
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    let retry = assert_denied(&d, "banned");
    assert_about(retry, secs(300), &*clock, "ban left");
    assert_eq!(d.limit, 3);
    Ok(())
}

/// The contract's ban decisions, number by number: not banned, `remaining = M − counted` and
/// `reset = f_oldest + findtime − now`; a failure counts while `now < f + findtime` (gone at
/// exactly `f + findtime`); banned, `reset = retry_after = b + bantime − now`, and the ban
/// is over at exactly `b + bantime` with nothing counted. Exact on an exact clock, within the
/// tolerance on a real one.
pub async fn ban_decisions_follow_the_formulas(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = ban_quota(3, secs(1), secs(1));
    let k = key("bf:k");
    // Any first call may open a connection: not on the clock of the case.
    store
        .ban_status(&key("bf:warm-up"), &q)
        .await
        .step("a warm-up call")?;
    let t0 = clock.now();
    let at = |offset: Duration| t0.saturating_add(offset);
    let since = |t: tokenward_core::UnixTime| t.saturating_duration_since(t0);

    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_allowed(&d, 2, "the first failure, at 0");
    assert_about(d.reset, secs(1), &*clock, "reset: it leaves at 1 s");
    assert_eq!(d.limit, 3);
    advance_to(&*clock, at(ms(500))).await;
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_allowed(&d, 1, "the second failure, at 0.5 s");
    assert_about(d.reset, ms(500), &*clock, "reset: the first leaves at 1 s");

    // At 1 s exactly (just after on a real clock) the first failure no longer counts.
    let third = just_after(&*clock, at(secs(1)));
    advance_to(&*clock, third).await;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 2, "the first failure left the window at 1 s");
    let second_leaves = ms(1_500).saturating_sub(since(third));
    assert_about(
        d.reset,
        second_leaves,
        &*clock,
        "reset: the second leaves at 1.5 s",
    );
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_allowed(&d, 1, "two counted");
    assert_about(d.reset, second_leaves, &*clock, "reset: still the second's");
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    let retry = assert_denied(&d, "the third counted failure bans");
    assert_about(retry, secs(1), &*clock, "retry_after: bantime");
    assert_about(d.reset, secs(1), &*clock, "reset: bantime");
    assert_eq!(d.limit, 3);

    advance_to(&*clock, third.saturating_add(ms(500))).await;
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    let retry = assert_denied(&d, "a failure during the ban");
    assert_about(
        retry,
        ms(500),
        &*clock,
        "retry_after: the ban is not extended",
    );
    assert_about(d.reset, ms(500), &*clock, "reset: the ban's end");

    advance_to(&*clock, just_after(&*clock, third.saturating_add(secs(1)))).await;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 3, "the ban is over at its end, and nothing counts");
    assert_eq!(d.reset, Duration::ZERO, "reset with nothing counted: {d:?}");
    Ok(())
}

/// The ban holds past `findtime` and ends after `bantime`; counting then starts afresh.
pub async fn ban_outlasts_findtime_and_expires(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = ban_quota(2, secs(1), secs(2));
    let k = key("be:k");
    store.record_failure(&k, &q).await.step("record_failure")?;
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_denied(&d, "second failure bans");

    advance_past(&*clock, secs(1)).await;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    let retry = assert_denied(&d, "past findtime, within bantime");
    assert!(retry <= secs(1), "ban left after 1 s of 2: {d:?}");

    clock.advance(secs(1)).await;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 2, "after bantime, nothing counted");

    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_allowed(&d, 1, "one failure after the ban");
    Ok(())
}

/// Failures further apart than `findtime` never add up to a ban.
pub async fn failures_outside_findtime_do_not_accumulate(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = ban_quota(3, secs(1), secs(60));
    let k = key("fw:k");
    for _ in 0..2 {
        store.record_failure(&k, &q).await.step("record_failure")?;
    }
    advance_past(&*clock, secs(1)).await;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 3, "earlier failures left the window");
    for i in 0..2 {
        let d = store.record_failure(&k, &q).await.step("record_failure")?;
        assert_allowed(&d, 2 - i, "fresh failures only");
    }
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_denied(&d, "three within findtime");
    Ok(())
}

/// `findtime` slides: each failure counts for `findtime` after it happened (not in fixed
/// windows anchored anywhere).
pub async fn findtime_is_a_sliding_window(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = ban_quota(3, secs(1), secs(60));
    let k = key("sw:k");
    // Failures at 0 s, 0.7 s and 1.4 s: at 1.4 s the first has left the window.
    store.record_failure(&k, &q).await.step("record_failure")?;
    clock.advance(ms(700)).await;
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_allowed(&d, 1, "two within findtime");
    clock.advance(ms(700)).await;
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_allowed(&d, 1, "the first failure slid out of the window");
    // A fourth right away: three within one second (0.7 s, 1.4 s, now) ban. A fixed window
    // anchored at the first failure, or at 1 s, would hold only two.
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_denied(&d, "three within a sliding findtime");
    Ok(())
}

/// `lift_ban` ends a ban and forgets the counted failures; lifting an unknown key is fine.
pub async fn lift_ban_forgets_failures(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, .. } = env;
    let q = ban_quota(3, secs(60), secs(300));
    let k = key("lb:k");
    for _ in 0..3 {
        store.record_failure(&k, &q).await.step("record_failure")?;
    }
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_denied(&d, "banned");
    store.lift_ban(&k).await.step("lift_ban")?;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 3, "lifted");
    for i in 0..2 {
        let d = store.record_failure(&k, &q).await.step("record_failure")?;
        assert_allowed(&d, 2 - i, "counting afresh after the lift");
    }
    store.lift_ban(&k).await.step("lift_ban without a ban")?;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 3, "lift forgets failures below maxretry too");
    store
        .lift_ban(&key("lb:unknown"))
        .await
        .step("lift_ban of an unknown key")?;
    Ok(())
}

/// Failures recorded while banned neither count nor extend the ban.
pub async fn failures_during_a_ban_do_not_extend_it(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = ban_quota(1, secs(1), secs(2));
    let k = key("fb:k");
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_denied(&d, "maxretry 1 bans at once");
    clock.advance(ms(1000)).await;
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    let retry = assert_denied(&d, "failure while banned");
    assert!(retry <= secs(1), "the ban was extended: {d:?}");
    advance_past(&*clock, secs(1)).await;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_allowed(&d, 1, "ban over, the failure during it not counted");
    Ok(())
}

/// Bans and failure counts of one key leave the others untouched.
pub async fn ban_keys_are_independent(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, .. } = env;
    let q = ban_quota(2, secs(60), secs(300));
    let (a, b, c) = (key("bk:a"), key("bk:b"), key("bk:c"));
    for _ in 0..2 {
        store
            .record_failure(&a, &q)
            .await
            .step("record_failure a")?;
    }
    store
        .record_failure(&b, &q)
        .await
        .step("record_failure b")?;
    let d = store.ban_status(&a, &q).await.step("ban_status a")?;
    assert_denied(&d, "a banned");
    let d = store.ban_status(&b, &q).await.step("ban_status b")?;
    assert_allowed(&d, 1, "b one failure");
    let d = store.ban_status(&c, &q).await.step("ban_status c")?;
    assert_allowed(&d, 2, "c untouched");
    store.lift_ban(&b).await.step("lift_ban b")?;
    let d = store.ban_status(&a, &q).await.step("ban_status a")?;
    assert_denied(&d, "lifting b leaves a banned");
    Ok(())
}

/// [`FailureBan::check_ip`](crate::FailureBan::check_ip) refuses every address of a banned
/// network ([`ban_network`](crate::FailureBan::ban_network): IPv4 /24, IPv6 /48) and no
/// other, reporting the longer of an address's and its network's bans; ordinary failures
/// count per address only, and lifting the network lifts it for all.
pub async fn network_bans_cover_every_address_of_the_network(env: RateLimitEnv) -> CaseResult {
    use std::net::IpAddr;

    use crate::{BanQuota, FailureBan};

    let RateLimitEnv { store, clock, .. } = env;
    let ip = |s: &str| s.parse::<IpAddr>().step("an address");
    let quota = BanQuota::new(
        std::num::NonZeroU32::MIN.saturating_add(1),
        secs(60),
        secs(60),
    )
    .step("BanQuota::new")?;
    let ban = FailureBan::new("nb", quota).step("FailureBan::new")?;
    for (banned, neighbour, outside) in [
        ("198.51.100.7", "198.51.100.250", "198.51.101.7"),
        ("2001:db8:7:1::1", "2001:db8:7:ffff::2", "2001:db8:8::1"),
    ] {
        let (banned, neighbour, outside) = (ip(banned)?, ip(neighbour)?, ip(outside)?);
        let d = ban
            .ban_network(&*store, banned, secs(300))
            .await
            .step("ban_network")?;
        assert_denied(&d, "a network ban bans at once");
        for (who, addr) in [("the banned address", banned), ("its neighbour", neighbour)] {
            let d = ban.check_ip(&*store, addr).await.step("check_ip")?;
            let retry = assert_denied(&d, &format!("{who} in a banned network"));
            assert_about(retry, secs(300), &*clock, "the network's ban");
            assert_eq!(d.limit, 2, "limit = the ban's maxretry");
            // The address keys themselves hold nothing: the network is banned, not them.
            let own = store
                .ban_status(&ban.ip_key(addr), &quota)
                .await
                .step("ban_status")?;
            assert_allowed(&own, 2, &format!("{who}'s own key"));
        }
        let d = ban.check_ip(&*store, outside).await.step("check_ip")?;
        assert_allowed(&d, 2, "an address of another network");
        // Ordinary failures count per address: banning `outside` leaves its network open.
        for _ in 0..2 {
            ban.record_ip_failure(&*store, outside)
                .await
                .step("record_ip_failure")?;
        }
        let d = ban.check_ip(&*store, outside).await.step("check_ip")?;
        assert_denied(&d, "the address after maxretry failures");
        let network = store
            .ban_status(&ban.network_key(outside), &quota)
            .await
            .step("ban_status")?;
        assert_allowed(&network, 2, "failures never count toward the network");
        // The longer ban wins: the address's (60 s) is shorter than its network's (300 s).
        ban.record_ip_failure(&*store, neighbour)
            .await
            .step("record_ip_failure")?;
        ban.record_ip_failure(&*store, neighbour)
            .await
            .step("record_ip_failure")?;
        let d = ban.check_ip(&*store, neighbour).await.step("check_ip")?;
        let retry = assert_denied(&d, "banned twice");
        assert_about(retry, secs(300), &*clock, "the longer of the two bans");
        ban.lift_network(&*store, banned)
            .await
            .step("lift_network")?;
        let d = ban.check_ip(&*store, banned).await.step("check_ip")?;
        assert_allowed(&d, 2, "the network's ban lifted");
        let d = ban.check_ip(&*store, neighbour).await.step("check_ip")?;
        let retry = assert_denied(&d, "its own ban stays");
        assert_about(retry, secs(60), &*clock, "the address's own ban");
    }
    Ok(())
}

/// [`holds_no_ban`](crate::RateLimitStore::holds_no_ban) never says "nothing banned" while a
/// ban is in force: after a key is banned it is `false` for as long as the ban holds (a
/// caller that trusted it would let a banned client through). Before any ban, and after the
/// ban is lifted, either answer keeps the contract (`false` promises nothing).
pub async fn holds_no_ban_is_never_true_while_a_ban_holds(env: RateLimitEnv) -> CaseResult {
    let RateLimitEnv { store, clock, .. } = env;
    let q = ban_quota(2, secs(2), secs(3));
    let k = key("hnb:k");
    // One counted failure is not a ban; the answer may be either.
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_allowed(&d, 1, "one failure of two");
    let d = store.record_failure(&k, &q).await.step("record_failure")?;
    assert_denied(&d, "the second failure bans");
    assert!(
        !store.holds_no_ban(),
        "holds_no_ban() is true while a key is banned"
    );
    // Still banned later in the ban (the store's clock moved, nothing else happened).
    clock.advance(secs(1)).await;
    let d = store.ban_status(&k, &q).await.step("ban_status")?;
    assert_denied(&d, "half-way through the ban");
    assert!(
        !store.holds_no_ban(),
        "holds_no_ban() is true half-way through a ban"
    );
    // Another key's ban keeps it false after this one is lifted.
    let other = key("hnb:other");
    for _ in 0..2 {
        store
            .record_failure(&other, &q)
            .await
            .step("record_failure")?;
    }
    store.lift_ban(&k).await.step("lift_ban")?;
    assert!(
        !store.holds_no_ban(),
        "holds_no_ban() is true while another key is still banned"
    );
    Ok(())
}
