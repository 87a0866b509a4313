//! The JOSE header, parsed strictly.

use std::borrow::Cow;
use std::fmt;

use arrayvec::ArrayVec;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::claims::JsonStr;
use crate::rejection::{Rejection, reject};

/// The header members a verifier looks at, borrowed from the decoded header where they
/// have no escapes. Every other member is ignored, except the forbidden ones, whose mere
/// presence rejects the token.
#[derive(Debug, Default)]
pub(crate) struct RawHeader<'a> {
    pub(crate) alg: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
    pub(crate) kid: Option<Cow<'a, str>>,
    /// The first forbidden member found (`crit`, `jwk`, `jku`, `x5u`, `x5c`, `b64`, `enc`, `zip`).
    pub(crate) forbidden: Option<&'static str>,
}

/// Header members whose presence rejects a token:
/// - `crit`: we understand no extensions, so RFC 7515 §4.1.11 requires rejecting any;
/// - `jwk`, `jku`, `x5u`, `x5c`: an attacker-supplied key or key location; keys come only
///   from the configured key set, never from the token;
/// - `b64`: RFC 7797 unencoded payloads;
/// - `enc`, `zip`: JWE members; encrypted tokens are not JWS.
pub(crate) const FORBIDDEN: [&str; 8] = ["crit", "jwk", "jku", "x5u", "x5c", "b64", "enc", "zip"];

/// The most members a header may have.
const MAX_MEMBERS: usize = 64;

impl<'de> Deserialize<'de> for RawHeader<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader<'de>, A::Error> {
                let mut h = RawHeader::default();
                // The names seen so far, on the stack (borrowed from the input unless
                // escaped): a header is parsed on every request.
                let mut seen: ArrayVec<Cow<'de, str>, MAX_MEMBERS> = ArrayVec::new();
                while let Some(JsonStr(key)) = map.next_key()? {
                    if seen.contains(&key) {
                        return Err(de::Error::custom("duplicate header member"));
                    }
                    if seen.is_full() {
                        return Err(de::Error::custom("too many header members"));
                    }
                    let string = |map: &mut A, name: &str| {
                        map.next_value::<JsonStr<'de>>()
                            .map(|JsonStr(value)| value)
                            .map_err(|_| {
                                de::Error::custom(format_args!("header `{name}` is not a string"))
                            })
                    };
                    match &*key {
                        "alg" => h.alg = Some(string(&mut map, "alg")?),
                        "typ" => h.typ = Some(string(&mut map, "typ")?),
                        "kid" => h.kid = Some(string(&mut map, "kid")?),
                        other => {
                            if h.forbidden.is_none() {
                                h.forbidden = FORBIDDEN.iter().copied().find(|f| *f == other);
                            }
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    seen.push(key);
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<RawHeader<'_>, Rejection> {
    // UTF-8 first (RFC 7515 §5.2): serde_json skips ignored members without validating
    // their strings, so `from_slice` alone accepted invalid UTF-8 there (found by fuzzing).
    let text = std::str::from_utf8(bytes).map_err(|_| reject!(Malformed, "header is not UTF-8"))?;
    serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            reject!(Header, "header is not acceptable: {}", first_sentence(&e))
        } else {
            reject!(Malformed, "header is not a JSON object")
        }
    })
}

fn first_sentence(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // Our own messages (no input echoed); serde's type errors are reduced to a fixed text.
    if msg.starts_with("duplicate header member")
        || msg.starts_with("too many header members")
        || msg.starts_with("header `")
    {
        msg.split(" at line ").next().unwrap_or_default().to_owned()
    } else {
        "not a JSON object of members".to_owned()
    }
}

/// Whether `typ` names a JWT: compared case-insensitively, with an optional `application/`
/// prefix (RFC 7515 §4.1.9).
pub(crate) fn typ_matches(typ: &str, accepted: &str) -> bool {
    fn strip(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => s.get(12..).unwrap_or(s),
            _ => s,
        }
    }
    strip(typ).eq_ignore_ascii_case(strip(accepted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectionClass;

    #[test]
    fn header_cases() {
        let h = parse(br#"{"alg":"HS256","typ":"JWT","kid":"k1","x5t":"abc"}"#).unwrap();
        assert_eq!(
            (h.alg.as_deref(), h.kid.as_deref()),
            (Some("HS256"), Some("k1"))
        );
        assert_eq!(h.forbidden, None);
        assert_eq!(
            parse(br#"{"alg":"HS256","crit":["exp"]}"#)
                .unwrap()
                .forbidden,
            Some("crit")
        );
        for (json, class) in [
            (
                &br#"{"alg":"HS256","alg":"none"}"#[..],
                RejectionClass::Header,
            ),
            (br#"{"alg":256}"#, RejectionClass::Header),
            (br#"{"alg":"HS256","kid":5}"#, RejectionClass::Header),
            (br#"["alg"]"#, RejectionClass::Header),
            (br#"{"al"#, RejectionClass::Malformed),
        ] {
            assert_eq!(parse(json).unwrap_err().class(), class);
        }
    }

    /// Names and values are borrowed when they have no escapes and owned when they do; both
    /// spellings mean the same member, so an escaped duplicate is still a duplicate and an
    /// escaped forbidden member is still forbidden.
    #[test]
    fn escaped_members_are_the_same_members() {
        let plain = parse(br#"{"alg":"HS256","kid":"k1"}"#).unwrap();
        assert!(matches!(plain.alg, Some(Cow::Borrowed("HS256"))));
        let escaped = parse(br#"{"\u0061lg":"HS\u00325\u0036","kid":"k\u0031"}"#).unwrap();
        assert!(matches!(&escaped.alg, Some(Cow::Owned(alg)) if alg == "HS256"));
        assert_eq!(escaped.kid.as_deref(), Some("k1"));
        for json in [
            &br#"{"alg":"HS256","\u0061lg":"none"}"#[..],
            br#"{"\u0061lg":"none","alg":"HS256"}"#,
        ] {
            assert_eq!(
                parse(json).unwrap_err().class(),
                RejectionClass::Header,
                "{json:?}"
            );
        }
        let crit = parse(br#"{"alg":"HS256","\u0063rit":["exp"]}"#).unwrap();
        assert_eq!(crit.forbidden, Some("crit"));
    }

    /// At most 64 members: the 65th is refused (the names seen are kept in a fixed-size
    /// array on the stack, which must never be pushed past its end).
    #[test]
    fn member_cap() {
        let header = |n: usize| {
            let members: Vec<String> = std::iter::once(r#""alg":"HS256""#.to_owned())
                .chain((1..n).map(|i| format!(r#""m{i}":0"#)))
                .collect();
            format!("{{{}}}", members.join(","))
        };
        assert!(parse(header(MAX_MEMBERS).as_bytes()).is_ok());
        let err = parse(header(MAX_MEMBERS + 1).as_bytes()).unwrap_err();
        assert_eq!(err.class(), RejectionClass::Header);
        assert!(err.to_string().contains("too many header members"), "{err}");
    }

    #[test]
    fn typ_comparison() {
        assert!(typ_matches("jwt", "JWT"));
        assert!(typ_matches("application/at+jwt", "at+jwt"));
        assert!(typ_matches("AT+JWT", "application/at+jwt"));
        assert!(!typ_matches("JWS", "JWT"));
        assert!(!typ_matches("application/", "JWT"));
        assert!(!typ_matches("é", "JWT"));
    }
}
