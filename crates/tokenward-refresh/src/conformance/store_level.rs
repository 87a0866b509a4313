//! The contract of `RefreshStore` called directly, without the engine: classification,
//! atomicity against `revoke`, and the recorded access-token expiry.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use tokenward_core::UnixTime;
use tokenward_core::conformance::joined;

use super::support::{Chain, sub};
use super::{CaseResult, ConformanceError, RefreshEnv, Step};
use crate::{FamilyId, FamilyInfo, RefreshStore, ReuseKind, RotationResult};

/// An `access_exp` far from anything the store compares with its clock.
fn exp(secs: u64) -> UnixTime {
    UnixTime::from_secs(4_000_000_000 + secs)
}

/// `rotate` classifies in the contract's order: current → `Rotated`; previous within the
/// window → `Grace` with what the rotation stored; an unknown hash → `Invalid` without
/// revoking; an older hash → `Reused` (and the family is revoked); a revoked family →
/// `Revoked`, even for its current token.
pub async fn store_rotate_classifies(env: RefreshEnv) -> CaseResult {
    let store = &*env.store;
    let (chain, a) = Chain::create(store, "carol", exp(0)).await?;
    let b = chain.token()?;
    let c = chain.token()?;
    let d = chain.token()?;

    let r = store
        .rotate(chain.request(&a, &b, exp(0)))
        .await
        .step("rotate a")?;
    assert!(
        matches!(&r, RotationResult::Rotated(info) if info.sub == "carol" && !info.revoked),
        "{r:?}"
    );
    let r = store
        .rotate(chain.request(&a, &c, exp(0)))
        .await
        .step("rotate a again")?;
    assert!(
        matches!(&r, RotationResult::Grace { sealed_successor, idempotency: None, .. }
            if sealed_successor.as_bytes() == b.hash().as_bytes()),
        "the previous token within the window gets what its rotation stored: {r:?}"
    );
    let unknown = chain.token()?;
    let r = store
        .rotate(chain.request(&unknown, &c, exp(0)))
        .await
        .step("rotate unknown")?;
    assert_eq!(r, RotationResult::Invalid);
    let r = store
        .rotate(chain.request(&b, &c, exp(0)))
        .await
        .step("rotate b")?;
    assert!(matches!(r, RotationResult::Rotated(_)), "{r:?}");
    let info = store.get(&chain.family).await.step("get")?;
    assert!(info.is_some_and(|i| !i.revoked), "nothing revoked so far");

    let r = store
        .rotate(chain.request(&a, &d, exp(0)))
        .await
        .step("rotate the grandparent")?;
    assert!(
        matches!(&r, RotationResult::Reused { family, kind: ReuseKind::OlderToken }
            if family.revoked),
        "{r:?}"
    );
    let r = store
        .rotate(chain.request(&c, &d, exp(0)))
        .await
        .step("rotate the current token")?;
    assert!(
        matches!(r, RotationResult::Revoked(_)),
        "a revoked family never rotates: {r:?}"
    );
    let info = store.get(&chain.family).await.step("get")?;
    assert!(info.is_some_and(|i| i.revoked));
    let live = store.families_of(&sub("carol")).await.step("families_of")?;
    assert!(live.is_empty(), "a revoked family is not listed: {live:?}");

    let missing = Chain {
        rng: SystemRandom::new(),
        family: FamilyId::generate(&chain.rng).step("family id")?,
    };
    let r = store
        .rotate(missing.request(&a, &b, exp(0)))
        .await
        .step("rotate a missing family")?;
    assert_eq!(r, RotationResult::Invalid);
    Ok(())
}

/// Concurrent `rotate`s and a `revoke` of the same family, straight on the store: once the
/// revoke has returned, no successor any of them installed rotates.
pub async fn store_rotate_races_revoke(env: RefreshEnv) -> CaseResult {
    let store = Arc::clone(&env.store);
    for round in 0..10 {
        let (chain, first) = Chain::create(&*store, "carol", exp(0)).await?;
        let chain = Arc::new(chain);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, chain, first) = (Arc::clone(&store), Arc::clone(&chain), first.clone());
            tasks.push(tokio::spawn(async move {
                let next = chain.token()?;
                let r = store
                    .rotate(chain.request(&first, &next, exp(0)))
                    .await
                    .step("rotate")?;
                Ok::<_, ConformanceError>(matches!(r, RotationResult::Rotated(_)).then_some(next))
            }));
        }
        let revoker = Arc::clone(&store);
        let id = chain.family.clone();
        tasks.push(tokio::spawn(async move {
            revoker.revoke(&id).await.step("revoke")?;
            Ok(None)
        }));
        let mut installed = Vec::new();
        for task in tasks {
            installed.extend(joined(task).await??);
        }
        assert!(
            installed.len() <= 1,
            "round {round}: at most one rotation wins"
        );
        for token in installed {
            let next = chain.token()?;
            let r = store
                .rotate(chain.request(&token, &next, exp(0)))
                .await
                .step("rotate")?;
            assert!(
                matches!(r, RotationResult::Revoked(_)),
                "round {round}: a successor is live in a revoked family: {r:?}"
            );
        }
    }
    Ok(())
}

/// The family of a step that granted a response (`Rotated` or `Grace`).
fn granted(r: RotationResult, what: &str) -> Result<FamilyInfo, ConformanceError> {
    match r {
        RotationResult::Rotated(family) | RotationResult::Grace { family, .. } => Ok(family),
        other => Err(ConformanceError::new(format!(
            "{what}: expected Rotated or Grace, got {other:?}"
        ))),
    }
}

/// Asserts `family`'s `access_exp` is `want`, or `want` rounded up to the millisecond.
fn assert_access_exp(family: Option<&FamilyInfo>, want: UnixTime, why: &str) {
    let got = family.map(|f| f.access_exp);
    assert!(
        got.is_some_and(
            |got| got >= want && got.saturating_duration_since(want) < Duration::from_millis(1)
        ),
        "{why}: access_exp {:?} after the epoch, expected {:?} (or rounded up to the \
         millisecond, never down)",
        got.map(UnixTime::as_duration),
        want.as_duration()
    );
}

/// A family's `access_exp` is the latest of every value it was given — at create, by
/// rotations and grace steps, by `record_access_exp` (also on a revoked family) — kept off
/// the millisecond grid or rounded up, never down, and reported by every call that returns
/// the family. `record_access_exp` of a missing family is `None`.
pub async fn access_exp_only_grows(env: RefreshEnv) -> CaseResult {
    let store = &*env.store;
    let off_grid = Duration::from_nanos(999_999);
    let at = |secs| exp(secs).saturating_add(off_grid);
    let (chain, a) = Chain::create(store, "erin", at(10)).await?;
    let info = store.get(&chain.family).await.step("get")?;
    assert_access_exp(info.as_ref(), at(10), "after create");

    let b = chain.token()?;
    let r = store
        .rotate(chain.request(&a, &b, at(5)))
        .await
        .step("rotate with an earlier access_exp")?;
    let info = granted(r, "rotate a")?;
    assert_access_exp(Some(&info), at(10), "a rotation never lowers it");
    let c = chain.token()?;
    let r = store
        .rotate(chain.request(&b, &c, at(20)))
        .await
        .step("rotate with a later access_exp")?;
    let info = granted(r, "rotate b")?;
    assert_access_exp(Some(&info), at(20), "a rotation raises it");
    let r = store
        .rotate(chain.request(&b, &c, at(30)))
        .await
        .step("grace with a later access_exp")?;
    assert!(matches!(r, RotationResult::Grace { .. }), "grace b: {r:?}");
    let family = granted(r, "grace b")?;
    assert_access_exp(Some(&family), at(30), "a grace step raises it");

    let info = store
        .record_access_exp(&chain.family, at(25))
        .await
        .step("record_access_exp of an earlier exp")?;
    assert_access_exp(info.as_ref(), at(30), "record_access_exp never lowers it");
    let info = store
        .record_access_exp(&chain.family, at(40))
        .await
        .step("record_access_exp of a later exp")?;
    assert_access_exp(info.as_ref(), at(40), "record_access_exp raises it");

    let r = store
        .rotate(chain.request(&a, &b, at(0)))
        .await
        .step("rotate the grandparent")?;
    assert!(matches!(r, RotationResult::Reused { .. }), "{r:?}");
    let info = store
        .record_access_exp(&chain.family, at(50))
        .await
        .step("record_access_exp of a revoked family")?;
    assert!(
        info.as_ref().is_some_and(|i| i.revoked),
        "a revoked family is reported, revoked: {info:?}"
    );
    assert_access_exp(
        info.as_ref(),
        at(50),
        "record_access_exp on a revoked family",
    );
    let info = store.revoke(&chain.family).await.step("revoke")?;
    assert_access_exp(info.as_ref(), at(50), "revoke reports it");
    let info = store.get(&chain.family).await.step("get")?;
    assert_access_exp(info.as_ref(), at(50), "get reports it");

    let missing = FamilyId::generate(&chain.rng).step("family id")?;
    let info = store
        .record_access_exp(&missing, at(60))
        .await
        .step("record_access_exp of a missing family")?;
    assert_eq!(info, None, "a missing family is not created");
    Ok(())
}
