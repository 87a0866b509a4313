//! [`AnomalyDetector`]: the Guard's [`DecisionHook`], and its worker.
//!
//! On the request path the hook only classifies the decision, skips what this instance sent
//! lately (a (token, network) pair it already reported), and queues the rest without
//! waiting: no store call, no clock read, no allocation for a repeated pair. A worker task
//! does the counting on the [`AnomalyStore`] — after the response, so on Redis detection adds
//! no round trip to the request — reports anomalies and runs their actions with retries.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ipnet::IpNet;
use tokenward_claims::RejectionClass;
use tokenward_core::{SettingError, StoreError, StoreId, TokenRef, metrics as names};
use tokenward_guard::{DecisionEvent, DecisionHook, Denial};
use tokenward_refresh::{FamilyId, ReuseReport};
use tokio::sync::{Semaphore, mpsc};

use crate::anomaly::{AnomalyHandler, TARGET};
use crate::config::AnomalyConfig;
use crate::network::{NetworkInfo, network_of};
use crate::respond::{Responder, Target};
use crate::seen::Seen;
use crate::state::{AnomalyStore, MemoryAnomalyStore};
use crate::worker::Worker;

/// What the request path hands the worker.
#[derive(Debug)]
pub(crate) enum Observation {
    /// An allowed request whose (token, network) or (subject, network) pair is new here.
    Allowed {
        ip: IpAddr,
        net: IpNet,
        claims: RawIds,
        target: Target,
        /// Check the token-shared detector.
        shared: bool,
        /// Check the new-network detector.
        new_network: bool,
    },
    /// A revoked token presented again.
    Revoked {
        ip: IpAddr,
        net: IpNet,
        claims: RawIds,
    },
    /// A forged token (bad signature, unknown key, refused algorithm).
    Forgery { ip: IpAddr, net: IpNet },
    /// A refresh family used from `ip` (issued or rotated).
    RefreshUsed { net: IpNet, family: FamilyId },
    /// The refresh engine detected reuse in a family.
    RefreshReused {
        ip: IpAddr,
        net: IpNet,
        family: FamilyId,
        sub: String,
    },
}

/// The token's raw claims, for the report.
#[derive(Debug, Default)]
pub(crate) struct RawIds {
    pub(crate) sub: Option<String>,
    pub(crate) sid: Option<String>,
    pub(crate) jti: Option<String>,
}

/// Builds an [`AnomalyDetector`].
#[must_use]
pub struct AnomalyDetectorBuilder {
    config: AnomalyConfig,
    store: Option<Arc<dyn AnomalyStore>>,
    responder: Option<Responder>,
    handler: Option<Arc<dyn AnomalyHandler>>,
    network_info: Option<Arc<dyn NetworkInfo>>,
}

impl fmt::Debug for AnomalyDetectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnomalyDetectorBuilder")
            .field("config", &self.config)
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

impl AnomalyDetectorBuilder {
    /// Where the counts are kept (default: a [`MemoryAnomalyStore`] of this process; use a
    /// shared one, such as `RedisAnomalyStore`, when several instances serve one API).
    pub fn store(mut self, store: Arc<dyn AnomalyStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Who carries out the actions (without one, every action is reported and then fails,
    /// logged: set one, e.g. [`Responder::for_stores`]).
    pub fn responder(mut self, responder: Responder) -> Self {
        self.responder = Some(responder);
        self
    }

    /// Receives every anomaly.
    pub fn handler(mut self, handler: Arc<dyn AnomalyHandler>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// ASN and country of client addresses, for the new-network detector and the reports.
    pub fn network_info(mut self, info: Arc<dyn NetworkInfo>) -> Self {
        self.network_info = Some(info);
        self
    }

    /// Validates the settings and starts the worker on the current Tokio runtime: a
    /// [`SettingError`] for a setting out of range, or when not called within a runtime.
    pub fn start(self) -> Result<AnomalyDetector, SettingError> {
        self.config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            SettingError::new(
                "runtime",
                "the detector must be started within a Tokio runtime",
            )
        })?;
        let (tx, rx) = mpsc::channel(self.config.queue);
        let seen = Arc::new(Seen::new());
        let pending = Arc::new(AtomicUsize::new(0));
        let worker = Arc::new(Worker {
            config: self.config.clone(),
            store: self
                .store
                .unwrap_or_else(|| Arc::new(MemoryAnomalyStore::new())),
            responder: self.responder,
            handler: self.handler,
            network_info: self.network_info,
            seen: Arc::clone(&seen),
            last_error_log: AtomicU64::new(0),
        });
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        runtime.spawn(run(rx, worker, permits, Arc::clone(&pending)));
        runtime.spawn(tick(Arc::downgrade(&seen)));
        Ok(AnomalyDetector {
            inner: Arc::new(Shared {
                config: self.config,
                tx,
                seen,
                pending,
            }),
        })
    }
}

/// The anomaly detectors, fed by a Guard's decisions ([`GuardBuilder::decision_hook`]) and by
/// the application's refresh endpoint ([`refresh_used`](Self::refresh_used),
/// [`refresh_reused`](Self::refresh_reused)). Cheap to clone; the worker stops when the last
/// clone is dropped.
///
/// [`GuardBuilder::decision_hook`]: tokenward_guard::GuardBuilder::decision_hook
#[derive(Clone)]
pub struct AnomalyDetector {
    inner: Arc<Shared>,
}

struct Shared {
    config: AnomalyConfig,
    tx: mpsc::Sender<Observation>,
    seen: Arc<Seen>,
    /// Observations queued or being processed.
    pending: Arc<AtomicUsize>,
}

impl fmt::Debug for AnomalyDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnomalyDetector")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Seen-pair tags: one key space per kind of pair.
const SEEN_PAIR: u8 = 1;
const SEEN_FAMILY: u8 = 3;

/// How long this instance skips a (token, network) pair it reported, at most.
const MAX_SEEN: Duration = Duration::from_secs(300);

impl AnomalyDetector {
    /// A builder for `config`.
    pub fn builder(config: AnomalyConfig) -> AnomalyDetectorBuilder {
        AnomalyDetectorBuilder {
            config,
            store: None,
            responder: None,
            handler: None,
            network_info: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AnomalyConfig {
        &self.inner.config
    }

    /// Reports that the refresh family `family` was issued or rotated for a client at `ip`
    /// (the networks a reuse report names). Call it after a successful
    /// [`issue`](tokenward_refresh::RefreshEngine::issue) or
    /// [`rotate`](tokenward_refresh::RefreshEngine::rotate).
    pub fn refresh_used(&self, family: &FamilyId, ip: IpAddr) {
        if self.inner.config.refresh_reuse.is_none() {
            return;
        }
        let net = self.network(ip);
        let key = (SEEN_FAMILY, family.as_str(), net);
        if self.inner.seen.check_and_remember(key, ttl_ticks(MAX_SEEN)) {
            return;
        }
        self.send(Observation::RefreshUsed {
            net,
            family: family.clone(),
        });
    }

    /// Reports the refresh engine's reuse detection ([`RefreshError::Reused`]) for a client
    /// at `ip`.
    ///
    /// [`RefreshError::Reused`]: tokenward_refresh::RefreshError::Reused
    pub fn refresh_reused(&self, report: &ReuseReport, ip: IpAddr) {
        if self.inner.config.refresh_reuse.is_none() {
            return;
        }
        self.send(Observation::RefreshReused {
            ip,
            net: self.network(ip),
            family: report.family_id.clone(),
            sub: report.sub.as_str().to_owned(),
        });
    }

    /// Waits until every decision handed over so far has been processed and its actions
    /// have run (tests, graceful shutdown); at most `timeout`. Returns whether it settled.
    pub async fn settle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.inner.pending.load(Ordering::Acquire) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn network(&self, ip: IpAddr) -> IpNet {
        let c = &self.inner.config;
        network_of(ip, c.ipv4_prefix, c.ipv6_prefix)
    }

    /// Queues `observation`, never waiting: a full queue drops it (counted).
    fn send(&self, observation: Observation) {
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        if self.inner.tx.try_send(observation).is_err() {
            self.inner.pending.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!(names::ANOMALY_DROPPED_TOTAL).increment(1);
        }
    }

    /// An allowed request: one seen-cache lookup per request. A token's `sub` never changes,
    /// so the (token, network) pair stands for the (subject, network) pair too; a token
    /// without `sid` and `jti` is looked up by its `sub`.
    fn allowed(&self, event: &DecisionEvent<'_>, token: &TokenRef<'static>) {
        let c = &self.inner.config;
        let id = token.sid.as_ref().or(token.jti.as_ref());
        let shared = c.token_shared.filter(|_| id.is_some());
        let new_network = c.new_network.is_some() && token.sub.is_some();
        let Some(key) = id.or(token.sub.as_ref()) else {
            return;
        };
        if shared.is_none() && !new_network {
            return;
        }
        let ttl = shared.map_or(MAX_SEEN, |d| (d.window / 4).min(MAX_SEEN));
        let net = self.network(event.client_ip);
        if self
            .inner
            .seen
            .check_and_remember((SEEN_PAIR, key.as_str(), net), ttl_ticks(ttl))
        {
            return;
        }
        self.send(Observation::Allowed {
            ip: event.client_ip,
            net,
            claims: raw_ids(event),
            target: target(event, token),
            shared: shared.is_some(),
            new_network,
        });
    }
}

impl DecisionHook for AnomalyDetector {
    fn decided(&self, event: &DecisionEvent<'_>) {
        let c = &self.inner.config;
        match (event.denial, event.token) {
            (None, Some(token)) => self.allowed(event, token),
            (Some(Denial::Revoked { .. }), _) if c.revoked_replay.is_some() => {
                self.send(Observation::Revoked {
                    ip: event.client_ip,
                    net: self.network(event.client_ip),
                    claims: raw_ids(event),
                });
            }
            (Some(Denial::InvalidToken { class }), _)
                if c.forgery_burst.is_some() && is_forgery(*class) =>
            {
                self.send(Observation::Forgery {
                    ip: event.client_ip,
                    net: self.network(event.client_ip),
                });
            }
            _ => {}
        }
    }
}

/// The rejection classes that mean a forged token: a signature that does not verify, a key
/// the service never had, an algorithm it does not allow (`none`, HS256 with a public key).
/// Never expiry, issuer or audience: honest clients send those.
pub fn is_forgery(class: RejectionClass) -> bool {
    matches!(
        class,
        RejectionClass::Signature | RejectionClass::Key | RejectionClass::Algorithm
    )
}

fn raw_ids(event: &DecisionEvent<'_>) -> RawIds {
    let Some(c) = event.claims else {
        return RawIds::default();
    };
    RawIds {
        sub: c.sub.clone(),
        sid: c.sid.clone(),
        jti: c.jti.clone(),
    }
}

fn target(event: &DecisionEvent<'_>, token: &TokenRef<'static>) -> Target {
    let claims = event.claims;
    Target {
        scoped_jti: token.jti.clone(),
        scoped_sid: token.sid.clone(),
        scoped_sub: token.sub.clone(),
        family: claims
            .and_then(|c| c.sid.as_deref())
            .and_then(FamilyId::parse),
        sub: claims
            .and_then(|c| c.sub.as_deref())
            .and_then(|s| StoreId::new(s.to_owned()).ok()),
        exp: Some(token.exp),
    }
}

/// Whole seconds of `d`, at least one.
fn ttl_ticks(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// The worker: each observation in a task of its own, at most `concurrency` at once.
async fn run(
    mut rx: mpsc::Receiver<Observation>,
    worker: Arc<Worker>,
    permits: Arc<Semaphore>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(observation) = rx.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let worker = Arc::clone(&worker);
        let pending = Arc::clone(&pending);
        tokio::spawn(async move {
            worker.process(observation).await;
            pending.fetch_sub(1, Ordering::AcqRel);
            drop(permit);
        });
    }
}

/// The seen-cache's clock: one tick per second while the detector lives.
async fn tick(seen: std::sync::Weak<Seen>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        match seen.upgrade() {
            Some(seen) => seen.advance(),
            None => return,
        }
    }
}

/// Logs a state error at most every 10 s (an outage would otherwise log per request).
pub(crate) fn state_error(last: &AtomicU64, error: &StoreError) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let before = last.load(Ordering::Relaxed);
    if now >= before.saturating_add(10)
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            target: TARGET,
            error = %error,
            "anomaly state unavailable; detection paused until it answers (requests are not affected)"
        );
    }
    metrics::counter!(names::ANOMALY_STATE_ERRORS_TOTAL).increment(1);
}
