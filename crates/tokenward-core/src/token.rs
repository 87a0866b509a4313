use crate::{InvalidId, StoreId, UnixTime};

/// The parts of a verified token that revocation and session stores look at.
///
/// Its ids are [`StoreId`]s: checked once here, so no store has to check them again. Made from
/// a verified token, they are scoped by its issuer ([`IssuerScope::token_ref`], which the
/// claims' `token_ref()` and the Guard use), so two issuers' equal ids never meet in a store;
/// [`from_parts`](Self::from_parts) takes ids as they are (one issuer, or ids already scoped)
/// and borrows them.
///
/// [`IssuerScope::token_ref`]: crate::IssuerScope::token_ref
///
/// ```
/// use tokenward_core::{TokenRef, UnixTime};
/// let t = TokenRef::from_parts(
///     Some("0f3a9c"),
///     Some("fam_81"),
///     Some("alice"),
///     Some(UnixTime::from_secs(1_700_000_000)),
///     UnixTime::from_secs(1_700_000_900),
/// )?;
/// assert_eq!(t.sub.as_ref().map(|s| s.as_str()), Some("alice"));
/// // An empty or oversized id never becomes a TokenRef.
/// assert!(TokenRef::from_parts(Some(""), None, None, None, t.exp).is_err());
/// # Ok::<(), tokenward_core::InvalidId>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRef<'a> {
    /// The token's unique id (`jti`).
    pub jti: Option<StoreId<'a>>,
    /// The session / refresh-family id (`sid`).
    pub sid: Option<StoreId<'a>>,
    /// The subject (`sub`).
    pub sub: Option<StoreId<'a>>,
    /// When the token was issued (`iat`).
    pub iat: Option<UnixTime>,
    /// When the token expires (`exp`); revocation entries never need to outlive it.
    pub exp: UnixTime,
}

impl<'a> TokenRef<'a> {
    /// A token reference from the claims' strings, each id checked ([`StoreId::new`]).
    pub fn from_parts(
        jti: Option<&'a str>,
        sid: Option<&'a str>,
        sub: Option<&'a str>,
        iat: Option<UnixTime>,
        exp: UnixTime,
    ) -> Result<Self, InvalidId> {
        Ok(TokenRef {
            jti: jti.map(StoreId::new).transpose()?,
            sid: sid.map(StoreId::new).transpose()?,
            sub: sub.map(StoreId::new).transpose()?,
            iat,
            exp,
        })
    }
}
