//! The table's scope and role cases: `/admin` requires scope `admin`, `/ops` role `ops`; each
//! is read from its own claim (`scope`, `roles`), never from the other.

use tokenward_claims::AccessToken;

use super::{Case, Expect, Fixture, case};
use crate::Denial;

/// A token of `sub` with `scopes` and the custom claim `roles`.
fn token(f: &Fixture, sub: &str, scopes: &[&str], roles: &[&str]) -> String {
    let req = scopes
        .iter()
        .fold(AccessToken::new(sub), |req, s| req.scope(*s));
    let bearer = f
        .issuer
        .issue_with(&req, &serde_json::json!({ "roles": roles }))
        .expect("issue")
        .token;
    format!("Bearer {bearer}")
}

pub(super) fn cases(f: &Fixture) -> Vec<Case> {
    let no_role = Denial::InsufficientRole {
        required: "ops".to_owned(),
    };
    let no_scope = Denial::InsufficientScope {
        required: "admin".to_owned(),
    };
    vec![
        case(
            "ops route with the role",
            "/ops",
            40,
            &[&token(f, "operator", &[], &["ops", "audit"])],
            &[],
            Expect::ok("operator"),
        ),
        case(
            "ops route without the role",
            "/ops",
            41,
            &[&token(f, "alice", &["admin"], &["audit"])],
            &[],
            Expect::denial(&no_role),
        ),
        case(
            "ops route: a scope named like the role is not the role",
            "/ops",
            42,
            &[&token(f, "alice", &["ops"], &[])],
            &[],
            Expect::denial(&no_role),
        ),
        case(
            "admin route: a role named like the scope is not the scope",
            "/admin",
            43,
            &[&token(f, "alice", &[], &["admin"])],
            &[],
            Expect::denial(&no_scope),
        ),
        case(
            "ops route without a token",
            "/ops",
            44,
            &[],
            &[],
            Expect::denial(&Denial::MissingToken),
        ),
    ]
}
