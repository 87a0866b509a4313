//! [`RemoteKeySet`]: the cached snapshot, single-flight fetches, the unknown-`kid` cooldown and
//! the background refresher.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use reqwest::Url;
use tokenward_claims::{Algorithm, Key, KeyResolver, KeySet, MAX_KID_LEN};
use tokenward_core::UnixTime;
use tokio::sync::watch;

use crate::config::{RemoteKeySetBuilder, SourceKind};
use crate::error::{JwksError, redact};
use crate::fetch::{self, Freshness};
use crate::refresher::Refresher;

/// A key set fetched from an issuer's JWKS endpoint, cached, and refreshed in the background.
///
/// Verification ([`KeyResolver::resolve`]) reads an `Arc<KeySet>` snapshot: no I/O, no
/// waiting, never blocked by a fetch. Clones are cheap and share everything; the background
/// refresher stops when the last clone is dropped.
///
/// The rules (see the crate docs and `docs/security.md`):
/// - a successful fetch is cached for its `Cache-Control: max-age`, bounded by the TTL
///   bounds (default TTL without one); the background refresher fetches again before that
///   runs out;
/// - a failed refresh keeps the last good key set (warning, and an audit event
///   `jwks_serving_stale` once its TTL ran out), for at most the maximum staleness past its
///   TTL; after that no key resolves and [`snapshot`](Self::snapshot) returns
///   [`JwksError::Stale`];
/// - at most one fetch runs at a time (single-flight): everybody who needs one while it runs
///   waits for that one; no lock is held across I/O;
/// - an unknown `kid` starts a fetch at most once per cooldown
///   ([`refetch_for_kid`](Self::refetch_for_kid)).
///
/// One `RemoteKeySet` per issuer: route them with [`tokenward_claims::IssuerRouter`] so the
/// keys of two issuers never mix.
#[derive(Clone)]
pub struct RemoteKeySet {
    pub(crate) inner: Arc<Inner>,
    pub(crate) refresher: Arc<Refresher>,
}

pub(crate) struct Inner {
    pub(crate) cfg: RemoteKeySetBuilder,
    pub(crate) client: reqwest::Client,
    /// The configured URL or issuer, redacted, for messages and events.
    pub(crate) target: String,
    /// The last good key set, swapped whole.
    pub(crate) cached: RwLock<Option<Arc<Cached>>>,
    pub(crate) state: Mutex<State>,
}

#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) keys: Arc<KeySet>,
    pub(crate) fetched_at: UnixTime,
    pub(crate) expires_at: UnixTime,
    pub(crate) refresh_at: UnixTime,
    pub(crate) usable_until: UnixTime,
}

type Outcome = Option<Result<(), JwksError>>;

#[derive(Debug, Default)]
pub(crate) struct State {
    /// The JWKS URL: configured, or discovered (cleared after a failure, to rediscover).
    pub(crate) jwks_url: Option<Url>,
    pub(crate) inflight: Option<watch::Receiver<Outcome>>,
    pub(crate) last_unknown_kid_fetch: Option<UnixTime>,
    pub(crate) fetches: u64,
    pub(crate) discoveries: u64,
    pub(crate) failures: u64,
    pub(crate) consecutive_failures: u32,
    pub(crate) refused_refetches: u64,
    pub(crate) last_success: Option<UnixTime>,
    pub(crate) last_failure: Option<UnixTime>,
    pub(crate) last_error: Option<JwksError>,
}

/// Counters and state of a [`RemoteKeySet`], for tests, metrics and health checks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksStats {
    /// JWKS fetches started (successful or not; discovery requests not included).
    pub fetches: u64,
    /// OpenID Connect discovery requests started.
    pub discoveries: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Unknown-`kid` refetches refused by the cooldown.
    pub refused_refetches: u64,
    /// When the last fetch succeeded.
    pub last_success: Option<UnixTime>,
    /// When the last fetch failed.
    pub last_failure: Option<UnixTime>,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<JwksError>,
    /// When the cached key set's TTL runs out.
    pub expires_at: Option<UnixTime>,
    /// Keys in the cached set.
    pub keys: usize,
    /// Whether the cached set is past its TTL (served because refreshes fail).
    pub stale: bool,
    /// Whether the cached set is past its maximum staleness (no longer used).
    pub unusable: bool,
}

/// Why a fetch is started: only unknown-`kid` fetches are subject to the cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    Scheduled,
    UnknownKid,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RemoteKeySet {
    /// The key set of checked settings: URLs checked, HTTP client built, nothing fetched.
    pub(crate) fn new(cfg: RemoteKeySetBuilder) -> Result<RemoteKeySet, JwksError> {
        let (target, jwks_url) = match &cfg.source.kind {
            SourceKind::Url(url) => {
                let url = fetch::check_url(url, cfg.allow_http)?;
                (redact(&url), Some(url))
            }
            SourceKind::OidcIssuer(issuer) => {
                let url = fetch::check_url(issuer, cfg.allow_http)?;
                (redact(&url), None)
            }
        };
        let client = fetch::client(cfg.request_timeout, cfg.allow_http, &cfg.extra_roots)?;
        let inner = Arc::new(Inner {
            client,
            target,
            cached: RwLock::new(None),
            state: Mutex::new(State {
                jwks_url,
                ..State::default()
            }),
            cfg,
        });
        Ok(RemoteKeySet {
            inner,
            refresher: Arc::new(Refresher::default()),
        })
    }

    /// Same as [`builder.start()`](RemoteKeySetBuilder::start): build, fetch once, start the
    /// background refresher.
    pub async fn fetch(builder: RemoteKeySetBuilder) -> Result<RemoteKeySet, JwksError> {
        builder.start().await
    }

    /// The current key set, or why there is none usable ([`JwksError::NotFetched`],
    /// [`JwksError::Stale`]). Never does I/O.
    pub fn snapshot(&self) -> Result<Arc<KeySet>, JwksError> {
        let cached = self.inner.cached().ok_or(JwksError::NotFetched)?;
        let now = self.inner.cfg.clock.now();
        if now >= cached.usable_until {
            return Err(JwksError::Stale {
                age: now.saturating_duration_since(cached.fetched_at),
            });
        }
        Ok(Arc::clone(&cached.keys))
    }

    /// Fetches now (or joins the fetch already running), ignoring TTL and cooldown; the
    /// result of that fetch. The cached set is kept when it fails.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        match self.inner.join_or_start(Trigger::Scheduled, None) {
            Flight::Wait(rx) => wait(rx).await,
            Flight::Failed(error) => Err(error),
            // Not returned for scheduled fetches.
            Flight::Known | Flight::Refused => Ok(()),
        }
    }

    /// For a token whose verification failed with `RejectionClass::Key`: reads the `kid` from
    /// its header (no crypto; tokens over 16 KiB, headers over 4 KiB and anything that does
    /// not parse are ignored) and calls [`refetch_for_kid`](Self::refetch_for_kid).
    ///
    /// Returns `true` when the `kid` is known afterwards: verify the token once more.
    pub async fn refetch_for_token(&self, token: &str) -> bool {
        match fetch::peek_token_kid(token) {
            Some(kid) => self.refetch_for_kid(&kid).await,
            None => false,
        }
    }

    /// Makes sure `kid` is known if the issuer publishes it: when the cached set lacks it,
    /// starts a fetch — or joins the one running — unless an unknown-`kid` fetch started
    /// less than the cooldown ago. Returns whether `kid` is known afterwards.
    ///
    /// However many callers ask, and with whatever `kid`s, unknown `kid`s cause at most one
    /// outbound fetch per cooldown.
    pub async fn refetch_for_kid(&self, kid: &str) -> bool {
        if kid.is_empty() || kid.len() > MAX_KID_LEN {
            return false;
        }
        if self.knows(kid) {
            return true;
        }
        match self.inner.join_or_start(Trigger::UnknownKid, Some(kid)) {
            Flight::Known => true,
            Flight::Refused | Flight::Failed(_) => self.knows(kid),
            Flight::Wait(rx) => {
                // The outcome is in the stats and events; the answer is whether we know it.
                let _ = wait(rx).await;
                self.knows(kid)
            }
        }
    }

    /// Counters and state, for tests, metrics and health checks.
    pub fn stats(&self) -> JwksStats {
        let now = self.inner.cfg.clock.now();
        let cached = self.inner.cached();
        let state = lock(&self.inner.state);
        JwksStats {
            fetches: state.fetches,
            discoveries: state.discoveries,
            failures: state.failures,
            consecutive_failures: state.consecutive_failures,
            refused_refetches: state.refused_refetches,
            last_success: state.last_success,
            last_failure: state.last_failure,
            last_error: state.last_error.clone(),
            expires_at: cached.as_ref().map(|c| c.expires_at),
            keys: cached.as_ref().map_or(0, |c| c.keys.len()),
            stale: cached.as_ref().is_some_and(|c| now >= c.expires_at),
            unusable: cached.as_ref().is_some_and(|c| now >= c.usable_until),
        }
    }

    fn knows(&self, kid: &str) -> bool {
        self.inner.knows(kid)
    }
}

impl fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("source", &self.inner.target)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl KeyResolver for RemoteKeySet {
    /// The key for `kid` from the cached snapshot; `None` when unknown, when nothing was
    /// fetched yet, or past the maximum staleness. Never does I/O and never waits for a fetch.
    fn resolve(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        self.snapshot().ok()?.resolve(kid)
    }

    /// As [`resolve`](Self::resolve); a token without `kid` gets the one key bound to its
    /// `alg`, if exactly one is.
    fn resolve_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        self.snapshot().ok()?.resolve_for(kid, alg)
    }
}

pub(crate) enum Flight {
    /// The `kid` turned out to be known (a fetch finished meanwhile).
    Known,
    /// The cooldown refused a new fetch.
    Refused,
    /// Wait for this fetch's outcome.
    Wait(watch::Receiver<Outcome>),
    /// No fetch could be started (no tokio runtime).
    Failed(JwksError),
}

pub(crate) async fn wait(mut rx: watch::Receiver<Outcome>) -> Result<(), JwksError> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(Err(JwksError::Interrupted)),
        Err(_) => Err(JwksError::Interrupted),
    }
}

impl Inner {
    pub(crate) fn cached(&self) -> Option<Arc<Cached>> {
        self.cached
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn knows(&self, kid: &str) -> bool {
        let Some(cached) = self.cached() else {
            return false;
        };
        self.cfg.clock.now() < cached.usable_until && cached.keys.get(kid).is_some()
    }

    /// Joins the running fetch, or starts one (subject to the cooldown for unknown `kid`s).
    /// The state lock is held only for these decisions, never across I/O.
    pub(crate) fn join_or_start(self: &Arc<Self>, trigger: Trigger, kid: Option<&str>) -> Flight {
        // Polled outside a tokio runtime, `tokio::spawn` would panic.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Flight::Failed(JwksError::NoRuntime);
        };
        let mut state = lock(&self.state);
        if let Some(rx) = &state.inflight {
            return Flight::Wait(rx.clone());
        }
        if trigger == Trigger::UnknownKid {
            // A fetch that finished between the caller's check and this lock has already
            // swapped its keys in (before clearing `inflight`): look again.
            if kid.is_some_and(|kid| self.knows(kid)) {
                return Flight::Known;
            }
            let now = self.cfg.clock.now();
            if let Some(last) = state.last_unknown_kid_fetch
                && now < last.saturating_add(self.cfg.unknown_kid_cooldown)
            {
                state.refused_refetches = state.refused_refetches.saturating_add(1);
                return Flight::Refused;
            }
            state.last_unknown_kid_fetch = Some(now);
        }
        let (tx, rx) = watch::channel(None);
        state.inflight = Some(rx.clone());
        drop(state);
        let inner = Arc::clone(self);
        // A task of its own, so a caller that gives up (its request was cancelled) does not
        // cancel the fetch the others wait for.
        runtime.spawn(async move {
            let outcome = inner.fetch_and_apply(trigger).await;
            lock(&inner.state).inflight = None;
            tx.send_replace(Some(outcome));
        });
        Flight::Wait(rx)
    }

    async fn fetch_and_apply(&self, trigger: Trigger) -> Result<(), JwksError> {
        let result = self.fetch().await;
        let now = self.cfg.clock.now();
        let fetches = if result.is_ok() {
            metrics::counter!(tokenward_core::metrics::JWKS_FETCHES_TOTAL, "result" => "ok")
        } else {
            metrics::counter!(tokenward_core::metrics::JWKS_FETCHES_TOTAL, "result" => "error")
        };
        fetches.increment(1);
        match result {
            Ok((parsed, freshness)) => {
                let ttl = match freshness {
                    Freshness::Unspecified => self.cfg.default_ttl,
                    Freshness::NoCache => self.cfg.min_ttl,
                    Freshness::MaxAge(secs) => {
                        Duration::from_secs(secs).clamp(self.cfg.min_ttl, self.cfg.max_ttl)
                    }
                };
                let expires_at = now.saturating_add(ttl);
                let refresh_after = ttl.saturating_sub(self.cfg.refresh_ahead).max(ttl / 2);
                let keys = parsed.keys.len();
                let cached = Cached {
                    keys: Arc::new(parsed.keys),
                    fetched_at: now,
                    expires_at,
                    refresh_at: now.saturating_add(refresh_after),
                    usable_until: expires_at.saturating_add(self.cfg.max_staleness),
                };
                *self.cached.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::new(cached));
                let recovered = {
                    let mut state = lock(&self.state);
                    let recovered = state.consecutive_failures;
                    state.consecutive_failures = 0;
                    state.last_success = Some(now);
                    state.last_error = None;
                    recovered
                };
                tracing::debug!(
                    target: "tokenward::jwks",
                    source = self.target.as_str(),
                    keys,
                    skipped = parsed.skipped,
                    ttl_secs = ttl.as_secs(),
                    unknown_kid = trigger == Trigger::UnknownKid,
                    "fetched remote key set"
                );
                if recovered > 0 {
                    tracing::info!(
                        target: "tokenward::audit",
                        decision = "jwks_recovered",
                        source = self.target.as_str(),
                        failed_fetches = recovered,
                        "remote key set fetched again after failures"
                    );
                }
                Ok(())
            }
            Err(error) => {
                let failures = {
                    let mut state = lock(&self.state);
                    state.failures = state.failures.saturating_add(1);
                    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                    state.last_failure = Some(now);
                    state.last_error = Some(error.clone());
                    state.consecutive_failures
                };
                tracing::warn!(
                    target: "tokenward::jwks",
                    source = self.target.as_str(),
                    error = %error,
                    consecutive_failures = failures,
                    "fetching the remote key set failed"
                );
                if let Some(cached) = self.cached() {
                    let age = now.saturating_duration_since(cached.fetched_at);
                    if now >= cached.usable_until {
                        stale_metric("unusable");
                        tracing::error!(
                            target: "tokenward::audit",
                            decision = "jwks_stale_unusable",
                            source = self.target.as_str(),
                            age_secs = age.as_secs(),
                            consecutive_failures = failures,
                            "remote key set is past its maximum staleness: tokens of this issuer are rejected"
                        );
                    } else if now >= cached.expires_at {
                        stale_metric("serving");
                        tracing::warn!(
                            target: "tokenward::audit",
                            decision = "jwks_serving_stale",
                            source = self.target.as_str(),
                            age_secs = age.as_secs(),
                            usable_for_secs =
                                cached.usable_until.saturating_duration_since(now).as_secs(),
                            consecutive_failures = failures,
                            "serving the last good remote key set past its TTL: refresh failed"
                        );
                    }
                }
                Err(error)
            }
        }
    }

    /// Discovery (when needed) and one JWKS fetch.
    async fn fetch(&self) -> Result<(fetch::Parsed, Freshness), JwksError> {
        let known = lock(&self.state).jwks_url.clone();
        let url = match known {
            Some(url) => url,
            None => {
                let SourceKind::OidcIssuer(issuer) = &self.cfg.source.kind else {
                    return Err(JwksError::InvalidConfig {
                        field: "source",
                        reason: "no JWKS URL".into(),
                    });
                };
                {
                    let mut state = lock(&self.state);
                    state.discoveries = state.discoveries.saturating_add(1);
                }
                let url = fetch::discover(
                    &self.client,
                    issuer,
                    self.cfg.request_timeout,
                    self.cfg.max_response_size,
                    self.cfg.allow_http,
                )
                .await?;
                lock(&self.state).jwks_url = Some(url.clone());
                url
            }
        };
        {
            let mut state = lock(&self.state);
            state.fetches = state.fetches.saturating_add(1);
        }
        let result = async {
            let (body, freshness) = fetch::get(
                &self.client,
                &url,
                self.cfg.request_timeout,
                self.cfg.max_response_size,
            )
            .await?;
            Ok((
                fetch::parse_jwks(&body, &url, &self.cfg.jwks_options)?,
                freshness,
            ))
        }
        .await;
        if result.is_err() && matches!(self.cfg.source.kind, SourceKind::OidcIssuer(_)) {
            // The issuer may have moved its keys: discover again next time.
            lock(&self.state).jwks_url = None;
        }
        result
    }
}

/// `tokenward_jwks_stale_total{state}`: a failed refresh left the cached key set `serving`
/// (past its TTL, still used) or `unusable` (past its maximum staleness).
fn stale_metric(state: &'static str) {
    use tokenward_core::metrics as names;
    metrics::counter!(names::JWKS_STALE_TOTAL, names::STATE => state).increment(1);
}
