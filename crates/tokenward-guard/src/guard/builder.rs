//! [`GuardBuilder`]: the Guard's settings, their defaults, and which policy wins.

use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use tokenward_core::{FailurePolicy, SettingError};
use tokenward_ratelimit::{BanQuota, ClientIp, FailureBan, GcraQuota, SubjectLimit};

use super::{Guard, Inner};
use crate::config::ConfigError;
use crate::hook::{DecisionHook, HookSlot};
use crate::stores::GuardStores;
use crate::verifier::Verifier;

/// The default subject limit: 300 requests per minute per subject, bursts of 300.
pub const DEFAULT_SUBJECT_QUOTA: GcraQuota = GcraQuota::per_minute(match NonZeroU32::new(300) {
    Some(n) => n,
    None => NonZeroU32::MIN,
});
/// The name of the default subject limit (store keys, `RateLimit` headers).
pub const DEFAULT_SUBJECT_LIMIT_NAME: &str = "subject";
/// The name of the default failure ban.
pub const DEFAULT_BAN_NAME: &str = "auth-ban";
/// The default `Retry-After` of a 503 under fail-closed.
pub const DEFAULT_OUTAGE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The accepted `Retry-After` of a 503 under fail-closed: 1 s to 1 h (`Retry-After` counts
/// whole seconds; a client told to wait longer has given up).
pub const OUTAGE_RETRY_AFTER_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3600);

/// A policy of the builder: the default (made at [`GuardBuilder::build`], with the builder's
/// failure policy), one given explicitly (kept as it is), or none.
#[derive(Debug)]
enum Choice<T> {
    Default,
    Given(T),
    Off,
}

/// Builds a [`Guard`]; see [`Guard::builder`] for the defaults.
///
/// # Which failure policy applies
/// 1. A [`SubjectLimit`] or [`FailureBan`] given to [`subject_limit`](Self::subject_limit) /
///    [`failure_ban`](Self::failure_ban) keeps **its own** failure policy, whatever
///    [`failure_policy`](Self::failure_policy) says, before or after;
/// 2. the revocation check uses [`revocation_failure_policy`](Self::revocation_failure_policy)
///    if set;
/// 3. everything else — the revocation check otherwise, the default subject limit and the
///    default ban — uses [`failure_policy`](Self::failure_policy) (default closed).
#[derive(Debug)]
#[must_use]
pub struct GuardBuilder {
    verifier: Verifier,
    stores: GuardStores,
    failure_policy: FailurePolicy,
    revocation_failure: Option<FailurePolicy>,
    subject_limit: Choice<SubjectLimit>,
    ban: Choice<FailureBan>,
    client_ip: ClientIp,
    cookie: Option<String>,
    outage_retry_after: Duration,
    hook: Option<HookSlot>,
}

impl GuardBuilder {
    pub(super) fn new(verifier: Verifier, stores: GuardStores) -> Self {
        GuardBuilder {
            verifier,
            stores,
            failure_policy: FailurePolicy::Closed,
            revocation_failure: None,
            subject_limit: Choice::Default,
            ban: Choice::Default,
            client_ip: ClientIp::peer_only(),
            cookie: None,
            outage_retry_after: DEFAULT_OUTAGE_RETRY_AFTER,
            hook: None,
        }
    }

    /// The failure policy of every check without one of its own (default closed): the
    /// revocation check (unless [`revocation_failure_policy`](Self::revocation_failure_policy)
    /// is set), the default subject limit and the default ban. A [`SubjectLimit`] or
    /// [`FailureBan`] you pass keeps its own, in whichever order the calls come.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// The revocation check's failure policy (default: [`GuardBuilder::failure_policy`]).
    pub fn revocation_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.revocation_failure = Some(policy);
        self
    }

    /// The per-subject limit (replacing the default 300/min), with its own failure policy.
    pub fn subject_limit(mut self, limit: SubjectLimit) -> Self {
        self.subject_limit = Choice::Given(limit);
        self
    }

    /// No per-subject limit: one token may send without bound. Weakens the Guard.
    pub fn dangerous_no_subject_limit(mut self) -> Self {
        self.subject_limit = Choice::Off;
        self
    }

    /// The failure ban (replacing the default 5 / 60 s / 300 s), with its own failure
    /// policy.
    pub fn failure_ban(mut self, ban: FailureBan) -> Self {
        self.ban = Choice::Given(ban);
        self
    }

    /// No failure ban: brute force is not slowed down. Weakens the Guard.
    pub fn dangerous_no_failure_ban(mut self) -> Self {
        self.ban = Choice::Off;
        self
    }

    /// How the client address is found (default: the peer address, no proxy trusted).
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = client_ip;
        self
    }

    /// Also reads the token from the cookie `name` when there is no `Authorization` bearer
    /// token. Opt-in: a cookie is sent by the browser on cross-site requests too, so use it
    /// only with `SameSite=Strict` (or `Lax` plus CSRF protection) and `HttpOnly; Secure`.
    pub fn cookie_token(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// The `Retry-After` of a 503 under fail-closed (default 5 s); outside
    /// [`OUTAGE_RETRY_AFTER_RANGE`] it is a [`SettingError`] naming `outage_retry_after`,
    /// never clamped.
    pub fn outage_retry_after(mut self, after: Duration) -> Result<Self, SettingError> {
        self.outage_retry_after =
            SettingError::check_range("outage_retry_after", after, OUTAGE_RETRY_AFTER_RANGE)?;
        Ok(self)
    }

    /// Hands every decision of [`Guard::authenticate`] to `hook` (anomaly detection, see
    /// `tokenward-anomaly`). It runs on the request path: see [`DecisionHook`].
    pub fn decision_hook(mut self, hook: Arc<dyn DecisionHook>) -> Self {
        self.hook = Some(HookSlot(hook));
        self
    }

    /// The Guard. An error names the setting that cannot work (today only a default policy
    /// that cannot be built, which never happens with tokenward's own names — but it is
    /// reported, never dropped).
    pub fn build(self) -> Result<Guard, ConfigError> {
        let subject_limit = match self.subject_limit {
            Choice::Default => Some(
                default_subject_limit(DEFAULT_SUBJECT_LIMIT_NAME)?
                    .failure_policy(self.failure_policy),
            ),
            Choice::Given(limit) => Some(limit),
            Choice::Off => None,
        };
        let ban = match self.ban {
            Choice::Default => {
                Some(default_ban(DEFAULT_BAN_NAME)?.failure_policy(self.failure_policy))
            }
            Choice::Given(ban) => Some(ban),
            Choice::Off => None,
        };
        let subject_policy_header = subject_limit.as_ref().map(SubjectLimit::policy_header);
        let ban_policy_header = ban.as_ref().map(FailureBan::policy_header);
        Ok(Guard {
            inner: Arc::new(Inner {
                verifier: self.verifier,
                stores: self.stores,
                revocation_failure: self.revocation_failure.unwrap_or(self.failure_policy),
                subject_limit,
                subject_policy_header,
                ban,
                ban_policy_header,
                client_ip: self.client_ip,
                cookie: self.cookie,
                outage_retry_after: self.outage_retry_after,
                scopes: super::scopes::ScopeCache::default(),
                hook: self.hook,
            }),
        })
    }
}

/// The default subject limit named `name`.
fn default_subject_limit(name: &str) -> Result<SubjectLimit, ConfigError> {
    SubjectLimit::new(name, DEFAULT_SUBJECT_QUOTA)
        .map_err(|e| ConfigError::new("subject_limit.name", e.to_string()))
}

/// The default failure ban named `name`.
fn default_ban(name: &str) -> Result<FailureBan, ConfigError> {
    FailureBan::new(name, BanQuota::fail2ban_default())
        .map_err(|e| ConfigError::new("ban.name", e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Regression: the defaults were made with `.ok()`, so a constructor error would have
    /// dropped the failure ban (or the limit) without a word. Now it is an error naming the
    /// field.
    #[test]
    fn a_default_policy_that_cannot_be_built_is_an_error() {
        assert_eq!(default_ban("bad name").unwrap_err().field, "ban.name");
        assert_eq!(
            default_subject_limit("").unwrap_err().field,
            "subject_limit.name"
        );
        assert!(default_ban(DEFAULT_BAN_NAME).is_ok());
        assert!(default_subject_limit(DEFAULT_SUBJECT_LIMIT_NAME).is_ok());
    }
}
