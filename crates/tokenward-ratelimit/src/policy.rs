//! Rate-limit policies: a name, a key and a quota, and what to do when the store fails.
//!
//! A policy builds the store key `{name}:{key}` (names contain no `:`, so keys of different
//! policies never collide) and calls the [`RateLimitStore`]. It returns the store's result
//! unchanged; the caller (the Guard) applies the policy's [`FailurePolicy`] to an error.

use std::fmt;
use std::net::IpAddr;

use tokenward_core::{FailurePolicy, StoreError};

use crate::decision::{ban_policy_header, ratelimit_policy_header};
use crate::ip::client_network;
use crate::store::{BanQuota, Decision, GcraQuota, RateLimitStore};

/// The longest policy name.
pub const MAX_POLICY_NAME_LEN: usize = 64;

/// A policy name that is not 1..=64 ASCII letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPolicyName(String);

impl fmt::Display for InvalidPolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid policy name {:?}: use 1..={MAX_POLICY_NAME_LEN} ASCII letters, digits, '-', '_', '.'",
            self.0
        )
    }
}

impl std::error::Error for InvalidPolicyName {}

fn check_name(name: &str) -> Result<String, InvalidPolicyName> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POLICY_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(InvalidPolicyName(name.to_owned()))
    }
}

/// A GCRA limit per caller identity — the token's subject, client (`azp`/`client_id`) or
/// tenant claim — checked *after* the token is verified, so rotating IPs does not escape it.
///
/// # Failure policy: closed by default
///
/// When the store cannot answer, a subject limit refuses the request ([`FailurePolicy::Closed`]:
/// HTTP 503 with `Retry-After` in the adapters), like every other tokenward check — one rule,
/// no surprises. Choose [`FailurePolicy::DangerousOpen`] (audited by the Guard) where the limit only
/// protects capacity and fairness: the request already carries a verified, unrevoked token,
/// and a limiter outage that refused every authenticated request turns a degraded Redis into
/// a full outage. Keep it closed where the limit guards something costly (paid API quotas).
///
/// ```
/// use tokenward_ratelimit::{GcraQuota, SubjectLimit};
/// let limit = SubjectLimit::new("subject", GcraQuota::per_minute(300)).unwrap();
/// assert_eq!(limit.key("alice"), "subject:alice");
/// assert_eq!(limit.policy_header(), "\"subject\";q=300;w=60");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectLimit {
    name: String,
    quota: GcraQuota,
    failure_policy: FailurePolicy,
}

impl SubjectLimit {
    /// A limit named `name` (1..=64 ASCII letters, digits, `-`, `_`, `.`; it appears in
    /// store keys and `RateLimit` headers) with failure policy open.
    pub fn new(name: &str, quota: GcraQuota) -> Result<Self, InvalidPolicyName> {
        Ok(SubjectLimit {
            name: check_name(name)?,
            quota,
            failure_policy: FailurePolicy::Closed,
        })
    }

    /// Sets what a store failure means (default: [`FailurePolicy::Closed`]).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quota.
    pub fn quota(&self) -> &GcraQuota {
        &self.quota
    }

    /// What a store failure means.
    pub fn on_store_failure(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// The store key for `identity`: `{name}:{identity}`.
    pub fn key(&self, identity: &str) -> String {
        // Built without the formatting machinery: this runs on every authenticated request.
        let mut key = String::with_capacity(self.name.len() + 1 + identity.len());
        key.push_str(&self.name);
        key.push(':');
        key.push_str(identity);
        key
    }

    /// Takes one cell for `identity`.
    pub async fn check(
        &self,
        store: &dyn RateLimitStore,
        identity: &str,
    ) -> Result<Decision, StoreError> {
        self.check_cost(store, identity, 1).await
    }

    /// Takes `cost` cells for `identity` (a per-route cost; `1..=burst`).
    pub async fn check_cost(
        &self,
        store: &dyn RateLimitStore,
        identity: &str,
        cost: u32,
    ) -> Result<Decision, StoreError> {
        let key = self.key(identity);
        match store.gcra_now(&key, &self.quota, cost) {
            Some(answer) => answer,
            None => store.gcra(&key, &self.quota, cost).await,
        }
    }

    /// The `RateLimit-Policy` header item of this limit.
    pub fn policy_header(&self) -> String {
        ratelimit_policy_header(&self.name, &self.quota)
    }

    /// The `RateLimit` header item for a decision of this limit.
    pub fn ratelimit_header(&self, decision: &Decision) -> String {
        decision.ratelimit_header(&self.name)
    }
}

/// A fail2ban-style authentication-failure ban per client IP (IPv6 by network, /64 by
/// default) and, optionally, per account.
///
/// The Guard checks the ban before verifying a token and records a failure for every request
/// that fails authentication; `maxretry` failures within `findtime` ban the key for
/// `bantime` (default 5 / 60 s / 300 s).
///
/// # Failure policy: closed by default
///
/// When the store cannot answer the ban *check*, the request is refused with 503
/// ([`FailurePolicy::Closed`]): a ban that fails open lets brute force through exactly when
/// an attacker may have caused the outage. The cost is bounded: the check needs the same
/// store the revocation check needs, whose outage already fails closed by default, and the
/// in-memory store never fails a check for capacity (checking stores nothing). A failure
/// that cannot be *recorded* does not change the response (it is already a 401); the caller
/// audits it.
///
/// ```
/// use std::net::IpAddr;
/// use tokenward_ratelimit::{BanQuota, FailureBan};
/// let ban = FailureBan::new("auth-ban", BanQuota::fail2ban_default()).unwrap();
/// let ip: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
/// assert_eq!(ban.ip_key(ip), "auth-ban:ip:2001:db8:1:2::/64");
/// assert_eq!(ban.account_key("alice"), "auth-ban:account:alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureBan {
    name: String,
    quota: BanQuota,
    ipv6_prefix: u8,
    failure_policy: FailurePolicy,
}

impl FailureBan {
    /// The default IPv6 prefix a ban covers.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;

    /// A ban named `name` (same rules as [`SubjectLimit::new`]), IPv6 /64, failure policy
    /// closed.
    pub fn new(name: &str, quota: BanQuota) -> Result<Self, InvalidPolicyName> {
        Ok(FailureBan {
            name: check_name(name)?,
            quota,
            ipv6_prefix: Self::DEFAULT_IPV6_PREFIX,
            failure_policy: FailurePolicy::Closed,
        })
    }

    /// Bans IPv6 clients by this prefix length (clamped to 0..=128; default 64).
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.min(128);
        self
    }

    /// Sets what a store failure during the check means (default: [`FailurePolicy::Closed`]).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quota.
    pub fn quota(&self) -> &BanQuota {
        &self.quota
    }

    /// What a store failure during the check means.
    pub fn on_store_failure(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// The store key for a client address: `{name}:ip:{network}`.
    pub fn ip_key(&self, ip: IpAddr) -> String {
        format!("{}:ip:{}", self.name, client_network(ip, self.ipv6_prefix))
    }

    /// The store key for an account: `{name}:account:{account}`.
    pub fn account_key(&self, account: &str) -> String {
        format!("{}:account:{account}", self.name)
    }

    /// Whether `ip` (its network) is banned.
    pub async fn check_ip(
        &self,
        store: &dyn RateLimitStore,
        ip: IpAddr,
    ) -> Result<Decision, StoreError> {
        let key = self.ip_key(ip);
        match store.ban_status_now(&key, &self.quota) {
            Some(answer) => answer,
            None => store.ban_status(&key, &self.quota).await,
        }
    }

    /// Records an authentication failure from `ip`.
    pub async fn record_ip_failure(
        &self,
        store: &dyn RateLimitStore,
        ip: IpAddr,
    ) -> Result<Decision, StoreError> {
        store.record_failure(&self.ip_key(ip), &self.quota).await
    }

    /// Lifts the ban on `ip`'s network (operator action).
    pub async fn lift_ip(&self, store: &dyn RateLimitStore, ip: IpAddr) -> Result<(), StoreError> {
        store.lift_ban(&self.ip_key(ip)).await
    }

    /// Whether `account` is banned.
    pub async fn check_account(
        &self,
        store: &dyn RateLimitStore,
        account: &str,
    ) -> Result<Decision, StoreError> {
        store
            .ban_status(&self.account_key(account), &self.quota)
            .await
    }

    /// Records an authentication failure against `account`.
    pub async fn record_account_failure(
        &self,
        store: &dyn RateLimitStore,
        account: &str,
    ) -> Result<Decision, StoreError> {
        store
            .record_failure(&self.account_key(account), &self.quota)
            .await
    }

    /// Lifts the ban on `account` (operator action).
    pub async fn lift_account(
        &self,
        store: &dyn RateLimitStore,
        account: &str,
    ) -> Result<(), StoreError> {
        store.lift_ban(&self.account_key(account)).await
    }

    /// The `RateLimit-Policy` header item of this ban (`q` = maxretry, `w` = findtime).
    pub fn policy_header(&self) -> String {
        ban_policy_header(&self.name, &self.quota)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["subject", "auth-ban", "a.b_c-1", &"x".repeat(64)] {
            assert!(
                SubjectLimit::new(good, GcraQuota::per_minute(1)).is_ok(),
                "{good}"
            );
        }
        for bad in ["", "a:b", "sp ace", "quo\"te", "é", &"x".repeat(65)] {
            assert!(
                SubjectLimit::new(bad, GcraQuota::per_minute(1)).is_err(),
                "{bad}"
            );
            assert!(FailureBan::new(bad, BanQuota::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_keys() {
        let s = SubjectLimit::new("subject", GcraQuota::per_minute(300))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.on_store_failure(), FailurePolicy::Closed);
        assert_eq!(s.key("a:b"), "subject:a:b");
        let b = FailureBan::new("ban", BanQuota::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.on_store_failure(), FailurePolicy::Closed);
        assert_eq!(b.policy_header(), "\"ban\";q=5;w=60");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.ip_key(ip("192.0.2.1")), "ban:ip:192.0.2.1/32");
        assert_eq!(b.ip_key(ip("::ffff:192.0.2.1")), "ban:ip:192.0.2.1/32");
        assert_eq!(
            b.ip_key(ip("2001:db8::1")),
            b.ip_key(ip("2001:db8::ffff:1")),
            "same /64"
        );
        let b48 = b.clone().ipv6_prefix(48);
        assert_eq!(b48.ip_key(ip("2001:db8:0:7::1")), "ban:ip:2001:db8::/48");
    }
}
