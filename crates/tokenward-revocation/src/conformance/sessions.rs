//! Cases: the subject cutoff for tokens without a session
//! ([`RevocationStore::revoke_subject_without_session`]), the half of "sign out everywhere"
//! that an application knowing its sessions pairs with revoking each session by `sid`.

use super::*;

/// The rule revokes the subject's tokens without a `sid` issued before the cutoff (or without
/// `iat`) and leaves every token with a `sid` to its session's rule.
pub async fn sessionless_subject_rule(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let before = now.saturating_add(secs(30));
    store
        .revoke_subject_without_session(&id("sl-alice"), before, now.saturating_add(LONG))
        .await
        .step("revoke_subject_without_session(sl-alice)")?;
    let old = now.saturating_sub(secs(60));
    // Issued "in the future" by an issuer whose clock runs ahead, before the sign-out.
    let ahead = now.saturating_add(secs(20));
    let after = before.saturating_add(secs(1));
    for (iat, what) in [
        (Some(old), "iat < before"),
        (Some(ahead), "an issuer's clock ahead"),
        (None, "no iat"),
    ] {
        expect(store, &by_sub("sl-alice", iat), by_subject(before), what).await?;
        let with_jti = token(Some("sl-j"), None, Some("sl-alice"), iat);
        expect(store, &with_jti, by_subject(before), what).await?;
    }
    expect(
        store,
        &by_sub("sl-alice", Some(after)),
        ACTIVE,
        "iat after before",
    )
    .await?;
    // A token with a session is left to its session's rule, however old.
    for iat in [Some(old), Some(ahead), None] {
        let with_session = token(Some("sl-j"), Some("sl-s"), Some("sl-alice"), iat);
        expect(store, &with_session, ACTIVE, "a token with a sid").await?;
    }
    store
        .revoke_session(&id("sl-s"), now.saturating_add(LONG))
        .await
        .step("revoke_session(sl-s)")?;
    let with_session = token(None, Some("sl-s"), Some("sl-alice"), Some(old));
    expect(store, &with_session, BY_SESSION, "its session revoked").await?;
    expect(
        store,
        &by_sub("sl-bob", Some(old)),
        ACTIVE,
        "another subject",
    )
    .await
}

/// The two subject rules are separate entries: each keeps its own cutoff, neither extends or
/// shortens the other, and a token without a session is revoked by whichever catches it.
pub async fn subject_rules_are_separate(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let all = now.saturating_sub(secs(100));
    let sessionless = now.saturating_sub(secs(10));
    store
        .revoke_subject(&id("sr-u"), all, until)
        .await
        .step("revoke_subject")?;
    store
        .revoke_subject_without_session(&id("sr-u"), sessionless, until)
        .await
        .step("revoke_subject_without_session")?;
    let between = now.saturating_sub(secs(50));
    let older = now.saturating_sub(secs(200));
    expect(
        store,
        &by_sub("sr-u", Some(between)),
        by_subject(sessionless),
        "no sid, between the cutoffs",
    )
    .await?;
    let with_session = token(None, Some("sr-s"), Some("sr-u"), Some(between));
    expect(store, &with_session, ACTIVE, "a sid, between the cutoffs").await?;
    let with_session = token(None, Some("sr-s"), Some("sr-u"), Some(older));
    expect(store, &with_session, by_subject(all), "a sid, before both").await?;
    expect(store, &by_sub("sr-u", Some(now)), ACTIVE, "after both").await?;
    // The sessionless rule does not reach into the other rules' namespaces.
    expect(store, &by_jti("sr-u"), ACTIVE, "a jti equal to the subject").await?;
    let session_named = token(None, Some("sr-u"), Some("sr-x"), Some(older));
    expect(store, &session_named, ACTIVE, "a sid equal to the subject").await
}
