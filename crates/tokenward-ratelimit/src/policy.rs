//! Rate-limit policies: a name, a key and a quota, and what to do when the store fails.
//!
//! A policy builds the store key `{name}:{key}` (names contain no `:`, so keys of different
//! policies never collide) and calls the [`RateLimitStore`]. It returns the store's result
//! unchanged; the caller (the Guard) applies the policy's [`FailurePolicy`] to an error.

use std::net::IpAddr;

use arrayvec::ArrayString;
use tokenward_core::{FailurePolicy, MAX_ID_LEN, SettingError, StoreError, StoreId};

use crate::decision::{ban_policy_header, ratelimit_policy_header};
use crate::ip::{NETWORK_IPV4_PREFIX, NETWORK_IPV6_PREFIX, client_network, net_key, network_of};
use crate::key::{LimitKey, MAX_KEY_LEN};
use crate::quota::{BanQuota, GcraCharge, GcraQuota};
use crate::store::{Decision, RateLimitStore};

/// The longest policy name.
pub const MAX_POLICY_NAME_LEN: usize = 64;

/// The longest key a policy builds: `{name}:account:{id}` (an IP network is shorter than an
/// id). Every policy key fits in a [`LimitKey`], so building one never fails.
const _: () = assert!(MAX_POLICY_NAME_LEN + ":account:".len() + MAX_ID_LEN <= MAX_KEY_LEN);

/// The longest key a [`SubjectLimit`] builds: `{name}:{identity}`.
const SUBJECT_KEY_CAP: usize = MAX_POLICY_NAME_LEN + 1 + MAX_ID_LEN;
const _: () = assert!(SUBJECT_KEY_CAP <= MAX_KEY_LEN);

/// A policy name that is not 1..=64 ASCII letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid policy name {0:?}: use 1..={MAX_POLICY_NAME_LEN} ASCII letters, digits, '-', '_', '.'"
)]
pub struct PolicyNameError(String);

fn check_name(name: &str) -> Result<String, PolicyNameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POLICY_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(PolicyNameError(name.to_owned()))
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
/// use std::num::NonZeroU32;
/// use tokenward_core::StoreId;
/// use tokenward_ratelimit::{GcraQuota, SubjectLimit};
///
/// let quota = GcraQuota::per_minute(NonZeroU32::new(300).unwrap());
/// let limit = SubjectLimit::new("subject", quota)?;
/// assert_eq!(limit.key(&StoreId::new("alice")?), "subject:alice");
/// assert_eq!(limit.policy_header(), "\"subject\";q=300;w=60");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectLimit {
    name: String,
    quota: GcraQuota,
    failure_policy: FailurePolicy,
}

impl SubjectLimit {
    /// A limit named `name` (1..=64 ASCII letters, digits, `-`, `_`, `.`; it appears in
    /// store keys and `RateLimit` headers) with failure policy closed
    /// ([`FailurePolicy::Closed`]).
    pub fn new(name: &str, quota: GcraQuota) -> Result<Self, PolicyNameError> {
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

    /// What one ordinary request takes: one cell of the quota.
    pub fn charge(&self) -> GcraCharge {
        GcraCharge::single(self.quota)
    }

    /// What a store failure means.
    pub fn on_store_failure(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// The store key for `identity`: `{name}:{identity}`, owned (for a store call that
    /// `await`s; a synchronous one takes [`with_key`](Self::with_key), which does not
    /// allocate).
    pub fn key(&self, identity: &StoreId<'_>) -> LimitKey<'static> {
        // Built without the formatting machinery: Redis-backed Guards build it per request.
        let mut key = String::with_capacity(self.name.len() + 1 + identity.as_str().len());
        key.push_str(&self.name);
        key.push(':');
        key.push_str(identity.as_str());
        LimitKey::from_policy(key)
    }

    /// Calls `f` with the store key for `identity` ([`key`](Self::key)'s bytes), built on the
    /// stack: no heap allocation. For a synchronous store call (`gcra_now`), which every
    /// authenticated request makes; a call that must `await` the store takes
    /// [`key`](Self::key) instead.
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use tokenward_core::StoreId;
    /// use tokenward_ratelimit::{GcraQuota, SubjectLimit};
    ///
    /// let limit = SubjectLimit::new("subject", GcraQuota::per_minute(NonZeroU32::new(2).unwrap()))?;
    /// let alice = StoreId::new("alice")?;
    /// assert_eq!(limit.with_key(&alice, |key| key.as_str().to_owned()), "subject:alice");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn with_key<R>(&self, identity: &StoreId<'_>, f: impl FnOnce(&LimitKey<'_>) -> R) -> R {
        let mut key = ArrayString::<SUBJECT_KEY_CAP>::new();
        let built = key
            .try_push_str(&self.name)
            .and_then(|()| key.try_push_str(":"))
            .and_then(|()| key.try_push_str(identity.as_str()));
        match built {
            Ok(()) => f(&LimitKey::from_policy_str(&key)),
            // Unreachable (names and identities are bounded, checked at compile time above);
            // the heap-built key is the same key.
            Err(_) => f(&self.key(identity)),
        }
    }

    /// Takes one cell for `identity`.
    pub async fn check(
        &self,
        store: &dyn RateLimitStore,
        identity: &StoreId<'_>,
    ) -> Result<Decision, StoreError> {
        self.check_charge(store, identity, &self.charge()).await
    }

    /// [`check`](Self::check) without `async`, for a store that answers in process: `Some`
    /// is the answer (the cell is taken), `None` means the store needs I/O — call
    /// [`check`](Self::check). The in-memory store always answers: this is its fastest path
    /// (no boxed future, no runtime).
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use tokenward_core::StoreId;
    /// use tokenward_ratelimit::{GcraQuota, MemoryRateLimitStore, SubjectLimit};
    ///
    /// let limit = SubjectLimit::new("subject", GcraQuota::per_minute(NonZeroU32::new(2).unwrap()))?;
    /// let store = MemoryRateLimitStore::new();
    /// let alice = StoreId::new("alice")?;
    /// for expected in [true, true, false] {
    ///     let decision = limit.check_now(&store, &alice).expect("in memory")?;
    ///     assert_eq!(decision.allowed, expected);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_now(
        &self,
        store: &dyn RateLimitStore,
        identity: &StoreId<'_>,
    ) -> Option<Result<Decision, StoreError>> {
        let charge = self.charge();
        self.with_key(identity, |key| store.gcra_now(key, &charge))
    }

    /// Takes `cost` cells for `identity` (a per-route cost). A cost outside `1..=burst` is an
    /// [`InvalidInput`](StoreError::InvalidInput) error, and nothing is taken; make the
    /// charge once with [`GcraQuota::charge`] and use [`check_charge`](Self::check_charge) to
    /// have it checked at startup instead.
    pub async fn check_cost(
        &self,
        store: &dyn RateLimitStore,
        identity: &StoreId<'_>,
        cost: u32,
    ) -> Result<Decision, StoreError> {
        let charge = self
            .quota
            .charge(cost)
            .map_err(|e| StoreError::invalid_input(e.to_string()))?;
        self.check_charge(store, identity, &charge).await
    }

    /// Takes `charge` for `identity`: a charge of this limit's quota, made once with
    /// [`GcraQuota::charge`] (a per-route cost checked at startup). A charge of another quota
    /// is refused ([`InvalidInput`](StoreError::InvalidInput)), so the key's state is only
    /// ever kept under this limit's quota.
    pub async fn check_charge(
        &self,
        store: &dyn RateLimitStore,
        identity: &StoreId<'_>,
        charge: &GcraCharge,
    ) -> Result<Decision, StoreError> {
        if *charge.quota() != self.quota {
            return Err(StoreError::invalid_input(format!(
                "a charge of {:?} for the limit `{}` of {:?}",
                charge.quota(),
                self.name,
                self.quota
            )));
        }
        if let Some(answer) = self.with_key(identity, |key| store.gcra_now(key, charge)) {
            return answer;
        }
        store.gcra(&self.key(identity), charge).await
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
/// default) and, optionally, per account — plus explicit bans of a whole client network.
///
/// The Guard checks the ban before verifying a token and records a failure for every request
/// that fails authentication; `maxretry` failures within `findtime` ban the key for
/// `bantime` (default 5 / 60 s / 300 s).
///
/// # Network bans
///
/// Failures are counted per address ([`ip_key`](Self::ip_key)) only. A whole client network
/// ([`network_key`](Self::network_key): IPv4 /24, IPv6 /48 by default, the networks the
/// anomaly detectors count in — [`network_of`]) is banned only explicitly, by
/// [`ban_network`](Self::ban_network) (the anomaly detectors' `ban` action does). The ban
/// check ([`check_ip`](Self::check_ip), and the Guard's one-call check through
/// [`BanCheck`]) refuses a client when **either** its address key or its network key is
/// banned.
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
/// use tokenward_core::StoreId;
/// use tokenward_ratelimit::{BanQuota, FailureBan};
///
/// let ban = FailureBan::new("auth-ban", BanQuota::fail2ban_default())?;
/// let ip: IpAddr = "2001:db8:1:2:aaaa::1".parse()?;
/// assert_eq!(ban.ip_key(ip), "auth-ban:ip:2001:db8:1:2::/64");
/// assert_eq!(ban.account_key(&StoreId::new("alice")?), "auth-ban:account:alice");
/// assert_eq!(ban.network_key(ip), "auth-ban:net:2001:db8:1::/48");
/// assert_eq!(ban.network_key("192.0.2.7".parse()?), "auth-ban:net:192.0.2.0/24");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureBan {
    name: String,
    quota: BanQuota,
    ipv6_prefix: u8,
    network_ipv4_prefix: u8,
    network_ipv6_prefix: u8,
    failure_policy: FailurePolicy,
}

impl FailureBan {
    /// The default IPv6 prefix a ban covers.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;

    /// A ban named `name` (same rules as [`SubjectLimit::new`]), IPv6 /64, failure policy
    /// closed.
    pub fn new(name: &str, quota: BanQuota) -> Result<Self, PolicyNameError> {
        Ok(FailureBan {
            name: check_name(name)?,
            quota,
            ipv6_prefix: Self::DEFAULT_IPV6_PREFIX,
            network_ipv4_prefix: NETWORK_IPV4_PREFIX,
            network_ipv6_prefix: NETWORK_IPV6_PREFIX,
            failure_policy: FailurePolicy::Closed,
        })
    }

    /// The client network a [network ban](Self#network-bans) covers: IPv4 `/ipv4` (8..=32,
    /// default 24) and IPv6 `/ipv6` (16..=128, default 48) — set the same prefixes the
    /// anomaly detectors count in, on the Guard's ban and on the one the detectors' responder
    /// bans through. Out of range is a [`SettingError`] naming the prefix, never clamped.
    pub fn network_prefixes(mut self, ipv4: u8, ipv6: u8) -> Result<Self, SettingError> {
        self.network_ipv4_prefix = SettingError::check_range("network_ipv4_prefix", ipv4, 8..=32)?;
        self.network_ipv6_prefix =
            SettingError::check_range("network_ipv6_prefix", ipv6, 16..=128)?;
        Ok(self)
    }

    /// The prefixes of a banned network: `(ipv4, ipv6)`.
    pub fn network_prefix_lens(&self) -> (u8, u8) {
        (self.network_ipv4_prefix, self.network_ipv6_prefix)
    }

    /// Bans IPv6 clients by this prefix length (default 64). More than 128 is a
    /// [`SettingError`] naming `ipv6_prefix`, never clamped.
    pub fn ipv6_prefix(mut self, prefix: u8) -> Result<Self, SettingError> {
        self.ipv6_prefix = SettingError::check_range("ipv6_prefix", prefix, 0..=128)?;
        Ok(self)
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
    pub fn ip_key(&self, ip: IpAddr) -> LimitKey<'static> {
        LimitKey::from_policy(net_key(
            &self.name,
            ":ip:",
            client_network(ip, self.ipv6_prefix),
        ))
    }

    /// The store key of a client address's network ([network bans](Self#network-bans)):
    /// `{name}:net:{network}`, the network by [`network_of`] with this ban's
    /// [network prefixes](Self::network_prefixes).
    pub fn network_key(&self, ip: IpAddr) -> LimitKey<'static> {
        LimitKey::from_policy(net_key(
            &self.name,
            ":net:",
            network_of(ip, self.network_ipv4_prefix, self.network_ipv6_prefix),
        ))
    }

    /// The store key for an account: `{name}:account:{account}`.
    pub fn account_key(&self, account: &StoreId<'_>) -> LimitKey<'static> {
        LimitKey::from_policy(format!("{}:account:{}", self.name, account.as_str()))
    }

    /// Whether `ip` is banned: by its address key ([`ip_key`](Self::ip_key)) **or** its
    /// network key ([`network_key`](Self::network_key)). Read-only: nothing is counted.
    ///
    /// The decision is the address key's, unless the network is banned and the address is
    /// not or for a shorter time: then the network's ([`BanCheck::combine`]). Two store
    /// calls (in memory, two lookups; the Guard's one-call backends read both keys in their
    /// one call instead).
    pub async fn check_ip(
        &self,
        store: &dyn RateLimitStore,
        ip: IpAddr,
    ) -> Result<Decision, StoreError> {
        let address = self.status(store, &self.ip_key(ip)).await?;
        let network = self.check_network(store, ip).await?;
        Ok(BanCheck::combine(address, Some(network)))
    }

    /// Whether `ip`'s whole network (its [`network_key`](Self::network_key)) is banned, its
    /// address aside. Read-only.
    pub async fn check_network(
        &self,
        store: &dyn RateLimitStore,
        ip: IpAddr,
    ) -> Result<Decision, StoreError> {
        self.status(store, &self.network_key(ip)).await
    }

    /// Bans `ip`'s whole network (its [`network_key`](Self::network_key)) for `bantime` at
    /// once: one failure recorded under a quota of one (`maxretry` 1, this ban's `findtime`).
    /// What the anomaly detectors' `ban` action does. An already banned network stays banned
    /// until its ban ends (a ban is never extended). A `bantime` out of
    /// [`BanQuota`]'s range is [`InvalidInput`](StoreError::InvalidInput).
    pub async fn ban_network(
        &self,
        store: &dyn RateLimitStore,
        ip: IpAddr,
        bantime: std::time::Duration,
    ) -> Result<Decision, StoreError> {
        let quota = BanQuota::new(std::num::NonZeroU32::MIN, self.quota.findtime(), bantime)
            .map_err(|e| StoreError::invalid_input(e.to_string()))?;
        store.record_failure(&self.network_key(ip), &quota).await
    }

    /// Lifts the ban on `ip`'s whole network ([network bans](Self#network-bans); operator
    /// action). The address's own ban, if any, stays: see [`lift_ip`](Self::lift_ip).
    pub async fn lift_network(
        &self,
        store: &dyn RateLimitStore,
        ip: IpAddr,
    ) -> Result<(), StoreError> {
        store.lift_ban(&self.network_key(ip)).await
    }

    /// The [`BanCheck`] of `ip` for a one-call backend: `address` and `network` are
    /// [`ip_key`](Self::ip_key) and [`network_key`](Self::network_key) of `ip`, made by the
    /// caller (they must outlive the check).
    pub fn ban_check<'a>(
        &'a self,
        address: &'a LimitKey<'a>,
        network: &'a LimitKey<'a>,
    ) -> BanCheck<'a> {
        BanCheck::new(address, &self.quota).network(network)
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
        account: &StoreId<'_>,
    ) -> Result<Decision, StoreError> {
        self.status(store, &self.account_key(account)).await
    }

    /// Records an authentication failure against `account`.
    pub async fn record_account_failure(
        &self,
        store: &dyn RateLimitStore,
        account: &StoreId<'_>,
    ) -> Result<Decision, StoreError> {
        store
            .record_failure(&self.account_key(account), &self.quota)
            .await
    }

    /// Lifts the ban on `account` (operator action).
    pub async fn lift_account(
        &self,
        store: &dyn RateLimitStore,
        account: &StoreId<'_>,
    ) -> Result<(), StoreError> {
        store.lift_ban(&self.account_key(account)).await
    }

    /// The ban status of `key`, through the store's synchronous fast path where it has one.
    async fn status(
        &self,
        store: &dyn RateLimitStore,
        key: &LimitKey<'_>,
    ) -> Result<Decision, StoreError> {
        match store.ban_status_now(key, &self.quota) {
            Some(answer) => answer,
            None => store.ban_status(key, &self.quota).await,
        }
    }

    /// The `RateLimit-Policy` header item of this ban (`q` = maxretry, `w` = findtime).
    pub fn policy_header(&self) -> String {
        ban_policy_header(&self.name, &self.quota)
    }
}

/// The failure-ban part of a one-call per-request check (the Guard's `CombinedCheck`, the
/// Redis stores' `check_request`): the client's address key, optionally its network key, and
/// the ban's quota. The client is banned when **either** key is banned; both are read,
/// neither counted.
///
/// ```
/// use std::net::IpAddr;
/// use tokenward_ratelimit::{BanCheck, BanQuota, FailureBan};
///
/// let ban = FailureBan::new("auth-ban", BanQuota::fail2ban_default())?;
/// let ip: IpAddr = "203.0.113.7".parse()?;
/// let (address, network) = (ban.ip_key(ip), ban.network_key(ip));
/// let check = ban.ban_check(&address, &network);
/// assert_eq!(check.address, "auth-ban:ip:203.0.113.7/32");
/// assert_eq!(check.network.map(|k| k.as_str()), Some("auth-ban:net:203.0.113.0/24"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BanCheck<'a> {
    /// The address key: failures are counted here ([`FailureBan::ip_key`]).
    pub address: &'a LimitKey<'a>,
    /// The network key, banned only explicitly ([`FailureBan::network_key`]); `None`: only
    /// the address is checked.
    pub network: Option<&'a LimitKey<'a>>,
    /// The ban's quota (both keys are read under it).
    pub quota: &'a BanQuota,
}

impl<'a> BanCheck<'a> {
    /// A check of the `address` key alone, under `quota`.
    pub fn new(address: &'a LimitKey<'a>, quota: &'a BanQuota) -> Self {
        BanCheck {
            address,
            network: None,
            quota,
        }
    }

    /// Also checks the `network` key.
    #[must_use]
    pub fn network(mut self, network: &'a LimitKey<'a>) -> Self {
        self.network = Some(network);
        self
    }

    /// The ban decision of a client from its address key's and network key's statuses (as
    /// [`RateLimitStore::ban_status`] reports each): the address's, unless the network is
    /// banned and the address is not, or for less time — then the network's. So a banned
    /// client learns the longer of its bans.
    pub fn combine(address: Decision, network: Option<Decision>) -> Decision {
        match network {
            Some(network)
                if !network.allowed
                    && (address.allowed || network.retry_after > address.retry_after) =>
            {
                network
            }
            _ => address,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn quota() -> GcraQuota {
        GcraQuota::per_minute(NonZeroU32::MIN)
    }

    #[test]
    fn names() {
        for good in ["subject", "auth-ban", "a.b_c-1", &"x".repeat(64)] {
            assert!(SubjectLimit::new(good, quota()).is_ok(), "{good}");
        }
        for bad in ["", "a:b", "sp ace", "quo\"te", "é", &"x".repeat(65)] {
            assert!(SubjectLimit::new(bad, quota()).is_err(), "{bad}");
            assert!(FailureBan::new(bad, BanQuota::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_keys() {
        let s = SubjectLimit::new("subject", quota()).unwrap();
        assert_eq!(s.on_store_failure(), FailurePolicy::Closed);
        assert_eq!(s.key(&StoreId::new("a:b").unwrap()), "subject:a:b");
        let b = FailureBan::new("ban", BanQuota::default()).unwrap();
        assert_eq!(b.on_store_failure(), FailurePolicy::Closed);
        assert_eq!(b.policy_header(), "\"ban\";q=5;w=60");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(b.ip_key(ip("192.0.2.1")), "ban:ip:192.0.2.1/32");
        assert_eq!(b.ip_key(ip("::ffff:192.0.2.1")), "ban:ip:192.0.2.1/32");
        assert_eq!(
            b.ip_key(ip("2001:db8::1")),
            b.ip_key(ip("2001:db8::ffff:1")),
            "same /64"
        );
        let b48 = b.clone().ipv6_prefix(48).unwrap();
        assert_eq!(b48.ip_key(ip("2001:db8:0:7::1")), "ban:ip:2001:db8::/48");
        // Out of range is an error at build time, not a clamp.
        let err = b.ipv6_prefix(129).unwrap_err();
        assert_eq!(err.setting(), "ipv6_prefix");
    }

    #[test]
    fn network_keys() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let b = FailureBan::new("ban", BanQuota::default()).unwrap();
        assert_eq!(b.network_prefix_lens(), (24, 48));
        assert_eq!(b.network_key(ip("192.0.2.1")), "ban:net:192.0.2.0/24");
        assert_eq!(
            b.network_key(ip("::ffff:192.0.2.200")),
            "ban:net:192.0.2.0/24"
        );
        assert_eq!(
            b.network_key(ip("2001:db8:0:7::1")),
            "ban:net:2001:db8::/48"
        );
        let b16 = b.clone().network_prefixes(16, 32).unwrap();
        assert_eq!(b16.network_key(ip("192.0.2.1")), "ban:net:192.0.0.0/16");
        assert_eq!(
            b16.network_key(ip("2001:db8:7::1")),
            "ban:net:2001:db8::/32"
        );
        assert_eq!(
            b.clone().network_prefixes(33, 48).unwrap_err().setting(),
            "network_ipv4_prefix"
        );
        assert_eq!(
            b.network_prefixes(24, 8).unwrap_err().setting(),
            "network_ipv6_prefix"
        );
    }

    #[test]
    fn combined_bans_report_the_longer() {
        use std::time::Duration;
        let s = Duration::from_secs;
        let open = Decision::allowed(5, 4, s(10));
        let short = Decision::denied(5, s(10), s(10));
        let long = Decision::denied(5, s(100), s(100));
        let cases = [
            (open, None, open),
            (open, Some(open), open),
            (short, Some(open), short),
            (open, Some(long), long),
            (short, Some(long), long),
            (long, Some(short), long),
        ];
        for (address, network, want) in cases {
            assert_eq!(
                BanCheck::combine(address, network),
                want,
                "{address:?} {network:?}"
            );
        }
    }

    #[test]
    fn stack_keys_are_the_keys_and_the_longest_fits() {
        let longest = "i".repeat(MAX_ID_LEN);
        let name = "n".repeat(MAX_POLICY_NAME_LEN);
        for (name, id) in [
            ("subject", "alice"),
            ("subject", "a:b"),
            (&*name, &*longest),
        ] {
            let limit = SubjectLimit::new(name, quota()).unwrap();
            let id = StoreId::new(id).unwrap();
            let owned = limit.key(&id);
            let on_stack = limit.with_key(&id, |key| {
                // Borrowed from the stack buffer: the heap fallback was not taken.
                assert!(key.is_borrowed());
                key.clone().into_owned()
            });
            assert_eq!(on_stack, owned);
        }
    }

    #[test]
    fn longest_keys_fit() {
        let name = "n".repeat(MAX_POLICY_NAME_LEN);
        let id = "i".repeat(MAX_ID_LEN);
        let id = StoreId::new(id.as_str()).unwrap();
        let s = SubjectLimit::new(&name, quota()).unwrap();
        let b = FailureBan::new(&name, BanQuota::default()).unwrap();
        for key in [s.key(&id), b.account_key(&id)] {
            assert!(
                LimitKey::new(key.as_str()).is_ok(),
                "{} bytes",
                key.as_str().len()
            );
        }
        let v6: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let net = b.clone().network_prefixes(32, 128).unwrap().network_key(v6);
        assert!(LimitKey::new(net.as_str()).is_ok());
        let all = b.ipv6_prefix(128).unwrap().ip_key(v6);
        assert!(LimitKey::new(all.as_str()).is_ok());
    }
}
