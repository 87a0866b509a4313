//! The stores a [`Guard`](crate::Guard) consults, and the combined per-request check.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokenward_core::{StoreError, TokenRef};
use tokenward_ratelimit::{
    BanCheck, Decision, GcraCharge, LimitKey, MemoryRateLimitStore, RateLimitStore,
};
use tokenward_refresh::{MemoryRefreshStore, RefreshStore};
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore};

use crate::check::Backend;

/// What one [`CombinedCheck`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CombinedAnswer {
    /// The client's failure-ban status, when a ban was asked: its address key's and network
    /// key's statuses (each as [`RateLimitStore::ban_status`] reports it) combined by
    /// [`BanCheck::combine`] — denied when either is banned, with the longer ban.
    pub ban: Option<Decision>,
    /// The token's revocation status (as [`RevocationStore::check`]).
    pub revocation: RevocationStatus,
    /// The limit decision: `None` when no limit was asked, the client is banned, or the
    /// token is revoked.
    pub limit: Option<Decision>,
}

impl CombinedAnswer {
    /// An answer (for implementations outside this crate).
    pub fn new(
        ban: Option<Decision>,
        revocation: RevocationStatus,
        limit: Option<Decision>,
    ) -> Self {
        CombinedAnswer {
            ban,
            revocation,
            limit,
        }
    }
}

/// The per-request store work of a verified token in **one** store call: the client's
/// failure-ban status, the token's revocation status and — only when the client is not
/// banned and the token is not revoked — one step of its subject's rate limit.
///
/// The Guard uses it when the backend can answer all of it at once (the Redis backend does
/// it in one script call: one round trip per authenticated request); otherwise it calls the
/// stores one after the other.
///
/// # Contract
/// - The ban answer is [`BanCheck::combine`] of [`RateLimitStore::ban_status`] of the
///   [`BanCheck`]'s address key and — when it has one — of its network key, both under its
///   quota (read-only: nothing is counted, on either key). The client is banned when
///   **either** key is: a network ban (the anomaly detectors ban whole networks) refuses every
///   address in it. The revocation answer follows [`RevocationStore::check`], the limit
///   answer [`RateLimitStore::gcra`].
/// - `limit` = (key, charge) is charged **only if the client is not banned (by address or
///   network) and the token is not revoked**: a stolen, revoked token must not drain its
///   victim's budget.
/// - An error means nothing is known; the Guard applies the failure policies.
///
/// [`SequentialCheck`] is the reference implementation over separate stores; the
/// `tokenward_guard::conformance` suite (feature `conformance`) compares a backend's answers
/// with it.
#[async_trait]
pub trait CombinedCheck: Send + Sync + 'static {
    /// Checks `ban` (the client's address and network keys), `token` and charges `limit`.
    async fn check_request(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
        ban: Option<BanCheck<'_>>,
    ) -> Result<CombinedAnswer, StoreError>;
}

/// Every store behind a Guard and the endpoints around it (login, refresh, logout).
///
/// Cheap to clone; all handles share the same backends, so a revocation made through
/// [`GuardStores::revocation`] is seen by the Guard at once.
#[derive(Clone)]
#[non_exhaustive]
pub struct GuardStores {
    /// Revoked tokens, sessions and subjects.
    pub revocation: Arc<dyn RevocationStore>,
    /// Subject limits and failure bans.
    pub ratelimit: Arc<dyn RateLimitStore>,
    /// Refresh-token families.
    pub refresh: Arc<dyn RefreshStore>,
    /// The one-call ban + revocation + limit check, when the backend has one.
    pub combined: Option<Arc<dyn CombinedCheck>>,
    backend: Backend,
}

impl GuardStores {
    /// In-memory stores with their default capacities: for one process, tests and the demo.
    pub fn memory() -> Self {
        let mut out = GuardStores::new(
            Arc::new(MemoryRevocationStore::new()),
            Arc::new(MemoryRateLimitStore::new()),
            Arc::new(MemoryRefreshStore::new()),
        );
        out.backend = Backend::Memory;
        out
    }

    /// Your own stores (each should pass its crate's conformance suite).
    pub fn new(
        revocation: Arc<dyn RevocationStore>,
        ratelimit: Arc<dyn RateLimitStore>,
        refresh: Arc<dyn RefreshStore>,
    ) -> Self {
        GuardStores {
            revocation,
            ratelimit,
            refresh,
            combined: None,
            backend: Backend::Custom,
        }
    }

    /// Uses `combined` for the per-request revocation + limit check.
    #[must_use]
    pub fn with_combined_check(mut self, combined: Arc<dyn CombinedCheck>) -> Self {
        self.combined = Some(combined);
        self
    }

    /// The Redis stores of one [`RedisStores`](tokenward_redis::RedisStores) handle, with its
    /// one-round-trip combined check.
    #[cfg(feature = "redis")]
    pub fn redis(stores: &tokenward_redis::RedisStores) -> Self {
        let mut out = GuardStores::new(
            Arc::new(stores.revocation()),
            Arc::new(stores.ratelimit()),
            Arc::new(stores.refresh()),
        )
        .with_combined_check(Arc::new(stores.clone()));
        out.backend = Backend::Redis;
        out
    }

    /// PostgreSQL for refresh families and revocations (durable: they survive restarts of
    /// the application and of Redis), in-memory limits and bans (per process). Each request's
    /// revocation check is one `SELECT`. With Redis too, see `tokenward_guard::hybrid`.
    #[cfg(feature = "postgres")]
    pub fn postgres(stores: &tokenward_postgres::PgStores) -> Self {
        let mut out = GuardStores::new(
            Arc::new(stores.revocation()),
            Arc::new(MemoryRateLimitStore::new()),
            Arc::new(stores.refresh()),
        );
        out.backend = Backend::Postgres;
        out
    }

    /// Which kind of stores these are (serializes as `memory`, `redis`, `custom`,
    /// `postgres` or `hybrid`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    #[cfg(all(feature = "redis", feature = "postgres"))]
    pub(crate) fn set_backend(&mut self, backend: Backend) {
        self.backend = backend;
    }
}

impl fmt::Debug for GuardStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardStores")
            .field("backend", &self.backend.as_str())
            .field("combined", &self.combined.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "redis")]
#[async_trait]
impl CombinedCheck for tokenward_redis::RedisStores {
    async fn check_request(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
        ban: Option<BanCheck<'_>>,
    ) -> Result<CombinedAnswer, StoreError> {
        let found = tokenward_redis::RedisStores::check_request(self, token, limit, ban).await?;
        Ok(CombinedAnswer::new(
            found.ban,
            found.revocation,
            found.limit,
        ))
    }
}

/// A [`CombinedCheck`] made of separate stores, called one after the other: the ban status
/// (the address key's, then the network key's), then the revocation check, then the limit — the same answers a one-call backend must give
/// (not atomic, and as many round trips as calls). The reference the `CombinedCheck`
/// conformance suite compares backends with, and the in-memory combination it runs on.
#[derive(Clone)]
pub struct SequentialCheck {
    revocation: Arc<dyn RevocationStore>,
    ratelimit: Arc<dyn RateLimitStore>,
}

impl SequentialCheck {
    /// The combination of `revocation` and `ratelimit`.
    pub fn new(revocation: Arc<dyn RevocationStore>, ratelimit: Arc<dyn RateLimitStore>) -> Self {
        SequentialCheck {
            revocation,
            ratelimit,
        }
    }
}

impl fmt::Debug for SequentialCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequentialCheck").finish_non_exhaustive()
    }
}

#[async_trait]
impl CombinedCheck for SequentialCheck {
    async fn check_request(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
        ban: Option<BanCheck<'_>>,
    ) -> Result<CombinedAnswer, StoreError> {
        let ban = match ban {
            Some(ban) => {
                let address = self.ratelimit.ban_status(ban.address, ban.quota).await?;
                let network = match ban.network {
                    Some(key) => Some(self.ratelimit.ban_status(key, ban.quota).await?),
                    None => None,
                };
                Some(BanCheck::combine(address, network))
            }
            None => None,
        };
        let revocation = self.revocation.check(token).await?;
        let admitted = ban.is_none_or(|d| d.allowed) && revocation == RevocationStatus::Active;
        let limit = match limit {
            Some((key, charge)) if admitted => Some(self.ratelimit.gcra(key, charge).await?),
            _ => None,
        };
        Ok(CombinedAnswer::new(ban, revocation, limit))
    }
}
