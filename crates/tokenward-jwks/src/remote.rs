//! [`RemoteKeySet`]: the cached snapshot, single-flight fetches, the unknown-`kid` cooldown and
//! the background refresher.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use reqwest::Url;
use tokenward_claims::{Key, KeyResolver, KeySet, MAX_KID_LEN};
use tokenward_core::{SharedClock, SystemClock, UnixTime};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::error::{JwksError, redact};
use crate::fetch::{self, Freshness};

/// Default lower bound for a `Cache-Control: max-age` (and the TTL used for `no-cache`).
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(60);
/// Default upper bound for a `Cache-Control: max-age`.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default TTL when the response has no `max-age`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// Default refresh-ahead: the background refresh starts this long before the TTL runs out
/// (but never before half the TTL has passed).
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(30);
/// Default minimum time between two refetches triggered by unknown `kid`s.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// Default maximum staleness: how long after its TTL ran out a key set is still used while
/// refreshes fail.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(24 * 60 * 60);
/// Default timeout of one HTTP exchange (connect, headers and the whole body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on a response body.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 256 * 1024;

/// First retry delay of the background refresher after a failed fetch (doubling per failure).
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay after failed fetches.
const RETRY_MAX: Duration = Duration::from_secs(5 * 60);
/// The background refresher re-reads the clock at least this often (so a clock that jumps,
/// or a test's manual clock, is noticed).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Where a remote key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceKind {
    Url(String),
    OidcIssuer(String),
}

impl JwksSource {
    /// A JWKS document at `url` (`https://`; see
    /// [`dangerous_allow_http`](RemoteKeySetBuilder::dangerous_allow_http)).
    pub fn url(url: impl Into<String>) -> Self {
        JwksSource {
            kind: SourceKind::Url(url.into()),
        }
    }

    /// The JWKS of an OpenID Connect issuer, found through
    /// `{issuer}/.well-known/openid-configuration` → `jwks_uri`. The document's `issuer` must
    /// equal `issuer` exactly. Discovery is repeated after a failed JWKS fetch.
    pub fn oidc_issuer(issuer: impl Into<String>) -> Self {
        JwksSource {
            kind: SourceKind::OidcIssuer(issuer.into()),
        }
    }
}

/// Settings of a [`RemoteKeySet`]; start with [`RemoteKeySet::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteKeySetBuilder {
    source: JwksSource,
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    refresh_ahead: Duration,
    unknown_kid_cooldown: Duration,
    max_staleness: Duration,
    request_timeout: Duration,
    max_response_size: usize,
    allow_http: bool,
    extra_roots: Vec<Vec<u8>>,
    clock: SharedClock,
}

impl RemoteKeySetBuilder {
    /// Bounds for the TTL a response's `Cache-Control: max-age` asks for (defaults 60 s and
    /// 24 h): a response's `max-age` outside them is brought within them, `no-cache`/`no-store`
    /// get the minimum. The minimum must be at least 1 s and not above the maximum
    /// ([`build`](Self::build) fails otherwise).
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// The TTL when a response has no `max-age` (default 5 minutes); must lie within the
    /// bounds ([`build`](Self::build) fails otherwise).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// How long before the TTL runs out the background refresh starts (default 30 s; never
    /// before half the TTL has passed).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.refresh_ahead = ahead;
        self
    }

    /// Minimum time between two refetches triggered by unknown `kid`s (default 30 s; at
    /// least 1 s, [`build`](Self::build) fails otherwise). Random `kid`s cost at most one
    /// outbound request per cooldown.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.unknown_kid_cooldown = cooldown;
        self
    }

    /// How long after its TTL ran out the last good key set is still used while refreshes fail
    /// (default 24 h). After that every key lookup fails (the validator rejects with class
    /// `key`) and [`RemoteKeySet::snapshot`] returns [`JwksError::Stale`].
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = max;
        self
    }

    /// Timeout of one HTTP exchange: connect, headers and the whole body (default 5 s; not
    /// zero, [`build`](Self::build) fails otherwise).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Cap on a response body in bytes (default 256 KiB; at least 1 KiB,
    /// [`build`](Self::build) fails otherwise), enforced while streaming.
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }

    /// Allows plain `http://` URLs (configured, discovered and redirected to). **Only for tests
    /// and local development**: over plain HTTP anyone on the path can substitute their own
    /// keys and forge tokens.
    pub fn dangerous_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Trusts this root certificate (DER) in addition to the operating system's — for an
    /// issuer behind a private certificate authority. May be called several times.
    pub fn add_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(der.into());
        self
    }

    /// Where "now" comes from for TTLs, staleness and the cooldown (default [`SystemClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings and builds the key set, **without** fetching anything and without a
    /// background refresher. A setting out of range is [`JwksError::InvalidConfig`] naming it
    /// (never clamped). The key set holds no keys until [`RemoteKeySet::refresh`] or an
    /// unknown-`kid` refetch succeeds. Most services want [`start`](Self::start).
    pub fn build(self) -> Result<RemoteKeySet, JwksError> {
        let invalid = |field: &'static str, reason: &str| {
            Err(JwksError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.min_ttl < Duration::from_secs(1) {
            return invalid("ttl_bounds", "the minimum TTL must be at least 1 s");
        }
        if self.min_ttl > self.max_ttl {
            return invalid("ttl_bounds", "the minimum TTL exceeds the maximum TTL");
        }
        if self.default_ttl < self.min_ttl || self.default_ttl > self.max_ttl {
            return invalid("default_ttl", "must lie within the TTL bounds");
        }
        if self.unknown_kid_cooldown < Duration::from_secs(1) {
            return invalid("unknown_kid_cooldown", "must be at least 1 s");
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must not be zero");
        }
        if self.max_response_size < 1024 {
            return invalid("max_response_size", "must be at least 1 KiB");
        }
        let (target, jwks_url) = match &self.source.kind {
            SourceKind::Url(url) => {
                let url = fetch::check_url(url, self.allow_http)?;
                (redact(&url), Some(url))
            }
            SourceKind::OidcIssuer(issuer) => {
                let url = fetch::check_url(issuer, self.allow_http)?;
                (redact(&url), None)
            }
        };
        let client = fetch::client(self.request_timeout, self.allow_http, &self.extra_roots)?;
        let inner = Arc::new(Inner {
            client,
            target,
            cached: RwLock::new(None),
            state: Mutex::new(State {
                jwks_url,
                ..State::default()
            }),
            cfg: self,
        });
        Ok(RemoteKeySet {
            inner,
            refresher: Arc::new(Refresher::default()),
        })
    }

    /// Builds the key set, fetches it once (an error if that fails: a service should not
    /// start without its issuer's keys) and starts the background refresher, which runs until
    /// the last clone of the returned [`RemoteKeySet`] is dropped. Needs a tokio runtime.
    pub async fn start(self) -> Result<RemoteKeySet, JwksError> {
        let remote = self.build()?;
        remote.refresh().await?;
        remote.spawn_refresher()?;
        Ok(remote)
    }
}

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
    inner: Arc<Inner>,
    refresher: Arc<Refresher>,
}

/// Aborts the background refresher when the last [`RemoteKeySet`] clone goes away.
#[derive(Debug, Default)]
struct Refresher {
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

struct Inner {
    cfg: RemoteKeySetBuilder,
    client: reqwest::Client,
    /// The configured URL or issuer, redacted, for messages and events.
    target: String,
    /// The last good key set, swapped whole.
    cached: RwLock<Option<Arc<Cached>>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct Cached {
    keys: Arc<KeySet>,
    fetched_at: UnixTime,
    expires_at: UnixTime,
    refresh_at: UnixTime,
    usable_until: UnixTime,
}

type Outcome = Option<Result<(), JwksError>>;

#[derive(Debug, Default)]
struct State {
    /// The JWKS URL: configured, or discovered (cleared after a failure, to rediscover).
    jwks_url: Option<Url>,
    inflight: Option<watch::Receiver<Outcome>>,
    last_unknown_kid_fetch: Option<UnixTime>,
    fetches: u64,
    discoveries: u64,
    failures: u64,
    consecutive_failures: u32,
    refused_refetches: u64,
    last_success: Option<UnixTime>,
    last_failure: Option<UnixTime>,
    last_error: Option<JwksError>,
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
enum Trigger {
    Scheduled,
    UnknownKid,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RemoteKeySet {
    /// Settings for a remote key set from `source`.
    pub fn builder(source: JwksSource) -> RemoteKeySetBuilder {
        RemoteKeySetBuilder {
            source,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            default_ttl: DEFAULT_TTL,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
            max_staleness: DEFAULT_MAX_STALENESS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
            allow_http: false,
            extra_roots: Vec::new(),
            clock: Arc::new(SystemClock),
        }
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

    /// Starts the background refresher if it is not running (idempotent;
    /// [`start`](RemoteKeySetBuilder::start) does this). It fetches when the key set is due (never
    /// fetched, refresh-ahead point reached, or after failures with backoff from 1 s doubling
    /// to 5 min) and stops when the last clone of this key set is dropped.
    pub fn spawn_refresher(&self) -> Result<(), JwksError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JwksError::NoRuntime)?;
        let mut task = lock(&self.refresher.task);
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let weak = Arc::downgrade(&self.inner);
        *task = Some(runtime.spawn(refresh_loop(weak)).abort_handle());
        Ok(())
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
}

enum Flight {
    /// The `kid` turned out to be known (a fetch finished meanwhile).
    Known,
    /// The cooldown refused a new fetch.
    Refused,
    /// Wait for this fetch's outcome.
    Wait(watch::Receiver<Outcome>),
    /// No fetch could be started (no tokio runtime).
    Failed(JwksError),
}

async fn wait(mut rx: watch::Receiver<Outcome>) -> Result<(), JwksError> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(Err(JwksError::Interrupted)),
        Err(_) => Err(JwksError::Interrupted),
    }
}

impl Inner {
    fn cached(&self) -> Option<Arc<Cached>> {
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
    fn join_or_start(self: &Arc<Self>, trigger: Trigger, kid: Option<&str>) -> Flight {
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
                        tracing::error!(
                            target: "tokenward::audit",
                            decision = "jwks_stale_unusable",
                            source = self.target.as_str(),
                            age_secs = age.as_secs(),
                            consecutive_failures = failures,
                            "remote key set is past its maximum staleness: tokens of this issuer are rejected"
                        );
                    } else if now >= cached.expires_at {
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
            Ok((fetch::parse_jwks(&body, &url)?, freshness))
        }
        .await;
        if result.is_err() && matches!(self.cfg.source.kind, SourceKind::OidcIssuer(_)) {
            // The issuer may have moved its keys: discover again next time.
            lock(&self.state).jwks_url = None;
        }
        result
    }

    /// How long until the background refresher should fetch (zero: now). After failures:
    /// a backoff from the last failure, 1 s doubling per consecutive failure up to 5 min.
    fn due_in(&self) -> Duration {
        let now = self.cfg.clock.now();
        let cached = self.cached();
        let state = lock(&self.state);
        if state.consecutive_failures > 0 {
            let doublings = state.consecutive_failures.saturating_sub(1).min(16);
            let backoff = RETRY_MIN.saturating_mul(1 << doublings).min(RETRY_MAX);
            let last = state.last_failure.unwrap_or(now);
            return last.saturating_add(backoff).saturating_duration_since(now);
        }
        cached.map_or(Duration::ZERO, |c| {
            c.refresh_at.saturating_duration_since(now)
        })
    }
}

/// The background refresher: holds only a weak reference, so it never keeps a dropped key set
/// alive (and it is aborted when the last handle goes). It reads the injected clock at least
/// every minute, so a clock that jumps is noticed.
async fn refresh_loop(inner: Weak<Inner>) {
    loop {
        let due_in = match inner.upgrade() {
            Some(inner) => inner.due_in(),
            None => return,
        };
        if !due_in.is_zero() {
            tokio::time::sleep(due_in.min(MAX_SLEEP)).await;
            continue;
        }
        let flight = match inner.upgrade() {
            Some(inner) => inner.join_or_start(Trigger::Scheduled, None),
            None => return,
        };
        match flight {
            // Success and failure are recorded in the state (and `due_in` reads them).
            Flight::Wait(rx) => {
                let _ = wait(rx).await;
            }
            // Not expected inside a runtime; never spin.
            Flight::Known | Flight::Refused | Flight::Failed(_) => {
                tokio::time::sleep(RETRY_MIN).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn dropping_the_last_handle_ends_the_refresher() {
        // Nothing listens on port 9 here: every fetch fails fast, and the refresher retries
        // with backoff for ever, unless it is stopped.
        let remote = RemoteKeySet::builder(JwksSource::url("http://127.0.0.1:9/jwks"))
            .dangerous_allow_http(true)
            .build()
            .unwrap();
        remote.spawn_refresher().unwrap();
        remote.spawn_refresher().unwrap(); // idempotent
        let task = lock(&remote.refresher.task).clone().unwrap();
        let inner = Arc::downgrade(&remote.inner);
        let clone = remote.clone();
        drop(remote);
        tokio::task::yield_now().await;
        assert!(!task.is_finished(), "a clone is alive");
        drop(clone);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !task.is_finished() || inner.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "refresher still running"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn spawn_refresher_needs_a_runtime() {
        let remote = RemoteKeySet::builder(JwksSource::url("https://idp.example/jwks"))
            .build()
            .unwrap();
        assert!(matches!(
            remote.spawn_refresher(),
            Err(JwksError::NoRuntime)
        ));
    }
}
