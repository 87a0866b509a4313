//! What was detected ([`Anomaly`], [`AnomalyKind`]) and what is done about it ([`Action`]),
//! and how an anomaly is reported: a `tracing` event (target [`TARGET`]), the
//! `tokenward_anomalies_total{kind,action}` counter, and the user's [`AnomalyHandler`].

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use tokenward_core::metrics as names;

use crate::network::NetworkDetails;

/// The target of the anomaly events.
pub const TARGET: &str = "tokenward::anomaly";

/// Which detector found an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnomalyKind {
    /// One token (its `sid`, else its `jti`) used from more client networks than allowed
    /// within the window: it was copied.
    TokenShared,
    /// A revoked token presented again.
    RevokedTokenReplay,
    /// Many bad signatures, unknown `kid`s or refused algorithms from one network: someone
    /// is forging tokens.
    ForgeryBurst,
    /// The refresh engine detected a rotated refresh token presented again.
    RefreshReuse,
    /// A subject seen from a network (or, with a [`NetworkInfo`](crate::NetworkInfo), an
    /// ASN) it was not seen from before: a signal for step-up authentication.
    NewNetwork,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::TokenShared,
        AnomalyKind::RevokedTokenReplay,
        AnomalyKind::ForgeryBurst,
        AnomalyKind::RefreshReuse,
        AnomalyKind::NewNetwork,
    ];

    /// The stable name (the `kind` field and metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::TokenShared => "token_shared",
            AnomalyKind::RevokedTokenReplay => "revoked_token_replay",
            AnomalyKind::ForgeryBurst => "forgery_burst",
            AnomalyKind::RefreshReuse => "refresh_reuse",
            AnomalyKind::NewNetwork => "new_network",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is done about an anomaly, chosen per detector ([`AnomalyConfig`](crate::AnomalyConfig)).
/// Every anomaly is also logged, counted and handed to the [`AnomalyHandler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Nothing beyond the report.
    Alert,
    /// Revoke the token's session (its `sid`; a token without one: the token, by `jti`).
    RevokeSession,
    /// Revoke every token of the subject issued so far ("sign out everywhere").
    RevokeSubject,
    /// Ban the client's **network** (IPv4 /24, IPv6 /48: the one the detector counted)
    /// through the failure-ban store, under the Guard's failure ban's network key, so the
    /// Guard refuses every address of it (see [`Responder`](crate::Responder)).
    Ban,
}

impl Action {
    /// The stable name (the `action` field and metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::RevokeSession => "revoke_session",
            Action::RevokeSubject => "revoke_subject",
            Action::Ban => "ban",
        }
    }

    /// Whether the action needs a verified token (a session or subject to revoke).
    pub fn needs_token(self) -> bool {
        matches!(self, Action::RevokeSession | Action::RevokeSubject)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detected anomaly, as logged and as handed to the [`AnomalyHandler`]. Never holds a
/// token: `jti_fp` is a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Anomaly {
    /// The detector.
    pub kind: AnomalyKind,
    /// The action taken (or being taken: actions run after the report, with retries).
    pub action: Action,
    /// The token's `sub` claim (or the refresh family's subject), if known.
    pub sub: Option<String>,
    /// The token's `sid` claim (for refresh reuse: the family id), if any.
    pub sid: Option<String>,
    /// A fingerprint of the token's `jti` ([`tokenward_guard::fingerprint`]), if any.
    pub jti_fp: Option<String>,
    /// The client address of the request that tipped it.
    pub client_ip: IpAddr,
    /// Its network (IPv4 /24, IPv6 /48 by default).
    pub network: IpNet,
    /// Every network involved, as the detector knows them: a shared token's networks, a
    /// refresh family's, or just `network`.
    pub networks: Vec<String>,
    /// How many: networks of a shared token, replays or forgeries from the network within
    /// the window, networks known for the subject.
    pub count: u64,
    /// What the [`NetworkInfo`](crate::NetworkInfo) lookup said about the address.
    pub details: Option<NetworkDetails>,
}

/// Receives every anomaly (to page, to email, to require step-up authentication). Called on
/// the detector's worker, never on the request path; it must not block for long (spawn slow
/// work).
pub trait AnomalyHandler: Send + Sync + 'static {
    /// One anomaly, after it was logged and before its action ran.
    fn on_anomaly(&self, anomaly: &Anomaly);
}

/// Logs and counts `anomaly`.
pub(crate) fn report(anomaly: &Anomaly) {
    let networks = anomaly.networks.join(",");
    tracing::warn!(
        target: TARGET,
        kind = anomaly.kind.as_str(),
        action = anomaly.action.as_str(),
        sub = anomaly.sub.as_deref().unwrap_or_default(),
        sid = anomaly.sid.as_deref().unwrap_or_default(),
        jti = anomaly.jti_fp.as_deref().unwrap_or_default(),
        client_ip = %anomaly.client_ip,
        network = %anomaly.network,
        networks = networks.as_str(),
        count = anomaly.count,
        asn = anomaly.details.as_ref().and_then(|d| d.asn),
        country = anomaly.details.as_ref().and_then(|d| d.country.as_deref()),
        "anomaly detected"
    );
    metrics::counter!(
        names::ANOMALIES_TOTAL,
        names::KIND => anomaly.kind.as_str(),
        names::ACTION => anomaly.action.as_str()
    )
    .increment(1);
}
