//! Cases: the three rules (token, session, subject cutoff), how they extend and which wins.

use super::*;

/// A revoked `jti` is reported as [`RevokedBy::Token`]; other tokens are not affected.
pub async fn revoke_token_then_check(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    store
        .revoke_token(&id("rt-1"), until)
        .await
        .step("revoke_token(rt-1)")?;
    let full = token(Some("rt-1"), Some("rt-s"), Some("rt-u"), Some(now));
    expect(store, &full, BY_TOKEN, "a revoked jti").await?;
    expect(store, &by_jti("rt-1"), BY_TOKEN, "a revoked jti alone").await?;
    expect(store, &by_jti("rt-2"), ACTIVE, "another jti").await?;
    let same_session = token(Some("rt-2"), Some("rt-s"), Some("rt-u"), Some(now));
    expect(
        store,
        &same_session,
        ACTIVE,
        "a sibling token (same sid, sub)",
    )
    .await?;
    expect(
        store,
        &token(None, None, None, None),
        ACTIVE,
        "a token without ids",
    )
    .await
}

/// Nothing is revoked in an empty store, nor by unrelated revocations.
pub async fn unknown_tokens_are_active(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let full = token(Some("uk-j"), Some("uk-s"), Some("uk-u"), Some(now));
    expect(store, &full, ACTIVE, "an empty store").await?;
    expect(
        store,
        &token(None, None, None, None),
        ACTIVE,
        "no ids, empty store",
    )
    .await?;
    expect(
        store,
        &token(None, None, None, Some(now)),
        ACTIVE,
        "only iat",
    )
    .await?;

    let until = now.saturating_add(LONG);
    store
        .revoke_token(&id("uk-other-j"), until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session(&id("uk-other-s"), until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject(&id("uk-other-u"), now.saturating_add(secs(1)), until)
        .await
        .step("revoke_subject")?;
    expect(store, &full, ACTIVE, "unrelated revocations").await?;
    expect(
        store,
        &by_sub("uk-u", None),
        ACTIVE,
        "unrelated subject, no iat",
    )
    .await
}

/// Revoking twice is fine, and a second revoke never shortens the first: `until` only grows,
/// for every rule (one wait of about a second).
pub async fn idempotent_revokes(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let short = now.saturating_add(SHORT);
    let long = now.saturating_add(LONG);
    let cutoff = now;
    let iat = now.saturating_sub(secs(10));

    for _ in 0..2 {
        store
            .revoke_token(&id("id-twice"), long)
            .await
            .step("revoke_token(id-twice), twice")?;
        store
            .revoke_session(&id("id-twice"), long)
            .await
            .step("revoke_session(id-twice), twice")?;
        store
            .revoke_subject(&id("id-twice"), cutoff, long)
            .await
            .step("revoke_subject(id-twice), twice")?;
    }
    // Long then short, and short then long: both must end up long.
    for (name, first, second) in [("id-ls", long, short), ("id-sl", short, long)] {
        store
            .revoke_token(&id(name), first)
            .await
            .step("revoke_token")?;
        store
            .revoke_token(&id(name), second)
            .await
            .step("revoke_token again")?;
        store
            .revoke_session(&id(name), first)
            .await
            .step("revoke_session")?;
        store
            .revoke_session(&id(name), second)
            .await
            .step("revoke_session again")?;
        store
            .revoke_subject(&id(name), cutoff, first)
            .await
            .step("revoke_subject")?;
        store
            .revoke_subject(&id(name), cutoff, second)
            .await
            .step("revoke_subject again")?;
    }

    advance_to(&*clock, just_after(&*clock, short)).await;
    for id in ["id-twice", "id-ls", "id-sl"] {
        let why = format!("{id}: a later revoke must not shorten an earlier one");
        expect(store, &by_jti(id), BY_TOKEN, &why).await?;
        expect(store, &by_sid(id), BY_SESSION, &why).await?;
        expect(store, &by_sub(id, Some(iat)), by_subject(cutoff), &why).await?;
    }
    Ok(())
}

/// A revoked session revokes every token carrying its `sid`, whatever their `jti`.
pub async fn session_rule(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    store
        .revoke_session(&id("sr-s1"), now.saturating_add(LONG))
        .await
        .step("revoke_session(sr-s1)")?;
    let why = "a token of a revoked session";
    expect(store, &by_sid("sr-s1"), BY_SESSION, why).await?;
    let t1 = token(Some("sr-j1"), Some("sr-s1"), Some("sr-u"), Some(now));
    expect(store, &t1, BY_SESSION, why).await?;
    let t2 = token(Some("sr-j2"), Some("sr-s1"), None, None);
    expect(store, &t2, BY_SESSION, why).await?;
    let other = token(Some("sr-j3"), Some("sr-s2"), Some("sr-u"), Some(now));
    expect(store, &other, ACTIVE, "a token of another session").await?;
    let no_sid = token(Some("sr-j4"), None, Some("sr-u"), Some(now));
    expect(store, &no_sid, ACTIVE, "a token without sid").await
}

/// A subject cutoff revokes that subject's tokens issued before it, and those without `iat`;
/// later tokens and other subjects stay active.
pub async fn subject_rule(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let before = now;
    store
        .revoke_subject(&id("sj-alice"), before, now.saturating_add(LONG))
        .await
        .step("revoke_subject(sj-alice)")?;
    let old = before.saturating_sub(secs(60));
    let new = before.saturating_add(secs(5));
    expect(
        store,
        &by_sub("sj-alice", Some(old)),
        by_subject(before),
        "iat < before",
    )
    .await?;
    let full = token(Some("sj-j"), Some("sj-s"), Some("sj-alice"), Some(old));
    expect(
        store,
        &full,
        by_subject(before),
        "iat < before, with jti and sid",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-alice", Some(new)),
        ACTIVE,
        "iat after before",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-alice", None),
        by_subject(before),
        "no iat: it cannot prove it is newer",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-bob", Some(old)),
        ACTIVE,
        "another subject",
    )
    .await?;
    expect(
        store,
        &by_sub("sj-bob", None),
        ACTIVE,
        "another subject, no iat",
    )
    .await?;
    expect(
        store,
        &token(Some("sj-j"), None, None, Some(old)),
        ACTIVE,
        "a token without sub",
    )
    .await
}

/// The cutoff is exclusive: `iat == before` is active, a millisecond earlier is revoked. Also
/// the "sign out everywhere" recipe from [`RevocationStore::revoke_subject`].
pub async fn subject_cutoff_exactly_at_boundary(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = clock.now();
    let before = UnixTime::from_secs(now.as_secs());
    let until = before.saturating_add(LONG);
    store
        .revoke_subject(&id("cb-u"), before, until)
        .await
        .step("revoke_subject(cb-u)")?;
    let revoked = by_subject(before);
    for (iat, expected, why) in [
        (before, ACTIVE, "iat == before"),
        (before.saturating_add(ms(1)), ACTIVE, "iat == before + 1 ms"),
        (
            before.saturating_add(secs(1)),
            ACTIVE,
            "iat == before + 1 s",
        ),
        (
            before.saturating_sub(ms(1)),
            revoked,
            "iat == before - 1 ms",
        ),
        (
            before.saturating_sub(secs(1)),
            revoked,
            "iat == before - 1 s",
        ),
        (UnixTime::EPOCH, revoked, "iat == 0"),
    ] {
        expect(store, &by_sub("cb-u", Some(iat)), expected, why).await?;
    }

    // Sign out everywhere at `now`: tokens issued in the current second are included.
    let signed_out = UnixTime::from_secs(now.as_secs()).saturating_add(secs(1));
    store
        .revoke_subject(&id("cb-v"), signed_out, signed_out.saturating_add(LONG))
        .await
        .step("revoke_subject(cb-v)")?;
    let issued_now = UnixTime::from_secs(now.as_secs());
    expect(
        store,
        &by_sub("cb-v", Some(issued_now)),
        by_subject(signed_out),
        "sign out everywhere includes tokens issued this second",
    )
    .await
}

/// Revoking a subject again keeps the later cutoff and, independently, the later `until`
/// (one wait of about a second).
pub async fn later_cutoff_wins(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let long = now.saturating_add(LONG);
    let early = now;
    let late = now.saturating_add(secs(10));
    let between = now.saturating_add(secs(5));

    store
        .revoke_subject(&id("lc-u"), early, long)
        .await
        .step("revoke_subject(early)")?;
    expect(
        store,
        &by_sub("lc-u", Some(between)),
        ACTIVE,
        "issued after the cutoff",
    )
    .await?;
    store
        .revoke_subject(&id("lc-u"), late, long)
        .await
        .step("revoke_subject(late)")?;
    let why = "a later cutoff extends the rule";
    expect(store, &by_sub("lc-u", Some(between)), by_subject(late), why).await?;
    store
        .revoke_subject(&id("lc-u"), early, long)
        .await
        .step("revoke_subject(early) again")?;
    let why = "an earlier cutoff must not shrink the rule";
    expect(store, &by_sub("lc-u", Some(between)), by_subject(late), why).await?;

    // Later cutoff with the earlier `until`, then earlier cutoff with the later `until`:
    // the rule must keep both maxima.
    let short = now.saturating_add(SHORT);
    store
        .revoke_subject(&id("lc-v"), late, short)
        .await
        .step("revoke_subject(late, short)")?;
    store
        .revoke_subject(&id("lc-v"), early, long)
        .await
        .step("revoke_subject(early, long)")?;
    advance_to(&*clock, just_after(&*clock, short)).await;
    expect(
        store,
        &by_sub("lc-v", Some(between)),
        by_subject(late),
        "the later cutoff and the later until are both kept",
    )
    .await
}

/// When several rules match, the token rule wins, then the session rule, then the subject.
pub async fn precedence(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let before = now;
    let iat = Some(now.saturating_sub(secs(60)));
    store
        .revoke_token(&id("pr-j"), until)
        .await
        .step("revoke_token")?;
    store
        .revoke_session(&id("pr-s"), until)
        .await
        .step("revoke_session")?;
    store
        .revoke_subject(&id("pr-u"), before, until)
        .await
        .step("revoke_subject")?;

    let all = token(Some("pr-j"), Some("pr-s"), Some("pr-u"), iat);
    expect(store, &all, BY_TOKEN, "token, session and subject match").await?;
    let token_sub = token(Some("pr-j"), None, Some("pr-u"), iat);
    expect(store, &token_sub, BY_TOKEN, "token and subject match").await?;
    let session_sub = token(Some("pr-other"), Some("pr-s"), Some("pr-u"), iat);
    expect(store, &session_sub, BY_SESSION, "session and subject match").await?;
    let sub_only = token(Some("pr-other"), Some("pr-other"), Some("pr-u"), iat);
    expect(
        store,
        &sub_only,
        by_subject(before),
        "only the subject matches",
    )
    .await?;
    let newer = token(Some("pr-other"), Some("pr-s"), Some("pr-u"), Some(now));
    expect(
        store,
        &newer,
        BY_SESSION,
        "session matches, subject does not",
    )
    .await
}
