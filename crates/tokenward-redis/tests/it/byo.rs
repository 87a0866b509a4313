//! Bring your own connection: the stores on an application's `redis::Client`,
//! `MultiplexedConnection`, `ConnectionManager` and (feature `deadpool`) `deadpool_redis::Pool`.
//! The conformance suites run on each kind (which suites on which kind, and why: at the
//! `byo_suites!` calls below); the stores share the application's connection with the application; the operation
//! timeout bounds every kind (a silent server, an exhausted pool).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use tokenward_core::StoreErrorKind;
use tokenward_core::conformance::{BoxError, Fixture};
use tokenward_guard::conformance::{CombinedEnv, SeparateStores};
use tokenward_ratelimit::conformance::RateLimitEnv;
use tokenward_redis::{
    BackendOptions, RedisBackend, RedisConfigError, RedisRateLimitStore, RedisRevocationStore,
    RedisStores,
};
use tokenward_revocation::conformance::{RealClock, RevocationEnv};
use tokenward_testsupport::{BlackHole, redis_url, unique_prefix};

use crate::common::{RedisProbe, TIMEOUT, bounded_failure, delete_under, raw_connection};

/// What the application hands the stores.
#[derive(Clone)]
enum AppConnection {
    Client(redis::Client),
    Multiplexed(MultiplexedConnection),
    Manager(ConnectionManager),
    #[cfg(feature = "deadpool")]
    Pool(deadpool_redis::Pool),
}

impl AppConnection {
    fn backend(&self, options: BackendOptions) -> Result<RedisBackend, RedisConfigError> {
        match self.clone() {
            AppConnection::Client(client) => RedisBackend::from_client(client, options),
            AppConnection::Multiplexed(conn) => RedisBackend::from_multiplexed(conn, options),
            AppConnection::Manager(manager) => {
                RedisBackend::from_connection_manager(manager, options)
            }
            #[cfg(feature = "deadpool")]
            AppConnection::Pool(pool) => RedisBackend::from_deadpool(pool, options),
        }
    }
}

fn client() -> redis::Client {
    redis::Client::open(redis_url()).unwrap()
}

async fn manager() -> ConnectionManager {
    ConnectionManager::new(client()).await.unwrap()
}

#[cfg(feature = "deadpool")]
fn pool(url: &str, size: usize) -> deadpool_redis::Pool {
    deadpool_redis::Config::from_url(url)
        .builder()
        .unwrap()
        .max_size(size)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .unwrap()
}

/// The suites' fixture: stores on one application connection of a kind (made once per suite,
/// shared by its cases as an application shares it), under a fresh prefix per case.
struct ByoFixture {
    app: AppConnection,
    prefixes: Mutex<HashMap<&'static str, Vec<String>>>,
}

impl ByoFixture {
    fn with(app: AppConnection) -> Self {
        ByoFixture {
            app,
            prefixes: Mutex::new(HashMap::new()),
        }
    }

    async fn client() -> Result<Self, BoxError> {
        raw_connection().await;
        Ok(Self::with(AppConnection::Client(client())))
    }

    async fn multiplexed() -> Result<Self, BoxError> {
        raw_connection().await;
        let conn = client().get_multiplexed_async_connection().await?;
        Ok(Self::with(AppConnection::Multiplexed(conn)))
    }

    async fn manager() -> Result<Self, BoxError> {
        raw_connection().await;
        Ok(Self::with(AppConnection::Manager(manager().await)))
    }

    #[cfg(feature = "deadpool")]
    async fn deadpool() -> Result<Self, BoxError> {
        raw_connection().await;
        Ok(Self::with(AppConnection::Pool(pool(&redis_url(), 8))))
    }

    /// A backend for `case` on the application's connection, its prefix remembered for the
    /// teardown.
    fn backend(&self, case: &'static str) -> Result<RedisBackend, BoxError> {
        let prefix = unique_prefix(&format!("byo-{case}"));
        self.prefixes
            .lock()
            .unwrap()
            .entry(case)
            .or_default()
            .push(prefix.clone());
        let options = BackendOptions::new()
            .key_prefix(prefix)
            .operation_timeout(Duration::from_secs(2));
        Ok(self.app.backend(options)?)
    }

    fn probe(backend: &RedisBackend) -> Arc<RedisProbe> {
        Arc::new(RedisProbe {
            backend: backend.clone(),
        })
    }

    async fn delete(&self, case: &'static str) -> Result<(), BoxError> {
        let prefixes = self.prefixes.lock().unwrap().remove(case);
        for prefix in prefixes.unwrap_or_default() {
            delete_under(&prefix).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Fixture<RevocationEnv> for ByoFixture {
    async fn env(&self, case: &'static str) -> Result<RevocationEnv, BoxError> {
        let backend = self.backend(case)?;
        let probe = Self::probe(&backend);
        Ok(RevocationEnv::new(
            Arc::new(RedisRevocationStore::new(backend)),
            Arc::new(RealClock::new()),
            probe,
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

#[async_trait]
impl Fixture<RateLimitEnv> for ByoFixture {
    async fn env(&self, case: &'static str) -> Result<RateLimitEnv, BoxError> {
        let backend = self.backend(case)?;
        let probe = Self::probe(&backend);
        Ok(RateLimitEnv::new(
            Arc::new(RedisRateLimitStore::new(backend)),
            Arc::new(tokenward_ratelimit::conformance::RealClock::new()),
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
impl Fixture<CombinedEnv> for ByoFixture {
    async fn env(&self, case: &'static str) -> Result<CombinedEnv, BoxError> {
        let stores = RedisStores::new(self.backend(case)?);
        let reference = RedisStores::new(self.backend(case)?);
        Ok(CombinedEnv::new(
            Arc::new(stores.clone()),
            separate(&stores),
            separate(&reference),
            Arc::new(tokenward_guard::conformance::RealClock::new()),
        ))
    }

    async fn teardown(&self, case: &'static str) -> Result<(), BoxError> {
        self.delete(case).await
    }
}

/// A module per kind of connection with the named suites on it.
macro_rules! byo_suites {
    ($kind:ident: $setup:path; $($suite:ident)*) => {
        mod $kind {
            $(byo_suites!(@suite $suite $setup);)*
        }
    };
    (@suite revocation $setup:path) => {
        mod revocation {
            tokenward_revocation::revocation_conformance_tests!(
                fixture = super::super::ByoFixture,
                setup = $setup
            );
        }
    };
    (@suite ratelimit $setup:path) => {
        mod ratelimit {
            tokenward_ratelimit::ratelimit_conformance_tests!(
                fixture = super::super::ByoFixture,
                setup = $setup
            );
        }
    };
    (@suite combined $setup:path) => {
        mod combined {
            tokenward_guard::combined_conformance_tests!(
                fixture = super::super::ByoFixture,
                setup = $setup
            );
        }
    };
}

// Which suites on which kind. The suites wait out real time (≈ 6 s revocation, 13 s rate
// limit, 20 s refresh per kind on the 2-core CI machine), so not every suite runs on every
// kind; what each kind adds is covered:
// - client: revocation (pipelined check) and combined (the Guard's one script). Its
//   connections are the slot machinery of `RedisBackend::new`, which runs every suite in
//   `revocation.rs`, `ratelimit.rs`, `refresh.rs`, `combined.rs` and over TLS in `tls.rs`.
// - multiplexed: the same two; a handle of the same type as the slots'.
// - manager: those two and the rate-limit suite (scripts, `EVALSHA`, on another
//   `ConnectionLike`).
// - deadpool: the same three (a checkout per call, the connection back to the pool after
//   it). The refresh suite runs on the backend's own connections only: the stores' code does
//   not depend on the kind (every call goes through `RedisBackend::run`), and its 20 s per
//   kind would take this module past a minute of extra test time.
byo_suites!(client: super::super::ByoFixture::client; revocation combined);
byo_suites!(multiplexed: super::super::ByoFixture::multiplexed; revocation combined);
byo_suites!(manager: super::super::ByoFixture::manager; revocation ratelimit combined);
#[cfg(feature = "deadpool")]
byo_suites!(deadpool: super::super::ByoFixture::deadpool; revocation ratelimit combined);

/// Options for the tests below: a fresh prefix and the outage tests' [`TIMEOUT`].
fn options(test: &str) -> BackendOptions {
    BackendOptions::new()
        .key_prefix(unique_prefix(test))
        .operation_timeout(TIMEOUT)
}

fn token_id() -> tokenward_core::StoreId<'static> {
    tokenward_core::StoreId::new("byo-jti").unwrap()
}

fn far_exp() -> tokenward_core::UnixTime {
    tokenward_core::UnixTime::from_secs(4_000_000_000)
}

/// A revoke and a check through `backend`, then its keys go.
async fn revoke_and_check(backend: &RedisBackend) {
    use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};
    let store = RedisRevocationStore::new(backend.clone());
    store.revoke_token(&token_id(), far_exp()).await.unwrap();
    let token =
        tokenward_core::TokenRef::from_parts(Some("byo-jti"), None, None, None, far_exp()).unwrap();
    assert_eq!(
        store.check(&token).await.unwrap(),
        RevocationStatus::Revoked(RevokedBy::Token)
    );
}

/// Every kind answers `ping` and the startup check, and says where it is.
#[tokio::test]
async fn every_kind_pings_passes_the_startup_check_and_names_itself() {
    raw_connection().await;
    #[cfg_attr(not(feature = "deadpool"), allow(unused_mut))]
    let mut apps = vec![
        (AppConnection::Client(client()), None),
        (
            AppConnection::Multiplexed(client().get_multiplexed_async_connection().await.unwrap()),
            Some("application connection"),
        ),
        (
            AppConnection::Manager(manager().await),
            Some("application connection manager"),
        ),
    ];
    #[cfg(feature = "deadpool")]
    apps.push((
        AppConnection::Pool(pool(&redis_url(), 2)),
        Some("application pool"),
    ));
    for (app, label) in apps {
        let backend = app
            .backend(options("byo-kinds").operation_timeout(Duration::from_secs(2)))
            .unwrap();
        backend.ping().await.unwrap();
        backend.check_server().await.unwrap();
        revoke_and_check(&backend).await;
        match label {
            Some(label) => assert_eq!(backend.endpoint(), label),
            // The client's address.
            None => assert!(redis_url().ends_with(backend.endpoint()), "{backend:?}"),
        }
        delete_under(backend.key_prefix()).await;
    }
}

#[test]
fn invalid_options_are_configuration_errors() {
    for (options, says) in [
        (
            BackendOptions::new().pool_size(0),
            "`pool_size`: must be at least 1",
        ),
        (
            BackendOptions::new().operation_timeout(Duration::ZERO),
            "`operation_timeout`: must be greater than zero",
        ),
    ] {
        let err = RedisBackend::from_client(client(), options).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
}

/// The stores use the application's connection manager itself: the application's commands
/// and the stores' go over it, and the server sees no connection of the stores' own.
#[tokio::test]
async fn the_stores_share_the_applications_connection_manager() {
    let server = tokenward_testsupport::ThrowawayRedis::start();
    let app_client = redis::Client::open(server.url()).unwrap();
    let mut manager = ConnectionManager::new(app_client).await.unwrap();
    let connections = |info: &redis::InfoDict| info.get::<u64>("total_connections_received");
    let before: redis::InfoDict = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut manager)
        .await
        .unwrap();

    let backend =
        RedisBackend::from_connection_manager(manager.clone(), options("byo-share")).unwrap();
    let _: () = redis::cmd("SET")
        .arg("app-key")
        .arg("1")
        .query_async(&mut manager)
        .await
        .unwrap();
    revoke_and_check(&backend).await;
    let value: String = redis::cmd("GET")
        .arg("app-key")
        .query_async(&mut manager)
        .await
        .unwrap();
    assert_eq!(value, "1");

    let after: redis::InfoDict = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut manager)
        .await
        .unwrap();
    assert_eq!(
        connections(&after),
        connections(&before),
        "the stores opened a connection"
    );
}

/// A client or a pool pointing at a server that never answers: every call times out within
/// the operation timeout, twice over (the failed connection does not wedge the next call).
#[tokio::test]
async fn a_silent_server_times_out_on_a_client_and_on_a_pool() {
    let hole = BlackHole::start();
    #[cfg_attr(not(feature = "deadpool"), allow(unused_mut))]
    let mut apps = vec![AppConnection::Client(
        redis::Client::open(hole.redis_url()).unwrap(),
    )];
    #[cfg(feature = "deadpool")]
    apps.push(AppConnection::Pool(pool(&hole.redis_url(), 2)));
    for app in apps {
        let backend = app.backend(options("byo-hole")).unwrap();
        for _ in 0..2 {
            bounded_failure("ping", &[StoreErrorKind::Timeout], backend.ping()).await;
        }
    }
}

/// A frozen server behind the application's multiplexed connection and connection manager
/// (both connect eagerly, so they are built while it answers): calls time out within the
/// operation timeout; once it is back, the calls work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_on_a_multiplexed_connection_and_a_manager() {
    let server = tokenward_testsupport::ThrowawayRedis::start();
    let app_client = redis::Client::open(server.url()).unwrap();
    let apps = [
        AppConnection::Multiplexed(app_client.get_multiplexed_async_connection().await.unwrap()),
        AppConnection::Manager(ConnectionManager::new(app_client).await.unwrap()),
    ];
    let backends: Vec<_> = apps
        .iter()
        .map(|app| app.backend(options("byo-frozen")).unwrap())
        .collect();
    server.freeze();
    for backend in &backends {
        bounded_failure("ping", &[StoreErrorKind::Timeout], backend.ping()).await;
    }
    server.thaw();
    for backend in &backends {
        eventually_pings(backend).await;
    }
}

/// `backend` answers `ping` within a few seconds.
async fn eventually_pings(backend: &RedisBackend) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match backend.ping().await {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{}: not yet: {e}", backend.endpoint());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{}: still failing: {e}", backend.endpoint()),
        }
    }
}

/// After a restart, the client's and the manager's backends recover by themselves; the one
/// on a plain multiplexed connection does not (as documented): it needs a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_client_and_a_manager_recover_a_plain_multiplexed_connection_does_not() {
    let mut server = tokenward_testsupport::ThrowawayRedis::start();
    let app_client = redis::Client::open(server.url()).unwrap();
    let plain =
        AppConnection::Multiplexed(app_client.get_multiplexed_async_connection().await.unwrap())
            .backend(options("byo-restart"))
            .unwrap();
    let recovering = [
        AppConnection::Client(app_client.clone())
            .backend(options("byo-restart"))
            .unwrap(),
        AppConnection::Manager(ConnectionManager::new(app_client).await.unwrap())
            .backend(options("byo-restart"))
            .unwrap(),
    ];
    for backend in recovering.iter().chain([&plain]) {
        backend.ping().await.unwrap();
    }
    server.restart();
    for backend in &recovering {
        eventually_pings(backend).await;
    }
    for _ in 0..2 {
        let err = plain.ping().await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    }
}

/// The application holds every connection of its pool: a store call waits for one only
/// until the operation timeout (`Timeout`, not a hang), and works once one is back.
#[cfg(feature = "deadpool")]
#[tokio::test]
async fn an_exhausted_pool_is_a_timeout_not_a_hang() {
    raw_connection().await;
    let pool = pool(&redis_url(), 1);
    let backend = RedisBackend::from_deadpool(pool.clone(), options("byo-exhausted")).unwrap();
    backend.ping().await.unwrap();
    let held = pool.get().await.unwrap();
    bounded_failure("ping", &[StoreErrorKind::Timeout], backend.ping()).await;
    drop(held);
    backend.ping().await.unwrap();
    assert_eq!(pool.status().size, 1);
}
