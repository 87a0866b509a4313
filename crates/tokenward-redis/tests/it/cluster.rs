//! Redis Cluster: every conformance suite on a cluster of three primaries (the one of
//! `REDIS_CLUSTER_URLS`, or a throwaway one for the whole binary), each case under its own
//! prefix — without a hash tag, so a case's keys spread over the nodes and every call whose
//! keys span slots must group them (a `CROSSSLOT` fails the case); the keys of one subject on
//! different nodes; the startup check on every primary; BYO cluster clients (the revocation
//! and combined suites on an application's cluster client and deadpool cluster pool); every
//! suite again on a cluster reached over TLS (`rediss://` seeds, a throwaway CA); and, on
//! clusters of their own, a dead primary and a slot moved to another primary.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::conformance::{BoxError, Fixture};
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
use tokenward_guard::conformance::{CombinedEnv, SeparateStores};
use tokenward_ratelimit::conformance::RateLimitEnv;
use tokenward_ratelimit::{BanCheck, BanQuota, GcraCharge, GcraQuota, LimitKey, RateLimitStore};
use tokenward_redis::{
    BackendOptions, RedisBackend, RedisConfig, RedisRateLimitStore, RedisRefreshStore,
    RedisRevocationStore, RedisStores, ServerCheckError,
};
use tokenward_refresh::conformance::RefreshEnv;
use tokenward_revocation::conformance::{RealClock, RevocationEnv};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};
use tokenward_testsupport::{ThrowawayCluster, cluster_urls, unique_prefix};

use crate::common::{OUTAGE, TIMEOUT, bounded_failure};

/// Plain connections to each seed node (the cluster's primaries), for the test's own reads.
async fn nodes() -> Vec<redis::aio::MultiplexedConnection> {
    nodes_of(&cluster_urls()).await
}

/// Plain connections to each of `urls`.
async fn nodes_of(urls: &[String]) -> Vec<redis::aio::MultiplexedConnection> {
    let mut out = Vec::new();
    for url in urls {
        let client = redis::Client::open(url.as_str()).unwrap();
        out.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    out
}

/// A config for the cluster under a fresh prefix (no hash tag).
fn cluster_config(test: &str) -> RedisConfig {
    RedisConfig::default()
        .cluster(cluster_urls())
        .key_prefix(unique_prefix(test))
        .operation_timeout(Duration::from_secs(2))
}

/// Every key under `prefix` on every node.
async fn keys_on_nodes(nodes: &[redis::aio::MultiplexedConnection], prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for node in nodes {
        keys.extend(
            tokenward_testsupport::keys_under(&mut node.clone(), prefix)
                .await
                .unwrap(),
        );
    }
    keys
}

/// Deletes the prefix's keys on every node, one key per command (never `CROSSSLOT`).
async fn delete_on_nodes(nodes: &[redis::aio::MultiplexedConnection], prefix: &str) {
    for node in nodes {
        let mut node = node.clone();
        for key in tokenward_testsupport::keys_under(&mut node, prefix)
            .await
            .unwrap()
        {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&key)
                .query_async(&mut node)
                .await
                .unwrap();
        }
    }
}

/// The conformance suites' probe on a cluster: keys and values under the prefix on every
/// node, and the backend's round-trip counter.
struct ClusterProbe {
    backend: RedisBackend,
    nodes: Vec<redis::aio::MultiplexedConnection>,
}

#[async_trait]
impl tokenward_core::conformance::StoreProbe for ClusterProbe {
    async fn stored_entries(&self) -> Result<u64, StoreError> {
        Ok(keys_on_nodes(&self.nodes, self.backend.key_prefix())
            .await
            .len() as u64)
    }

    async fn stored_bytes(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for node in &self.nodes {
            out.extend(
                crate::common::dump_prefix_on(&mut node.clone(), self.backend.key_prefix()).await,
            );
        }
        Ok(out)
    }

    fn round_trips(&self) -> u64 {
        self.backend.round_trips()
    }
}

/// The suites' fixture: stores on the cluster under a fresh prefix per case, whose keys go
/// after it.
struct ClusterFixture {
    /// What the stores run on: their own cluster connection, or the application's.
    app: ClusterApp,
    /// The seed nodes the stores connect to (`rediss://` on the TLS cluster).
    seeds: Vec<String>,
    /// The CA of the TLS cluster.
    ca_file: Option<std::path::PathBuf>,
    nodes: Vec<redis::aio::MultiplexedConnection>,
    prefixes: Mutex<HashMap<&'static str, Vec<String>>>,
}

/// What a [`ClusterFixture`]'s stores run on.
enum ClusterApp {
    /// `RedisBackend::new` with `RedisConfig::cluster`.
    Own,
    /// `RedisBackend::from_cluster_client` with the application's client.
    Client(Box<redis::cluster::ClusterClient>),
    /// `RedisBackend::from_deadpool_cluster` with the application's cluster pool.
    #[cfg(feature = "deadpool")]
    Pool(deadpool_redis::cluster::Pool),
}

/// The binary's TLS cluster (`tls-cluster yes`, a throwaway CA), started on first use.
fn tls_cluster() -> &'static ThrowawayCluster {
    static CLUSTER: std::sync::OnceLock<ThrowawayCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(ThrowawayCluster::start_tls)
}

impl ClusterFixture {
    async fn setup() -> Result<Self, BoxError> {
        Ok(ClusterFixture {
            app: ClusterApp::Own,
            seeds: cluster_urls(),
            ca_file: None,
            nodes: nodes().await,
            prefixes: Mutex::new(HashMap::new()),
        })
    }

    /// The same suites on a cluster reached over TLS (`rediss://` seeds, the CA file).
    async fn setup_tls() -> Result<Self, BoxError> {
        let cluster = tokio::task::spawn_blocking(tls_cluster).await?;
        Ok(ClusterFixture {
            app: ClusterApp::Own,
            seeds: cluster.tls_urls(),
            ca_file: Some(cluster.ca_file()),
            nodes: nodes_of(&cluster.urls()).await,
            prefixes: Mutex::new(HashMap::new()),
        })
    }

    /// The suites on the application's own cluster client.
    async fn byo_client() -> Result<Self, BoxError> {
        let client = redis::cluster::ClusterClient::new(cluster_urls())?;
        Ok(ClusterFixture {
            app: ClusterApp::Client(Box::new(client)),
            ..Self::setup().await?
        })
    }

    /// The suites on the application's deadpool cluster pool.
    #[cfg(feature = "deadpool")]
    async fn byo_pool() -> Result<Self, BoxError> {
        let pool = deadpool_redis::cluster::Config::from_urls(cluster_urls())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
        Ok(ClusterFixture {
            app: ClusterApp::Pool(pool),
            ..Self::setup().await?
        })
    }

    /// A backend for `case`, on the fixture's kind of connection, under a fresh prefix.
    fn backend(&self, case: &'static str) -> Result<RedisBackend, BoxError> {
        let config = self.config(case);
        let options = || {
            BackendOptions::new()
                .key_prefix(config.key_prefix.clone())
                .operation_timeout(config.operation_timeout)
        };
        Ok(match &self.app {
            ClusterApp::Own => RedisBackend::new(&config)?,
            ClusterApp::Client(client) => {
                RedisBackend::from_cluster_client((**client).clone(), options())?
            }
            #[cfg(feature = "deadpool")]
            ClusterApp::Pool(pool) => RedisBackend::from_deadpool_cluster(pool.clone(), options())?,
        })
    }

    fn config(&self, case: &'static str) -> RedisConfig {
        let mut config = RedisConfig::default()
            .cluster(self.seeds.clone())
            .key_prefix(unique_prefix(&format!("cl-{case}")))
            .operation_timeout(Duration::from_secs(2));
        config.tls_ca_file.clone_from(&self.ca_file);
        self.prefixes
            .lock()
            .unwrap()
            .entry(case)
            .or_default()
            .push(config.key_prefix.clone());
        config
    }

    fn probe(&self, backend: &RedisBackend) -> Arc<ClusterProbe> {
        Arc::new(ClusterProbe {
            backend: backend.clone(),
            nodes: self.nodes.clone(),
        })
    }

    async fn delete(&self, case: &'static str) -> Result<(), BoxError> {
        let prefixes = self.prefixes.lock().unwrap().remove(case);
        for prefix in prefixes.unwrap_or_default() {
            delete_on_nodes(&self.nodes, &prefix).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Fixture<RevocationEnv> for ClusterFixture {
    async fn env(&self, case: &'static str) -> Result<RevocationEnv, BoxError> {
        let store = RedisRevocationStore::new(self.backend(case)?);
        let probe = self.probe(store.backend());
        Ok(RevocationEnv::new(
            Arc::new(store),
            Arc::new(RealClock::new()),
            probe,
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

#[async_trait]
impl Fixture<RateLimitEnv> for ClusterFixture {
    async fn env(&self, case: &'static str) -> Result<RateLimitEnv, BoxError> {
        let store = RedisRateLimitStore::new(self.backend(case)?);
        let probe = self.probe(store.backend());
        Ok(RateLimitEnv::new(
            Arc::new(store),
            Arc::new(tokenward_ratelimit::conformance::RealClock::new()),
            probe,
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

#[async_trait]
impl Fixture<RefreshEnv> for ClusterFixture {
    async fn env(&self, case: &'static str) -> Result<RefreshEnv, BoxError> {
        let store = RedisRefreshStore::new(self.backend(case)?);
        let probe = self.probe(store.backend());
        Ok(RefreshEnv::new(
            Arc::new(store),
            Arc::new(tokenward_refresh::conformance::RealClock::new()),
            probe,
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

fn separate(stores: &RedisStores) -> SeparateStores {
    SeparateStores {
        revocation: Arc::new(stores.revocation()),
        ratelimit: Arc::new(stores.ratelimit()),
    }
}

#[async_trait]
impl Fixture<CombinedEnv> for ClusterFixture {
    async fn env(&self, case: &'static str) -> Result<CombinedEnv, BoxError> {
        let backend = RedisStores::new(self.backend(case)?);
        let reference = RedisStores::new(self.backend(case)?);
        Ok(CombinedEnv::new(
            Arc::new(backend.clone()),
            separate(&backend),
            separate(&reference),
            Arc::new(tokenward_guard::conformance::RealClock::new()),
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

mod revocation_conformance {
    tokenward_revocation::revocation_conformance_tests!(
        fixture = super::ClusterFixture,
        setup = super::ClusterFixture::setup
    );
}

mod ratelimit_conformance {
    tokenward_ratelimit::ratelimit_conformance_tests!(
        fixture = super::ClusterFixture,
        setup = super::ClusterFixture::setup
    );
}

mod refresh_conformance {
    tokenward_refresh::refresh_conformance_tests!(
        fixture = super::ClusterFixture,
        setup = super::ClusterFixture::setup
    );
}

mod combined_conformance {
    tokenward_guard::combined_conformance_tests!(
        fixture = super::ClusterFixture,
        setup = super::ClusterFixture::setup
    );
}

mod byo;
mod dead;
mod moved;
mod tls;

/// The address (`ip:port`) of the primary that owns `key`'s slot right now, from
/// `CLUSTER KEYSLOT` and `CLUSTER NODES` (asked of the first node).
async fn node_of(nodes: &[redis::aio::MultiplexedConnection], key: &str) -> String {
    let mut first = nodes[0].clone();
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut first)
        .await
        .unwrap();
    let table: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut first)
        .await
        .unwrap();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 || !fields[2].contains("master") {
            continue;
        }
        let owns = fields[8..].iter().any(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
        });
        if owns {
            return fields[1].split('@').next().unwrap().to_owned();
        }
    }
    panic!("no primary owns slot {slot} of {key}: {table}");
}

/// One subject's keys spread over the nodes (no hash tag in the prefix): every store call
/// and the Guard's per-request check work — a `CROSSSLOT` (or any other error) fails the test
/// — and the answers are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_one_subject_on_different_nodes_never_break_a_script() {
    let nodes = nodes().await;
    let config = cluster_config("cl-spread");
    let prefix = config.key_prefix.clone();
    let stores = RedisStores::connect(&config).unwrap();
    let revocation = stores.revocation();
    let ratelimit = stores.ratelimit();
    // A subject whose revocation, limit and ban keys are on at least two nodes.
    let mut chosen = None;
    for n in 0..64 {
        let sub = format!("user-{n}");
        let keys = [
            revocation.token_key(&format!("j-{n}")),
            revocation.session_key(&format!("s-{n}")),
            revocation.subject_key(&sub),
            ratelimit.gcra_key(&LimitKey::new(format!("sub:{sub}")).unwrap()),
            ratelimit.ban_key(&LimitKey::new("ip:203.0.113.7").unwrap()),
        ];
        let mut owners = BTreeSet::new();
        for key in &keys {
            owners.insert(node_of(&nodes, key).await);
        }
        if owners.len() >= 2 {
            chosen = Some(n);
            break;
        }
    }
    let n = chosen.expect("no subject with keys on two nodes among 64");
    let (jti, sid, sub) = (format!("j-{n}"), format!("s-{n}"), format!("user-{n}"));
    let exp = UnixTime::from_secs(4_000_000_000);
    let token = TokenRef::from_parts(
        Some(&jti),
        Some(&sid),
        Some(&sub),
        Some(UnixTime::from_secs(1_000)),
        exp,
    )
    .unwrap();
    let limit_name = format!("sub:{sub}");
    let limit_key = LimitKey::new(&limit_name).unwrap();
    let client = LimitKey::new("ip:203.0.113.7").unwrap();
    let net = LimitKey::new("net:203.0.113.0/24").unwrap();
    let charge = GcraCharge::single(GcraQuota::per_minute(std::num::NonZeroU32::new(2).unwrap()));
    let ban = BanQuota::fail2ban_default();
    let client_ban = || Some(BanCheck::new(&client, &ban).network(&net));

    // Active: the limit's step is taken, once per call, across the slots.
    let before = stores.backend().round_trips();
    let check = stores
        .check_request(&token, Some((&limit_key, &charge)), client_ban())
        .await
        .unwrap();
    assert_eq!(
        stores.backend().round_trips() - before,
        1,
        "one round trip of latency"
    );
    assert_eq!(check.revocation, RevocationStatus::Active);
    assert!(check.ban.is_some_and(|b| b.allowed));
    assert_eq!(
        check.limit.map(|d| (d.allowed, d.remaining)),
        Some((true, 1))
    );

    // Revoked by jti (another slot than the limit's, maybe another node): no cell consumed.
    revocation
        .revoke_token(&StoreId::new(&jti).unwrap(), exp)
        .await
        .unwrap();
    for _ in 0..3 {
        let check = stores
            .check_request(&token, Some((&limit_key, &charge)), client_ban())
            .await
            .unwrap();
        assert_eq!(
            check.revocation,
            RevocationStatus::Revoked(RevokedBy::Token)
        );
        assert_eq!(check.limit, None);
    }
    assert_eq!(
        revocation.check(&token).await.unwrap(),
        RevocationStatus::Revoked(RevokedBy::Token)
    );
    let other = TokenRef::from_parts(
        Some("fresh"),
        Some(&sid),
        Some(&sub),
        Some(UnixTime::from_secs(1_000)),
        exp,
    )
    .unwrap();
    let check = stores
        .check_request(&other, Some((&limit_key, &charge)), None)
        .await
        .unwrap();
    assert_eq!(
        check.limit.map(|d| (d.allowed, d.remaining)),
        Some((true, 0)),
        "the revoked token's calls gave their cells back"
    );

    // A banned network (its keys in their own slot): a clean address in it is refused, and
    // no cell is consumed.
    let neighbour = LimitKey::new("ip:203.0.113.8").unwrap();
    let one = BanQuota::new(std::num::NonZeroU32::MIN, ban.findtime(), ban.bantime()).unwrap();
    assert!(!ratelimit.record_failure(&net, &one).await.unwrap().allowed);
    let fresh_net =
        TokenRef::from_parts(Some("fresh-n"), None, Some("net-user"), None, exp).unwrap();
    let net_key = LimitKey::new("sub:net-user").unwrap();
    let check = stores
        .check_request(
            &fresh_net,
            Some((&net_key, &charge)),
            Some(BanCheck::new(&neighbour, &ban).network(&net)),
        )
        .await
        .unwrap();
    assert!(check.ban.is_some_and(|b| !b.allowed), "{check:?}");
    assert_eq!(check.limit, None);
    let decision = ratelimit.gcra(&net_key, &charge).await.unwrap();
    assert_eq!(
        (decision.allowed, decision.remaining),
        (true, 1),
        "the call refused by the network ban gave its cell back"
    );
    ratelimit.lift_ban(&net).await.unwrap();

    // Banned client: no cell consumed either.
    for _ in 0..5 {
        ratelimit.record_failure(&client, &ban).await.unwrap();
    }
    let fresh =
        TokenRef::from_parts(Some("fresh-2"), None, Some("nobody-else"), None, exp).unwrap();
    let fresh_key = LimitKey::new("sub:nobody-else").unwrap();
    let check = stores
        .check_request(&fresh, Some((&fresh_key, &charge)), client_ban())
        .await
        .unwrap();
    assert!(check.ban.is_some_and(|b| !b.allowed));
    assert_eq!(check.limit, None);
    let decision = ratelimit.gcra(&fresh_key, &charge).await.unwrap();
    assert_eq!(
        (decision.allowed, decision.remaining),
        (true, 1),
        "the banned call gave its cell back"
    );

    // A corrupt revocation entry in another slot than the limit's fails the call (Corrupt,
    // never a verdict), and the cell the limit's script took is given back.
    let mut cluster = redis::cluster::ClusterClient::new(cluster_urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let garbage = TokenRef::from_parts(Some("garbage"), None, None, None, exp).unwrap();
    let _: () = redis::cmd("SET")
        .arg(revocation.token_key("garbage"))
        .arg("not a number")
        .arg("EX")
        .arg(600)
        .query_async(&mut cluster)
        .await
        .unwrap();
    let spare = LimitKey::new("sub:spare").unwrap();
    let r = stores
        .check_request(&garbage, Some((&spare, &charge)), None)
        .await;
    assert!(
        matches!(&r, Err(e) if e.kind() == tokenward_core::StoreErrorKind::Corrupt),
        "{r:?}"
    );
    let decision = ratelimit.gcra(&spare, &charge).await.unwrap();
    assert_eq!(
        (decision.allowed, decision.remaining),
        (true, 1),
        "the failed call gave its cell back"
    );

    // Subject cutoff and session revocation across slots.
    revocation
        .revoke_subject(
            &StoreId::new(&sub).unwrap(),
            UnixTime::from_secs(2_000),
            exp,
        )
        .await
        .unwrap();
    let untouched = TokenRef::from_parts(
        Some("j-x"),
        None,
        Some(&sub),
        Some(UnixTime::from_secs(1_500)),
        exp,
    )
    .unwrap();
    assert!(matches!(
        revocation.check(&untouched).await.unwrap(),
        RevocationStatus::Revoked(RevokedBy::Subject { .. })
    ));
    ratelimit.lift_ban(&client).await.unwrap();
    assert!(ratelimit.ban_status(&client, &ban).await.unwrap().allowed);

    // The keys really are on several nodes.
    let mut owners = BTreeSet::new();
    for key in keys_on_nodes(&nodes, &prefix).await {
        owners.insert(node_of(&nodes, &key).await);
    }
    assert!(owners.len() >= 2, "{owners:?}");
    delete_on_nodes(&nodes, &prefix).await;
}

/// The startup check runs on every primary: all `noeviction` passes and lists them; one
/// evicting primary is refused, named in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_check_runs_on_every_primary() {
    let nodes = nodes().await;
    let backend = RedisBackend::new(&cluster_config("cl-check")).unwrap();
    let check = backend.check_server().await.unwrap();
    assert_eq!(check.primaries.len(), nodes.len(), "{check:?}");
    assert_eq!(check.maxmemory_policy.as_deref(), Some("noeviction"));
    let mut last = nodes.last().unwrap().clone();
    let set = |policy: &'static str| {
        let mut conn = last.clone();
        async move {
            let () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory-policy")
                .arg(policy)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    set("allkeys-lru").await;
    let refused = backend.check_server().await;
    set("noeviction").await;
    let port = cluster_urls()
        .last()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    match refused {
        Err(ServerCheckError::EvictionPolicy { endpoint, policy }) => {
            assert_eq!(policy, "allkeys-lru");
            assert!(endpoint.ends_with(&format!(":{port}")), "{endpoint}");
        }
        other => panic!("expected the evicting primary to be refused, got {other:?}"),
    }
    let _: String = redis::cmd("PING").query_async(&mut last).await.unwrap();
}

/// The application's cluster client, and (with `deadpool`) its cluster pool, run the stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_cluster_client_runs_the_stores() {
    let nodes = nodes().await;
    let prefix = unique_prefix("cl-byo");
    let options = BackendOptions::new()
        .key_prefix(prefix.clone())
        .operation_timeout(Duration::from_secs(2));
    let client = redis::cluster::ClusterClient::new(cluster_urls()).unwrap();
    let mut backends = Vec::new();
    backends.push(RedisBackend::from_cluster_client(client, options.clone()).unwrap());
    #[cfg(feature = "deadpool")]
    {
        let pool = deadpool_redis::cluster::Config::from_urls(cluster_urls())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        backends.push(RedisBackend::from_deadpool_cluster(pool, options).unwrap());
    }
    for (i, backend) in backends.into_iter().enumerate() {
        let store = RedisRevocationStore::new(backend.clone());
        let jti = format!("byo-{i}");
        let exp = UnixTime::from_secs(4_000_000_000);
        store
            .revoke_token(&StoreId::new(&jti).unwrap(), exp)
            .await
            .unwrap();
        let token = TokenRef::from_parts(Some(&jti), Some("s"), Some("u"), None, exp).unwrap();
        assert_eq!(
            store.check(&token).await.unwrap(),
            RevocationStatus::Revoked(RevokedBy::Token)
        );
        backend.ping().await.unwrap();
        assert!(!format!("{backend:?}").is_empty());
    }
    delete_on_nodes(&nodes, &prefix).await;
}

/// Cluster settings are checked when the config is: seeds are `redis://` or `rediss://` URLs,
/// all of one kind, `tls_*` files only with `rediss://` seeds; a TOML config names them.
#[test]
fn cluster_settings_are_validated() {
    let config: RedisConfig = toml::from_str(
        r#"
        cluster = ["redis://:s3cret@10.0.0.1:7000", "redis://10.0.0.2:7000"]
        key_prefix = "{tw}:"
        "#,
    )
    .unwrap();
    assert_eq!(config.cluster.len(), 2);
    assert!(!format!("{config:?}").contains("s3cret"));
    for bad in [
        RedisConfig::default().cluster(["redis://10.0.0.1:7000", "rediss://10.0.0.2:7000"]),
        RedisConfig::default().cluster(["unix:///tmp/r.sock"]),
        RedisConfig::default().cluster(["http://10.0.0.1"]),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    let tls = toml::from_str::<RedisConfig>(
        r#"
        url = "rediss://h"
        tls_ca_file = "/ca.pem"
        cluster = ["redis://10.0.0.1:7000"]
        "#,
    );
    assert!(tls.is_err());
}

/// Two application instances on one cluster (separate connections, same seed nodes and
/// prefix) behave as one service: a logout (session revocation) on one is honoured by the
/// other's per-request check, a subject's limit is shared, and parallel refreshes split
/// between them get one successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_cluster_behave_as_one_service() {
    let nodes = nodes().await;
    let config = cluster_config("cl-two");
    let (a, b) = (
        RedisStores::connect(&config).unwrap(),
        RedisStores::connect(&config).unwrap(),
    );
    let exp = UnixTime::from_secs(4_000_000_000);
    let iat = Some(UnixTime::from_secs(1_000));
    let token = TokenRef::from_parts(Some("j-1"), Some("sess-1"), Some("bob"), iat, exp).unwrap();
    let limit = LimitKey::new("sub:bob").unwrap();
    let three = GcraCharge::single(GcraQuota::per_minute(std::num::NonZeroU32::new(3).unwrap()));

    // The limit is shared: 3 per minute across both instances.
    let mut allowed = 0;
    for i in 0..6 {
        let stores = if i % 2 == 0 { &a } else { &b };
        let (status, decision) = stores
            .check_token(&token, Some((&limit, &three)))
            .await
            .unwrap();
        assert_eq!(status, RevocationStatus::Active);
        allowed += usize::from(decision.unwrap().allowed);
    }
    assert_eq!(allowed, 3, "one quota for both instances");

    // A logout on A is honoured by B.
    a.revocation()
        .revoke_session(&StoreId::new("sess-1").unwrap(), exp)
        .await
        .unwrap();
    let (status, decision) = b.check_token(&token, Some((&limit, &three))).await.unwrap();
    assert_eq!(status, RevocationStatus::Revoked(RevokedBy::Session));
    assert_eq!(decision, None);

    crate::refresh::two_instances_share_one_successor(&config).await;
    delete_on_nodes(&nodes, &config.key_prefix).await;
}
