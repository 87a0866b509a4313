//! `POST /login` and the gate in front of its password checks.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use http::StatusCode;
use ipnet::IpNet;
use serde::Deserialize;
use tokenward_axum::{denial_response, request_client_ip};
use tokenward_core::StoreId;
use tokenward_guard::{AuthRequest, Credentials};
use tokenward_ratelimit::client_network;
use tokenward_refresh::{MintRequest, RefreshError};

use super::{AppState, bump, busy, json_error, read_json, refresh_error, server_error};

/// Bounds password checks (Argon2id: 19 MiB and tens of milliseconds each): at most
/// [`PasswordGate::MAX_CONCURRENT`] at once in this instance, and one at a time per client
/// network — an IPv4 address or an IPv6 /64, the failure ban's key
/// ([`client_network`] with the ban's prefix).
///
/// Without the per-network slot, parallel attempts all pass the ban check before the first
/// failure is recorded (the ban would let dozens of guesses through instead of `maxretry`).
/// Keyed by exact address instead, the addresses of one /64 — one client to the ban — could
/// each run a guess, and could fill the queue for the global permits so that everyone
/// else's logins timed out. With it, a network holds at most one place: one check running
/// or one login waiting for a permit; a parallel attempt from the same network gets 429.
pub(super) struct PasswordGate {
    permits: tokio::sync::Semaphore,
    in_flight: Mutex<HashSet<IpNet>>,
    ipv6_prefix: u8,
}

impl PasswordGate {
    const MAX_CONCURRENT: usize = 4;
    /// How long a login waits for one of the permits before answering 503.
    const WAIT: Duration = Duration::from_secs(2);

    /// A gate keying IPv6 clients by `ipv6_prefix` bits, as the failure ban does.
    pub(super) fn new(ipv6_prefix: u8) -> Self {
        PasswordGate {
            permits: tokio::sync::Semaphore::new(Self::MAX_CONCURRENT),
            in_flight: Mutex::new(HashSet::new()),
            ipv6_prefix,
        }
    }

    /// Claims the single slot of `ip`'s network; `None` while another login from that
    /// network holds it.
    fn claim(&self, ip: IpAddr) -> Option<NetworkSlot<'_>> {
        let network = client_network(ip, self.ipv6_prefix);
        let inserted = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(network);
        // The lock is released here: a slot's drop takes it again. (Lazily: a slot made and
        // dropped on a failed claim would release the holder's.)
        inserted.then(|| NetworkSlot {
            gate: self,
            network,
        })
    }
}

/// One network's claim on the gate, released on drop.
struct NetworkSlot<'a> {
    gate: &'a PasswordGate,
    network: IpNet,
}

impl Drop for NetworkSlot<'_> {
    fn drop(&mut self) {
        self.gate
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.network);
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

pub(super) async fn login(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(ip) = request_client_ip(&app.0.guard, &parts) else {
        return server_error("the server cannot tell clients apart");
    };
    let auth_req = AuthRequest::new("POST", "/login", ip, Credentials::Absent);
    // A banned client is refused before any password is looked at.
    if let Err(denial) = app.0.guard.check_client(&auth_req).await {
        return denial_response(&denial);
    }
    let form: LoginForm = match read_json(body).await {
        Ok(form) => form,
        Err(res) => return res,
    };
    // One password check at a time per client network, keyed as the ban keys it (so the ban
    // counts every guess before the next one runs, and one network holds at most one place
    // in the queue), and a few at a time overall (bounded memory and threads).
    let Some(_slot) = app.0.password_checks.claim(ip) else {
        return busy(
            StatusCode::TOO_MANY_REQUESTS,
            "a login from this network is in progress",
        );
    };
    let permit =
        tokio::time::timeout(PasswordGate::WAIT, app.0.password_checks.permits.acquire()).await;
    let Ok(Ok(_permit)) = permit else {
        return busy(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many logins in progress",
        );
    };
    // Banned by a failure recorded while this request waited?
    if let Err(denial) = app.0.guard.check_client(&auth_req).await {
        return denial_response(&denial);
    }
    let verifier = app.clone();
    let checked = tokio::task::spawn_blocking(move || {
        verifier.0.users.verify(&form.username, &form.password)
    })
    .await;
    let sub = match checked {
        Ok(Some(sub)) => sub,
        Ok(None) => {
            bump(&app.0.stats.login_failures);
            app.0
                .guard
                .record_failure(&auth_req, "invalid_credentials")
                .await;
            tracing::info!(target: "tokenward_demo", client_ip = %ip, "login refused: invalid credentials");
            return json_error(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "unknown user or wrong password",
            );
        }
        Err(_) => return server_error("password check failed"),
    };
    let Ok(sub_id) = StoreId::new(sub) else {
        return server_error("the user's id is not a valid subject");
    };
    let mint = |m: MintRequest<'_>| app.mint(m.sub.as_str(), m.family_id.as_str());
    let family = match app.0.engine.issue(&sub_id, mint).await {
        Ok(family) => family,
        Err(RefreshError::Mint(_)) => return server_error("issuing the access token failed"),
        Err(e) => return refresh_error(&app, &e, None),
    };
    bump(&app.0.stats.logins);
    if let Some(detector) = &app.0.anomaly {
        detector.refresh_used(&family.family_id, ip);
    }
    tracing::info!(
        target: "tokenward_demo",
        sub,
        sid = family.family_id.as_str(),
        client_ip = %ip,
        "login"
    );
    app.token_response(&family.access_token, family.refresh_token.expose())
}
