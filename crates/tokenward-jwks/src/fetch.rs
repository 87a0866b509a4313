//! HTTP: the client (rustls + ring), bounded GETs, `Cache-Control`, JWKS parsing with per-key
//! skipping, OpenID Connect discovery.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use serde::Deserialize;
use tokenward_claims::{JwksOptions, KeySet, KeySetError, MAX_KID_LEN, SkippedKey};

use crate::error::{JwksError, SourceError, cap, redact};

/// What `Cache-Control` said about the response's freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// No usable directive: the configured default TTL applies.
    Unspecified,
    /// `max-age=N` (seconds).
    MaxAge(u64),
    /// `no-store` / `no-cache`: as short as allowed (the minimum TTL).
    NoCache,
}

/// Reads `Cache-Control` (every header line; `no-store`/`no-cache` win over `max-age`).
pub(crate) fn freshness(headers: &HeaderMap) -> Freshness {
    let mut result = Freshness::Unspecified;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Freshness::NoCache;
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(arg) = arg
                && !arg.is_empty()
                && arg.bytes().all(|b| b.is_ascii_digit())
            {
                // Too many digits for u64 means "very long": the maximum TTL bounds it anyway.
                let secs = arg.parse::<u64>().unwrap_or(u64::MAX);
                result = Freshness::MaxAge(secs);
            }
        }
    }
    result
}

/// The HTTP client: HTTP/1.1 over rustls with the ring provider and the platform verifier;
/// redirects (at most 5) may not leave HTTPS unless plain HTTP is allowed.
pub(crate) fn client(
    timeout: Duration,
    allow_http: bool,
    extra_roots: &[Vec<u8>],
) -> Result<reqwest::Client, JwksError> {
    use rustls::pki_types::CertificateDer;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let field = if extra_roots.is_empty() {
        "tls"
    } else {
        "add_root_certificate"
    };
    let tls_error = |e: rustls::Error| JwksError::InvalidConfig {
        field,
        reason: format!("cannot set up TLS: {}", cap(&e.to_string())),
    };
    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
    } else {
        let roots = extra_roots
            .iter()
            .map(|der| CertificateDer::from(der.clone()));
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, Arc::clone(&provider))
    }
    .map_err(tls_error)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous() // only to install the platform verifier: certificates are verified
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if attempt.url().scheme() != "https" && !allow_http {
            attempt.error("redirect to a non-HTTPS URL")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(!allow_http)
        .redirect(redirects)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("tokenward-jwks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| JwksError::InvalidConfig {
            field: "http_client",
            reason: format!(
                "cannot build the HTTP client: {}",
                cap(&e.without_url().to_string())
            ),
        })
}

/// Checks a configured or discovered URL: parses, `https` (or `http` when allowed), has a
/// host, carries no credentials.
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<Url, JwksError> {
    let parsed = Url::parse(url).map_err(|e| JwksError::InvalidUrl(cap(&e.to_string())))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(JwksError::InsecureUrl {
                url: redact(&parsed),
            });
        }
        other => {
            return Err(JwksError::InvalidUrl(format!(
                "unsupported scheme `{}`",
                cap(other)
            )));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(JwksError::InvalidUrl("no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(JwksError::InvalidUrl(
            "credentials in the URL are not supported".into(),
        ));
    }
    Ok(parsed)
}

/// One bounded GET: the whole exchange within `timeout`, the body capped at `limit` bytes
/// while streaming. Returns the body and the response's freshness.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
    limit: usize,
) -> Result<(Vec<u8>, Freshness), JwksError> {
    let shown = redact(url);
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            JwksError::Timeout {
                url: shown.clone(),
                timeout,
            }
        } else {
            let source: SourceError = Arc::new(e.without_url());
            JwksError::Http {
                url: shown.clone(),
                status: None,
                source: Some(source),
            }
        }
    };
    let exchange = async {
        let mut response = client
            .get(url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(JwksError::Http {
                url: shown.clone(),
                status: Some(status.as_u16()),
                source: None,
            });
        }
        let too_large = || JwksError::TooLarge {
            url: shown.clone(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        let fresh = freshness(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, fresh))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(JwksError::Timeout {
            url: redact(url),
            timeout,
        }),
    }
}

/// The result of parsing a JWKS document.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) keys: KeySet,
    pub(crate) skipped: usize,
}

/// Parses a JWKS document key by key with the rules every tokenward loader shares
/// ([`KeySet::load_jwks`]): keys without `alg` bind to their key type's one algorithm (RSA to
/// RS256 or the configured [`rsa_alg`](crate::RemoteKeySetBuilder::rsa_alg)); encryption keys,
/// unsupported key types, `oct` (symmetric) keys — a secret published in a key set is no
/// secret — and broken keys (malformed, weak, no `kid`, a second key with an already seen
/// `kid`) are skipped with a warning; no usable key at all is an error.
pub(crate) fn parse_jwks(
    body: &[u8],
    url: &Url,
    options: &JwksOptions,
) -> Result<Parsed, JwksError> {
    let shown = redact(url);
    let options = options.clone().public_only().skip_invalid();
    match KeySet::load_jwks(body, &options) {
        Ok(load) => {
            for s in &load.skipped {
                skip_warning(&shown, s);
            }
            if load.keys.is_empty() {
                return Err(JwksError::NoUsableKeys {
                    url: shown,
                    skipped: 0,
                });
            }
            Ok(Parsed {
                keys: load.keys,
                skipped: load.skipped.len(),
            })
        }
        Err(KeySetError::NoUsableKeys(skipped)) => {
            for s in &skipped {
                skip_warning(&shown, s);
            }
            Err(JwksError::NoUsableKeys {
                url: shown,
                skipped: skipped.len(),
            })
        }
        Err(KeySetError::MalformedJwks(reason)) => Err(JwksError::Malformed {
            url: shown,
            reason: cap(&reason),
        }),
        Err(other) => Err(JwksError::Malformed {
            url: shown,
            reason: cap(&other.to_string()),
        }),
    }
}

fn skip_warning(url: &str, skipped: &SkippedKey) {
    tracing::warn!(
        target: "tokenward::jwks",
        url,
        index = skipped.index,
        kid = skipped.kid.as_deref().map(cap).unwrap_or_default(),
        kind = skipped.kind.as_str(),
        reason = %cap(&skipped.reason),
        "skipping unusable key in a remote JWKS"
    );
}

/// A serde_json error as a short reason, without input excerpts (serde_json puts none in its
/// messages, but unknown-variant errors quote the value: cap them).
fn json_reason(e: &serde_json::Error) -> String {
    cap(&e.to_string())
}

/// OpenID Connect discovery (OpenID Connect Discovery 1.0 §4): fetches
/// `{issuer}/.well-known/openid-configuration`, checks that its `issuer` is exactly the
/// configured one (§4.3), and returns its `jwks_uri`, checked like a configured URL.
pub(crate) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    timeout: Duration,
    limit: usize,
    allow_http: bool,
) -> Result<Url, JwksError> {
    #[derive(Deserialize)]
    struct Configuration {
        issuer: Option<String>,
        jwks_uri: Option<String>,
    }
    let config_url = check_url(
        &format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
        allow_http,
    )?;
    let shown = redact(&config_url);
    let (body, _) = get(client, &config_url, timeout, limit).await?;
    let discovery = |reason: String| JwksError::Discovery {
        url: shown.clone(),
        reason,
    };
    let config: Configuration =
        serde_json::from_slice(&body).map_err(|e| discovery(json_reason(&e)))?;
    match config.issuer.as_deref() {
        Some(found) if found == issuer => {}
        Some(found) => {
            return Err(discovery(format!(
                "the document names issuer `{}`, not the configured one",
                cap(found)
            )));
        }
        None => return Err(discovery("no `issuer`".into())),
    }
    let jwks_uri = config
        .jwks_uri
        .ok_or_else(|| discovery("no `jwks_uri`".into()))?;
    check_url(&jwks_uri, allow_http)
}

/// The `kid` of a compact JWS, read from its header without any crypto; `None` for anything
/// odd (oversize token or header, bad base64url, bad JSON, no or oversize `kid`).
pub(crate) fn peek_token_kid(token: &str) -> Option<String> {
    use base64::Engine as _;

    /// Longer tokens are not peeked (the validator's default cap is 8 KiB).
    const MAX_TOKEN: usize = 16 * 1024;
    /// A header is a few hundred bytes; a `kid` at most [`MAX_KID_LEN`].
    const MAX_HEADER: usize = 4 * 1024;

    #[derive(Deserialize)]
    struct Header {
        kid: Option<String>,
    }
    if token.len() > MAX_TOKEN {
        return None;
    }
    let (header, _) = token.split_once('.')?;
    if header.len() > MAX_HEADER {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let kid = serde_json::from_slice::<Header>(&json).ok()?.kid?;
    (!kid.is_empty() && kid.len() <= MAX_KID_LEN).then_some(kid)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::HeaderValue;

    fn cc(values: &[&str]) -> Freshness {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        freshness(&headers)
    }

    #[test]
    fn cache_control() {
        assert_eq!(cc(&[]), Freshness::Unspecified);
        assert_eq!(cc(&["public, max-age=3600"]), Freshness::MaxAge(3600));
        assert_eq!(cc(&["Max-Age = \"60\""]), Freshness::MaxAge(60));
        assert_eq!(cc(&["max-age=-5"]), Freshness::Unspecified);
        assert_eq!(cc(&["max-age=1e3"]), Freshness::Unspecified);
        assert_eq!(cc(&["max-age="]), Freshness::Unspecified);
        assert_eq!(
            cc(&["max-age=99999999999999999999999"]),
            Freshness::MaxAge(u64::MAX)
        );
        assert_eq!(cc(&["max-age=600", "no-cache"]), Freshness::NoCache);
        assert_eq!(cc(&["no-store, max-age=600"]), Freshness::NoCache);
    }

    #[test]
    fn urls() {
        assert!(check_url("https://idp.example/jwks", false).is_ok());
        assert!(matches!(
            check_url("http://idp.example/jwks", false),
            Err(JwksError::InsecureUrl { .. })
        ));
        assert!(check_url("http://127.0.0.1:8080/jwks", true).is_ok());
        for bad in [
            "ftp://idp.example/jwks",
            "https://user:pw@idp.example/jwks",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(check_url(bad, true), Err(JwksError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn peek_kid() {
        use base64::Engine as _;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = |h: &str| format!("{}.e30.sig", enc(h));
        assert_eq!(
            peek_token_kid(&token(r#"{"alg":"EdDSA","kid":"k1"}"#)).as_deref(),
            Some("k1")
        );
        assert_eq!(peek_token_kid(&token(r#"{"alg":"EdDSA"}"#)), None);
        assert_eq!(peek_token_kid(&token(r#"{"kid":""}"#)), None);
        assert_eq!(peek_token_kid(&token(r#"{"kid":7}"#)), None);
        assert_eq!(
            peek_token_kid(&token(&format!(r#"{{"kid":"{}"}}"#, "k".repeat(300)))),
            None
        );
        assert_eq!(peek_token_kid("garbage"), None);
        assert_eq!(peek_token_kid("%%%.e30.sig"), None);
        assert_eq!(peek_token_kid(""), None);
        let huge = format!("{}.e30.sig", "A".repeat(20_000));
        assert_eq!(peek_token_kid(&huge), None);
    }
}
