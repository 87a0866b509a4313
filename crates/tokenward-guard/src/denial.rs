//! Why a request was refused, and the HTTP response every adapter renders for it.
//!
//! The mapping to status, headers and body lives here, once, as plain data
//! ([`Denial::status`], [`Denial::headers`], [`Denial::body`]), so the axum and actix-web
//! adapters cannot drift apart: each only copies these into its own response type.

use std::time::Duration;

use tokenward_claims::RejectionClass;
use tokenward_ratelimit::Decision;
use tokenward_revocation::RevokedBy;

use crate::check::Check;

/// A refused request. Render it with [`Denial::status`], [`Denial::headers`] and
/// [`Denial::body`]; none of them ever contains the token or text taken from it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// No bearer token: 401 with a bare `Bearer` challenge (RFC 6750 §3.1: no error code).
    MissingToken,
    /// A malformed `Authorization` header (several of them, bad syntax): 400
    /// `invalid_request`.
    InvalidRequest {
        /// Fixed text.
        reason: &'static str,
    },
    /// The token failed verification: 401 `invalid_token` — except class
    /// [`Scope`](RejectionClass::Scope) (a valid token lacking a scope or role): 403
    /// `insufficient_scope`.
    InvalidToken {
        /// The stable rejection class.
        class: RejectionClass,
    },
    /// The token verified but was revoked: 401 `invalid_token`.
    Revoked {
        /// Which rule revoked it.
        by: RevokedBy,
    },
    /// The token lacks a scope the route requires: 403 `insufficient_scope`.
    InsufficientScope {
        /// The scopes the route requires, space-separated.
        required: String,
    },
    /// The token lacks a role the route requires ([`Requirements::role`]): 403
    /// `insufficient_scope` (RFC 6750's code for "valid, but not enough privileges"), without
    /// a `scope` attribute — roles are not OAuth scopes.
    ///
    /// [`Requirements::role`]: crate::Requirements::role
    InsufficientRole {
        /// The roles the route requires, space-separated.
        required: String,
    },
    /// The per-subject limit is exhausted: 429 with `Retry-After` and the RateLimit fields.
    RateLimited {
        /// The store's decision.
        decision: Decision,
        /// The `RateLimit-Policy` field value.
        policy: String,
        /// The `RateLimit` field value.
        ratelimit: String,
    },
    /// The client is banned after repeated authentication failures: 429 with `Retry-After`.
    Banned {
        /// The store's decision.
        decision: Decision,
        /// The `RateLimit-Policy` field value.
        policy: String,
        /// The `RateLimit` field value.
        ratelimit: String,
    },
    /// A store could not answer and its failure policy is closed: 503 with `Retry-After`.
    Unavailable {
        /// Which check could not be made (the first closed one).
        check: Check,
        /// When to try again.
        retry_after: Duration,
    },
    /// The adapter could not tell the client's address (no peer address): 500 with
    /// [`MISCONFIGURED_BODY`](crate::http::MISCONFIGURED_BODY). Never a shared ban key for
    /// all clients.
    Misconfigured,
}

impl Denial {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Denial::InvalidToken {
                class: RejectionClass::Scope,
            }
            | Denial::InsufficientScope { .. }
            | Denial::InsufficientRole { .. } => 403,
            Denial::MissingToken | Denial::InvalidToken { .. } | Denial::Revoked { .. } => 401,
            Denial::InvalidRequest { .. } => 400,
            Denial::RateLimited { .. } | Denial::Banned { .. } => 429,
            Denial::Unavailable { .. } => 503,
            Denial::Misconfigured => 500,
        }
    }

    /// The machine-readable error code of the JSON body (and of the `WWW-Authenticate`
    /// challenge where RFC 6750 defines one): `missing_token`, `invalid_request`,
    /// `invalid_token`, `insufficient_scope` (a missing scope or role), `rate_limited`,
    /// `banned`, `temporarily_unavailable`, `server_error`.
    pub fn error(&self) -> &'static str {
        match self {
            Denial::InvalidToken {
                class: RejectionClass::Scope,
            }
            | Denial::InsufficientScope { .. }
            | Denial::InsufficientRole { .. } => "insufficient_scope",
            Denial::MissingToken => "missing_token",
            Denial::InvalidRequest { .. } => "invalid_request",
            Denial::InvalidToken { .. } | Denial::Revoked { .. } => "invalid_token",
            Denial::RateLimited { .. } => "rate_limited",
            Denial::Banned { .. } => "banned",
            Denial::Unavailable { .. } => "temporarily_unavailable",
            Denial::Misconfigured => "server_error",
        }
    }

    /// The `class` label of `tokenward_decisions_total` (see [`tokenward_core::metrics`]): the
    /// rejection class for invalid tokens ([`RejectionClass::as_str`]: `expired`,
    /// `signature`, ...), else `revoked`, `insufficient_scope`, `insufficient_role`,
    /// `rate_limited`, `banned`, `store_unavailable`, `missing_token`, `invalid_request`,
    /// `misconfigured`. A fixed set: never anything from the token or the request.
    pub fn class(&self) -> &'static str {
        match self {
            Denial::InvalidToken { class } => class.as_str(),
            Denial::Revoked { .. } => "revoked",
            Denial::InsufficientScope { .. } => "insufficient_scope",
            Denial::InsufficientRole { .. } => "insufficient_role",
            Denial::RateLimited { .. } => "rate_limited",
            Denial::Banned { .. } => "banned",
            Denial::Unavailable { .. } => "store_unavailable",
            Denial::MissingToken => "missing_token",
            Denial::InvalidRequest { .. } => "invalid_request",
            Denial::Misconfigured => "misconfigured",
        }
    }

    /// The reason class for audit events: the rejection class for invalid tokens, the
    /// revocation rule for revoked ones, `insufficient_role` for a missing role, the error
    /// code otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::InvalidToken { class } => class.as_str(),
            Denial::InsufficientRole { .. } => "insufficient_role",
            Denial::Revoked { by } => by.as_str(),
            Denial::InvalidRequest { .. } => "malformed_header",
            Denial::Unavailable { check, .. } => check.as_str(),
            Denial::Misconfigured => "no_client_address",
            other => other.error(),
        }
    }

    /// The human-readable description: fixed text per case, never from the token.
    pub fn description(&self) -> &'static str {
        match self {
            Denial::MissingToken => "a bearer token is required",
            Denial::InvalidRequest { reason } => reason,
            Denial::InvalidToken { class } => describe(*class),
            Denial::Revoked { .. } => "the token has been revoked",
            Denial::InsufficientScope { .. } => "the token lacks a required scope",
            Denial::InsufficientRole { .. } => "the token lacks a required role",
            Denial::RateLimited { .. } => "too many requests for this subject",
            Denial::Banned { .. } => "too many authentication failures from this client",
            Denial::Unavailable { .. } => "authentication is temporarily unavailable",
            Denial::Misconfigured => "the server is misconfigured",
        }
    }

    /// The response headers: `WWW-Authenticate` for 400/401/403, `Retry-After`,
    /// `RateLimit-Policy` and `RateLimit` for 429, `Retry-After` for 503, and
    /// `Cache-Control: no-store` always. Adapters add `Content-Type: application/json`
    /// ([`JSON_CONTENT_TYPE`](crate::http::JSON_CONTENT_TYPE)).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::with_capacity(4);
        match self {
            Denial::MissingToken => headers.push(("www-authenticate", "Bearer".to_owned())),
            Denial::InsufficientRole { .. }
            | Denial::InvalidToken {
                class: RejectionClass::Scope,
            } => headers.push((
                "www-authenticate",
                format!(
                    "Bearer error=\"insufficient_scope\", error_description=\"{}\"",
                    self.description()
                ),
            )),
            Denial::InvalidRequest { .. }
            | Denial::InvalidToken { .. }
            | Denial::Revoked { .. } => headers.push((
                "www-authenticate",
                format!(
                    "Bearer error=\"{}\", error_description=\"{}\"",
                    self.error(),
                    self.description()
                ),
            )),
            Denial::InsufficientScope { required } => headers.push((
                "www-authenticate",
                format!(
                    "Bearer error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
                    self.description(),
                    quoted_string_safe(required)
                ),
            )),
            Denial::RateLimited {
                decision,
                policy,
                ratelimit,
            }
            | Denial::Banned {
                decision,
                policy,
                ratelimit,
            } => {
                if let Some(retry) = decision.retry_after_header() {
                    headers.push(("retry-after", retry));
                }
                headers.push(("ratelimit-policy", policy.clone()));
                headers.push(("ratelimit", ratelimit.clone()));
            }
            Denial::Unavailable { retry_after, .. } => headers.push((
                "retry-after",
                retry_after
                    .as_secs()
                    .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
                    .max(1)
                    .to_string(),
            )),
            Denial::Misconfigured => {}
        }
        headers.push(("cache-control", "no-store".to_owned()));
        headers
    }

    /// The JSON body: `{"error": ..., "error_description": ...}`.
    pub fn body(&self) -> String {
        serde_json::json!({
            "error": self.error(),
            "error_description": self.description(),
        })
        .to_string()
    }
}

fn describe(class: RejectionClass) -> &'static str {
    match class {
        RejectionClass::Malformed => "the token is malformed",
        RejectionClass::Algorithm => "the token's algorithm is not accepted",
        RejectionClass::Key => "the token's signing key is not trusted",
        RejectionClass::Signature => "the token's signature is invalid",
        RejectionClass::Header => "the token's header is not accepted",
        RejectionClass::Typ => "the token's type is not accepted",
        RejectionClass::Expired => "the token has expired",
        RejectionClass::NotYetValid => "the token is not yet valid",
        RejectionClass::Issuer => "the token's issuer is not accepted",
        RejectionClass::Audience => "the token is not meant for this resource",
        RejectionClass::Scope => "the token lacks a required scope or role",
        _ => "the token's claims are not accepted",
    }
}

/// Scope names are configuration, not request data, but keep the header well-formed anyway.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_class_has_its_own_description_and_status() {
        let mut seen = std::collections::HashSet::new();
        for class in RejectionClass::ALL {
            let d = Denial::InvalidToken { class };
            // A valid token without the privileges is 403 insufficient_scope (RFC 6750 §3.1);
            // every other class is 401 invalid_token.
            let (status, error) = if class == RejectionClass::Scope {
                (403, "insufficient_scope")
            } else {
                (401, "invalid_token")
            };
            assert_eq!(d.status(), status, "{class}");
            assert_eq!(d.reason(), class.as_str());
            let body: serde_json::Value = serde_json::from_str(&d.body()).unwrap();
            assert_eq!(body["error"], error);
            assert_eq!(body["error_description"], describe(class));
            assert!(
                seen.insert(describe(class)),
                "{class} shares its description"
            );
            let www = &d.headers()[0];
            assert_eq!(www.0, "www-authenticate");
            assert_eq!(
                www.1,
                format!(
                    "Bearer error=\"{error}\", error_description=\"{}\"",
                    describe(class)
                )
            );
        }
    }

    #[test]
    fn a_missing_role_is_403_insufficient_scope_without_a_scope_attribute() {
        let d = Denial::InsufficientRole {
            required: "ops".to_owned(),
        };
        assert_eq!(d.status(), 403);
        assert_eq!(d.error(), "insufficient_scope");
        assert_eq!(d.reason(), "insufficient_role");
        assert_eq!(
            d.headers()[0].1,
            "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a required role\""
        );
    }

    #[test]
    fn unavailable_rounds_retry_after_up() {
        let d = Denial::Unavailable {
            check: Check::Revocation,
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(d.status(), 503);
        assert!(d.headers().contains(&("retry-after", "2".to_owned())));
    }

    #[test]
    fn misconfigured_is_the_shared_500() {
        let d = Denial::Misconfigured;
        assert_eq!(d.status(), 500);
        assert_eq!(d.body(), crate::http::MISCONFIGURED_BODY);
        assert_eq!(d.headers(), [("cache-control", "no-store".to_owned())]);
    }

    #[test]
    fn scope_challenge_stays_well_formed() {
        let d = Denial::InsufficientScope {
            required: "admin \"x\\".to_owned(),
        };
        assert_eq!(
            d.headers()[0].1,
            "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"admin x\""
        );
    }
}
