//! Registered claims, parsed once and strictly.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use tokenward_core::{IssuerScope, TokenRef, UnixTime};

use crate::grants::Extras;
use crate::rejection::{Rejection, reject};

/// The names of the claims tokenward parses itself. Custom claims types see every *other*
/// member of the payload.
pub const REGISTERED_CLAIMS: [&str; 9] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "scope",
];

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Audience {
    /// `"aud": "api"`.
    One(String),
    /// `"aud": ["api", "admin"]` (never empty).
    Many(Vec<String>),
}

impl Audience {
    /// The audience values.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Audience::One(a) => (Some(a.as_str()), &[][..]),
            Audience::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// Whether `aud` is one of the values.
    pub fn contains(&self, aud: &str) -> bool {
        self.iter().any(|a| a == aud)
    }
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Audience::One(s.to_owned())
    }
}

impl From<String> for Audience {
    fn from(s: String) -> Self {
        Audience::One(s)
    }
}

impl From<Vec<String>> for Audience {
    fn from(v: Vec<String>) -> Self {
        Audience::Many(v)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Audience::One(a) => s.serialize_str(a),
            Audience::Many(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AudVisitor;
        impl<'de> Visitor<'de> for AudVisitor {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a non-empty array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("empty audience array"));
                }
                Ok(Audience::Many(v))
            }
        }
        d.deserialize_any(AudVisitor)
    }
}

/// The registered claims of a token (RFC 7519 §4.1, plus `sid` and the RFC 8693 `scope`).
///
/// Times are seconds since the Unix epoch (`NumericDate`). A fraction (`"exp": 1767229200.5`,
/// allowed by RFC 7519 §2) is accepted and rounded towards the stricter answer: `exp` and
/// `iat` down, `nbf` up. Negative, string-typed or out-of-range values (over 2⁵³ when
/// fractional) are rejected when parsing (JSON has no NaN or Infinity). Empty `jti`, `sub`
/// and `sid` are rejected too: an empty id can never be revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Expiration time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Session id: the refresh-token family this token belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Space-separated scopes (RFC 8693 §4.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl RegisteredClaims {
    /// The scopes, split on spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The parts a revocation store needs, with every id scoped by the token's issuer
    /// ([`IssuerScope`]: tenant A's `alice` is not tenant B's). `None` without an `iss` or
    /// `exp` (tokenward requires both by default, so verified tokens have them unless the
    /// policy was weakened) or with an id no store accepts (an empty `jti`, `sid` or `sub`,
    /// one over [`MAX_SCOPED_ID_LEN`](tokenward_core::MAX_SCOPED_ID_LEN) bytes or containing
    /// NUL: see [`StoreId`](tokenward_core::StoreId)).
    ///
    /// Hashes the issuer on every call; with many tokens of few issuers keep an
    /// [`IssuerScope`] per issuer and use [`token_ref_in`](Self::token_ref_in).
    pub fn token_ref(&self) -> Option<TokenRef<'static>> {
        self.token_ref_in(&IssuerScope::new(self.iss.as_deref()?))
    }

    /// [`token_ref`](Self::token_ref) with the issuer's scope made beforehand; `scope` must
    /// be the scope of this token's `iss` (`None` without one).
    pub fn token_ref_in(&self, scope: &IssuerScope) -> Option<TokenRef<'static>> {
        self.iss.as_ref()?;
        scope
            .token_ref(
                self.jti.as_deref(),
                self.sid.as_deref(),
                self.sub.as_deref(),
                self.iat.map(UnixTime::from_secs),
                UnixTime::from_secs(self.exp?),
            )
            .ok()
    }

    /// Whether the named registered claim is present.
    pub fn has(&self, claim: crate::Claim) -> bool {
        use crate::Claim;
        match claim {
            Claim::Iss => self.iss.is_some(),
            Claim::Sub => self.sub.is_some(),
            Claim::Aud => self.aud.is_some(),
            Claim::Exp => self.exp.is_some(),
            Claim::Nbf => self.nbf.is_some(),
            Claim::Iat => self.iat.is_some(),
            Claim::Jti => self.jti.is_some(),
            Claim::Sid => self.sid.is_some(),
        }
    }
}

/// A payload split into the registered claims and the borrowed raw remainder.
struct RawPayload<'de> {
    registered: RegisteredClaims,
    rest: Vec<(Cow<'de, str>, &'de RawValue)>,
}

/// A JSON string, borrowed from the input when it has no escapes (`Cow<str>` alone would
/// always be owned: serde borrows only with `#[serde(borrow)]`).
pub(crate) struct JsonStr<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for JsonStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

fn set<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::custom(format_args!("duplicate claim `{name}`")));
    }
    let value = map
        .next_value::<T>()
        .map_err(|_| de::Error::custom(format_args!("claim `{name}` has the wrong type")))?;
    *slot = Some(value);
    Ok(())
}

/// A `NumericDate`: whole seconds, and whether a fraction was dropped.
struct NumericDate {
    floor: u64,
    fraction: bool,
}

impl NumericDate {
    /// Rounded up: for `nbf`, so a fractional start is never accepted early.
    fn ceil(&self) -> u64 {
        self.floor.saturating_add(u64::from(self.fraction))
    }
}

/// The largest fractional `NumericDate` accepted: 2⁵³, beyond which an `f64` has no fraction.
const MAX_FRACTIONAL_DATE: f64 = 9_007_199_254_740_992.0;

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate {
                    floor: v,
                    fraction: false,
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if !v.is_finite() || (v.is_sign_negative() && v != 0.0) || v > MAX_FRACTIONAL_DATE {
                    return Err(de::Error::custom("out of range"));
                }
                let floor = v.floor();
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "finite, non-negative and at most 2^53: exact in u64"
                )]
                let whole = floor as u64;
                Ok(NumericDate {
                    floor: whole,
                    fraction: v > floor,
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn date<'de, A: MapAccess<'de>>(
    slot: &Option<u64>,
    name: &'static str,
    map: &mut A,
) -> Result<NumericDate, A::Error> {
    if slot.is_some() {
        return Err(de::Error::custom(format_args!("duplicate claim `{name}`")));
    }
    map.next_value::<NumericDate>()
        .map_err(|_| de::Error::custom(format_args!("claim `{name}` has the wrong type")))
}

impl<'de> Deserialize<'de> for RawPayload<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPayload<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut r = RegisteredClaims::default();
                let mut rest: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                while let Some(JsonStr(key)) = map.next_key()? {
                    match &*key {
                        "iss" => set(&mut r.iss, "iss", &mut map)?,
                        "sub" => set(&mut r.sub, "sub", &mut map)?,
                        "aud" => set(&mut r.aud, "aud", &mut map)?,
                        "exp" => r.exp = Some(date(&r.exp, "exp", &mut map)?.floor),
                        "nbf" => r.nbf = Some(date(&r.nbf, "nbf", &mut map)?.ceil()),
                        "iat" => r.iat = Some(date(&r.iat, "iat", &mut map)?.floor),
                        "jti" => set(&mut r.jti, "jti", &mut map)?,
                        "sid" => set(&mut r.sid, "sid", &mut map)?,
                        "scope" => set(&mut r.scope, "scope", &mut map)?,
                        _ => {
                            let value: &'de RawValue = map.next_value()?;
                            rest.push((key, value));
                        }
                    }
                }
                for (name, id) in [("jti", &r.jti), ("sub", &r.sub), ("sid", &r.sid)] {
                    if id.as_deref() == Some("") {
                        return Err(de::Error::custom(format_args!(
                            "claim `{name}` is empty (it could never be revoked)"
                        )));
                    }
                }
                // Duplicate names among the other members (RFC 7519 §4: MUST reject or take
                // the last; we reject, so two parsers can never disagree about a claim).
                let mut names: Vec<&str> = rest.iter().map(|(k, _)| &**k).collect();
                names.sort_unstable();
                if names.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
                    return Err(de::Error::custom("duplicate claim name"));
                }
                Ok(RawPayload {
                    registered: r,
                    rest,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a payload once: registered claims strictly, the rest into `C`.
#[cfg(test)]
pub(crate) fn parse_payload<C: DeserializeOwned>(
    payload: &[u8],
) -> Result<(RegisteredClaims, C), Rejection> {
    parse_payload_with(payload, |_| false).map(|(r, c, _)| (r, c))
}

/// Parses a payload once: registered claims strictly, the members named in `wanted` (a
/// profile's scopes, roles, token kind, ...) as JSON values, the rest into `C`.
pub(crate) fn parse_payload_with<C: DeserializeOwned>(
    payload: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Result<(RegisteredClaims, C, Extras), Rejection> {
    // UTF-8 first (RFC 7519 §7.2): not left to serde_json, which skips ignored strings
    // without validating them (see `header::parse`).
    let payload =
        std::str::from_utf8(payload).map_err(|_| reject!(Malformed, "payload is not UTF-8"))?;
    let raw: RawPayload<'_> = serde_json::from_str(payload).map_err(|e| {
        if e.is_data() {
            reject!(Claims, "{}", strip_position(&e))
        } else {
            reject!(Malformed, "payload is not a JSON object")
        }
    })?;
    let mut extras = Extras::default();
    for (name, value) in &raw.rest {
        if wanted(name) {
            let value = serde_json::from_str(value.get())
                .map_err(|_| reject!(Claims, "claim `{name}` is not acceptable JSON"))?;
            extras.push(name.to_string(), value);
        }
    }
    let custom = C::deserialize(de::value::MapDeserializer::<_, serde_json::Error>::new(
        raw.rest.into_iter(),
    ))
    .map_err(|e| reject!(Claims, "custom claims: {}", sanitize_custom(&e)))?;
    Ok((raw.registered, custom, extras))
}

/// serde_json appends " at line L column C"; the message before it is ours.
fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or_default().to_owned(),
        None => msg,
    }
}

/// Errors from the user's claims type may quote attacker-controlled values
/// (`invalid type: string "…"`); keep only messages that name the type's own fields.
fn sanitize_custom(e: &serde_json::Error) -> String {
    let msg = strip_position(e);
    if msg.starts_with("missing field `") || msg.starts_with("duplicate field `") {
        msg
    } else {
        "a claim does not match the expected type".to_owned()
    }
}

/// A custom-claims type that accepts any payload and keeps nothing; the default for
/// verification when only the registered claims matter.
pub type NoCustomClaims = IgnoredAny;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectionClass;
    use std::collections::BTreeMap;

    fn parse(
        json: &str,
    ) -> Result<(RegisteredClaims, BTreeMap<String, serde_json::Value>), Rejection> {
        parse_payload(json.as_bytes())
    }

    #[test]
    fn registered_and_custom_are_split() {
        let (r, c) =
            parse(r#"{"iss":"a","aud":["x","y"],"exp":10,"role":"admin","n":{"k":1}}"#).unwrap();
        assert_eq!(r.iss.as_deref(), Some("a"));
        assert_eq!(r.aud, Some(Audience::Many(vec!["x".into(), "y".into()])));
        assert_eq!(r.exp, Some(10));
        assert_eq!(c.len(), 2);
        assert_eq!(c["role"], "admin");
    }

    #[test]
    fn fractional_dates_round_towards_the_stricter_answer() {
        let (r, _) =
            parse(r#"{"exp":1767229200.5,"nbf":1767229100.25,"iat":1767229100.75}"#).unwrap();
        assert_eq!(
            (r.exp, r.nbf, r.iat),
            (
                Some(1_767_229_200),
                Some(1_767_229_101),
                Some(1_767_229_100)
            )
        );
        let (r, _) = parse(r#"{"exp":1767229200.0,"nbf":0.0,"iat":1e9}"#).unwrap();
        assert_eq!(
            (r.exp, r.nbf, r.iat),
            (Some(1_767_229_200), Some(0), Some(1_000_000_000))
        );
    }

    #[test]
    fn escaped_member_names_are_the_same_claim() {
        let err = parse(r#"{"exp":1,"\u0065xp":2}"#).unwrap_err();
        assert_eq!(err.class(), RejectionClass::Claims);
        let (r, _) = parse(r#"{"\u0065xp":2}"#).unwrap();
        assert_eq!(r.exp, Some(2));
    }

    #[test]
    fn strict_types_and_duplicates() {
        for (json, class) in [
            (r#"{"exp":"999"}"#, RejectionClass::Claims),
            (r#"{"exp":1e400}"#, RejectionClass::Claims),
            (r#"{"exp":-0.5}"#, RejectionClass::Claims),
            (r#"{"exp":1e16}"#, RejectionClass::Claims),
            (r#"{"jti":""}"#, RejectionClass::Claims),
            (r#"{"sub":""}"#, RejectionClass::Claims),
            (r#"{"sid":""}"#, RejectionClass::Claims),
            (r#"{"exp":-1}"#, RejectionClass::Claims),
            (r#"{"exp":1e30}"#, RejectionClass::Claims),
            (r#"{"iss":42}"#, RejectionClass::Claims),
            (r#"{"aud":[7]}"#, RejectionClass::Claims),
            (r#"{"aud":[]}"#, RejectionClass::Claims),
            (r#"{"aud":null}"#, RejectionClass::Claims),
            (r#"{"sub":"a","sub":"b"}"#, RejectionClass::Claims),
            (r#"{"x":1,"x":2}"#, RejectionClass::Claims),
            (r#"[1,2]"#, RejectionClass::Claims),
            (r#"{"a":1"#, RejectionClass::Malformed),
            ("not json", RejectionClass::Malformed),
        ] {
            let err = parse(json).unwrap_err();
            assert_eq!(err.class(), class, "{json}: {err}");
            assert!(!err.reason().contains("999"), "reason echoes input: {err}");
        }
    }

    #[test]
    fn custom_errors_do_not_echo_values() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Custom {
            role: u32,
        }
        let err = parse_payload::<Custom>(br#"{"role":"secret-looking-value"}"#).unwrap_err();
        assert_eq!(err.class(), RejectionClass::Claims);
        assert!(!err.reason().contains("secret-looking-value"), "{err}");
        let err = parse_payload::<Custom>(br#"{}"#).unwrap_err();
        assert!(err.reason().contains("missing field `role`"), "{err}");
    }

    #[test]
    fn scopes_split_on_spaces() {
        let r = RegisteredClaims {
            scope: Some(" read  write ".into()),
            ..Default::default()
        };
        assert_eq!(r.scopes().collect::<Vec<_>>(), ["read", "write"]);
        assert!(r.has_scope("write"));
        assert!(!r.has_scope("admin"));
    }
}
