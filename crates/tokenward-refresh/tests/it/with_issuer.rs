//! End to end with real access tokens: the engine mints JWTs through `TokenIssuer` with
//! `sid` = the family id, an idempotent replay returns the identical JWT, a reuse revokes
//! every access token of the family through the `RevocationStore` — for as long as the
//! issuer made them live, whatever the engine's settings.

use std::sync::Arc;
use std::time::Duration;

use tokenward_claims::{
    AccessToken, Algorithm, IssueError, Key, KeySet, TokenIssuer, ValidationPolicy, Validator,
    generate_pkcs8,
};
use tokenward_core::{IssuerScope, ManualClock, UnixTime};
use tokenward_refresh::{
    MemoryRefreshStore, MintRequest, MintedToken, RefreshConfig, RefreshEngine, RefreshError,
    RotationKind,
};
use tokenward_revocation::{LEEWAY_MARGIN, MemoryRevocationStore, RevocationStore};

use super::{mint, sub};

/// An issuer and a validator of the same EdDSA key, on `clock`, issuing tokens for `ttl`.
fn issuer_and_validator(clock: &ManualClock, ttl: Duration) -> (TokenIssuer, Validator) {
    let pkcs8 = generate_pkcs8(Algorithm::EdDSA).unwrap();
    let keys = KeySet::single(Key::from_pkcs8_der("k1", Algorithm::EdDSA, &pkcs8).unwrap());
    let issuer = TokenIssuer::builder(keys.clone(), "https://auth.example.com")
        .audience("api")
        .ttl(ttl)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let policy = ValidationPolicy::builder()
        .issuer("https://auth.example.com")
        .audience("api")
        .max_lifetime(ttl)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    (issuer, Validator::new(policy, keys))
}

/// Mints a JWT for the request's subject and family, with its `exp`.
fn mint_jwt(issuer: &TokenIssuer, req: MintRequest<'_>) -> Result<MintedToken, IssueError> {
    let issued = issuer.issue(&AccessToken::new(req.sub.as_str()).sid(req.family_id.as_str()))?;
    let exp = UnixTime::from_secs(issued.claims.exp.unwrap());
    Ok(MintedToken::new(issued.token, exp))
}

/// A refresh engine (default settings: 15-minute access tokens expected) and a revocation
/// store, both on `clock`.
fn engine(clock: &ManualClock) -> (RefreshEngine, Arc<MemoryRevocationStore>) {
    let revocation = Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone())));
    let engine = RefreshEngine::with_config(
        Arc::new(MemoryRefreshStore::with_clock(Arc::new(clock.clone()))),
        revocation.clone(),
        IssuerScope::new("https://auth.example.com"),
        RefreshConfig::new().clock(Arc::new(clock.clone())),
    )
    .unwrap();
    (engine, revocation)
}

#[tokio::test]
async fn access_tokens_carry_the_family_and_die_with_it() {
    let clock = ManualClock::new(UnixTime::from_secs(1_800_000_000));
    let (issuer, validator) = issuer_and_validator(&clock, Duration::from_secs(900));
    let (engine, revocation) = engine(&clock);
    let mint = |req: MintRequest<'_>| mint_jwt(&issuer, req);

    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let verified = validator.verify(&login.access_token).unwrap();
    assert_eq!(
        verified.claims.sid.as_deref(),
        Some(login.family_id.as_str())
    );
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

/// The defect of issue 14: the engine expects 15-minute access tokens (the default
/// `max_access_token_lifetime`), the issuer gives them an hour. After reuse, every token of
/// the family stays revoked for its whole life (and the leeway after it), not just for the
/// 15 minutes the setting says.
#[tokio::test]
async fn hour_long_access_tokens_stay_revoked_after_reuse_for_their_whole_life() {
    let clock = ManualClock::new(UnixTime::from_secs(1_800_000_000));
    let hour = Duration::from_secs(3600);
    let (issuer, validator) = issuer_and_validator(&clock, hour);
    let (engine, revocation) = engine(&clock);
    let mint = |req: MintRequest<'_>| mint_jwt(&issuer, req);

    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let a = login.refresh_token.expose().to_owned();
    clock.advance(Duration::from_secs(10));
    let b = engine.rotate(&a, None, mint).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let c = engine
        .rotate(b.refresh_token.expose(), None, mint)
        .await
        .unwrap();
    // The thief replays the first token: reuse.
    let err = engine.rotate(&a, None, mint).await.unwrap_err();
    assert!(
        matches!(&err, RefreshError::Reused(r) if r.session_revocation_error.is_none()),
        "{err:?}"
    );

    let tokens = [&login.access_token, &b.access_token, &c.access_token];
    let latest = validator
        .verify(&c.access_token)
        .unwrap()
        .claims
        .exp
        .unwrap();
    // 59 minutes later: the newest access token is still valid by its signature and `exp`
    // (the validator accepts it)… and revoked.
    clock.set(UnixTime::from_secs(latest - 60));
    let verified = validator.verify(&c.access_token).unwrap();
    for token in tokens {
        let claims = validator.verify(token).unwrap().claims;
        let status = revocation
            .check(&claims.token_ref().unwrap())
            .await
            .unwrap();
        assert!(
            status.is_revoked(),
            "a stolen access token outlived its revocation"
        );
    }
    // And until the leeway after its `exp` has passed.
    clock.set(
        UnixTime::from_secs(latest)
            .saturating_add(LEEWAY_MARGIN)
            .saturating_sub(Duration::from_secs(1)),
    );
    let status = revocation
        .check(&verified.claims.token_ref().unwrap())
        .await
        .unwrap();
    assert!(status.is_revoked(), "revoked until exp + the leeway margin");
}

/// Minting runs after the atomic rotation: when it fails the rotation stands, and the
/// client's retry with the same token within the grace window gets the same successor (the
/// grace path) and a fresh access token, whether or not it sent an idempotency key.
#[tokio::test]
async fn a_failing_minter_recovers_through_grace() {
    let engine = RefreshEngine::new(
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(MemoryRevocationStore::new()),
        IssuerScope::new("https://auth.example.com"),
    );
    for key in [None, Some("req-1")] {
        let login = engine.issue(&sub("alice"), mint).await.unwrap();
        let token = login.refresh_token.expose();
        let err = engine
            .rotate(token, key, |_: MintRequest<'_>| {
                Err::<MintedToken, _>("signer down")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Mint(_)), "{err:?}");
        let retry = engine.rotate(token, key, mint).await.unwrap();
        assert_eq!(retry.kind, RotationKind::Grace, "key {key:?}");
        assert!(retry.access_token.starts_with("access-alice-"));
        let again = engine.rotate(token, key, mint).await.unwrap();
        assert_eq!(
            again.refresh_token, retry.refresh_token,
            "the same successor"
        );
        let next = engine
            .rotate(retry.refresh_token.expose(), None, mint)
            .await
            .unwrap();
        assert_eq!(next.kind, RotationKind::Rotated, "the successor is current");
    }
}
