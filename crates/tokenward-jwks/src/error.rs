//! The crate's one error type.

use std::sync::Arc;
use std::time::Duration;

/// A source error kept inside a [`JwksError`] (cloneable, so the waiters of one fetch all get
/// the same error).
pub type SourceError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a remote key set could not be configured, fetched or used.
///
/// Messages never contain response bodies or URL credentials: URLs appear as
/// `scheme://host[:port]/path` (no user info, no query), and every text taken from a response
/// is capped in length.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A setting is out of range, or the HTTP client cannot be set up with the settings
    /// given. Out-of-range settings are refused at build time, never clamped.
    #[error("invalid remote key set configuration: `{field}`: {reason}")]
    InvalidConfig {
        /// The setting at fault: the builder method's name (`ttl_bounds`, `default_ttl`,
        /// `unknown_kid_cooldown`, `request_timeout`, `max_response_size`,
        /// `add_root_certificate`), or `tls` / `http_client` for the client's own setup.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL does not parse, or is not usable (no host, credentials, fragment).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A plain `http://` URL (configured, discovered, or redirected to) without
    /// `dangerous_allow_http(true)`.
    #[error(
        "refusing non-HTTPS URL {url} (plain HTTP needs `dangerous_allow_http`, for tests and local development only)"
    )]
    InsecureUrl {
        /// The redacted URL.
        url: String,
    },
    /// The request failed (connection, TLS, redirect policy) or the status was not `200`.
    #[error("HTTP request to {url} failed{}", match status { Some(s) => format!(" with status {s}"), None => String::new() })]
    Http {
        /// The redacted URL.
        url: String,
        /// The response status, when there was a response.
        status: Option<u16>,
        /// The transport error (without the URL), when there was one.
        #[source]
        source: Option<SourceError>,
    },
    /// The request (connect, headers and the whole body) took longer than the request timeout.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The redacted URL.
        url: String,
        /// The configured request timeout.
        timeout: Duration,
    },
    /// The response body is larger than the configured cap (checked while streaming).
    #[error("response from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The redacted URL.
        url: String,
        /// The configured cap, in bytes.
        limit: usize,
    },
    /// The response is not a JWKS document (`{"keys": [...]}`).
    #[error("malformed JWKS from {url}: {reason}")]
    Malformed {
        /// The redacted URL.
        url: String,
        /// What is wrong (capped; never the body).
        reason: String,
    },
    /// The JWKS parsed, but none of its keys is usable for signature verification.
    #[error("JWKS from {url} has no usable key ({skipped} skipped)")]
    NoUsableKeys {
        /// The redacted URL.
        url: String,
        /// How many keys were skipped (each with a warning).
        skipped: usize,
    },
    /// OpenID Connect discovery failed: the configuration document is malformed, has no
    /// `jwks_uri`, or names another issuer.
    #[error("OpenID Connect discovery at {url} failed: {reason}")]
    Discovery {
        /// The redacted URL of the configuration document.
        url: String,
        /// What is wrong (capped).
        reason: String,
    },
    /// The cached key set is past its maximum staleness (refreshes kept failing): its keys are
    /// no longer used.
    #[error(
        "the cached key set was fetched {age:?} ago and is past its maximum staleness; refreshes are failing"
    )]
    Stale {
        /// Time since the last successful fetch.
        age: Duration,
    },
    /// No key set has been fetched successfully yet.
    #[error("no key set has been fetched yet")]
    NotFetched,
    /// The fetch was interrupted before it finished (its runtime shut down).
    #[error("the fetch was interrupted (runtime shutting down)")]
    Interrupted,
    /// The operation needs a tokio runtime and none is running.
    #[error("no tokio runtime is running")]
    NoRuntime,
}

/// At most this many characters of any text taken from a response or URL go into an error.
pub(crate) const MAX_ERROR_TEXT: usize = 120;

/// `text` cut to [`MAX_ERROR_TEXT`] characters, control characters replaced.
pub(crate) fn cap(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_ERROR_TEXT)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(MAX_ERROR_TEXT).is_some() {
        out.push('…');
    }
    out
}

/// A URL for messages: `scheme://host[:port]/path`, without user info, query or fragment,
/// capped.
pub(crate) fn redact(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    cap(&format!("{}://{host}{port}{}", url.scheme(), url.path()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redact_drops_credentials_and_query() {
        let url =
            reqwest::Url::parse("https://user:secret@idp.example:8443/jwks?token=abc#x").unwrap();
        assert_eq!(redact(&url), "https://idp.example:8443/jwks");
    }

    #[test]
    fn cap_limits_length_and_control_characters() {
        let long = "a\n".repeat(500);
        let capped = cap(&long);
        assert_eq!(capped.chars().count(), MAX_ERROR_TEXT + 1);
        assert!(!capped.contains('\n'));
    }
}
