//! A Guard with an anomaly detector as its decision hook, on memory or on Redis (under a
//! fresh key prefix), and what the detector reported.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenward_anomaly::{
    Anomaly, AnomalyConfig, AnomalyDetector, AnomalyHandler, AnomalyKind, AnomalyStore,
    MemoryAnomalyStore, NetworkInfo, RedisAnomalyStore, Responder,
};
use tokenward_claims::{
    AccessToken, Algorithm, Key, KeySet, TokenIssuer, ValidationPolicy, Validator,
};
use tokenward_core::{ManualClock, UnixTime};
use tokenward_guard::{AuthRequest, Authenticated, Credentials, Denial, Guard, GuardStores};
use tokenward_ratelimit::{BanQuota, FailureBan};
use tokenward_redis::{RedisBackend, RedisConfig, RedisStores};
use tokenward_testsupport::{redis_url, unique_prefix};

pub const ISSUER: &str = "https://issuer.anomaly.example";
pub const AUDIENCE: &str = "api";

/// Every anomaly the handler received.
#[derive(Debug, Default)]
pub struct Collected(Mutex<Vec<Anomaly>>);

impl AnomalyHandler for Collected {
    fn on_anomaly(&self, anomaly: &Anomaly) {
        self.0.lock().unwrap().push(anomaly.clone());
    }
}

impl Collected {
    pub fn of(&self, kind: AnomalyKind) -> Vec<Anomaly> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.kind == kind)
            .cloned()
            .collect()
    }
}

/// Where the Guard's stores and the detector's state live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// The stores of one service: memory, or Redis under one prefix (two instances of the
/// service share them).
#[derive(Clone)]
pub struct Service {
    pub stores: GuardStores,
    pub state: Arc<dyn AnomalyStore>,
    pub prefix: Option<String>,
}

impl Service {
    pub fn new(backend: Backend) -> Service {
        match backend {
            Backend::Memory => Service {
                stores: GuardStores::memory(),
                state: Arc::new(MemoryAnomalyStore::new()),
                prefix: None,
            },
            Backend::Redis => {
                let prefix = unique_prefix("anomaly");
                let config = RedisConfig::new(redis_url())
                    .key_prefix(&prefix)
                    .operation_timeout(Duration::from_secs(2));
                let backend = RedisBackend::new(&config).unwrap();
                Service {
                    stores: GuardStores::redis(&RedisStores::new(backend.clone())),
                    state: Arc::new(RedisAnomalyStore::new(backend)),
                    prefix: Some(prefix),
                }
            }
        }
    }
}

/// One instance: a Guard whose hook is `detector`.
pub struct Instance {
    pub guard: Guard,
    pub detector: AnomalyDetector,
    pub collected: Arc<Collected>,
}

/// The Guard's own failure ban in these tests: generous, so that only the detectors ban.
pub fn lenient_ban() -> FailureBan {
    FailureBan::new(
        "auth-ban",
        BanQuota::new(
            NonZeroU32::new(1000).unwrap(),
            Duration::from_secs(60),
            Duration::from_secs(300),
        )
        .unwrap(),
    )
    .unwrap()
}

pub fn keys() -> KeySet {
    KeySet::single(Key::hmac("k1", Algorithm::HS256, &[0x42; 32]).unwrap())
}

pub fn issuer() -> TokenIssuer {
    TokenIssuer::builder(keys(), ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap()
}

/// Tokens with the right `kid` signed by another key: forgeries.
pub fn forger() -> TokenIssuer {
    let other = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[0x13; 32]).unwrap());
    TokenIssuer::builder(other, ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap()
}

/// Tokens signed under a `kid` the service never had: forgeries too.
pub fn stranger() -> TokenIssuer {
    let other = KeySet::single(Key::hmac("k9", Algorithm::HS256, &[0x42; 32]).unwrap());
    TokenIssuer::builder(other, ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap()
}

/// Tokens issued two hours ago, valid for an hour: expired.
pub fn stale_issuer() -> TokenIssuer {
    let now = UnixTime::from(std::time::SystemTime::now());
    let clock = ManualClock::new(now.saturating_sub(Duration::from_secs(7200)));
    TokenIssuer::builder(keys(), ISSUER)
        .audience(AUDIENCE)
        .ttl(Duration::from_secs(3600))
        .clock(Arc::new(clock))
        .build()
        .unwrap()
}

/// A token of `sub` in session `sid`.
pub fn token(sub: &str, sid: &str) -> String {
    issuer()
        .issue(&AccessToken::new(sub).sid(sid))
        .unwrap()
        .token
}

/// An instance of `service` with `config` (its responder acting on the service's stores).
pub fn instance(
    service: &Service,
    config: AnomalyConfig,
    info: Option<Arc<dyn NetworkInfo>>,
) -> Instance {
    let collected = Arc::new(Collected::default());
    let responder = Responder::for_stores(&service.stores).failure_ban(lenient_ban());
    instance_with(service, config, info, responder, collected)
}

pub fn instance_with(
    service: &Service,
    config: AnomalyConfig,
    info: Option<Arc<dyn NetworkInfo>>,
    responder: Responder,
    collected: Arc<Collected>,
) -> Instance {
    let mut builder = AnomalyDetector::builder(config)
        .store(Arc::clone(&service.state))
        .responder(responder)
        .handler(collected.clone());
    if let Some(info) = info {
        builder = builder.network_info(info);
    }
    let detector = builder.start().unwrap();
    let policy = ValidationPolicy::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let guard = Guard::builder(Validator::new(policy, keys()), service.stores.clone())
        .failure_ban(lenient_ban())
        .decision_hook(Arc::new(detector.clone()))
        .build()
        .unwrap();
    Instance {
        guard,
        detector,
        collected,
    }
}

impl Instance {
    /// `token` presented from `ip`.
    pub async fn call(&self, token: &str, ip: &str) -> Result<Authenticated, Denial> {
        let ip: IpAddr = ip.parse().unwrap();
        let req = AuthRequest::new("GET", "/me", ip, Credentials::Bearer(token));
        self.guard.authenticate(&req).await
    }

    /// Waits for the detector's worker.
    pub async fn settle(&self) {
        assert!(
            self.detector.settle(Duration::from_secs(10)).await,
            "the detector did not settle"
        );
    }
}
