//! [`LimitKey`]: the key a rate-limit store keeps state under, checked where it is made.

use std::borrow::Cow;
use std::fmt;

use tokenward_core::StoreError;

/// The longest key a store accepts, in bytes ([`LimitKey`]).
pub const MAX_KEY_LEN: usize = 1024;

/// A key a [`RateLimitStore`](crate::RateLimitStore) keeps state under, checked once where it
/// is made: 1 to [`MAX_KEY_LEN`] bytes, no NUL character (a SQL `text` column cannot hold one,
/// and C-string APIs would cut it short). Otherwise any bytes: keys are opaque.
///
/// The policies build their keys themselves, infallibly: [`SubjectLimit::key`] is
/// `{name}:{identity}`, [`FailureBan::ip_key`] `{name}:ip:{network}` (policy names are at most
/// 64 bytes and identities are [`StoreId`](tokenward_core::StoreId)s of at most 512, so a
/// policy's key always fits). The store traits take `LimitKey`s, so a backend never has to
/// remember to validate a key: an invalid one cannot reach it. Borrowed where possible,
/// owned where it must outlive its source ([`into_owned`](Self::into_owned)), like
/// [`StoreId`](tokenward_core::StoreId).
///
/// [`SubjectLimit::key`]: crate::SubjectLimit::key
/// [`FailureBan::ip_key`]: crate::FailureBan::ip_key
///
/// ```
/// use tokenward_ratelimit::{LimitKey, LimitKeyError, MAX_KEY_LEN};
///
/// let key = LimitKey::new("subject:alice")?;
/// assert_eq!(key, "subject:alice");
/// assert_eq!(LimitKey::new(""), Err(LimitKeyError::Empty));
/// assert_eq!(LimitKey::new("a\0b"), Err(LimitKeyError::Nul));
/// assert!(LimitKey::new("k".repeat(MAX_KEY_LEN + 1)).is_err());
/// # Ok::<(), LimitKeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitKey<'a>(Cow<'a, str>);

impl<'a> LimitKey<'a> {
    /// Checks `key`: 1..=[`MAX_KEY_LEN`] bytes and no NUL.
    pub fn new(key: impl Into<Cow<'a, str>>) -> Result<Self, LimitKeyError> {
        let key = key.into();
        if key.is_empty() {
            return Err(LimitKeyError::Empty);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(LimitKeyError::TooLong { len: key.len() });
        }
        if key.as_bytes().contains(&0) {
            return Err(LimitKeyError::Nul);
        }
        Ok(LimitKey(key))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same key, borrowed from this one (no allocation).
    pub fn borrowed(&self) -> LimitKey<'_> {
        LimitKey(Cow::Borrowed(&self.0))
    }

    /// An owned copy that outlives what it was borrowed from.
    pub fn into_owned(self) -> LimitKey<'static> {
        LimitKey(Cow::Owned(self.0.into_owned()))
    }
}

impl LimitKey<'static> {
    /// A key a policy built. Only for keys valid by construction — a checked policy name
    /// (1..=64 bytes of `[A-Za-z0-9._-]`), literal separators, and a
    /// [`StoreId`](tokenward_core::StoreId) or a network in CIDR notation — whose lengths add
    /// up to at most [`MAX_KEY_LEN`] (checked at compile time in `policy.rs`).
    pub(crate) fn from_policy(key: String) -> Self {
        debug_assert!(
            LimitKey::new(key.as_str()).is_ok(),
            "a policy built an invalid key"
        );
        LimitKey(Cow::Owned(key))
    }
}

impl<'a> LimitKey<'a> {
    /// A key a policy built in a borrowed buffer ([`from_policy`](LimitKey::from_policy)'s
    /// rules).
    pub(crate) fn from_policy_str(key: &'a str) -> Self {
        debug_assert!(LimitKey::new(key).is_ok(), "a policy built an invalid key");
        LimitKey(Cow::Borrowed(key))
    }

    /// Whether the key borrows its bytes (tests of the policies' stack-built keys).
    #[cfg(test)]
    pub(crate) fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }
}

impl<'a> TryFrom<&'a str> for LimitKey<'a> {
    type Error = LimitKeyError;
    fn try_from(key: &'a str) -> Result<Self, LimitKeyError> {
        LimitKey::new(key)
    }
}

impl TryFrom<String> for LimitKey<'static> {
    type Error = LimitKeyError;
    fn try_from(key: String) -> Result<Self, LimitKeyError> {
        LimitKey::new(key)
    }
}

impl AsRef<str> for LimitKey<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for LimitKey<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for LimitKey<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

/// `Debug` shows the key: keys name subjects and networks, not secrets.
impl fmt::Debug for LimitKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for LimitKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a [`LimitKey`]. The message never contains the string (it may come
/// from a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitKeyError {
    /// The key is empty.
    #[error("empty rate-limit key")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("rate-limit key of {len} bytes is longer than {MAX_KEY_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The key contains a NUL character.
    #[error("rate-limit key contains a NUL character")]
    Nul,
}

impl From<LimitKeyError> for StoreError {
    fn from(e: LimitKeyError) -> Self {
        StoreError::invalid_input(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(LimitKey::new("k".repeat(MAX_KEY_LEN)).is_ok());
        assert_eq!(
            LimitKey::new("k".repeat(MAX_KEY_LEN + 1)),
            Err(LimitKeyError::TooLong {
                len: MAX_KEY_LEN + 1
            })
        );
        assert_eq!(LimitKey::new(""), Err(LimitKeyError::Empty));
        assert_eq!(LimitKey::new("\0"), Err(LimitKeyError::Nul));
        // Other control characters, braces and any Unicode are opaque bytes: allowed.
        assert!(LimitKey::new("a\u{1}b{}\u{202e}ü").is_ok());
    }

    #[test]
    fn borrowed_and_owned_compare_equal() {
        let source = String::from("subject:alice");
        let key = LimitKey::new(source.as_str()).unwrap();
        let owned = key.clone().into_owned();
        drop(source);
        assert_eq!(owned, "subject:alice");
        assert_eq!(owned.borrowed(), owned);
        assert_eq!(
            format!("{owned:?} {owned}"),
            "\"subject:alice\" subject:alice"
        );
    }

    #[test]
    fn errors_do_not_echo_the_key() {
        let secret = "eyJhbGciOi";
        let err = LimitKey::new(secret.repeat(200)).unwrap_err();
        let store: StoreError = err.into();
        assert!(!store.to_string().contains(secret), "{store}");
        assert_eq!(store.kind(), tokenward_core::StoreErrorKind::InvalidInput);
    }
}
