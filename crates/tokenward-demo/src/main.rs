//! `tokenward-demo`: the reference API built on the tokenward crates (see the library docs
//! of `tokenward_demo` for the routes).
//!
//! The first line on stdout is `listening on http://HOST:PORT` (with `--bind` port 0, the
//! port picked); logs go to stderr and never contain tokens. SIGTERM or ctrl-c stops it
//! gracefully (requests in flight finish).
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokenward_demo::server::{self, Demo, DemoConfig};
use tokenward_demo::telemetry::{self, LogFormat};
use tokenward_redis::RedisConfig;

/// The tokenward reference API: login, refresh rotation, logout, logout-all, /me, an admin
/// route, and JWKS.
#[derive(Debug, Parser)]
#[command(name = "tokenward-demo", version)]
struct Args {
    /// Where to listen (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// A key directory written by `tokenward keygen` (default: an ephemeral Ed25519 key).
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// Keep revocations, limits, bans and refresh families in this Redis (default: in
    /// memory): `redis://…`, or `rediss://…` for TLS. Instances sharing --keys, --redis and
    /// --redis-prefix are one service. Checked at startup: the demo refuses to start if Redis
    /// does not answer or its maxmemory-policy may evict keys.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Keep refresh families and revocations in this PostgreSQL
    /// (`postgres://user:password@host/db`), durable across restarts; limits and bans stay
    /// in memory. With --redis too: PostgreSQL for refresh families and the durable copy of
    /// revocations, Redis for limits, bans and the per-request check (reloaded from
    /// PostgreSQL when Redis comes back empty). The schema is migrated at startup.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// The schema of tokenward's tables in --postgres.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "tokenward",
        requires = "postgres"
    )]
    pg_schema: String,
    /// With `rediss://`: trust exactly the CA certificates in this PEM file (a private CA)
    /// instead of the platform's trust store.
    #[arg(long, value_name = "FILE", requires = "redis")]
    redis_ca: Option<PathBuf>,
    /// With `rediss://`: a client certificate chain (PEM) for mutual TLS; needs
    /// --redis-client-key.
    #[arg(long, value_name = "FILE", requires_all = ["redis", "redis_client_key"])]
    redis_client_cert: Option<PathBuf>,
    /// The private key (PEM) of --redis-client-cert.
    #[arg(long, value_name = "FILE", requires = "redis_client_cert")]
    redis_client_key: Option<PathBuf>,
    /// Start on a Redis whose maxmemory-policy may evict keys (refused otherwise: it
    /// silently forgets revocations and bans when full).
    #[arg(long, requires = "redis")]
    dangerous_allow_eviction: bool,
    /// --redis names seed nodes of a Redis Cluster: one `redis://host:port` URL or a
    /// comma-separated list, all `redis://` or all `rediss://` (then --redis-ca and the client
    /// certificate flags apply to every node). The startup check runs
    /// on every primary.
    #[arg(long, requires = "redis")]
    redis_cluster: bool,
    /// The key prefix on Redis: by default the one of every tokenward component, so that
    /// `tokenward revoke` without `--prefix` reaches this service.
    #[arg(long, value_name = "PREFIX", default_value = RedisConfig::DEFAULT_KEY_PREFIX)]
    redis_prefix: String,
    /// The most any Redis call may take, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    redis_timeout_ms: u64,
    /// Access-token lifetime in seconds (at most 86 400).
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    access_ttl: u64,
    /// Refresh grace window in seconds (parallel refreshes get one successor; at most 120, a
    /// larger value is refused at startup).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    refresh_grace: u64,
    /// Live sessions (refresh-token families) per user: a login beyond it signs out the
    /// user's oldest session, audited (1 to 10 000).
    #[arg(long, value_name = "N", default_value_t = 50)]
    max_sessions_per_user: usize,
    /// Authenticated requests per minute per subject.
    #[arg(long, value_name = "N", default_value_t = 300)]
    subject_limit: u32,
    /// Authentication failures from one IP that ban it.
    #[arg(long, value_name = "N", default_value_t = 5)]
    ban_maxretry: u32,
    /// The window those failures count in, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    ban_findtime: u64,
    /// How long a ban lasts, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    ban_bantime: u64,
    /// A proxy (CIDR network or address) whose X-Forwarded-For names the client; repeat for
    /// more (default: none, the client is the TCP peer).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<String>,
    /// Seconds a client may take to send a request's line and headers (also the longest a
    /// keep-alive connection waits for its next request).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    header_read_timeout: u64,
    /// Seconds after which a connection that moves no byte either way is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    idle_timeout: u64,
    /// Seconds one request may take once its headers are in (its body included); then 408.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    request_timeout: u64,
    /// Open connections at most; further ones wait until one closes.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// Open connections per client network (an IPv4 address, an IPv6 /64) at most; further
    /// ones are closed at once. Trusted proxies are exempt.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_connections_per_ip: usize,
    /// Anomaly detection, token shared: the client networks (IPv4 /24, IPv6 /48) one token
    /// or session may be used from within --anomaly-window; one more revokes the session.
    #[arg(long, value_name = "N", default_value_t = 3)]
    anomaly_max_networks: u32,
    /// Anomaly detection, revoked-token replay: replays from one network within
    /// --anomaly-window that ban the client.
    #[arg(long, value_name = "K", default_value_t = 5)]
    anomaly_replay_ban: u32,
    /// Anomaly detection, forgery burst: forged tokens (bad signature, unknown key, refused
    /// algorithm) from one network within a minute that ban the client.
    #[arg(long, value_name = "N", default_value_t = 20)]
    anomaly_forgery_ban: u32,
    /// The window, in seconds, of the token-shared and replay detectors.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    anomaly_window: u64,
    /// No anomaly detection (on by default).
    #[arg(long)]
    no_anomaly: bool,
    /// The format of the log lines on stderr: `text`, or `json` (one object per line; audit
    /// events have `"target":"tokenward::audit"`, anomalies `"target":"tokenward::anomaly"`).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
}

impl Args {
    fn config(self) -> DemoConfig {
        let mut config = DemoConfig::default();
        config.bind = self.bind;
        config.keys = self.keys;
        config.redis = self.redis;
        config.postgres = self.postgres;
        config.pg_schema = self.pg_schema;
        config.redis_prefix = self.redis_prefix;
        config.redis_timeout = Duration::from_millis(self.redis_timeout_ms);
        config.redis_ca = self.redis_ca;
        config.redis_client_cert = self.redis_client_cert;
        config.redis_client_key = self.redis_client_key;
        config.redis_dangerous_allow_eviction = self.dangerous_allow_eviction;
        config.redis_cluster = self.redis_cluster;
        config.access_ttl = Duration::from_secs(self.access_ttl);
        config.refresh_grace = Duration::from_secs(self.refresh_grace);
        config.max_sessions_per_user = self.max_sessions_per_user;
        config.subject_limit = self.subject_limit;
        config.ban_maxretry = self.ban_maxretry;
        config.ban_findtime = Duration::from_secs(self.ban_findtime);
        config.ban_bantime = Duration::from_secs(self.ban_bantime);
        config.trusted_proxies = self.trusted_proxies;
        config.header_read_timeout = Duration::from_secs(self.header_read_timeout);
        config.idle_timeout = Duration::from_secs(self.idle_timeout);
        config.request_timeout = Duration::from_secs(self.request_timeout);
        config.max_connections = self.max_connections;
        config.max_connections_per_ip = self.max_connections_per_ip;
        config.anomaly_max_networks = self.anomaly_max_networks;
        config.anomaly_replay_ban = self.anomaly_replay_ban;
        config.anomaly_forgery_ban = self.anomaly_forgery_ban;
        config.anomaly_window = Duration::from_secs(self.anomaly_window);
        config.anomaly_off = self.no_anomaly;
        config
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = telemetry::init_logging(args.log_format) {
        eprintln!("tokenward-demo: cannot install the log subscriber: {e}");
        return ExitCode::FAILURE;
    }
    // The Prometheus recorder, before any request records a metric.
    if telemetry::prometheus().is_none() {
        eprintln!("tokenward-demo: cannot install the metrics recorder");
        return ExitCode::FAILURE;
    }
    let config = args.config();
    match run(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokenward-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &DemoConfig) -> Result<(), server::StartError> {
    let keys = server::load_keys(config)?;
    let demo = Demo::new(config, keys)?;
    demo.check_stores().await?;
    let stores = match (&config.redis, &config.postgres) {
        (Some(_), Some(_)) => "hybrid",
        (Some(_), None) => "redis",
        (None, Some(_)) => "postgres",
        (None, None) => "memory",
    };
    server::serve(
        &demo,
        config.bind,
        |addr| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{addr}");
            let _ = out.flush();
            tracing::info!(target: "tokenward_demo", %addr, stores, "listening");
        },
        shutdown_signal(),
    )
    .await?;
    tracing::info!(target: "tokenward_demo", "stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(target: "tokenward_demo", "shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's Redis keys are where `tokenward revoke` and `check` look by default.
    #[test]
    fn the_default_redis_prefix_is_tokenwards() {
        let args = Args::parse_from(["tokenward-demo"]);
        assert_eq!(args.redis_prefix, RedisConfig::DEFAULT_KEY_PREFIX);
        assert_eq!(args.config().redis_prefix, RedisConfig::DEFAULT_KEY_PREFIX);
        assert_eq!(
            DemoConfig::default().redis_prefix,
            RedisConfig::DEFAULT_KEY_PREFIX
        );
    }
}
