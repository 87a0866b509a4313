//! The rate-limit store trait and the decision its methods return.

use std::time::Duration;

use async_trait::async_trait;
use tokenward_core::StoreError;

use crate::key::LimitKey;
use crate::quota::{BanQuota, GcraCharge};

/// The outcome of one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The quota's limit (for `RateLimit-Policy` / `RateLimit` headers).
    pub limit: u32,
    /// Requests still admissible right now after this one (0 when denied).
    pub remaining: u32,
    /// Time until the quota is fully replenished (or, for a ban, until it ends).
    pub reset: Duration,
    /// When denied: how long until a request would be admitted.
    pub retry_after: Option<Duration>,
}

/// Where rate-limit state lives: GCRA limits and fail2ban-style failure bans, per key.
///
/// Keys ([`LimitKey`]) are built by the policies and already include the policy's name;
/// quotas ([`GcraCharge`], [`BanQuota`]) are checked where they are made. **Every input a
/// method receives is valid by construction**: a backend does not validate again, and has no
/// invalid-input case to get wrong. Build [`Decision`]s with [`Decision::allowed`] and
/// [`Decision::denied`] (the type is `#[non_exhaustive]`).
///
/// # Contract
///
/// - **The store keeps its own time.** No method takes "now": an in-process store reads its
///   own clock (the in-memory store a monotonic clock, or a `ManualClock` in tests), a shared
///   store its server's (Redis `TIME`). This is the convention of every tokenward store
///   trait, and for rate limits it matters most: a store shared by several application
///   instances is the only clock they all agree on — were each to pass its own "now", an
///   instance whose clock runs ahead would take cells back early and one stepped backwards
///   would lift bans late or early. **Time never runs backwards** for a key's decisions.
/// - **Atomic per key**: concurrent callers (tasks, threads, processes for a shared store)
///   never admit more than the quota allows, and every call sees the effect of every call
///   acknowledged before it.
/// - **Keys are opaque and independent**: any bytes but NUL, up to
///   [`MAX_KEY_LEN`](crate::MAX_KEY_LEN); keys differing in a single byte (or only in case)
///   never share state, and GCRA state never mixes with ban state.
/// - **State expires on its own**: a GCRA key once its TAT (below) is back at "now" — it then
///   means what a missing key means —, counted failures `findtime` after the latest of them,
///   a ban when it ends. No cleanup job: removal happens by TTL or inside ordinary calls (a
///   store that prunes on a schedule documents it). Memory stays bounded under a flood of
///   distinct keys (documented per backend); a full store refuses a *new* key with
///   [`StoreError::CapacityExceeded`] and never evicts live state (that would hand out a
///   fresh burst or lift a ban).
/// - **One round trip per call** on a networked backend (one command, one pipeline or one
///   script).
/// - Bounded waiting; errors are typed [`StoreError`]s; never a panic, never a made-up
///   decision.
///
/// # GCRA
///
/// [`gcra`](Self::gcra) with a charge of `n` cells of a quota with limit `L`, burst `B` and
/// emission interval `T` ([`GcraQuota::emission_interval`](crate::GcraQuota::emission_interval);
/// a store keeping coarser time rounds `T` **up** to its unit, at most 1 ms — never down,
/// which would admit more than the quota). The key's theoretical arrival time `TAT` is the
/// stored one, or `now` if none is stored or it is earlier than `now`. Then:
///
/// - the request is **admitted if and only if `TAT + n·T − B·T ≤ now`** (equivalently
///   `TAT − now ≤ (B − n)·T`);
/// - admitted: the key's TAT becomes `TAT' = TAT + n·T`, and the decision is allowed with
///   `limit = L`, `remaining = ⌊(now + B·T − TAT') / T⌋`, `reset = TAT' − now`,
///   `retry_after = None`;
/// - denied: **nothing is stored**, and the decision is denied with `limit = L`,
///   `remaining = 0`, `retry_after = TAT + n·T − B·T − now` (more than zero), and
///   `reset = TAT − now`.
///
/// So `reset` is exactly the time until all `B` cells are back and `retry_after` the time
/// until `n` are: a fresh key admits `B` single requests at once, then one every `T`. The
/// durations are exact to the store's time unit (Redis: microseconds).
///
/// # Failure bans
///
/// With `maxretry` `M`, and the failures of the key *counted* at `now` being those recorded at
/// times `f` with `now < f + findtime` (a sliding window, as fail2ban's: keep the last `M`
/// failure times, not a counter per fixed window):
///
/// - **banned** from the failure that makes `M` counted, at `b`, while `now < b + bantime` —
///   however `findtime` compares. Failures recorded during a ban neither count nor extend
///   it; when it ends, counting starts afresh (the failures before it are forgotten).
/// - [`ban_status`](Self::ban_status) and [`record_failure`](Self::record_failure) decide with
///   `limit = M`. Not banned: allowed, `remaining = M − counted`, `reset` = the time until
///   the oldest counted failure leaves the window (`f_oldest + findtime − now`; zero if none
///   counts), `retry_after = None`. Banned: denied, `remaining = 0`,
///   `reset = retry_after = b + bantime − now`.
/// - [`lift_ban`](Self::lift_ban) ends a ban and forgets the counted failures.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Takes `charge.cost()` cells of `charge.quota()` for `key` ([GCRA](Self#gcra)).
    async fn gcra(&self, key: &LimitKey<'_>, charge: &GcraCharge) -> Result<Decision, StoreError>;
    /// Whether `key` is banned now under `quota`; records nothing
    /// ([failure bans](Self#failure-bans)).
    async fn ban_status(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError>;
    /// Records one authentication failure for `key`; the returned decision is denied if the
    /// key is (now) banned.
    async fn record_failure(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Result<Decision, StoreError>;
    /// Lifts a ban and forgets the failures counted for `key` (operator action); lifting a
    /// key without a ban is no error.
    async fn lift_ban(&self, key: &LimitKey<'_>) -> Result<(), StoreError>;

    /// The synchronous fast path of [`gcra`](Self::gcra), for stores that answer without I/O
    /// (in process): `Some(answer)` is the call itself — the cells are taken — and `None` (the
    /// default, and what network stores return) means "call `gcra`".
    ///
    /// It exists because an `async_trait` call allocates its future: for an in-memory check
    /// that costs about as much as the check. [`SubjectLimit`](crate::SubjectLimit) and the
    /// Guard try it first.
    ///
    /// Contract: a store that returns `Some` gives exactly the answer `gcra` would have given
    /// at that moment, with the same accounting (both paths share one state).
    fn gcra_now(
        &self,
        key: &LimitKey<'_>,
        charge: &GcraCharge,
    ) -> Option<Result<Decision, StoreError>> {
        let _ = (key, charge);
        None
    }

    /// The synchronous fast path of [`ban_status`](Self::ban_status), with the contract of
    /// [`gcra_now`](Self::gcra_now).
    fn ban_status_now(
        &self,
        key: &LimitKey<'_>,
        quota: &BanQuota,
    ) -> Option<Result<Decision, StoreError>> {
        let _ = (key, quota);
        None
    }

    /// Whether this store knows, at once and without I/O, that **no key is banned** now: then
    /// every [`ban_status`](Self::ban_status) would be allowed, and a caller that needs only
    /// "banned or not" (the Guard's per-request ban check) can skip building keys and
    /// reading them.
    ///
    /// Contract: `true` only if no key's ban is in force at the moment of the call (a ban
    /// written concurrently may or may not be seen, as with `ban_status`). `false` promises
    /// nothing. The default, `false`, is always correct, and what network stores return.
    /// The in-memory store answers `true` while none of its entries holds a ban: counted
    /// failures alone do not make it `false`, so in normal operation (no client banned) the
    /// Guard's ban check costs one atomic load.
    fn holds_no_ban(&self) -> bool {
        false
    }
}
