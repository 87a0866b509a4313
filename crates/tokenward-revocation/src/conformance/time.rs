//! Cases: time — expiry at `until`, rounding, self-expiry without a cleanup job, past `until`s.

use super::*;

/// Entries of every rule match until their `until` and stop matching after it. An expired
/// id can be revoked again, from scratch (one wait of about a second).
pub async fn expiry(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(SHORT);
    let cutoff = now.saturating_add(secs(10));
    let iat = now;
    store
        .revoke_token(&id("ex-j"), until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session(&id("ex-s"), until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject(&id("ex-u"), cutoff, until)
        .await
        .step("revoke_subject")?;

    advance_to(&*clock, just_before(&*clock, until)).await;
    let why = "just before until";
    expect(store, &by_jti("ex-j"), BY_TOKEN, why).await?;
    expect(store, &by_sid("ex-s"), BY_SESSION, why).await?;
    expect(store, &by_sub("ex-u", Some(iat)), by_subject(cutoff), why).await?;

    advance_to(&*clock, just_after(&*clock, until)).await;
    let why = "after until the entry must be gone";
    expect(store, &by_jti("ex-j"), ACTIVE, why).await?;
    expect(store, &by_sid("ex-s"), ACTIVE, why).await?;
    expect(store, &by_sub("ex-u", Some(iat)), ACTIVE, why).await?;
    expect(store, &by_sub("ex-u", None), ACTIVE, why).await?;

    // Revoked again after expiry: a new entry, not the old one extended.
    let again = now_ms(&*clock).saturating_add(LONG);
    store
        .revoke_token(&id("ex-j"), again)
        .await
        .step("revoke_token again")?;
    expect(
        store,
        &by_jti("ex-j"),
        BY_TOKEN,
        "revoked again after expiry",
    )
    .await?;
    let earlier_cutoff = now;
    store
        .revoke_subject(&id("ex-u"), earlier_cutoff, again)
        .await
        .step("revoke_subject again")?;
    expect(
        store,
        &by_sub("ex-u", Some(iat)),
        ACTIVE,
        "an expired cutoff must not come back when the subject is revoked again",
    )
    .await?;
    let older = earlier_cutoff.saturating_sub(secs(1));
    let why = "the new cutoff applies";
    expect(
        store,
        &by_sub("ex-u", Some(older)),
        by_subject(earlier_cutoff),
        why,
    )
    .await
}

/// Times off the millisecond grid are kept or rounded the safe way — `until` and `before`
/// **up**, never down: an entry "until T" still matches 1 ns before T (exact clock), and a
/// token issued 1 ns before a subject cutoff is revoked (on any clock: `iat` is data).
pub async fn times_are_never_rounded_down(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    // 0.999999 ms past a millisecond: rounding down loses almost a whole millisecond.
    let off_grid = Duration::from_nanos(999_999);
    let now = now_ms(&*clock);
    let until = now.saturating_add(SHORT).saturating_add(off_grid);
    let before = now.saturating_add(secs(30)).saturating_add(off_grid);
    let long = now.saturating_add(LONG);
    store
        .revoke_token(&id("rd-j"), until)
        .await
        .step("revoke_token(rd-j)")?;
    store
        .revoke_session(&id("rd-s"), until)
        .await
        .step("revoke_session(rd-s)")?;
    store
        .revoke_subject(&id("rd-u"), before, long)
        .await
        .step("revoke_subject(rd-u)")?;
    let just_under = before.saturating_sub(Duration::from_nanos(1));
    let got = store
        .check(&by_sub("rd-u", Some(just_under)))
        .await
        .step("check of a token issued 1 ns before an off-grid cutoff")?;
    let reported = match got {
        RevocationStatus::Revoked(RevokedBy::Subject { before }) => Some(before),
        _ => None,
    };
    assert!(
        reported.is_some_and(|b| b >= before && b.saturating_duration_since(before) < ms(1)),
        "a token issued 1 ns before the cutoff {before:?} must be revoked by it, with the \
         cutoff reported as given or rounded up to the millisecond (never down); got {got:?}"
    );
    advance_to(&*clock, just_before(&*clock, until)).await;
    let why = "just before an off-grid until: `until` must not be rounded down";
    expect(store, &by_jti("rd-j"), BY_TOKEN, why).await?;
    expect(store, &by_sid("rd-s"), BY_SESSION, why).await?;
    // Rounded up by at most a millisecond: gone a millisecond later.
    advance_to(
        &*clock,
        just_after(&*clock, until.saturating_add(Duration::from_millis(1))),
    )
    .await;
    let why = "a millisecond after an off-grid until";
    expect(store, &by_jti("rd-j"), ACTIVE, why).await?;
    expect(store, &by_sid("rd-s"), ACTIVE, why).await
}

/// Expired entries leave the store on their own: after 64 entries (of every rule) have
/// expired and the store has been used for 64 more revokes, it holds at most the live
/// entries plus a few not yet reclaimed — no cleanup job needed (one wait of about a second).
/// Counted through the environment's [`StoreProbe::stored_entries`].
pub async fn expired_entries_are_removed(env: RevocationEnv) -> CaseResult {
    const SHORT_LIVED: u64 = 64;
    const LATER: u64 = 64;
    /// Expired entries a backend may still hold after the later writes (lazily expiring
    /// backends reclaim on access or in the background).
    const SLACK: u64 = 8;
    let RevocationEnv {
        store,
        clock,
        probe,
    } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(SHORT);
    for i in 0..SHORT_LIVED {
        let name = format!("px-{i}");
        let what = format!("revoke of short-lived {name}");
        match i % 3 {
            0 => store.revoke_token(&id(&name), until).await.step(&what)?,
            1 => store.revoke_session(&id(&name), until).await.step(&what)?,
            _ => store
                .revoke_subject(&id(&name), now, until)
                .await
                .step(&what)?,
        }
    }
    let held = probe
        .stored_entries()
        .await
        .step("StoreProbe::stored_entries")?;
    assert!(
        held >= SHORT_LIVED,
        "the probe counts {held} entries after {SHORT_LIVED} revokes: it must count what the \
         store holds for this case"
    );
    advance_to(&*clock, just_after(&*clock, until)).await;
    let long = now_ms(&*clock).saturating_add(LONG);
    for i in 0..LATER {
        store
            .revoke_token(&id(&format!("px-live-{i}")), long)
            .await
            .step("revoke_token of a long-lived entry")?;
    }
    let held = probe
        .stored_entries()
        .await
        .step("StoreProbe::stored_entries")?;
    assert!(
        held <= LATER + SLACK,
        "{held} entries held after {SHORT_LIVED} expired and {LATER} live ones were written: \
         expired entries must leave the store without a cleanup job"
    );
    assert!(
        held >= LATER,
        "{held} entries held, fewer than the {LATER} live ones: {LOST_ENTRY_HINT}"
    );
    expect(store, &by_jti("px-live-0"), BY_TOKEN, "a live entry").await
}

/// A revoke whose `until` is not in the future succeeds and changes nothing.
pub async fn past_until_is_a_noop(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    // An exact clock tests `until == now`; a real one stays clear of the boundary.
    let boundary = now.saturating_sub(clock.tolerance());
    for until in [UnixTime::EPOCH, now.saturating_sub(secs(10)), boundary] {
        let what = format!("until = {until:?}, now = {now:?}");
        store
            .revoke_token(&id("pu-j"), until)
            .await
            .step(&format!("revoke_token, {what}"))?;
        store
            .revoke_session(&id("pu-s"), until)
            .await
            .step(&format!("revoke_session, {what}"))?;
        store
            .revoke_subject(&id("pu-u"), now.saturating_add(secs(10)), until)
            .await
            .step(&format!("revoke_subject, {what}"))?;
        let why = format!("a revoke with {what} is a no-op");
        let full = token(Some("pu-j"), Some("pu-s"), Some("pu-u"), Some(now));
        expect(store, &full, ACTIVE, &why).await?;
        expect(store, &by_sub("pu-u", None), ACTIVE, &why).await?;
    }
    Ok(())
}
