//! The detectors proper: what the worker does with each observation.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ipnet::IpNet;
use tokenward_core::StoreError;

use crate::anomaly::{Action, Anomaly, AnomalyHandler, AnomalyKind, report};
use crate::config::AnomalyConfig;
use crate::detector::{Observation, RawIds, state_error};
use crate::network::{NetworkDetails, NetworkInfo};
use crate::respond::{Responder, Target};
use crate::seen::Seen;
use crate::state::AnomalyStore;

/// Members of a refresh family's network set at most.
const FAMILY_NETWORKS: u32 = 16;
/// Seen-pair tag of the addresses a forgery burst banned.
const SEEN_BANNED: u8 = 9;

pub(crate) struct Worker {
    pub(crate) config: AnomalyConfig,
    pub(crate) store: Arc<dyn AnomalyStore>,
    pub(crate) responder: Option<Responder>,
    pub(crate) handler: Option<Arc<dyn AnomalyHandler>>,
    pub(crate) network_info: Option<Arc<dyn NetworkInfo>>,
    pub(crate) seen: Arc<Seen>,
    pub(crate) last_error_log: AtomicU64,
}

impl Worker {
    pub(crate) async fn process(&self, observation: Observation) {
        if let Err(error) = self.detect(observation).await {
            state_error(&self.last_error_log, &error);
        }
    }

    async fn detect(&self, observation: Observation) -> Result<(), StoreError> {
        match observation {
            Observation::Allowed {
                ip,
                net,
                claims,
                target,
                shared,
                new_network,
            } => {
                // Both detectors run even if the first one's state fails.
                let shared = if shared {
                    self.token_shared(ip, net, &claims, &target).await
                } else {
                    Ok(())
                };
                let new = if new_network {
                    self.new_network(ip, net, &claims, &target).await
                } else {
                    Ok(())
                };
                shared.and(new)
            }
            Observation::Revoked { ip, net, claims } => self.replay(ip, net, &claims).await,
            Observation::Forgery { ip, net } => self.forgery(ip, net).await,
            Observation::RefreshUsed { net, family } => {
                let Some(d) = &self.config.refresh_reuse else {
                    return Ok(());
                };
                let key = format!("rf:{}", family.as_str());
                self.store
                    .add_member(&key, &net.to_string(), d.remember, FAMILY_NETWORKS)
                    .await
                    .map(|_| ())
            }
            Observation::RefreshReused {
                ip,
                net,
                family,
                sub,
            } => {
                let Some(d) = &self.config.refresh_reuse else {
                    return Ok(());
                };
                let key = format!("rf:{}", family.as_str());
                // Reported even if the family's networks cannot be read.
                let mut networks = self.store.members(&key).await.unwrap_or_default();
                networks.sort();
                let here = net.to_string();
                if !networks.contains(&here) {
                    networks.push(here);
                }
                let anomaly = self.anomaly(
                    AnomalyKind::RefreshReuse,
                    d.action,
                    ip,
                    net,
                    networks.len() as u64,
                    networks,
                );
                let anomaly = Anomaly {
                    sub: Some(sub.clone()),
                    sid: Some(family.as_str().to_owned()),
                    ..anomaly
                };
                let target = Target {
                    family: Some(family),
                    sub: tokenward_core::StoreId::new(sub).ok(),
                    ..Target::default()
                };
                self.emit(anomaly, &target).await;
                Ok(())
            }
        }
    }

    async fn token_shared(
        &self,
        ip: IpAddr,
        net: IpNet,
        claims: &RawIds,
        target: &Target,
    ) -> Result<(), StoreError> {
        let Some(d) = &self.config.token_shared else {
            return Ok(());
        };
        let Some(id) = target.scoped_sid.as_ref().or(target.scoped_jti.as_ref()) else {
            return Ok(());
        };
        let key = format!("ts:{}", id.as_str());
        let tipping = d.max_networks.saturating_add(1);
        let answer = self
            .store
            .add_member(&key, &net.to_string(), d.window, tipping)
            .await?;
        // Exactly one add sees the count reach max + 1 (the set holds no more): reported once.
        if !(answer.added && answer.count == tipping) {
            return Ok(());
        }
        let mut networks = self
            .store
            .members(&key)
            .await
            .unwrap_or_else(|_| vec![net.to_string()]);
        networks.sort();
        let anomaly = self.anomaly(
            AnomalyKind::TokenShared,
            d.action,
            ip,
            net,
            u64::from(answer.count),
            networks,
        );
        self.emit(with_claims(anomaly, claims), target).await;
        Ok(())
    }

    async fn new_network(
        &self,
        ip: IpAddr,
        net: IpNet,
        claims: &RawIds,
        target: &Target,
    ) -> Result<(), StoreError> {
        let (Some(d), Some(sub)) = (&self.config.new_network, &target.scoped_sub) else {
            return Ok(());
        };
        let details = self.details(ip);
        let member = match details.as_ref().and_then(|d| d.asn) {
            Some(asn) => format!("AS{asn}"),
            None => net.to_string(),
        };
        let key = format!("nn:{}", sub.as_str());
        let answer = self
            .store
            .add_member(&key, &member, d.remember, d.max_networks)
            .await?;
        // The first network of a subject is its baseline, not news.
        if !(answer.added && answer.count > 1) {
            return Ok(());
        }
        let mut anomaly = self.anomaly(
            AnomalyKind::NewNetwork,
            d.action,
            ip,
            net,
            u64::from(answer.count),
            vec![member],
        );
        anomaly.details = details;
        self.emit(with_claims(anomaly, claims), target).await;
        Ok(())
    }

    async fn replay(&self, ip: IpAddr, net: IpNet, claims: &RawIds) -> Result<(), StoreError> {
        let Some(d) = &self.config.revoked_replay else {
            return Ok(());
        };
        let count = self.store.count(&format!("rr:{net}"), d.window).await?;
        let action = if count >= u64::from(d.ban_after) {
            d.action
        } else {
            Action::Alert
        };
        let anomaly = self.anomaly(
            AnomalyKind::RevokedTokenReplay,
            action,
            ip,
            net,
            count,
            vec![net.to_string()],
        );
        self.emit(with_claims(anomaly, claims), &Target::default())
            .await;
        Ok(())
    }

    async fn forgery(&self, ip: IpAddr, net: IpNet) -> Result<(), StoreError> {
        let Some(d) = &self.config.forgery_burst else {
            return Ok(());
        };
        let count = self.store.count(&format!("fb:{net}"), d.window).await?;
        if count < u64::from(d.threshold) {
            return Ok(());
        }
        // At the threshold, and once per further address of the network (each is banned as
        // it shows up), not per request.
        let ttl = u32::try_from(d.window.as_secs()).unwrap_or(u32::MAX);
        if count > u64::from(d.threshold) && self.seen.check_and_remember((SEEN_BANNED, ip), ttl) {
            return Ok(());
        }
        self.seen.check_and_remember((SEEN_BANNED, ip), ttl);
        let anomaly = self.anomaly(
            AnomalyKind::ForgeryBurst,
            d.action,
            ip,
            net,
            count,
            vec![net.to_string()],
        );
        self.emit(anomaly, &Target::default()).await;
        Ok(())
    }

    fn details(&self, ip: IpAddr) -> Option<NetworkDetails> {
        self.network_info.as_ref().and_then(|info| info.lookup(ip))
    }

    fn anomaly(
        &self,
        kind: AnomalyKind,
        action: Action,
        ip: IpAddr,
        net: IpNet,
        count: u64,
        networks: Vec<String>,
    ) -> Anomaly {
        Anomaly {
            kind,
            action,
            sub: None,
            sid: None,
            jti_fp: None,
            client_ip: ip,
            network: net,
            networks,
            count,
            details: None,
        }
    }

    /// Reports `anomaly`, hands it to the handler, then runs its action.
    async fn emit(&self, mut anomaly: Anomaly, target: &Target) {
        if anomaly.details.is_none() {
            anomaly.details = self.details(anomaly.client_ip);
        }
        report(&anomaly);
        if let Some(handler) = &self.handler {
            handler.on_anomaly(&anomaly);
        }
        match &self.responder {
            Some(responder) => {
                responder.act(&self.config, &anomaly, target).await;
            }
            None if anomaly.action != Action::Alert => {
                tracing::warn!(
                    target: crate::anomaly::TARGET,
                    kind = anomaly.kind.as_str(),
                    action = anomaly.action.as_str(),
                    "anomaly action not taken: the detector has no responder"
                );
            }
            None => {}
        }
    }
}

/// `anomaly` with the token's claims (the `jti` fingerprinted).
fn with_claims(anomaly: Anomaly, claims: &RawIds) -> Anomaly {
    Anomaly {
        sub: claims.sub.clone(),
        sid: claims.sid.clone(),
        jti_fp: claims.jti.as_deref().map(tokenward_guard::fingerprint),
        ..anomaly
    }
}
