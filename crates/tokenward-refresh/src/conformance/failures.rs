//! What a backend costs and what it must never do: outages are never reuse, nothing usable
//! is stored in plaintext, and a rotation is one round trip.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokenward_core::conformance::advance_past;

use super::support::{
    ACCESS, DOWN, FaultyStore, GRACE, HEALTHY, LOSE_ROTATE_REPLY, Minter, Suite, config,
    engine_clock,
};
use super::{CaseResult, RefreshEnv, Step};
use crate::{RefreshError, RotationKind};

/// A store error is "try again": never reuse, never a revocation. A rotation whose reply
/// was lost is retried within the window and gets the grace successor.
pub async fn store_errors_are_never_reuse(env: RefreshEnv) -> CaseResult {
    let faulty = Arc::new(FaultyStore::new(Arc::clone(&env.store)));
    let f = Suite::with(&env, faulty.clone(), config(&env))?;
    let login = f.login("alice").await?;
    let a = login.refresh_token.expose().to_owned();
    let b = f.rotate_ok(&a, None, "rotation").await?;

    faulty.set(DOWN);
    advance_past(&*f.clock, GRACE).await;
    for token in [a.as_str(), b.refresh_token.expose()] {
        let r = f.rotate(token, None).await;
        assert!(
            matches!(&r, Err(e @ RefreshError::Store(_)) if e.is_transient()),
            "an outage is a transient store error, not reuse: {r:?}"
        );
    }
    let r = f.engine.revoke_family(&login.family_id).await;
    assert!(matches!(r, Err(RefreshError::Store(_))), "{r:?}");
    assert!(
        !f.session_revoked(&login.family_id).await?,
        "nothing revoked"
    );

    faulty.set(HEALTHY);
    let c = f
        .rotate_ok(b.refresh_token.expose(), None, "after the outage")
        .await?;
    assert_eq!(
        c.kind,
        RotationKind::Rotated,
        "the family survived the outage"
    );

    faulty.set(LOSE_ROTATE_REPLY);
    let lost = f.rotate(c.refresh_token.expose(), None).await;
    assert!(matches!(lost, Err(RefreshError::Store(_))), "{lost:?}");
    faulty.set(HEALTHY);
    let retry = f
        .rotate_ok(c.refresh_token.expose(), None, "retry after a lost reply")
        .await?;
    assert_eq!(retry.kind, RotationKind::Grace);
    let next = f
        .rotate_ok(retry.refresh_token.expose(), None, "the retried successor")
        .await?;
    assert_eq!(next.kind, RotationKind::Rotated);
    assert!(!f.session_revoked(&login.family_id).await?);
    Ok(())
}

/// No stored byte contains a token (as a string or decoded), an access token handed out
/// with an idempotency key, or the idempotency key.
pub async fn no_plaintext_at_rest(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let login = f.login("alice").await?;
    let a = login.refresh_token.expose().to_owned();
    let b = f
        .rotate_ok(&a, Some("idem-key-plain"), "rotation with a key")
        .await?;
    let grace = f.rotate_ok(&a, None, "grace").await?;
    assert_eq!(grace.refresh_token, b.refresh_token);
    let login2 = f.login("alice").await?;

    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for token in [
        a.as_str(),
        b.refresh_token.expose(),
        login2.refresh_token.expose(),
    ] {
        secrets.push(token.as_bytes().to_vec());
        let body = token.strip_prefix(crate::TOKEN_PREFIX).unwrap_or(token);
        secrets.push(body.as_bytes().to_vec());
        let raw = URL_SAFE_NO_PAD.decode(body).step("decoding a token")?;
        // The 32-byte secret after the 16-byte family id.
        secrets.push(raw.get(16..).map(<[u8]>::to_vec).unwrap_or(raw));
    }
    secrets.push(b.access_token.as_bytes().to_vec());
    secrets.push(b"idem-key-plain".to_vec());

    let stored = f
        .probe
        .stored_bytes()
        .await
        .step("StoreProbe::stored_bytes")?;
    assert!(!stored.is_empty(), "the probe reports what the store holds");
    for blob in &stored {
        for secret in &secrets {
            assert!(
                !blob.windows(secret.len()).any(|w| w == secret.as_slice()),
                "a stored value contains a token, access token or idempotency key in plaintext"
            );
        }
    }
    Ok(())
}

/// A rotation without an idempotency key whose access token expires within the engine's
/// `max_access_token_lifetime` is exactly **one round trip** to the backend, counted by
/// [`StoreProbe::round_trips`](super::StoreProbe::round_trips) (an in-process store makes
/// none): when it rotates, gets the grace successor, is reuse, hits a revoked family or a
/// forged token. A replay is one round trip too; a keyed rotation, or one minting a
/// longer-lived access token, at most two; a malformed token none.
pub async fn one_round_trip_per_rotation(env: RefreshEnv) -> CaseResult {
    let f = Suite::new(&env)?;
    let probe = Arc::clone(&f.probe);
    let start = probe.round_trips();
    let login = f.login("dave").await?;
    // An in-process store counts no round trips at all.
    let one = u64::from(probe.round_trips() > start);
    let check = |what: &str, start: u64, most: u64, exact: bool| {
        let made = probe.round_trips().saturating_sub(start);
        let ok = if exact { made == most } else { made <= most };
        assert!(
            ok,
            "{what} made {made} round trips to the backend; the contract allows {}{most}",
            if exact { "exactly " } else { "at most " }
        );
    };

    let mut token = login.refresh_token.expose().to_owned();
    let mut previous = token.clone();
    for i in 0..5 {
        let start = probe.round_trips();
        let r = f.rotate_ok(&token, None, "rotation").await?;
        assert_eq!(r.kind, RotationKind::Rotated);
        assert_eq!(r.sub, "dave", "sub comes from the rotation itself");
        check(&format!("rotation {i}"), start, one, true);
        let start = probe.round_trips();
        let g = f.rotate_ok(&token, None, "grace").await?;
        assert_eq!(g.kind, RotationKind::Grace);
        check(&format!("grace {i}"), start, one, true);
        previous = token;
        token = r.refresh_token.expose().to_owned();
    }

    let start = probe.round_trips();
    let keyed = f.rotate_ok(&token, Some("k"), "keyed rotation").await?;
    assert_eq!(keyed.kind, RotationKind::Rotated);
    check("a keyed rotation", start, 2 * one, false);
    let start = probe.round_trips();
    let replay = f.rotate_ok(&token, Some("k"), "replay").await?;
    assert_eq!(replay.kind, RotationKind::Replayed);
    check("a replay", start, one, true);

    let long = Suite::new(&env)?.minting(Minter::new(engine_clock(&env), 2 * ACCESS));
    let start = probe.round_trips();
    let next = long
        .rotate_ok(
            keyed.refresh_token.expose(),
            None,
            "a rotation minting a longer token",
        )
        .await?;
    check(
        "a rotation minting a longer-lived access token",
        start,
        2 * one,
        false,
    );

    let start = probe.round_trips();
    let r = f.rotate(&previous, None).await;
    assert!(matches!(r, Err(RefreshError::Reused(_))), "{r:?}");
    check("a rotation detecting reuse", start, one, true);
    let start = probe.round_trips();
    let r = f.rotate(next.refresh_token.expose(), None).await;
    assert!(matches!(r, Err(RefreshError::Revoked { .. })), "{r:?}");
    check("a rotation of a revoked family", start, one, true);
    let start = probe.round_trips();
    let r = f.rotate("twr_not-a-token", None).await;
    assert!(matches!(r, Err(RefreshError::Invalid)), "{r:?}");
    check("a malformed token", start, 0, true);
    Ok(())
}
