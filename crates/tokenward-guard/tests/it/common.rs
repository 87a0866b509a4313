//! The key and issuer every Guard test signs with (shared with `tests/audit.rs`).

use tokenward_claims::{Algorithm, Key, KeySet, TokenIssuer};

/// One HS256 key, `k1`.
pub fn keys() -> KeySet {
    KeySet::single(Key::hmac("k1", Algorithm::HS256, &[9u8; 32]).unwrap())
}

/// Issues tokens for `iss` / `aud` with `keys`.
pub fn issuer(keys: &KeySet) -> TokenIssuer {
    TokenIssuer::builder(keys.clone(), "iss")
        .audience("aud")
        .build()
        .unwrap()
}
