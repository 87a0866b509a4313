//! Rate limits that know who the caller is.
//!
//! IP-only limits are evaded by rotating addresses and know nothing about the caller;
//! unauthenticated brute force needs a ban that outlasts its counting window. This crate
//! provides both, over one [`RateLimitStore`]:
//!
//! - [`SubjectLimit`] — GCRA (rate + burst, e.g. 300 per minute) per verified subject,
//!   client or tenant, checked after the token is verified; a per-route `cost` takes several
//!   cells at once.
//! - [`FailureBan`] — fail2ban semantics per client IP (IPv6 by /64) and optionally per
//!   account: `maxretry` authentication failures within `findtime` ban for `bantime` (5 /
//!   60 s / 300 s by default); the ban outlasts the window; operators can lift it.
//! - [`Decision`] — allowed/denied, limit, remaining, reset, retry-after, rendered as
//!   `Retry-After` and the IETF `RateLimit` / `RateLimit-Policy` fields ([`decision`]).
//! - [`ClientIp`] — the client address from the peer, or from `Forwarded` /
//!   `X-Forwarded-For` only through trusted proxies, walked from the right ([`ip`]).
//!
//! Backends: [`MemoryRateLimitStore`] (this crate, on `governor`, bounded; feature `memory`,
//! on by default) and the Redis store in `tokenward-redis` (Lua scripts on the server's clock,
//! shared by all instances). Custom backends implement [`RateLimitStore`] — whose inputs are
//! valid by construction: [`LimitKey`]s built by the policies, [`GcraCharge`]s and
//! [`BanQuota`]s checked where they are made — and run the `conformance` suite (feature
//! `conformance`). A user with a store of their own turns default features off and compiles
//! none of the in-memory store's dependencies.
//!
//! ```
//! use std::net::IpAddr;
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use tokenward_core::{ManualClock, StoreId, UnixTime};
//! use tokenward_ratelimit::{
//!     BanQuota, FailureBan, GcraQuota, LimiterClock, MemoryRateLimitStore, SubjectLimit,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! # runtime.block_on(async {
//! // The store keeps its own (monotonic) time; a test drives it with a ManualClock.
//! let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//! let store = MemoryRateLimitStore::with_clock(LimiterClock::manual(&clock));
//!
//! // Per subject: 300 requests per minute, at most 10 at once.
//! let n = |n| NonZeroU32::new(n).ok_or("zero");
//! let quota = GcraQuota::per_minute(n(300)?).with_burst(n(10)?)?;
//! let per_subject = SubjectLimit::new("subject", quota)?;
//! let (alice, bob) = (StoreId::new("alice")?, StoreId::new("bob")?);
//! for _ in 0..10 {
//!     assert!(per_subject.check(&store, &alice).await?.allowed);
//! }
//! let denied = per_subject.check(&store, &alice).await?;
//! assert!(!denied.allowed);
//! assert_eq!(denied.retry_after_header().as_deref(), Some("1")); // one cell per 200 ms
//! assert_eq!(per_subject.ratelimit_header(&denied), "\"subject\";r=0;t=2"); // all 10 back in 2 s
//! assert!(per_subject.check(&store, &bob).await?.allowed); // bob has his own budget
//!
//! // Failure ban: 5 failures within 60 s ban the client for 5 minutes.
//! let ban = FailureBan::new("auth-ban", BanQuota::fail2ban_default())?;
//! let ip: IpAddr = "203.0.113.9".parse()?;
//! for _ in 0..5 {
//!     ban.record_ip_failure(&store, ip).await?;
//! }
//! let status = ban.check_ip(&store, ip).await?;
//! assert_eq!(status.retry_after_header().as_deref(), Some("300"));
//!
//! // The ban outlasts the counting window, then ends on its own.
//! clock.advance(Duration::from_secs(120));
//! assert!(!ban.check_ip(&store, ip).await?.allowed);
//! clock.advance(Duration::from_secs(180));
//! assert!(ban.check_ip(&store, ip).await?.allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Mapping from Rack::Attack
//!
//! Rack::Attack offers two ban helpers, both counting requests that match a block within
//! `findtime` and banning for `bantime` once `maxretry` is reached:
//!
//! - `Fail2Ban.filter(discriminator, maxretry:, findtime:, bantime:) { matched? }` blocks the
//!   requests that match the filter while counting them, and every request once banned.
//! - `Allow2Ban.filter(...)` lets matching requests through until the limit is hit, then
//!   blocks.
//!
//! [`FailureBan`] is their common core with these deliberate differences:
//!
//! - **It counts real authentication failures**, recorded by the Guard after verification
//!   failed — not requests matching a path or parameter pattern. A request that fails is
//!   already answered with 401, so there is no Fail2Ban/Allow2Ban choice for it: like
//!   `Allow2Ban`, requests go through (to verification) until the ban, and like both, every
//!   request from a banned key is refused (429 with `Retry-After`) before verification.
//! - **Sliding window**: a failure counts for exactly `findtime` after it happened
//!   (fail2ban's semantics); Rack::Attack counts in fixed cache windows, so up to
//!   2 × (`maxretry` − 1) failures straddling a window boundary do not ban there.
//! - **IPv6 by network** (/64 by default) instead of the raw discriminator, and client IPs
//!   from trusted proxies only ([`ClientIp`]) instead of `request.ip`'s defaults.
//! - **Failures during a ban neither count nor extend it**; the ban ends after `bantime`
//!   and counting starts afresh (no escalation).
//! - **Operators lift bans** through [`FailureBan::lift_ip`] / [`FailureBan::lift_account`]
//!   (Rack::Attack: deleting cache keys by hand).
//! - **Store outages follow a [`FailurePolicy`](tokenward_core::FailurePolicy)** per
//!   policy, closed by default for bans and subject limits alike (documented on each type);
//!   Rack::Attack silently allows on cache errors.
//!
//! `Rack::Attack.throttle` with a discriminator on the verified subject corresponds to
//! [`SubjectLimit`], with GCRA instead of a fixed-window counter (no double burst at
//! window edges).
#![forbid(unsafe_code)]

pub mod decision;
pub mod ip;
mod key;
#[cfg(feature = "memory")]
mod memory;
mod policy;
mod quota;
mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use decision::{ban_policy_header, ratelimit_policy_header};
pub use ip::{
    ClientIp, ForwardedHeader, NETWORK_IPV4_PREFIX, NETWORK_IPV6_PREFIX, NetworkError,
    client_network, network_of,
};
pub use key::{LimitKey, LimitKeyError, MAX_KEY_LEN};
#[cfg(feature = "memory")]
pub use memory::{LimiterClock, MemoryRateLimitConfig, MemoryRateLimitStore};
pub use policy::{BanCheck, FailureBan, MAX_POLICY_NAME_LEN, PolicyNameError, SubjectLimit};
pub use quota::{BanQuota, GcraCharge, GcraQuota, MAX_SPAN};
pub use store::{Decision, RateLimitStore};
