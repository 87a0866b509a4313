//! What a request that passed the Guard carries, and what a route may require beyond it.

use std::net::IpAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokenward_claims::{RejectionClass, Verified};
use tokenward_ratelimit::Decision;

use crate::audit;
use crate::check::Check;
use crate::denial::Denial;
use crate::guard::CustomClaims;
use crate::request::{AuthRequest, Credentials};

/// A request that passed the Guard: the verified token and what the checks decided.
///
/// Cheap to clone (the claims are shared); adapters put it in the request's extensions.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Authenticated {
    /// The verified token.
    pub verified: Arc<Verified<CustomClaims>>,
    /// The client address the checks used.
    pub client_ip: IpAddr,
    /// The subject limit's decision (for `RateLimit` headers on the response), if one ran.
    pub limit: Option<Decision>,
    /// Every check that could not be made and was skipped under
    /// [`FailurePolicy::DangerousOpen`](tokenward_core::FailurePolicy::DangerousOpen), in
    /// pipeline order (empty when nothing was skipped); audited.
    pub degraded: Vec<Check>,
}

impl Authenticated {
    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.verified.claims.sub.as_deref()
    }

    /// `sid`: the refresh family (session) the token belongs to.
    pub fn sid(&self) -> Option<&str> {
        self.verified.claims.sid.as_deref()
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.verified.claims.jti.as_deref()
    }

    /// `exp`.
    pub fn exp(&self) -> Option<u64> {
        self.verified.claims.exp
    }

    /// The scopes, read where the policy's [`Profile`](tokenward_claims::Profile) says
    /// (`scope`, or `scp` for Entra and Okta; `scope` without a profile).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.verified.grants.scopes().iter().map(String::as_str)
    }

    /// Whether the token has `scope` (read as [`scopes`](Self::scopes) reads).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.verified.grants.has_scope(scope)
    }

    /// The roles (groups, permissions), read where the policy's
    /// [`Profile`](tokenward_claims::Profile) says (Entra `roles`, Keycloak
    /// `realm_access.roles` and `resource_access.<azp>.roles`, Cognito `cognito:groups`, Auth0
    /// `permissions`, Okta `groups`; `roles` without a profile).
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.verified.grants.roles().iter().map(String::as_str)
    }

    /// Whether the token has `role` (read as [`roles`](Self::roles) reads).
    pub fn has_role(&self, role: &str) -> bool {
        self.verified.grants.has_role(role)
    }

    /// The custom claims as your own type (parsed from the already verified payload).
    pub fn custom<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(serde_json::Value::Object(self.verified.custom.clone()))
    }

    /// The custom claims as `T` for a handler of `method` `path` (what the adapters'
    /// `Claims<T>` extractors call): when they do not fit `T`, the refusal is audited (deny,
    /// reason `claims`) and returned as 401 `invalid_token`. The serde error is not kept: it
    /// may quote the token's content.
    pub fn custom_for_route<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
    ) -> Result<T, Denial> {
        self.custom::<T>().map_err(|_| {
            let denial = Denial::InvalidToken {
                class: RejectionClass::Claims,
            };
            let req = AuthRequest::new(method, path, self.client_ip, Credentials::Absent);
            audit::denied(
                &req,
                &denial,
                Some(&self.verified),
                None,
                std::time::Instant::now(),
            );
            denial
        })
    }
}

/// What a route requires beyond a valid token: scopes and roles (403 `insufficient_scope`
/// when one is missing, audited), and an audience (401 `invalid_token` when the token is not
/// meant for it).
///
/// Scopes and roles are read through the token's [`Grants`](tokenward_claims::Grants), where
/// the policy's [`Profile`](tokenward_claims::Profile) says they live (Entra: scopes in `scp`,
/// app roles in `roles`; Keycloak: realm and client roles; ...). A missing scope answers
/// [`Denial::InsufficientScope`] (its challenge names the required scopes); with every scope
/// present, a missing role answers [`Denial::InsufficientRole`].
///
/// ```
/// use tokenward_guard::Requirements;
/// let admin = Requirements::new().scope("admin").role("Orders.Admin").audience("admin-api");
/// assert_eq!(admin.scopes(), ["admin"]);
/// assert_eq!(admin.roles(), ["Orders.Admin"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    scopes: Vec<String>,
    roles: Vec<String>,
    audience: Option<String>,
}

impl Requirements {
    /// Nothing beyond a valid token.
    pub fn new() -> Self {
        Requirements::default()
    }

    /// Requires `scope` (all added scopes are required).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Requires `role` (all added roles are required).
    #[must_use]
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Requires `aud` to contain `audience`.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The required scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The required roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    pub(crate) fn check(&self, auth: &Authenticated) -> Result<(), Denial> {
        if let Some(aud) = &self.audience {
            let ok = auth
                .verified
                .claims
                .aud
                .as_ref()
                .is_some_and(|a| a.contains(aud));
            if !ok {
                return Err(Denial::InvalidToken {
                    class: RejectionClass::Audience,
                });
            }
        }
        if !self.scopes.iter().all(|s| auth.has_scope(s)) {
            return Err(Denial::InsufficientScope {
                required: self.scopes.join(" "),
            });
        }
        if !self.roles.iter().all(|r| auth.has_role(r)) {
            return Err(Denial::InsufficientRole {
                required: self.roles.join(" "),
            });
        }
        Ok(())
    }
}
