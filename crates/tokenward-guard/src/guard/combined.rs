//! The store checks in one [`CombinedCheck`] call (Redis: one round trip per authenticated
//! request): the client's ban, the token's revocation and the subject limit together, after
//! verification.

use std::net::IpAddr;
use std::time::Instant;

use tokenward_core::{TokenRef, metrics};
use tokenward_ratelimit::Decision;
use tracing::Instrument as _;

use super::Guard;
use crate::check::Check;
use crate::denial::Denial;
use crate::observe;
use crate::stores::CombinedCheck;

impl Guard {
    /// Ban, revocation and subject limit in one call. When the call fails nothing is known:
    /// the first closed policy among the checks it answers for refuses; if all are open,
    /// **every** one of them is recorded as degraded.
    pub(super) async fn combined_checks(
        &self,
        combined: &dyn CombinedCheck,
        token: &TokenRef<'_>,
        ip: IpAddr,
        degraded: &mut Vec<Check>,
    ) -> Result<Option<Decision>, Denial> {
        let inner = &*self.inner;
        let limit = match (&inner.subject_limit, &token.sub) {
            (Some(limit), Some(sub)) => Some((limit, limit.key(sub), limit.charge())),
            _ => None,
        };
        // The address key (failures are counted there) and the network key (explicit network
        // bans: the anomaly detectors'), read together.
        let ban = inner
            .ban
            .as_ref()
            .map(|ban| (ban, ban.ip_key(ip), ban.network_key(ip)));
        let limit_arg = limit.as_ref().map(|(_, key, charge)| (key, charge));
        let ban_arg = ban
            .as_ref()
            .map(|(ban, address, network)| ban.ban_check(address, network));
        let check = metrics::CHECK_COMBINED;
        let started = Instant::now();
        let answer = combined
            .check_request(token, limit_arg, ban_arg)
            .instrument(observe::store_span(check))
            .await;
        let _done = observe::store_done(check, started, answer.is_err());
        match answer {
            Ok(answer) => {
                if let (Some(decision), Some((ban, _, _))) = (answer.ban, &ban)
                    && !decision.allowed
                {
                    return Err(self.banned(ban, decision));
                }
                self.decide(answer.revocation, answer.limit)
            }
            Err(e) => {
                let mut checks = vec![(Check::Revocation, inner.revocation_failure)];
                if let Some((limit, _, _)) = &limit {
                    checks.push((Check::SubjectLimit, limit.on_store_failure()));
                }
                if let Some((ban, _, _)) = &ban {
                    checks.push((Check::Ban, ban.on_store_failure()));
                }
                self.outage(&checks, &e, degraded).map(|()| None)
            }
        }
    }
}
