//! [`RefreshConfig`]: lifetimes, grace window, the cap on families per subject and the
//! engine's clock, checked when the engine is built.

use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{SettingError, SharedClock, SystemClock, UnixTime};

/// Configuration of a [`RefreshEngine`](crate::RefreshEngine), checked by
/// [`RefreshEngine::with_config`](crate::RefreshEngine::with_config): a setting out of its
/// range is a [`SettingError`] naming it, never silently clamped.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tokenward_core::IssuerScope;
/// use tokenward_refresh::{MemoryRefreshStore, RefreshConfig, RefreshEngine};
/// use tokenward_revocation::MemoryRevocationStore;
///
/// let build = |config| {
///     RefreshEngine::with_config(
///         Arc::new(MemoryRefreshStore::new()),
///         Arc::new(MemoryRevocationStore::new()),
///         IssuerScope::new("https://api.example.com"),
///         config,
///     )
/// };
/// assert!(build(RefreshConfig::new().grace_window(Duration::from_secs(10))).is_ok());
/// // Above the 120 s cap: refused, unless asked for by its dangerous name.
/// let err = build(RefreshConfig::new().grace_window(Duration::from_secs(600))).unwrap_err();
/// assert_eq!(err.setting(), "grace_window");
/// assert!(build(RefreshConfig::new().dangerous_grace_window(Duration::from_secs(600))).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    pub(crate) absolute_lifetime: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) grace_window: Duration,
    /// Set by [`RefreshConfig::dangerous_grace_window`]: no cap on the grace window.
    uncapped_grace: bool,
    pub(crate) max_access_token_lifetime: Duration,
    pub(crate) max_families_per_subject: usize,
    pub(crate) clock: SharedClock,
}

impl RefreshConfig {
    /// The default absolute family lifetime: 30 days.
    pub const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
    /// The default idle timeout: 7 days.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
    /// The longest absolute lifetime or idle timeout accepted: 10 years (3 650 days).
    pub const MAX_FAMILY_LIFETIME: Duration = Duration::from_secs(3650 * 24 * 3600);
    /// The default grace window: 30 seconds.
    pub const DEFAULT_GRACE_WINDOW: Duration = Duration::from_secs(30);
    /// The longest grace window [`grace_window`](Self::grace_window) accepts: 120 seconds.
    pub const MAX_GRACE_WINDOW: Duration = Duration::from_secs(120);
    /// The default expected access-token lifetime: 15 minutes.
    pub const DEFAULT_MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
    /// The longest [`max_access_token_lifetime`](Self::max_access_token_lifetime) accepted:
    /// 24 hours.
    pub const MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
    /// How much later than `now + max_access_token_lifetime` a rotation's store step covers
    /// (5 s): minting happens after that step, and a minter reading its own clock a moment
    /// later must still be covered without another store call.
    pub const MINT_MARGIN: Duration = Duration::from_secs(5);
    /// How much longer than the grace window a revoked family stays as a tombstone (60 s):
    /// its tokens answer [`RefreshError::Revoked`](crate::RefreshError::Revoked) for the
    /// grace window plus this, then `Invalid` (see
    /// [`revoked_retention`](Self::revoked_retention)).
    pub const REVOKED_RETENTION_MARGIN: Duration = Duration::from_secs(60);
    /// The default [`max_families_per_subject`](Self::max_families_per_subject): 50.
    pub const DEFAULT_MAX_FAMILIES_PER_SUBJECT: usize = 50;
    /// The largest [`max_families_per_subject`](Self::max_families_per_subject) accepted:
    /// 10 000.
    pub const MAX_FAMILIES_PER_SUBJECT: usize = 10_000;

    /// The defaults (see the constants) and the system clock.
    pub fn new() -> Self {
        RefreshConfig {
            absolute_lifetime: Self::DEFAULT_ABSOLUTE_LIFETIME,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            grace_window: Self::DEFAULT_GRACE_WINDOW,
            uncapped_grace: false,
            max_access_token_lifetime: Self::DEFAULT_MAX_ACCESS_TOKEN_LIFETIME,
            max_families_per_subject: Self::DEFAULT_MAX_FAMILIES_PER_SUBJECT,
            clock: Arc::new(SystemClock),
        }
    }

    /// How long a family lives from its login, however often it rotates: 1 s to
    /// [`MAX_FAMILY_LIFETIME`](Self::MAX_FAMILY_LIFETIME).
    #[must_use]
    pub fn absolute_lifetime(mut self, d: Duration) -> Self {
        self.absolute_lifetime = d;
        self
    }

    /// How long a family lives without a rotation: 1 s to
    /// [`MAX_FAMILY_LIFETIME`](Self::MAX_FAMILY_LIFETIME).
    #[must_use]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// How long after a rotation its predecessor still gets the same successor: zero to
    /// [`MAX_GRACE_WINDOW`](Self::MAX_GRACE_WINDOW); a longer one is refused (see
    /// [`dangerous_grace_window`](Self::dangerous_grace_window)).
    #[must_use]
    pub fn grace_window(mut self, d: Duration) -> Self {
        self.grace_window = d;
        self.uncapped_grace = false;
        self
    }

    /// Sets the grace window without the cap. Every second of grace is a second in which a
    /// stolen predecessor is accepted instead of detected.
    #[must_use]
    pub fn dangerous_grace_window(mut self, d: Duration) -> Self {
        self.grace_window = d;
        self.uncapped_grace = true;
        self
    }

    /// The lifetime you expect of the access tokens minted for a family (1 s to
    /// [`MAX_ACCESS_TOKEN_LIFETIME`](Self::MAX_ACCESS_TOKEN_LIFETIME)). Each rotation's
    /// atomic store step records that a token of the family may live until now + this +
    /// [`MINT_MARGIN`](Self::MINT_MARGIN), so a rotation stays one store call.
    ///
    /// It bounds nothing: a token minted with a later `exp` is recorded with one more store
    /// call before it is handed out. Whatever this says, revoking a family (on reuse, logout
    /// or "sign out everywhere") revokes its `sid` until the latest `exp` recorded for it plus
    /// [`LEEWAY_MARGIN`](tokenward_revocation::LEEWAY_MARGIN), so no access token of the
    /// family outlives the revocation. Set it to your issuer's access-token lifetime.
    #[must_use]
    pub fn max_access_token_lifetime(mut self, d: Duration) -> Self {
        self.max_access_token_lifetime = d;
        self
    }

    /// The most live families (logins) one subject may have: 1 to
    /// [`MAX_FAMILIES_PER_SUBJECT`](Self::MAX_FAMILIES_PER_SUBJECT), default
    /// [`DEFAULT_MAX_FAMILIES_PER_SUBJECT`](Self::DEFAULT_MAX_FAMILIES_PER_SUBJECT). A login
    /// ([`RefreshEngine::issue`](crate::RefreshEngine::issue)) that takes a subject over it
    /// revokes the subject's oldest families (and their sessions), with an audit event each,
    /// so that one account cannot fill the store by logging in again and again.
    #[must_use]
    pub fn max_families_per_subject(mut self, max: usize) -> Self {
        self.max_families_per_subject = max;
        self
    }

    /// The engine's clock, for what it mints: the `exp` a rotation announces to the store
    /// ([`MintRequest::covered_until`](crate::MintRequest::covered_until)). The store keeps
    /// its own time for everything else (expiry, the grace window).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The configured grace window.
    pub fn grace(&self) -> Duration {
        self.grace_window
    }

    /// How long a revoked family stays as a tombstone (answering `Revoked`) before it is
    /// gone: the grace window plus [`REVOKED_RETENTION_MARGIN`](Self::REVOKED_RETENTION_MARGIN)
    /// (90 s by default), never longer than the family would have lived. Given to the store
    /// with each new family ([`NewFamily::revoked_retention`](crate::NewFamily)).
    pub fn revoked_retention(&self) -> Duration {
        self.grace_window
            .saturating_add(Self::REVOKED_RETENTION_MARGIN)
    }

    /// The configured cap on live families per subject.
    pub fn families_per_subject(&self) -> usize {
        self.max_families_per_subject
    }

    /// Checks every setting against its range.
    pub(crate) fn validate(&self) -> Result<(), SettingError> {
        let second = Duration::from_secs(1);
        SettingError::check_range(
            "absolute_lifetime",
            self.absolute_lifetime,
            second..=Self::MAX_FAMILY_LIFETIME,
        )?;
        SettingError::check_range(
            "idle_timeout",
            self.idle_timeout,
            second..=Self::MAX_FAMILY_LIFETIME,
        )?;
        SettingError::check_range(
            "max_access_token_lifetime",
            self.max_access_token_lifetime,
            second..=Self::MAX_ACCESS_TOKEN_LIFETIME,
        )?;
        SettingError::check_range(
            "max_families_per_subject",
            self.max_families_per_subject,
            1..=Self::MAX_FAMILIES_PER_SUBJECT,
        )?;
        if !self.uncapped_grace && self.grace_window > Self::MAX_GRACE_WINDOW {
            return Err(SettingError::new(
                "grace_window",
                format!(
                    "must be at most {:?}, got {:?} (dangerous_grace_window sets a longer one)",
                    Self::MAX_GRACE_WINDOW,
                    self.grace_window
                ),
            ));
        }
        Ok(())
    }

    /// The latest `exp` a rotation (or login) starting now announces to the store.
    pub(crate) fn covered_until(&self) -> UnixTime {
        self.clock
            .now()
            .saturating_add(self.max_access_token_lifetime)
            .saturating_add(Self::MINT_MARGIN)
    }
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_named() {
        let d = Duration::from_secs;
        for (config, setting) in [
            (
                RefreshConfig::new().absolute_lifetime(d(0)),
                "absolute_lifetime",
            ),
            (
                RefreshConfig::new().absolute_lifetime(RefreshConfig::MAX_FAMILY_LIFETIME + d(1)),
                "absolute_lifetime",
            ),
            (
                RefreshConfig::new().idle_timeout(Duration::ZERO),
                "idle_timeout",
            ),
            (
                RefreshConfig::new().max_access_token_lifetime(d(0)),
                "max_access_token_lifetime",
            ),
            (
                RefreshConfig::new().max_access_token_lifetime(d(24 * 3600 + 1)),
                "max_access_token_lifetime",
            ),
            (RefreshConfig::new().grace_window(d(121)), "grace_window"),
            (
                RefreshConfig::new().max_families_per_subject(0),
                "max_families_per_subject",
            ),
            (
                RefreshConfig::new().max_families_per_subject(10_001),
                "max_families_per_subject",
            ),
            (
                RefreshConfig::new()
                    .dangerous_grace_window(d(600))
                    .grace_window(d(600)),
                "grace_window",
            ),
        ] {
            assert_eq!(
                config.validate().map_err(|e| e.setting()),
                Err(setting),
                "{config:?}"
            );
        }
        for config in [
            RefreshConfig::new(),
            RefreshConfig::new().grace_window(Duration::ZERO),
            RefreshConfig::new().grace_window(RefreshConfig::MAX_GRACE_WINDOW),
            RefreshConfig::new().dangerous_grace_window(d(3600)),
            RefreshConfig::new()
                .absolute_lifetime(d(1))
                .idle_timeout(RefreshConfig::MAX_FAMILY_LIFETIME),
            RefreshConfig::new().max_families_per_subject(1),
            RefreshConfig::new().max_families_per_subject(RefreshConfig::MAX_FAMILIES_PER_SUBJECT),
        ] {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
    }
}
