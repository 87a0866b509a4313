//! The settings of a remote key set: where it comes from ([`JwksSource`]), the defaults, and
//! [`RemoteKeySetBuilder`], which refuses a setting out of range at build time.

use std::sync::Arc;
use std::time::Duration;

use tokenward_claims::{Algorithm, JwksOptions};
use tokenward_core::{SharedClock, SystemClock};

use crate::error::JwksError;
use crate::remote::RemoteKeySet;

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

/// Where a remote key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    pub(crate) kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
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
    pub(crate) source: JwksSource,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) default_ttl: Duration,
    pub(crate) refresh_ahead: Duration,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_response_size: usize,
    pub(crate) allow_http: bool,
    pub(crate) extra_roots: Vec<Vec<u8>>,
    pub(crate) clock: SharedClock,
    pub(crate) jwks_options: JwksOptions,
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

    /// The algorithm RSA keys published without `alg` are bound to (default RS256, what every
    /// major identity provider signs with): RS256/384/512 or PS256/384/512
    /// ([`build`](Self::build) fails otherwise, field `rsa_alg`; never an HMAC algorithm).
    /// Keys that carry `alg` keep theirs.
    pub fn rsa_alg(mut self, alg: Algorithm) -> Self {
        self.jwks_options = self.jwks_options.rsa_alg(alg);
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
        if self.jwks_options.check().is_err() {
            return invalid(
                "rsa_alg",
                "must be RS256/384/512 or PS256/384/512 (never an HMAC algorithm)",
            );
        }
        RemoteKeySet::new(self)
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
            jwks_options: JwksOptions::new(),
        }
    }
}
