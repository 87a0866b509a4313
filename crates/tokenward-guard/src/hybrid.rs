//! PostgreSQL for what must survive, Redis for the per-request path (features `redis` and
//! `postgres`).
//!
//! [`HybridStores`] puts refresh families and the durable copy of every revocation in
//! PostgreSQL, and rate limits, failure bans and the per-request revocation check in Redis:
//!
//! - **Write-through.** A revoke goes to PostgreSQL first, then to Redis; it succeeds only
//!   if both did. (If Redis fails after PostgreSQL committed, the call fails — retry it:
//!   revokes are idempotent — and the durable copy is already there for the next reload.)
//! - **Reload on an empty Redis, fail-closed meanwhile.** Redis marks itself loaded with a
//!   key (`{prefix}hybrid:loaded`, no TTL). A Redis restarted without persistence has lost
//!   the mark along with the revocations. A restart closes every connection, so a check
//!   answered on a connection opened since the mark was last seen is confirmed by reading the
//!   mark (one extra round trip, only after a reconnect). Without the mark the check fails
//!   with `StoreError::Unavailable` — the Guard's fail-closed policy answers 503, never
//!   "not revoked" — and a reload starts: every live revocation is read from PostgreSQL and
//!   written to Redis, then the mark is set, atomically with a check that Redis did not
//!   restart during the reload (a per-reload nonce). Checks pass again from then on.
//! - [`HybridStores::load`] does the same at startup, before the application serves.
//!
//! It needs a Redis backend on connections of its own to **one server** (built from a
//! `RedisConfig` or a `redis::Client`): a Redis Cluster, or the application's own
//! connection or pool, is refused ([`HybridError`]). Eviction must be off (the startup check
//! refuses an evicting `maxmemory-policy`): an evicted mark is a reload, but an evicted
//! revocation without a restart is not noticed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
use tokenward_postgres::{LiveRevocation, PgRefreshStore, PgRevocationStore, PgStores};
use tokenward_ratelimit::{BanCheck, GcraCharge, LimitKey};
use tokenward_redis::{RedisBackend, RedisRevocationStore, RedisStores};
use tokenward_revocation::{RevocationStatus, RevocationStore};

use crate::check::Backend;
use crate::stores::{CombinedAnswer, CombinedCheck, GuardStores};

/// Live revocations read from PostgreSQL per page during a reload.
const RELOAD_PAGE: u32 = 5_000;
/// Revocations written to Redis at once during a reload.
const RELOAD_CONCURRENCY: usize = 64;
/// The least time between two reload attempts started by failing checks.
const RELOAD_BACKOFF: Duration = Duration::from_secs(1);

/// Why [`HybridStores::new`] refused its Redis backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HybridError {
    /// The backend cannot tell when it reconnected (a cluster, or the application's
    /// connection or pool), so an empty restarted Redis would go unnoticed.
    #[error(
        "the hybrid stores need a Redis backend on connections of its own to one server \
         (RedisConfig without cluster, or a redis::Client); a cluster or an application's \
         connection cannot report reconnects"
    )]
    UnsupportedRedis,
}

/// What a reload did ([`HybridStores::load`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Whether Redis lacked the mark and was reloaded.
    pub reloaded: bool,
    /// Live revocations copied from PostgreSQL.
    pub revocations: u64,
}

/// Refresh families and durable revocations in PostgreSQL; limits, bans and the
/// per-request check in Redis. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct HybridStores {
    gate: Arc<Gate>,
    refresh: PgRefreshStore,
    redis: RedisStores,
}

struct Gate {
    backend: RedisBackend,
    durable: PgRevocationStore,
    fast: RedisRevocationStore,
    loaded_key: String,
    loading_key: String,
    /// `connections_opened` when the mark was last seen (`u64::MAX`: never).
    verified: AtomicU64,
    reloading: AtomicBool,
    last_attempt: std::sync::Mutex<Option<Instant>>,
    reloads: AtomicU64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("loaded_key", &self.loaded_key)
            .field("reloads", &self.reloads.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Whether the mark (`KEYS[1]`) is there.
static MARK_SEEN: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new("return redis.call('EXISTS', KEYS[1])"));
/// A reload starts: its nonce (`ARGV[1]`) under `KEYS[1]`.
static BEGIN_RELOAD: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new("redis.call('SET', KEYS[1], ARGV[1]) return 1"));
/// A reload ends: the mark (`KEYS[2]`) set only if the nonce (`KEYS[1]`) is still there.
static FINISH_RELOAD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
         redis.call('SET', KEYS[2], ARGV[1]) redis.call('DEL', KEYS[1]) return 1 end return 0",
    )
});

impl HybridStores {
    /// The stores of `postgres` and `redis` combined.
    pub fn new(postgres: &PgStores, redis: &RedisStores) -> Result<Self, HybridError> {
        let backend = redis.backend().clone();
        if backend.connections_opened().is_none() {
            return Err(HybridError::UnsupportedRedis);
        }
        let prefix = backend.key_prefix().to_owned();
        let gate = Gate {
            durable: postgres.revocation(),
            fast: redis.revocation(),
            loaded_key: format!("{prefix}hybrid:loaded"),
            loading_key: format!("{prefix}hybrid:loading"),
            backend,
            verified: AtomicU64::new(u64::MAX),
            reloading: AtomicBool::new(false),
            last_attempt: std::sync::Mutex::new(None),
            reloads: AtomicU64::new(0),
        };
        Ok(HybridStores {
            gate: Arc::new(gate),
            refresh: postgres.refresh(),
            redis: redis.clone(),
        })
    }

    /// The stores for a [`Guard`](crate::Guard) and the endpoints around it: the
    /// write-through revocation store, Redis limits and bans, PostgreSQL refresh families,
    /// and the Redis one-round-trip check behind the reload gate.
    pub fn guard_stores(&self) -> GuardStores {
        let mut stores = GuardStores::new(
            Arc::new(HybridRevocation {
                gate: Arc::clone(&self.gate),
            }),
            Arc::new(self.redis.ratelimit()),
            Arc::new(self.refresh.clone()),
        )
        .with_combined_check(Arc::new(HybridCheck {
            gate: Arc::clone(&self.gate),
            redis: self.redis.clone(),
        }));
        stores.set_backend(Backend::Hybrid);
        stores
    }

    /// At startup: reloads Redis from PostgreSQL if it lacks the mark (first start, or a
    /// restart that lost its data), waiting for the reload to finish.
    pub async fn load(&self) -> Result<ReloadReport, StoreError> {
        let opened = self.gate.opened();
        if self.gate.mark_seen().await? {
            self.gate.verified.store(opened, Ordering::Release);
            return Ok(ReloadReport::default());
        }
        let revocations = self.gate.reload().await?;
        Ok(ReloadReport {
            reloaded: true,
            revocations,
        })
    }

    /// Reloads completed since the stores were built.
    pub fn reloads(&self) -> u64 {
        self.gate.reloads.load(Ordering::Relaxed)
    }
}

impl Gate {
    fn opened(&self) -> u64 {
        self.backend.connections_opened().unwrap_or(0)
    }

    async fn mark_seen(&self) -> Result<bool, StoreError> {
        let seen: i64 = self
            .backend
            .invoke_script(&MARK_SEEN, &[&self.loaded_key], &[])
            .await?;
        Ok(seen == 1)
    }

    /// `answer`, if Redis is known to hold the revocations: confirmed by the mark when a
    /// connection was opened since it was last seen; otherwise `Unavailable`, with a reload
    /// started.
    async fn pass<T>(self: &Arc<Self>, answer: T) -> Result<T, StoreError> {
        let opened = self.opened();
        if self.verified.load(Ordering::Acquire) == opened {
            return Ok(answer);
        }
        if self.mark_seen().await? {
            self.verified.store(opened, Ordering::Release);
            return Ok(answer);
        }
        self.start_reload();
        Err(StoreError::Unavailable {
            message: "Redis lost its revocations (restarted empty?); reloading them from \
                      PostgreSQL"
                .to_owned(),
            source: None,
        })
    }

    /// Starts a reload in the background unless one runs or one started under a second ago.
    fn start_reload(self: &Arc<Self>) {
        {
            let Ok(mut last) = self.last_attempt.lock() else {
                return;
            };
            if last.is_some_and(|t| t.elapsed() < RELOAD_BACKOFF) {
                return;
            }
            if self.reloading.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reloading.store(false, Ordering::Release);
            return;
        };
        let gate = Arc::clone(self);
        runtime.spawn(async move {
            if let Err(err) = gate.reload_inner().await {
                tracing::warn!(
                    target: "tokenward::hybrid",
                    error = %err,
                    "reloading revocations into Redis failed; checks stay unavailable until \
                     a reload succeeds"
                );
            }
            gate.reloading.store(false, Ordering::Release);
        });
    }

    /// A reload in the foreground (startup), unless one runs already.
    async fn reload(&self) -> Result<u64, StoreError> {
        if self.reloading.swap(true, Ordering::AcqRel) {
            return Err(StoreError::Unavailable {
                message: "a reload of revocations into Redis is under way".to_owned(),
                source: None,
            });
        }
        let result = self.reload_inner().await;
        self.reloading.store(false, Ordering::Release);
        result
    }

    /// Copies every live revocation to Redis, then sets the mark if Redis kept the nonce
    /// written at the start (it did not restart meanwhile). Three attempts.
    async fn reload_inner(&self) -> Result<u64, StoreError> {
        let started = Instant::now();
        let mut last_error = None;
        for attempt in 0..3_u32 {
            let nonce = format!(
                "{}-{attempt}-{}",
                std::process::id(),
                UnixTime::from(std::time::SystemTime::now())
                    .as_duration()
                    .as_nanos()
            );
            let opened = self.opened();
            self.backend
                .invoke_script::<i64>(&BEGIN_RELOAD, &[&self.loading_key], &[nonce.as_bytes()])
                .await?;
            let copied = match self.copy_all().await {
                Ok(n) => n,
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            let done: i64 = self
                .backend
                .invoke_script(
                    &FINISH_RELOAD,
                    &[&self.loading_key, &self.loaded_key],
                    &[nonce.as_bytes()],
                )
                .await?;
            if done == 1 {
                self.verified.store(opened, Ordering::Release);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    target: "tokenward::hybrid",
                    revocations = copied,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "revocations reloaded into Redis from PostgreSQL"
                );
                return Ok(copied);
            }
            last_error = Some(StoreError::Unavailable {
                message: "Redis restarted during the reload".to_owned(),
                source: None,
            });
        }
        Err(last_error.unwrap_or_else(|| StoreError::Unavailable {
            message: "reload failed".to_owned(),
            source: None,
        }))
    }

    async fn copy_all(&self) -> Result<u64, StoreError> {
        let mut after: Option<LiveRevocation> = None;
        let mut copied = 0;
        loop {
            let page = self
                .durable
                .live_revocations(after.as_ref(), RELOAD_PAGE)
                .await?;
            let Some(last) = page.last().cloned() else {
                return Ok(copied);
            };
            let mut writes = futures_util::stream::iter(page)
                .map(|entry| write_one(self.fast.clone(), entry))
                .buffer_unordered(RELOAD_CONCURRENCY);
            while let Some(written) = writes.next().await {
                written?;
                copied += 1;
            }
            after = Some(last);
        }
    }
}

/// One live revocation written to Redis.
async fn write_one(fast: RedisRevocationStore, entry: LiveRevocation) -> Result<(), StoreError> {
    match entry {
        LiveRevocation::Token { id, until } => fast.revoke_token(&id, until).await,
        LiveRevocation::Session { id, until } => fast.revoke_session(&id, until).await,
        LiveRevocation::Subject {
            id,
            before,
            until,
            without_session: false,
        } => fast.revoke_subject(&id, before, until).await,
        LiveRevocation::Subject {
            id, before, until, ..
        } => {
            fast.revoke_subject_without_session(&id, before, until)
                .await
        }
        _ => Err(StoreError::corrupt(
            "a revocation rule this release does not know",
        )),
    }
}

/// The write-through revocation store; checks through the gate.
#[derive(Debug)]
struct HybridRevocation {
    gate: Arc<Gate>,
}

#[async_trait]
impl RevocationStore for HybridRevocation {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.gate.durable.revoke_token(jti, until).await?;
        self.gate.fast.revoke_token(jti, until).await
    }

    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.gate.durable.revoke_session(sid, until).await?;
        self.gate.fast.revoke_session(sid, until).await
    }

    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.gate.durable.revoke_subject(sub, before, until).await?;
        self.gate.fast.revoke_subject(sub, before, until).await
    }

    async fn revoke_subject_without_session(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.gate
            .durable
            .revoke_subject_without_session(sub, before, until)
            .await?;
        self.gate
            .fast
            .revoke_subject_without_session(sub, before, until)
            .await
    }

    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        let answer = self.gate.fast.check(token).await?;
        self.gate.pass(answer).await
    }
}

/// Redis's one-round-trip check behind the gate.
struct HybridCheck {
    gate: Arc<Gate>,
    redis: RedisStores,
}

#[async_trait]
impl CombinedCheck for HybridCheck {
    async fn check_request(
        &self,
        token: &TokenRef<'_>,
        limit: Option<(&LimitKey<'_>, &GcraCharge)>,
        ban: Option<BanCheck<'_>>,
    ) -> Result<CombinedAnswer, StoreError> {
        let answer = CombinedCheck::check_request(&self.redis, token, limit, ban).await?;
        self.gate.pass(answer).await
    }
}
