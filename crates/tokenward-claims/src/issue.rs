//! Issuing short-lived access tokens.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use crate::provider::backend::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use tokenward_core::{SharedClock, SystemClock};

use crate::claims::{Audience, REGISTERED_CLAIMS, RegisteredClaims};
use crate::key::KeyError;
use crate::keyset::{KeySet, SharedKeySet};
use crate::policy::whole_secs;
use crate::{alg, b64};

/// The default access-token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The key set has no active signing key.
    #[error("no active signing key")]
    NoSigningKey,
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A custom claim uses a registered claim's name, or custom claims are not a JSON object.
    #[error("custom claims: {0}")]
    CustomClaims(String),
    /// An issuer setting is invalid.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// What to put in one access token. `iss`, `iat`, `nbf`, `exp` and `jti` are always set by
/// the issuer.
#[derive(Debug, Clone)]
#[must_use]
pub struct AccessToken {
    sub: String,
    sid: Option<String>,
    scopes: Vec<String>,
    audience: Option<Audience>,
    ttl: Option<Duration>,
}

impl AccessToken {
    /// A token for subject `sub`.
    pub fn new(sub: impl Into<String>) -> Self {
        AccessToken {
            sub: sub.into(),
            sid: None,
            scopes: Vec::new(),
            audience: None,
            ttl: None,
        }
    }

    /// The session (refresh family) id, `sid`.
    pub fn sid(mut self, sid: impl Into<String>) -> Self {
        self.sid = Some(sid.into());
        self
    }

    /// Adds a scope (rendered as the space-separated `scope` claim).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Overrides the issuer's default audience.
    pub fn audience(mut self, aud: impl Into<Audience>) -> Self {
        self.audience = Some(aud.into());
        self
    }

    /// Overrides the issuer's default lifetime: whole seconds, at least one (otherwise
    /// [`TokenIssuer::issue`] fails with [`IssueError::Invalid`], field `ttl`).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A freshly issued token and the claims it carries.
#[non_exhaustive]
pub struct IssuedToken {
    /// The compact JWS. Treat it as a secret: never log it.
    pub token: String,
    /// Its registered claims.
    pub claims: RegisteredClaims,
    /// The `kid` that signed it.
    pub kid: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("claims", &self.claims)
            .field("kid", &self.kid)
            .finish()
    }
}

/// Issues access tokens signed by the active key of a key set.
///
/// Every token gets a random 128-bit `jti`, `iat` = `nbf` = now, `exp` = now + lifetime
/// (15 minutes by default), `iss`, `aud`, `sub`, optional `sid` and `scope`, and `kid` and
/// `typ` (`at+jwt`, RFC 9068) headers.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    keys: SharedKeySet,
    iss: String,
    aud: Option<Audience>,
    ttl: NonZeroU64,
    typ: String,
    clock: SharedClock,
    rng: SystemRandom,
}

/// A token lifetime in seconds: `exp` and `iat` are whole seconds, so a lifetime is too (a
/// fraction would be rounded, zero would make tokens that are born expired).
fn checked_ttl(ttl: Duration) -> Result<NonZeroU64, IssueError> {
    whole_secs(ttl)
        .and_then(NonZeroU64::new)
        .ok_or(IssueError::Invalid {
            field: "ttl",
            reason: "must be a positive number of whole seconds",
        })
}

/// Builder for [`TokenIssuer`].
#[derive(Debug)]
#[must_use]
pub struct TokenIssuerBuilder {
    keys: SharedKeySet,
    iss: String,
    aud: Vec<String>,
    ttl: Duration,
    typ: String,
    clock: SharedClock,
}

impl From<KeySet> for SharedKeySet {
    fn from(keys: KeySet) -> Self {
        SharedKeySet::new(keys)
    }
}

impl TokenIssuer {
    /// A builder for an issuer named `iss` signing with `keys`' active key.
    pub fn builder(keys: impl Into<SharedKeySet>, iss: impl Into<String>) -> TokenIssuerBuilder {
        TokenIssuerBuilder {
            keys: keys.into(),
            iss: iss.into(),
            aud: Vec::new(),
            ttl: DEFAULT_ACCESS_TTL,
            typ: "at+jwt".to_owned(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Issues a token with only registered claims.
    pub fn issue(&self, req: &AccessToken) -> Result<IssuedToken, IssueError> {
        self.issue_with(req, &serde_json::Map::new())
    }

    /// Issues a token with additional custom claims (serialized next to the registered ones;
    /// they must be a JSON object and must not use registered names).
    pub fn issue_with<C: Serialize>(
        &self,
        req: &AccessToken,
        custom: &C,
    ) -> Result<IssuedToken, IssueError> {
        let keys = self.keys.snapshot();
        let key = keys.active().ok_or(IssueError::NoSigningKey)?;

        let now = self.clock.now().as_secs();
        let ttl = match req.ttl {
            Some(ttl) => checked_ttl(ttl)?,
            None => self.ttl,
        };
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti).map_err(|_| KeyError::Rng)?;
        let scope = (!req.scopes.is_empty()).then(|| req.scopes.join(" "));
        let claims = RegisteredClaims {
            iss: Some(self.iss.clone()),
            sub: Some(req.sub.clone()),
            aud: req.audience.clone().or_else(|| self.aud.clone()),
            exp: Some(now.saturating_add(ttl.get())),
            nbf: Some(now),
            iat: Some(now),
            jti: Some(b64::encode(&jti)),
            sid: req.sid.clone(),
            scope,
        };

        let mut payload = match serde_json::to_value(&claims) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(IssueError::CustomClaims(
                    "registered claims did not serialize".into(),
                ));
            }
        };
        match serde_json::to_value(custom) {
            Ok(serde_json::Value::Object(extra)) => {
                for (name, value) in extra {
                    if REGISTERED_CLAIMS.contains(&name.as_str()) {
                        return Err(IssueError::CustomClaims(format!(
                            "`{name}` is a registered claim; set it through the issuer"
                        )));
                    }
                    payload.insert(name, value);
                }
            }
            Ok(_) => return Err(IssueError::CustomClaims("not a JSON object".into())),
            Err(e) => return Err(IssueError::CustomClaims(e.to_string())),
        }

        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let header = Header {
            alg: alg::name(key.algorithm()),
            typ: &self.typ,
            kid: key.kid(),
        };
        let header_json =
            serde_json::to_vec(&header).map_err(|e| IssueError::CustomClaims(e.to_string()))?;
        let payload_json =
            serde_json::to_vec(&payload).map_err(|e| IssueError::CustomClaims(e.to_string()))?;
        let mut token = b64::encode(&header_json);
        token.push('.');
        token.push_str(&b64::encode(&payload_json));
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64::encode(&signature));
        Ok(IssuedToken {
            token,
            claims,
            kid: key.kid().to_owned(),
        })
    }
}

impl TokenIssuerBuilder {
    /// Adds a default audience (call again for an `aud` array).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.aud.push(aud.into());
        self
    }

    /// The default lifetime (15 minutes unless set): whole seconds, at least one
    /// ([`build`](Self::build) fails otherwise, field `ttl`).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The `typ` header (`at+jwt` unless set; `JWT` for older consumers).
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = typ.into();
        self
    }

    /// The clock for `iat`/`nbf`/`exp`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings and builds the issuer; a setting out of range is an error naming
    /// it, never adjusted silently.
    pub fn build(self) -> Result<TokenIssuer, IssueError> {
        if self.iss.is_empty() {
            return Err(IssueError::Invalid {
                field: "iss",
                reason: "empty issuer",
            });
        }
        let ttl = checked_ttl(self.ttl)?;
        let aud = match self.aud.len() {
            0 => None,
            1 => self.aud.into_iter().next().map(Audience::One),
            _ => Some(Audience::Many(self.aud)),
        };
        Ok(TokenIssuer {
            keys: self.keys,
            iss: self.iss,
            aud,
            ttl,
            typ: self.typ,
            clock: self.clock,
            rng: SystemRandom::new(),
        })
    }
}
