//! What verifies tokens, and where its keys come from.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokenward_claims::{
    IssuerRouter, KeyResolver, KeySet, Rejection, RejectionClass, SharedKeySet, ValidationPolicy,
    Validator, Verified,
};

use crate::guard::CustomClaims;

/// Keys that can be fetched again when a token names one the set does not know yet (a
/// remote JWKS after the issuer rotated). `tokenward_jwks::RemoteKeySet` is one (feature
/// `jwks`).
///
/// The Guard calls [`refetch_for_token`](Self::refetch_for_token) once when a token fails
/// with [`RejectionClass::Key`] and verifies again if it returns `true`. Implementations must
/// rate-limit themselves (single flight, cooldown): the token is the attacker's, and so is
/// its `kid`.
#[async_trait]
pub trait KeyRefetch: KeyResolver {
    /// Makes the key named by `token`'s `kid` known if the key source has it; `true` if it
    /// is known now.
    async fn refetch_for_token(&self, token: &str) -> bool;
}

#[cfg(feature = "jwks")]
#[async_trait]
impl KeyRefetch for tokenward_jwks::RemoteKeySet {
    async fn refetch_for_token(&self, token: &str) -> bool {
        tokenward_jwks::RemoteKeySet::refetch_for_token(self, token).await
    }
}

/// Where the Guard's keys come from — given **once**: a fixed key set, or keys that are
/// refetched on an unknown `kid` (a `RemoteKeySet`).
///
/// ```
/// use tokenward_claims::{Algorithm, Key, KeySet};
/// use tokenward_guard::KeySource;
/// let keys = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[7u8; 32])?);
/// assert!(matches!(KeySource::from(keys), KeySource::Fixed(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum KeySource {
    /// Keys known up front (a [`KeySet`], a [`SharedKeySet`] you rotate yourself).
    Fixed(Arc<dyn KeyResolver>),
    /// Keys refetched once per unknown-`kid` failure (a `tokenward_jwks::RemoteKeySet`).
    Refetching(Arc<dyn KeyRefetch>),
}

impl KeySource {
    /// Keys known up front.
    pub fn fixed(keys: impl KeyResolver) -> Self {
        KeySource::Fixed(Arc::new(keys))
    }

    /// Keys refetched on an unknown `kid`.
    pub fn refetching(keys: impl KeyRefetch) -> Self {
        KeySource::Refetching(Arc::new(keys))
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySource::Fixed(_) => "KeySource::Fixed",
            KeySource::Refetching(_) => "KeySource::Refetching",
        })
    }
}

impl From<KeySet> for KeySource {
    fn from(keys: KeySet) -> Self {
        KeySource::fixed(keys)
    }
}

impl From<SharedKeySet> for KeySource {
    fn from(keys: SharedKeySet) -> Self {
        KeySource::fixed(keys)
    }
}

#[cfg(feature = "jwks")]
impl From<tokenward_jwks::RemoteKeySet> for KeySource {
    fn from(keys: tokenward_jwks::RemoteKeySet) -> Self {
        KeySource::refetching(keys)
    }
}

/// What verifies tokens: one policy with its [`KeySource`], or several issuers each with
/// their own keys ([`IssuerRouter`]).
///
/// A [`Validator`] converts as it is (its keys are never refetched); give a remote key set
/// through [`Verifier::new`] so the Guard refetches on an unknown `kid`.
#[derive(Debug, Clone)]
pub struct Verifier {
    kind: Kind,
    refetch: Option<Arc<dyn KeyRefetch>>,
}

#[derive(Debug, Clone)]
enum Kind {
    One(Validator),
    Router(Arc<IssuerRouter>),
}

impl fmt::Debug for dyn KeyRefetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyRefetch")
    }
}

impl Verifier {
    /// Verifies with `policy` and the keys of `keys`; refetches when they are
    /// [`KeySource::Refetching`].
    pub fn new(policy: ValidationPolicy, keys: impl Into<KeySource>) -> Self {
        match keys.into() {
            KeySource::Fixed(keys) => Verifier {
                kind: Kind::One(Validator::new(policy, keys)),
                refetch: None,
            },
            KeySource::Refetching(keys) => Verifier {
                kind: Kind::One(Validator::new(policy, Arc::clone(&keys))),
                refetch: Some(keys),
            },
        }
    }

    fn verify_once(&self, token: &str) -> Result<Verified<CustomClaims>, Rejection> {
        match &self.kind {
            Kind::One(v) => v.verify_with(token),
            Kind::Router(r) => r.verify_with(token),
        }
    }

    /// Verifies `token` when no refetch is needed (every token but one with an unknown `kid`
    /// under refetching keys): synchronous, so the Guard's `async` state machine does not
    /// carry the refetch's state on every request. `None`: the keys must be refetched first
    /// — [`verify_after`](Self::verify_after).
    pub(crate) fn verify_now(
        &self,
        token: &str,
    ) -> Option<Result<Verified<CustomClaims>, RejectionClass>> {
        match self.verify_once(token) {
            Ok(v) => Some(Ok(v)),
            Err(r) if r.class() == RejectionClass::Key && self.refetch.is_some() => None,
            Err(r) => Some(Err(r.class())),
        }
    }

    /// An unknown `kid` under refetching keys ([`verify_now`](Self::verify_now) said `None`):
    /// refetches the keys once (rate-limited by the key source), then verifies again.
    pub(crate) async fn verify_after(
        &self,
        token: &str,
    ) -> Result<Verified<CustomClaims>, RejectionClass> {
        match &self.refetch {
            Some(refetch) if refetch.refetch_for_token(token).await => {
                self.verify_once(token).map_err(|r| r.class())
            }
            _ => Err(RejectionClass::Key),
        }
    }
}

impl From<Validator> for Verifier {
    fn from(v: Validator) -> Self {
        Verifier {
            kind: Kind::One(v),
            refetch: None,
        }
    }
}

impl From<IssuerRouter> for Verifier {
    fn from(r: IssuerRouter) -> Self {
        Verifier {
            kind: Kind::Router(Arc::new(r)),
            refetch: None,
        }
    }
}
