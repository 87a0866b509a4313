//! `POST /login` and the gate in front of its password checks.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use tokenward_axum::{denial_response, request_client_ip};
use tokenward_core::StoreId;
use tokenward_guard::{AuthRequest, Credentials};
use tokenward_refresh::{MintRequest, RefreshError};

use super::{AppState, bump, busy, json_error, read_json, refresh_error, server_error};

/// Bounds password checks (Argon2id: 19 MiB and tens of milliseconds each): at most
/// [`PasswordGate::MAX_CONCURRENT`] at once in this instance, and one at a time per client
/// address. Without it, parallel attempts from one address all pass the ban check before
/// the first failure is recorded (the ban would let dozens of guesses through instead of
/// `maxretry`), and a burst of logins can claim gigabytes.
pub(super) struct PasswordGate {
    permits: tokio::sync::Semaphore,
    in_flight: std::sync::Mutex<std::collections::HashSet<std::net::IpAddr>>,
}

impl PasswordGate {
    const MAX_CONCURRENT: usize = 4;
    /// How long a login waits for one of the permits before answering 503.
    const WAIT: Duration = Duration::from_secs(2);

    pub(super) fn new() -> Self {
        PasswordGate {
            permits: tokio::sync::Semaphore::new(Self::MAX_CONCURRENT),
            in_flight: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Claims `ip`'s single slot; `None` when a check of that address is already running.
    fn claim(&self, ip: std::net::IpAddr) -> Option<AddressSlot<'_>> {
        let inserted = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ip);
        // The lock is released here: a slot's drop takes it again.
        inserted.then(|| AddressSlot { gate: self, ip })
    }
}

/// One address's claim on the gate, released on drop.
struct AddressSlot<'a> {
    gate: &'a PasswordGate,
    ip: std::net::IpAddr,
}

impl Drop for AddressSlot<'_> {
    fn drop(&mut self) {
        self.gate
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.ip);
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
    // One password check at a time per address (so the ban counts every guess before the
    // next one runs), and a few at a time overall (bounded memory and threads).
    let Some(_slot) = app.0.password_checks.claim(ip) else {
        return busy(
            StatusCode::TOO_MANY_REQUESTS,
            "a login from this address is in progress",
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
    tracing::info!(
        target: "tokenward_demo",
        sub,
        sid = family.family_id.as_str(),
        client_ip = %ip,
        "login"
    );
    app.token_response(&family.access_token, family.refresh_token.expose())
}
