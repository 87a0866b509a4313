//! How to reach Redis: [`RedisConfig`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use redis::{ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError};
use serde::Deserialize;

use crate::error::RedisConfigError;
use tokenward_core::SettingError;

/// Where Redis is and how long tokenward may wait for it.
///
/// Built from [`Default`] (or [`RedisConfig::new`]) plus the builder methods, or deserialized
/// with serde (TOML, YAML, JSON, environment…); every field has a production-sensible
/// default. Its `Debug` output hides the password in the URL. It is deliberately not
/// `Serialize`: a dumped configuration would carry the password.
///
/// # Configuration files
///
/// Every field is optional, unknown fields are errors, and values are checked while
/// deserializing ([`RedisConfig::validate`]), with messages that name the field and never
/// show the password. `operation_timeout` is a [humantime](https://docs.rs/humantime)
/// duration (`"250ms"`, `"1s"`, `"1m 30s"`):
///
/// ```
/// use std::time::Duration;
/// use tokenward_redis::RedisConfig;
///
/// let config: RedisConfig = serde_json::from_str(r#"{
///     "url": "redis://:s3cret@redis.internal:6379/0",
///     "key_prefix": "{orders-api}:",
///     "operation_timeout": "100ms",
///     "pool_size": 4
/// }"#)?;
/// assert_eq!(config.operation_timeout, Duration::from_millis(100));
/// assert_eq!(config.pool_size, 4);
///
/// let defaults: RedisConfig = serde_json::from_str("{}")?;
/// assert_eq!(defaults, RedisConfig::default());
///
/// let err = serde_json::from_str::<RedisConfig>(r#"{"url": "redis://:s3cret@h", "pool_size": 0}"#)
///     .unwrap_err();
/// assert!(err.to_string().contains("`pool_size`: must be at least 1"));
/// assert!(!err.to_string().contains("s3cret"));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// ```
/// use std::time::Duration;
/// use tokenward_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://:s3cret@redis.internal:6379/0")
///     .key_prefix("orders-api:")
///     .operation_timeout(Duration::from_millis(100))
///     .pool_size(16);
/// assert_eq!(config.key_prefix, "orders-api:");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RedisConfigFields")]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server: `redis://[[user]:password@]host[:port][/db]`, the same with `rediss://`
    /// for TLS (rustls on the *ring* provider; the certificate must be valid for `host`), or
    /// `unix:///path/to.sock`. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prepended to every key, so several applications (or test runs) can share one server.
    /// Default `tokenward:`. A prefix containing a Redis Cluster hash tag (`{tw}:`) puts every
    /// key of this application in one slot.
    pub key_prefix: String,
    /// The most any store call may take, from (re)connecting if needed to the last byte of
    /// the answer. A call that takes longer fails with
    /// [`StoreError::Timeout`](tokenward_core::StoreError::Timeout). Default 250 ms.
    pub operation_timeout: Duration,
    /// How many connections to keep open. Calls take them round-robin and share them: each
    /// is multiplexed (the requests of every caller pipelined on it), so this is not a cap on
    /// concurrent calls, and a few go a long way. Default 8.
    pub pool_size: usize,
    /// With `rediss://`: trust exactly the CA certificates in this PEM file (one or more;
    /// a private CA) instead of the platform's trust store. Default: none (the platform's
    /// trust store, through `rustls-platform-verifier`).
    pub tls_ca_file: Option<PathBuf>,
    /// With `rediss://`: present this client certificate chain (PEM, leaf first) to a server
    /// that asks for one (mutual TLS). Needs [`tls_client_key_file`](Self::tls_client_key_file).
    pub tls_client_cert_file: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of
    /// [`tls_client_cert_file`](Self::tls_client_cert_file); both or neither.
    pub tls_client_key_file: Option<PathBuf>,
    /// Accept a server whose `maxmemory-policy` may evict keys (`allkeys-*`, `volatile-*`):
    /// such a server silently forgets revocations and bans when it fills up, so
    /// [`RedisBackend::check_server`](crate::RedisBackend::check_server) refuses it unless
    /// this is `true` (then it logs a warning). Default `false`.
    pub dangerous_allow_eviction: bool,
    /// The seed nodes of a Redis Cluster (`redis://[[user]:password@]host:port` each; any
    /// few of its primaries): when not empty, the stores run on that cluster and
    /// [`url`](Self::url) is not used. Every script's keys share one hash slot, and a call
    /// whose keys are in several slots sends one script per slot, concurrently (one round
    /// trip of latency) — see `docs/architecture.md`, "Redis Cluster: slot layout".
    /// `pool_size` is not used (one multiplexed connection per node). With `rediss://` seeds
    /// (all or none), every node is reached over TLS by redis-rs's rustls (ring) support:
    /// the CA of [`tls_ca_file`](Self::tls_ca_file), or the system's root certificates
    /// (`rustls-native-certs`), and the client certificate if set. redis-rs builds that TLS
    /// configuration with rustls's process-wide crypto provider: ring when it is the only
    /// provider compiled in (as in tokenward's binaries); an application whose dependency
    /// graph also enables rustls's `aws-lc-rs` must install one before the cluster connects
    /// (`rustls::crypto::ring::default_provider().install_default()`), or rustls panics
    /// there. Default: empty (one server).
    pub cluster: Vec<String>,
}

impl RedisConfig {
    /// The default URL.
    pub const DEFAULT_URL: &'static str = "redis://127.0.0.1:6379";
    /// The default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "tokenward:";
    /// The default operation timeout.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_millis(250);
    /// The default number of connections.
    pub const DEFAULT_POOL_SIZE: usize = 8;

    /// The defaults, with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
    }

    /// Sets [`RedisConfig::url`].
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets [`RedisConfig::key_prefix`].
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`RedisConfig::operation_timeout`].
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`RedisConfig::pool_size`].
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets [`RedisConfig::tls_ca_file`].
    #[must_use]
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Sets [`RedisConfig::tls_client_cert_file`] and [`RedisConfig::tls_client_key_file`]
    /// (mutual TLS).
    #[must_use]
    pub fn tls_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.tls_client_cert_file = Some(cert_file.into());
        self.tls_client_key_file = Some(key_file.into());
        self
    }

    /// Sets [`RedisConfig::dangerous_allow_eviction`].
    #[must_use]
    pub fn dangerous_allow_eviction(mut self, allow: bool) -> Self {
        self.dangerous_allow_eviction = allow;
        self
    }

    /// Sets [`RedisConfig::cluster`]: the seed nodes of a Redis Cluster.
    #[must_use]
    pub fn cluster<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// The URL with any password replaced by `***`, for logs and error messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Checks every value: a `url` this build can use (`redis://`, `rediss://` or
    /// `unix://`, and parseable), an `operation_timeout` above zero and a `pool_size` of at
    /// least 1; the `tls_*` files only with `rediss://`, and a client certificate together
    /// with its key. Deserializing runs it, and so does
    /// [`RedisBackend::new`](crate::RedisBackend::new), which also reads the `tls_*` files.
    /// Messages name the field and never contain the password.
    pub fn validate(&self) -> Result<(), RedisConfigError> {
        let invalid_url = |source| RedisConfigError::InvalidUrl {
            url: self.redacted_url(),
            source,
        };
        let scheme = self.url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("redis" | "rediss" | "unix")) {
            return Err(invalid_url(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "the scheme must be redis://, rediss:// or unix://",
            ))));
        }
        let (_, url_tls) = parse_url(&self.url).map_err(invalid_url)?;
        // With `cluster`, the seeds say whether TLS is used (`validate_cluster`), not `url`.
        let tls = match self.cluster.first() {
            Some(seed) => seed.starts_with("rediss://"),
            None => url_tls,
        };
        if !tls {
            for (setting, set) in [
                ("tls_ca_file", self.tls_ca_file.is_some()),
                ("tls_client_cert_file", self.tls_client_cert_file.is_some()),
                ("tls_client_key_file", self.tls_client_key_file.is_some()),
            ] {
                if set {
                    return Err(SettingError::new(setting, "needs a rediss:// url").into());
                }
            }
        }
        match (&self.tls_client_cert_file, &self.tls_client_key_file) {
            (Some(_), None) => {
                return Err(SettingError::new(
                    "tls_client_key_file",
                    "is needed with tls_client_cert_file",
                )
                .into());
            }
            (None, Some(_)) => {
                return Err(SettingError::new(
                    "tls_client_cert_file",
                    "is needed with tls_client_key_file",
                )
                .into());
            }
            _ => {}
        }
        if self.operation_timeout.is_zero() {
            return Err(SettingError::new("operation_timeout", "must be greater than zero").into());
        }
        if self.pool_size == 0 {
            return Err(SettingError::new("pool_size", "must be at least 1").into());
        }
        self.validate_cluster()
    }

    /// The [`cluster`](Self::cluster) part of [`validate`](Self::validate): every seed a
    /// parseable `redis://` or `rediss://` URL, all of one scheme (`validate` allows the TLS
    /// files only with `rediss://` seeds).
    fn validate_cluster(&self) -> Result<(), RedisConfigError> {
        let Some(first) = self.cluster.first() else {
            return Ok(());
        };
        let tls = first.starts_with("rediss://");
        for url in &self.cluster {
            let invalid = |message: &'static str| RedisConfigError::InvalidUrl {
                url: redact_url(url),
                source: RedisError::from((ErrorKind::InvalidClientConfig, message)),
            };
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "a Redis Cluster seed node is a redis://host:port or rediss://host:port URL",
                ));
            }
            if url.starts_with("rediss://") != tls {
                return Err(invalid(
                    "the seed nodes of a Redis Cluster are all redis:// or all rediss://",
                ));
            }
            parse_url(url).map_err(|source| RedisConfigError::InvalidUrl {
                url: redact_url(url),
                source,
            })?;
        }
        Ok(())
    }
}

/// [`RedisConfig`] as it is written in a configuration file, before [`RedisConfig::validate`].
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RedisConfigFields {
    url: String,
    key_prefix: String,
    #[serde(with = "humantime_serde")]
    operation_timeout: Duration,
    pool_size: usize,
    tls_ca_file: Option<PathBuf>,
    tls_client_cert_file: Option<PathBuf>,
    tls_client_key_file: Option<PathBuf>,
    dangerous_allow_eviction: bool,
    cluster: Vec<String>,
}

impl Default for RedisConfigFields {
    fn default() -> Self {
        let RedisConfig {
            url,
            key_prefix,
            operation_timeout,
            pool_size,
            tls_ca_file,
            tls_client_cert_file,
            tls_client_key_file,
            dangerous_allow_eviction,
            cluster,
        } = RedisConfig::default();
        RedisConfigFields {
            url,
            key_prefix,
            operation_timeout,
            pool_size,
            tls_ca_file,
            tls_client_cert_file,
            tls_client_key_file,
            dangerous_allow_eviction,
            cluster,
        }
    }
}

impl TryFrom<RedisConfigFields> for RedisConfig {
    type Error = RedisConfigError;

    fn try_from(fields: RedisConfigFields) -> Result<Self, RedisConfigError> {
        let RedisConfigFields {
            url,
            key_prefix,
            operation_timeout,
            pool_size,
            tls_ca_file,
            tls_client_cert_file,
            tls_client_key_file,
            dangerous_allow_eviction,
            cluster,
        } = fields;
        let config = RedisConfig {
            url,
            key_prefix,
            operation_timeout,
            pool_size,
            tls_ca_file,
            tls_client_cert_file,
            tls_client_key_file,
            dangerous_allow_eviction,
            cluster,
        };
        config.validate()?;
        Ok(config)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: Self::DEFAULT_URL.to_owned(),
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            pool_size: Self::DEFAULT_POOL_SIZE,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            dangerous_allow_eviction: false,
            cluster: Vec::new(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("operation_timeout", &self.operation_timeout)
            .field("pool_size", &self.pool_size)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client_cert_file", &self.tls_client_cert_file)
            .field("tls_client_key_file", &self.tls_client_key_file)
            .field("dangerous_allow_eviction", &self.dangerous_allow_eviction)
            .field(
                "cluster",
                &self
                    .cluster
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What redis-rs makes of `url`, and whether it asks for TLS. To one server this crate does
/// TLS itself (rustls + ring, the platform verifier), so a `rediss://` URL is read as the
/// `redis://` URL of the same server; a cluster's `rediss://` seeds become redis-rs TLS
/// addresses (`cluster.rs`). Fragments (redis-rs's `#insecure`) are refused:
/// certificates are always verified.
pub(crate) fn parse_url(url: &str) -> Result<(ConnectionInfo, bool), RedisError> {
    match url.strip_prefix("rediss://") {
        Some(rest) => {
            if rest.contains('#') {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "rediss:// URLs take no #fragment: certificates are always verified \
                     (trust a private CA with tls_ca_file)",
                )));
            }
            Ok((format!("redis://{rest}").into_connection_info()?, true))
        }
        None => Ok((url.into_connection_info()?, false)),
    }
}

pub(crate) use tokenward_core::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_builder() {
        let c = RedisConfig::default();
        assert_eq!(c.url, "redis://127.0.0.1:6379");
        assert_eq!(c.key_prefix, "tokenward:");
        assert_eq!(c.operation_timeout, Duration::from_millis(250));
        assert_eq!(c.pool_size, 8);
        let c = c
            .url("redis://x:1:pw@h")
            .pool_size(2)
            .operation_timeout(Duration::from_secs(1));
        assert_eq!((c.pool_size, c.operation_timeout.as_secs()), (2, 1));
        assert!(!format!("{c:?}").contains("pw"));
    }

    fn from_toml(text: &str) -> Result<RedisConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn deserializes_with_defaults_for_missing_fields() {
        let c = from_toml(
            r#"
            url = "redis://:s3cret@redis.internal:6380/2"
            key_prefix = "{tw}:"
            operation_timeout = "1s 500ms"
            pool_size = 3
            "#,
        )
        .unwrap();
        assert_eq!(
            c,
            RedisConfig::new("redis://:s3cret@redis.internal:6380/2")
                .key_prefix("{tw}:")
                .operation_timeout(Duration::from_millis(1500))
                .pool_size(3)
        );
        assert_eq!(from_toml("").unwrap(), RedisConfig::default());
        let c = from_toml(
            r#"
            url = "rediss://:s3cret@redis.internal:6380"
            tls_ca_file = "/etc/redis/ca.pem"
            tls_client_cert_file = "/etc/redis/client.pem"
            tls_client_key_file = "/etc/redis/client.key"
            dangerous_allow_eviction = true
            "#,
        )
        .unwrap();
        assert_eq!(
            c,
            RedisConfig::new("rediss://:s3cret@redis.internal:6380")
                .tls_ca_file("/etc/redis/ca.pem")
                .tls_client_cert("/etc/redis/client.pem", "/etc/redis/client.key")
                .dangerous_allow_eviction(true)
        );
        assert!(!RedisConfig::default().dangerous_allow_eviction);
        let c = from_toml(r#"operation_timeout = "250ms""#).unwrap();
        assert_eq!(c.operation_timeout, Duration::from_millis(250));
        for url in [
            "unix:///run/redis.sock",
            "redis://h",
            "redis+unix:///run/r.sock",
        ] {
            let got = from_toml(&format!("url = {url:?}"));
            assert_eq!(got.is_ok(), !url.starts_with("redis+"), "{url}: {got:?}");
        }
        // JSON, as an environment-variable layer would hand it over.
        let c: RedisConfig = serde_json::from_str(r#"{"pool_size": 1}"#).unwrap();
        assert_eq!(c.pool_size, 1);
    }

    #[test]
    fn bad_values_are_refused_naming_the_field_never_the_password() {
        let url = r#"url = "redis://:s3cret@h:6379""#;
        for (extra, says) in [
            ("pool_size = 0", "`pool_size`: must be at least 1"),
            ("pool_size = -1", "pool_size"),
            (
                r#"operation_timeout = "0s""#,
                "`operation_timeout`: must be greater than zero",
            ),
            (r#"operation_timeout = "soon""#, "operation_timeout"),
            ("operation_timeout = 250", "operation_timeout"),
            ("pasword = \"x\"", "unknown field `pasword`"),
            ("key_prefix = 7", "key_prefix"),
        ] {
            let err = from_toml(&format!("{url}\n{extra}")).unwrap_err();
            assert!(err.contains(says), "{extra}: {err}");
            assert!(!err.contains("s3cret"), "{extra}: {err}");
        }
        for (bad, says) in [
            ("http://:s3cret@h", "the scheme must be"),
            ("s3cret", "the scheme must be"),
            ("redis://:s3cret@", "url redis://:***@"),
            (
                "rediss://:s3cret@h:6380/#insecure",
                "url rediss://:***@h:6380",
            ),
        ] {
            let err = from_toml(&format!("url = {bad:?}")).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("s3cret"), "{bad}: {err}");
        }
        let err =
            serde_json::from_str::<RedisConfig>(r#"{"url": "redis://u:s3cret@h", "pool_size": 0}"#)
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("pool_size") && !err.contains("s3cret"),
            "{err}"
        );
        for (extra, says) in [
            (
                r#"tls_ca_file = "/ca.pem""#,
                "`tls_ca_file`: needs a rediss:// url",
            ),
            (
                r#"tls_client_key_file = "/k.pem""#,
                "`tls_client_key_file`: needs a rediss:// url",
            ),
        ] {
            let err = from_toml(&format!("{url}\n{extra}")).unwrap_err();
            assert!(err.contains(says), "{extra}: {err}");
            assert!(!err.contains("s3cret"), "{extra}: {err}");
        }
        let tls = r#"url = "rediss://:s3cret@h:6380""#;
        for (extra, says) in [
            (
                r#"tls_client_cert_file = "/c.pem""#,
                "`tls_client_key_file`: is needed with tls_client_cert_file",
            ),
            (
                r#"tls_client_key_file = "/k.pem""#,
                "`tls_client_cert_file`: is needed with tls_client_key_file",
            ),
        ] {
            let err = from_toml(&format!("{tls}\n{extra}")).unwrap_err();
            assert!(err.contains(says), "{extra}: {err}");
            assert!(!err.contains("s3cret"), "{extra}: {err}");
        }
        // The builder path checks the same way.
        let err = RedisConfig::default().pool_size(0).validate().unwrap_err();
        assert!(
            matches!(&err, RedisConfigError::Setting(e) if e.setting() == "pool_size"),
            "{err:?}"
        );
    }
}
