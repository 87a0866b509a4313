//! `KeySet::load_jwks` / `from_jwks_json` and `Key::from_jwk_json` on arbitrary text.
//!
//! Whatever loads must round-trip: the exported public JWKS (and the `oct` secrets) load
//! again into the same keys and export to the same document, and a strict load takes every
//! key of the input, skips it with a reason, or fails.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenward_claims::jwk::JwkSet;
use tokenward_claims::{JwksOptions, Key, KeySet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(load) = KeySet::load_jwks(text.as_bytes(), &JwksOptions::new()) {
        // Strict: every key of the document is in the set or skipped with a reason (keys for
        // encryption, key types tokenward does not verify with) — none silently dropped.
        // (Counted without building values: JSON allows numbers like 1e999, which a
        // `serde_json::Value` refuses but a skipped member may hold.)
        #[derive(serde::Deserialize)]
        struct Listed {
            keys: Vec<serde::de::IgnoredAny>,
        }
        let listed: Listed = serde_json::from_str(text).expect("a loaded JWKS has `keys`");
        let set = load.keys;
        assert_eq!(
            set.len() + load.skipped.len(),
            listed.keys.len(),
            "keys dropped by a strict load"
        );
        assert!(
            !set.is_empty() || load.skipped.is_empty(),
            "a document whose every key is skipped is an error"
        );
        let again = KeySet::from_jwks_json(text).expect("the same document loads again");
        assert_eq!(again.len(), set.len(), "from_jwks_json is load_jwks");

        let public = set.public_jwks();
        let again = reload(&public);
        assert_eq!(
            again.len(),
            set.iter().filter(|k| !k.is_symmetric()).count()
        );
        assert_eq!(sorted(&again.public_jwks()), sorted(&public), "public JWKS");
        for key in again.iter() {
            let original = set.get(key.kid()).expect("same kids");
            assert_eq!(key.algorithm(), original.algorithm(), "{}", key.kid());
            assert!(!key.can_sign(), "a public JWKS gave a signing key");
        }

        let secrets = set.dangerous_secret_jwks();
        let again = reload(&secrets);
        assert_eq!(again.len(), set.iter().filter(|k| k.is_symmetric()).count());
        assert_eq!(sorted(&again.dangerous_secret_jwks()), sorted(&secrets));
    }

    if let Ok(key) = Key::from_jwk_json(text, None) {
        let exported = key
            .public_jwk()
            .or_else(|| key.dangerous_secret_jwk())
            .expect("a key exports as public or secret JWK");
        let again = Key::from_jwk(&exported, None, None).expect("an exported JWK loads");
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.algorithm(), key.algorithm());
        assert_eq!(again.is_symmetric(), key.is_symmetric());
        let re_exported = again
            .public_jwk()
            .or_else(|| again.dangerous_secret_jwk())
            .expect("exports");
        assert_eq!(to_json(&re_exported), to_json(&exported));
    }
});

fn reload(set: &JwkSet) -> KeySet {
    let json = serde_json::to_string(set).expect("a JwkSet serializes");
    KeySet::from_jwks_json(&json).expect("an exported JWKS loads")
}

/// The keys of `set` as JSON values, in `kid` order (a key set has no order of its own).
fn sorted(set: &JwkSet) -> Vec<Value> {
    let mut keys: Vec<Value> = set.keys.iter().map(to_json).collect();
    keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
    keys
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializes")
}
