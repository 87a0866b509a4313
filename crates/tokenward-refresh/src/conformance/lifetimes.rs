//! Time: absolute and idle expiry, boundaries off the millisecond grid, self-expiry of the
//! store's entries, and how long a revoked family's access tokens stay revoked.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::ManualClock;
use tokenward_core::conformance::{
    LOST_ENTRY_HINT, advance_past, advance_to, just_after, just_before,
};
use tokenward_revocation::MemoryRevocationStore;

use super::support::{
    ACCESS, FaultyStore, GRACE, HEALTHY, Minter, REVOKE_BEFORE_RECORD, Suite, config, engine_clock,
    session_revoked_in, sub,
};
use super::{CaseResult, ConformanceError, RefreshEnv, Step};
use crate::{FamilyId, MintRequest, RefreshEngine, RefreshError, ReuseKind, RotationKind};

/// `just_before` a millisecond: rounding such a time down loses almost a whole millisecond.
const OFF_GRID: Duration = Duration::from_nanos(999_999);
const MS: Duration = Duration::from_millis(1);

/// A family dies at its absolute lifetime, however often it rotates.
pub async fn absolute_expiry(env: RefreshEnv) -> CaseResult {
    let absolute = Duration::from_secs(3);
    let config = config(&env)
        .absolute_lifetime(absolute)
        .idle_timeout(Duration::from_secs(2));
    let f = Suite::with(&env, Arc::clone(&env.store), config)?;
    let login = f.login("alice").await?;
    let every = Duration::from_millis(600);
    let token = login.refresh_token.expose();
    let token = f.rotate_times(token, 4, every, "before expiry").await?;
    // 2.4 s + tolerance so far; the absolute lifetime ends at 3 s.
    f.clock.advance(Duration::from_millis(600)).await;
    advance_past(&*f.clock, Duration::ZERO).await;
    f.assert_gone(&token, "alice", "past the absolute lifetime")
        .await
}

/// A family dies after its idle timeout without a rotation; each rotation restarts it.
pub async fn idle_expiry(env: RefreshEnv) -> CaseResult {
    let idle = Duration::from_secs(1);
    let f = Suite::with(
        &env,
        Arc::clone(&env.store),
        config(&env).idle_timeout(idle),
    )?;
    let tolerance = f.clock.tolerance();
    let login = f.login("alice").await?;
    let every = Duration::from_millis(700).saturating_sub(tolerance);
    let token = login.refresh_token.expose();
    let token = f
        .rotate_times(token, 3, every, "within the idle timeout")
        .await?;
    advance_past(&*f.clock, idle).await;
    f.assert_gone(&token, "alice", "after the idle timeout")
        .await
}

/// Times off the millisecond grid are never rounded down (a store keeping milliseconds
/// rounds up, by less than one): with an exact clock standing 0.999999 ms past a
/// millisecond and an idle timeout of 3 s + 0.999999 ms, a family still rotates 1 ns before
/// its idle expiry and is gone 1 ms after it; the previous token still gets the grace
/// successor 1 ns before the end of the window and is reuse 1 ms after it.
pub async fn times_are_never_rounded_down(env: RefreshEnv) -> CaseResult {
    let clock = Arc::clone(&env.clock);
    if clock.tolerance().is_zero() {
        let into_ms = clock.now().as_duration().subsec_nanos() % 1_000_000;
        let to_grid = Duration::from_nanos(u64::from((1_000_000 - into_ms) % 1_000_000));
        clock.advance(to_grid.saturating_add(OFF_GRID)).await;
    }
    let idle = Duration::from_secs(3).saturating_add(OFF_GRID);
    let f = Suite::with(
        &env,
        Arc::clone(&env.store),
        config(&env).idle_timeout(idle),
    )?;

    let t0 = clock.now();
    let login = f.login("alice").await?;
    let a = login.refresh_token.expose().to_owned();
    advance_to(&*clock, just_before(&*clock, t0.saturating_add(idle))).await;
    let b = f
        .rotate_ok(
            &a,
            None,
            "a rotation 1 ns before an off-grid idle expiry (the expiry must not be rounded down)",
        )
        .await?;
    assert_eq!(b.kind, RotationKind::Rotated);
    let t1 = clock.now();
    advance_to(&*clock, just_before(&*clock, t1.saturating_add(GRACE))).await;
    let grace = f
        .rotate_ok(
            &a,
            None,
            "the previous token 1 ns before the end of an off-grid grace window",
        )
        .await?;
    assert_eq!(
        grace.kind,
        RotationKind::Grace,
        "the rotation time must not be rounded down"
    );
    advance_to(
        &*clock,
        just_after(&*clock, t1.saturating_add(GRACE).saturating_add(MS)),
    )
    .await;
    let late = f.rotate(&a, None).await;
    assert!(
        matches!(&late, Err(RefreshError::Reused(r)) if r.kind == ReuseKind::PredecessorAfterWindow),
        "a millisecond after the grace window the previous token is reuse: {late:?}"
    );

    let t2 = clock.now();
    let other = f.login("bob").await?;
    advance_to(
        &*clock,
        just_after(&*clock, t2.saturating_add(idle).saturating_add(MS)),
    )
    .await;
    let why = "a millisecond after an off-grid idle expiry";
    f.assert_gone(other.refresh_token.expose(), "bob", why)
        .await
}

/// A login rotated twice (so a backend holds every kind of entry it keeps for a family).
async fn family_with_history(f: &Suite, who: &str) -> Result<FamilyId, ConformanceError> {
    let login = f.login(who).await?;
    f.rotate_times(login.refresh_token.expose(), 2, Duration::ZERO, who)
        .await?;
    Ok(login.family_id)
}

/// Expired families leave the store on their own: 16 families (each rotated twice, of 16
/// subjects) with a 2 s lifetime expire, then the store is used for 16 more of the same
/// shape; it then holds no more entries than the live ones (plus a few not yet reclaimed) —
/// no cleanup job needed. Counted through [`StoreProbe::stored_entries`](super::StoreProbe).
pub async fn expired_families_leave_the_store(env: RefreshEnv) -> CaseResult {
    const FAMILIES: usize = 16;
    /// Expired entries a backend may still hold after the later writes (lazily expiring
    /// backends reclaim on access or in the background).
    const SLACK: u64 = 8;
    let lifetime = Duration::from_secs(2);
    let short_config = config(&env)
        .absolute_lifetime(lifetime)
        .idle_timeout(lifetime);
    let short = Suite::with(&env, Arc::clone(&env.store), short_config)?;
    let long = Suite::new(&env)?;
    let probe = Arc::clone(&long.probe);
    let entries = async || {
        probe
            .stored_entries()
            .await
            .step("StoreProbe::stored_entries")
    };

    let start = entries().await?;
    for i in 0..FAMILIES {
        family_with_history(&short, &format!("px-{i}")).await?;
    }
    let held = entries().await?.saturating_sub(start);
    assert!(
        held >= FAMILIES as u64,
        "the probe counts {held} entries after {FAMILIES} logins: it must count what the \
         store holds for this case"
    );
    advance_past(&*short.clock, lifetime).await;
    for i in 0..FAMILIES {
        family_with_history(&long, &format!("px-live-{i}")).await?;
    }
    assert!(short.families("px-0").await?.is_empty());
    let now_held = entries().await?.saturating_sub(start);
    assert!(
        now_held <= held.saturating_add(SLACK),
        "{now_held} entries held after {FAMILIES} families ({held} entries) expired and \
         {FAMILIES} live ones of the same shape were written: expired families must leave \
         the store without a cleanup job"
    );
    assert!(
        now_held >= held,
        "{now_held} entries held, fewer than the {held} of the live families: {LOST_ENTRY_HINT}"
    );
    Ok(())
}

/// One family's scenario in [`access_tokens_stay_revoked_for_their_whole_life`]: what
/// happens to it after its login, until it is revoked.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Logged in, then logged out.
    LoginThenLogout,
    /// Rotated, its previous token presented again within the window (a grace mint), then
    /// logged out.
    GraceThenLogout,
    /// Rotated twice, then its first token presented again: reuse.
    Reuse,
}

/// The revocation of a family lasts until the latest `exp` of any access token minted in it
/// plus `LEEWAY_MARGIN`, whatever `max_access_token_lifetime` says: with the engine expecting
/// 15-minute tokens, access tokens minted for an hour (and 0.999999 ms: off the millisecond
/// grid) at login, rotation and grace stay revoked until 1 ns before their `exp` plus the
/// margin, after logout and after reuse; so do tokens within the expected lifetime.
/// (The revocation store runs on a manual clock of its own, so the case looks an hour ahead
/// without waiting.)
pub async fn access_tokens_stay_revoked_for_their_whole_life(env: RefreshEnv) -> CaseResult {
    let long = Duration::from_secs(3600).saturating_add(OFF_GRID);
    for lifetime in [long, ACCESS] {
        for ending in [
            Ending::LoginThenLogout,
            Ending::GraceThenLogout,
            Ending::Reuse,
        ] {
            let what = format!("{ending:?}, access tokens living {lifetime:?}");
            let revocation_clock = ManualClock::new(env.clock.now());
            let revocation = Arc::new(MemoryRevocationStore::with_clock(Arc::new(
                revocation_clock.clone(),
            )));
            let engine = RefreshEngine::with_config(
                Arc::clone(&env.store),
                revocation.clone(),
                super::support::issuer(),
                config(&env),
            )
            .step("RefreshEngine::with_config")?;
            let minter = Minter::new(engine_clock(&env), lifetime);
            let family = end_family(&env, &engine, &minter, ending, &what).await?;
            let until = tokenward_revocation::revoke_until(minter.latest());
            revocation_clock.set(until.saturating_sub(Duration::from_nanos(1)));
            assert!(
                session_revoked_in(&*revocation, &family).await?,
                "{what}: the family's sid must stay revoked until 1 ns before the latest \
                 access-token exp ({:?} after the epoch) plus the leeway margin",
                minter.latest().as_duration()
            );
        }
    }
    Ok(())
}

/// Runs `ending` for a new family through `engine`, minting with `minter`; returns it, revoked.
async fn end_family(
    env: &RefreshEnv,
    engine: &RefreshEngine,
    minter: &Minter,
    ending: Ending,
    what: &str,
) -> Result<FamilyId, ConformanceError> {
    let mint = |req: MintRequest<'_>| minter.mint(req);
    let login = engine
        .issue(&sub("alice"), mint)
        .await
        .step(&format!("{what}: issue"))?;
    let a = login.refresh_token.expose().to_owned();
    let rotate = async |token: &str, step: &str| {
        env.clock.advance(Duration::from_millis(10)).await;
        engine
            .rotate(token, None, mint)
            .await
            .step(&format!("{what}: {step}"))
    };
    match ending {
        Ending::LoginThenLogout => {}
        Ending::GraceThenLogout => {
            rotate(&a, "rotation").await?;
            let grace = rotate(&a, "grace").await?;
            assert_eq!(grace.kind, RotationKind::Grace, "{what}");
        }
        Ending::Reuse => {
            let b = rotate(&a, "rotation a").await?;
            rotate(b.refresh_token.expose(), "rotation b").await?;
            let reused = engine.rotate(&a, None, mint).await;
            assert!(
                matches!(&reused, Err(RefreshError::Reused(r)) if r.session_revocation_error.is_none()),
                "{what}: the grandparent is reuse: {reused:?}"
            );
            return Ok(login.family_id);
        }
    }
    let found = engine
        .revoke_family(&login.family_id)
        .await
        .step(&format!("{what}: revoke_family"))?;
    assert!(found, "{what}: the family is live when it is revoked");
    Ok(login.family_id)
}

/// An access token minted to expire later than its rotation's store step covered is recorded
/// with the family before it is handed out; if the family was revoked in between (a logout
/// racing the refresh), the token is withheld: `Revoked`, for a rotation and for a grace
/// retry.
pub async fn a_token_outliving_a_revocation_is_withheld(env: RefreshEnv) -> CaseResult {
    let faulty = Arc::new(FaultyStore::new(Arc::clone(&env.store)));
    let long = Minter::new(engine_clock(&env), 2 * ACCESS);
    let f = Suite::with(&env, faulty.clone(), config(&env))?.minting(long);
    for grace in [false, true] {
        let login = f.login("alice").await?;
        let token = login.refresh_token.expose().to_owned();
        if grace {
            f.rotate_ok(&token, None, "a rotation before the grace retry")
                .await?;
        }
        faulty.set(REVOKE_BEFORE_RECORD);
        let r = f.rotate(&token, None).await;
        faulty.set(HEALTHY);
        assert!(
            matches!(&r, Err(RefreshError::Revoked { family_id }) if *family_id == login.family_id),
            "a longer-lived access token of a family revoked while it was minted must be \
             withheld (grace retry: {grace}): {r:?}"
        );
    }
    Ok(())
}
