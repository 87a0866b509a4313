//! A slot moved to another primary while the stores use it, on a cluster of the test's own:
//! `ASK` while the slot migrates, `MOVED` once it has, both followed by redis-rs's cluster
//! client; the moved keys keep their state.

use super::*;

/// `CLUSTER <args>` on `node`, expecting `OK`.
async fn cluster_ok(node: &redis::aio::MultiplexedConnection, args: &[&str]) {
    let reply: String = redis::cmd("CLUSTER")
        .arg(args)
        .query_async(&mut node.clone())
        .await
        .unwrap();
    assert_eq!(reply, "OK", "CLUSTER {args:?}");
}

/// `MIGRATE` of `key` from `node` to the primary on 127.0.0.1:`port`.
async fn migrate(node: &redis::aio::MultiplexedConnection, port: u16, key: &str) {
    let reply: String = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(port)
        .arg(key)
        .arg(0)
        .arg(5000)
        .query_async(&mut node.clone())
        .await
        .unwrap();
    assert_eq!(reply, "OK", "MIGRATE {key}");
}

/// The slot of a rate-limit key (its GCRA key and its ban keys: one hash tag) moves from
/// its primary to another: halfway (the GCRA key moved, the slot `MIGRATING` / `IMPORTING`)
/// the GCRA step follows the `ASK` redirection, and once the slot is reassigned every call
/// on it follows `MOVED` — the per-request check included — with the limit's and the ban's
/// state carried over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_to_another_primary_is_followed() {
    let cluster = tokio::task::spawn_blocking(ThrowawayCluster::start)
        .await
        .unwrap();
    let ports = cluster.ports();
    let nodes = nodes_of(&cluster.urls()).await;
    let config = RedisConfig::default()
        .cluster(cluster.urls())
        .key_prefix(unique_prefix("cl-moved"))
        .operation_timeout(Duration::from_secs(2));
    let stores = RedisStores::connect(&config).unwrap();
    let ratelimit = stores.ratelimit();
    let key = LimitKey::new("sub:moved").unwrap();
    let three = GcraCharge::single(GcraQuota::per_hour(std::num::NonZeroU32::new(3).unwrap()));
    let ban = BanQuota::fail2ban_default();
    let step = async || {
        let d = ratelimit.gcra(&key, &three).await.unwrap();
        (d.allowed, d.remaining)
    };
    assert_eq!(step().await, (true, 2));
    ratelimit.record_failure(&key, &ban).await.unwrap();

    // The slot, its owner and another primary.
    let gcra_key = ratelimit.gcra_key(&key);
    let owner = node_of(&nodes, &gcra_key).await;
    let from = ports
        .iter()
        .position(|port| owner.ends_with(&format!(":{port}")))
        .unwrap();
    let to = (from + 1) % ports.len();
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&gcra_key)
        .query_async(&mut nodes[0].clone())
        .await
        .unwrap();
    let slot = slot.to_string();
    let mut ids = Vec::new();
    for node in &nodes {
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut node.clone())
            .await
            .unwrap();
        ids.push(id);
    }

    // Halfway: the GCRA key is on the new primary, the ban's keys still on the old one.
    cluster_ok(&nodes[to], &["SETSLOT", &slot, "IMPORTING", &ids[from]]).await;
    cluster_ok(&nodes[from], &["SETSLOT", &slot, "MIGRATING", &ids[to]]).await;
    migrate(&nodes[from], ports[to], &gcra_key).await;
    assert_eq!(step().await, (true, 1), "ASK followed, the state moved");

    // Done: every key of the slot moved, the slot reassigned on every node.
    let left: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(&slot)
        .arg(100)
        .query_async(&mut nodes[from].clone())
        .await
        .unwrap();
    assert!(!left.is_empty(), "the ban's failures are still to move");
    for k in &left {
        migrate(&nodes[from], ports[to], k).await;
    }
    for i in [to, from, (to + 1) % ports.len()] {
        cluster_ok(&nodes[i], &["SETSLOT", &slot, "NODE", &ids[to]]).await;
    }
    assert_eq!(
        node_of(&nodes, &gcra_key).await,
        format!("127.0.0.1:{}", ports[to])
    );

    // MOVED: the GCRA step, the ban (its failures carried over) and the per-request check.
    assert_eq!(step().await, (true, 0), "MOVED followed");
    for _ in 0..3 {
        assert!(ratelimit.record_failure(&key, &ban).await.unwrap().allowed);
    }
    assert!(!ratelimit.record_failure(&key, &ban).await.unwrap().allowed);
    let exp = UnixTime::from_secs(4_000_000_000);
    let token = TokenRef::from_parts(Some("j-moved"), None, Some("moved"), None, exp).unwrap();
    let check = stores
        .check_request(
            &token,
            Some((&key, &three)),
            Some(BanCheck::new(&key, &ban)),
        )
        .await
        .unwrap();
    assert_eq!(check.revocation, RevocationStatus::Active);
    assert!(check.ban.is_some_and(|b| !b.allowed), "{check:?}");
    assert_eq!(check.limit, None, "banned: no cell");
    ratelimit.lift_ban(&key).await.unwrap();
    assert!(!step().await.0, "the quota is spent");
}
