//! The demo's anomaly detection: every detector on, tuned by the `--anomaly-*` flags.

use std::sync::Arc;

use tokenward_anomaly::{
    AnomalyConfig, AnomalyDetector, AnomalyStore, MemoryAnomalyStore, RedisAnomalyStore, Responder,
};
use tokenward_guard::GuardStores;
use tokenward_refresh::RefreshEngine;

use super::{DemoConfig, StartError};

/// The demo's anomaly detectors: every one on, with the `--anomaly-*` settings, acting on
/// the Guard's stores (bans under its failure ban's key, revoked sessions' refresh families
/// through `engine`); their counts on Redis with `--redis` (instances share them), in
/// memory otherwise.
pub(super) fn anomaly_detector(
    config: &DemoConfig,
    stores: &GuardStores,
    ban: Option<tokenward_ratelimit::FailureBan>,
    redis: Option<&tokenward_redis::RedisBackend>,
    engine: Arc<RefreshEngine>,
) -> Result<AnomalyDetector, StartError> {
    let mut settings = AnomalyConfig::default();
    if let Some(d) = settings.token_shared.as_mut() {
        d.max_networks = config.anomaly_max_networks;
        d.window = config.anomaly_window;
    }
    if let Some(d) = settings.revoked_replay.as_mut() {
        d.ban_after = config.anomaly_replay_ban;
        d.window = config.anomaly_window;
    }
    if let Some(d) = settings.forgery_burst.as_mut() {
        d.threshold = config.anomaly_forgery_ban;
    }
    let state: Arc<dyn AnomalyStore> = match redis {
        Some(backend) => Arc::new(RedisAnomalyStore::new(backend.clone())),
        None => Arc::new(MemoryAnomalyStore::new()),
    };
    let mut responder = Responder::for_stores(stores).refresh_engine(engine);
    if let Some(ban) = ban {
        responder = responder.failure_ban(ban);
    }
    AnomalyDetector::builder(settings)
        .store(state)
        .responder(responder)
        .start()
        .map_err(StartError::Anomaly)
}
