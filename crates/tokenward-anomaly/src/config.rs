//! The detectors' settings and their defaults.

use std::ops::RangeInclusive;
use std::time::Duration;

use tokenward_core::SettingError;

use crate::anomaly::Action;

/// The accepted windows: 1 s to 90 days.
pub const WINDOW_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(90 * 24 * 3600);

/// Token shared: one token (its `sid`, else its `jti`) used from more than `max_networks`
/// client networks within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenShared {
    /// The networks one token may be used from (default 3; 1 to 1000).
    pub max_networks: u32,
    /// The window, from the token's first use (default 10 minutes).
    pub window: Duration,
    /// Default [`Action::RevokeSession`].
    pub action: Action,
}

impl Default for TokenShared {
    fn default() -> Self {
        TokenShared {
            max_networks: 3,
            window: Duration::from_secs(600),
            action: Action::RevokeSession,
        }
    }
}

/// Revoked-token replay: every replay is reported; the `ban_after`-th replay from one
/// network within `window` (and every one after it) takes the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokedReplay {
    /// Replays from one network that take the action (default 5; 1 to 1 000 000).
    pub ban_after: u32,
    /// The window, from the network's first replay (default 10 minutes).
    pub window: Duration,
    /// Default [`Action::Ban`].
    pub action: Action,
}

impl Default for RevokedReplay {
    fn default() -> Self {
        RevokedReplay {
            ban_after: 5,
            window: Duration::from_secs(600),
            action: Action::Ban,
        }
    }
}

/// Forgery burst: `threshold` tokens from one network within `window` that fail with a bad
/// signature, an unknown `kid` or a refused algorithm — never expired tokens, which honest
/// clients send. The action is taken at the threshold and for each further forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForgeryBurst {
    /// Forgeries from one network that take the action (default 20; 1 to 1 000 000).
    pub threshold: u32,
    /// The window, from the network's first forgery (default 60 s).
    pub window: Duration,
    /// Default [`Action::Ban`] ([`Action::Alert`] is the only other one that applies: there
    /// is no verified token to revoke).
    pub action: Action,
}

impl Default for ForgeryBurst {
    fn default() -> Self {
        ForgeryBurst {
            threshold: 20,
            window: Duration::from_secs(60),
            action: Action::Ban,
        }
    }
}

/// New network for a subject: reported when a subject that was seen before is seen from a
/// network (an ASN, with a [`NetworkInfo`](crate::NetworkInfo)) not among the ones
/// remembered for it. The first network of a subject is not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewNetwork {
    /// How long a subject's networks are remembered, from its first one (default 30 days).
    pub remember: Duration,
    /// The networks remembered per subject (default 32; 2 to 1000): beyond, a subject
    /// yields no more signals until its record expires.
    pub max_networks: u32,
    /// Default [`Action::Alert`].
    pub action: Action,
}

impl Default for NewNetwork {
    fn default() -> Self {
        NewNetwork {
            remember: Duration::from_secs(30 * 24 * 3600),
            max_networks: 32,
            action: Action::Alert,
        }
    }
}

/// Refresh reuse: reported with the networks the family was used from (remembered for
/// `remember` from the family's first recorded use). The refresh engine has already revoked
/// the family and its session, so the action is [`Action::Alert`] or [`Action::Ban`] (the
/// address that presented the reused token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshReuse {
    /// How long a family's networks are remembered (default 7 days).
    pub remember: Duration,
    /// Default [`Action::Alert`].
    pub action: Action,
}

impl Default for RefreshReuse {
    fn default() -> Self {
        RefreshReuse {
            remember: Duration::from_secs(7 * 24 * 3600),
            action: Action::Alert,
        }
    }
}

/// The detectors (each `None` = off) and how they act. [`Default`]: every detector on, with
/// the defaults of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnomalyConfig {
    /// [`TokenShared`].
    pub token_shared: Option<TokenShared>,
    /// [`RevokedReplay`].
    pub revoked_replay: Option<RevokedReplay>,
    /// [`ForgeryBurst`].
    pub forgery_burst: Option<ForgeryBurst>,
    /// [`NewNetwork`].
    pub new_network: Option<NewNetwork>,
    /// [`RefreshReuse`].
    pub refresh_reuse: Option<RefreshReuse>,
    /// The IPv4 prefix of a client network (default 24,
    /// [`NETWORK_IPV4_PREFIX`](tokenward_ratelimit::NETWORK_IPV4_PREFIX)): the unit the
    /// detectors count in and [`Action::Ban`] bans. The ban covers the network of the
    /// [`FailureBan`](tokenward_ratelimit::FailureBan) the Guard reads
    /// ([`FailureBan::network_prefixes`](tokenward_ratelimit::FailureBan::network_prefixes),
    /// default the same): change both together.
    pub ipv4_prefix: u8,
    /// The IPv6 prefix of a client network (default 48,
    /// [`NETWORK_IPV6_PREFIX`](tokenward_ratelimit::NETWORK_IPV6_PREFIX)); as `ipv4_prefix`.
    pub ipv6_prefix: u8,
    /// How long [`Action::Ban`] bans the client's network (default 1 hour).
    pub ban_time: Duration,
    /// Leeway of [`Action::RevokeSubject`]'s cutoff (the verifiers' leeway; default 30 s).
    pub leeway: Duration,
    /// How long [`Action::RevokeSubject`] and [`Action::RevokeSession`] keep their entry at
    /// least: the longest access-token lifetime of the issuers (default 24 hours).
    pub max_token_lifetime: Duration,
    /// Decisions waiting for the detector's worker at most (default 4096): beyond, they are
    /// dropped and counted in `tokenward_anomaly_dropped_total`, never waited for.
    pub queue: usize,
    /// Observations processed (and actions running) at once at most (default 32).
    pub concurrency: usize,
    /// Attempts of an action whose store fails (default 3), with `retry_backoff`, doubled
    /// after each attempt, in between.
    pub attempts: u32,
    /// The first pause between attempts (default 200 ms).
    pub retry_backoff: Duration,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            token_shared: Some(TokenShared::default()),
            revoked_replay: Some(RevokedReplay::default()),
            forgery_burst: Some(ForgeryBurst::default()),
            new_network: Some(NewNetwork::default()),
            refresh_reuse: Some(RefreshReuse::default()),
            ipv4_prefix: tokenward_ratelimit::NETWORK_IPV4_PREFIX,
            ipv6_prefix: tokenward_ratelimit::NETWORK_IPV6_PREFIX,
            ban_time: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
            max_token_lifetime: Duration::from_secs(24 * 3600),
            queue: 4096,
            concurrency: 32,
            attempts: 3,
            retry_backoff: Duration::from_millis(200),
        }
    }
}

impl AnomalyConfig {
    /// Every detector on, with its defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every setting in range: a [`SettingError`] naming the first one that is not.
    pub fn validate(&self) -> Result<(), SettingError> {
        if let Some(d) = &self.token_shared {
            SettingError::check_range("token_shared.max_networks", d.max_networks, 1..=1000)?;
            SettingError::check_range("token_shared.window", d.window, WINDOW_RANGE)?;
        }
        if let Some(d) = &self.revoked_replay {
            SettingError::check_range("revoked_replay.ban_after", d.ban_after, 1..=1_000_000)?;
            SettingError::check_range("revoked_replay.window", d.window, WINDOW_RANGE)?;
        }
        if let Some(d) = &self.forgery_burst {
            SettingError::check_range("forgery_burst.threshold", d.threshold, 1..=1_000_000)?;
            SettingError::check_range("forgery_burst.window", d.window, WINDOW_RANGE)?;
            if d.action.needs_token() {
                return Err(SettingError::new(
                    "forgery_burst.action",
                    "a forgery has no verified token to revoke: use alert or ban",
                ));
            }
        }
        if let Some(d) = &self.new_network {
            SettingError::check_range("new_network.remember", d.remember, WINDOW_RANGE)?;
            SettingError::check_range("new_network.max_networks", d.max_networks, 2..=1000)?;
        }
        if let Some(d) = &self.refresh_reuse {
            SettingError::check_range("refresh_reuse.remember", d.remember, WINDOW_RANGE)?;
            if d.action.needs_token() {
                return Err(SettingError::new(
                    "refresh_reuse.action",
                    "the refresh engine has revoked the family already; use alert or ban",
                ));
            }
        }
        SettingError::check_range("ipv4_prefix", self.ipv4_prefix, 8..=32)?;
        SettingError::check_range("ipv6_prefix", self.ipv6_prefix, 16..=128)?;
        SettingError::check_range("ban_time", self.ban_time, WINDOW_RANGE)?;
        SettingError::check_range(
            "leeway",
            self.leeway,
            Duration::ZERO..=Duration::from_secs(3600),
        )?;
        SettingError::check_range("max_token_lifetime", self.max_token_lifetime, WINDOW_RANGE)?;
        SettingError::check_range("queue", self.queue, 1..=1_000_000)?;
        SettingError::check_range("concurrency", self.concurrency, 1..=10_000)?;
        SettingError::check_range("attempts", self.attempts, 1..=10)?;
        SettingError::check_range(
            "retry_backoff",
            self.retry_backoff,
            Duration::ZERO..=Duration::from_secs(60),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        AnomalyConfig::default().validate().unwrap();
        let mut c = AnomalyConfig::default();
        c.token_shared = Some(TokenShared {
            max_networks: 0,
            ..TokenShared::default()
        });
        assert_eq!(
            c.validate().unwrap_err().setting(),
            "token_shared.max_networks"
        );
        let mut c = AnomalyConfig::default();
        c.forgery_burst = Some(ForgeryBurst {
            action: Action::RevokeSession,
            ..ForgeryBurst::default()
        });
        assert_eq!(c.validate().unwrap_err().setting(), "forgery_burst.action");
        let mut c = AnomalyConfig::default();
        c.refresh_reuse = Some(RefreshReuse {
            action: Action::RevokeSubject,
            ..RefreshReuse::default()
        });
        assert_eq!(c.validate().unwrap_err().setting(), "refresh_reuse.action");
        let mut c = AnomalyConfig::default();
        c.ipv4_prefix = 33;
        assert_eq!(c.validate().unwrap_err().setting(), "ipv4_prefix");
    }
}
