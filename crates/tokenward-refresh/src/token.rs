//! Refresh tokens, family ids, token hashes and the sealed (encrypted) blobs stores hold.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::RefreshError;

/// The prefix of every refresh token, so secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "twr_";

/// Random bytes in a family id (128 bits).
const FAMILY_ID_BYTES: usize = 16;
/// Length of a family id: URL-safe base64 of [`FAMILY_ID_BYTES`], no padding.
const FAMILY_ID_LEN: usize = 22;
/// Random secret bytes in a refresh token (256 bits).
const SECRET_BYTES: usize = 32;
/// Length of a token body: URL-safe base64 of family id bytes + secret, no padding.
const BODY_LEN: usize = 64;
/// Length of a whole refresh token.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + BODY_LEN;

/// The HKDF-SHA256 salt of every key derived from a refresh token.
pub const HKDF_SALT: &[u8] = b"tokenward-refresh/v1";
/// HKDF `info` of the key that seals a successor under its predecessor.
pub const INFO_SUCCESSOR: &[u8] = b"tokenward-refresh/v1 successor";
/// HKDF `info` prefix of the key that seals an idempotent response (followed by the
/// idempotency key's length as one byte and the key itself).
pub const INFO_RESPONSE: &[u8] = b"tokenward-refresh/v1 response";
/// Domain separation of the stored idempotency-key hash.
const IDEMPOTENCY_KEY_DOMAIN: &[u8] = b"tokenward-refresh/v1 idempotency-key";

/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

fn is_url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The id of a refresh-token family: 128 random bits, URL-safe base64 (22 characters). It
/// is the `sid` of every access token issued from the family, and is not a secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(String);

impl FamilyId {
    /// A new random family id.
    pub(crate) fn generate(rng: &SystemRandom) -> Result<Self, RefreshError> {
        let mut bytes = [0u8; FAMILY_ID_BYTES];
        rng.fill(&mut bytes).map_err(|_| RefreshError::Crypto)?;
        Ok(FamilyId(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Parses a family id (e.g. the `sid` of an access token). Strict: exactly 22 URL-safe
    /// base64 characters that decode canonically; never panics.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != FAMILY_ID_LEN || !s.bytes().all(is_url_safe) {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        (bytes.len() == FAMILY_ID_BYTES && URL_SAFE_NO_PAD.encode(&bytes) == s)
            .then(|| FamilyId(s.to_owned()))
    }

    /// The id as a string (the access tokens' `sid`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FamilyId({})", self.0)
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An opaque refresh token: `twr_` followed by 64 URL-safe base64 characters encoding the
/// family id (128 bits) and a secret (256 bits from the system RNG).
///
/// `Debug` never shows the token. [`expose`](Self::expose) gives the string to send to the
/// client.
/// Equality compares the tokens' SHA-256 hashes in constant time.
#[derive(Clone)]
pub struct RefreshToken {
    token: String,
    family: FamilyId,
}

impl RefreshToken {
    /// A new token of `family`.
    pub(crate) fn generate(rng: &SystemRandom, family: &FamilyId) -> Result<Self, RefreshError> {
        let mut raw = [0u8; FAMILY_ID_BYTES + SECRET_BYTES];
        let id = URL_SAFE_NO_PAD
            .decode(family.as_str())
            .map_err(|_| RefreshError::Crypto)?;
        let (id_part, secret) = raw.split_at_mut(FAMILY_ID_BYTES);
        if id.len() != id_part.len() {
            return Err(RefreshError::Crypto);
        }
        id_part.copy_from_slice(&id);
        rng.fill(secret).map_err(|_| RefreshError::Crypto)?;
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw, &mut token);
        Ok(RefreshToken {
            token,
            family: family.clone(),
        })
    }

    /// Parses a token a client presented. Strict and total: exactly [`TOKEN_LEN`] bytes, the
    /// `twr_` prefix, the URL-safe base64 alphabet, canonical encoding. Never panics.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != TOKEN_LEN {
            return None;
        }
        let body = s.strip_prefix(TOKEN_PREFIX)?;
        if !body.bytes().all(is_url_safe) {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
        if raw.len() != FAMILY_ID_BYTES + SECRET_BYTES || URL_SAFE_NO_PAD.encode(&raw) != body {
            return None;
        }
        let id = raw.get(..FAMILY_ID_BYTES)?;
        Some(RefreshToken {
            token: s.to_owned(),
            family: FamilyId(URL_SAFE_NO_PAD.encode(id)),
        })
    }

    /// The token string, to hand to the client. Never log it.
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// The family this token belongs to.
    pub fn family_id(&self) -> &FamilyId {
        &self.family
    }

    /// The hash a store keeps instead of the token.
    pub fn hash(&self) -> TokenHash {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, self.token.as_bytes()).as_ref());
        TokenHash(out)
    }

    /// Seals `plaintext` under a key derived from this token (see the crate docs).
    pub(crate) fn seal(
        &self,
        rng: &SystemRandom,
        info: &[&[u8]],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Sealed, RefreshError> {
        let key = self.key(info)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| RefreshError::Crypto)?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| RefreshError::Crypto)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(Sealed(out))
    }

    /// Opens a blob sealed by [`seal`](Self::seal) with the same token, info and aad.
    pub(crate) fn open(
        &self,
        info: &[&[u8]],
        aad: &[u8],
        sealed: &Sealed,
    ) -> Result<Vec<u8>, RefreshError> {
        let key = self.key(info)?;
        let (nonce, ciphertext) = sealed
            .0
            .split_at_checked(NONCE_LEN)
            .ok_or(RefreshError::SealedDataInvalid)?;
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| RefreshError::SealedDataInvalid)?;
        let mut buf = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| RefreshError::SealedDataInvalid)?;
        Ok(plain.to_vec())
    }

    fn key(&self, info: &[&[u8]]) -> Result<LessSafeKey, RefreshError> {
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(self.token.as_bytes());
        let okm = prk
            .expand(info, &AES_256_GCM)
            .map_err(|_| RefreshError::Crypto)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }

    /// The stored hash of an idempotency key presented with this token.
    pub(crate) fn idempotency_key_hash(&self, key: &str) -> TokenHash {
        let mut ctx = ring::digest::Context::new(&SHA256);
        ctx.update(IDEMPOTENCY_KEY_DOMAIN);
        ctx.update(self.token.as_bytes());
        ctx.update(key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        TokenHash(out)
    }
}

impl PartialEq for RefreshToken {
    fn eq(&self, other: &Self) -> bool {
        self.hash().ct_eq(&other.hash())
    }
}

impl Eq for RefreshToken {}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("family", &self.family)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// SHA-256 of a refresh token (or of an idempotency key bound to one): what stores keep.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Constant-time equality: every byte is compared, with no early exit (ring's own
    /// `verify_slices_are_equal` is deprecated for external use).
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Ciphertext a store holds and hands back verbatim: a 12-byte nonce followed by an
/// AES-256-GCM ciphertext and tag. Only the holder of the token it was sealed under can open
/// it. `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl Sealed {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] bytes.
pub(crate) fn validate_idempotency_key(key: &str) -> Result<(), RefreshError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(RefreshError::InvalidIdempotencyKey);
    }
    Ok(())
}

/// Encodes a response (refresh token, access token) for sealing: each as a 4-byte
/// big-endian length followed by the bytes.
pub(crate) fn encode_response(refresh: &str, access: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + refresh.len() + access.len());
    for part in [refresh, access] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Decodes [`encode_response`]'s output.
pub(crate) fn decode_response(bytes: &[u8]) -> Option<(String, String)> {
    fn take(bytes: &[u8]) -> Option<(String, &[u8])> {
        let (len, rest) = bytes.split_at_checked(4)?;
        let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        let (part, rest) = rest.split_at_checked(len)?;
        Some((String::from_utf8(part.to_vec()).ok()?, rest))
    }
    let (refresh, rest) = take(bytes)?;
    let (access, rest) = take(rest)?;
    rest.is_empty().then_some((refresh, access))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_round_trip() {
        let rng = SystemRandom::new();
        let family = FamilyId::generate(&rng).unwrap();
        assert_eq!(FamilyId::parse(family.as_str()), Some(family.clone()));
        let token = RefreshToken::generate(&rng, &family).unwrap();
        assert_eq!(token.expose().len(), TOKEN_LEN);
        assert!(token.expose().starts_with("twr_"));
        let parsed = RefreshToken::parse(token.expose()).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.family_id(), &family);
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn seal_opens_only_with_the_same_token_and_info() {
        let rng = SystemRandom::new();
        let family = FamilyId::generate(&rng).unwrap();
        let a = RefreshToken::generate(&rng, &family).unwrap();
        let b = RefreshToken::generate(&rng, &family).unwrap();
        let sealed = a.seal(&rng, &[INFO_SUCCESSOR], b"aad", b"secret").unwrap();
        assert_eq!(
            a.open(&[INFO_SUCCESSOR], b"aad", &sealed).unwrap(),
            b"secret"
        );
        assert!(b.open(&[INFO_SUCCESSOR], b"aad", &sealed).is_err());
        assert!(a.open(&[INFO_RESPONSE], b"aad", &sealed).is_err());
        assert!(a.open(&[INFO_SUCCESSOR], b"other", &sealed).is_err());
        assert!(
            a.open(&[INFO_SUCCESSOR], b"aad", &Sealed(vec![1, 2]))
                .is_err()
        );
    }

    #[test]
    fn responses_round_trip() {
        let bytes = encode_response("twr_x", "a.b.c");
        assert_eq!(
            decode_response(&bytes),
            Some(("twr_x".into(), "a.b.c".into()))
        );
        assert_eq!(decode_response(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_response(&[0, 0, 0, 9]), None);
    }
}
