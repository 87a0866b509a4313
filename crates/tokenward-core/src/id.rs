use std::borrow::Cow;
use std::fmt;

use crate::StoreError;

/// The longest id (`jti`, `sid`, `sub`) a store accepts, in bytes. Ids come from tokens, and
/// a store must not let an attacker choose the size of its keys.
pub const MAX_ID_LEN: usize = 512;

/// An id a store accepts — a `jti`, `sid` or `sub` — checked once, where it is made: 1 to
/// [`MAX_ID_LEN`] bytes, no NUL character (a PostgreSQL `text` column cannot hold one, and
/// C-string APIs would cut it short).
///
/// Store traits take `StoreId`s instead of `&str`, so a backend never has to remember to
/// validate: an invalid id cannot reach it. Borrowed from the token where possible (no
/// allocation per request), owned where it must outlive it ([`into_owned`](Self::into_owned)),
/// like rustls's `ServerName`.
///
/// ```
/// use tokenward_core::{StoreErrorKind, StoreId};
///
/// let sub = StoreId::new("alice")?;
/// assert_eq!(sub.as_str(), "alice");
/// assert!(StoreId::new("").is_err());
/// assert!(StoreId::new("a\0b").is_err());
/// assert!(StoreId::new("x".repeat(513)).is_err());
/// // As a store error, an invalid id is `InvalidInput`: the token's fault, not an outage.
/// let err: tokenward_core::StoreError = StoreId::new("").unwrap_err().into();
/// assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
/// # Ok::<(), tokenward_core::InvalidId>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId<'a>(Cow<'a, str>);

impl<'a> StoreId<'a> {
    /// Checks `id`: 1..=[`MAX_ID_LEN`] bytes and no NUL.
    pub fn new(id: impl Into<Cow<'a, str>>) -> Result<Self, InvalidId> {
        let id = id.into();
        if id.is_empty() {
            return Err(InvalidId::Empty);
        }
        if id.len() > MAX_ID_LEN {
            return Err(InvalidId::TooLong { len: id.len() });
        }
        if id.as_bytes().contains(&0) {
            return Err(InvalidId::Nul);
        }
        Ok(StoreId(id))
    }

    /// An id already known to be valid (built from checked parts).
    pub(crate) fn checked(id: String) -> StoreId<'static> {
        debug_assert!(
            StoreId::new(id.as_str()).is_ok(),
            "a checked id must be valid"
        );
        StoreId(Cow::Owned(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same id, borrowed from this one (cheap; no allocation).
    pub fn borrowed(&self) -> StoreId<'_> {
        StoreId(Cow::Borrowed(&self.0))
    }

    /// An owned copy that outlives the token it was borrowed from.
    pub fn into_owned(self) -> StoreId<'static> {
        StoreId(Cow::Owned(self.0.into_owned()))
    }
}

impl<'a> TryFrom<&'a str> for StoreId<'a> {
    type Error = InvalidId;
    fn try_from(id: &'a str) -> Result<Self, InvalidId> {
        StoreId::new(id)
    }
}

impl TryFrom<String> for StoreId<'static> {
    type Error = InvalidId;
    fn try_from(id: String) -> Result<Self, InvalidId> {
        StoreId::new(id)
    }
}

impl AsRef<str> for StoreId<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for StoreId<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for StoreId<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

/// `Debug` shows the id: ids are opaque identifiers, not secrets (never put a token or a
/// password in one).
impl fmt::Debug for StoreId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Why a string is not a [`StoreId`]. The message never contains the string (it comes from a
/// token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidId {
    /// The id is empty (an empty `jti` could never be revoked on its own).
    #[error("empty id")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("id of {len} bytes is longer than {MAX_ID_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The id contains a NUL character.
    #[error("id contains a NUL character")]
    Nul,
    /// The id is longer than [`MAX_SCOPED_ID_LEN`](crate::MAX_SCOPED_ID_LEN) bytes, the
    /// most an [issuer-scoped](crate::IssuerScope) id holds beside its issuer's tag.
    #[error("id of {len} bytes is longer than {}", crate::MAX_SCOPED_ID_LEN)]
    ScopedTooLong {
        /// Its length in bytes.
        len: usize,
    },
}

impl From<InvalidId> for StoreError {
    fn from(e: InvalidId) -> Self {
        StoreError::invalid_input(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(StoreId::new("x".repeat(MAX_ID_LEN)).is_ok());
        assert_eq!(
            StoreId::new("x".repeat(MAX_ID_LEN + 1)),
            Err(InvalidId::TooLong {
                len: MAX_ID_LEN + 1
            })
        );
        assert_eq!(StoreId::new(""), Err(InvalidId::Empty));
        assert_eq!(StoreId::new("\0"), Err(InvalidId::Nul));
        // Other control characters and any Unicode are opaque bytes: allowed.
        assert!(StoreId::new("a\u{1}b\u{202e}ü").is_ok());
    }

    #[test]
    fn borrowed_and_owned_compare_equal() {
        let owned = String::from("fam_1");
        let id = StoreId::new(owned.as_str()).unwrap();
        let copy = id.clone().into_owned();
        drop(owned);
        assert_eq!(copy, "fam_1");
        assert_eq!(copy.borrowed(), copy);
        assert_eq!(format!("{copy:?}"), "\"fam_1\"");
    }

    #[test]
    fn errors_do_not_echo_the_id() {
        let secret = "eyJhbGciOi";
        let long = secret.repeat(100);
        let err = StoreId::new(long.as_str()).unwrap_err();
        assert!(!err.to_string().contains(secret));
        let store: StoreError = err.into();
        assert!(!store.to_string().contains(secret));
    }
}
