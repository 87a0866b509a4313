//! Issuers and their key sources in configuration (see [`IssuerConfig`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokenward_claims::{
    Algorithm, IssuerRouter, JwksOptions, Key, KeySet, Profile, ValidationPolicy, Validator,
};
use tokenward_core::SharedClock;

use crate::config::{ConfigError, GuardConfig};
use crate::verifier::{KeySource, Verifier};

/// One `[[issuers]]` entry of a [`GuardConfig`]: an issuer (exact, or a `{tenantid}`
/// template), the audiences its tokens must name, its profile and **its own** key source.
///
/// Several entries become an [`IssuerRouter`]: a token is verified only with the keys of the
/// entry its `iss` names, so issuer A's token signed with issuer B's key is refused.
///
/// ```
/// use tokenward_guard::GuardConfig;
///
/// let config: GuardConfig = toml::from_str(r#"
///     [[issuers]]
///     issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
///     audiences = ["api://orders"]
///     tenants = ["9188040d-6c67-4c5b-b112-36a304b66dad"]
///     profile = "entra"
///     ## a saved copy of https://login.microsoftonline.com/common/discovery/v2.0/keys
///     ## (with the `jwks` feature: jwks_url = "https://login.microsoftonline.com/...")
///     keys = { jwks_file = "entra-keys.json" }
///
///     [[issuers]]
///     issuer = "https://legacy.example.com"
///     audiences = ["orders"]
///     keys = { hmac_secret_env = "LEGACY_JWT_SECRET" }
/// "#)?;
/// assert_eq!(config.issuers.len(), 2);
/// config.validate()?; // checks names and shapes; keys are loaded by `load_verifier`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// The issuer: exact, or with a `{tenantid}` placeholder (Entra multi-tenant).
    pub issuer: String,
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Tenants a `{tenantid}` issuer is restricted to (empty: any tenant whose `tid` equals
    /// the one in `iss`).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The provider profile (default: [`GuardConfig::profile`], else none).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Where this issuer's keys come from.
    pub keys: KeysConfig,
}

/// Where an issuer's keys come from: exactly one of `jwks_file`, `jwks_url`, `discovery`,
/// `hmac_secret_file`, `hmac_secret_env`.
///
/// An HMAC secret is read at startup from the file or the environment variable; the
/// configuration holds only its location, and the secret itself is never logged nor put in
/// an error (a `tracing` event gives its [`fingerprint`](crate::fingerprint)). `jwks_url` and
/// `discovery` need tokenward-guard's `jwks` feature: the keys are fetched at startup (an
/// error if that fails), refreshed in the background, and refetched on an unknown `kid` when
/// the configuration names a single issuer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeysConfig {
    /// A JWKS document on disk, loaded as providers publish them.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS document at an `https://` URL.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// An OpenID Connect issuer: `<discovery>/.well-known/openid-configuration` → `jwks_uri`
    /// (the document's `issuer` must equal this value).
    #[serde(default)]
    pub discovery: Option<String>,
    /// A file holding an HMAC secret (one trailing newline is ignored).
    #[serde(default)]
    pub hmac_secret_file: Option<PathBuf>,
    /// An environment variable holding an HMAC secret.
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    /// The HMAC algorithm: `HS256` (default), `HS384` or `HS512`.
    #[serde(default)]
    pub hmac_alg: Option<String>,
    /// The `kid` of the HMAC key (default `default`; tokens without `kid` still verify, the
    /// key being the only one of the set).
    #[serde(default)]
    pub kid: Option<String>,
    /// The algorithm of RSA keys published without `alg` (default `RS256`).
    #[serde(default)]
    pub rsa_alg: Option<String>,
    /// Also fetch `jwks_url`/`discovery` over plain `http://` (a local test issuer). Anyone
    /// on the path can then replace the keys, and with them forge every token: never in
    /// production.
    #[serde(default)]
    pub dangerous_allow_http: bool,
}

/// The key source of one entry, checked.
enum Source<'a> {
    JwksFile(&'a PathBuf),
    JwksUrl(&'a str),
    Discovery(&'a str),
    SecretFile(&'a PathBuf),
    SecretEnv(&'a str),
}

impl KeysConfig {
    fn source(&self, field: &str) -> Result<Source<'_>, ConfigError> {
        let set = [
            self.jwks_file.as_ref().map(Source::JwksFile),
            self.jwks_url.as_deref().map(Source::JwksUrl),
            self.discovery.as_deref().map(Source::Discovery),
            self.hmac_secret_file.as_ref().map(Source::SecretFile),
            self.hmac_secret_env.as_deref().map(Source::SecretEnv),
        ];
        let mut set = set.into_iter().flatten();
        let (Some(source), None) = (set.next(), set.next()) else {
            return Err(ConfigError::new(
                field,
                "name exactly one of jwks_file, jwks_url, discovery, hmac_secret_file, \
                 hmac_secret_env",
            ));
        };
        let hmac = matches!(source, Source::SecretFile(_) | Source::SecretEnv(_));
        if !hmac && (self.hmac_alg.is_some() || self.kid.is_some()) {
            let name = if self.kid.is_some() {
                "kid"
            } else {
                "hmac_alg"
            };
            return Err(ConfigError::new(
                format!("{field}.{name}"),
                "only for an HMAC secret (a JWKS names its own keys)",
            ));
        }
        let remote = matches!(source, Source::JwksUrl(_) | Source::Discovery(_));
        if !remote && self.dangerous_allow_http {
            return Err(ConfigError::new(
                format!("{field}.dangerous_allow_http"),
                "only for jwks_url or discovery",
            ));
        }
        if hmac && self.rsa_alg.is_some() {
            return Err(ConfigError::new(
                format!("{field}.rsa_alg"),
                "only for a JWKS",
            ));
        }
        Ok(source)
    }

    fn hmac_alg(&self, field: &str) -> Result<Algorithm, ConfigError> {
        match self.hmac_alg.as_deref() {
            None => Ok(Algorithm::HS256),
            Some(name) => tokenward_claims::alg::parse(name)
                .filter(|a| tokenward_claims::alg::is_hmac(*a))
                .ok_or_else(|| {
                    ConfigError::new(format!("{field}.hmac_alg"), "must be HS256, HS384 or HS512")
                }),
        }
    }

    fn rsa_alg(&self, field: &str) -> Result<Option<Algorithm>, ConfigError> {
        let Some(name) = self.rsa_alg.as_deref() else {
            return Ok(None);
        };
        let bad = || {
            ConfigError::new(
                format!("{field}.rsa_alg"),
                "must be RS256/384/512 or PS256/384/512",
            )
        };
        let alg = tokenward_claims::alg::parse(name).ok_or_else(bad)?;
        JwksOptions::new().rsa_alg(alg).check().map_err(|_| bad())?;
        Ok(Some(alg))
    }

    /// Checks everything that can be checked without reading files or the network.
    fn check(&self, field: &str) -> Result<(), ConfigError> {
        self.source(field)?;
        self.hmac_alg(field)?;
        self.rsa_alg(field)?;
        #[cfg(not(feature = "jwks"))]
        if self.jwks_url.is_some() || self.discovery.is_some() {
            return Err(ConfigError::new(
                field,
                "jwks_url and discovery need tokenward-guard's `jwks` feature",
            ));
        }
        Ok(())
    }

    /// Loads the keys (reads the file or the variable, or fetches the remote key set).
    async fn load(&self, field: &str) -> Result<KeySource, ConfigError> {
        let options = match self.rsa_alg(field)? {
            Some(alg) => JwksOptions::new().rsa_alg(alg),
            None => JwksOptions::new(),
        };
        match self.source(field)? {
            Source::JwksFile(path) => {
                let f = format!("{field}.jwks_file");
                let bytes = std::fs::read(path).map_err(|e| {
                    ConfigError::new(&f, format!("cannot read {}: {e}", path.display()))
                })?;
                let load = KeySet::load_jwks(&bytes, &options)
                    .map_err(|e| ConfigError::new(&f, e.to_string()))?;
                for s in &load.skipped {
                    tracing::warn!(
                        target: "tokenward::keys",
                        field = f.as_str(),
                        kid = s.kid.as_deref().unwrap_or(""),
                        reason = %s.reason,
                        "skipped a JWK that tokenward does not verify with"
                    );
                }
                Ok(KeySource::from(load.keys))
            }
            Source::JwksUrl(url) => remote(field, "jwks_url", url, false, self).await,
            Source::Discovery(issuer) => remote(field, "discovery", issuer, true, self).await,
            Source::SecretFile(path) => {
                let f = format!("{field}.hmac_secret_file");
                let mut secret = std::fs::read(path).map_err(|e| {
                    ConfigError::new(&f, format!("cannot read {}: {e}", path.display()))
                })?;
                if secret.last() == Some(&b'\n') {
                    secret.pop();
                    if secret.last() == Some(&b'\r') {
                        secret.pop();
                    }
                }
                self.hmac_key(&f, &secret)
            }
            Source::SecretEnv(name) => {
                let f = format!("{field}.hmac_secret_env");
                let secret = std::env::var_os(name).ok_or_else(|| {
                    ConfigError::new(&f, format!("the environment variable {name} is not set"))
                })?;
                self.hmac_key(&f, secret.as_encoded_bytes())
            }
        }
    }

    fn hmac_key(&self, field: &str, secret: &[u8]) -> Result<KeySource, ConfigError> {
        let alg = self.hmac_alg(field)?;
        let kid = self.kid.as_deref().unwrap_or("default");
        // The key's error never quotes the secret; say only what is wrong with it.
        let key = Key::hmac(kid, alg, secret).map_err(|_| {
            ConfigError::new(
                field,
                format!(
                    "not a usable {} secret (at least {} bytes) or a bad kid",
                    tokenward_claims::alg::name(alg),
                    min_secret_len(alg)
                ),
            )
        })?;
        tracing::info!(
            target: "tokenward::keys",
            field,
            kid,
            fingerprint = %crate::audit::fingerprint_bytes(secret),
            "loaded an HMAC secret"
        );
        Ok(KeySource::from(KeySet::single(key)))
    }
}

fn min_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

#[cfg(feature = "jwks")]
async fn remote(
    field: &str,
    name: &str,
    location: &str,
    discovery: bool,
    keys: &KeysConfig,
) -> Result<KeySource, ConfigError> {
    use tokenward_jwks::{JwksSource, RemoteKeySet};
    let f = format!("{field}.{name}");
    let source = if discovery {
        JwksSource::oidc_issuer(location)
    } else {
        JwksSource::url(location)
    };
    let mut b = RemoteKeySet::builder(source).dangerous_allow_http(keys.dangerous_allow_http);
    if let Some(alg) = keys.rsa_alg(field)? {
        b = b.rsa_alg(alg);
    }
    let remote = b
        .start()
        .await
        .map_err(|e| ConfigError::new(&f, e.to_string()))?;
    Ok(KeySource::from(remote))
}

#[cfg(not(feature = "jwks"))]
async fn remote(
    field: &str,
    name: &str,
    _location: &str,
    _discovery: bool,
    _keys: &KeysConfig,
) -> Result<KeySource, ConfigError> {
    Err(ConfigError::new(
        format!("{field}.{name}"),
        "needs tokenward-guard's `jwks` feature",
    ))
}

impl IssuerConfig {
    /// The policy of this entry: its issuer, audiences, tenants and profile, with the shared
    /// settings of `config.validation` (leeway, max lifetime, token size, `typ`).
    pub(crate) fn policy(
        &self,
        config: &GuardConfig,
        field: &str,
        clock: Option<SharedClock>,
    ) -> Result<ValidationPolicy, ConfigError> {
        if self.audiences.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.audiences"),
                "at least one audience is required",
            ));
        }
        config.build_policy(
            field,
            std::slice::from_ref(&self.issuer),
            &self.audiences,
            &self.tenants,
            self.profile.or(config.profile),
            clock,
        )
    }

    pub(crate) fn check(&self, config: &GuardConfig, field: &str) -> Result<(), ConfigError> {
        self.policy(config, field, None)?;
        self.keys.check(&format!("{field}.keys"))
    }
}

impl GuardConfig {
    /// The [`Verifier`] of the `[[issuers]]` entries, loading each entry's keys (reading
    /// files and environment variables, fetching remote key sets — an error naming the entry
    /// if one cannot be loaded). One entry verifies with its key source (a remote key set is
    /// refetched on an unknown `kid`); several become an [`IssuerRouter`], each issuer with
    /// its own keys (remote key sets are refreshed in the background).
    ///
    /// Without `[[issuers]]` there are no keys to load: the error names `issuers` (give the
    /// keys to [`guard_builder`](GuardConfig::guard_builder) instead).
    pub async fn load_verifier(&self, clock: Option<SharedClock>) -> Result<Verifier, ConfigError> {
        self.validate()?;
        let mut loaded = Vec::with_capacity(self.issuers.len());
        for (i, entry) in self.issuers.iter().enumerate() {
            let field = format!("issuers[{i}]");
            let policy = entry.policy(self, &field, clock.clone())?;
            let keys = entry.keys.load(&format!("{field}.keys")).await?;
            loaded.push((field, policy, keys));
        }
        match <[_; 1]>::try_from(loaded) {
            Ok([(_, policy, keys)]) => Ok(Verifier::new(policy, keys)),
            Err(loaded) if loaded.is_empty() => Err(ConfigError::new(
                "issuers",
                "no [[issuers]] entry names its keys; pass the keys to guard_builder",
            )),
            Err(loaded) => {
                let mut router = IssuerRouter::new();
                for (field, policy, keys) in loaded {
                    let validator = match keys {
                        KeySource::Fixed(k) => Validator::with_resolver(policy, k),
                        KeySource::Refetching(k) => Validator::new(policy, k),
                    };
                    router = router
                        .route(validator)
                        .map_err(|e| ConfigError::new(format!("{field}.issuer"), e.to_string()))?;
                }
                Ok(Verifier::from(router))
            }
        }
    }
}
