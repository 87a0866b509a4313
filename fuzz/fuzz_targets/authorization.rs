//! `bearer_credentials` and `cookie_credentials` (the adapters' `Authorization` / `Cookie`
//! parsing) on arbitrary header values, against a model of RFC 6750 §2.1.
//!
//! The input is split at `0xFF` bytes (never valid in a header value) into several header
//! values. A token handed on is always a slice *of* the one value it came from, in
//! `b64token` syntax, and exactly what the model extracts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenward_guard::{Credentials, MAX_HEADER_BYTES, bearer_credentials, cookie_credentials};

fn is_b64token(t: &[u8]) -> bool {
    let body_len = t.len() - t.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0
        && t[..body_len]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// What one `Authorization` value should give: `None` for no bearer token,
/// `Some(Err(()))` for a malformed one, `Some(Ok(token))` for a token.
fn model_bearer(value: &[u8]) -> Option<Result<&[u8], ()>> {
    if value.len() > MAX_HEADER_BYTES {
        return Some(Err(()));
    }
    let value = trim(value);
    let (scheme, rest) =
        value.split_at(value.iter().position(|&b| b == b' ').unwrap_or(value.len()));
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = trim(rest);
    Some(if is_b64token(token) {
        Ok(token)
    } else {
        Err(())
    })
}

/// Whether `inner` lies within `outer` (same allocation, in bounds).
fn is_slice_of(inner: &[u8], outer: &[u8]) -> bool {
    let (start, end) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    let p = inner.as_ptr() as usize;
    start <= p && p + inner.len() <= end
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();

    // Authorization.
    let got = bearer_credentials(values.iter().copied());
    match (values.as_slice(), got) {
        ([value], got) => match (model_bearer(value), got) {
            (None, Credentials::Absent) | (Some(Err(())), Credentials::Malformed(_)) => {}
            (Some(Ok(token)), Credentials::Bearer(t)) => {
                assert_eq!(t.as_bytes(), token);
                assert!(
                    is_slice_of(t.as_bytes(), value),
                    "token is not a slice of the header"
                );
            }
            (model, got) => panic!("model {model:?}, got {got:?}"),
        },
        // `split` yields at least one value; several are always malformed.
        (_, Credentials::Malformed(_)) => {}
        (_, got) => panic!("{} values gave {got:?}", values.len()),
    }

    // Cookie (the opt-in source), under a fixed cookie name.
    match cookie_credentials(values.iter().copied(), "access_token") {
        Credentials::Bearer(t) => {
            assert!(is_b64token(t.as_bytes()), "{t:?}");
            let from = values
                .iter()
                .filter(|v| is_slice_of(t.as_bytes(), v))
                .count();
            assert_eq!(from, 1, "token is not a slice of one Cookie value");
            let needle = b"access_token=";
            assert!(
                values
                    .iter()
                    .any(|v| v.windows(needle.len()).any(|w| w == needle)),
                "token without its cookie name"
            );
        }
        Credentials::Absent => {
            let needle = b"access_token=";
            // Absent only when no pair is named `access_token` (after trimming).
            for value in &values {
                for pair in value.split(|&b| b == b';') {
                    assert!(!trim(pair).starts_with(needle), "cookie {pair:?} ignored");
                }
            }
        }
        Credentials::Malformed(_) => {}
        _ => {}
    }
});
