//! The cases: every `pub async fn` here is one (and must be listed in the suite's macro).

use std::num::NonZeroU32;
use std::time::Duration;

use tokenward_core::{StoreId, TokenRef, UnixTime};
use tokenward_ratelimit::{BanCheck, BanQuota, GcraCharge, GcraQuota, LimitKey};

use super::{
    CaseResult, CombinedEnv, SeparateStores, Step, assert_same_answer, assert_same_decision,
};
use crate::stores::{CombinedAnswer, CombinedCheck, SequentialCheck};

/// How a scenario's token is revoked before the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revoke {
    No,
    Token,
    Session,
    Subject,
}

/// The ids of scenario `i`.
struct Ids {
    jti: String,
    sid: String,
    sub: String,
    ban_key: LimitKey<'static>,
    /// The client's network key (banned only explicitly).
    net_key: LimitKey<'static>,
    limit_key: LimitKey<'static>,
}

impl Ids {
    /// The ban part of a call: the address and the network, under `quota`.
    fn ban<'a>(&'a self, quota: &'a BanQuota) -> BanCheck<'a> {
        BanCheck::new(&self.ban_key, quota).network(&self.net_key)
    }
}

#[expect(
    clippy::expect_used,
    reason = "the suite's keys are valid by construction"
)]
fn ids(case: &str, i: usize) -> Ids {
    let key = |k: String| LimitKey::new(k).expect("the suite's keys are valid LimitKeys");
    Ids {
        jti: format!("{case}-j{i}"),
        sid: format!("{case}-s{i}"),
        sub: format!("{case}-u{i}"),
        ban_key: key(format!("auth-ban:ip:{case}-{i}")),
        net_key: key(format!("auth-ban:net:{case}-{i}")),
        limit_key: key(format!("subject:{case}-u{i}")),
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// `n` per hour: nothing replenishes while a case runs.
fn hourly(n: u32) -> GcraCharge {
    GcraCharge::single(GcraQuota::per_hour(nz(n)))
}

/// `maxretry` failures in an hour ban for an hour.
#[expect(
    clippy::expect_used,
    reason = "the suite's quotas are valid by construction"
)]
fn ban_quota(maxretry: u32) -> BanQuota {
    BanQuota::new(
        nz(maxretry),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .expect("the suite's ban quotas are valid")
}

/// A token of `ids`, issued 10 s ago, expiring in an hour.
fn token<'a>(ids: &'a Ids, now: UnixTime) -> Result<TokenRef<'a>, super::ConformanceError> {
    TokenRef::from_parts(
        Some(&ids.jti),
        Some(&ids.sid),
        Some(&ids.sub),
        Some(now.saturating_sub(Duration::from_secs(10))),
        now.saturating_add(Duration::from_secs(3600)),
    )
    .step("TokenRef::from_parts")
}

/// The state a scenario starts from.
#[derive(Debug, Clone, Copy)]
struct State {
    revoke: Revoke,
    /// Failures recorded for the ban key.
    failures: u32,
    /// Cells of the limit used.
    used: u32,
}

/// Applies the same state to one namespace's separate stores.
async fn prepare(
    stores: &SeparateStores,
    ids: &Ids,
    now: UnixTime,
    state: State,
    ban: &BanQuota,
    limit: &GcraCharge,
) -> CaseResult {
    let State {
        revoke,
        failures,
        used,
    } = state;
    let until = now.saturating_add(Duration::from_secs(3600));
    match revoke {
        Revoke::No => {}
        Revoke::Token => stores
            .revocation
            .revoke_token(&StoreId::new(&ids.jti).step("StoreId")?, until)
            .await
            .step("revoke_token")?,
        Revoke::Session => stores
            .revocation
            .revoke_session(&StoreId::new(&ids.sid).step("StoreId")?, until)
            .await
            .step("revoke_session")?,
        Revoke::Subject => stores
            .revocation
            .revoke_subject(&StoreId::new(&ids.sub).step("StoreId")?, now, until)
            .await
            .step("revoke_subject")?,
    }
    for _ in 0..failures {
        stores
            .ratelimit
            .record_failure(&ids.ban_key, ban)
            .await
            .step("record_failure")?;
    }
    for _ in 0..used {
        stores
            .ratelimit
            .gcra(&ids.limit_key, limit)
            .await
            .step("gcra")?;
    }
    Ok(())
}

fn reference(env: &CombinedEnv) -> SequentialCheck {
    SequentialCheck::new(
        env.reference.revocation.clone(),
        env.reference.ratelimit.clone(),
    )
}

/// The same call on the backend and on the reference.
async fn both(
    env: &CombinedEnv,
    token: &TokenRef<'_>,
    limit: Option<(&LimitKey<'_>, &GcraCharge)>,
    ban: Option<BanCheck<'_>>,
) -> Result<(CombinedAnswer, CombinedAnswer), super::ConformanceError> {
    let got = env
        .combined
        .check_request(token, limit, ban)
        .await
        .step("check_request (backend)")?;
    let want = reference(env)
        .check_request(token, limit, ban)
        .await
        .step("check_request (separate stores)")?;
    Ok((got, want))
}

/// Every combination of revocation rule (none, token, session, subject), ban (not asked, no
/// failures, failures below `maxretry`, banned) and limit (not asked, fresh, exhausted): the
/// combined answer equals the separate stores' — including *which* parts are answered (no
/// limit decision for a banned client or a revoked token).
pub async fn answers_match_the_separate_stores(env: CombinedEnv) -> CaseResult {
    let tol = env.clock.tolerance();
    let now = env.clock.now();
    let (ban, limit) = (ban_quota(3), hourly(3));
    let mut i = 0;
    for revoke in [Revoke::No, Revoke::Token, Revoke::Session, Revoke::Subject] {
        // (asked, failures before)
        for (ban_asked, failures) in [(false, 0), (true, 0), (true, 2), (true, 3)] {
            // (asked, cells used before)
            for (limit_asked, used) in [(false, 0), (true, 0), (true, 3)] {
                i += 1;
                let ids = ids("match", i);
                for stores in [&env.backend, &env.reference] {
                    let state = State {
                        revoke,
                        failures,
                        used,
                    };
                    prepare(stores, &ids, now, state, &ban, &limit).await?;
                }
                let token = token(&ids, now)?;
                let limit_arg = limit_asked.then_some((&ids.limit_key, &limit));
                let ban_arg = ban_asked.then(|| ids.ban(&ban));
                let (got, want) = both(&env, &token, limit_arg, ban_arg).await?;
                let what = format!(
                    "revoked {revoke:?}, ban asked {ban_asked} after {failures} failures, \
                     limit asked {limit_asked} after {used} cells"
                );
                assert_same_answer(&got, &want, tol, &what);
            }
        }
    }
    Ok(())
}

/// Each call with a limit charges exactly one cell (the charge's cost), on the state the
/// backend's separate rate-limit store sees too.
pub async fn the_limit_is_charged_once_per_call(env: CombinedEnv) -> CaseResult {
    let tol = env.clock.tolerance();
    let now = env.clock.now();
    let ids = ids("once", 0);
    let (ban, limit) = (ban_quota(3), hourly(4));
    let token = token(&ids, now)?;
    for call in 1..=5 {
        let (got, want) = both(
            &env,
            &token,
            Some((&ids.limit_key, &limit)),
            Some(ids.ban(&ban)),
        )
        .await?;
        assert_same_answer(&got, &want, tol, &format!("call {call} of a 4-cell quota"));
    }
    // Shared state: the separate store sees the exhausted limit.
    let after = env
        .backend
        .ratelimit
        .gcra(&ids.limit_key, &limit)
        .await
        .step("gcra")?;
    let want = env
        .reference
        .ratelimit
        .gcra(&ids.limit_key, &limit)
        .await
        .step("gcra (reference)")?;
    assert_same_decision(&after, &want, tol, "the separate store after the calls");
    assert!(
        !after.allowed,
        "the combined calls' charges are not seen by the backend's separate store: {after:?}"
    );
    Ok(())
}

/// A revoked token or a banned client is charged nothing: a stolen, revoked token must not
/// drain its victim's budget.
pub async fn revoked_or_banned_requests_are_charged_nothing(env: CombinedEnv) -> CaseResult {
    let now = env.clock.now();
    let (ban, limit) = (ban_quota(2), hourly(2));
    for (i, (revoke, failures)) in [(Revoke::Token, 0), (Revoke::Session, 0), (Revoke::No, 2)]
        .into_iter()
        .enumerate()
    {
        let ids = ids("free", i);
        let state = State {
            revoke,
            failures,
            used: 0,
        };
        prepare(&env.backend, &ids, now, state, &ban, &limit).await?;
        let token = token(&ids, now)?;
        for _ in 0..3 {
            let answer = env
                .combined
                .check_request(&token, Some((&ids.limit_key, &limit)), Some(ids.ban(&ban)))
                .await
                .step("check_request")?;
            assert!(
                answer.limit.is_none(),
                "{revoke:?} / {failures} failures: a limit decision was made: {answer:?}"
            );
        }
        let fresh = env
            .backend
            .ratelimit
            .gcra(&ids.limit_key, &limit)
            .await
            .step("gcra")?;
        assert!(
            fresh.allowed && fresh.remaining == 1,
            "{revoke:?} / {failures} failures: the limit was charged: {fresh:?}"
        );
    }
    Ok(())
}

/// The ban part is read-only (as `RateLimitStore::ban_status`): however many calls, nothing
/// is counted toward a ban.
pub async fn the_ban_is_read_never_counted(env: CombinedEnv) -> CaseResult {
    let tol = env.clock.tolerance();
    let now = env.clock.now();
    let ids = ids("read", 0);
    let ban = ban_quota(2);
    let token = token(&ids, now)?;
    for _ in 0..5 {
        let (got, want) = both(&env, &token, None, Some(ids.ban(&ban))).await?;
        assert_same_answer(&got, &want, tol, "ban asked, nothing recorded");
    }
    let got = env
        .backend
        .ratelimit
        .ban_status(&ids.ban_key, &ban)
        .await
        .step("ban_status")?;
    let want = env
        .reference
        .ratelimit
        .ban_status(&ids.ban_key, &ban)
        .await
        .step("ban_status (reference)")?;
    assert_same_decision(&got, &want, tol, "ban status after five combined calls");
    assert!(got.allowed, "combined calls counted toward a ban: {got:?}");
    let network = env
        .backend
        .ratelimit
        .ban_status(&ids.net_key, &ban)
        .await
        .step("ban_status (network)")?;
    assert!(
        network.allowed && network.remaining == 2,
        "combined calls counted toward a network ban: {network:?}"
    );
    Ok(())
}

/// A banned network key refuses the client whatever its address key says — an address with
/// no failures of its own is banned, and charged nothing — and the answer is the separate
/// stores' (the longer of the two bans); the same address in another network is not banned;
/// without the network key in the call, only the address counts.
pub async fn a_banned_network_refuses_the_client(env: CombinedEnv) -> CaseResult {
    let tol = env.clock.tolerance();
    let now = env.clock.now();
    let (ban, limit) = (ban_quota(2), hourly(2));
    // A network ban as the anomaly detectors make one: one failure under a quota of one,
    // for half an hour (shorter than the address's own ban of an hour).
    #[expect(
        clippy::expect_used,
        reason = "the suite's quotas are valid by construction"
    )]
    let at_once = BanQuota::new(
        NonZeroU32::MIN,
        Duration::from_secs(3600),
        Duration::from_secs(1800),
    )
    .expect("the suite's ban quotas are valid");
    for (i, failures) in [0, 1, 2].into_iter().enumerate() {
        let ids = ids("net", i);
        for stores in [&env.backend, &env.reference] {
            let state = State {
                revoke: Revoke::No,
                failures,
                used: 0,
            };
            prepare(stores, &ids, now, state, &ban, &limit).await?;
            let d = stores
                .ratelimit
                .record_failure(&ids.net_key, &at_once)
                .await
                .step("record_failure (network)")?;
            assert!(!d.allowed, "a failure under a quota of one bans: {d:?}");
        }
        let token = token(&ids, now)?;
        let what = format!("banned network, {failures} failures of the address");
        let (got, want) = both(
            &env,
            &token,
            Some((&ids.limit_key, &limit)),
            Some(ids.ban(&ban)),
        )
        .await?;
        assert_same_answer(&got, &want, tol, &what);
        assert!(
            got.ban.is_some_and(|d| !d.allowed),
            "{what}: not banned: {got:?}"
        );
        let retry = got.ban.and_then(|d| d.retry_after).unwrap_or_default();
        assert_eq!(got.limit, None, "{what}: a banned client was charged");
        let longer = if failures >= 2 { 3600 } else { 1800 };
        assert!(
            retry.abs_diff(Duration::from_secs(longer)) <= tol,
            "{what}: retry after {retry:?}, not the longer ban's {longer} s"
        );
        // The same address in another (open) network, or without its network: the address
        // alone decides.
        let other = LimitKey::new(format!("auth-ban:net:other-{i}")).step("LimitKey")?;
        let (got, want) = both(
            &env,
            &token,
            None,
            Some(BanCheck::new(&ids.ban_key, &ban).network(&other)),
        )
        .await?;
        assert_same_answer(&got, &want, tol, &format!("{what}, another network"));
        let alone = both(&env, &token, None, Some(BanCheck::new(&ids.ban_key, &ban))).await?;
        assert_same_answer(&alone.0, &alone.1, tol, &format!("{what}, no network"));
        for answer in [got, alone.0] {
            assert_eq!(
                answer.ban.map(|d| d.allowed),
                Some(failures < 2),
                "{what}: the address's own status decides outside the banned network"
            );
        }
        let fresh = env
            .backend
            .ratelimit
            .gcra(&ids.limit_key, &limit)
            .await
            .step("gcra")?;
        assert!(
            fresh.allowed && fresh.remaining == 1,
            "{what}: the limit was charged: {fresh:?}"
        );
    }
    Ok(())
}
