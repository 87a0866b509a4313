//! A primary killed mid-run, on a cluster of the test's own.

use super::*;

/// `cluster-require-full-coverage no`, a primary killed mid-run: a check whose key it owned
/// fails closed (`Unavailable` or `Timeout`, within the operation timeout) — never "active" —
/// while checks on the other primaries still answer; once it is back (empty: no
/// persistence), its keys answer again. On a cluster of the test's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_fails_its_own_keys_closed_and_the_others_answer() {
    let mut cluster = tokio::task::spawn_blocking(ThrowawayCluster::start)
        .await
        .unwrap();
    let mut admin = redis::Client::open(cluster.urls()[0].as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let config = RedisConfig::default()
        .cluster(cluster.urls())
        .key_prefix(unique_prefix("cl-dead"))
        .operation_timeout(TIMEOUT);
    let stores = RedisStores::connect(&config).unwrap();
    let store = stores.revocation();
    // One revoked jti per primary.
    let ports = cluster.ports();
    let mut jtis: Vec<Option<String>> = vec![None; ports.len()];
    for n in 0..256 {
        let jti = format!("dead-{n}");
        let owner = node_of(std::slice::from_ref(&admin), &store.token_key(&jti)).await;
        let i = ports
            .iter()
            .position(|port| owner.ends_with(&format!(":{port}")))
            .unwrap();
        jtis[i].get_or_insert(jti);
        if jtis.iter().all(Option::is_some) {
            break;
        }
    }
    let jtis: Vec<String> = jtis.into_iter().map(Option::unwrap).collect();
    let exp = UnixTime::from_secs(4_000_000_000);
    fn token(jti: &str) -> TokenRef<'_> {
        let exp = UnixTime::from_secs(4_000_000_000);
        TokenRef::from_parts(Some(jti), None, None, None, exp).unwrap()
    }
    for jti in &jtis {
        store
            .revoke_token(&StoreId::new(jti).unwrap(), exp)
            .await
            .unwrap();
    }

    let dead = ports.len() - 1;
    cluster.kill_node(dead);
    for round in 0..3 {
        for (i, jti) in jtis.iter().enumerate() {
            if i == dead {
                bounded_failure(
                    &format!("round {round}: the dead primary's key"),
                    OUTAGE,
                    store.check(&token(jti)),
                )
                .await;
            } else {
                assert_eq!(
                    store.check(&token(jti)).await.unwrap(),
                    RevocationStatus::Revoked(RevokedBy::Token),
                    "round {round}: a live primary's key"
                );
            }
        }
    }

    // A request whose token lives on the dead primary and whose subject's limit lives on a
    // live one fails closed too, within the deadline. (The cell its limit's script may have
    // taken is given back in the background, best effort: the cluster client may be busy
    // with the dead node then; a deterministic refund test is in
    // `keys_of_one_subject_on_different_nodes_never_break_a_script`.)
    let mut limit_name = None;
    for n in 0..256 {
        let name = format!("sub:live-{n}");
        let key = stores
            .ratelimit()
            .gcra_key(&LimitKey::new(name.as_str()).unwrap());
        let owner = node_of(std::slice::from_ref(&admin), &key).await;
        if !owner.ends_with(&format!(":{}", ports[dead])) {
            limit_name = Some(name);
            break;
        }
    }
    let limit_name = limit_name.unwrap();
    let limit = LimitKey::new(limit_name.as_str()).unwrap();
    let two = GcraCharge::single(GcraQuota::per_minute(std::num::NonZeroU32::new(2).unwrap()));
    bounded_failure(
        "a request with keys on the dead primary and on a live one",
        OUTAGE,
        stores.check_token(&token(&jtis[dead]), Some((&limit, &two))),
    )
    .await;

    tokio::task::block_in_place(|| cluster.restart_node(dead));
    let back = async {
        loop {
            if let Ok(status) = store.check(&token(&jtis[dead])).await {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(20), back)
        .await
        .expect("the restarted primary's keys answer again");
    assert_eq!(status, RevocationStatus::Active, "restarted empty");
    for jti in &jtis[..dead] {
        assert_eq!(
            store.check(&token(jti)).await.unwrap(),
            RevocationStatus::Revoked(RevokedBy::Token)
        );
    }
    let _: String = redis::cmd("PING").query_async(&mut admin).await.unwrap();
}
