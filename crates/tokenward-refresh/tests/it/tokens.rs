//! Token and family-id parsing: strict, total, and `Debug` never shows a token.

use std::sync::Arc;

use tokenward_core::IssuerScope;
use tokenward_refresh::{FamilyId, MemoryRefreshStore, RefreshEngine, RefreshToken};
use tokenward_revocation::MemoryRevocationStore;

use super::{mint, sub};

fn check(input: &str, valid: bool) {
    assert_eq!(RefreshToken::parse(input).is_some(), valid, "{input:?}");
}

fn engine() -> RefreshEngine {
    RefreshEngine::new(
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(MemoryRevocationStore::new()),
        IssuerScope::new("https://auth.example.com"),
    )
}

#[tokio::test]
async fn parsing_is_strict() {
    let token = engine()
        .issue(&sub("alice"), mint)
        .await
        .unwrap()
        .refresh_token;
    let s = token.expose();
    assert_eq!(s.len(), tokenward_refresh::TOKEN_LEN);
    check(s, true);
    let body = &s[4..];
    let cases: Vec<(String, bool)> = vec![
        (String::new(), false),
        ("twr_".into(), false),
        (format!("TWR_{body}"), false),
        (format!("twx_{body}"), false),
        (format!("{s}="), false),
        (format!("{s}A"), false),
        (s[..s.len() - 1].to_owned(), false),
        (format!("twr_+{}", &body[1..]), false),
        (format!("twr_{}", "A".repeat(64)), true),
        (format!("twr_{}", "/".repeat(64)), false),
        (format!("twr_{}", " ".repeat(64)), false),
        (format!("twr_{}", "é".repeat(32)), false),
        // 48 bytes are exactly 64 characters: no unused bits, any alphabet character is
        // canonical in last place.
        (format!("twr_{}B", "A".repeat(63)), true),
        ("x".repeat(100_000), false),
    ];
    for (input, valid) in cases {
        check(&input, valid);
    }
    let parsed = RefreshToken::parse(s).unwrap();
    assert_eq!(parsed.family_id(), token.family_id());
    assert!(!format!("{token:?}").contains(body));
}

#[test]
fn family_ids_are_strict() {
    for (input, valid) in [
        ("AAAAAAAAAAAAAAAAAAAAAA", true),
        ("AAAAAAAAAAAAAAAAAAAAAB", false), // non-canonical trailing bits
        ("AAAAAAAAAAAAAAAAAAAAA", false),
        ("AAAAAAAAAAAAAAAAAAAAAAA", false),
        ("AAAAAAAAAAAAAAAAAAAAA=", false),
        ("AAAAAAAAAAAAAAAAAAAA+A", false),
        ("", false),
    ] {
        assert_eq!(FamilyId::parse(input).is_some(), valid, "{input:?}");
    }
}
