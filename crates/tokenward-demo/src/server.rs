//! The demo API: configuration, routes and handlers, and serving with graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use tokenward_anomaly::AnomalyDetector;
use tokenward_axum::{Auth, GuardLayer, denial_response, jwks_router, request_client_ip};
use tokenward_claims::{
    AccessToken, DEFAULT_LEEWAY, KeySet, MAX_LEEWAY, SharedKeySet, TokenIssuer,
};
use tokenward_core::{IssuerScope, StoreId, TokenRef, UnixTime};
use tokenward_guard::{
    AuthRequest, Check, Credentials, DEFAULT_OUTAGE_RETRY_AFTER, Denial, Guard, GuardConfig,
    GuardStores, Requirements, fingerprint,
};
use tokenward_ratelimit::ForwardedHeader;
use tokenward_refresh::{
    FamilyId, MintRequest, MintedToken, RefreshConfig, RefreshEngine, RefreshError, RotationKind,
};
use tokenward_revocation::{RevocationStore as _, subject_cutoff};

use crate::users::Users;

mod anomaly;
mod listen;
mod login;
mod stores;

use anomaly::anomaly_detector;
use listen::ServerLimits;
pub use listen::{Running, serve, spawn};
use login::{PasswordGate, login};
use stores::Stores;

/// The `iss` of the demo's access tokens.
pub const ISSUER: &str = "http://tokenward-demo";
/// The `aud` of the demo's access tokens.
pub const AUDIENCE: &str = "demo-api";
/// The scope `GET /admin/stats` requires.
pub const ADMIN_SCOPE: &str = "admin";
/// The largest request body the JSON endpoints read.
const MAX_BODY: usize = 16 * 1024;
/// How long past `exp` a revocation entry is kept: the verifier accepts a token up to its
/// clock leeway after `exp`, at most this long.
const REVOCATION_MARGIN: Duration = MAX_LEEWAY;

/// Everything the demo can be configured with; [`Default`] gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoConfig {
    /// `--bind`: where to listen (port 0 picks a free port). Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `--keys`: a directory written by `tokenward keygen`; `None` = an ephemeral key.
    pub keys: Option<PathBuf>,
    /// `--redis`: the Redis URL; `None` = in-memory stores.
    pub redis: Option<String>,
    /// `--postgres`: the PostgreSQL URL for refresh families and revocations (durable);
    /// with `redis` too, the hybrid deployment (`tokenward_guard::hybrid`).
    pub postgres: Option<String>,
    /// `--pg-schema`: the schema of tokenward's tables (`tokenward`).
    pub pg_schema: String,
    /// `--redis-prefix`: the key prefix on Redis (instances sharing it are one service).
    pub redis_prefix: String,
    /// `--redis-timeout-ms`: the most any Redis call may take.
    pub redis_timeout: Duration,
    /// `--redis-ca`: with a `rediss://` URL, trust exactly the CAs in this PEM file (a
    /// private CA) instead of the platform's trust store.
    pub redis_ca: Option<PathBuf>,
    /// `--redis-client-cert`: with `rediss://`, a client certificate chain (PEM) for mutual
    /// TLS; needs `redis_client_key`.
    pub redis_client_cert: Option<PathBuf>,
    /// `--redis-client-key`: the private key (PEM) of `redis_client_cert`.
    pub redis_client_key: Option<PathBuf>,
    /// `--dangerous-allow-eviction`: start on a Redis whose `maxmemory-policy` may evict
    /// keys (refused otherwise: it silently forgets revocations and bans when full).
    pub redis_dangerous_allow_eviction: bool,
    /// `--redis-cluster`: `redis` names seed nodes of a Redis Cluster (one URL or a
    /// comma-separated list, all `redis://` or all `rediss://`).
    pub redis_cluster: bool,
    /// `--access-ttl`: access-token lifetime (900 s, at most 86 400 s).
    pub access_ttl: Duration,
    /// `--refresh-grace`: the refresh grace window (30 s, at most 120 s: more is a
    /// [`StartError::Refresh`]).
    pub refresh_grace: Duration,
    /// `--max-sessions-per-user`: live refresh families (devices) per user; a login beyond
    /// it signs out the user's oldest session (50, 1..=10 000).
    pub max_sessions_per_user: usize,
    /// `--subject-limit`: authenticated requests per minute per subject (300).
    pub subject_limit: u32,
    /// `--ban-maxretry`: authentication failures that ban a client IP (5).
    pub ban_maxretry: u32,
    /// `--ban-findtime`: the window those failures count in (60 s).
    pub ban_findtime: Duration,
    /// `--ban-bantime`: how long a ban lasts (300 s).
    pub ban_bantime: Duration,
    /// `--trusted-proxy` (repeatable): proxies, as CIDR networks or addresses, whose
    /// `X-Forwarded-For` names the client (none: the client is the TCP peer).
    pub trusted_proxies: Vec<String>,
    /// `--header-read-timeout`: how long a client may take to send a request's line and
    /// headers, also the longest a keep-alive connection waits for its next request (10 s).
    pub header_read_timeout: Duration,
    /// `--idle-timeout`: a connection on which no byte moves either way for this long is
    /// closed (60 s).
    pub idle_timeout: Duration,
    /// `--request-timeout`: the most one request may take once its headers are in, reading
    /// its body included; then 408 (30 s).
    pub request_timeout: Duration,
    /// `--max-connections`: open connections at most; further ones wait in the listen
    /// backlog until one closes (1024).
    pub max_connections: usize,
    /// `--max-connections-per-ip`: open connections per client network (an IPv4 address,
    /// an IPv6 /64, as the failure ban counts) at most; a further one is closed at once.
    /// Trusted proxies are exempt (64).
    pub max_connections_per_ip: usize,
    /// `--anomaly-max-networks`: client networks (IPv4 /24, IPv6 /48) one token or session
    /// may be used from within `anomaly_window`; one more revokes the session (3).
    pub anomaly_max_networks: u32,
    /// `--anomaly-replay-ban`: replays of revoked tokens from one network within
    /// `anomaly_window` that ban the client (5).
    pub anomaly_replay_ban: u32,
    /// `--anomaly-forgery-ban`: forged tokens (bad signature, unknown key, refused
    /// algorithm) from one network within a minute that ban the client (20).
    pub anomaly_forgery_ban: u32,
    /// `--anomaly-window`: the window of the token-shared and replay detectors (600 s).
    pub anomaly_window: Duration,
    /// `--no-anomaly`: no anomaly detection (on by default).
    pub anomaly_off: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            keys: None,
            redis: None,
            postgres: None,
            pg_schema: tokenward_postgres::PgConfig::DEFAULT_SCHEMA.to_owned(),
            redis_prefix: tokenward_redis::RedisConfig::DEFAULT_KEY_PREFIX.to_owned(),
            redis_timeout: Duration::from_millis(250),
            redis_ca: None,
            redis_client_cert: None,
            redis_client_key: None,
            redis_dangerous_allow_eviction: false,
            redis_cluster: false,
            access_ttl: Duration::from_secs(900),
            refresh_grace: Duration::from_secs(30),
            max_sessions_per_user: RefreshConfig::DEFAULT_MAX_FAMILIES_PER_SUBJECT,
            subject_limit: 300,
            ban_maxretry: 5,
            ban_findtime: Duration::from_secs(60),
            ban_bantime: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_ip: 64,
            anomaly_max_networks: 3,
            anomaly_replay_ban: 5,
            anomaly_forgery_ban: 20,
            anomaly_window: Duration::from_secs(600),
            anomaly_off: false,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `--keys`.
    #[error("--keys: {0}")]
    Keys(#[from] crate::keys::KeysError),
    /// The ephemeral key.
    #[error("generating an ephemeral key: {0}")]
    Ephemeral(#[from] tokenward_claims::KeyError),
    /// The Guard configuration (a limit of 0, ...).
    #[error(transparent)]
    Config(#[from] tokenward_guard::ConfigError),
    /// `--redis`.
    #[error("--redis: {0}")]
    Redis(#[from] tokenward_redis::RedisConfigError),
    /// The startup check of `--redis`: unreachable, a TLS or authentication failure, or an
    /// evicting `maxmemory-policy` ([`Demo::check_redis`]).
    #[error("--redis: {}", chain(.0))]
    RedisCheck(#[from] tokenward_redis::ServerCheckError),
    /// `--postgres`: a bad URL or schema, or the startup migration failed.
    #[error("--postgres: {}", chain(.0))]
    Postgres(#[from] tokenward_postgres::PgSetupError),
    /// `--postgres` with `--redis`: a Redis the hybrid cannot watch (a cluster).
    #[error("--postgres with --redis: {0}")]
    Hybrid(#[from] tokenward_guard::hybrid::HybridError),
    /// `--postgres` with `--redis`: loading the revocations into Redis at startup failed.
    #[error("--postgres with --redis: loading revocations into Redis: {0}")]
    Reload(tokenward_core::StoreError),
    /// The token issuer.
    #[error("token issuer: {0}")]
    Issuer(#[from] tokenward_claims::IssueError),
    /// The refresh settings (`--refresh-grace`, `--access-ttl`) out of range.
    #[error("refresh settings: {0}")]
    Refresh(#[from] tokenward_core::SettingError),
    /// An anomaly-detection setting out of range (`--anomaly-max-networks 0`, ...).
    #[error("anomaly detection: {0}")]
    Anomaly(tokenward_core::SettingError),
    /// A connection limit or timeout out of range (`--max-connections 0`, ...).
    #[error("server limits: {0}")]
    Limits(tokenward_core::SettingError),
    /// Hashing the demo users' passwords.
    #[error("{0}")]
    Users(String),
    /// Binding the listener.
    #[error("--bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// An error and its sources, `: `-separated, each said once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The demo's keys, as `--keys` (or its absence) asks.
pub fn load_keys(config: &DemoConfig) -> Result<KeySet, StartError> {
    Ok(match &config.keys {
        Some(dir) => crate::keys::load_dir(dir)?,
        None => crate::keys::ephemeral()?,
    })
}

/// The demo application: build it with [`Demo::new`], serve [`Demo::router`].
#[derive(Clone, Debug)]
pub struct Demo {
    state: AppState,
    keys: SharedKeySet,
    limits: ServerLimits,
    /// The Redis connections, if `--redis`.
    redis: Option<tokenward_redis::RedisBackend>,
    /// The PostgreSQL pool, if `--postgres` (migrated by [`Demo::check_stores`]).
    postgres: Option<tokenward_postgres::PgBackend>,
    /// `--postgres` with `--redis`: loaded by [`Demo::check_stores`].
    hybrid: Option<tokenward_guard::hybrid::HybridStores>,
}

#[derive(Clone)]
struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("guard", &self.0.guard)
            .finish_non_exhaustive()
    }
}

struct Inner {
    guard: Guard,
    stores: GuardStores,
    engine: Arc<RefreshEngine>,
    /// The anomaly detectors (the Guard's decision hook), unless `--no-anomaly`.
    anomaly: Option<AnomalyDetector>,
    issuer: TokenIssuer,
    users: Users,
    access_ttl: Duration,
    stats: Stats,
    password_checks: PasswordGate,
}

/// Counters since start (this instance), for `GET /admin/stats`.
#[derive(Default)]
struct Stats {
    started: u64,
    logins: AtomicU64,
    login_failures: AtomicU64,
    refreshes: AtomicU64,
    grace_refreshes: AtomicU64,
    idempotent_replays: AtomicU64,
    refresh_rejections: AtomicU64,
    reuse_detections: AtomicU64,
    logouts: AtomicU64,
    logouts_all: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Demo {
    /// The application for `config`, signing and verifying with `keys`. Building it never
    /// connects to Redis: [`Demo::check_redis`] (which [`spawn`] and the binary run before
    /// listening) refuses a Redis that cannot be used; after startup, an outage shows as
    /// 503s. Call it within a Tokio runtime: the anomaly detector starts its worker there
    /// (a [`StartError::Anomaly`] otherwise).
    pub fn new(config: &DemoConfig, keys: KeySet) -> Result<Demo, StartError> {
        let keys = SharedKeySet::new(keys);
        let mut guard_config = GuardConfig::new(ISSUER, AUDIENCE);
        guard_config.validation.max_lifetime = Some(config.access_ttl);
        guard_config.subject_limit.requests = config.subject_limit;
        guard_config.ban.maxretry = config.ban_maxretry;
        guard_config.ban.findtime = config.ban_findtime;
        guard_config.ban.bantime = config.ban_bantime;
        if !config.trusted_proxies.is_empty() {
            guard_config.client_ip.header = Some(ForwardedHeader::XForwardedFor);
            guard_config.client_ip.trusted_proxies = config.trusted_proxies.clone();
        }
        guard_config.validate()?;
        let ipv6_prefix = guard_config.ban.ipv6_prefix;
        let limits = ServerLimits::new(config, ipv6_prefix)?;

        let Stores {
            guard: stores,
            redis,
            postgres,
            hybrid,
        } = Stores::build(config)?;
        let engine = Arc::new(RefreshEngine::with_config(
            stores.refresh.clone(),
            stores.revocation.clone(),
            IssuerScope::new(ISSUER),
            RefreshConfig::new()
                .grace_window(config.refresh_grace)
                .max_families_per_subject(config.max_sessions_per_user)
                .max_access_token_lifetime(config.access_ttl),
        )?);
        let mut guard = guard_config.guard_builder(keys.clone(), stores.clone(), None)?;
        let anomaly = if config.anomaly_off {
            None
        } else {
            let detector = anomaly_detector(
                config,
                &stores,
                guard_config.failure_ban()?,
                redis.as_ref(),
                Arc::clone(&engine),
            )?;
            guard = guard.decision_hook(Arc::new(detector.clone()));
            Some(detector)
        };
        let guard = guard.build()?;
        let issuer = TokenIssuer::builder(keys.clone(), ISSUER)
            .audience(AUDIENCE)
            .ttl(config.access_ttl)
            .build()?;
        let stats = Stats {
            started: UnixTime::from(SystemTime::now()).as_secs(),
            ..Stats::default()
        };
        let inner = Inner {
            guard,
            stores,
            engine,
            anomaly,
            issuer,
            users: Users::new().map_err(|e| StartError::Users(e.to_string()))?,
            password_checks: PasswordGate::new(ipv6_prefix),
            access_ttl: config.access_ttl,
            stats,
        };
        Ok(Demo {
            state: AppState(Arc::new(inner)),
            keys,
            limits,
            redis,
            postgres,
            hybrid,
        })
    }

    /// The startup check of the stores, before serving: [`Demo::check_redis`]; with
    /// `--postgres`, the schema migrated (which proves PostgreSQL answers); with both, Redis
    /// reloaded from PostgreSQL if it lost its revocations (first start, or a restart
    /// without persistence).
    pub async fn check_stores(&self) -> Result<(), StartError> {
        self.check_redis().await?;
        if let Some(pg) = &self.postgres {
            pg.migrate().await?;
        }
        if let Some(hybrid) = &self.hybrid {
            let report = hybrid.load().await.map_err(StartError::Reload)?;
            if report.reloaded {
                tracing::info!(
                    target: "tokenward_demo",
                    revocations = report.revocations,
                    "Redis lacked the revocations: reloaded them from PostgreSQL"
                );
            }
        }
        Ok(())
    }

    /// The startup check of `--redis` (nothing without it): Redis answers within the
    /// operation timeout (over TLS and with the password, if configured) and its
    /// `maxmemory-policy` does not evict, unless `--dangerous-allow-eviction` (see
    /// `RedisBackend::check_server`).
    pub async fn check_redis(&self) -> Result<(), StartError> {
        if let Some(backend) = &self.redis {
            backend.check_server().await?;
        }
        Ok(())
    }

    /// The Guard every protected route runs.
    pub fn guard(&self) -> &Guard {
        &self.state.0.guard
    }

    /// The routes. Serve them with `into_make_service_with_connect_info::<SocketAddr>()`
    /// (the failure ban is keyed by the client address).
    pub fn router(&self) -> Router {
        let guard = self.state.0.guard.clone();
        let admin = Router::new().route("/admin/stats", get(stats)).route_layer(
            GuardLayer::new(guard.clone()).require(Requirements::new().scope(ADMIN_SCOPE)),
        );
        let protected = Router::new()
            .route("/me", get(me))
            .route("/logout", post(logout))
            .route("/logout-all", post(logout_all))
            .merge(admin)
            .route_layer(GuardLayer::new(guard));
        Router::new()
            .route("/login", post(login))
            .route("/refresh", post(refresh))
            .merge(protected)
            .with_state(self.state.clone())
            .merge(jwks_router(self.keys.clone()))
            .merge(crate::telemetry::metrics_router())
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
    }
}

// ---------------------------------------------------------------------------------------
// Handlers.

#[derive(Deserialize)]
struct RefreshForm {
    refresh_token: String,
}

async fn refresh(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(ip) = request_client_ip(&app.0.guard, &parts) else {
        return server_error("the server cannot tell clients apart");
    };
    let auth_req = AuthRequest::new("POST", "/refresh", ip, Credentials::Absent);
    if let Err(denial) = app.0.guard.check_client(&auth_req).await {
        return denial_response(&denial);
    }
    let key = match parts.headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key.to_owned()),
        Some(Err(_)) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the Idempotency-Key header must be visible ASCII",
            );
        }
    };
    let form: RefreshForm = match read_json(body).await {
        Ok(form) => form,
        Err(res) => return res,
    };
    let minter = app.clone();
    let rotated = app
        .0
        .engine
        .rotate(
            &form.refresh_token,
            key.as_deref(),
            move |m: MintRequest<'_>| minter.mint(m.sub.as_str(), m.family_id.as_str()),
        )
        .await;
    match rotated {
        Ok(rotation) => {
            let counter = match rotation.kind {
                RotationKind::Grace => &app.0.stats.grace_refreshes,
                RotationKind::Replayed => &app.0.stats.idempotent_replays,
                _ => &app.0.stats.refreshes,
            };
            bump(counter);
            if let Some(detector) = &app.0.anomaly {
                detector.refresh_used(&rotation.family_id, ip);
            }
            tracing::info!(
                target: "tokenward_demo",
                sub = rotation.sub.as_str(),
                sid = rotation.family_id.as_str(),
                kind = ?rotation.kind,
                "refresh"
            );
            app.token_response(&rotation.access_token, rotation.refresh_token.expose())
        }
        Err(e) => {
            // Guessing refresh tokens is counted like guessing passwords. A token that was
            // rotated moments ago is not an error at all (the grace window answers it), and a
            // revoked family's token is an honest client's leftover after a logout.
            if let (RefreshError::Reused(report), Some(detector)) = (&e, &app.0.anomaly) {
                detector.refresh_reused(report, ip);
            }
            if matches!(e, RefreshError::Invalid | RefreshError::Reused(_)) {
                app.0
                    .guard
                    .record_failure(&auth_req, "invalid_refresh_token")
                    .await;
            }
            refresh_error(&app, &e, Some(&form.refresh_token))
        }
    }
}

async fn me(Auth(auth): Auth) -> Response {
    let body = serde_json::json!({
        "sub": auth.sub(),
        "sid": auth.sid(),
        "jti": auth.jti(),
        "exp": auth.exp(),
        "scopes": auth.scopes().collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, &body)
}

async fn logout(State(app): State<AppState>, Auth(auth): Auth) -> Response {
    let revocation = &app.0.stores.revocation;
    // The ids as the Guard looks them up: scoped by the token's issuer.
    if let Some(TokenRef {
        jti: Some(jti),
        exp,
        ..
    }) = app.0.guard.token_ref(&auth)
    {
        let until = exp.saturating_add(REVOCATION_MARGIN);
        if let Err(e) = revocation.revoke_token(&jti, until).await {
            return store_unavailable(Check::Revocation, &e);
        }
    }
    if let Some(family) = auth.sid().and_then(FamilyId::parse) {
        match app.0.engine.revoke_family(&family).await {
            Ok(_) => {}
            Err(e) => return refresh_error(&app, &e, None),
        }
    }
    bump(&app.0.stats.logouts);
    tracing::info!(target: "tokenward_demo", sub = auth.sub(), sid = auth.sid(), "logout");
    no_content()
}

/// Sign out everywhere: every session (refresh family) of the user is revoked by `sid` —
/// which refuses every access token issued before, whatever the clock of the instance that
/// minted it — and tokens without a `sid` by a cutoff that covers the verifiers' leeway
/// ([`subject_cutoff`]). A login right afterwards is a new session, so it works at once.
async fn logout_all(State(app): State<AppState>, Auth(auth): Auth) -> Response {
    let (Some(sub), Some(scoped)) = (auth.sub(), app.0.guard.token_ref(&auth)) else {
        return denial_response(&Denial::MissingToken);
    };
    let Some(scoped_sub) = scoped.sub else {
        return denial_response(&Denial::MissingToken);
    };
    let id = match StoreId::new(sub) {
        Ok(id) => id,
        Err(e) => return store_unavailable(Check::Revocation, &e.into()),
    };
    let families = match app.0.engine.revoke_subject(&id).await {
        Ok(n) => n,
        Err(e) => return refresh_error(&app, &e, None),
    };
    let before = subject_cutoff(UnixTime::from(SystemTime::now()), DEFAULT_LEEWAY);
    let until = before
        .saturating_add(app.0.access_ttl)
        .saturating_add(REVOCATION_MARGIN);
    let revocation = &app.0.stores.revocation;
    if let Err(e) = revocation
        .revoke_subject_without_session(&scoped_sub, before, until)
        .await
    {
        return store_unavailable(Check::Revocation, &e);
    }
    bump(&app.0.stats.logouts_all);
    tracing::info!(target: "tokenward_demo", sub, families, "logout-all");
    no_content()
}

async fn stats(State(app): State<AppState>) -> Response {
    let s = &app.0.stats;
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "since": s.started,
        "stores": app.0.stores.backend(),
        "logins": n(&s.logins),
        "login_failures": n(&s.login_failures),
        "refreshes": n(&s.refreshes),
        "grace_refreshes": n(&s.grace_refreshes),
        "idempotent_replays": n(&s.idempotent_replays),
        "refresh_rejections": n(&s.refresh_rejections),
        "reuse_detections": n(&s.reuse_detections),
        "logouts": n(&s.logouts),
        "logouts_all": n(&s.logouts_all),
    });
    json_response(StatusCode::OK, &body)
}

// ---------------------------------------------------------------------------------------
// Helpers.

impl AppState {
    /// An access token for `sub` in session `sid` with the user's scopes, and its `exp`.
    fn mint(&self, sub: &str, sid: &str) -> Result<MintedToken, tokenward_claims::IssueError> {
        let mut request = AccessToken::new(sub).sid(sid);
        for scope in self.0.users.scopes(sub) {
            request = request.scope(*scope);
        }
        let issued = self.0.issuer.issue(&request)?;
        // The issuer always sets `exp`; without one the family's revocation would never end.
        let exp = UnixTime::from_secs(issued.claims.exp.unwrap_or(u64::MAX));
        Ok(MintedToken::new(issued.token, exp))
    }

    fn token_response(&self, access: &str, refresh: &str) -> Response {
        let body = serde_json::json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.0.access_ttl.as_secs(),
        });
        json_response(StatusCode::OK, &body)
    }
}

/// A refresh-engine error as a response: an outage is 503 (never 401, never 200); a bad,
/// revoked or reused token is 401 `invalid_grant`.
fn refresh_error(app: &AppState, e: &RefreshError, token: Option<&str>) -> Response {
    let token_fp = token.map(fingerprint);
    match e {
        RefreshError::Store(store) => store_unavailable(Check::Refresh, store),
        RefreshError::Invalid | RefreshError::Revoked { .. } => {
            bump(&app.0.stats.refresh_rejections);
            tracing::info!(target: "tokenward_demo", token_fp = token_fp.as_deref(), error = %e, "refresh refused");
            invalid_grant()
        }
        RefreshError::Reused(report) => {
            bump(&app.0.stats.reuse_detections);
            tracing::warn!(
                target: "tokenward_demo",
                sub = report.sub.as_str(),
                sid = report.family_id.as_str(),
                token_fp = token_fp.as_deref(),
                session_revoked = report.session_revocation_error.is_none(),
                "refresh token reuse: family revoked"
            );
            invalid_grant()
        }
        RefreshError::InvalidIdempotencyKey => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the Idempotency-Key must be 1 to 255 bytes",
        ),
        other => {
            tracing::error!(target: "tokenward_demo", error = %other, "refresh failed");
            server_error("the refresh failed")
        }
    }
}

fn store_unavailable(check: Check, e: &tokenward_core::StoreError) -> Response {
    tracing::warn!(target: "tokenward_demo", check = check.as_str(), error = %e, "store unavailable: failing closed");
    denial_response(&Denial::Unavailable {
        check,
        retry_after: DEFAULT_OUTAGE_RETRY_AFTER,
    })
}

fn invalid_grant() -> Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
        "the refresh token is invalid, expired or revoked",
    )
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body is missing or too large",
        )
    })?;
    // The serde error is not shown: it may quote the body (a password).
    serde_json::from_slice(&bytes).map_err(|_| {
        json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body must be a JSON object with the documented fields",
        )
    })
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    )
}

/// 429 / 503 with `Retry-After: 1`: try again in a moment.
fn busy(status: StatusCode, description: &str) -> Response {
    let error = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limited"
    } else {
        "temporarily_unavailable"
    };
    let mut res = json_error(status, error, description);
    res.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    res
}

fn server_error(description: &str) -> Response {
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        description,
    )
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "the route does not take this method",
    )
}

fn no_content() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
    )
        .into_response()
}
