//! The client address of a request, and the request's headers as the Guard reads them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, header};
use tokenward_guard::Guard;
use tokenward_guard::http::HeaderSource;

/// An `http::HeaderMap` as the Guard reads it.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s [u8]> + 's {
        // The names the Guard asks for on every request are looked up by their prebuilt
        // `HeaderName`: a `&str` is parsed (lower-cased, matched against the standard names)
        // on every lookup. Same entries either way.
        let all = match known(name) {
            Some(name) => self.0.get_all(name),
            None => self.0.get_all(name),
        };
        all.iter().map(HeaderValue::as_bytes)
    }
}

static AUTHORIZATION: HeaderName = header::AUTHORIZATION;
static COOKIE: HeaderName = header::COOKIE;
static FORWARDED: HeaderName = header::FORWARDED;
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The prebuilt `HeaderName` of a header the Guard reads per request.
fn known(name: &str) -> Option<&'static HeaderName> {
    match name {
        "authorization" => Some(&AUTHORIZATION),
        "cookie" => Some(&COOKIE),
        "forwarded" => Some(&FORWARDED),
        "x-forwarded-for" => Some(&X_FORWARDED_FOR),
        _ => None,
    }
}

/// The TCP peer from `ConnectInfo<SocketAddr>`, if the server put it there.
pub(crate) fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// The client address of a request, as the Guard's checks (the failure ban) see it:
/// [`Guard::resolve_client_ip`] of the peer address from [`ConnectInfo<SocketAddr>`] in the
/// request extensions — so `X-Forwarded-For`/`Forwarded` count only when the peer is a
/// trusted proxy.
///
/// `None` when the extensions hold no `ConnectInfo<SocketAddr>`: serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()` (axum), or insert
/// `ConnectInfo(peer)` yourself in a plain hyper/tower server. [`GuardService`] refuses such
/// requests with a 500 rather than put every client under one ban key.
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use axum::extract::ConnectInfo;
/// # fn guard() -> tokenward_guard::Guard {
/// #     let keys = tokenward_claims::KeySet::single(tokenward_claims::Key::hmac(
/// #         "k", tokenward_claims::Algorithm::HS256, &[7u8; 32]).unwrap());
/// #     tokenward_guard::GuardConfig::new("iss", "aud")
/// #         .guard_builder(keys, tokenward_guard::GuardStores::memory(), None).unwrap()
/// #         .build().unwrap()
/// # }
/// let guard = guard(); // no proxy trusted
/// let mut req = http::Request::builder()
///     .header("x-forwarded-for", "1.2.3.4")
///     .body(())
///     .unwrap();
/// let (mut parts, ()) = req.into_parts();
/// assert_eq!(tokenward_axum::request_client_ip(&guard, &parts), None);
///
/// let peer: SocketAddr = "203.0.113.7:50000".parse().unwrap();
/// parts.extensions.insert(ConnectInfo(peer));
/// assert_eq!(tokenward_axum::request_client_ip(&guard, &parts), Some(peer.ip()));
/// ```
///
/// [`GuardService`]: crate::GuardService
pub fn request_client_ip(guard: &Guard, parts: &http::request::Parts) -> Option<IpAddr> {
    guard.resolve_client_ip(peer(&parts.extensions), &Headers(&parts.headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_find_what_str_lookups_find() {
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("Authorization", "Bearer a"),
            ("authorization", "Bearer b"),
            ("cookie", "x=1"),
            ("Forwarded", "for=192.0.2.1"),
            ("X-Forwarded-For", "192.0.2.2"),
            ("x-forwarded-for", "192.0.2.3"),
            ("x-other", "o"),
        ] {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        let headers = Headers(&map);
        for name in [
            "authorization",
            "cookie",
            "forwarded",
            "x-forwarded-for",
            "x-other",
            "absent",
        ] {
            let by_source: Vec<&[u8]> = headers.values(name).collect();
            let by_str: Vec<&[u8]> = map
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            assert_eq!(by_source, by_str, "{name}");
        }
        assert_eq!(headers.values("authorization").count(), 2);
        assert_eq!(headers.values("x-forwarded-for").count(), 2);
    }
}
