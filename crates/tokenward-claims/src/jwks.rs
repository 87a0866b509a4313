//! Key sets as providers publish them: one JWKS loader for local files, remote sets and the CLI.
//!
//! Identity providers publish more than signature keys: Keycloak lists an `RSA-OAEP`
//! encryption key beside each signing key, Entra ID omits `alg` and adds `x5t`, `x5c`,
//! `issuer` and `cloud_instance_name`. [`KeySet::load_jwks`] loads what tokenward can verify
//! with and reports every other key with the reason it was skipped ([`JwksLoad::skipped`]).

use std::fmt;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::alg;
use crate::key::{Key, KeyError, json_error};
use crate::keyset::{KeySet, KeySetError};

/// How a JWKS document is loaded; the defaults suit a key set the operator configured.
///
/// ```
/// use tokenward_claims::{Algorithm, JwksOptions, KeySet};
///
/// // An RSA key without `alg`, as Entra ID publishes them, plus Keycloak's encryption key.
/// // A 2048-bit modulus (any odd one will do for the example).
/// let n = format!("{}wQ", "wcHB".repeat(85));
/// let jwks = format!(r#"{{"keys":[
///   {{"kty":"RSA","use":"sig","kid":"sig-1","x5t":"abc","n":"{n}","e":"AQAB","issuer":"https://login.microsoftonline.com/{{tenantid}}/v2.0"}},
///   {{"kty":"RSA","use":"enc","alg":"RSA-OAEP","kid":"enc-1","n":"{n}","e":"AQAB"}}
/// ]}}"#);
/// let load = KeySet::load_jwks(jwks.as_bytes(), &JwksOptions::new())?;
/// assert_eq!(load.keys.get("sig-1").map(|k| k.algorithm()), Some(Algorithm::RS256));
/// assert_eq!(load.skipped.len(), 1);
/// assert_eq!(load.skipped[0].kid.as_deref(), Some("enc-1"));
///
/// // The same keys, for a provider that signs with PS256 without saying so.
/// let ps = KeySet::load_jwks(jwks.as_bytes(), &JwksOptions::new().rsa_alg(Algorithm::PS256))?;
/// assert_eq!(ps.keys.get("sig-1").map(|k| k.algorithm()), Some(Algorithm::PS256));
/// # Ok::<(), tokenward_claims::KeySetError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct JwksOptions {
    rsa_alg: Option<Algorithm>,
    public_only: bool,
    skip_invalid: bool,
}

impl JwksOptions {
    /// The defaults: RSA keys without `alg` bind to RS256; `oct` secrets load; a broken key
    /// (malformed, weak, no `kid`, duplicate `kid`) fails the whole load, so a typo in a
    /// configured key set is found at startup.
    pub fn new() -> Self {
        JwksOptions::default()
    }

    /// The algorithm RSA keys without `alg` are bound to (default RS256): one of RS256/384/512
    /// or PS256/384/512. Anything else — an HMAC algorithm above all — makes the load fail
    /// ([`KeyError::AlgorithmMismatch`]; see [`check`](Self::check)).
    pub fn rsa_alg(mut self, alg: Algorithm) -> Self {
        self.rsa_alg = Some(alg);
        self
    }

    /// Skips `oct` (symmetric) keys: for key sets someone else publishes, where a secret is no
    /// secret.
    pub fn public_only(mut self) -> Self {
        self.public_only = true;
        self
    }

    /// Skips broken keys (malformed, weak, without `kid`, a duplicate `kid`) instead of failing:
    /// for key sets someone else publishes, where one odd key must not take down the others.
    pub fn skip_invalid(mut self) -> Self {
        self.skip_invalid = true;
        self
    }

    /// The algorithm RSA keys without `alg` bind to.
    pub fn rsa_default(&self) -> Algorithm {
        self.rsa_alg.unwrap_or(Algorithm::RS256)
    }

    /// Checks the settings: the RSA default must be an RSA signature algorithm.
    pub fn check(&self) -> Result<(), KeyError> {
        let alg = self.rsa_default();
        if alg.family() == AlgorithmFamily::Rsa {
            Ok(())
        } else {
            Err(KeyError::AlgorithmMismatch {
                alg,
                reason: "keys without `alg` are bound to RS256/384/512 or PS256/384/512 only \
                         (never to an HMAC algorithm)"
                    .into(),
            })
        }
    }
}

/// Why a JWK was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipKind {
    /// An encryption key: `use` other than `sig`, `key_ops` without `verify`, a JWE `alg`
    /// (`RSA-OAEP`, `ECDH-ES`, ...), or a key-agreement curve (X25519).
    Encryption,
    /// A key type, curve or algorithm tokenward does not verify with (P-521/ES512, Ed448,
    /// `kty` `AKP`, ...).
    Unsupported,
    /// A symmetric (`oct`) key in a set loaded with [`JwksOptions::public_only`].
    Symmetric,
    /// A broken key, skipped under [`JwksOptions::skip_invalid`] (otherwise the load fails).
    Invalid,
}

impl SkipKind {
    /// A stable name: `encryption`, `unsupported`, `symmetric` or `invalid`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipKind::Encryption => "encryption",
            SkipKind::Unsupported => "unsupported",
            SkipKind::Symmetric => "symmetric",
            SkipKind::Invalid => "invalid",
        }
    }
}

/// A key of a JWKS document that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedKey {
    /// Its position in the document's `keys` array.
    pub index: usize,
    /// Its `kid`, if it had a string one (at most 64 characters, control characters removed).
    pub kid: Option<String>,
    /// The kind of reason.
    pub kind: SkipKind,
    /// The reason, for operators (never key material).
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key #{}", self.index)?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid {kid:?})")?;
        }
        write!(f, " skipped: {}", self.reason)
    }
}

/// The result of [`KeySet::load_jwks`]: the usable keys and the skipped ones.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksLoad {
    /// The keys tokenward verifies with.
    pub keys: KeySet,
    /// Every other key, with its reason, in document order.
    pub skipped: Vec<SkippedKey>,
}

/// JWE key-management algorithms (RFC 7518 §4.1): a key with one of these encrypts.
const JWE_ALGS: [&str; 17] = [
    "RSA1_5",
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA-OAEP-384",
    "RSA-OAEP-512",
    "A128KW",
    "A192KW",
    "A256KW",
    "dir",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
    "PBES2-HS256+A128KW",
];

/// The members of a JWK that decide whether and how it loads, read before the key itself.
#[derive(Deserialize)]
struct Peek {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
}

/// A short, printable form of a string from a document (a `kid`).
pub(crate) fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

enum Outcome {
    Skip(SkipKind, String),
    Fail(KeySetError),
}

fn skip(kind: SkipKind, reason: impl Into<String>) -> Outcome {
    Outcome::Skip(kind, reason.into())
}

/// The algorithm a JWK binds to, or why it is skipped. The algorithm comes from the JWK's
/// `alg` or from its key type, never from a token.
fn binding(peek: &Peek, options: &JwksOptions) -> Result<Option<Algorithm>, Outcome> {
    if let Some(u) = peek.use_.as_deref()
        && u != "sig"
    {
        let shown_use = if u == "enc" { "`enc`" } else { "not `sig`" };
        return Err(skip(SkipKind::Encryption, format!("`use` is {shown_use}")));
    }
    if let Some(ops) = &peek.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err(skip(
            SkipKind::Encryption,
            "`key_ops` do not include `verify`",
        ));
    }
    let declared = match peek.alg.as_deref() {
        None => None,
        Some(a) => {
            if let Some(jwe) = JWE_ALGS.iter().find(|j| **j == a) {
                return Err(skip(
                    SkipKind::Encryption,
                    format!("`alg` {jwe} is an encryption algorithm"),
                ));
            }
            if a.starts_with("PBES2") || a.starts_with("ECDH-ES") {
                return Err(skip(
                    SkipKind::Encryption,
                    "`alg` is an encryption algorithm",
                ));
            }
            Some(alg::parse(a).ok_or_else(|| {
                skip(
                    SkipKind::Unsupported,
                    "`alg` is not a signature algorithm tokenward verifies with",
                )
            })?)
        }
    };
    let crv = peek.crv.as_deref().unwrap_or("");
    let implied = match peek.kty.as_deref() {
        Some("RSA") => Some(options.rsa_default()),
        Some("EC") => match crv {
            "P-256" => Some(Algorithm::ES256),
            "P-384" => Some(Algorithm::ES384),
            "P-521" => return Err(skip(SkipKind::Unsupported, "EC curve P-521 (ES512)")),
            _ => return Err(skip(SkipKind::Unsupported, "unsupported EC curve")),
        },
        Some("OKP") => match crv {
            "Ed25519" => Some(Algorithm::EdDSA),
            "X25519" | "X448" => {
                return Err(skip(
                    SkipKind::Encryption,
                    "key-agreement curve (X25519/X448)",
                ));
            }
            _ => return Err(skip(SkipKind::Unsupported, "unsupported OKP curve")),
        },
        Some("oct") if options.public_only => {
            return Err(skip(SkipKind::Symmetric, "symmetric (`oct`) key"));
        }
        // HMAC is never implied: an `oct` key binds only through its own `alg`.
        Some("oct") => None,
        Some(_) => return Err(skip(SkipKind::Unsupported, "unsupported `kty`")),
        None => {
            return Err(Outcome::Fail(KeySetError::Key(KeyError::UnusableJwk(
                "no `kty`".into(),
            ))));
        }
    };
    Ok(declared.or(implied))
}

fn load_one(raw: &str, options: &JwksOptions) -> Result<Key, Outcome> {
    let peek: Peek = serde_json::from_str(raw)
        .map_err(|e| Outcome::Fail(KeySetError::Key(KeyError::Malformed(json_error("JWK", &e)))))?;
    let bound = binding(&peek, options)?;
    let jwk: Jwk = serde_json::from_str(raw)
        .map_err(|e| Outcome::Fail(KeySetError::Key(KeyError::Malformed(json_error("JWK", &e)))))?;
    Key::from_jwk(&jwk, None, bound).map_err(|e| Outcome::Fail(KeySetError::Key(e)))
}

impl KeySet {
    /// Loads a JWKS document (JSON bytes) as providers publish it, reporting skipped keys.
    ///
    /// - A JWK with `alg` binds to it; without, to the one algorithm its key type implies:
    ///   RSA → RS256 (or [`JwksOptions::rsa_alg`]), EC P-256 → ES256, P-384 → ES384, OKP
    ///   Ed25519 → EdDSA. Never to an HMAC algorithm: an `oct` key needs its own `alg`.
    /// - Skipped (in [`JwksLoad::skipped`], never an error): encryption keys (`use` other
    ///   than `sig`, `key_ops` without `verify`, a JWE `alg` such as `RSA-OAEP`, X25519), key
    ///   types tokenward does not verify with (P-521, Ed448, unknown `kty` or `alg`), and with
    ///   [`JwksOptions::public_only`] `oct` keys.
    /// - `x5c`, `x5t`, `x5t#S256`, `x5u`, `issuer`, `cloud_instance_name` and other members
    ///   are tolerated and never used: a key is its `n`/`e`, `x`/`y` or `x` alone.
    /// - A broken key (malformed, weak, without `kid`, a duplicate `kid`) fails the load,
    ///   unless [`JwksOptions::skip_invalid`].
    /// - A document that lists keys none of which is usable is
    ///   [`KeySetError::NoUsableKeys`].
    ///
    /// It logs nothing; the caller reports `skipped` ([`KeySet::from_jwks_json`] as `tracing`
    /// warnings, `tokenward-jwks` with the URL, the CLI on stderr).
    pub fn load_jwks(json: &[u8], options: &JwksOptions) -> Result<JwksLoad, KeySetError> {
        #[derive(Deserialize)]
        struct Document<'a> {
            #[serde(borrow)]
            keys: Vec<&'a RawValue>,
        }
        options.check()?;
        let text = std::str::from_utf8(json)
            .map_err(|_| KeySetError::MalformedJwks("JWKS: not UTF-8".into()))?;
        let document: Document<'_> = serde_json::from_str(text)
            .map_err(|e| KeySetError::MalformedJwks(json_error("JWKS", &e)))?;
        let mut keys = KeySet::new();
        let mut skipped = Vec::new();
        for (index, raw) in document.keys.iter().enumerate() {
            let kid = || {
                serde_json::from_str::<Peek>(raw.get())
                    .ok()
                    .and_then(|p| p.kid)
                    .map(|k| shown(&k))
            };
            let outcome = load_one(raw.get(), options).and_then(|key| {
                let kid = key.kid().to_owned();
                keys.insert(key).map_err(|e| match e {
                    KeySetError::DuplicateKid(_) if options.skip_invalid => skip(
                        SkipKind::Invalid,
                        format!("duplicate kid {:?}; the first is kept", shown(&kid)),
                    ),
                    other => Outcome::Fail(other),
                })
            });
            match outcome {
                Ok(()) => {}
                Err(Outcome::Skip(kind, reason)) => skipped.push(SkippedKey {
                    index,
                    kid: kid(),
                    kind,
                    reason,
                }),
                Err(Outcome::Fail(e)) if options.skip_invalid => skipped.push(SkippedKey {
                    index,
                    kid: kid(),
                    kind: SkipKind::Invalid,
                    reason: e.to_string().chars().take(200).collect(),
                }),
                Err(Outcome::Fail(e)) => return Err(e),
            }
        }
        if keys.is_empty() && !skipped.is_empty() {
            return Err(KeySetError::NoUsableKeys(skipped));
        }
        Ok(JwksLoad { keys, skipped })
    }
}
