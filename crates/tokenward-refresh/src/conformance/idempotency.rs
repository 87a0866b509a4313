//! Idempotency keys: replays, the grace behaviour around them, and the conditions under which
//! `record_response` writes.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::conformance::advance_past;

use super::support::{FaultyStore, GRACE, HEALTHY, SKIP_RECORD, Suite, config};
use super::{CaseResult, ConformanceError, RefreshEnv, Step};
use crate::{
    FamilyId, IdempotencyRecord, RefreshError, RefreshStore, RefreshToken, RotationKind, Sealed,
};

/// `record_response` straight on `store`: a made-up response (`fill`) for `key`, presented
/// with `presented` (a token string of the suite's family).
async fn record(
    store: &dyn RefreshStore,
    family: &FamilyId,
    presented: &str,
    key: &str,
    fill: u8,
) -> Result<bool, ConformanceError> {
    let token = RefreshToken::parse(presented)
        .ok_or("not a token")
        .step("parsing a token")?;
    let record = IdempotencyRecord::new(token.idempotency_key_hash(key), Sealed(vec![fill; 64]));
    store
        .record_response(family, &token.hash(), record)
        .await
        .step(&format!("record_response for {key}"))
}

/// The same token and idempotency key within the window, once the rotation recorded its
/// response, get the identical response; a replay racing before the record is written gets
/// the grace behaviour (same refresh token, new access token); a different key (or none)
/// gets the grace behaviour; invalid keys are refused up front. `record_response` writes
/// only for the rotating request's key, only while its token is the family's previous one,
/// and only once.
pub async fn idempotency_replay_and_grace(env: RefreshEnv) -> CaseResult {
    let faulty = Arc::new(FaultyStore::new(Arc::clone(&env.store)));
    let f = Suite::with(&env, faulty.clone(), config(&env))?;
    let store: &dyn RefreshStore = &*env.store;
    let login = f.login("alice").await?;
    let a = login.refresh_token.expose().to_owned();

    for bad in [
        String::new(),
        "k".repeat(crate::MAX_IDEMPOTENCY_KEY_LEN + 1),
    ] {
        let r = f.rotate(&a, Some(&bad)).await;
        assert!(
            matches!(r, Err(RefreshError::InvalidIdempotencyKey)),
            "{r:?}"
        );
    }

    let first = f
        .rotate_ok(&a, Some("key-1"), "rotation with key-1")
        .await?;
    assert_eq!(first.kind, RotationKind::Rotated);
    f.clock.advance(Duration::from_millis(100)).await;
    let replay = f.rotate_ok(&a, Some("key-1"), "replay with key-1").await?;
    assert_eq!(
        replay.kind,
        RotationKind::Replayed,
        "the keyed rotation recorded its response"
    );
    assert_eq!(replay.refresh_token, first.refresh_token);
    assert_eq!(
        replay.access_token, first.access_token,
        "the identical access token"
    );
    assert_eq!(replay.family_id, first.family_id);

    let other = f.rotate_ok(&a, Some("key-2"), "another key").await?;
    assert_eq!(other.kind, RotationKind::Grace);
    assert_eq!(other.refresh_token, first.refresh_token);
    assert_ne!(
        other.access_token, first.access_token,
        "a fresh access token"
    );
    let none = f.rotate_ok(&a, None, "no key").await?;
    assert_eq!(none.kind, RotationKind::Grace);
    assert_eq!(none.refresh_token, first.refresh_token);

    // A key never stored gives nothing away for a token rotated without one.
    let b = first.refresh_token.expose().to_owned();
    let c = f.rotate_ok(&b, None, "rotation without a key").await?;
    let keyed = f.rotate_ok(&b, Some("key-3"), "grace with a key").await?;
    assert_eq!(keyed.kind, RotationKind::Grace);
    assert_eq!(keyed.refresh_token, c.refresh_token);

    // Only the rotating request's key, and only for the family's previous token, can record
    // a response; a record is written once.
    let id = &login.family_id;
    let wrote = record(store, id, &b, "key-3", 0).await?;
    assert!(!wrote, "no record for a key the rotation did not store");
    let wrote = record(store, id, &a, "key-1", 0).await?;
    assert!(
        !wrote,
        "no record once the token is no longer the previous one"
    );

    // A replay racing before the response is recorded: the grace behaviour.
    let d = c.refresh_token.expose().to_owned();
    faulty.set(SKIP_RECORD);
    let unrecorded = f
        .rotate_ok(&d, Some("key-4"), "rotation whose record is late")
        .await?;
    assert_eq!(unrecorded.kind, RotationKind::Rotated);
    let early = f
        .rotate_ok(&d, Some("key-4"), "replay before the record")
        .await?;
    assert_eq!(early.kind, RotationKind::Grace);
    assert_eq!(early.refresh_token, unrecorded.refresh_token);
    assert_ne!(early.access_token, unrecorded.access_token);
    faulty.set(HEALTHY);
    let wrote = record(store, id, &d, "key-4", 0).await?;
    assert!(wrote, "the late record is accepted for the rotating key");
    let wrote = record(store, id, &d, "key-4", 1).await?;
    assert!(!wrote, "a response is recorded once");

    // After the window the same key does not help: reuse.
    advance_past(&*f.clock, GRACE).await;
    let late = f.rotate(&b, Some("key-3")).await;
    assert!(matches!(late, Err(RefreshError::Reused(_))), "{late:?}");
    Ok(())
}
