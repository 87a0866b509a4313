//! Scopes and roles read where a profile says, and the profile's checks on provider claims.

use serde_json::Value;

use crate::claims::RegisteredClaims;
use crate::policy::ValidationPolicy;
use crate::profile::{AudienceClaim, GENERIC_ROLES, GENERIC_SCOPES, Source};
use crate::rejection::{Rejection, reject};

/// The scopes and roles of a verified token, read where its policy's
/// [`Profile`](crate::Profile) says (`scope`, `scp`, `roles`, `realm_access.roles`, ...).
///
/// ```
/// use tokenward_claims::*;
///
/// let keys = KeySet::single(Key::hmac("k", Algorithm::HS256, &[3u8; 32])?);
/// let issuer = TokenIssuer::builder(keys.clone(), "iss").audience("aud").build()?;
/// let token = issuer.issue(&AccessToken::new("bob").scope("orders:read"))?;
/// let policy = ValidationPolicy::builder().issuer("iss").audience("aud").build()?;
/// let verified = Validator::new(policy, keys).verify(&token.token)?;
/// assert!(verified.grants.has_scope("orders:read"));
/// assert!(verified.grants.require_scopes(["orders:read"]).is_ok());
/// let missing = verified.grants.require_scopes(["orders:write"]).unwrap_err();
/// assert_eq!(missing.class(), RejectionClass::Scope);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grants {
    scopes: Vec<String>,
    roles: Vec<String>,
}

impl Grants {
    /// The scopes, in token order.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The roles (groups, permissions), in token order.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// `Ok` when every scope of `required` is present, else a rejection of class
    /// [`Scope`](crate::RejectionClass::Scope) naming the first missing one (a name from the
    /// caller's configuration, never from the token).
    pub fn require_scopes<S: AsRef<str>>(
        &self,
        required: impl IntoIterator<Item = S>,
    ) -> Result<(), Rejection> {
        for s in required {
            if !self.has_scope(s.as_ref()) {
                return Err(reject!(Scope, "required scope `{}` is missing", s.as_ref()));
            }
        }
        Ok(())
    }

    /// `Ok` when every role of `required` is present, else a rejection of class
    /// [`Scope`](crate::RejectionClass::Scope) naming the first missing one.
    pub fn require_roles<S: AsRef<str>>(
        &self,
        required: impl IntoIterator<Item = S>,
    ) -> Result<(), Rejection> {
        for r in required {
            if !self.has_role(r.as_ref()) {
                return Err(reject!(Scope, "required role `{}` is missing", r.as_ref()));
            }
        }
        Ok(())
    }
}

/// The payload members a policy's profile reads, beside the registered claims.
#[derive(Debug, Default)]
pub(crate) struct Extras(Vec<(String, Value)>);

impl Extras {
    pub(crate) fn push(&mut self, name: String, value: Value) {
        self.0.push((name, value));
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A string claim; present with another type is a `claims` rejection.
    pub(crate) fn str(&self, name: &str) -> Result<Option<&str>, Rejection> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(reject!(Claims, "claim `{name}` has the wrong type")),
        }
    }
}

/// Whether `policy` reads the member `name` beyond the registered claims. Asked of each
/// unregistered member of a payload, so no list of the names is built per verification.
pub(crate) fn wanted(policy: &ValidationPolicy, name: &str) -> bool {
    let (scopes, roles) = sources(policy);
    let by_grants = scopes.iter().chain(roles).any(|source| {
        source.top() == name || (matches!(source, Source::PerClient(..)) && name == "azp")
    });
    let by_profile = policy.profile.map(|p| p.spec()).is_some_and(|spec| {
        spec.kind.is_some_and(|(claim, _)| claim == name)
            || (spec.audience == AudienceClaim::ClientId && name == "client_id")
    });
    by_grants || by_profile || (!policy.issuer_templates.is_empty() && name == "tid")
}

fn sources(policy: &ValidationPolicy) -> (&'static [Source], &'static [Source]) {
    match policy.profile.map(|p| p.spec()) {
        Some(spec) => (spec.scopes, spec.roles),
        None => (GENERIC_SCOPES, GENERIC_ROLES),
    }
}

/// The profile's token-kind and audience-claim checks, then the grants.
pub(crate) fn check(
    policy: &ValidationPolicy,
    registered: &RegisteredClaims,
    extras: &Extras,
) -> Result<Grants, Rejection> {
    if let Some(spec) = policy.profile.map(|p| p.spec()) {
        if let Some((claim, expected)) = spec.kind
            && extras.str(claim)? != Some(expected)
        {
            return Err(reject!(
                Typ,
                "`{claim}` is not `{expected}`: not an access token"
            ));
        }
        if spec.audience == AudienceClaim::ClientId && !policy.audiences.is_empty() {
            match extras.str("client_id")? {
                Some(id) if policy.audiences.iter().any(|a| a == id) => {}
                Some(_) => {
                    return Err(reject!(Audience, "`client_id` is not an accepted audience"));
                }
                None => return Err(reject!(Audience, "token has no `client_id`")),
            }
        }
    }
    let (scopes, roles) = sources(policy);
    Ok(Grants {
        scopes: collect(scopes, registered, extras, true)?,
        roles: collect(roles, registered, extras, false)?,
    })
}

fn collect(
    sources: &[Source],
    registered: &RegisteredClaims,
    extras: &Extras,
    split_strings: bool,
) -> Result<Vec<String>, Rejection> {
    let mut out = Vec::new();
    for source in sources {
        match *source {
            Source::Claim("scope") => {
                out.extend(registered.scopes().map(str::to_owned));
            }
            Source::Claim(name) => {
                if let Some(v) = extras.get(name) {
                    strings(v, name, split_strings, &mut out)?;
                }
            }
            Source::Nested(outer, inner) => {
                if let Some(v) = extras.get(outer) {
                    let obj = v
                        .as_object()
                        .ok_or_else(|| reject!(Claims, "claim `{outer}` has the wrong type"))?;
                    if let Some(v) = obj.get(inner) {
                        strings(v, outer, false, &mut out)?;
                    }
                }
            }
            Source::PerClient(outer, inner) => {
                let (Some(v), Some(client)) = (extras.get(outer), extras.str("azp")?) else {
                    continue;
                };
                let obj = v
                    .as_object()
                    .ok_or_else(|| reject!(Claims, "claim `{outer}` has the wrong type"))?;
                if let Some(entry) = obj.get(client) {
                    let v = entry
                        .as_object()
                        .ok_or_else(|| reject!(Claims, "claim `{outer}` has the wrong type"))?
                        .get(inner);
                    if let Some(v) = v {
                        strings(v, outer, false, &mut out)?;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// An array of strings, or (for scopes) a space-separated string.
fn strings(
    v: &Value,
    name: &str,
    split_strings: bool,
    out: &mut Vec<String>,
) -> Result<(), Rejection> {
    let wrong = || reject!(Claims, "claim `{name}` has the wrong type");
    match v {
        Value::String(s) if split_strings => {
            out.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
        }
        Value::Array(items) => {
            for item in items {
                out.push(item.as_str().ok_or_else(wrong)?.to_owned());
            }
        }
        _ => return Err(wrong()),
    }
    Ok(())
}
