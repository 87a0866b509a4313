use std::error::Error as StdError;
use std::time::Duration;

/// The error every tokenward storage backend (revocation, rate limits, refresh families)
/// returns. Backends map their own failures onto these variants so that callers — and the
/// [`FailurePolicy`](crate::FailurePolicy) — can decide without knowing the backend.
///
/// Messages never contain tokens, secrets or full keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached or refused to serve (connection refused, pool exhausted,
    /// server loading, ...).
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What happened, for operators.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The backend did not answer within the configured time.
    #[error("store did not answer within {after:?}")]
    Timeout {
        /// The deadline that passed.
        after: Duration,
    },
    /// The backend answered with data that does not make sense (a value of the wrong shape,
    /// a script returning an unexpected type). Never silently treated as "not found".
    #[error("store returned corrupt data: {message}")]
    Corrupt {
        /// What was wrong.
        message: String,
    },
    /// A bounded store is full and will not drop a live entry to make room.
    #[error("store is at its capacity of {capacity} entries")]
    CapacityExceeded {
        /// The configured capacity.
        capacity: usize,
    },
    /// The request itself is invalid for this store (an empty id, a time out of range).
    #[error("invalid store request: {message}")]
    InvalidInput {
        /// What was wrong.
        message: String,
    },
}

/// The kind of a [`StoreError`], for matching and for conformance suites that assert on kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// See [`StoreError::Unavailable`].
    Unavailable,
    /// See [`StoreError::Timeout`].
    Timeout,
    /// See [`StoreError::Corrupt`].
    Corrupt,
    /// See [`StoreError::CapacityExceeded`].
    CapacityExceeded,
    /// See [`StoreError::InvalidInput`].
    InvalidInput,
}

impl StoreError {
    /// An [`StoreError::Unavailable`] wrapping `source`.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A [`StoreError::Corrupt`] with the given description.
    pub fn corrupt(message: impl Into<String>) -> Self {
        StoreError::Corrupt {
            message: message.into(),
        }
    }

    /// A [`StoreError::InvalidInput`] with the given description.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            message: message.into(),
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Unavailable { .. } => StoreErrorKind::Unavailable,
            StoreError::Timeout { .. } => StoreErrorKind::Timeout,
            StoreError::Corrupt { .. } => StoreErrorKind::Corrupt,
            StoreError::CapacityExceeded { .. } => StoreErrorKind::CapacityExceeded,
            StoreError::InvalidInput { .. } => StoreErrorKind::InvalidInput,
        }
    }

    /// Whether retrying later may succeed (outages and timeouts), as opposed to errors that
    /// will repeat (corrupt data, invalid input). Adapters answer transient errors with
    /// `503 Service Unavailable` and a `Retry-After`.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            StoreErrorKind::Unavailable
                | StoreErrorKind::Timeout
                | StoreErrorKind::CapacityExceeded
        )
    }
}

/// A setting out of its range, refused when the thing it configures is built.
///
/// tokenward never clamps a setting silently: a value outside the documented range is an
/// error at build time (startup), naming the setting, so a typo cannot quietly become a
/// weaker or different configuration. Every config type in tokenward reports this error (or
/// wraps it).
///
/// ```
/// use tokenward_core::SettingError;
/// let e = SettingError::new("shards", "must be 1..=4096, got 0");
/// assert_eq!(e.setting(), "shards");
/// assert_eq!(e.to_string(), "invalid setting `shards`: must be 1..=4096, got 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}")]
pub struct SettingError {
    setting: &'static str,
    message: String,
}

impl SettingError {
    /// `setting` is out of range; `message` says what was expected and what was given.
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        SettingError {
            setting,
            message: message.into(),
        }
    }

    /// The name of the setting.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// Checks that `value` is within `range`, or names the setting.
    pub fn check_range<T>(
        setting: &'static str,
        value: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, SettingError>
    where
        T: PartialOrd + std::fmt::Debug,
    {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(SettingError::new(
                setting,
                format!(
                    "must be within {:?}..={:?}, got {value:?}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_transience() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = StoreError::unavailable("redis at 127.0.0.1:6379", io);
        assert_eq!(e.kind(), StoreErrorKind::Unavailable);
        assert!(e.is_transient());
        assert!(StdError::source(&e).is_some());
        assert!(
            StoreError::Timeout {
                after: Duration::from_millis(250)
            }
            .is_transient()
        );
        assert!(!StoreError::corrupt("bad").is_transient());
        assert!(!StoreError::invalid_input("empty jti").is_transient());
        assert_eq!(
            StoreError::CapacityExceeded { capacity: 3 }.to_string(),
            "store is at its capacity of 3 entries"
        );
    }
}
