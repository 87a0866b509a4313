//! Verification: size cap → structure → header → key → signature → claims.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokenward_core::TokenRef;

use crate::claims::{NoCustomClaims, RegisteredClaims, parse_payload_with};
use crate::grants::{self, Extras, Grants};
use crate::header::{self, typ_matches};
use crate::keyset::KeyResolver;
use crate::policy::ValidationPolicy;
use crate::profile::{AudienceClaim, template_tenant};
use crate::rejection::{Rejection, reject};
use crate::{alg, b64};

/// A verified token: its header facts, registered claims and typed custom claims.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified<C = NoCustomClaims> {
    /// The algorithm the token was verified with (the key's).
    pub alg: Algorithm,
    /// The `kid` of the key that verified it.
    pub kid: String,
    /// The `typ` header, if any.
    pub typ: Option<String>,
    /// The registered claims.
    pub claims: RegisteredClaims,
    /// The custom claims (every payload member that is not a registered claim).
    pub custom: C,
    /// The scopes and roles, read where the policy's profile says.
    pub grants: Grants,
}

impl<C> Verified<C> {
    /// The parts a revocation store needs, every id scoped by the token's issuer. `None` if
    /// the policy made `exp` optional and the token has none, or if an id is one no store
    /// accepts ([`RegisteredClaims::token_ref`](crate::RegisteredClaims::token_ref)).
    pub fn token_ref(&self) -> Option<TokenRef<'static>> {
        self.claims.token_ref()
    }
}

/// Verifies tokens against one [`ValidationPolicy`] with the keys of one [`KeyResolver`].
///
/// Cheap to clone (shares the policy and keys). The algorithm always comes from the key
/// selected by `kid`, never from the header: a header `alg` that differs from the key's is
/// rejected, and `none` never verifies. A token without `kid` verifies only when exactly one
/// key of the set is bound to its `alg` (class `key` otherwise; or always, with
/// [`PolicyBuilder::require_kid`](crate::PolicyBuilder::require_kid)).
///
/// ```
/// use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, RejectionClass, TokenIssuer, ValidationPolicy, Validator};
///
/// let keys = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[42u8; 32])?);
/// let issuer = TokenIssuer::builder(keys.clone(), "https://auth.example").audience("api").build()?;
/// let token = issuer.issue(&AccessToken::new("alice"))?;
///
/// let policy = ValidationPolicy::builder().issuer("https://auth.example").audience("api").build()?;
/// let validator = Validator::new(policy, keys);
/// let verified = validator.verify(&token.token)?;
/// assert_eq!(verified.claims.sub.as_deref(), Some("alice"));
///
/// // Another signature appended: the signature no longer verifies.
/// let tampered = format!("{}AAAA", token.token);
/// assert_eq!(validator.verify(&tampered).unwrap_err().class(), RejectionClass::Signature);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Validator {
    policy: Arc<ValidationPolicy>,
    keys: Arc<dyn KeyResolver>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The three parts of a compact JWS, split and size-checked but not yet decoded.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

fn split(token: &str, max_size: usize) -> Result<Parts<'_>, Rejection> {
    if token.len() > max_size {
        return Err(reject!(
            Malformed,
            "token is {} bytes; the limit is {max_size}",
            token.len()
        ));
    }
    if token.starts_with('{') {
        return Err(reject!(
            Malformed,
            "JSON-serialized JWS is not accepted; use compact form"
        ));
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature)) = (it.next(), it.next(), it.next()) else {
        return Err(reject!(Malformed, "not three dot-separated parts"));
    };
    if it.next().is_some() {
        return Err(reject!(
            Malformed,
            "more than three parts (encrypted JWE tokens are not accepted)"
        ));
    }
    let signing_input = token
        .get(..header.len() + 1 + payload.len())
        .unwrap_or_default();
    Ok(Parts {
        header,
        payload,
        signature,
        signing_input,
    })
}

impl Validator {
    /// A validator for `policy` using `keys`.
    pub fn new(policy: ValidationPolicy, keys: impl KeyResolver) -> Self {
        Validator {
            policy: Arc::new(policy),
            keys: Arc::new(keys),
        }
    }

    /// A validator sharing an existing resolver (for example a remote key set).
    pub fn with_resolver(policy: ValidationPolicy, keys: Arc<dyn KeyResolver>) -> Self {
        Validator {
            policy: Arc::new(policy),
            keys,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &ValidationPolicy {
        &self.policy
    }

    /// Verifies `token` (used exactly as given: no trimming, no `Bearer ` prefix) and returns
    /// its registered claims.
    pub fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        self.verify_with::<NoCustomClaims>(token)
    }

    /// Verifies `token` and parses its other claims into `C` (in the same single pass).
    pub fn verify_with<C: DeserializeOwned>(&self, token: &str) -> Result<Verified<C>, Rejection> {
        let parts = split(token, self.policy.max_token_size)?;
        self.verify_parts(&parts)
    }

    fn verify_parts<C: DeserializeOwned>(
        &self,
        parts: &Parts<'_>,
    ) -> Result<Verified<C>, Rejection> {
        let policy = &*self.policy;

        // Header.
        // The header and the signature are decoded in place when they fit (nearly always:
        // 512 bytes hold an RSA-4096 signature); the payload, often larger, on the heap.
        let header_bytes = b64::decode_inline::<MAX_INLINE_HEADER>(parts.header.as_bytes())
            .ok_or_else(|| reject!(Malformed, "header is not canonical base64url"))?;
        let header = header::parse(&header_bytes)?;
        let alg_name = header
            .alg
            .as_deref()
            .ok_or_else(|| reject!(Header, "header has no `alg`"))?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(reject!(
                Algorithm,
                "unsecured tokens (`alg: none`) are never accepted"
            ));
        }
        let alg = alg::parse(alg_name)
            .ok_or_else(|| reject!(Algorithm, "unsupported or unknown `alg`"))?;
        if let Some(member) = header.forbidden {
            return Err(reject!(Header, "header member `{member}` is not accepted"));
        }
        match header.typ.as_deref() {
            Some(typ) if !policy.typ.iter().any(|a| typ_matches(typ, a)) => {
                return Err(reject!(Typ, "`typ` is not one of {:?}", policy.typ));
            }
            None if policy.require_typ => return Err(reject!(Typ, "`typ` header is required")),
            _ => {}
        }
        if let Some(allowed) = &policy.algorithms
            && !allowed.contains(&alg)
        {
            return Err(reject!(
                Algorithm,
                "{} is not allowed by the policy",
                alg::name(alg)
            ));
        }

        // Key: chosen by kid, and it alone decides the algorithm.
        if header.kid.is_none() && policy.require_kid {
            return Err(reject!(Key, "token has no `kid`"));
        }
        let key = self
            .keys
            .resolve_for(header.kid.as_deref(), alg)
            .ok_or_else(|| match header.kid {
                Some(_) => reject!(Key, "no trusted key for this token's `kid`"),
                None => reject!(
                    Key,
                    "token has no `kid` and not exactly one key is bound to its `alg`"
                ),
            })?;
        if key.algorithm() != alg {
            return Err(reject!(
                Algorithm,
                "the key is bound to {}, the token says {}",
                alg::name(key.algorithm()),
                alg::name(alg)
            ));
        }

        // Signature (both parts must be well-formed base64url first), then claims, parsed
        // once and only after the signature verified.
        let payload = b64::decode(parts.payload.as_bytes())
            .ok_or_else(|| reject!(Malformed, "payload is not canonical base64url"))?;
        let signature = b64::decode_inline::<MAX_INLINE_SIGNATURE>(parts.signature.as_bytes())
            .ok_or_else(|| reject!(Malformed, "signature is not canonical base64url"))?;
        if !key.verify(parts.signing_input.as_bytes(), &signature) {
            return Err(reject!(Signature, "signature does not verify"));
        }
        let (claims, custom, extras) =
            parse_payload_with::<C>(&payload, |name| grants::wanted(policy, name))?;
        check_claims(policy, &claims, &extras)?;
        let grants = grants::check(policy, &claims, &extras)?;

        Ok(Verified {
            alg,
            kid: key.kid().to_owned(),
            typ: header.typ.map(Cow::into_owned),
            claims,
            custom,
            grants,
        })
    }
}

/// The longest decoded header verified without a heap allocation for it.
const MAX_INLINE_HEADER: usize = 256;
/// The longest signature verified without a heap allocation for it: RSA-4096's.
const MAX_INLINE_SIGNATURE: usize = 512;

fn check_claims(
    policy: &ValidationPolicy,
    c: &RegisteredClaims,
    extras: &Extras,
) -> Result<(), Rejection> {
    for claim in &policy.required {
        if !c.has(*claim) {
            return Err(reject!(
                Claims,
                "required claim `{}` is missing",
                claim.name()
            ));
        }
    }
    let now = policy.clock.now().as_secs();
    let leeway = policy.leeway.as_secs();
    if let Some(exp) = c.exp {
        // Valid while now < exp (RFC 7519 §4.1.4), stretched by the leeway.
        if now >= exp.saturating_add(leeway) {
            return Err(reject!(
                Expired,
                "expired at {exp}; now {now}, leeway {leeway}s"
            ));
        }
    }
    if let Some(nbf) = c.nbf
        && now.saturating_add(leeway) < nbf
    {
        return Err(reject!(
            NotYetValid,
            "not valid before {nbf}; now {now}, leeway {leeway}s"
        ));
    }
    if let Some(iat) = c.iat
        && now.saturating_add(leeway) < iat
    {
        return Err(reject!(
            NotYetValid,
            "issued in the future ({iat}); now {now}, leeway {leeway}s"
        ));
    }
    if let (Some(max), Some(exp)) = (policy.max_lifetime, c.exp) {
        // Measured from iat; without iat from nbf; without either from now.
        let start = c.iat.or(c.nbf).unwrap_or(now);
        if exp <= start && (c.iat.is_some() || c.nbf.is_some()) {
            return Err(reject!(Claims, "`exp` is not after `iat`/`nbf`"));
        }
        let lifetime = exp.saturating_sub(start);
        if lifetime > max.as_secs() {
            return Err(reject!(
                Claims,
                "lifetime of {lifetime}s exceeds the maximum of {}s",
                max.as_secs()
            ));
        }
    }
    if !policy.issuers.is_empty() || !policy.issuer_templates.is_empty() {
        check_issuer(policy, c, extras)?;
    }
    let aud_claim = policy
        .profile
        .map_or(AudienceClaim::Aud, |p| p.audience_claim());
    if !policy.audiences.is_empty() && aud_claim == AudienceClaim::Aud {
        match &c.aud {
            Some(aud) if aud.iter().any(|a| policy.audiences.iter().any(|p| p == a)) => {}
            Some(_) => return Err(reject!(Audience, "no `aud` value is an accepted audience")),
            None => return Err(reject!(Audience, "token has no `aud`")),
        }
    }
    Ok(())
}

/// `iss` is one of the issuers exactly, or fits a `{tenantid}` template with a GUID equal to the
/// token's `tid` (and one of the policy's tenants, if it lists any). A template never matches
/// itself: an `iss` spelled `{tenantid}` is no GUID.
fn check_issuer(
    policy: &ValidationPolicy,
    c: &RegisteredClaims,
    extras: &Extras,
) -> Result<(), Rejection> {
    let iss = c
        .iss
        .as_deref()
        .ok_or_else(|| reject!(Issuer, "token has no `iss`"))?;
    if policy.issuers.iter().any(|i| i == iss) {
        return Ok(());
    }
    let tenant = policy
        .issuer_templates
        .iter()
        .find_map(|t| template_tenant(t, iss))
        .ok_or_else(|| reject!(Issuer, "`iss` is not an accepted issuer"))?;
    match extras.str("tid")? {
        Some(tid) if tid.eq_ignore_ascii_case(tenant) => {}
        Some(_) => return Err(reject!(Issuer, "`tid` is not the tenant `iss` names")),
        None => {
            return Err(reject!(
                Issuer,
                "token has no `tid` for its templated `iss`"
            ));
        }
    }
    if !policy.tenants.is_empty()
        && !policy
            .tenants
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tenant))
    {
        return Err(reject!(
            Issuer,
            "the tenant is not one of the accepted tenants"
        ));
    }
    Ok(())
}

/// Several policies in one process, each with its own keys, chosen by the token's `iss`.
///
/// The issuer is read from the (not yet verified) payload only to pick a validator; that
/// validator then verifies the token with *its own* keys and checks `iss` against *its own*
/// policy. A key of issuer A therefore never verifies a token claiming issuer B, even when
/// both use the same `kid`. Routing costs one extra parse of the payload's `iss`.
///
/// ```
/// use tokenward_claims::*;
///
/// let keys_a = KeySet::single(Key::hmac("k", Algorithm::HS256, &[1u8; 32])?);
/// let keys_b = KeySet::single(Key::hmac("k", Algorithm::HS256, &[2u8; 32])?);
/// let policy = |iss: &str| ValidationPolicy::builder().issuer(iss).audience("api").build();
/// let router = IssuerRouter::new()
///     .route(Validator::new(policy("https://a.example")?, keys_a.clone()))?
///     .route(Validator::new(policy("https://b.example")?, keys_b))?;
///
/// let token = TokenIssuer::builder(keys_a, "https://a.example").audience("api").build()?
///     .issue(&AccessToken::new("alice"))?;
/// assert!(router.verify(&token.token).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct IssuerRouter {
    by_issuer: HashMap<String, Validator>,
    /// Validators with `{tenantid}` issuer templates, tried in order after the exact issuers.
    templated: Vec<Validator>,
    max_token_size: usize,
}

/// Errors building an [`IssuerRouter`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The validator's policy does not name its issuers (it skips the issuer check).
    #[error("a routed policy must name its issuers")]
    NoIssuer,
    /// Two validators claim the same issuer.
    #[error("issuer `{0}` is routed twice")]
    DuplicateIssuer(String),
}

impl IssuerRouter {
    /// An empty router.
    pub fn new() -> Self {
        IssuerRouter::default()
    }

    /// Routes every issuer of `validator`'s policy to it; a policy with `{tenantid}` templates
    /// gets the issuers of their shape no exact route claims.
    pub fn route(mut self, validator: Validator) -> Result<Self, RouterError> {
        let issuers = validator.policy().issuers().to_vec();
        let templated = !validator.policy().issuer_templates().is_empty();
        if issuers.is_empty() && !templated {
            return Err(RouterError::NoIssuer);
        }
        if templated {
            self.templated.push(validator.clone());
        }
        for iss in &issuers {
            if self.by_issuer.contains_key(iss) {
                return Err(RouterError::DuplicateIssuer(iss.clone()));
            }
        }
        self.max_token_size = self.max_token_size.max(validator.policy().max_token_size());
        for iss in issuers {
            self.by_issuer.insert(iss, validator.clone());
        }
        Ok(self)
    }

    /// Verifies `token` with the validator of its issuer.
    pub fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        self.verify_with::<NoCustomClaims>(token)
    }

    /// Verifies `token` with the validator of its issuer, parsing custom claims into `C`.
    pub fn verify_with<C: DeserializeOwned>(&self, token: &str) -> Result<Verified<C>, Rejection> {
        #[derive(Deserialize)]
        struct Peek {
            iss: Option<String>,
        }
        let parts = split(token, self.max_token_size)?;
        let payload = b64::decode(parts.payload.as_bytes())
            .ok_or_else(|| reject!(Malformed, "payload is not canonical base64url"))?;
        let peek: Peek = serde_json::from_slice(&payload)
            .map_err(|_| reject!(Claims, "payload has no usable `iss`"))?;
        let iss = peek
            .iss
            .ok_or_else(|| reject!(Issuer, "token has no `iss`"))?;
        let validator = self
            .by_issuer
            .get(&iss)
            .or_else(|| self.templated.iter().find(|v| v.policy.names_issuer(&iss)))
            .ok_or_else(|| reject!(Issuer, "`iss` is not an accepted issuer"))?;
        let parts = split(token, validator.policy.max_token_size)?;
        validator.verify_parts(&parts)
    }
}
