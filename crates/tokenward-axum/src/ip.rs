//! The client address of a request: the TCP peer, and forwarding headers only from the
//! Guard's trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap};
use tokenward_guard::Guard;

/// The client address of a request, as the Guard's checks (the failure ban) must see it: the
/// peer address from [`ConnectInfo<SocketAddr>`] in the request extensions, resolved through
/// [`Guard::client_ip`] — so `X-Forwarded-For`/`Forwarded` count only when the peer is a
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
/// #         .guard_builder(keys, tokenward_guard::GuardStores::memory(), None).unwrap().build()
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
    client_ip(guard, &parts.extensions, &parts.headers)
}

pub(crate) fn client_ip(
    guard: &Guard,
    extensions: &Extensions,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let ConnectInfo(peer) = extensions.get::<ConnectInfo<SocketAddr>>()?;
    let resolver = guard.client_ip();
    let Some(header) = resolver.header() else {
        return Some(resolver.resolve(peer.ip(), std::iter::empty()));
    };
    // Decoded lossily, like the actix adapter: a client-written part that is not UTF-8
    // becomes replacement characters in *its* entry, while the entries our trusted proxies
    // appended on the right still parse. (Replacing the whole value instead would make the
    // walk stop at the proxy, and a client could then get the proxy — everyone behind it —
    // banned by sending one non-UTF-8 byte.)
    let values: Vec<std::borrow::Cow<'_, str>> = headers
        .get_all(header.name())
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    Some(resolver.resolve(peer.ip(), values.iter().map(AsRef::as_ref)))
}
