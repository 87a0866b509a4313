//! Provider profiles: what Entra ID, Auth0, Okta, Keycloak, Cognito and Google tokens look
//! like, as data a [`ValidationPolicy`](crate::ValidationPolicy) applies.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::Claim;

/// An identity provider's token conventions, attached to a policy with
/// [`PolicyBuilder::profile`](crate::PolicyBuilder::profile).
///
/// A profile is data, not a code path: the claims a token must carry, the default maximum
/// lifetime (wide enough for the provider's default issuance; an explicit
/// [`max_lifetime`](crate::PolicyBuilder::max_lifetime) replaces it), where scopes and roles
/// live ([`Grants`](crate::Grants)), which claim holds the audience, the token-kind claim an
/// access token must carry, and the issuer forms it accepts. A profile never weakens the
/// signature, algorithm, `exp`/`nbf`, issuer or audience checks: the policy still names its
/// issuers and audiences.
///
/// | profile | required claims | max lifetime | scopes | roles | audience | token kind | issuer forms |
/// |---|---|---|---|---|---|---|---|
/// | `entra` | exp iat iss aud sub | 90 min | `scp` | `roles` | `aud` | — | `{tenantid}` templates (v1 `https://sts.windows.net/{tenantid}/`, v2 `https://login.microsoftonline.com/{tenantid}/v2.0`), equal to `tid` |
/// | `auth0` | exp iat iss aud sub | 24 h | `scope` | `permissions` | `aud` | — | exact |
/// | `okta` | exp iat iss aud sub jti | 1 h | `scp` | `groups` | `aud` | — | exact |
/// | `keycloak` | exp iat iss aud sub jti | 1 h | `scope` | `realm_access.roles`, `resource_access.<azp>.roles` | `aud` | `typ` = `Bearer` | exact |
/// | `cognito` | exp iat iss sub jti | 1 h | `scope` | `cognito:groups` | `client_id` | `token_use` = `access` | exact |
/// | `google` | exp iat iss aud sub | 1 h | `scope` | — | `aud` | — | `https://accounts.google.com` and `accounts.google.com` alike |
///
/// Scope claims are a space-separated string or an array of strings; role claims arrays of
/// strings. Without a profile, scopes come from `scope` and roles from `roles`.
///
/// ```
/// use tokenward_claims::Profile;
///
/// let p: Profile = "keycloak".parse()?;
/// assert_eq!(p, Profile::Keycloak);
/// assert_eq!(p.token_kind(), Some(("typ", "Bearer")));
/// assert_eq!(serde_json::to_string(&Profile::Auth0)?, r#""auth0""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Profile {
    /// Microsoft Entra ID (Azure AD), v1 and v2 access tokens.
    Entra,
    /// Auth0 API access tokens.
    Auth0,
    /// Okta (custom authorization server) access tokens.
    Okta,
    /// Keycloak access tokens.
    Keycloak,
    /// Amazon Cognito user-pool access tokens.
    Cognito,
    /// Google ID tokens.
    Google,
}

/// Which claim holds the audience a policy's audiences are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudienceClaim {
    /// `aud` (RFC 7519).
    Aud,
    /// `client_id` (Cognito access tokens carry no `aud`).
    ClientId,
}

/// Where a profile reads scopes or roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A top-level claim: a space-separated string or an array of strings.
    Claim(&'static str),
    /// `outer.inner`: an array of strings in an object claim.
    Nested(&'static str, &'static str),
    /// `outer.<azp>.inner`: the entry of the token's own client (`azp`).
    PerClient(&'static str, &'static str),
}

impl Source {
    pub(crate) fn top(self) -> &'static str {
        match self {
            Source::Claim(c) | Source::Nested(c, _) | Source::PerClient(c, _) => c,
        }
    }
}

pub(crate) struct Spec {
    pub(crate) required: &'static [Claim],
    pub(crate) max_lifetime: Duration,
    pub(crate) scopes: &'static [Source],
    pub(crate) roles: &'static [Source],
    pub(crate) scope_names: &'static [&'static str],
    pub(crate) role_names: &'static [&'static str],
    pub(crate) audience: AudienceClaim,
    pub(crate) kind: Option<(&'static str, &'static str)>,
    pub(crate) tenant_templates: bool,
    pub(crate) issuer_aliases: &'static [(&'static str, &'static str)],
}

use Claim::{Aud, Exp, Iat, Iss, Jti, Sub};

const HOUR: Duration = Duration::from_secs(3600);

/// Scopes and roles without a profile.
pub(crate) const GENERIC_SCOPES: &[Source] = &[Source::Claim("scope")];
pub(crate) const GENERIC_ROLES: &[Source] = &[Source::Claim("roles")];

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 6] = [
        Profile::Entra,
        Profile::Auth0,
        Profile::Okta,
        Profile::Keycloak,
        Profile::Cognito,
        Profile::Google,
    ];

    /// The name: `entra`, `auth0`, `okta`, `keycloak`, `cognito` or `google` (as serde and
    /// [`FromStr`] spell it).
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Entra => "entra",
            Profile::Auth0 => "auth0",
            Profile::Okta => "okta",
            Profile::Keycloak => "keycloak",
            Profile::Cognito => "cognito",
            Profile::Google => "google",
        }
    }

    pub(crate) fn spec(self) -> Spec {
        let base = Spec {
            required: &[Exp, Iat, Iss, Aud, Sub],
            max_lifetime: HOUR,
            scopes: GENERIC_SCOPES,
            roles: &[],
            scope_names: &["scope"],
            role_names: &[],
            audience: AudienceClaim::Aud,
            kind: None,
            tenant_templates: false,
            issuer_aliases: &[],
        };
        match self {
            // Access tokens live 60–90 minutes (random); `uti` instead of `jti`.
            Profile::Entra => Spec {
                max_lifetime: Duration::from_secs(90 * 60),
                scopes: &[Source::Claim("scp")],
                roles: &[Source::Claim("roles")],
                scope_names: &["scp"],
                role_names: &["roles"],
                tenant_templates: true,
                ..base
            },
            // API tokens live 24 hours by default; no `jti`; RBAC in `permissions`.
            Profile::Auth0 => Spec {
                max_lifetime: 24 * HOUR,
                roles: &[Source::Claim("permissions")],
                role_names: &["permissions"],
                ..base
            },
            Profile::Okta => Spec {
                required: &[Exp, Iat, Iss, Aud, Sub, Jti],
                scopes: &[Source::Claim("scp")],
                roles: &[Source::Claim("groups")],
                scope_names: &["scp"],
                role_names: &["groups"],
                ..base
            },
            Profile::Keycloak => Spec {
                required: &[Exp, Iat, Iss, Aud, Sub, Jti],
                roles: &[
                    Source::Nested("realm_access", "roles"),
                    Source::PerClient("resource_access", "roles"),
                ],
                role_names: &["realm_access.roles", "resource_access.<azp>.roles"],
                kind: Some(("typ", "Bearer")),
                ..base
            },
            Profile::Cognito => Spec {
                required: &[Exp, Iat, Iss, Sub, Jti],
                roles: &[Source::Claim("cognito:groups")],
                role_names: &["cognito:groups"],
                audience: AudienceClaim::ClientId,
                kind: Some(("token_use", "access")),
                ..base
            },
            Profile::Google => Spec {
                issuer_aliases: &[("https://accounts.google.com", "accounts.google.com")],
                ..base
            },
        }
    }

    /// The claims a token must carry under this profile (replaced by an explicit
    /// [`required_claims`](crate::PolicyBuilder::required_claims)).
    pub fn required_claims(self) -> &'static [Claim] {
        self.spec().required
    }

    /// The default maximum lifetime (`exp − iat`), replaced by an explicit
    /// [`max_lifetime`](crate::PolicyBuilder::max_lifetime).
    pub fn max_lifetime(self) -> Duration {
        self.spec().max_lifetime
    }

    /// The claims scopes are read from.
    pub fn scope_claims(self) -> &'static [&'static str] {
        self.spec().scope_names
    }

    /// The claims roles are read from (`<azp>`: the token's own client).
    pub fn role_claims(self) -> &'static [&'static str] {
        self.spec().role_names
    }

    /// The claim the policy's audiences are compared with.
    pub fn audience_claim(self) -> AudienceClaim {
        self.spec().audience
    }

    /// The claim and value an access token of this provider carries, where its ID or refresh
    /// tokens carry another (Keycloak `typ` `Bearer`, Cognito `token_use` `access`).
    pub fn token_kind(self) -> Option<(&'static str, &'static str)> {
        self.spec().kind
    }

    /// Whether issuers may be `{tenantid}` templates (Entra ID).
    pub fn accepts_tenant_templates(self) -> bool {
        self.spec().tenant_templates
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile; known: entra, auth0, okta, keycloak, cognito, google")]
#[non_exhaustive]
pub struct UnknownProfile;

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or(UnknownProfile)
    }
}

/// The placeholder of a tenant issuer template.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// Whether `s` is a GUID in its 8-4-4-4-12 hex form.
pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The tenant an issuer names under `template`, if it has the template's shape: the text
/// between the template's prefix and suffix, a GUID.
pub(crate) fn template_tenant<'a>(template: &str, iss: &'a str) -> Option<&'a str> {
    let (prefix, suffix) = template.split_once(TENANT_PLACEHOLDER)?;
    let middle = iss.strip_prefix(prefix)?.strip_suffix(suffix)?;
    is_guid(middle).then_some(middle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap_or_default(),
                format!("\"{}\"", p.name())
            );
        }
        assert!("Entra".parse::<Profile>().is_err());
        assert!("".parse::<Profile>().is_err());
    }

    #[test]
    fn templates_match_guids_only() {
        let t = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let guid = "9188040d-6c67-4c5b-b112-36a304b66dad";
        let iss = format!("https://login.microsoftonline.com/{guid}/v2.0");
        assert_eq!(template_tenant(t, &iss), Some(guid));
        for bad in [
            "https://login.microsoftonline.com/common/v2.0",
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0/",
            "https://login.microsoftonline.com.evil/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/x/v2.0",
            "https://login.microsoftonline.com/9188040d6c674c5bb11236a304b66dad0000/v2.0",
        ] {
            assert_eq!(template_tenant(t, bad), None, "{bad}");
        }
    }
}
