//! Validation policies.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use tokenward_core::{SharedClock, SystemClock};

use crate::profile::{Profile, TENANT_PLACEHOLDER, is_guid};

/// A registered claim a policy can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Claim {
    /// `iss`
    Iss,
    /// `sub`
    Sub,
    /// `aud`
    Aud,
    /// `exp`
    Exp,
    /// `nbf`
    Nbf,
    /// `iat`
    Iat,
    /// `jti`
    Jti,
    /// `sid`
    Sid,
}

impl Claim {
    /// Every claim a policy can require.
    pub const ALL: [Claim; 8] = [
        Claim::Iss,
        Claim::Sub,
        Claim::Aud,
        Claim::Exp,
        Claim::Nbf,
        Claim::Iat,
        Claim::Jti,
        Claim::Sid,
    ];

    /// The claims required by default: `exp`, `iat`, `iss`, `aud`, `sub`, `jti`.
    pub const DEFAULT_REQUIRED: [Claim; 6] = [
        Claim::Exp,
        Claim::Iat,
        Claim::Iss,
        Claim::Aud,
        Claim::Sub,
        Claim::Jti,
    ];

    /// The claim's name in a token.
    pub const fn name(self) -> &'static str {
        match self {
            Claim::Iss => "iss",
            Claim::Sub => "sub",
            Claim::Aud => "aud",
            Claim::Exp => "exp",
            Claim::Nbf => "nbf",
            Claim::Iat => "iat",
            Claim::Jti => "jti",
            Claim::Sid => "sid",
        }
    }

    /// The claim with this name.
    pub fn from_name(name: &str) -> Option<Claim> {
        Claim::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Why a policy could not be built. Each variant names the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// No issuer configured: a policy must say whose tokens it accepts.
    #[error("`issuer`: no issuer configured (or call `dangerous_skip_issuer_check`)")]
    NoIssuer,
    /// No audience configured: a policy must say which audience it serves.
    #[error("`audience`: no audience configured (or call `dangerous_skip_audience_check`)")]
    NoAudience,
    /// The leeway exceeds five minutes.
    #[error("`leeway`: {0:?} is more than the 5 minute maximum (see `dangerous_leeway`)")]
    LeewayTooLarge(Duration),
    /// A setting has a value that can never work.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The largest leeway a policy accepts without [`PolicyBuilder::dangerous_leeway`].
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The leeway of a policy unless set: 30 s.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The maximum token lifetime (`exp − iat`) of a policy unless set: 1 hour.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// The maximum token size of a policy unless set: 8 KiB.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 8 * 1024;

/// `d` in seconds, if it is a whole number of them (JWT times are whole seconds).
pub(crate) fn whole_secs(d: Duration) -> Option<u64> {
    (d.subsec_nanos() == 0).then_some(d.as_secs())
}

/// Strict rules for accepting a token. Built with [`ValidationPolicy::builder`].
///
/// | setting | default |
/// |---|---|
/// | issuer(s), audience(s) | none: required, building fails without them |
/// | algorithms | those of the keys (each key is bound to one); restrict with [`PolicyBuilder::algorithms`] |
/// | leeway | 30 s (at most 5 min) |
/// | maximum lifetime (`exp − iat`) | 1 hour |
/// | required claims | `exp`, `iat`, `iss`, `aud`, `sub`, `jti` |
/// | accepted `typ` | `JWT`, `at+jwt`; a token without `typ` is accepted unless [`PolicyBuilder::require_typ`] |
/// | maximum token size | 8 KiB, checked before any decoding |
/// | `kid` | optional: a token without `kid` verifies when exactly one key is bound to its `alg` (a Rails app on the `jwt` gem sends none); [`PolicyBuilder::require_kid`] rejects it |
/// | clock | the system clock |
/// | profile | none; [`PolicyBuilder::profile`] applies a provider's conventions ([`Profile`]): its required claims and maximum lifetime unless set explicitly, its audience claim, token-kind check, scopes/roles and issuer forms |
///
/// ```
/// use std::time::Duration;
/// use tokenward_claims::{Claim, ValidationPolicy};
///
/// let policy = ValidationPolicy::builder()
///     .issuer("https://auth.example.com")
///     .audience("orders-api")
///     .max_lifetime(Duration::from_secs(15 * 60))
///     .require(Claim::Sid)
///     .build()?;
/// assert_eq!(policy.issuers(), ["https://auth.example.com"]);
/// # Ok::<(), tokenward_claims::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ValidationPolicy {
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) leeway: Duration,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) required: Vec<Claim>,
    pub(crate) typ: Vec<String>,
    pub(crate) require_typ: bool,
    pub(crate) max_token_size: usize,
    pub(crate) require_kid: bool,
    pub(crate) clock: SharedClock,
    pub(crate) profile: Option<Profile>,
    pub(crate) issuer_templates: Vec<String>,
    pub(crate) tenants: Vec<String>,
}

impl ValidationPolicy {
    /// A builder with the defaults above.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            issuers: Vec::new(),
            audiences: Vec::new(),
            skip_issuer: false,
            skip_audience: false,
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            dangerous_leeway: false,
            max_lifetime: None,
            required: None,
            extra_required: Vec::new(),
            typ: vec!["JWT".to_owned(), "at+jwt".to_owned()],
            require_typ: false,
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
            require_kid: false,
            clock: Arc::new(SystemClock),
            profile: None,
            tenants: Vec::new(),
        }
    }

    /// Accepted issuers, exactly (empty only with `dangerous_skip_issuer_check` or when every
    /// issuer is a template).
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// Accepted issuer templates (`https://login.microsoftonline.com/{tenantid}/v2.0`).
    pub fn issuer_templates(&self) -> &[String] {
        &self.issuer_templates
    }

    /// The tenants a templated issuer may name (empty: any tenant).
    pub fn tenants(&self) -> &[String] {
        &self.tenants
    }

    /// The provider profile, if any.
    pub fn profile(&self) -> Option<Profile> {
        self.profile
    }

    /// Whether `iss` is one of the issuers or has the shape of one of the templates (the
    /// template's `tid` check still applies at verification).
    pub fn names_issuer(&self, iss: &str) -> bool {
        self.issuers.iter().any(|i| i == iss)
            || self
                .issuer_templates
                .iter()
                .any(|t| crate::profile::template_tenant(t, iss).is_some())
    }

    /// Accepted audiences (empty only with `dangerous_skip_audience_check`).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The maximum token size in bytes.
    pub fn max_token_size(&self) -> usize {
        self.max_token_size
    }

    /// The leeway applied to `exp`, `nbf` and `iat`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The maximum `exp − iat`, if enforced.
    pub fn max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    /// The required claims.
    pub fn required(&self) -> &[Claim] {
        &self.required
    }

    /// The clock the policy reads "now" from.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

/// Builder for [`ValidationPolicy`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PolicyBuilder {
    issuers: Vec<String>,
    audiences: Vec<String>,
    skip_issuer: bool,
    skip_audience: bool,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    dangerous_leeway: bool,
    /// `None`: the profile's or the default; `Some(None)`: no maximum.
    max_lifetime: Option<Option<Duration>>,
    /// `None`: the profile's or the default.
    required: Option<Vec<Claim>>,
    extra_required: Vec<Claim>,
    typ: Vec<String>,
    require_typ: bool,
    max_token_size: usize,
    require_kid: bool,
    clock: SharedClock,
    profile: Option<Profile>,
    tenants: Vec<String>,
}

impl PolicyBuilder {
    /// Accepts tokens whose `iss` is `issuer` (call again for more issuers).
    ///
    /// Under a profile that accepts tenant templates ([`Profile::Entra`]) an issuer containing
    /// `{tenantid}` is a template: it matches an `iss` with a GUID in its place that equals the
    /// token's `tid` claim, and one of the [`tenant`](Self::tenant)s if any are listed. Under
    /// [`Profile::Google`], `https://accounts.google.com` and `accounts.google.com` accept each
    /// other.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens with `audience` among their `aud` values (call again for more).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// **Dangerous**: accepts any issuer. Tokens of one integration then validate on
    /// another that shares a key.
    pub fn dangerous_skip_issuer_check(mut self) -> Self {
        self.skip_issuer = true;
        self
    }

    /// **Dangerous**: accepts any audience. Admin tokens then validate on user endpoints.
    pub fn dangerous_skip_audience_check(mut self) -> Self {
        self.skip_audience = true;
        self
    }

    /// Restricts the algorithms further than the keys do. A token is accepted only if its
    /// `alg` is in this list *and* is the algorithm its key is bound to.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// The leeway applied to `exp`, `nbf` and `iat` for clock skew: whole seconds, at most
    /// 5 minutes ([`build`](Self::build) fails otherwise: [`PolicyError::LeewayTooLarge`],
    /// [`PolicyError::Invalid`] with field `leeway`).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.dangerous_leeway = false;
        self
    }

    /// **Dangerous**: a leeway over 5 minutes (still whole seconds), which extends every
    /// token's life by as much.
    pub fn dangerous_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.dangerous_leeway = true;
        self
    }

    /// The maximum accepted `exp − iat`: whole seconds, at least one ([`build`](Self::build)
    /// fails otherwise, field `max_lifetime`). Tokens minted with a longer life are rejected
    /// even when unexpired.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(Some(max));
        self
    }

    /// **Dangerous**: no maximum lifetime; a token minted for 30 days is accepted for 30 days.
    pub fn dangerous_no_max_lifetime(mut self) -> Self {
        self.max_lifetime = Some(None);
        self
    }

    /// Additionally requires `claim`.
    pub fn require(mut self, claim: Claim) -> Self {
        if !self.extra_required.contains(&claim) {
            self.extra_required.push(claim);
        }
        self
    }

    /// Applies a provider's conventions ([`Profile`]): its required claims and maximum
    /// lifetime (unless [`required_claims`](Self::required_claims) /
    /// [`max_lifetime`](Self::max_lifetime) set them), its audience claim, token-kind check,
    /// where scopes and roles live, and its issuer forms. Issuers and audiences must still be
    /// configured.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Restricts a `{tenantid}` issuer template to this tenant (a GUID; call again for more).
    /// Without any, a templated issuer accepts any tenant whose `tid` matches its `iss`.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenants.push(tenant.into());
        self
    }

    /// Replaces the required claims. Without `exp` in the list, tokens without `exp` never
    /// expire; that requires [`PolicyBuilder::dangerous_required_claims`].
    pub fn required_claims(self, claims: impl IntoIterator<Item = Claim>) -> Self {
        let mut claims: Vec<Claim> = claims.into_iter().collect();
        if !claims.contains(&Claim::Exp) {
            claims.push(Claim::Exp);
        }
        self.dangerous_required_claims(claims)
    }

    /// **Dangerous**: replaces the required claims, allowing `exp` to be optional.
    pub fn dangerous_required_claims(mut self, claims: impl IntoIterator<Item = Claim>) -> Self {
        self.required = Some(claims.into_iter().collect());
        self.extra_required.clear();
        self
    }

    /// Replaces the accepted `typ` values (compared case-insensitively; an `application/`
    /// prefix is ignored).
    pub fn typ(mut self, accepted: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.typ = accepted.into_iter().map(Into::into).collect();
        self
    }

    /// Rejects tokens without a `typ` header (RFC 9068 access tokens always carry one). By
    /// default a token without `typ` is accepted (many identity providers send none); a `typ`
    /// that is present is always checked against [`typ`](Self::typ).
    pub fn require_typ(mut self) -> Self {
        self.require_typ = true;
        self
    }

    /// The maximum token size in bytes, checked before any decoding (at least 16;
    /// [`build`](Self::build) fails otherwise, field `max_token_size`).
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// Rejects tokens without a `kid` header (class `key`). By default such a token verifies
    /// when exactly one key of the set is bound to its `alg` — safe, since that key alone
    /// decides the algorithm — but it survives no rotation to a second key of the same
    /// algorithm; require `kid` once every issuer sends one.
    pub fn require_kid(mut self) -> Self {
        self.require_kid = true;
        self
    }

    /// The clock to read "now" from (a `ManualClock` in tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings and builds the policy. A setting out of range is an error naming
    /// it, never adjusted silently: token times are whole seconds, so a leeway or maximum
    /// lifetime with a fraction of a second is refused rather than rounded.
    pub fn build(self) -> Result<ValidationPolicy, PolicyError> {
        let spec = self.profile.map(Profile::spec);
        let (mut issuers, templates): (Vec<String>, Vec<String>) = self
            .issuers
            .iter()
            .cloned()
            .partition(|i| !i.contains(TENANT_PLACEHOLDER));
        if !templates.is_empty() {
            if !spec.as_ref().is_some_and(|s| s.tenant_templates) {
                return Err(PolicyError::Invalid {
                    field: "issuer",
                    reason: "`{tenantid}` templates need a profile that accepts them (entra)",
                });
            }
            if templates
                .iter()
                .any(|t| t.matches(TENANT_PLACEHOLDER).count() != 1)
            {
                return Err(PolicyError::Invalid {
                    field: "issuer",
                    reason: "a template holds `{tenantid}` exactly once",
                });
            }
        }
        if !self.tenants.is_empty() && templates.is_empty() {
            return Err(PolicyError::Invalid {
                field: "tenant",
                reason: "tenants restrict a `{tenantid}` issuer template; none is configured",
            });
        }
        if self.tenants.iter().any(|t| !is_guid(t)) {
            return Err(PolicyError::Invalid {
                field: "tenant",
                reason: "a tenant id is a GUID (8-4-4-4-12 hex digits)",
            });
        }
        for (a, b) in spec.as_ref().map_or(&[][..], |s| s.issuer_aliases) {
            for (have, add) in [(a, b), (b, a)] {
                if issuers.iter().any(|i| i == have) && !issuers.iter().any(|i| i == add) {
                    issuers.push((*add).to_owned());
                }
            }
        }
        let mut required = match (&self.required, &spec) {
            (Some(explicit), _) => {
                let mut explicit = explicit.clone();
                explicit.sort_unstable();
                explicit.dedup();
                explicit
            }
            (None, Some(spec)) => spec.required.to_vec(),
            (None, None) => Claim::DEFAULT_REQUIRED.to_vec(),
        };
        for claim in &self.extra_required {
            if !required.contains(claim) {
                required.push(*claim);
            }
        }

        let max_lifetime = match (self.max_lifetime, &spec) {
            (Some(explicit), _) => explicit,
            (None, Some(spec)) => Some(spec.max_lifetime),
            (None, None) => Some(DEFAULT_MAX_LIFETIME),
        };
        if self.issuers.is_empty() && !self.skip_issuer {
            return Err(PolicyError::NoIssuer);
        }
        if self.audiences.is_empty() && !self.skip_audience {
            return Err(PolicyError::NoAudience);
        }
        if self.issuers.iter().any(String::is_empty) {
            return Err(PolicyError::Invalid {
                field: "issuer",
                reason: "empty issuer",
            });
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(PolicyError::Invalid {
                field: "audience",
                reason: "empty audience",
            });
        }
        if self.leeway > MAX_LEEWAY && !self.dangerous_leeway {
            return Err(PolicyError::LeewayTooLarge(self.leeway));
        }
        if whole_secs(self.leeway).is_none() {
            return Err(PolicyError::Invalid {
                field: "leeway",
                reason: "must be whole seconds (token times are whole seconds)",
            });
        }
        if let Some(max) = max_lifetime
            && whole_secs(max).is_none_or(|secs| secs == 0)
        {
            return Err(PolicyError::Invalid {
                field: "max_lifetime",
                reason: "must be a positive number of whole seconds",
            });
        }
        if self.max_token_size < 16 {
            return Err(PolicyError::Invalid {
                field: "max_token_size",
                reason: "too small for any token",
            });
        }
        if matches!(&self.algorithms, Some(a) if a.is_empty()) {
            return Err(PolicyError::Invalid {
                field: "algorithms",
                reason: "empty list",
            });
        }
        if self.require_typ && self.typ.is_empty() {
            return Err(PolicyError::Invalid {
                field: "typ",
                reason: "required but none accepted",
            });
        }
        Ok(ValidationPolicy {
            issuers,
            audiences: self.audiences,
            algorithms: self.algorithms,
            leeway: self.leeway,
            max_lifetime,
            required,
            typ: self.typ,
            require_typ: self.require_typ,
            max_token_size: self.max_token_size,
            require_kid: self.require_kid,
            clock: self.clock,
            profile: self.profile,
            issuer_templates: templates,
            tenants: self.tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PolicyBuilder {
        ValidationPolicy::builder().issuer("i").audience("a")
    }

    #[test]
    fn build_errors_name_the_field() {
        assert_eq!(
            ValidationPolicy::builder()
                .audience("a")
                .build()
                .unwrap_err(),
            PolicyError::NoIssuer
        );
        assert_eq!(
            ValidationPolicy::builder().issuer("i").build().unwrap_err(),
            PolicyError::NoAudience
        );
        let err = base().leeway(Duration::from_secs(301)).build().unwrap_err();
        assert!(err.to_string().starts_with("`leeway`"), "{err}");
        assert!(
            base()
                .dangerous_leeway(Duration::from_secs(3600))
                .build()
                .is_ok()
        );
        let err = base().max_token_size(0).build().unwrap_err();
        assert!(err.to_string().starts_with("`max_token_size`"), "{err}");
        // Out of range is an error naming the setting, never rounded or clamped.
        for (builder, field) in [
            (base().leeway(Duration::from_millis(1500)), "`leeway`"),
            (
                base().dangerous_leeway(Duration::from_millis(400_500)),
                "`leeway`",
            ),
            (base().max_lifetime(Duration::ZERO), "`max_lifetime`"),
            (
                base().max_lifetime(Duration::from_millis(500)),
                "`max_lifetime`",
            ),
            (
                base().max_lifetime(Duration::from_millis(60_001)),
                "`max_lifetime`",
            ),
        ] {
            let err = builder.build().unwrap_err();
            assert!(err.to_string().starts_with(field), "{field}: {err}");
        }
        let err = base().algorithms([]).build().unwrap_err();
        assert!(err.to_string().starts_with("`algorithms`"), "{err}");
        assert!(base().issuer("").build().is_err());
    }

    #[test]
    fn exp_stays_required_unless_dangerous() {
        let p = base().required_claims([Claim::Sub]).build().unwrap();
        assert!(p.required().contains(&Claim::Exp));
        let p = base()
            .dangerous_required_claims([Claim::Sub])
            .build()
            .unwrap();
        assert!(!p.required().contains(&Claim::Exp));
    }

    #[test]
    fn claim_names_round_trip() {
        for c in Claim::ALL {
            assert_eq!(Claim::from_name(c.name()), Some(c));
        }
        assert_eq!(Claim::from_name("scope"), None);
    }
}
