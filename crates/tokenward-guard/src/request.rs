//! Where a request's token comes from: the `Authorization: Bearer` header, and a cookie
//! only when explicitly configured. Query strings are never read (they end up in access logs).

use std::net::IpAddr;

/// The largest `Authorization` or `Cookie` header value the Guard looks at; anything longer
/// is refused before it is parsed (the token size cap is far below this).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What a request carries as credentials, extracted by [`bearer_credentials`] (and
/// [`cookie_credentials`] where a cookie source is configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials<'a> {
    /// No bearer token: no `Authorization` header, or one with another scheme (`Basic ...`).
    Absent,
    /// A bearer token in `b64token` syntax (RFC 6750 §2.1). Not yet verified.
    Bearer(&'a str),
    /// Something that claims to be a bearer token but cannot be one: several `Authorization`
    /// headers, an empty token, characters outside `b64token`, an oversize header. The
    /// reason is fixed text, never the header's content.
    Malformed(&'static str),
}

/// The bearer token from the `Authorization` header values of a request.
///
/// The scheme is matched case-insensitively (RFC 7235 §2.1) and may be followed by one or
/// more spaces; the token must be `b64token` (`A-Z a-z 0-9 - . _ ~ + /`, then `=` padding)
/// and may be followed only by spaces or tabs. Another scheme (`Basic`, `Digest`) is not a
/// bearer token: [`Credentials::Absent`]. Several `Authorization` headers are
/// [`Credentials::Malformed`] — never "pick one".
///
/// ```
/// use tokenward_guard::{Credentials, bearer_credentials};
///
/// let one = |v: &'static str| bearer_credentials([v.as_bytes()]);
/// assert_eq!(one("Bearer abc.def.ghi"), Credentials::Bearer("abc.def.ghi"));
/// assert_eq!(one("bEaReR   abc.def.ghi"), Credentials::Bearer("abc.def.ghi"));
/// assert_eq!(one("Basic YWxpY2U6cHc="), Credentials::Absent);
/// assert!(matches!(one("Bearer a b"), Credentials::Malformed(_)));
/// assert_eq!(bearer_credentials(std::iter::empty::<&[u8]>()), Credentials::Absent);
/// assert!(matches!(
///     bearer_credentials([&b"Bearer a"[..], &b"Bearer b"[..]]),
///     Credentials::Malformed(_)
/// ));
/// ```
pub fn bearer_credentials<'a, I>(authorization_values: I) -> Credentials<'a>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = authorization_values.into_iter();
    let Some(value) = values.next() else {
        return Credentials::Absent;
    };
    if values.next().is_some() {
        return Credentials::Malformed("several Authorization headers");
    }
    parse_authorization(value)
}

fn parse_authorization(value: &[u8]) -> Credentials<'_> {
    if value.len() > MAX_HEADER_BYTES {
        return Credentials::Malformed("Authorization header too large");
    }
    let value = trim_ows(value);
    let scheme_end = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Credentials::Absent;
    }
    let token = trim_ows(rest);
    if token.is_empty() {
        return Credentials::Malformed("empty bearer token");
    }
    b64token(token).map_or(
        Credentials::Malformed("bearer token is not b64token syntax"),
        Credentials::Bearer,
    )
}

/// The token from the cookie named `name` in the `Cookie` header values of a request —
/// for the explicit cookie opt-in only (see the crate docs on CSRF).
///
/// ```
/// use tokenward_guard::{Credentials, cookie_credentials};
///
/// let cookie = b"theme=dark; access_token=abc.def.ghi; lang=en";
/// assert_eq!(cookie_credentials([&cookie[..]], "access_token"), Credentials::Bearer("abc.def.ghi"));
/// assert_eq!(cookie_credentials([&cookie[..]], "other"), Credentials::Absent);
/// ```
pub fn cookie_credentials<'a, I>(cookie_values: I, name: &str) -> Credentials<'a>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut found = None;
    for value in cookie_values {
        if value.len() > MAX_HEADER_BYTES {
            return Credentials::Malformed("Cookie header too large");
        }
        for pair in value.split(|&b| b == b';') {
            let pair = trim_ows(pair);
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, rest) = pair.split_at(eq);
            if key != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Credentials::Malformed("several token cookies");
            }
            let raw = rest.get(1..).unwrap_or_default();
            let raw = raw
                .strip_prefix(b"\"")
                .and_then(|r| r.strip_suffix(b"\""))
                .unwrap_or(raw);
            found = Some(raw);
        }
    }
    match found {
        None => Credentials::Absent,
        Some([]) => Credentials::Malformed("empty token cookie"),
        Some(raw) => b64token(raw).map_or(
            Credentials::Malformed("token cookie is not b64token syntax"),
            Credentials::Bearer,
        ),
    }
}

/// `token` as a string if it is `b64token`: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+"
/// / "/" ) *"=".
fn b64token(token: &[u8]) -> Option<&str> {
    let body_len = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (body, padding) = token.split_at(body_len);
    let ok = !body.is_empty()
        // No early exit: the whole (size-capped) token is scanned either way.
        && body.iter().fold(true, |ok, &b| ok & is_b64token_char(b))
        && padding.iter().all(|&b| b == b'=');
    if !ok {
        return None;
    }
    std::str::from_utf8(token).ok()
}

/// Whether `b` may appear in a `b64token` before its padding: ALPHA / DIGIT / `-` / `.` /
/// `_` / `~` / `+` / `/`. Branch-free, so that checking a token of several hundred bytes
/// compiles to a vectorised loop.
const fn is_b64token_char(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The framework-independent view of one request that the [`Guard`](crate::Guard) needs.
///
/// Adapters fill it from their request type: `path` without the query string (it may hold
/// secrets and is never logged), `client_ip` from
/// [`Guard::client_ip`](crate::Guard::client_ip) (trusted proxies only).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AuthRequest<'a> {
    /// The HTTP method (`GET`), for audit events.
    pub method: &'a str,
    /// The path without the query string, for audit events.
    pub path: &'a str,
    /// The client's address (see [`Guard::client_ip`](crate::Guard::client_ip)).
    pub client_ip: IpAddr,
    /// The token, if any.
    pub credentials: Credentials<'a>,
}

impl<'a> AuthRequest<'a> {
    /// A request from `client_ip` carrying `credentials`.
    pub fn new(
        method: &'a str,
        path: &'a str,
        client_ip: IpAddr,
        credentials: Credentials<'a>,
    ) -> Self {
        AuthRequest {
            method,
            path,
            client_ip,
            credentials,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn check(header: &[u8], expected: Credentials<'_>) {
        assert_eq!(
            bearer_credentials([header]),
            expected,
            "{:?}",
            String::from_utf8_lossy(header)
        );
    }

    #[test]
    fn b64token_accepts_exactly_its_characters() {
        for b in 0..=255u8 {
            let allowed = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(b64token(&[b]).is_some(), allowed, "byte {b:#04x}");
            // `=` is padding: allowed at the end only.
            let padding = b == b'=';
            assert_eq!(
                b64token(&[b'a', b, b'=']).is_some(),
                allowed || padding,
                "{b:#04x}"
            );
            assert_eq!(
                b64token(&[b'a', b, b'b']).is_some(),
                allowed,
                "byte {b:#04x}"
            );
        }
    }

    #[test]
    fn authorization_table() {
        let m = |r| Credentials::Malformed(r);
        let cases: &[(&[u8], Credentials<'_>)] = &[
            (b"Bearer abc", Credentials::Bearer("abc")),
            (b"bearer abc", Credentials::Bearer("abc")),
            (b"BEARER abc", Credentials::Bearer("abc")),
            (b"Bearer  abc  ", Credentials::Bearer("abc")),
            (b" Bearer abc\t", Credentials::Bearer("abc")),
            (
                b"Bearer a-b.c_d~e+f/g==",
                Credentials::Bearer("a-b.c_d~e+f/g=="),
            ),
            (b"Basic YWJj", Credentials::Absent),
            (b"Bearerabc", Credentials::Absent),
            (b"Token abc", Credentials::Absent),
            (b"", Credentials::Absent),
            (b"Bearer", m("empty bearer token")),
            (b"Bearer    ", m("empty bearer token")),
            (b"Bearer a b", m("bearer token is not b64token syntax")),
            (b"Bearer a=b", m("bearer token is not b64token syntax")),
            (b"Bearer ===", m("bearer token is not b64token syntax")),
            (b"Bearer a,b", m("bearer token is not b64token syntax")),
            (b"Bearer \xff\xfe", m("bearer token is not b64token syntax")),
            (b"Bearer a\"b", m("bearer token is not b64token syntax")),
            (
                b"Bearer a\r\nX: y",
                m("bearer token is not b64token syntax"),
            ),
        ];
        for (header, expected) in cases {
            check(header, *expected);
        }
        let huge = [b"Bearer ".as_slice(), &vec![b'a'; MAX_HEADER_BYTES]].concat();
        check(&huge, m("Authorization header too large"));
    }

    #[test]
    fn several_headers_are_malformed() {
        assert_eq!(
            bearer_credentials([&b"Bearer a"[..], &b"Basic b"[..]]),
            Credentials::Malformed("several Authorization headers")
        );
    }

    #[test]
    fn cookies() {
        let c = |v: &'static [u8]| cookie_credentials([v], "at");
        assert_eq!(c(b"at=x.y.z"), Credentials::Bearer("x.y.z"));
        assert_eq!(c(b"a=1;at=\"x.y.z\""), Credentials::Bearer("x.y.z"));
        assert_eq!(c(b"xat=1; atx=2"), Credentials::Absent);
        assert_eq!(c(b"at="), Credentials::Malformed("empty token cookie"));
        assert_eq!(
            c(b"at=1; at=2"),
            Credentials::Malformed("several token cookies")
        );
        assert_eq!(
            cookie_credentials([&b"at=1"[..], &b"at=2"[..]], "at"),
            Credentials::Malformed("several token cookies")
        );
        assert_eq!(
            c(b"at=a b"),
            Credentials::Malformed("token cookie is not b64token syntax")
        );
    }
}
