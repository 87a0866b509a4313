use crate::UnixTime;

/// The parts of a verified token that revocation and session stores look at.
///
/// Borrowed from the verified claims, so building one per request allocates nothing.
///
/// ```
/// use tokenward_core::{TokenRef, UnixTime};
/// let t = TokenRef {
///     jti: Some("0f3a9c"),
///     sid: Some("fam_81"),
///     sub: Some("alice"),
///     iat: Some(UnixTime::from_secs(1_700_000_000)),
///     exp: UnixTime::from_secs(1_700_000_900),
/// };
/// assert_eq!(t.sub, Some("alice"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenRef<'a> {
    /// The token's unique id (`jti`).
    pub jti: Option<&'a str>,
    /// The session / refresh-family id (`sid`).
    pub sid: Option<&'a str>,
    /// The subject (`sub`).
    pub sub: Option<&'a str>,
    /// When the token was issued (`iat`).
    pub iat: Option<UnixTime>,
    /// When the token expires (`exp`); revocation entries never need to outlive it.
    pub exp: UnixTime,
}
