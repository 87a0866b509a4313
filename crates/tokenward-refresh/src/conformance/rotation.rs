//! The rotation rules through the engine: rotate, grace, reuse, revocation, forgeries, and
//! subjects as opaque ids.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use tokenward_core::conformance::{advance_past, joined};
use tokenward_core::{MAX_ID_LEN, UnixTime};

use super::support::{GRACE, Suite, sub};
use super::{CaseResult, RefreshEnv, Step};
use crate::{FamilyId, RefreshError, RefreshToken, ReuseKind, RotationKind};

/// A login yields a family and a `twr_` token; each rotation yields a new token that works,
/// with the family's sub and id; "your devices" lists the family with its last use.
pub async fn issue_and_rotate(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let login = f.login("alice").await?;
    assert!(
        login
            .refresh_token
            .expose()
            .starts_with(crate::TOKEN_PREFIX)
    );
    assert_eq!(login.refresh_token.family_id(), &login.family_id);
    assert!(login.access_token.contains(login.family_id.as_str()));
    let listed = f.families("alice").await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed.first().map(|fam| &fam.id), Some(&login.family_id));

    let mut token = login.refresh_token.expose().to_owned();
    for i in 0..5 {
        f.clock.advance(Duration::from_millis(10)).await;
        let r = f.rotate_ok(&token, None, &format!("rotation {i}")).await?;
        assert_eq!(r.kind, RotationKind::Rotated, "rotation {i}");
        assert_eq!(r.family_id, login.family_id);
        assert_eq!(r.sub, "alice");
        assert!(
            r.access_token.contains(login.family_id.as_str()),
            "minted for the family"
        );
        assert_ne!(r.refresh_token.expose(), token, "a new token each time");
        token = r.refresh_token.expose().to_owned();
    }
    let listed = f.families("alice").await?;
    let fam = listed.first().map(|fam| (fam.created, fam.last_used));
    let (created_at, last_used) = fam.unwrap_or((UnixTime::EPOCH, UnixTime::EPOCH));
    assert!(last_used > created_at, "last use moves with rotations");
    assert!(f.families("bob").await?.is_empty());
    assert!(!f.session_revoked(&login.family_id).await?);
    Ok(())
}

/// 100 concurrent rotations of the same token all succeed and return one identical
/// successor, which then rotates normally.
pub async fn concurrent_rotations_share_one_successor(env: RefreshEnv) -> CaseResult {
    let f = Arc::new(Suite::new(&env)?);
    let login = f.login("alice").await?;
    let token = login.refresh_token.expose().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let f = Arc::clone(&f);
        let token = token.clone();
        tasks.push(tokio::spawn(async move { f.rotate(&token, None).await }));
    }
    let mut successors = Vec::new();
    let mut rotated = 0;
    for task in tasks {
        let r = joined(task).await?.step("a concurrent rotation")?;
        if r.kind == RotationKind::Rotated {
            rotated += 1;
        }
        successors.push(r.refresh_token.expose().to_owned());
    }
    assert_eq!(
        rotated, 1,
        "exactly one request rotates, the others get grace"
    );
    successors.dedup();
    assert_eq!(successors.len(), 1, "every request got the same successor");
    let next = successors.first().cloned().unwrap_or_default();
    let r = f
        .rotate_ok(&next, None, "rotating the shared successor")
        .await?;
    assert_eq!(r.kind, RotationKind::Rotated);
    Ok(())
}

/// The predecessor presented after the grace window is reuse: the family is revoked, its
/// newest token is dead, and its `sid` is revoked in the `RevocationStore`.
pub async fn reuse_after_window_revokes_family(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let login = f.login("alice").await?;
    let first = login.refresh_token.expose().to_owned();
    let r1 = f.rotate_ok(&first, None, "rotation").await?;
    advance_past(&*f.clock, GRACE).await;

    let reused = f.rotate(&first, None).await;
    assert!(
        matches!(&reused, Err(RefreshError::Reused(report))
            if report.family_id == login.family_id
                && report.sub == "alice"
                && report.kind == ReuseKind::PredecessorAfterWindow
                && report.session_revocation_error.is_none()),
        "the predecessor after the window must be Reused: {reused:?}"
    );
    let why = "the newest token of a reused family is dead";
    f.assert_revoked(r1.refresh_token.expose(), why).await;
    assert!(
        f.session_revoked(&login.family_id).await?,
        "the sid is revoked"
    );
    assert!(f.families("alice").await?.is_empty());
    Ok(())
}

/// A grandparent, even within the grace window, is reuse.
pub async fn grandparent_within_window_is_reuse(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let login = f.login("alice").await?;
    let a = login.refresh_token.expose().to_owned();
    let b = f.rotate_ok(&a, None, "rotation a").await?;
    let c = f
        .rotate_ok(b.refresh_token.expose(), None, "rotation b")
        .await?;
    let result = f.rotate(&a, None).await;
    assert!(
        matches!(&result, Err(RefreshError::Reused(report))
            if report.kind == ReuseKind::OlderToken),
        "a grandparent is Reused (an older token): {result:?}"
    );
    f.assert_revoked(
        c.refresh_token.expose(),
        "the newest token of a reused family",
    )
    .await;
    assert!(f.session_revoked(&login.family_id).await?);
    Ok(())
}

/// Rotations racing with the revocation of their family never leave a live successor: every
/// token handed out is rejected once the revocation has returned.
pub async fn rotation_racing_revocation_leaves_nothing_live(env: RefreshEnv) -> CaseResult {
    let f = Arc::new(Suite::new(&env)?);
    for round in 0..10 {
        let login = f.login("alice").await?;
        let token = login.refresh_token.expose().to_owned();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let f = Arc::clone(&f);
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                f.rotate(&token, None).await.map(Some)
            }));
        }
        let revoker = Arc::clone(&f);
        let id = login.family_id.clone();
        tasks.push(tokio::spawn(async move {
            revoker.engine.revoke_family(&id).await.map(|_| None)
        }));
        let mut handed_out = Vec::new();
        for task in tasks {
            let outcome = joined(task).await?;
            assert!(
                matches!(outcome, Ok(_) | Err(RefreshError::Revoked { .. })),
                "round {round}: unexpected outcome {outcome:?}"
            );
            if let Ok(Some(r)) = outcome {
                handed_out.push(r.refresh_token.expose().to_owned());
            }
        }
        for token in handed_out {
            let why = format!("round {round}: a successor handed out during the revocation");
            f.assert_revoked(&token, &why).await;
        }
        assert!(f.session_revoked(&login.family_id).await?);
    }
    Ok(())
}

/// Malformed, unknown and forged tokens are `Invalid`; a forged token naming a real family
/// does not revoke it.
pub async fn unknown_and_forged_tokens_are_invalid(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let login = f.login("alice").await?;
    let rng = SystemRandom::new();
    let forged = RefreshToken::generate(&rng, &login.family_id).step("forging")?;
    let unknown_family = FamilyId::generate(&rng).step("family id")?;
    let unknown = RefreshToken::generate(&rng, &unknown_family).step("token")?;
    let valid = login.refresh_token.expose();
    let cases = [
        String::new(),
        "twr_".into(),
        valid.replacen("twr_", "twx_", 1),
        format!("{valid}A"),
        valid.get(..valid.len() - 1).unwrap_or_default().to_owned(),
        valid.replacen('_', "+", 2),
        "twr_".to_owned() + &"é".repeat(32),
        forged.expose().to_owned(),
        unknown.expose().to_owned(),
    ];
    for (i, token) in cases.iter().enumerate() {
        let r = f.rotate(token, None).await;
        assert!(matches!(r, Err(RefreshError::Invalid)), "case {i}: {r:?}");
    }
    let r = f
        .rotate_ok(valid, None, "the real token after forgeries")
        .await?;
    assert_eq!(r.kind, RotationKind::Rotated);
    assert!(!f.session_revoked(&login.family_id).await?);
    Ok(())
}

/// Revoking a family kills its tokens and its sid; revoking a subject revokes all its
/// families and no one else's.
pub async fn revoke_family_and_subject(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let phone = f.login("alice").await?;
    let laptop = f.login("alice").await?;
    let tablet = f.login("alice").await?;
    let bobs = f.login("bob").await?;
    assert_eq!(f.families("alice").await?.len(), 3);

    let revoked = f
        .engine
        .revoke_family(&phone.family_id)
        .await
        .step("revoke_family")?;
    assert!(revoked);
    f.assert_revoked(phone.refresh_token.expose(), "a revoked family")
        .await;
    assert!(f.session_revoked(&phone.family_id).await?);
    assert!(!f.session_revoked(&laptop.family_id).await?);
    let unknown = FamilyId::generate(&SystemRandom::new()).step("family id")?;
    let found = f
        .engine
        .revoke_family(&unknown)
        .await
        .step("revoke unknown")?;
    assert!(!found);

    let devices = f.families("alice").await?;
    let ids: Vec<&FamilyId> = devices.iter().map(|d| &d.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&&laptop.family_id) && ids.contains(&&tablet.family_id));

    let count = f
        .engine
        .revoke_subject(&sub("alice"))
        .await
        .step("revoke_subject")?;
    assert_eq!(count, 2);
    for fam in [&laptop, &tablet] {
        f.assert_revoked(fam.refresh_token.expose(), "a family of a revoked subject")
            .await;
        assert!(f.session_revoked(&fam.family_id).await?);
    }
    assert!(f.families("alice").await?.is_empty());
    let r = f
        .rotate_ok(bobs.refresh_token.expose(), None, "bob is untouched")
        .await?;
    assert_eq!(r.kind, RotationKind::Rotated);
    assert_eq!(f.families("bob").await?.len(), 1);
    Ok(())
}

/// Subjects are opaque ids of any bytes up to [`MAX_ID_LEN`] (NUL cannot reach a store:
/// `StoreId` refuses it where it is made): the longest, multi-byte text, control and
/// bidirectional characters, key-pattern and hash-tag characters all round-trip through
/// login, rotation and "your devices" without aliasing — a subject differing from another
/// only in its last byte, or a prefix of it, is another subject.
pub async fn subjects_are_opaque_ids(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let longest = "s".repeat(MAX_ID_LEN);
    let longest_sibling = format!("{}t", "s".repeat(MAX_ID_LEN - 1));
    let multibyte = "é".repeat(MAX_ID_LEN / 2);
    let subjects = [
        longest.as_str(),
        multibyte.as_str(),
        "ctl-\u{1}\u{7f}\t\r\n",
        "bidi-\u{202e}\u{2066}",
        "{tag}x",
        "a:b*",
        "%s%n",
    ];
    for who in subjects {
        let what = format!("a subject of {} bytes ({:?}…)", who.len(), who.get(..12));
        let login = f.login(who).await?;
        let r = f
            .rotate_ok(login.refresh_token.expose(), None, &what)
            .await?;
        assert_eq!(
            r.sub, who,
            "{what}: the rotation reports the subject as given"
        );
        let listed = f.families(who).await?;
        assert_eq!(listed.len(), 1, "{what}: one family listed");
        assert!(
            listed
                .first()
                .is_some_and(|fam| fam.id == login.family_id && fam.sub == who),
            "{what}: its own family, with its subject"
        );
    }
    for other in [
        longest_sibling.as_str(),
        "ctl-\u{1}\u{7f}\t\r",
        "{tag}",
        "a:b",
    ] {
        assert!(
            f.families(other).await?.is_empty(),
            "a subject of {} bytes ({:?}…) only resembles one with a family",
            other.len(),
            other.get(..12).unwrap_or(other)
        );
    }
    let count = f
        .engine
        .revoke_subject(&sub(&longest_sibling))
        .await
        .step("revoke_subject of the sibling")?;
    assert_eq!(count, 0, "revoking a sibling subject revokes nothing");
    assert_eq!(f.families(&longest).await?.len(), 1);
    Ok(())
}
