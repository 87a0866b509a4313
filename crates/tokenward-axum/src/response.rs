//! Denials as HTTP responses: copied from [`Denial::status`], [`Denial::headers`] and
//! [`Denial::body`], nothing added but the content type.

use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, StatusCode};
use tokenward_guard::Denial;
use tokenward_guard::http::JSON_CONTENT_TYPE;

/// The response for `denial`, for an axum handler (for example a login endpoint's own 401s
/// and 429s): the Guard's status, headers (`WWW-Authenticate`, `Retry-After`, `RateLimit`,
/// `Cache-Control: no-store`) and JSON body, with `Content-Type: application/json`.
///
/// ```
/// use tokenward_guard::Denial;
/// let res = tokenward_axum::denial_response(&Denial::MissingToken);
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
/// assert_eq!(res.headers()["content-type"], "application/json");
/// ```
pub fn denial_response(denial: &Denial) -> axum::response::Response {
    denial_http_response(denial)
}

/// [`denial_response`] for any response body that can be made from a `String`
/// (`axum::body::Body`, `http_body_util::Full<Bytes>`, `String`): what [`GuardService`]
/// returns for a refused request, usable by plain tower and hyper services too.
///
/// [`GuardService`]: crate::GuardService
pub fn denial_http_response<B: From<String>>(denial: &Denial) -> http::Response<B> {
    let mut res = http::Response::new(B::from(denial.body()));
    *res.status_mut() =
        StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    for (name, value) in denial.headers() {
        // The names are the Guard's lowercase constants and the values fixed text, so neither
        // conversion fails; if one ever did, the header is left out rather than panicking.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    res
}
