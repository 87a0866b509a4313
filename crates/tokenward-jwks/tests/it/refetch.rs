//! Unknown `kid`s: a rotation is picked up by one refetch, single flight under load, at most one
//! fetch per cooldown whatever the `kid`s.

use std::sync::Arc;
use std::time::Duration;

use tokenward_claims::RejectionClass;

use crate::common::*;
use crate::server::Reply;

#[tokio::test]
async fn rotation_is_picked_up_by_refetch_on_unknown_kid_within_the_cooldown() {
    let (k1, k2, k3) = (signer("k1"), signer("k2"), signer("k3"));
    let (server, clock, remote) = serving(Reply::json(jwks(&[&k1]))).await;
    let validator = validator(&remote, &clock);
    assert_eq!(server.hits("/jwks"), 1);
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // The issuer rotates in k2 (keeping k1): the first unknown kid refetches at once.
    server.set("/jwks", Reply::json(jwks(&[&k1, &k2])));
    let t2 = token(&k2, &clock);
    assert_eq!(
        validator.verify(&t2).unwrap_err().class(),
        RejectionClass::Key
    );
    assert_eq!(verify(&remote, &validator, &t2).await, Ok(()));
    assert_eq!(server.hits("/jwks"), 2);
    assert_eq!(
        verify(&remote, &validator, &token(&k1, &clock)).await,
        Ok(())
    );

    // Another rotation within the cooldown is not fetched...
    server.set("/jwks", Reply::json(jwks(&[&k2, &k3])));
    clock.advance(COOLDOWN - Duration::from_secs(1));
    let t3 = token(&k3, &clock);
    assert_eq!(
        verify(&remote, &validator, &t3).await,
        Err(RejectionClass::Key)
    );
    assert_eq!(server.hits("/jwks"), 2);
    assert_eq!(remote.stats().refused_refetches, 1);

    // ...but once the cooldown has passed.
    clock.advance(Duration::from_secs(1));
    assert_eq!(verify(&remote, &validator, &t3).await, Ok(()));
    assert_eq!(server.hits("/jwks"), 3);
    // k1 was removed by the issuer, so its tokens no longer verify.
    assert_eq!(
        validator.verify(&token(&k1, &clock)).unwrap_err().class(),
        RejectionClass::Key
    );
    assert_eq!(remote.stats().fetches, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_with_a_new_kid_cause_exactly_one_fetch() {
    let (k1, k2) = (signer("k1"), signer("k2"));
    let (server, clock, remote) = serving(Reply::json(jwks(&[&k1]))).await;
    let validator = Arc::new(validator(&remote, &clock));

    // The new key, served slowly so the requests pile up on the one fetch.
    server.set(
        "/jwks",
        Reply::json(jwks(&[&k1, &k2])).delay(Duration::from_millis(300)),
    );
    let t2 = Arc::new(token(&k2, &clock));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (remote, validator, t2) = (remote.clone(), Arc::clone(&validator), Arc::clone(&t2));
            tokio::spawn(async move { verify(&remote, &validator, &t2).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(
        server.hits("/jwks"),
        2,
        "the initial fetch and exactly one refetch"
    );
    assert_eq!(remote.stats().fetches, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_unknown_kids_cause_at_most_one_fetch_per_cooldown() {
    let k1 = signer("k1");
    let (server, clock, remote) = serving(Reply::json(jwks(&[&k1]))).await;

    let burst = |round: usize| {
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let remote = remote.clone();
                tokio::spawn(
                    async move { remote.refetch_for_kid(&format!("random-{round}-{i}")).await },
                )
            })
            .collect();
        async move {
            for task in tasks {
                assert!(!task.await.unwrap());
            }
        }
    };
    burst(0).await;
    assert_eq!(server.hits("/jwks"), 2, "one refetch for the whole burst");

    // Within the cooldown: none.
    clock.advance(COOLDOWN - Duration::from_secs(1));
    burst(1).await;
    assert_eq!(server.hits("/jwks"), 2);

    // Each new cooldown period: at most one.
    for round in 2..5 {
        clock.advance(COOLDOWN);
        burst(round).await;
        assert_eq!(server.hits("/jwks"), round + 1);
    }
    // Round 1 ran entirely within the cooldown, with no fetch to join: all refused.
    assert!(remote.stats().refused_refetches >= 1000);
    // Garbage tokens never fetch.
    for garbage in [
        "",
        "abc",
        "%%%.x.y",
        &"A".repeat(100_000),
        "eyJraWQiOjF9.e30.x",
    ] {
        assert!(!remote.refetch_for_token(garbage).await);
    }
    assert_eq!(server.hits("/jwks"), 5);
}
