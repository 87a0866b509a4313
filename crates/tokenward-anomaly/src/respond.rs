//! [`Responder`]: carries out the [`Action`]s, on the stores the Guard uses, with retries.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use tokenward_core::{StoreError, StoreId, UnixTime, metrics as names};
use tokenward_guard::{DEFAULT_BAN_NAME, GuardStores};
use tokenward_ratelimit::{BanQuota, FailureBan, RateLimitStore};
use tokenward_refresh::{FamilyId, RefreshEngine};
use tokenward_revocation::RevocationStore;

use crate::anomaly::{Action, Anomaly, TARGET};
use crate::config::AnomalyConfig;

/// What an action acts on: the ids of the token that tipped the anomaly, scoped by its
/// issuer as the Guard's stores know them, and the raw ones the refresh engine knows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    pub(crate) scoped_jti: Option<StoreId<'static>>,
    pub(crate) scoped_sid: Option<StoreId<'static>>,
    pub(crate) scoped_sub: Option<StoreId<'static>>,
    /// The refresh family (the raw `sid`), for the engine.
    pub(crate) family: Option<FamilyId>,
    /// The raw `sub`, for the engine's subject index.
    pub(crate) sub: Option<StoreId<'static>>,
    pub(crate) exp: Option<UnixTime>,
}

/// Carries out actions on the stores: revocations through the [`RevocationStore`] (and,
/// when given, the refresh families through the [`RefreshEngine`], so a revoked session
/// cannot be refreshed), bans through the [`RateLimitStore`] under the Guard's
/// [`FailureBan`] key of the client's **network**
/// ([`FailureBan::network_key`]: IPv4 /24, IPv6 /48 by default — the networks the detectors
/// count in) — so the Guard's own ban check refuses every address of that network, not only
/// the one that tipped the anomaly. Cheap to clone.
#[derive(Clone)]
pub struct Responder {
    revocation: Arc<dyn RevocationStore>,
    ratelimit: Arc<dyn RateLimitStore>,
    ban: Option<FailureBan>,
    refresh: Option<Arc<RefreshEngine>>,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("ban", &self.ban)
            .field("refresh", &self.refresh.is_some())
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Acting on these stores, banning under the key of the Guard's default failure ban
    /// (`auth-ban`); a Guard with a [`FailureBan`] of its own needs
    /// [`failure_ban`](Self::failure_ban) too, or its ban check will not see the bans.
    pub fn new(revocation: Arc<dyn RevocationStore>, ratelimit: Arc<dyn RateLimitStore>) -> Self {
        Responder {
            revocation,
            ratelimit,
            ban: FailureBan::new(DEFAULT_BAN_NAME, BanQuota::fail2ban_default()).ok(),
            refresh: None,
        }
    }

    /// Acting on the stores a Guard is built on (build the detector first, then the Guard
    /// with it as its [decision hook](tokenward_guard::GuardBuilder::decision_hook)).
    pub fn for_stores(stores: &GuardStores) -> Self {
        Self::new(
            Arc::clone(&stores.revocation),
            Arc::clone(&stores.ratelimit),
        )
    }

    /// Bans under `ban`'s network key (the ban the Guard was given): its name and its
    /// [network prefixes](FailureBan::network_prefixes) decide the key; the ban time is
    /// [`AnomalyConfig::ban_time`].
    pub fn failure_ban(mut self, ban: FailureBan) -> Self {
        self.ban = Some(ban);
        self
    }

    /// Also revokes the refresh family of a revoked session, and every family of a revoked
    /// subject, through `engine`.
    pub fn refresh_engine(mut self, engine: Arc<RefreshEngine>) -> Self {
        self.refresh = Some(engine);
        self
    }

    /// Carries out `anomaly.action` with retries (see [`AnomalyConfig::attempts`]); every
    /// failed attempt is logged, the last one counted in
    /// `tokenward_anomaly_action_failures_total{action}`. Returns whether it succeeded.
    pub(crate) async fn act(
        &self,
        config: &AnomalyConfig,
        anomaly: &Anomaly,
        target: &Target,
    ) -> bool {
        if anomaly.action == Action::Alert {
            return true;
        }
        let mut backoff = config.retry_backoff;
        for attempt in 1..=config.attempts {
            match self.once(config, anomaly, target).await {
                Ok(()) => return true,
                Err(error) => {
                    let last = attempt == config.attempts;
                    tracing::warn!(
                        target: TARGET,
                        kind = anomaly.kind.as_str(),
                        action = anomaly.action.as_str(),
                        attempt,
                        retrying = !last && error.is_transient(),
                        error = %error,
                        "anomaly action failed"
                    );
                    if last || !error.is_transient() {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
        metrics::counter!(
            names::ANOMALY_ACTION_FAILURES_TOTAL,
            names::ACTION => anomaly.action.as_str()
        )
        .increment(1);
        false
    }

    async fn once(
        &self,
        config: &AnomalyConfig,
        anomaly: &Anomaly,
        target: &Target,
    ) -> Result<(), StoreError> {
        let now = UnixTime::from(std::time::SystemTime::now());
        match anomaly.action {
            Action::Alert => Ok(()),
            Action::Ban => self.ban_network(config, anomaly.client_ip).await,
            Action::RevokeSession => {
                let exp_until = target.exp.map(tokenward_revocation::revoke_until);
                let until = exp_until
                    .unwrap_or(now)
                    .max(now.saturating_add(config.max_token_lifetime));
                if let Some(sid) = &target.scoped_sid {
                    if let (Some(engine), Some(family)) = (&self.refresh, &target.family) {
                        engine.revoke_family(family).await.map_err(refresh_error)?;
                    }
                    self.revocation.revoke_session(sid, until).await
                } else if let (Some(jti), Some(until)) = (&target.scoped_jti, exp_until) {
                    self.revocation.revoke_token(jti, until).await
                } else {
                    Err(StoreError::invalid_input(
                        "the token has neither a sid nor a jti and exp to revoke",
                    ))
                }
            }
            Action::RevokeSubject => {
                let Some(sub) = &target.scoped_sub else {
                    return Err(StoreError::invalid_input("the token has no sub to revoke"));
                };
                if let (Some(engine), Some(raw)) = (&self.refresh, &target.sub) {
                    engine.revoke_subject(raw).await.map_err(refresh_error)?;
                }
                let before = tokenward_revocation::subject_cutoff(now, config.leeway);
                let until = before.saturating_add(config.max_token_lifetime);
                self.revocation.revoke_subject(sub, before, until).await
            }
        }
    }

    /// Bans `ip`'s whole network at once ([`FailureBan::ban_network`]: one failure under a
    /// quota of one, for `ban_time`, under the failure ban's network key: IPv4 /24, IPv6
    /// /48 by default), so every address of the network the detector counted is refused.
    async fn ban_network(&self, config: &AnomalyConfig, ip: IpAddr) -> Result<(), StoreError> {
        let Some(ban) = &self.ban else {
            return Err(StoreError::invalid_input(
                "no failure ban configured: the Guard would not read a ban",
            ));
        };
        if ban.network_prefix_lens() != (config.ipv4_prefix, config.ipv6_prefix) {
            tracing::warn!(
                target: TARGET,
                counted = ?(config.ipv4_prefix, config.ipv6_prefix),
                banned = ?ban.network_prefix_lens(),
                "the detectors count in other networks than the failure ban bans: \
                 set FailureBan::network_prefixes to the detectors' prefixes"
            );
        }
        let decision = ban
            .ban_network(&*self.ratelimit, ip, config.ban_time)
            .await?;
        if decision.allowed {
            return Err(StoreError::corrupt(
                "the store did not ban after a failure under a quota of one",
            ));
        }
        Ok(())
    }
}

/// A refresh-engine error as a store error (the engine's only failure an action can meet).
fn refresh_error(e: tokenward_refresh::RefreshError) -> StoreError {
    match e {
        tokenward_refresh::RefreshError::Store(e) => e,
        other => StoreError::corrupt(other.to_string()),
    }
}
