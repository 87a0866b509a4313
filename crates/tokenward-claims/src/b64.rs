//! Strict base64url (RFC 4648 §5, no padding), as JWS compact serialization requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Decodes unpadded base64url, rejecting padding, non-alphabet bytes, and non-canonical
/// encodings (set trailing bits), so one token has exactly one accepted spelling.
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    // The `URL_SAFE_NO_PAD` engine rejects `=` padding and trailing bits that are not zero.
    URL_SAFE_NO_PAD.decode(input).ok()
}

/// Decoded bytes: in place when they fit in `N` bytes, else on the heap.
pub(crate) enum Decoded<const N: usize> {
    Inline([u8; N], usize),
    Heap(Vec<u8>),
}

impl<const N: usize> std::ops::Deref for Decoded<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Decoded::Inline(buf, len) => buf.get(..*len).unwrap_or_default(),
            Decoded::Heap(bytes) => bytes,
        }
    }
}

/// [`decode`] without a heap allocation when the result fits in `N` bytes (a header, a
/// signature: small, and decoded on every verification). Accepts and rejects exactly what
/// [`decode`] does.
pub(crate) fn decode_inline<const N: usize>(input: &[u8]) -> Option<Decoded<N>> {
    // The estimate is at least the decoded length, which `decode_slice` requires room for.
    if base64::decoded_len_estimate(input.len()) > N {
        return decode(input).map(Decoded::Heap);
    }
    let mut buf = [0u8; N];
    let len = URL_SAFE_NO_PAD.decode_slice(input, &mut buf).ok()?;
    Some(Decoded::Inline(buf, len))
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

    /// In place or on the heap, the same bytes and the same refusals as `decode`.
    #[test]
    fn inline_decoding_is_decoding() {
        let long = encode(&[7u8; 40]);
        for input in [
            &b"YQ"[..],
            b"YR",
            b"YQ==",
            b"Y+",
            b"Y",
            b"",
            b"eyJhbGciOiJIUzI1NiJ9",
            long.as_bytes(),
        ] {
            let expected = decode(input);
            let inline = decode_inline::<16>(input);
            assert_eq!(inline.as_deref(), expected.as_deref(), "{input:?}");
            assert_eq!(
                matches!(inline, Some(Decoded::Heap(_))),
                input.len() > 20,
                "{input:?}: in place exactly when it fits"
            );
        }
    }
}
