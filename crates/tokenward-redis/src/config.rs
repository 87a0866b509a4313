//! How to reach Redis: [`RedisConfig`].

use std::fmt;
use std::time::Duration;

/// Where Redis is and how long tokenward may wait for it.
///
/// Built from [`Default`] (or [`RedisConfig::new`]) plus the builder methods; every field has
/// a production-sensible default. Its `Debug` output hides the password in the URL.
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
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server: `redis://[[user]:password@]host[:port][/db]` or `unix:///path/to.sock`.
    /// Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prepended to every key, so several applications (or test runs) can share one server.
    /// Default `tokenward:`. A prefix containing a Redis Cluster hash tag (`{tw}:`) puts every
    /// key of this application in one slot.
    pub key_prefix: String,
    /// The most any store call may take, from checking a connection out of the pool to the
    /// last byte of the answer. A call that takes longer fails with
    /// [`StoreError::Timeout`](tokenward_core::StoreError::Timeout). Default 250 ms.
    pub operation_timeout: Duration,
    /// The most connections kept open. Each one is multiplexed (many requests in flight on
    /// one connection), so a few go a long way. Default 8.
    pub pool_size: usize,
}

impl RedisConfig {
    /// The default URL.
    pub const DEFAULT_URL: &'static str = "redis://127.0.0.1:6379";
    /// The default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "tokenward:";
    /// The default operation timeout.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_millis(250);
    /// The default pool size.
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

    /// The URL with any password replaced by `***`, for logs and error messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: Self::DEFAULT_URL.to_owned(),
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            pool_size: Self::DEFAULT_POOL_SIZE,
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
            .finish()
    }
}

/// `url` with the password of its userinfo (`user:password@`) replaced by `***`. A userinfo
/// without `:` is hidden whole: some clients read `redis://secret@host` as a password.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we understand: it might be anything, show nothing of it.
        return "<unparseable URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        None => url.to_owned(),
        Some((userinfo, host)) => {
            let shown = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{scheme}://{shown}@{host}{tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
            ("redis://alice:pw@h", "redis://alice:***@h"),
            ("redis://pw@h/2", "redis://***@h/2"),
            ("rediss://a:p@ss:w@rd@h:6380", "rediss://a:***@h:6380"),
            ("redis://h/0?password=x", "redis://h/0?password=x"),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
            ("garbage:pw@h", "<unparseable URL>"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

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
}
