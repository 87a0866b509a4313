//! Each detector through `Guard::authenticate`, on memory and on Redis (where two instances
//! of one service share one state); outages of an action's store and of the state; and the
//! round trips a request makes with the detector on Redis.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_anomaly::{
    Action, AnomalyConfig, AnomalyKind, NetworkDetails, NetworkInfo, Responder, TokenShared,
};
use tokenward_claims::{AccessToken, RejectionClass};
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
use tokenward_guard::Denial;
use tokenward_revocation::{RevocationStatus, RevocationStore};
use tokenward_testsupport::{delete_prefix, shared_redis};

use crate::common::*;

/// Runs `scenario` on memory and on Redis, then deletes the Redis keys.
macro_rules! on_both {
    ($memory:ident, $redis:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $memory() {
            $scenario(Service::new(Backend::Memory)).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $redis() {
            let service = Service::new(Backend::Redis);
            $scenario(service.clone()).await;
            let prefix = service.prefix.unwrap();
            delete_prefix(&mut shared_redis().await, &prefix)
                .await
                .unwrap();
        }
    };
}

fn config() -> AnomalyConfig {
    let mut config = AnomalyConfig::default();
    config.retry_backoff = Duration::from_millis(10);
    config
}

fn revoked(result: Result<tokenward_guard::Authenticated, Denial>) -> bool {
    matches!(result, Err(Denial::Revoked { .. }))
}

fn banned(result: &Result<tokenward_guard::Authenticated, Denial>) -> bool {
    matches!(result, Err(Denial::Banned { .. }))
}

on_both!(
    token_shared_memory,
    token_shared_redis_two_instances,
    token_shared
);

/// A token used from 4 networks (the default allows 3) is revoked by its session and
/// reported once, also when the instances that saw it differ; addresses of one network
/// count once.
async fn token_shared(service: Service) {
    let a = instance(&service, config(), None);
    let b = instance(&service, config(), None);
    let stolen = token("alice", "session-1");
    for ip in ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.2.1"] {
        a.call(&stolen, ip).await.unwrap();
    }
    b.call(&stolen, "10.0.3.1").await.unwrap();
    a.settle().await;
    b.settle().await;
    // Three networks: still fine.
    a.call(&stolen, "10.0.1.1").await.unwrap();
    assert!(a.collected.of(AnomalyKind::TokenShared).is_empty());
    // The fourth, on the other instance.
    b.call(&stolen, "10.0.4.1").await.unwrap();
    b.settle().await;
    assert!(
        revoked(a.call(&stolen, "10.0.1.1").await),
        "the session was not revoked"
    );
    // Another token of the session is refused too; another session is not.
    let sibling = token("alice", "session-1");
    assert!(revoked(a.call(&sibling, "10.0.1.1").await));
    a.call(&token("alice", "session-2"), "10.0.1.1")
        .await
        .unwrap();
    // Further networks report nothing more.
    b.call(&token("bob", "session-1b"), "10.0.5.1")
        .await
        .unwrap();
    let _ = a.call(&stolen, "10.0.6.1").await;
    a.settle().await;
    b.settle().await;
    let shared: Vec<_> = [&a, &b]
        .iter()
        .flat_map(|i| i.collected.of(AnomalyKind::TokenShared))
        .collect();
    assert_eq!(shared.len(), 1, "{shared:?}");
    let anomaly = &shared[0];
    assert_eq!(anomaly.action, Action::RevokeSession);
    assert_eq!(anomaly.count, 4);
    assert_eq!(anomaly.sub.as_deref(), Some("alice"));
    assert_eq!(anomaly.sid.as_deref(), Some("session-1"));
    assert_eq!(anomaly.client_ip, "10.0.4.1".parse::<IpAddr>().unwrap());
    assert_eq!(
        anomaly.networks,
        ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24", "10.0.4.0/24"]
    );
}

on_both!(replays_memory, replays_redis_two_instances, replays);
on_both!(
    replays_ipv6_memory,
    replays_ipv6_redis_two_instances,
    replays_ipv6
);

/// Addresses of one network for [`replays_from`]: where the replays come from, an address of
/// the same network that never replayed, and an address of another network.
struct Network {
    replaying: [&'static str; 2],
    neighbour: &'static str,
    outside: &'static str,
}

/// IPv4: one /24.
async fn replays(service: Service) {
    replays_from(
        service,
        Network {
            replaying: ["10.7.0.9", "10.7.0.11"],
            neighbour: "10.7.0.200",
            outside: "10.7.1.9",
        },
    )
    .await;
}

/// IPv6: one /48 (the replaying addresses in different /64s: different ban addresses).
async fn replays_ipv6(service: Service) {
    replays_from(
        service,
        Network {
            replaying: ["2001:db8:7:1::9", "2001:db8:7:2::11"],
            neighbour: "2001:db8:7:ffff::200",
            outside: "2001:db8:8::9",
        },
    )
    .await;
}

/// A revoked token presented again is reported each time; the 5th replay from one network
/// (from any of its addresses) bans the **network**, whichever instance saw the replays: an
/// address of it that never replayed is refused as banned by both instances, an address of
/// another network is not.
async fn replays_from(service: Service, net: Network) {
    let a = instance(&service, config(), None);
    let b = instance(&service, config(), None);
    let stolen = token("carol", "session-c");
    let auth = a.call(&stolen, "192.0.2.1").await.unwrap();
    a.guard.revoke_token(&auth).await.unwrap();
    for n in 0..4 {
        let i = if n % 2 == 0 { &a } else { &b };
        assert!(revoked(i.call(&stolen, net.replaying[n % 2]).await));
    }
    a.settle().await;
    b.settle().await;
    // Four replays: reported, not banned.
    for ip in [net.replaying[0], net.neighbour] {
        a.call(&token("carol", "session-d"), ip).await.unwrap();
    }
    let replays = |i: &Instance| i.collected.of(AnomalyKind::RevokedTokenReplay);
    assert_eq!(replays(&a).len() + replays(&b).len(), 4);
    assert!(
        replays(&a)
            .iter()
            .chain(&replays(&b))
            .all(|x| x.action == Action::Alert && x.jti_fp.as_ref().is_some_and(|f| f.len() == 12))
    );
    assert!(revoked(b.call(&stolen, net.replaying[1]).await));
    b.settle().await;
    let fifth = replays(&b).into_iter().find(|x| x.count == 5).unwrap();
    assert_eq!(fifth.action, Action::Ban);
    for i in [&a, &b] {
        for ip in [net.replaying[0], net.replaying[1], net.neighbour] {
            assert!(
                banned(&i.call(&token("carol", "session-e"), ip).await),
                "{ip} is in the banned network"
            );
        }
        // Another network is not banned.
        i.call(&token("carol", "session-e"), net.outside)
            .await
            .unwrap();
    }
}

on_both!(forgery_memory, forgery_redis_two_instances, forgery);

/// 20 forgeries from one network (bad signatures and unknown `kid`s alike, from many of its
/// addresses, on two instances) ban the **network**: the address that tipped it, addresses
/// that forged before, and addresses that never forged; another network is not banned;
/// expired tokens, however many, ban nobody.
async fn forgery(service: Service) {
    let a = instance(&service, config(), None);
    let b = instance(&service, config(), None);
    let (forger, stranger) = (forger(), stranger());
    let forged = |sub: &str| forger.issue(&AccessToken::new(sub)).unwrap().token;
    for n in 1..=19 {
        let (token, class) = if n % 2 == 0 {
            let token = stranger.issue(&AccessToken::new("mallory")).unwrap().token;
            (token, RejectionClass::Key)
        } else {
            (forged("mallory"), RejectionClass::Signature)
        };
        let i = if n % 2 == 0 { &a } else { &b };
        let denial = i.call(&token, &format!("10.9.0.{n}")).await.unwrap_err();
        assert!(
            matches!(denial, Denial::InvalidToken { class: c, .. } if c == class),
            "{denial:?}"
        );
    }
    a.settle().await;
    b.settle().await;
    let good = token("mallory", "s");
    a.call(&good, "10.9.0.19").await.unwrap();
    a.call(&good, "10.9.0.250").await.unwrap();
    assert!(a.collected.of(AnomalyKind::ForgeryBurst).is_empty());
    let _ = a.call(&forged("mallory"), "10.9.0.20").await;
    a.settle().await;
    for i in [&a, &b] {
        for ip in ["10.9.0.20", "10.9.0.1", "10.9.0.250"] {
            assert!(
                banned(&i.call(&good, ip).await),
                "{ip} is in the banned /24"
            );
        }
        i.call(&good, "10.9.1.1").await.unwrap();
    }
    let bursts = a.collected.of(AnomalyKind::ForgeryBurst);
    assert_eq!(bursts.len(), 1, "{bursts:?}");
    assert!(
        bursts
            .iter()
            .all(|b| b.action == Action::Ban && b.sub.is_none())
    );

    let stale = stale_issuer();
    for n in 1..=40 {
        let expired = stale.issue(&AccessToken::new("dave")).unwrap().token;
        let denial = a.call(&expired, &format!("10.10.0.{n}")).await.unwrap_err();
        assert!(matches!(denial, Denial::InvalidToken { .. }), "{denial:?}");
    }
    a.settle().await;
    a.call(&token("dave", "s"), "10.10.0.40").await.unwrap();
    assert_eq!(a.collected.of(AnomalyKind::ForgeryBurst).len(), 1);
}

/// Everything in 10.20.0.0/16 and 10.21.0.0/16 is one mobile carrier's AS 64500.
#[derive(Debug)]
struct Carrier;

impl NetworkInfo for Carrier {
    fn lookup(&self, ip: IpAddr) -> Option<NetworkDetails> {
        let IpAddr::V4(v4) = ip else { return None };
        let [a, b, ..] = v4.octets();
        (a == 10 && (b == 20 || b == 21))
            .then(|| NetworkDetails::new(Some(64500), Some("NL".into())))
    }
}

on_both!(new_network_memory, new_network_redis, new_network);

/// A subject's first network is its baseline; a second one is reported (alert only); with
/// a lookup, networks of one ASN are one.
async fn new_network(service: Service) {
    let a = instance(&service, config(), Some(Arc::new(Carrier)));
    a.call(&token("erin", "s1"), "10.30.0.1").await.unwrap();
    a.call(&token("erin", "s2"), "10.30.0.2").await.unwrap();
    a.settle().await;
    assert!(a.collected.of(AnomalyKind::NewNetwork).is_empty());
    a.call(&token("erin", "s1"), "10.31.0.1").await.unwrap();
    a.settle().await;
    let news = a.collected.of(AnomalyKind::NewNetwork);
    assert_eq!(news.len(), 1, "{news:?}");
    assert_eq!(news[0].action, Action::Alert);
    assert_eq!(news[0].networks, ["10.31.0.0/24"]);
    assert_eq!(news[0].count, 2);
    // Still allowed: alert only.
    a.call(&token("erin", "s1"), "10.31.0.1").await.unwrap();

    a.call(&token("frank", "f1"), "10.20.0.1").await.unwrap();
    a.settle().await;
    a.call(&token("frank", "f1"), "10.21.5.1").await.unwrap();
    a.settle().await;
    let frank: Vec<_> = a
        .collected
        .of(AnomalyKind::NewNetwork)
        .into_iter()
        .filter(|x| x.sub.as_deref() == Some("frank"))
        .collect();
    assert!(frank.is_empty(), "one carrier is one network: {frank:?}");
    a.call(&token("frank", "f1"), "10.40.0.1").await.unwrap();
    a.settle().await;
    let frank: Vec<_> = a
        .collected
        .of(AnomalyKind::NewNetwork)
        .into_iter()
        .filter(|x| x.sub.as_deref() == Some("frank"))
        .collect();
    assert_eq!(frank.len(), 1);
    assert_eq!(frank[0].networks, ["10.40.0.0/24"]);
}

/// The revocations a shared token can lead to: without a `sid`, the token alone (by its
/// `jti`); with [`Action::RevokeSubject`] chosen instead, every token of its subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_sid_is_revoked_alone_and_revoke_subject_takes_every_session() {
    let service = Service::new(Backend::Memory);
    let a = instance(&service, config(), None);
    let issue = |sub: &str| issuer().issue(&AccessToken::new(sub)).unwrap().token;
    let (lone, other) = (issue("judy"), issue("judy"));
    for net in 1..=4 {
        a.call(&lone, &format!("10.80.{net}.1")).await.unwrap();
    }
    a.settle().await;
    assert!(revoked(a.call(&lone, "10.80.1.1").await));
    a.call(&other, "10.80.1.1").await.unwrap();
    let shared = a.collected.of(AnomalyKind::TokenShared);
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0].action, Action::RevokeSession);
    assert!(shared[0].sid.is_none() && shared[0].jti_fp.is_some());

    let mut by_subject = config();
    let mut rule = TokenShared::default();
    rule.action = Action::RevokeSubject;
    by_subject.token_shared = Some(rule);
    let b = instance(&service, by_subject, None);
    let (first, second) = (token("kate", "k1"), token("kate", "k2"));
    b.call(&second, "10.81.1.1").await.unwrap();
    for net in 1..=4 {
        b.call(&first, &format!("10.81.{net}.1")).await.unwrap();
    }
    b.settle().await;
    assert!(revoked(b.call(&first, "10.81.1.1").await));
    assert!(
        revoked(b.call(&second, "10.81.1.1").await),
        "every session of the subject"
    );
    b.call(&token("leo", "l1"), "10.81.1.1").await.unwrap();
    let shared = b.collected.of(AnomalyKind::TokenShared);
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0].action, Action::RevokeSubject);
}

/// A revocation store whose writes fail (reads work): an outage during an action.
#[derive(Debug, Default)]
struct WritesFail {
    inner: tokenward_revocation::MemoryRevocationStore,
    writes: AtomicUsize,
}

#[async_trait]
impl RevocationStore for WritesFail {
    async fn revoke_token(&self, _: &StoreId<'_>, _: UnixTime) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::unavailable("test", "writes fail"))
    }
    async fn revoke_session(&self, _: &StoreId<'_>, _: UnixTime) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::unavailable("test", "writes fail"))
    }
    async fn revoke_subject(
        &self,
        _: &StoreId<'_>,
        _: UnixTime,
        _: UnixTime,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::unavailable("test", "writes fail"))
    }
    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        self.inner.check(token).await
    }
}

/// An action whose store is down is retried (every attempt), never blocks or fails the
/// request, and leaves the token to the Guard's policy (here: allowed, nothing revoked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_during_an_action_is_retried_and_never_fails_the_request() {
    let memory = tokenward_guard::GuardStores::memory();
    let failing = Arc::new(WritesFail::default());
    let stores = tokenward_guard::GuardStores::new(
        failing.clone(),
        memory.ratelimit.clone(),
        memory.refresh.clone(),
    );
    let service = Service {
        stores,
        state: Arc::new(tokenward_anomaly::MemoryAnomalyStore::new()),
        prefix: None,
    };
    let mut config = config();
    config.attempts = 3;
    let responder = Responder::for_stores(&service.stores).failure_ban(lenient_ban());
    let a = instance_with(&service, config, None, responder, Arc::default());
    let stolen = token("gina", "s");
    for net in 1..=5 {
        let started = std::time::Instant::now();
        a.call(&stolen, &format!("10.50.{net}.1")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    a.settle().await;
    assert_eq!(a.collected.of(AnomalyKind::TokenShared).len(), 1);
    assert_eq!(failing.writes.load(Ordering::SeqCst), 3, "three attempts");
    a.call(&stolen, "10.50.1.1").await.unwrap();
}

/// The detector's state on a Redis that does not answer: requests are answered as the
/// Guard's own stores decide, and nothing waits for the detector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_outage_never_touches_the_request() {
    let hole = tokenward_testsupport::BlackHole::start();
    let config_down = tokenward_redis::RedisConfig::new(hole.redis_url())
        .operation_timeout(Duration::from_millis(300));
    let down = tokenward_redis::RedisBackend::new(&config_down).unwrap();
    let service = Service {
        stores: tokenward_guard::GuardStores::memory(),
        state: Arc::new(tokenward_anomaly::RedisAnomalyStore::new(down)),
        prefix: None,
    };
    let a = instance(&service, config(), None);
    let stolen = token("hank", "s");
    for net in 1..=6 {
        let started = std::time::Instant::now();
        a.call(&stolen, &format!("10.60.{net}.1")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(250));
    }
    a.settle().await;
    assert!(a.collected.of(AnomalyKind::TokenShared).is_empty());
}

/// On Redis the detector adds no round trip to the request: a request from a new network
/// (an observation queued) costs the Guard's one call, and the detector's scripts run on its
/// worker after the response. On a current-thread runtime the worker cannot run between the
/// hook and the count.
#[tokio::test(flavor = "current_thread")]
async fn on_redis_detection_adds_no_round_trip_to_the_request() {
    let prefix = tokenward_testsupport::unique_prefix("anomaly-round-trips");
    let redis = tokenward_redis::RedisConfig::new(tokenward_testsupport::redis_url())
        .key_prefix(&prefix)
        .operation_timeout(Duration::from_secs(2));
    let backend = tokenward_redis::RedisBackend::new(&redis).unwrap();
    let service = Service {
        stores: tokenward_guard::GuardStores::redis(&tokenward_redis::RedisStores::new(
            backend.clone(),
        )),
        state: Arc::new(tokenward_anomaly::RedisAnomalyStore::new(backend.clone())),
        prefix: Some(prefix.clone()),
    };
    let a = instance(&service, config(), None);
    let ivan = token("ivan", "s");
    // Scripts loaded, the first network counted.
    a.call(&ivan, "10.70.1.1").await.unwrap();
    a.settle().await;
    for net in 2..=4 {
        let before = backend.round_trips();
        a.call(&ivan, &format!("10.70.{net}.1")).await.unwrap();
        assert_eq!(
            backend.round_trips() - before,
            1,
            "the Guard's one call only"
        );
        a.settle().await;
        assert!(
            backend.round_trips() - before > 1,
            "the detector counted the new network after the response"
        );
    }
    delete_prefix(&mut shared_redis().await, &prefix)
        .await
        .unwrap();
}
