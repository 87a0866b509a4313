//! Decoding a token without verifying it, and the lint rules.
//!
//! Lint levels: `error` for what makes a token unsafe or makes tokenward's default policy
//! reject it (`alg: none`, embedded keys, no `exp`/`iss`/`aud`, over an hour of lifetime,
//! expired, ...); `warning` for what weakens security or operations without being fatal
//! (HS* shared secrets, no `kid`, no `jti`, unusual `typ`, ...). Lint codes are stable.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use tokenward_claims::{DEFAULT_MAX_LIFETIME, DEFAULT_MAX_TOKEN_SIZE, alg};

use crate::time;

/// tokenward's default maximum lifetime (`exp - iat`), in seconds.
const MAX_LIFETIME: u64 = DEFAULT_MAX_LIFETIME.as_secs();

/// How serious a lint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    /// Weakens security or operations.
    Warning,
    /// Unsafe, or rejected by tokenward's default policy.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Lint {
    pub(crate) level: Level,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// A decoded (NOT verified) token and its lints.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    pub(crate) lints: Vec<Lint>,
}

/// base64url that also accepts padding and non-zero trailing bits, to decode what the strict
/// decoder refuses (and say so).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A JSON object, with the names of members that appear more than once (the last one wins
/// in the map; parsers disagree on which one to take, which attackers use).
struct Object {
    map: Map<String, Value>,
    duplicates: Vec<String>,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Object, A::Error> {
                let mut map = Map::new();
                let mut duplicates = Vec::new();
                while let Some(name) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    if map.contains_key(&name) && !duplicates.contains(&name) {
                        duplicates.push(name.clone());
                    }
                    map.insert(name, value);
                }
                Ok(Object { map, duplicates })
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes `token` without verifying it and lints it as of `now`. `Err` says why it does not
/// decode.
pub(crate) fn inspect(token: &str, now: u64) -> Result<Report, String> {
    let mut lints = Vec::new();
    let mut lint = |level, code, message: String| {
        lints.push(Lint {
            level,
            code,
            message,
        });
    };

    let mut token_text = token;
    let trimmed = token_text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.len() != token_text.len() {
        lint(
            Level::Error,
            "whitespace",
            "surrounding whitespace: verifiers use a token exactly as given, so this one is \
             malformed"
                .into(),
        );
        token_text = trimmed;
    }
    if let Some(rest) = token_text
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .and_then(|_| token_text.get(7..))
    {
        lint(
            Level::Warning,
            "bearer_prefix",
            "starts with `Bearer `: that is the Authorization scheme, not part of the token".into(),
        );
        token_text = rest;
    }
    if token_text.len() > DEFAULT_MAX_TOKEN_SIZE {
        lint(
            Level::Error,
            "token_too_large",
            format!(
                "{} bytes; tokenward's default limit is {DEFAULT_MAX_TOKEN_SIZE} (and many \
                 servers cap request headers at 8 KiB)",
                token_text.len()
            ),
        );
    }

    let mut parts = token_text.splitn(6, '.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let n = token_text.split('.').count();
        return Err(if n == 5 {
            "5 dot-separated parts: an encrypted JWE, not a signed JWS".to_owned()
        } else {
            format!("{n} dot-separated part(s); a signed JWT (JWS) has 3")
        });
    };

    let mut decode = |part: &str, what: &str| -> Result<Vec<u8>, String> {
        if let Ok(bytes) = URL_SAFE_NO_PAD.decode(part) {
            return Ok(bytes);
        }
        let bytes = LENIENT
            .decode(part)
            .map_err(|_| format!("the {what} is not base64url"))?;
        lint(
            Level::Error,
            "non_canonical_base64",
            format!("the {what} is not canonical unpadded base64url; tokenward rejects it"),
        );
        Ok(bytes)
    };
    let header_bytes = decode(h, "header")?;
    let payload_bytes = decode(p, "payload")?;
    let signature = decode(sig, "signature");

    let header: Object = serde_json::from_slice(&header_bytes)
        .map_err(|_| "the header is not a JSON object".to_owned())?;
    let claims: Object = serde_json::from_slice(&payload_bytes)
        .map_err(|_| "the payload is not a JSON object (an encrypted or non-JWT payload?)")?;

    for name in &header.duplicates {
        lint(
            Level::Error,
            "duplicate_member",
            format!(
                "header member {name:?} appears more than once; parsers disagree on which wins"
            ),
        );
    }
    for name in &claims.duplicates {
        lint(
            Level::Error,
            "duplicate_member",
            format!("claim {name:?} appears more than once; parsers disagree on which wins"),
        );
    }

    let alg_none = lint_header(&header.map, &mut lint);
    match signature {
        Err(_) => lint(
            Level::Error,
            "signature_encoding",
            "the signature is not base64url".into(),
        ),
        Ok(sig) if sig.is_empty() && !alg_none => lint(
            Level::Error,
            "missing_signature",
            "the signature is empty".into(),
        ),
        Ok(_) => {}
    }
    lint_claims(&claims.map, now, &mut lint);

    Ok(Report {
        header: header.map,
        claims: claims.map,
        lints,
    })
}

/// Header lints; returns whether `alg` is `none`.
fn lint_header(
    header: &Map<String, Value>,
    lint: &mut impl FnMut(Level, &'static str, String),
) -> bool {
    let mut alg_none = false;
    match header.get("alg") {
        None => lint(Level::Error, "alg_missing", "no `alg` header".into()),
        Some(Value::String(name)) if name.eq_ignore_ascii_case("none") => {
            alg_none = true;
            lint(
                Level::Error,
                "alg_none",
                "`alg: none`: an unsigned token; anyone can forge it, and tokenward never \
                 accepts it"
                    .into(),
            );
        }
        Some(Value::String(name)) => match alg::parse(name) {
            None => lint(
                Level::Error,
                "alg_unsupported",
                format!(
                    "`alg` {name:?} is not a supported JWS algorithm (names are case-sensitive)"
                ),
            ),
            Some(a) if alg::is_hmac(a) => lint(
                Level::Warning,
                "hmac_alg",
                format!(
                    "{}: a shared secret; every service that verifies can also mint tokens. \
                     When several services verify, prefer EdDSA, ES256 or RS256",
                    alg::name(a)
                ),
            ),
            Some(_) => {}
        },
        Some(_) => lint(Level::Error, "header_type", "`alg` is not a string".into()),
    }
    for name in ["jwk", "jku", "x5u", "x5c"] {
        if header.contains_key(name) {
            lint(
                Level::Error,
                "embedded_key",
                format!(
                    "header `{name}` supplies a key or key location: a verifier that trusts \
                     it lets the attacker choose the key; tokenward rejects the token"
                ),
            );
        }
    }
    if header.contains_key("crit") {
        lint(
            Level::Error,
            "crit",
            "header `crit` demands extensions verifiers must understand; tokenward \
             understands none and rejects the token"
                .into(),
        );
    }
    for name in ["b64", "enc", "zip"] {
        if header.contains_key(name) {
            lint(
                Level::Error,
                "forbidden_header",
                format!("header `{name}` (unencoded payload or JWE) is not accepted"),
            );
        }
    }
    match header.get("kid") {
        None => lint(
            Level::Warning,
            "missing_kid",
            "no `kid`: keys cannot be rotated without breaking tokens; tokenward requires \
             `kid` unless a verifier holds exactly one key"
                .into(),
        ),
        Some(Value::String(_)) => {}
        Some(_) => lint(Level::Error, "header_type", "`kid` is not a string".into()),
    }
    match header.get("typ") {
        None => lint(
            Level::Warning,
            "typ_missing",
            "no `typ`: RFC 9068 access tokens carry `typ: at+jwt`, which stops other JWTs \
             (ID tokens, ...) from being replayed as access tokens"
                .into(),
        ),
        Some(Value::String(typ)) if is_jwt_typ(typ) => {}
        Some(Value::String(typ)) => lint(
            Level::Warning,
            "typ_unusual",
            format!(
                "`typ` {typ:?} is neither JWT nor at+jwt; tokenward's default policy rejects it"
            ),
        ),
        Some(_) => lint(Level::Error, "header_type", "`typ` is not a string".into()),
    }
    alg_none
}

fn is_jwt_typ(typ: &str) -> bool {
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => typ.get(12..).unwrap_or(typ),
        _ => typ,
    };
    bare.eq_ignore_ascii_case("JWT") || bare.eq_ignore_ascii_case("at+jwt")
}

fn lint_claims(
    claims: &Map<String, Value>,
    now: u64,
    lint: &mut impl FnMut(Level, &'static str, String),
) {
    for (name, code, level, why) in [
        (
            "exp",
            "missing_exp",
            Level::Error,
            "the token never expires",
        ),
        (
            "iss",
            "missing_iss",
            Level::Error,
            "a token from any issuer sharing the key would be accepted",
        ),
        (
            "aud",
            "missing_aud",
            Level::Error,
            "the token is valid at every service that trusts the key",
        ),
        (
            "sub",
            "missing_sub",
            Level::Warning,
            "no subject to authorize or rate-limit",
        ),
        (
            "iat",
            "missing_iat",
            Level::Warning,
            "its lifetime and 'sign out everywhere' cannot be checked",
        ),
        (
            "jti",
            "missing_jti",
            Level::Warning,
            "the token cannot be revoked individually",
        ),
    ] {
        if !claims.contains_key(name) {
            lint(
                level,
                code,
                format!("no `{name}`: {why}; tokenward's default policy requires it"),
            );
        }
    }

    let mut numeric = |name: &str| -> Option<u64> {
        let value = claims.get(name)?;
        let n = value.as_u64();
        if n.is_none() {
            lint(
                Level::Error,
                "claim_type",
                format!("`{name}` must be a non-negative integer NumericDate (seconds)"),
            );
        }
        n
    };
    let (exp, nbf, iat) = (numeric("exp"), numeric("nbf"), numeric("iat"));
    for name in ["iss", "sub", "jti", "sid", "scope"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            lint(
                Level::Error,
                "claim_type",
                format!("`{name}` must be a string"),
            );
        }
    }
    let aud_ok = match claims.get("aud") {
        None | Some(Value::String(_)) => true,
        Some(Value::Array(values)) => !values.is_empty() && values.iter().all(Value::is_string),
        Some(_) => false,
    };
    if !aud_ok {
        lint(
            Level::Error,
            "claim_type",
            "`aud` must be a string or a non-empty array of strings".into(),
        );
    }

    if let Some(exp) = exp {
        match iat.or(nbf) {
            Some(start) if exp <= start => lint(
                Level::Error,
                "lifetime_invalid",
                "`exp` is not after `iat`/`nbf`".into(),
            ),
            Some(start) if exp - start > MAX_LIFETIME => lint(
                Level::Error,
                "lifetime_too_long",
                format!(
                    "lifetime {} (exp - iat) is over 1 hour: a stolen token stays usable that \
                     long; tokenward's default maximum is {MAX_LIFETIME} s",
                    time::human_duration(exp - start)
                ),
            ),
            None if exp > now && exp - now > MAX_LIFETIME => lint(
                Level::Error,
                "lifetime_too_long",
                format!(
                    "expires in {}, over 1 hour from now",
                    time::human_duration(exp - now)
                ),
            ),
            _ => {}
        }
        if exp <= now {
            lint(
                Level::Error,
                "expired",
                format!(
                    "expired at {} ({} ago)",
                    time::rfc3339(exp),
                    time::human_duration(now - exp)
                ),
            );
        }
    }
    for (at, code, before, after) in [
        (nbf, "not_yet_valid", "not valid before", ""),
        (
            iat,
            "iat_in_future",
            "issued in the future:",
            "; a clock problem at the issuer?",
        ),
    ] {
        if let Some(t) = at.filter(|&t| t > now) {
            lint(
                Level::Error,
                code,
                format!(
                    "{before} {} (in {}){after}",
                    time::rfc3339(t),
                    time::human_duration(t - now)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn codes(header: &str, claims: &str) -> Vec<&'static str> {
        let token = format!("{}.{}.c2ln", b64(header), b64(claims));
        let report = inspect(&token, 1_000).unwrap();
        report.lints.iter().map(|l| l.code).collect()
    }

    const GOOD_HEADER: &str = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#;
    const GOOD_CLAIMS: &str =
        r#"{"iss":"i","aud":"a","sub":"s","jti":"j","iat":900,"nbf":900,"exp":1800}"#;

    #[test]
    fn clean_token_has_no_lints() {
        assert_eq!(codes(GOOD_HEADER, GOOD_CLAIMS), Vec::<&str>::new());
    }

    #[test]
    fn duplicates_and_types() {
        assert_eq!(
            codes(
                r#"{"alg":"EdDSA","alg":"none","typ":"JWT","kid":"k"}"#,
                GOOD_CLAIMS
            ),
            ["duplicate_member", "alg_none"]
        );
        assert_eq!(
            codes(
                GOOD_HEADER,
                r#"{"iss":42,"aud":[],"sub":"s","jti":"j","iat":900,"exp":"1800"}"#
            ),
            ["claim_type", "claim_type", "claim_type"]
        );
    }

    #[test]
    fn garbage_does_not_decode() {
        for garbage in [
            "",
            ".",
            "..",
            "a.b",
            "a.b.c.d",
            "a.b.c.d.e",
            "!!.!!.!!",
            "e30.bm90anNvbg.",
            "W10.e30.",
            "\u{0}.\u{0}.\u{0}",
        ] {
            assert!(inspect(garbage, 0).is_err(), "{garbage:?}");
        }
        assert!(inspect("e30.e30.", 0).is_ok());
    }
}
