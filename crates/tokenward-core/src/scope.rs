//! [`IssuerScope`]: store ids that mean something only within the issuer that minted them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::{InvalidId, StoreId, TokenRef, UnixTime};

/// Bytes of the issuer's SHA-256 kept in its tag: 96 bits, so two configured issuers never
/// share a tag by accident (the issuers a verifier accepts come from its configuration, not
/// from the token, so nobody can search for a collision).
const TAG_HASH_BYTES: usize = 12;

/// The length of an issuer tag: 16 base64url characters.
pub const ISSUER_TAG_LEN: usize = 16;

/// The longest `jti`, `sid` or `sub` an issuer-scoped id can hold: [`MAX_ID_LEN`] minus the
/// tag and its separator.
///
/// [`MAX_ID_LEN`]: crate::MAX_ID_LEN
pub const MAX_SCOPED_ID_LEN: usize = crate::MAX_ID_LEN - ISSUER_TAG_LEN - 1;

/// The issuer (`iss`) a token's `jti`, `sid` and `sub` belong to.
///
/// Two issuers may both have a user `alice` (two tenants behind one
/// [`IssuerRouter`](https://docs.rs/tokenward-guard), an IdP and the app's own login): they
/// are different people. Every store key tokenward derives from a token is therefore scoped
/// by its issuer: `{tag}:{id}`, where the tag is 16 base64url characters of the issuer's
/// SHA-256 — fixed-size, so a key never grows with the issuer's URL, and the encoding is
/// injective (the tag has a fixed length and no `:`). Revoking tenant A's `alice` leaves
/// tenant B's `alice` alone, and their rate limits are counted apart.
///
/// Make one per issuer and keep it (the hash runs once, in [`new`](Self::new)); the Guard
/// does this for the issuers it is configured with. Stores see only the resulting
/// [`StoreId`]s and need no change to be scoped.
///
/// ```
/// use tokenward_core::{IssuerScope, UnixTime};
///
/// let a = IssuerScope::new("https://tenant-a.example.com/");
/// let b = IssuerScope::new("https://tenant-b.example.com/");
/// let alice_a = a.id("alice")?;
/// assert_ne!(alice_a, b.id("alice")?);
/// assert!(alice_a.as_str().ends_with(":alice"));
/// assert_eq!(a.tag().len(), tokenward_core::ISSUER_TAG_LEN);
///
/// let token = a.token_ref(Some("j-1"), Some("s-1"), Some("alice"), None, UnixTime::from_secs(2_000))?;
/// assert_eq!(token.sub, Some(alice_a));
/// # Ok::<(), tokenward_core::InvalidId>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IssuerScope {
    /// `{tag}:`, the prefix of every id of this issuer.
    prefix: String,
}

impl IssuerScope {
    /// The scope of the issuer `iss` (the exact string of the token's `iss` claim).
    pub fn new(iss: &str) -> Self {
        let digest = Sha256::digest(iss.as_bytes());
        let mut prefix = String::with_capacity(ISSUER_TAG_LEN + 1);
        URL_SAFE_NO_PAD.encode_string(digest.get(..TAG_HASH_BYTES).unwrap_or(&[]), &mut prefix);
        prefix.push(':');
        IssuerScope { prefix }
    }

    /// The issuer's tag: 16 base64url characters (what precedes `:` in its ids).
    pub fn tag(&self) -> &str {
        self.prefix.strip_suffix(':').unwrap_or(&self.prefix)
    }

    /// The store id of `id` (a `jti`, `sid` or `sub` of this issuer's tokens): `{tag}:{id}`.
    /// `id` must be 1..=[`MAX_SCOPED_ID_LEN`] bytes without NUL.
    pub fn id(&self, id: &str) -> Result<StoreId<'static>, InvalidId> {
        // The id alone is checked (so an empty id is reported as empty, not as valid), and
        // only once: the prefix is a fixed-length tag and `:` (no NUL), so the scoped id is
        // valid exactly when the id is and fits beside the prefix. Every request scopes up
        // to three ids; a second scan for NUL would be wasted.
        StoreId::new(id)?;
        if id.len() > MAX_SCOPED_ID_LEN {
            return Err(InvalidId::ScopedTooLong { len: id.len() });
        }
        let mut scoped = String::with_capacity(self.prefix.len() + id.len());
        scoped.push_str(&self.prefix);
        scoped.push_str(id);
        Ok(StoreId::checked(scoped))
    }

    /// A [`TokenRef`] whose ids are this issuer's ([`id`](Self::id)).
    pub fn token_ref(
        &self,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<UnixTime>,
        exp: UnixTime,
    ) -> Result<TokenRef<'static>, InvalidId> {
        Ok(TokenRef {
            jti: jti.map(|id| self.id(id)).transpose()?,
            sid: sid.map(|id| self.id(id)).transpose()?,
            sub: sub.map(|id| self.id(id)).transpose()?,
            iat,
            exp,
        })
    }
}

impl fmt::Debug for IssuerScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IssuerScope").field(&self.tag()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_ID_LEN;

    #[test]
    fn tags_are_fixed_size_url_safe_and_distinct() {
        let issuers = [
            "",
            "a",
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf",
            "https://accounts.google.com",
        ];
        let mut tags = std::collections::HashSet::new();
        for iss in issuers {
            let scope = IssuerScope::new(iss);
            assert_eq!(scope.tag().len(), ISSUER_TAG_LEN, "{iss}");
            assert!(
                scope
                    .tag()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{}",
                scope.tag()
            );
            assert!(tags.insert(scope.tag().to_owned()));
        }
        // Stable across processes and versions: shared stores depend on it.
        assert_eq!(
            IssuerScope::new("https://issuer.example.com").tag(),
            URL_SAFE_NO_PAD.encode(&Sha256::digest(b"https://issuer.example.com")[..12])
        );
    }

    #[test]
    fn ids_are_scoped_and_checked() {
        let a = IssuerScope::new("https://a.example.com");
        let b = IssuerScope::new("https://b.example.com");
        assert_ne!(a.id("alice").unwrap(), b.id("alice").unwrap());
        assert_eq!(
            a.id("alice").unwrap().as_str(),
            format!("{}:alice", a.tag())
        );
        // The longest id fits exactly; one more byte is reported with the id's own length.
        let longest = "x".repeat(MAX_SCOPED_ID_LEN);
        assert_eq!(a.id(&longest).unwrap().as_str().len(), MAX_ID_LEN);
        let over = "x".repeat(MAX_SCOPED_ID_LEN + 1);
        assert_eq!(
            a.id(&over),
            Err(InvalidId::ScopedTooLong {
                len: MAX_SCOPED_ID_LEN + 1
            })
        );
        assert_eq!(a.id(""), Err(InvalidId::Empty));
        assert_eq!(a.id("a\0"), Err(InvalidId::Nul));
        // An id containing ':' cannot imitate another issuer: the tag has a fixed length.
        let forged = format!("{}:alice", b.tag());
        assert_ne!(a.id(&forged).unwrap(), b.id("alice").unwrap());
    }

    #[test]
    fn token_refs_scope_every_id() {
        let a = IssuerScope::new("iss-a");
        let exp = UnixTime::from_secs(10);
        let t = a
            .token_ref(
                Some("j"),
                Some("s"),
                Some("u"),
                Some(UnixTime::from_secs(1)),
                exp,
            )
            .unwrap();
        assert_eq!(t.jti, Some(a.id("j").unwrap()));
        assert_eq!(t.sid, Some(a.id("s").unwrap()));
        assert_eq!(t.sub, Some(a.id("u").unwrap()));
        assert_eq!((t.iat, t.exp), (Some(UnixTime::from_secs(1)), exp));
        assert!(a.token_ref(Some(""), None, None, None, exp).is_err());
    }
}
