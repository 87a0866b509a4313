//! Key sets: keys by `kid`, one active signer, verify-only (retired) keys, JWKS in and out.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;

use crate::jwks::{JwksOptions, SkippedKey};
use crate::key::{Key, KeyError};

/// Errors from building or changing a [`KeySet`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A key with this `kid` is already in the set (keys are immutable: add a new `kid`).
    #[error("duplicate kid `{0}`")]
    DuplicateKid(String),
    /// No key with this `kid`.
    #[error("no key with kid `{0}`")]
    UnknownKid(String),
    /// The key cannot be the active signer (it holds no private key or secret).
    #[error("key `{0}` cannot sign, so it cannot be the active key")]
    CannotSign(String),
    /// The active key cannot be removed; activate another key first.
    #[error("key `{0}` is the active signing key; activate another key before removing it")]
    RemovingActive(String),
    /// A JWKS document did not parse.
    #[error("malformed JWKS: {0}")]
    MalformedJwks(String),
    /// A JWKS document lists keys, but none tokenward can verify with (each skipped, with its
    /// reason).
    #[error("no usable key in the JWKS: {}", skipped_list(.0))]
    NoUsableKeys(Vec<SkippedKey>),
    /// A JWKS document could not be written as JSON.
    #[error("serializing the JWKS failed")]
    Serialize(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

fn skipped_list(skipped: &[SkippedKey]) -> String {
    skipped
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Keys by `kid`, each bound to one algorithm; at most one of them is the active signer.
///
/// Every key verifies; only the active key signs. Rotation overlaps, so users never notice:
///
/// 1. [`insert`](KeySet::insert) the new key (it verifies from now on; publish the JWKS so
///    other services learn it);
/// 2. [`activate`](KeySet::activate) it (new tokens are signed with it; tokens of the old key
///    still verify — the old key is now *retired*, verify-only);
/// 3. after the longest token lifetime has passed, [`remove`](KeySet::remove) the old key.
///
/// ```
/// use tokenward_claims::{Algorithm, Key, KeySet};
///
/// let mut keys = KeySet::new();
/// keys.insert(Key::hmac("2026-01", Algorithm::HS256, &[7u8; 32])?)?;
/// keys.activate("2026-01")?;
/// keys.insert(Key::hmac("2026-02", Algorithm::HS256, &[9u8; 32])?)?;
/// keys.activate("2026-02")?;            // 2026-01 is now retired: verify-only
/// assert_eq!(keys.active().map(|k| k.kid()), Some("2026-02"));
/// assert!(keys.get("2026-01").is_some());
/// keys.remove("2026-01")?;               // after the longest token lifetime
/// assert!(keys.get("2026-01").is_none());
/// # Ok::<(), tokenward_claims::KeySetError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: BTreeMap<String, Arc<Key>>,
    active: Option<String>,
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        KeySet::default()
    }

    /// A key set holding one key, active when it can sign.
    pub fn single(key: Key) -> Self {
        let mut set = KeySet::new();
        let can_sign = key.can_sign();
        let kid = key.kid().to_owned();
        set.keys.insert(kid.clone(), Arc::new(key));
        if can_sign {
            set.active = Some(kid);
        }
        set
    }

    /// Adds a key (verify-only until [`activate`](KeySet::activate)d).
    pub fn insert(&mut self, key: Key) -> Result<(), KeySetError> {
        if self.keys.contains_key(key.kid()) {
            return Err(KeySetError::DuplicateKid(key.kid().to_owned()));
        }
        self.keys.insert(key.kid().to_owned(), Arc::new(key));
        Ok(())
    }

    /// Makes `kid` the signing key; the previously active key stays as a verify-only key.
    pub fn activate(&mut self, kid: &str) -> Result<(), KeySetError> {
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| KeySetError::UnknownKid(kid.to_owned()))?;
        if !key.can_sign() {
            return Err(KeySetError::CannotSign(kid.to_owned()));
        }
        self.active = Some(kid.to_owned());
        Ok(())
    }

    /// Removes a retired key: tokens it signed stop verifying (class `key`).
    pub fn remove(&mut self, kid: &str) -> Result<Arc<Key>, KeySetError> {
        if self.active.as_deref() == Some(kid) {
            return Err(KeySetError::RemovingActive(kid.to_owned()));
        }
        self.keys
            .remove(kid)
            .ok_or_else(|| KeySetError::UnknownKid(kid.to_owned()))
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<Key>> {
        self.keys.get(kid)
    }

    /// The active signing key.
    pub fn active(&self) -> Option<&Arc<Key>> {
        self.active.as_deref().and_then(|kid| self.keys.get(kid))
    }

    /// All keys, by `kid`.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.keys.values()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The algorithms of the keys in the set.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = Vec::new();
        for k in self.keys.values() {
            if !algs.contains(&k.algorithm()) {
                algs.push(k.algorithm());
            }
        }
        algs
    }

    /// Loads a JWKS document (JSON text), public or `oct` keys, as providers publish it: the
    /// rules of [`KeySet::load_jwks`] with the default [`JwksOptions`]. Each skipped key
    /// (encryption keys, unsupported key types) is a `tracing` warning (target
    /// `tokenward::keys`); a broken key fails the whole load, so a typo in a configured key
    /// set is found at startup.
    pub fn from_jwks_json(json: &str) -> Result<KeySet, KeySetError> {
        let load = KeySet::load_jwks(json.as_bytes(), &JwksOptions::new())?;
        for s in &load.skipped {
            tracing::warn!(
                target: "tokenward::keys",
                index = s.index,
                kid = s.kid.as_deref().unwrap_or(""),
                kind = s.kind.as_str(),
                reason = %s.reason,
                "skipping a JWK tokenward does not verify with"
            );
        }
        Ok(load.keys)
    }

    /// Loads a parsed JWKS; see [`KeySet::from_jwks_json`].
    pub fn from_jwks(jwks: &JwkSet) -> Result<KeySet, KeySetError> {
        let json = serde_json::to_string(jwks).map_err(|e| KeySetError::Serialize(e.into()))?;
        KeySet::from_jwks_json(&json)
    }

    /// The public keys as a JWKS document (HMAC keys are never included).
    pub fn public_jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.values().filter_map(|k| k.public_jwk()).collect(),
        }
    }

    /// The public keys as JWKS JSON text, what a `/.well-known/jwks.json` endpoint serves and
    /// [`KeySet::from_jwks_json`] reads back (HMAC keys are never included; keys in `kid`
    /// order).
    ///
    /// ```
    /// use tokenward_claims::{Algorithm, Key, KeySet, generate_pkcs8};
    ///
    /// let pkcs8 = generate_pkcs8(Algorithm::EdDSA)?;
    /// let mut keys = KeySet::single(Key::from_pkcs8_der("2026-11", Algorithm::EdDSA, &pkcs8)?);
    /// keys.insert(Key::hmac("shared", Algorithm::HS256, &[7u8; 32])?)?;
    /// let json = keys.public_jwks_json()?;
    /// assert!(json.starts_with(r#"{"keys":[{"#) && !json.contains(r#""kty":"oct""#));
    /// let published = KeySet::from_jwks_json(&json)?;
    /// assert_eq!(published.len(), 1);
    /// assert!(!published.get("2026-11").is_some_and(|k| k.can_sign()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn public_jwks_json(&self) -> Result<String, KeySetError> {
        serde_json::to_string(&self.public_jwks()).map_err(|e| KeySetError::Serialize(e.into()))
    }

    /// The HMAC keys **with their secrets** as a JWKS document; only for distributing shared
    /// secrets to services that must verify HS* tokens.
    pub fn dangerous_secret_jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .values()
                .filter_map(|k| k.dangerous_secret_jwk())
                .collect(),
        }
    }
}

/// Where a validator finds the key for a token.
///
/// [`KeySet`] and [`SharedKeySet`] implement it; remote key sets (JWKS fetched over HTTP) do
/// in their own crate. Implementations must be cheap: it is called once per verification.
pub trait KeyResolver: Send + Sync + 'static {
    /// The key for `kid`, or `None` when there is no such key.
    ///
    /// `kid` is `None` for tokens without a `kid` header; return a key for that only when the
    /// choice is unambiguous (a resolver holding exactly one key).
    fn resolve(&self, kid: Option<&str>) -> Option<Arc<Key>>;

    /// The key for a token with `kid` (or none) and header algorithm `alg`. The validator
    /// calls this; the key's own algorithm must still equal `alg`.
    ///
    /// For a token without `kid`, return a key only when exactly one key of the set is bound
    /// to `alg` ([`KeySet`] does). The default asks [`resolve`](Self::resolve).
    fn resolve_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        let _ = alg;
        self.resolve(kid)
    }
}

impl KeyResolver for KeySet {
    fn resolve(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        match kid {
            Some(kid) => self.keys.get(kid).cloned(),
            None if self.keys.len() == 1 => self.keys.values().next().cloned(),
            None => None,
        }
    }

    /// By `kid`; without one, the key bound to `alg` when it is the only such key.
    fn resolve_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        if kid.is_some() {
            return self.resolve(kid);
        }
        let mut fitting = self.keys.values().filter(|k| k.algorithm() == alg);
        match (fitting.next(), fitting.next()) {
            (Some(key), None) => Some(Arc::clone(key)),
            _ => None,
        }
    }
}

/// A [`KeySet`] that can be swapped at run time (key rotation without a restart), shared by
/// validators and issuers. Readers take a cheap snapshot; writers replace the whole set.
///
/// ```
/// use tokenward_claims::{Algorithm, Key, KeySet, SharedKeySet};
///
/// let shared = SharedKeySet::new(KeySet::single(Key::hmac("a", Algorithm::HS256, &[1; 32])?));
/// shared.update(|keys| {
///     keys.insert(Key::hmac("b", Algorithm::HS256, &[2; 32])?)?;
///     keys.activate("b")
/// })?;
/// assert_eq!(shared.snapshot().active().map(|k| k.kid().to_owned()).as_deref(), Some("b"));
/// # Ok::<(), tokenward_claims::KeySetError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedKeySet {
    inner: Arc<RwLock<Arc<KeySet>>>,
}

impl SharedKeySet {
    /// Shares `keys`.
    pub fn new(keys: KeySet) -> Self {
        SharedKeySet {
            inner: Arc::new(RwLock::new(Arc::new(keys))),
        }
    }

    /// The current key set.
    pub fn snapshot(&self) -> Arc<KeySet> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the key set atomically: `change` edits a copy, which replaces the current set
    /// only if `change` succeeds.
    pub fn update<E>(&self, change: impl FnOnce(&mut KeySet) -> Result<(), E>) -> Result<(), E> {
        let mut guard = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = KeySet::clone(&guard);
        change(&mut next)?;
        *guard = Arc::new(next);
        Ok(())
    }

    /// Replaces the whole key set.
    pub fn replace(&self, keys: KeySet) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }
}

impl KeyResolver for SharedKeySet {
    fn resolve(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        self.snapshot().resolve(kid)
    }

    fn resolve_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        self.snapshot().resolve_for(kid, alg)
    }
}

impl<R: KeyResolver + ?Sized> KeyResolver for Arc<R> {
    fn resolve(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        (**self).resolve(kid)
    }

    fn resolve_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        (**self).resolve_for(kid, alg)
    }
}
