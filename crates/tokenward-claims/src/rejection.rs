use std::fmt;

/// The stable, machine-readable class of a [`Rejection`].
///
/// Classes are part of the public contract: adapters map them to RFC 6750 responses, audit
/// events carry [`RejectionClass::as_str`], and the CLI prints them. New classes may be added;
/// existing names never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectionClass {
    /// Not a JWS compact token: wrong shape, bad base64url, not JSON, oversize.
    Malformed,
    /// `none`, an unknown algorithm, or one not bound to the selected key / not allowed.
    Algorithm,
    /// No trusted key for the token (unknown or missing `kid`).
    Key,
    /// The signature does not verify.
    Signature,
    /// A forbidden or ill-typed header parameter (`crit`, `jku`, `jwk`, `x5u`, `x5c`, `b64`, ...).
    Header,
    /// The `typ` header is missing (when required) or not accepted, or a profile's token-kind
    /// claim (Keycloak `typ`, Cognito `token_use`) says this is not an access token.
    Typ,
    /// `exp` has passed.
    Expired,
    /// `nbf` or `iat` lies in the future.
    NotYetValid,
    /// `iss` is not one of the policy's issuers.
    Issuer,
    /// No `aud` value is one of the policy's audiences.
    Audience,
    /// A claim is missing, ill-typed, duplicated, or violates the policy (e.g. max lifetime).
    Claims,
    /// The token is valid but lacks a required scope or role
    /// ([`Grants::require_scopes`](crate::Grants::require_scopes) /
    /// [`require_roles`](crate::Grants::require_roles)): RFC 6750 `insufficient_scope`.
    Scope,
}

impl RejectionClass {
    /// Every class, in declaration order.
    pub const ALL: [RejectionClass; 12] = [
        RejectionClass::Malformed,
        RejectionClass::Algorithm,
        RejectionClass::Key,
        RejectionClass::Signature,
        RejectionClass::Header,
        RejectionClass::Typ,
        RejectionClass::Expired,
        RejectionClass::NotYetValid,
        RejectionClass::Issuer,
        RejectionClass::Audience,
        RejectionClass::Claims,
        RejectionClass::Scope,
    ];

    /// The stable name: `malformed`, `algorithm`, `key`, `signature`, `header`, `typ`,
    /// `expired`, `not_yet_valid`, `issuer`, `audience`, `claims` or `scope`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectionClass::Malformed => "malformed",
            RejectionClass::Algorithm => "algorithm",
            RejectionClass::Key => "key",
            RejectionClass::Signature => "signature",
            RejectionClass::Header => "header",
            RejectionClass::Typ => "typ",
            RejectionClass::Expired => "expired",
            RejectionClass::NotYetValid => "not_yet_valid",
            RejectionClass::Issuer => "issuer",
            RejectionClass::Audience => "audience",
            RejectionClass::Claims => "claims",
            RejectionClass::Scope => "scope",
        }
    }
}

impl fmt::Display for RejectionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was rejected: a stable [`class`](Rejection::class) plus a human-readable
/// reason.
///
/// The reason is written for logs and operators. It never contains the token, and never
/// echoes attacker-controlled strings from it (a `kid`, an `iss`): only fixed text, claim
/// names, numbers and the policy's own configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    class: RejectionClass,
    reason: String,
}

impl Rejection {
    /// A rejection of `class` with `reason`, for checks made outside the validator (an
    /// adapter's own size cap, a non-UTF-8 header). The reason must not contain the token.
    pub fn new(class: RejectionClass, reason: impl Into<String>) -> Self {
        Rejection {
            class,
            reason: reason.into(),
        }
    }

    /// The stable class.
    pub fn class(&self) -> RejectionClass {
        self.class
    }

    /// The human-readable reason (never contains the token).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.reason)
    }
}

impl std::error::Error for Rejection {}

macro_rules! reject {
    ($class:ident, $($arg:tt)+) => {
        $crate::rejection::Rejection::new(
            $crate::rejection::RejectionClass::$class,
            format!($($arg)+),
        )
    };
}
pub(crate) use reject;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_unique() {
        let names: Vec<_> = RejectionClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "malformed",
                "algorithm",
                "key",
                "signature",
                "header",
                "typ",
                "expired",
                "not_yet_valid",
                "issuer",
                "audience",
                "claims",
                "scope"
            ]
        );
    }
}
