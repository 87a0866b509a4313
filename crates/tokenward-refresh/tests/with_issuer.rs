//! End to end with real access tokens: the engine mints JWTs through `TokenIssuer` with
//! `sid` = the family id, an idempotent replay returns the identical JWT, and a reuse revokes
//! every access token of the family through the `RevocationStore`.

use std::sync::Arc;
use std::time::Duration;

use tokenward_claims::{
    AccessToken, Algorithm, Key, KeySet, TokenIssuer, ValidationPolicy, Validator, generate_pkcs8,
};
use tokenward_core::{ManualClock, UnixTime};
use tokenward_refresh::{
    MemoryRefreshStore, MintRequest, RefreshConfig, RefreshEngine, RefreshError, RotationKind,
};
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

#[tokio::test]
async fn access_tokens_carry_the_family_and_die_with_it() {
    let clock = ManualClock::new(UnixTime::from_secs(1_800_000_000));
    let pkcs8 = generate_pkcs8(Algorithm::EdDSA).unwrap();
    let keys = KeySet::single(Key::from_pkcs8_der("k1", Algorithm::EdDSA, &pkcs8).unwrap());
    let issuer = TokenIssuer::builder(keys.clone(), "https://auth.example.com")
        .audience("api")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let policy = ValidationPolicy::builder()
        .issuer("https://auth.example.com")
        .audience("api")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let validator = Validator::new(policy, keys);
    let revocation = Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone())));
    let engine = RefreshEngine::new(
        Arc::new(MemoryRefreshStore::new()),
        revocation.clone(),
        RefreshConfig::new().clock(Arc::new(clock.clone())),
    );
    let mint = |req: MintRequest<'_>| {
        issuer
            .issue(&AccessToken::new(req.sub).sid(req.family_id.as_str()))
            .map(|issued| issued.token)
    };

    let login = engine.issue("alice").await.unwrap();
    let first = login.refresh_token.expose().to_owned();
    let rotated = engine.rotate(&first, Some("req-1"), mint).await.unwrap();
    assert_eq!(rotated.kind, RotationKind::Rotated);
    let verified = validator.verify(&rotated.access_token).unwrap();
    assert_eq!(
        verified.claims.sid.as_deref(),
        Some(login.family_id.as_str())
    );
    assert_eq!(verified.claims.sub.as_deref(), Some("alice"));

    // The client retries the same request: the identical JWT, not merely equal claims.
    clock.advance(Duration::from_secs(5));
    let replay = engine.rotate(&first, Some("req-1"), mint).await.unwrap();
    assert_eq!(replay.kind, RotationKind::Replayed);
    assert_eq!(replay.access_token, rotated.access_token);
    assert_eq!(replay.refresh_token, rotated.refresh_token);

    // The stolen first token is replayed a minute later: reuse, and the access tokens die.
    clock.advance(Duration::from_secs(60));
    let token_ref = verified.claims.token_ref().unwrap();
    assert!(!revocation.check(&token_ref).await.unwrap().is_revoked());
    let err = engine.rotate(&first, None, mint).await.unwrap_err();
    assert!(matches!(err, RefreshError::Reused(_)), "{err:?}");
    assert!(revocation.check(&token_ref).await.unwrap().is_revoked());
}

/// Minting runs after the atomic rotation: when it fails the rotation stands, and the
/// client's retry with the same token within the grace window gets the same successor (the
/// grace path) and a fresh access token, whether or not it sent an idempotency key.
#[tokio::test]
async fn a_failing_minter_recovers_through_grace() {
    let engine = RefreshEngine::new(
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(MemoryRevocationStore::new()),
        RefreshConfig::new(),
    );
    let ok_mint = |_: MintRequest<'_>| Ok::<_, std::convert::Infallible>(String::from("at"));
    for key in [None, Some("req-1")] {
        let login = engine.issue("alice").await.unwrap();
        let token = login.refresh_token.expose();
        let err = engine
            .rotate(token, key, |_: MintRequest<'_>| {
                Err::<String, _>("signer down")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Mint(_)), "{err:?}");
        let retry = engine.rotate(token, key, ok_mint).await.unwrap();
        assert_eq!(retry.kind, RotationKind::Grace, "key {key:?}");
        assert_eq!(retry.access_token, "at");
        let again = engine.rotate(token, key, ok_mint).await.unwrap();
        assert_eq!(
            again.refresh_token, retry.refresh_token,
            "the same successor"
        );
        let next = engine
            .rotate(retry.refresh_token.expose(), None, ok_mint)
            .await
            .unwrap();
        assert_eq!(next.kind, RotationKind::Rotated, "the successor is current");
    }
}
