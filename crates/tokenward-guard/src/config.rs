//! The Guard's configuration as data (see [`GuardConfig`]).

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokenward_claims::{Profile, ValidationPolicy};
use tokenward_core::{FailurePolicy, SettingError, SharedClock};
use tokenward_ratelimit::{
    BanQuota, ClientIp, FailureBan, ForwardedHeader, GcraQuota, SubjectLimit,
};

use crate::guard::{DEFAULT_OUTAGE_RETRY_AFTER, Guard, GuardBuilder, OUTAGE_RETRY_AFTER_RANGE};
use crate::issuers::IssuerConfig;
use crate::stores::GuardStores;
use crate::verifier::{KeySource, Verifier};

/// A configuration value that can never work, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `{field}`: {message}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The field, as a dotted path (`ban.maxretry`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A setting out of range, under the setting's own name.
impl From<SettingError> for ConfigError {
    fn from(e: SettingError) -> Self {
        ConfigError::new(e.setting(), e.to_string())
    }
}

/// Everything a [`Guard`] needs except its keys.
///
/// The Guard's whole configuration as data: deserialize it from TOML, YAML, JSON or the
/// environment with serde, then [`GuardConfig::validate`] and build.
///
/// Keys: with `[validation]` (one policy), give them in code to
/// [`guard_builder`](GuardConfig::guard_builder); or name issuers in `[[issuers]]`, each with
/// its own audiences, profile and key source ([`IssuerConfig`]), and let
/// [`load_guard_builder`](GuardConfig::load_guard_builder) load them. `profile = "entra"`
/// (or `auth0`, `okta`, `keycloak`, `cognito`, `google`) applies a
/// [`Profile`] to `[validation]` and to entries without their own.
///
/// Durations are humantime strings (`"90s"`, `"5m"`, `"250ms"`). Unknown fields are errors,
/// and every semantic error names its field (`subject_limit.requests: must be at least 1`),
/// so a bad configuration fails at startup, not at the first request.
///
/// ```
/// use tokenward_guard::GuardConfig;
///
/// let config: GuardConfig = toml::from_str(r#"
///     failure_policy = "closed"
///     outage_retry_after = "5s"
///
///     [validation]
///     issuers = ["https://auth.example.com"]
///     audiences = ["orders-api"]
///     leeway = "30s"
///     max_lifetime = "1h"
///
///     [subject_limit]
///     requests = 300
///     period = "1m"
///
///     [ban]
///     maxretry = 5
///     findtime = "60s"
///     bantime = "5m"
///
///     [client_ip]
///     header = "x-forwarded-for"
///     trusted_proxies = ["10.0.0.0/8"]
/// "#)?;
/// config.validate()?;
///
/// let bad: GuardConfig = toml::from_str(r#"
///     [validation]
///     issuers = ["https://auth.example.com"]
///     audiences = ["orders-api"]
///     [subject_limit]
///     requests = 0
/// "#)?;
/// assert_eq!(
///     bad.validate().unwrap_err().to_string(),
///     "invalid configuration `subject_limit.requests`: must be at least 1"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GuardConfig {
    /// The identity provider's profile (`entra`, `auth0`, `okta`, `keycloak`, `cognito`,
    /// `google`): for `[validation]`'s issuers, and for `[[issuers]]` entries without their
    /// own.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// What a token must satisfy. With `[[issuers]]`, only the settings every issuer shares
    /// (leeway, max lifetime, token size, `typ`); its `issuers`, `audiences` and `tenants`
    /// stay empty.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// Issuers, each with its audiences, profile and own keys (see [`IssuerConfig`]); built
    /// by [`GuardConfig::load_verifier`] / [`GuardConfig::load_guard_builder`].
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// The failure policy of every check without its own (default `closed`).
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// The `Retry-After` of a 503 under fail-closed (default 5 s).
    #[serde(default = "default_outage", with = "humantime_serde")]
    pub outage_retry_after: Duration,
    /// The revocation check.
    #[serde(default)]
    pub revocation: RevocationConfig,
    /// The per-subject limit.
    #[serde(default)]
    pub subject_limit: SubjectLimitConfig,
    /// The authentication-failure ban.
    #[serde(default)]
    pub ban: BanConfig,
    /// Where the client address comes from.
    #[serde(default)]
    pub client_ip: ClientIpConfig,
    /// Where tokens come from besides the `Authorization` header.
    #[serde(default)]
    pub token: TokenConfig,
    /// Which stores back the checks.
    #[serde(default)]
    pub stores: StoresConfig,
}

fn default_outage() -> Duration {
    DEFAULT_OUTAGE_RETRY_AFTER
}

/// [`GuardConfig::validation`]: maps onto [`ValidationPolicy`]'s builder; unset fields keep
/// its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ValidationConfig {
    /// Accepted issuers (at least one, unless `[[issuers]]` name them): exact, or a
    /// `{tenantid}` template.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Accepted audiences (at least one).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Tenants a `{tenantid}` issuer template is restricted to (empty: any tenant whose
    /// `tid` equals the one in `iss`).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Clock leeway (at most 5 minutes).
    #[serde(default, with = "humantime_serde")]
    pub leeway: Option<Duration>,
    /// Maximum `exp − iat`.
    #[serde(default, with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Maximum token size in bytes, checked before any parsing.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// Accepted `typ` header values (default `JWT` and `at+jwt`).
    #[serde(default)]
    pub typ: Option<Vec<String>>,
}

/// [`GuardConfig::revocation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RevocationConfig {
    /// Overrides [`GuardConfig::failure_policy`] for the revocation check.
    #[serde(default)]
    pub failure_policy: Option<FailurePolicy>,
}

/// [`GuardConfig::subject_limit`]: GCRA per verified subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SubjectLimitConfig {
    /// Whether the limit applies (default true). `false` is
    /// [`GuardBuilder::dangerous_no_subject_limit`]: one token may send without bound.
    pub enabled: bool,
    /// The policy name (RateLimit headers, keys). Default `subject`.
    pub name: String,
    /// Requests per `period` (default 300).
    pub requests: u32,
    /// The period (default 1 minute).
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// The most requests at once (default `requests`).
    pub burst: Option<u32>,
    /// Overrides [`GuardConfig::failure_policy`].
    pub failure_policy: Option<FailurePolicy>,
}

impl Default for SubjectLimitConfig {
    fn default() -> Self {
        SubjectLimitConfig {
            enabled: true,
            name: "subject".to_owned(),
            requests: 300,
            period: Duration::from_secs(60),
            burst: None,
            failure_policy: None,
        }
    }
}

/// [`GuardConfig::ban`]: fail2ban semantics per client IP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BanConfig {
    /// Whether the ban applies (default true). `false` is
    /// [`GuardBuilder::dangerous_no_failure_ban`]: brute force is not slowed down.
    pub enabled: bool,
    /// The policy name. Default `auth-ban`.
    pub name: String,
    /// Failures that ban (default 5).
    pub maxretry: u32,
    /// The window failures count in (default 60 s).
    #[serde(with = "humantime_serde")]
    pub findtime: Duration,
    /// How long a ban lasts (default 300 s).
    #[serde(with = "humantime_serde")]
    pub bantime: Duration,
    /// IPv6 clients are banned by this prefix (default 64).
    pub ipv6_prefix: u8,
    /// The IPv4 prefix of a client's **network** for network bans (what the anomaly
    /// detectors' `ban` action writes; [`FailureBan::network_prefixes`]): 8 to 32, default
    /// 24. Keep it equal to the detectors' `ipv4_prefix`.
    pub network_ipv4_prefix: u8,
    /// The IPv6 prefix of a client's network for network bans: 16 to 128, default 48. Keep it
    /// equal to the detectors' `ipv6_prefix`.
    pub network_ipv6_prefix: u8,
    /// Overrides [`GuardConfig::failure_policy`].
    pub failure_policy: Option<FailurePolicy>,
}

impl Default for BanConfig {
    fn default() -> Self {
        let q = BanQuota::fail2ban_default();
        BanConfig {
            enabled: true,
            name: "auth-ban".to_owned(),
            maxretry: q.maxretry(),
            findtime: q.findtime(),
            bantime: q.bantime(),
            ipv6_prefix: FailureBan::DEFAULT_IPV6_PREFIX,
            network_ipv4_prefix: tokenward_ratelimit::NETWORK_IPV4_PREFIX,
            network_ipv6_prefix: tokenward_ratelimit::NETWORK_IPV6_PREFIX,
            failure_policy: None,
        }
    }
}

/// [`GuardConfig::client_ip`]: the peer address unless forwarding headers are trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientIpConfig {
    /// `forwarded` or `x-forwarded-for`; unset = the peer address only.
    #[serde(default, with = "forwarded_header")]
    pub header: Option<ForwardedHeader>,
    /// Proxy networks whose forwarding header is believed (CIDR or addresses).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// [`ForwardedHeader`] as its header name (`forwarded`, `x-forwarded-for`) in configuration
/// files: the one vocabulary of `tokenward_ratelimit`, spelled as before.
mod forwarded_header {
    use serde::{Deserialize, Deserializer, Serializer};
    use tokenward_ratelimit::ForwardedHeader;

    const ALL: [ForwardedHeader; 2] = [ForwardedHeader::Forwarded, ForwardedHeader::XForwardedFor];

    pub(super) fn serialize<S: Serializer>(
        header: &Option<ForwardedHeader>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match header {
            Some(h) => serializer.serialize_some(h.name()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<ForwardedHeader>, D::Error> {
        let Some(name) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        ALL.into_iter()
            .find(|h| h.name() == name)
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::unknown_variant(&name, &["forwarded", "x-forwarded-for"])
            })
    }
}

/// [`GuardConfig::token`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenConfig {
    /// Also read the token from this cookie (opt-in; see [`GuardBuilder::cookie_token`]).
    #[serde(default)]
    pub cookie: Option<String>,
}

/// [`GuardConfig::stores`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoresConfig {
    /// `memory` (default: one process only) or `redis` (shared by all instances).
    #[serde(default)]
    pub backend: StoreBackend,
    /// The Redis connection, required with `backend = "redis"` (no default address: a
    /// missing table is an error naming `stores.redis`).
    #[cfg(feature = "redis")]
    #[serde(default)]
    pub redis: Option<tokenward_redis::RedisConfig>,
}

/// Which stores back the Guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StoreBackend {
    /// In-memory stores (one process).
    #[default]
    Memory,
    /// Redis (needs the `redis` feature).
    Redis,
}

impl GuardConfig {
    /// A configuration for `issuer` and `audience` with every other setting at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        GuardConfig {
            profile: None,
            issuers: Vec::new(),
            validation: ValidationConfig {
                issuers: vec![issuer.into()],
                audiences: vec![audience.into()],
                ..ValidationConfig::default()
            },
            failure_policy: FailurePolicy::default(),
            outage_retry_after: DEFAULT_OUTAGE_RETRY_AFTER,
            revocation: RevocationConfig::default(),
            subject_limit: SubjectLimitConfig::default(),
            ban: BanConfig::default(),
            client_ip: ClientIpConfig::default(),
            token: TokenConfig::default(),
            stores: StoresConfig::default(),
        }
    }

    /// Checks every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.issuers.is_empty() {
            self.validation_policy(None)?;
        } else {
            self.check_issuers()?;
        }
        self.build_subject_limit()?;
        self.build_ban()?;
        self.build_client_ip()?;
        tokenward_core::SettingError::check_range(
            "outage_retry_after",
            self.outage_retry_after,
            OUTAGE_RETRY_AFTER_RANGE,
        )?;
        if let Some(name) = &self.token.cookie
            && (name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b)))
        {
            return Err(ConfigError::new("token.cookie", "not a valid cookie name"));
        }
        self.check_stores()
    }

    /// The validation policy of `[validation]` (with `clock`, or the system clock).
    pub fn validation_policy(
        &self,
        clock: Option<SharedClock>,
    ) -> Result<ValidationPolicy, ConfigError> {
        let v = &self.validation;
        if v.issuers.is_empty() {
            return Err(ConfigError::new(
                "validation.issuers",
                "at least one issuer is required (here or in [[issuers]] entries)",
            ));
        }
        if v.audiences.is_empty() {
            return Err(ConfigError::new(
                "validation.audiences",
                "at least one audience is required",
            ));
        }
        self.build_policy(
            "validation",
            &v.issuers,
            &v.audiences,
            &v.tenants,
            self.profile,
            clock,
        )
    }

    fn check_issuers(&self) -> Result<(), ConfigError> {
        let v = &self.validation;
        for (field, set) in [
            ("validation.issuers", v.issuers.is_empty()),
            ("validation.audiences", v.audiences.is_empty()),
            ("validation.tenants", v.tenants.is_empty()),
        ] {
            if !set {
                return Err(ConfigError::new(
                    field,
                    "with [[issuers]], each entry names its own (leave this empty)",
                ));
            }
        }
        for (i, entry) in self.issuers.iter().enumerate() {
            entry.check(self, &format!("issuers[{i}]"))?;
        }
        Ok(())
    }

    /// A policy for `issuers`/`audiences`/`tenants` under `profile`, with the shared settings
    /// of `[validation]`; errors name `field`.
    pub(crate) fn build_policy(
        &self,
        field: &str,
        issuers: &[String],
        audiences: &[String],
        tenants: &[String],
        profile: Option<Profile>,
        clock: Option<SharedClock>,
    ) -> Result<ValidationPolicy, ConfigError> {
        let v = &self.validation;
        let mut b = ValidationPolicy::builder();
        if let Some(profile) = profile {
            b = b.profile(profile);
        }
        for iss in issuers {
            b = b.issuer(iss);
        }
        for aud in audiences {
            b = b.audience(aud);
        }
        for tenant in tenants {
            b = b.tenant(tenant);
        }
        if let Some(leeway) = v.leeway {
            b = b.leeway(leeway);
        }
        if let Some(max) = v.max_lifetime {
            b = b.max_lifetime(max);
        }
        if let Some(bytes) = v.max_token_bytes {
            b = b.max_token_size(bytes);
        }
        if let Some(typ) = &v.typ {
            b = b.typ(typ.iter().cloned());
        }
        if let Some(clock) = clock {
            b = b.clock(clock);
        }
        b.build()
            .map_err(|e| ConfigError::new(field, e.to_string()))
    }

    fn build_subject_limit(&self) -> Result<Option<SubjectLimit>, ConfigError> {
        let c = &self.subject_limit;
        if !c.enabled {
            return Ok(None);
        }
        let requests = at_least_one("subject_limit.requests", c.requests)?;
        let burst = at_least_one("subject_limit.burst", c.burst.unwrap_or(c.requests))?;
        let quota = GcraQuota::new(requests, c.period)
            .and_then(|q| q.with_burst(burst))
            .map_err(|e| setting_error("subject_limit", &e))?;
        let limit = SubjectLimit::new(&c.name, quota)
            .map_err(|e| ConfigError::new("subject_limit.name", e.to_string()))?;
        Ok(Some(limit.failure_policy(
            c.failure_policy.unwrap_or(self.failure_policy),
        )))
    }

    /// The failure ban this configuration gives the Guard (`None` when disabled): for code
    /// that writes bans the Guard must read under the same key (`tokenward-anomaly`'s
    /// `Responder::failure_ban`).
    pub fn failure_ban(&self) -> Result<Option<FailureBan>, ConfigError> {
        self.build_ban()
    }

    fn build_ban(&self) -> Result<Option<FailureBan>, ConfigError> {
        let c = &self.ban;
        if !c.enabled {
            return Ok(None);
        }
        let maxretry = at_least_one("ban.maxretry", c.maxretry)?;
        let quota =
            BanQuota::new(maxretry, c.findtime, c.bantime).map_err(|e| setting_error("ban", &e))?;
        let ban = FailureBan::new(&c.name, quota)
            .map_err(|e| ConfigError::new("ban.name", e.to_string()))?
            .ipv6_prefix(c.ipv6_prefix)
            .and_then(|ban| ban.network_prefixes(c.network_ipv4_prefix, c.network_ipv6_prefix))
            .map_err(|e| setting_error("ban", &e))?;
        Ok(Some(ban.failure_policy(
            c.failure_policy.unwrap_or(self.failure_policy),
        )))
    }

    fn build_client_ip(&self) -> Result<ClientIp, ConfigError> {
        let c = &self.client_ip;
        let header = match c.header {
            None if c.trusted_proxies.is_empty() => return Ok(ClientIp::peer_only()),
            None => {
                return Err(ConfigError::new(
                    "client_ip.header",
                    "trusted_proxies are set but no forwarding header is named",
                ));
            }
            Some(header) => header,
        };
        if c.trusted_proxies.is_empty() {
            return Err(ConfigError::new(
                "client_ip.trusted_proxies",
                "a forwarding header is only believed from trusted proxies; list them",
            ));
        }
        ClientIp::behind_proxies(header, &c.trusted_proxies)
            .map_err(|e| ConfigError::new("client_ip.trusted_proxies", e.to_string()))
    }

    fn check_stores(&self) -> Result<(), ConfigError> {
        match self.stores.backend {
            StoreBackend::Memory => Ok(()),
            #[cfg(feature = "redis")]
            StoreBackend::Redis if self.stores.redis.is_none() => Err(ConfigError::new(
                "stores.redis",
                "backend = \"redis\" needs a [stores.redis] table with the connection (url, ...)",
            )),
            #[cfg(feature = "redis")]
            StoreBackend::Redis => Ok(()),
            #[cfg(not(feature = "redis"))]
            StoreBackend::Redis => Err(ConfigError::new(
                "stores.backend",
                "\"redis\" needs tokenward-guard's `redis` feature",
            )),
        }
    }

    /// Connects the configured stores (Redis connections are made lazily: this does not
    /// wait for Redis, and an unreachable Redis shows as store errors per request).
    pub fn connect_stores(&self) -> Result<GuardStores, ConfigError> {
        self.check_stores()?;
        match self.stores.backend {
            #[cfg(feature = "redis")]
            StoreBackend::Redis => {
                let Some(config) = &self.stores.redis else {
                    return Err(ConfigError::new("stores.redis", "missing"));
                };
                let stores = tokenward_redis::RedisStores::connect(config)
                    .map_err(|e| ConfigError::new("stores.redis", e.to_string()))?;
                Ok(GuardStores::redis(&stores))
            }
            _ => Ok(GuardStores::memory()),
        }
    }

    /// A [`GuardBuilder`] with everything from this configuration, verifying with `keys`
    /// (a [`KeySet`](tokenward_claims::KeySet), a
    /// [`SharedKeySet`](tokenward_claims::SharedKeySet), or a `RemoteKeySet` that is
    /// refetched on an unknown `kid` — see [`KeySource`]) and checking `stores`.
    pub fn guard_builder(
        &self,
        keys: impl Into<KeySource>,
        stores: GuardStores,
        clock: Option<SharedClock>,
    ) -> Result<GuardBuilder, ConfigError> {
        self.validate()?;
        if !self.issuers.is_empty() {
            return Err(ConfigError::new(
                "issuers",
                "[[issuers]] entries name their own keys: use load_guard_builder",
            ));
        }
        let verifier = Verifier::new(self.validation_policy(clock)?, keys);
        self.builder_for(verifier, stores)
    }

    /// A [`GuardBuilder`] with everything from this configuration, verifying with the keys
    /// its `[[issuers]]` entries name ([`load_verifier`](Self::load_verifier)) and checking
    /// `stores`.
    pub async fn load_guard_builder(
        &self,
        stores: GuardStores,
        clock: Option<SharedClock>,
    ) -> Result<GuardBuilder, ConfigError> {
        let verifier = self.load_verifier(clock).await?;
        self.builder_for(verifier, stores)
    }

    fn builder_for(
        &self,
        verifier: Verifier,
        stores: GuardStores,
    ) -> Result<GuardBuilder, ConfigError> {
        let mut b = Guard::builder(verifier, stores)
            .failure_policy(self.failure_policy)
            .outage_retry_after(self.outage_retry_after)?
            .client_ip(self.build_client_ip()?);
        if let Some(p) = self.revocation.failure_policy {
            b = b.revocation_failure_policy(p);
        }
        b = match self.build_subject_limit()? {
            Some(limit) => b.subject_limit(limit),
            None => b.dangerous_no_subject_limit(),
        };
        b = match self.build_ban()? {
            Some(ban) => b.failure_ban(ban),
            None => b.dangerous_no_failure_ban(),
        };
        if let Some(cookie) = &self.token.cookie {
            b = b.cookie_token(cookie);
        }
        Ok(b)
    }
}

/// `n` as a count of at least 1, or an error naming `field`.
fn at_least_one(field: &str, n: u32) -> Result<NonZeroU32, ConfigError> {
    NonZeroU32::new(n).ok_or_else(|| ConfigError::new(field, "must be at least 1"))
}

/// A rate-limit setting out of range (`SettingError` names it as the configuration does),
/// under `section`.
fn setting_error(section: &str, e: &SettingError) -> ConfigError {
    ConfigError::new(format!("{section}.{}", e.setting()), e.to_string())
}
