//! tokenward's crypto provider: which library it verifies and signs with ([`PROVIDER_NAME`]),
//! and a [`CryptoProvider`] for `jsonwebtoken` 11 built on it.
//!
//! The library is chosen at build time, the way rustls chooses: *ring* by default (feature
//! `ring`), aws-lc-rs with the feature `aws-lc-rs` (which wins when both are enabled). Both
//! run the same key checks and the same attack suite; docs/security.md says what each needs
//! to build, how to get aws-lc-rs's FIPS module, and docs/benchmarks.md how fast each is.
//!
//! tokenward's own verification and signing never go through `jsonwebtoken`'s process-wide
//! provider: keys are validated once into [`Key`]s that call the chosen library directly.
//! That makes tokenward behave the same whatever `jsonwebtoken` backend features a dependency
//! graph enables — `jsonwebtoken` itself panics at run time when both or neither of
//! `rust_crypto` and `aws_lc_rs` are enabled.
//!
//! Code that also calls `jsonwebtoken::encode`/`decode` directly can install [`PROVIDER`] so
//! that those calls use the same library and never hit that panic:
//!
//! ```
//! tokenward_claims::crypto::install_provider();
//! // Now jsonwebtoken::decode uses tokenward's provider, whatever features are enabled.
//! ```

use crate::key::{Key, KeyError, ecdsa_signing};
use crate::provider::backend::digest;
use crate::provider::backend::signature::{self as sig, KeyPair as _};
use crate::provider::ecdsa_pair_from_pkcs8;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};

/// The library tokenward verifies and signs with in this build: `"ring"` (the default) or
/// `"aws-lc-rs"` (feature `aws-lc-rs`).
pub const PROVIDER_NAME: &str = crate::provider::NAME;

/// The kid given to keys built from `jsonwebtoken` key objects (which have none).
const PROVIDER_KID: &str = "jsonwebtoken";

/// `jsonwebtoken`'s provider interface on tokenward's keys (so on [`PROVIDER_NAME`]'s
/// library). Install it with [`install_provider`] or `PROVIDER.install_default()`.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_components_from_private_key,
        compute_digest,
    },
};

/// The name [`PROVIDER`] had when *ring* was the only library; it is the same provider, on
/// whichever library the build chose.
pub use PROVIDER as RING_PROVIDER;

/// Installs [`PROVIDER`] as `jsonwebtoken`'s process-wide provider.
///
/// Returns `true` if it is now installed (by this call or an earlier one), `false` if a
/// different provider was installed first — in which case direct `jsonwebtoken` calls use
/// that one. tokenward's own validation is unaffected either way.
pub fn install_provider() -> bool {
    match PROVIDER.install_default() {
        Ok(()) => true,
        Err(existing) => std::ptr::eq(existing, &PROVIDER),
    }
}

/// The name [`install_provider`] had when *ring* was the only library.
#[deprecated(note = "use install_provider: the provider is not always ring")]
pub fn install_ring_provider() -> bool {
    install_provider()
}

fn key_error(e: KeyError) -> Error {
    let kind = match e {
        KeyError::Weak(_) | KeyError::Rejected(_) | KeyError::Malformed(_) => {
            ErrorKind::InvalidKeyFormat
        }
        KeyError::AlgorithmMismatch { .. } => ErrorKind::InvalidAlgorithm,
        _ => ErrorKind::InvalidKeyFormat,
    };
    kind.into()
}

fn signing_key(alg: Algorithm, key: &EncodingKey) -> std::result::Result<Key, KeyError> {
    let bytes = key.as_bytes();
    match key.family() {
        AlgorithmFamily::Hmac => Key::hmac(PROVIDER_KID, alg, bytes),
        // jsonwebtoken stores RSA private keys as PKCS#1; accept PKCS#8 as well.
        AlgorithmFamily::Rsa => Key::from_pkcs1_private_der(PROVIDER_KID, alg, bytes)
            .or_else(|_| Key::from_pkcs8_der(PROVIDER_KID, alg, bytes)),
        AlgorithmFamily::Ec | AlgorithmFamily::Ed => Key::from_pkcs8_der(PROVIDER_KID, alg, bytes),
    }
}

fn verifying_key(alg: Algorithm, key: &DecodingKey) -> std::result::Result<Key, KeyError> {
    match (key.family(), key.kind()) {
        (_, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Key::rsa_public(PROVIDER_KID, alg, n, e)
        }
        (AlgorithmFamily::Hmac, DecodingKeyKind::SecretOrDer(secret)) => {
            Key::hmac(PROVIDER_KID, alg, secret)
        }
        (AlgorithmFamily::Rsa, DecodingKeyKind::SecretOrDer(der)) => {
            // PKCS#1 RSAPublicKey (what jsonwebtoken stores), or SubjectPublicKeyInfo.
            Key::from_pkcs1_public_der(PROVIDER_KID, alg, der)
                .or_else(|_| Key::from_spki_der(PROVIDER_KID, alg, der))
        }
        (AlgorithmFamily::Ec | AlgorithmFamily::Ed, DecodingKeyKind::SecretOrDer(raw)) => {
            let spki = raw_public_to_spki(alg, raw)?;
            Key::from_spki_der(PROVIDER_KID, alg, &spki)
        }
    }
}

/// Wraps a raw EC point / Ed25519 key into a SubjectPublicKeyInfo so one code path checks
/// lengths, curves and algorithms.
fn raw_public_to_spki(alg: Algorithm, raw: &[u8]) -> std::result::Result<Vec<u8>, KeyError> {
    // DER prefixes of SubjectPublicKeyInfo for each key type, up to the BIT STRING contents.
    const P256: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const P384: &[u8] = &[
        0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
        0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
    ];
    const ED25519: &[u8] = &[
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let (prefix, len) = match alg {
        Algorithm::ES256 => (P256, 65),
        Algorithm::ES384 => (P384, 97),
        Algorithm::EdDSA => (ED25519, 32),
        other => {
            return Err(KeyError::AlgorithmMismatch {
                alg: other,
                reason: "not an EC or Ed25519 algorithm".into(),
            });
        }
    };
    if raw.len() != len {
        return Err(KeyError::Malformed(format!(
            "public key must be {len} bytes, got {}",
            raw.len()
        )));
    }
    let mut der = prefix.to_vec();
    der.extend_from_slice(raw);
    Ok(der)
}

struct KeySigner(Key);

impl Signer<Vec<u8>> for KeySigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        self.0.sign(msg).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for KeySigner {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

struct KeyVerifier(Key);

impl Verifier<Vec<u8>> for KeyVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        if self.0.verify(msg, signature) {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for KeyVerifier {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(KeySigner(
        signing_key(*alg, key).map_err(key_error)?,
    )))
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(KeyVerifier(
        verifying_key(*alg, key).map_err(key_error)?,
    )))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = sig::RsaKeyPair::from_der(der)
        .or_else(|_| sig::RsaKeyPair::from_pkcs8(der))
        .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    Ok((c.n, c.e))
}

fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    use pkcs1::der::Decode as _;
    let key =
        pkcs1::RsaPublicKey::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    Ok((
        key.modulus.as_bytes().to_vec(),
        key.public_exponent.as_bytes().to_vec(),
    ))
}

fn ec_components_from_private_key(
    der: &[u8],
    alg: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let curve = match alg {
        Algorithm::ES256 => EllipticCurve::P256,
        Algorithm::ES384 => EllipticCurve::P384,
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let signing = ecdsa_signing(alg).map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    let pair = ecdsa_pair_from_pkcs8(signing, der).map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    let point = pair.public_key().as_ref();
    let coords = point.get(1..).ok_or(ErrorKind::InvalidEcdsaKey)?;
    let (x, y) = coords.split_at(coords.len() / 2);
    Ok((curve, x.to_vec(), y.to_vec()))
}

fn ed_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}
