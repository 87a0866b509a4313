//! The crate's error type: why a Redis store could not be built.

/// Why a store could not be built from a [`RedisConfig`](crate::RedisConfig).
///
/// Only configuration mistakes end up here: building a store never talks to Redis, so an
/// unreachable server is not an error at startup (calls fail with
/// [`StoreError::Unavailable`](tokenward_core::StoreError::Unavailable) until it is back).
/// Messages never contain the password of the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// The URL is not a Redis URL this build can use.
    #[error("invalid Redis configuration: url {url}: {source}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What the Redis client said about it (never the URL itself).
        #[source]
        source: redis::RedisError,
    },
    /// A TLS file (`tls_ca_file`, `tls_client_cert_file`, `tls_client_key_file`) is missing
    /// or unusable, or TLS cannot be set up with it.
    #[error("invalid Redis configuration: `{setting}`: {reason}")]
    Tls {
        /// The setting.
        setting: &'static str,
        /// What is wrong: the file's path and why (never its content).
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid Redis configuration: {0}")]
    Setting(#[from] tokenward_core::SettingError),
}
