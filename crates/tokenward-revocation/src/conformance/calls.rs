//! Cases: how calls behave — one round trip, concurrency, use behind `Arc<dyn RevocationStore>`.

use super::*;

/// `check` is one round trip to the backend, whatever the token carries (jti, sid and sub
/// together): counted through [`StoreProbe::round_trips`]. Each revoke is one too.
pub async fn check_is_one_round_trip(env: RevocationEnv) -> CaseResult {
    let RevocationEnv {
        store,
        clock,
        probe,
    } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let rounds = |what: &str, before: u64| {
        let made = probe.round_trips().saturating_sub(before);
        assert!(
            made <= 1,
            "{what} made {made} round trips; the contract allows one"
        );
    };
    let start = probe.round_trips();
    store
        .revoke_token(&id("rt1-j"), until)
        .await
        .step("revoke_token")?;
    rounds("revoke_token", start);
    let start = probe.round_trips();
    store
        .revoke_session(&id("rt1-s"), until)
        .await
        .step("revoke_session")?;
    rounds("revoke_session", start);
    let start = probe.round_trips();
    store
        .revoke_subject(&id("rt1-u"), now, until)
        .await
        .step("revoke_subject")?;
    rounds("revoke_subject", start);
    for (token, expected) in [
        (
            token(Some("rt1-j"), Some("rt1-s"), Some("rt1-u"), None),
            BY_TOKEN,
        ),
        (
            token(Some("rt1-x"), Some("rt1-x"), Some("rt1-u"), Some(now)),
            ACTIVE,
        ),
        (token(None, None, None, None), ACTIVE),
    ] {
        let start = probe.round_trips();
        expect(store, &token, expected, "checked in one round trip").await?;
        rounds("check", start);
    }
    Ok(())
}

/// 64 tasks revoke and check at once: every revoke that returned `Ok` is visible to every
/// check that starts after it, from any task.
pub async fn concurrent_revokes_and_checks(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    const TASKS: usize = 64;
    const PER_TASK: usize = 8;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let before = now;
    let old = Some(now.saturating_sub(secs(60)));

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let store = &*store;
            for i in 0..PER_TASK {
                let jti = format!("cc-j-{task}-{i}");
                let step = format!("task {task}: revoke_token({jti})");
                store.revoke_token(&id(&jti), until).await.step(&step)?;
                let why = format!("task {task}: its own revoke, just acknowledged");
                expect(store, &by_jti(&jti), BY_TOKEN, &why).await?;
                let never = format!("cc-never-{task}-{i}");
                expect(store, &by_jti(&never), ACTIVE, "never revoked").await?;
                // Everybody also extends the same session and subject, with different untils.
                let mine = until.saturating_add(ms(u64::try_from(i).unwrap_or(0)));
                let step = format!("task {task}: revoke_session(cc-shared)");
                store
                    .revoke_session(&id("cc-shared"), mine)
                    .await
                    .step(&step)?;
                let step = format!("task {task}: revoke_subject(cc-shared)");
                store
                    .revoke_subject(&id("cc-shared"), before, mine)
                    .await
                    .step(&step)?;
                let shared = token(None, Some("cc-shared"), Some("cc-shared"), old);
                let why = format!("task {task}: the shared session");
                expect(store, &shared, BY_SESSION, &why).await?;
            }
            Ok::<(), ConformanceError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| ConformanceError::new(format!("a task failed: {e}")))??;
    }

    let store = &*store;
    for task in 0..TASKS {
        for i in 0..PER_TASK {
            let jti = format!("cc-j-{task}-{i}");
            expect(store, &by_jti(&jti), BY_TOKEN, "after all tasks finished").await?;
        }
    }
    let why = "after all tasks finished";
    expect(store, &by_sub("cc-shared", old), by_subject(before), why).await?;
    expect(store, &by_sid("cc-shared"), BY_SESSION, why).await
}

/// A store works as `Arc<dyn RevocationStore>`, through clones, nested `Arc`s and spawned
/// tasks, and is `Send + Sync + 'static`.
pub async fn works_behind_arc_dyn(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    fn assert_shareable<T: Send + Sync + 'static>(_: &T) {}
    assert_shareable(&store);

    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let nested: Arc<Arc<dyn RevocationStore>> = Arc::new(Arc::clone(&store));
    nested
        .revoke_token(&id("ad-1"), until)
        .await
        .step("revoke_token through Arc<Arc<dyn RevocationStore>>")?;
    expect(
        &*store,
        &by_jti("ad-1"),
        BY_TOKEN,
        "revoked through a nested Arc",
    )
    .await?;

    let spawned = Arc::clone(&store);
    joined(tokio::spawn(async move {
        spawned.revoke_session(&id("ad-2"), until).await
    }))
    .await?
    .step("revoke_session in a spawned task")?;
    let as_dyn: &dyn RevocationStore = &*store;
    expect(
        as_dyn,
        &by_sid("ad-2"),
        BY_SESSION,
        "revoked in a spawned task",
    )
    .await?;
    expect(
        &nested,
        &by_sid("ad-2"),
        BY_SESSION,
        "seen through a nested Arc",
    )
    .await
}
