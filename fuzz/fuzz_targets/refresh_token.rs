//! `RefreshToken::parse` and `FamilyId::parse` on arbitrary text, against exact models.
//!
//! A refresh token is `twr_` + 64 URL-safe base64 characters (48 bytes: no spare bits, so
//! every such string is canonical); a family id is 22 such characters whose last one has
//! its 4 spare bits zero. `parse` must accept exactly those strings and nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenward_refresh::{FamilyId, RefreshToken, TOKEN_LEN, TOKEN_PREFIX};

fn sextet(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

fn is_family_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 22
        && b.iter().all(|&c| sextet(c).is_some())
        && b.last()
            .and_then(|&c| sextet(c))
            .is_some_and(|v| v & 0xF == 0)
}

fn is_refresh_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.strip_prefix(TOKEN_PREFIX)
            .is_some_and(|body| body.bytes().all(|c| sextet(c).is_some()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Also try the input as a token body, so the fuzzer need not find the prefix first.
    let prefixed = format!("{TOKEN_PREFIX}{text}");
    for candidate in [text, prefixed.as_str()] {
        let parsed = RefreshToken::parse(candidate);
        assert_eq!(
            parsed.is_some(),
            is_refresh_token(candidate),
            "{candidate:?}"
        );
        if let Some(token) = parsed {
            assert_eq!(token.expose(), candidate);
            // The family id is the first 128 bits: 21 characters and 2 bits of the 22nd.
            let family = token.family_id().as_str();
            assert!(is_family_id(family), "{family:?}");
            assert_eq!(family.get(..21), candidate.get(4..25));
            let next = |s: &str| s.as_bytes().get(21).copied().and_then(sextet);
            assert_eq!(
                next(family).map(|v| v >> 4),
                candidate.get(4..).and_then(next).map(|v| v >> 4)
            );
            assert_eq!(FamilyId::parse(family).as_ref(), Some(token.family_id()));
            // The stored hash identifies the token.
            let again = RefreshToken::parse(candidate).expect("parses twice");
            assert!(token.hash().ct_eq(&again.hash()));
        }
        let family = FamilyId::parse(candidate);
        assert_eq!(family.is_some(), is_family_id(candidate), "{candidate:?}");
        if let Some(family) = family {
            assert_eq!(family.as_str(), candidate);
        }
    }
});
