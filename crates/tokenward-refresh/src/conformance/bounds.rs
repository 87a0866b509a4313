//! What one subject can make a store hold: a revoked family is a tombstone that frees its
//! slot, and live families per subject are capped.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::UnixTime;
use tokenward_core::conformance::advance_past;

use super::support::{Chain, Suite, config, sub};
use super::{CaseResult, ConformanceError, RefreshEnv, Step};
use crate::{RefreshError, RotationResult};

/// The revoked retention of the store-level families here (`NewFamily::revoked_retention`).
const RETENTION: Duration = Duration::from_secs(1);

/// An `access_exp` far from anything the store compares with its clock.
fn exp(secs: u64) -> UnixTime {
    UnixTime::from_secs(4_000_000_000 + secs)
}

/// A revoked family — by `revoke` or by reuse — is a tombstone: it answers `Revoked` for any
/// of its tokens, is reported revoked by `get`, `revoke` and `record_access_exp` (which still
/// raises its `access_exp`), is not listed by `families_of`, and holds none of its token
/// hashes or sealed blobs any more; revoking it again does not extend it. After its
/// `revoked_retention` (1 s here) it is gone: its tokens are `Invalid`, every call reports
/// no family, and the store holds no more entries than before it was created.
pub async fn revoked_families_are_tombstones(env: RefreshEnv) -> CaseResult {
    let store = &*env.store;
    let probe = Arc::clone(&env.probe);
    let start = probe.stored_entries().await.step("stored_entries")?;
    for by_reuse in [false, true] {
        let what = if by_reuse {
            "revoked by reuse"
        } else {
            "revoked"
        };
        let (chain, a) = Chain::create_retained(store, "tomb", exp(0), RETENTION).await?;
        let b = chain.token()?;
        let c = chain.token()?;
        for (presented, successor) in [(&a, &b), (&b, &c)] {
            let r = store
                .rotate(chain.request(presented, successor, exp(0)))
                .await
                .step("rotate")?;
            assert!(matches!(r, RotationResult::Rotated(_)), "{what}: {r:?}");
        }
        let hashes = [a.hash(), b.hash(), c.hash()];
        let held = probe.stored_bytes().await.step("stored_bytes")?;
        assert!(
            held.iter().any(|v| v.as_slice() == c.hash().as_bytes()),
            "{what}: the probe must show the current token's hash while the family is live"
        );

        let d = chain.token()?;
        let info = if by_reuse {
            match store
                .rotate(chain.request(&a, &d, exp(0)))
                .await
                .step("rotate the grandparent")?
            {
                RotationResult::Reused { family, .. } => Some(family),
                other => {
                    return Err(ConformanceError::new(format!(
                        "{what}: the grandparent must be reuse, got {other:?}"
                    )));
                }
            }
        } else {
            store.revoke(&chain.family).await.step("revoke")?
        };
        let info = info.ok_or_else(|| ConformanceError::new(format!("{what}: no family")))?;
        assert!(info.revoked, "{what}: {info:?}");
        let latest = env
            .clock
            .now()
            .saturating_add(RETENTION)
            .saturating_add(env.clock.tolerance())
            .saturating_add(Duration::from_millis(1));
        assert!(
            info.expires_at <= latest,
            "{what}: a tombstone expires within its retention: {info:?}"
        );
        for token in [&a, &b, &c] {
            let r = store
                .rotate(chain.request(token, &d, exp(0)))
                .await
                .step("rotate a token of a tombstone")?;
            assert!(matches!(r, RotationResult::Revoked(_)), "{what}: {r:?}");
        }
        let raised = store
            .record_access_exp(&chain.family, exp(10))
            .await
            .step("record_access_exp")?;
        assert!(
            raised.is_some_and(|f| f.revoked && f.access_exp >= exp(10)),
            "{what}: a tombstone still records access-token expiries"
        );
        env.clock.advance(Duration::from_millis(100)).await;
        let again = store.revoke(&chain.family).await.step("revoke again")?;
        assert!(
            again.is_some_and(|f| f.revoked && f.expires_at == info.expires_at),
            "{what}: revoking a tombstone again must not extend it"
        );
        let listed = store.families_of(&sub("tomb")).await.step("families_of")?;
        assert!(
            listed.is_empty(),
            "{what}: a tombstone is listed: {listed:?}"
        );
        let held = probe.stored_bytes().await.step("stored_bytes")?;
        for hash in &hashes {
            assert!(
                !held.iter().any(|v| v.as_slice() == hash.as_bytes()),
                "{what}: a tombstone still holds a token hash or sealed blob of its family"
            );
        }

        advance_past(&*env.clock, RETENTION).await;
        let r = store
            .rotate(chain.request(&c, &d, exp(0)))
            .await
            .step("rotate after the retention")?;
        assert_eq!(r, RotationResult::Invalid, "{what}: after the retention");
        assert_eq!(store.get(&chain.family).await.step("get")?, None, "{what}");
        let raised = store
            .record_access_exp(&chain.family, exp(20))
            .await
            .step("record_access_exp")?;
        assert_eq!(
            raised, None,
            "{what}: record_access_exp after the retention"
        );
        assert_eq!(
            store.revoke(&chain.family).await.step("revoke")?,
            None,
            "{what}: revoke after the retention"
        );
        let now_held = probe.stored_entries().await.step("stored_entries")?;
        assert!(
            now_held <= start,
            "{what}: {now_held} entries held after the tombstone's retention, {start} before \
             its family was created"
        );
    }
    Ok(())
}

/// One subject looping login/logout (store level: `create` then `revoke`, 32 times, with a
/// 1 s retention) holds at most one entry per tombstone (nothing left in its index), and
/// once their retention has passed, the same loop again holds no more than one loop's
/// tombstones (plus a few not yet reclaimed): the store stays bounded however long it runs.
pub async fn a_login_logout_loop_stays_bounded(env: RefreshEnv) -> CaseResult {
    const ROUNDS: u64 = 32;
    /// Expired tombstones a backend may still hold after the second loop.
    const SLACK: u64 = 8;
    let store = &*env.store;
    let probe = Arc::clone(&env.probe);
    let entries = async || probe.stored_entries().await.step("stored_entries");
    let start = entries().await?;
    let round = async || -> Result<(), ConformanceError> {
        let (chain, _) = Chain::create_retained(store, "looper", exp(0), RETENTION).await?;
        let info = store.revoke(&chain.family).await.step("revoke")?;
        assert!(info.is_some_and(|f| f.revoked), "a live family is revoked");
        Ok(())
    };
    for _ in 0..ROUNDS {
        round().await?;
    }
    let held = entries().await?.saturating_sub(start);
    assert!(
        held <= ROUNDS,
        "{held} entries held after {ROUNDS} logins and logouts of one subject: a revoked \
         family may leave at most one (its tombstone), nothing in the subject's index"
    );
    advance_past(&*env.clock, RETENTION).await;
    for _ in 0..ROUNDS {
        round().await?;
    }
    let held = entries().await?.saturating_sub(start);
    assert!(
        held <= ROUNDS + SLACK,
        "{held} entries held after two loops of {ROUNDS} logins and logouts, the first one's \
         tombstones past their retention: revoked families must leave the store"
    );
    assert!(
        store
            .families_of(&sub("looper"))
            .await
            .step("families_of")?
            .is_empty()
    );
    Ok(())
}

/// `max_families_per_subject` (3 here): a login that takes a subject over it revokes the
/// oldest families — refresh tokens `Revoked`, sessions revoked — and never the new one;
/// "your devices" lists the newest three, oldest first; another subject is untouched, and a
/// logout makes room without revoking anything.
pub async fn the_family_cap_revokes_the_oldest(env: RefreshEnv) -> CaseResult {
    let f = Suite::with(
        &env,
        Arc::clone(&env.store),
        config(&env).max_families_per_subject(3),
    )?;
    let bobs = f.login("bob").await?;
    let mut logins = Vec::new();
    for _ in 0..5 {
        // Distinct creation times, also on a store keeping milliseconds.
        f.clock.advance(Duration::from_millis(5)).await;
        logins.push(f.login("carl").await?);
    }
    let ids = |list: &[crate::FamilyInfo]| list.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    let newest: Vec<_> = logins.iter().skip(2).map(|l| l.family_id.clone()).collect();
    assert_eq!(
        ids(&f.families("carl").await?),
        newest,
        "the three newest families stay, oldest first"
    );
    for old in logins.iter().take(2) {
        f.assert_revoked(old.refresh_token.expose(), "a family over the cap")
            .await;
        assert!(f.session_revoked(&old.family_id).await?);
    }
    for live in logins.iter().skip(2) {
        assert!(!f.session_revoked(&live.family_id).await?);
    }
    let r = f
        .rotate_ok(bobs.refresh_token.expose(), None, "bob is untouched")
        .await?;
    assert_eq!(r.sub, "bob");

    let logout = logins.get(3).map(|l| l.family_id.clone());
    let logout = logout.ok_or_else(|| ConformanceError::new("five logins"))?;
    assert!(f.engine.revoke_family(&logout).await.step("logout")?);
    f.clock.advance(Duration::from_millis(5)).await;
    let last = f.login("carl").await?;
    let live = ids(&f.families("carl").await?);
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(live.contains(&last.family_id));
    let oldest = logins.get(2).map(|l| l.refresh_token.expose().to_owned());
    let oldest = oldest.ok_or_else(|| ConformanceError::new("five logins"))?;
    let r = f.rotate(&oldest, None).await;
    assert!(
        !matches!(r, Err(RefreshError::Revoked { .. })),
        "a login after a logout stays within the cap and revokes nothing: {r:?}"
    );
    Ok(())
}
