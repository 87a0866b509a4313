//! Strict base64url (RFC 4648 §5, no padding), as JWS compact serialization requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Decodes unpadded base64url, rejecting padding, non-alphabet bytes, and non-canonical
/// encodings (set trailing bits), so one token has exactly one accepted spelling.
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    // The `URL_SAFE_NO_PAD` engine rejects `=` padding and trailing bits that are not zero.
    URL_SAFE_NO_PAD.decode(input).ok()
}

pub(crate) fn encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_only() {
        assert_eq!(decode(b"YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode(b"YR"), None, "non-zero trailing bits");
        assert_eq!(decode(b"YQ=="), None, "padding");
        assert_eq!(decode(b"Y+"), None, "standard alphabet");
        assert_eq!(decode(b"Y"), None, "impossible length");
        assert_eq!(decode(b"").as_deref(), Some(&b""[..]));
    }
}
