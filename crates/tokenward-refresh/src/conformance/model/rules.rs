//! The reference model of the [rotation rules](crate#rotation-rules): families as plain
//! data, what a rotation should come to, and its effect.

use std::time::Duration;

use ring::rand::SystemRandom;
use tokenward_core::UnixTime;

use super::ops::Which;
use crate::{FamilyId, RefreshConfig, RefreshToken, ReuseKind};

/// A family as the model sees it.
#[derive(Debug)]
pub(super) struct Family {
    pub(super) id: FamilyId,
    pub(super) sub: u8,
    /// Every token of the family, oldest first; the last is current. `None`: issued by a
    /// rotation whose reply was lost (the client never saw it).
    pub(super) chain: Vec<Option<String>>,
    pub(super) created: UnixTime,
    /// Its absolute lifetime.
    pub(super) absolute: Duration,
    /// Real clock, short-lived families: the system time just before and just after the
    /// login (the store's clock started the lifetime in between).
    pub(super) issued_within: Option<(UnixTime, UnixTime)>,
    /// Real clock: the short lifetime has certainly run out.
    pub(super) ran_out: bool,
    pub(super) last_used: UnixTime,
    /// When the current token was rotated in (the previous token's rotation time).
    pub(super) rotated_at: UnixTime,
    /// The idempotency key of that rotation and, once recorded, its response.
    pub(super) key: Option<u8>,
    pub(super) recorded: Option<(String, String)>,
    pub(super) revoked: bool,
    /// When it was first revoked: a tombstone, gone a retention period later.
    pub(super) revoked_at: Option<UnixTime>,
    /// The latest access-token `exp` the store must have recorded for the family.
    pub(super) access_exp: UnixTime,
    /// Until when the family's `sid` is revoked in the revocation store.
    pub(super) session_until: Option<UnixTime>,
}

impl Family {
    pub(super) fn expires_at(&self, idle: Duration) -> UnixTime {
        self.created
            .saturating_add(self.absolute)
            .min(self.last_used.saturating_add(idle))
    }

    /// Revokes the family in the store: a tombstone from `now` (unless it already is one).
    fn bury(&mut self, now: UnixTime) {
        self.revoked = true;
        self.revoked_at.get_or_insert(now);
    }
}

/// What a rotation should come to, by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expected {
    Rotated,
    Grace,
    Replayed,
    Reused(ReuseKind),
    Revoked,
    Invalid,
}

/// What became of a rotation the store decided.
#[derive(Debug)]
pub(super) enum Reply {
    /// The store applied its step; its answer was lost (the engine reported an error).
    Lost,
    /// The engine answered without minting: reuse detected, or a replay.
    Answered,
    /// The client got a refresh token and an access token expiring at `exp`.
    Granted {
        refresh: String,
        access: String,
        exp: UnixTime,
    },
}

/// The model's state and settings.
pub(super) struct Model {
    pub(super) exact: bool,
    /// The time of the model: exact on an exact clock; on a real clock the start of the run
    /// (only short-lived families are timed there).
    pub(super) now: UnixTime,
    pub(super) grace: Duration,
    pub(super) idle: Duration,
    pub(super) absolute: Duration,
    pub(super) short: Duration,
    pub(super) families: Vec<Family>,
    pub(super) run_id: u64,
    pub(super) rng: SystemRandom,
}

impl Model {
    pub(super) fn sub(&self, n: u8) -> String {
        format!("m{}-u{n}", self.run_id)
    }

    /// Whether the store still has the family: not expired, and if revoked, within its
    /// retention (the grace window plus `REVOKED_RETENTION_MARGIN`).
    pub(super) fn live(&self, f: &Family) -> bool {
        let retention = self
            .grace
            .saturating_add(RefreshConfig::REVOKED_RETENTION_MARGIN);
        let expires_at = f.expires_at(self.idle);
        let expires_at = f.revoked_at.map_or(expires_at, |at| {
            expires_at.min(at.saturating_add(retention))
        });
        !f.ran_out && self.now < expires_at
    }

    /// The family at `index` is revoked, and so is its `sid` (by the engine).
    pub(super) fn revoke(&mut self, index: usize) {
        let now = self.now;
        if let Some(f) = self.families.get_mut(index) {
            let until = tokenward_revocation::revoke_until(f.access_exp);
            f.bury(now);
            f.session_until = Some(f.session_until.map_or(until, |u| u.max(until)));
        }
    }

    /// The token to present, its chain position (if it is one) and the family index.
    pub(super) fn pick(
        &self,
        fam: u8,
        which: Which,
    ) -> Result<(String, Option<usize>, Option<usize>), String> {
        let Some(index) =
            (!self.families.is_empty()).then(|| usize::from(fam) % self.families.len())
        else {
            return Ok(("twr_no-family-yet".to_owned(), None, None));
        };
        let f = self
            .families
            .get(index)
            .ok_or("family index out of range")?;
        let last = f.chain.len().saturating_sub(1);
        let wanted = match which {
            Which::Current => last,
            Which::Previous => last.saturating_sub(1),
            Which::Older(n) => last.saturating_sub(2 + usize::from(n)),
            Which::Forged => {
                let t = RefreshToken::generate(&self.rng, &f.id).map_err(|e| e.to_string())?;
                return Ok((t.expose().to_owned(), None, Some(index)));
            }
            Which::UnknownFamily => {
                let id = FamilyId::generate(&self.rng).map_err(|e| e.to_string())?;
                let t = RefreshToken::generate(&self.rng, &id).map_err(|e| e.to_string())?;
                return Ok((t.expose().to_owned(), None, None));
            }
            Which::Malformed => return Ok(("twr_malformed".to_owned(), None, None)),
        };
        // The nearest token at or before `wanted` that the client has seen.
        let (position, token) = f
            .chain
            .iter()
            .enumerate()
            .take(wanted.saturating_add(1))
            .rev()
            .find_map(|(i, t)| t.as_ref().map(|t| (i, t.clone())))
            .ok_or("a family without a known token")?;
        Ok((token, Some(position), Some(index)))
    }

    /// The rules, for a presented token (position in its family's chain, or forged).
    pub(super) fn expected(
        &self,
        index: Option<usize>,
        position: Option<usize>,
        forged: bool,
        key: Option<u8>,
        late: bool,
    ) -> Expected {
        let Some(f) = index.and_then(|i| self.families.get(i)) else {
            return Expected::Invalid;
        };
        if !self.live(f) {
            return Expected::Invalid;
        }
        if f.revoked {
            return Expected::Revoked;
        }
        let Some(position) = position.filter(|_| !forged) else {
            return Expected::Invalid;
        };
        let last = f.chain.len().saturating_sub(1);
        if position == last {
            Expected::Rotated
        } else if position + 1 == last {
            if late || self.now >= f.rotated_at.saturating_add(self.grace) {
                Expected::Reused(ReuseKind::PredecessorAfterWindow)
            } else if key.is_some() && key == f.key && f.recorded.is_some() {
                Expected::Replayed
            } else {
                Expected::Grace
            }
        } else {
            Expected::Reused(ReuseKind::OlderToken)
        }
    }

    /// Applies a rotation's effect to the model (the store's atomic step, announcing
    /// `covered` as the latest access-token `exp`), given what the client received.
    pub(super) fn apply(
        &mut self,
        index: Option<usize>,
        expected: &Expected,
        key: Option<u8>,
        covered: UnixTime,
        reply: Reply,
    ) {
        let now = self.now;
        let Some(i) = index else {
            return;
        };
        match expected {
            Expected::Rotated | Expected::Grace => {
                let Some(f) = self.families.get_mut(i) else {
                    return;
                };
                f.access_exp = f.access_exp.max(covered);
                let granted = match reply {
                    Reply::Granted {
                        refresh,
                        access,
                        exp,
                    } => {
                        f.access_exp = f.access_exp.max(exp);
                        Some((refresh, access))
                    }
                    Reply::Lost | Reply::Answered => None,
                };
                if *expected == Expected::Rotated {
                    f.chain.push(granted.as_ref().map(|r| r.0.clone()));
                    f.last_used = now;
                    f.rotated_at = now;
                    f.key = key;
                    f.recorded = granted.filter(|_| key.is_some());
                } else if let (Some((refresh, _)), Some(last)) = (granted, f.chain.last_mut()) {
                    // The client learns the successor (if its reply was lost before).
                    last.get_or_insert(refresh);
                }
            }
            Expected::Reused(_) => match reply {
                Reply::Lost => {
                    // The store revoked the family; the engine never saw the answer, so
                    // it revoked no session.
                    if let Some(f) = self.families.get_mut(i) {
                        f.bury(now);
                    }
                }
                Reply::Answered | Reply::Granted { .. } => self.revoke(i),
            },
            // A replay is a grace step at the store (which raised `access_exp`); the engine
            // only minted nothing.
            Expected::Replayed => {
                if let Some(f) = self.families.get_mut(i) {
                    f.access_exp = f.access_exp.max(covered);
                }
            }
            Expected::Revoked | Expected::Invalid => {}
        }
    }
}
