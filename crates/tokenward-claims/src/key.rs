//! Keys: one `kid`, bound to exactly one algorithm, backed by the crate's crypto provider
//! (*ring* by default, aws-lc-rs with the `aws-lc-rs` feature).
//!
//! This module holds the key itself — signing, verification, JWK export and key generation;
//! `load` turns PEM, DER and JWK input into keys, checking each once.

use std::fmt;

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    OctetKeyParameters, OctetKeyType, PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use zeroize::Zeroizing;

use crate::provider::Verifier;
use crate::provider::backend::hmac;
use crate::provider::backend::rand::{self, SystemRandom};
use crate::provider::backend::signature::{self as sig, KeyPair as _};

use crate::alg;
use crate::b64;

mod load;

pub(crate) use load::json_error;

/// Why a key could not be loaded, generated or used.
///
/// Messages name the problem, never the key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key id is empty or too long.
    #[error("invalid kid: {0}")]
    InvalidKid(&'static str),
    /// The key material does not parse (bad PEM, bad DER, bad base64url, bad JWK).
    #[error("malformed key: {0}")]
    Malformed(String),
    /// The key parses but does not fit the algorithm it is bound to.
    #[error("key does not fit {alg:?}: {reason}")]
    AlgorithmMismatch {
        /// The algorithm the key was to be bound to.
        alg: Algorithm,
        /// What does not fit.
        reason: String,
    },
    /// The key is too weak: an RSA modulus under 2048 bits, an HMAC secret shorter than its
    /// hash output.
    #[error("key too weak: {0}")]
    Weak(String),
    /// The crypto provider (*ring* or aws-lc-rs) rejected the key.
    #[error("key rejected by the crypto provider: {0}")]
    Rejected(String),
    /// A JWK that cannot be used for signatures (no `alg` where it is ambiguous, an encryption
    /// algorithm, `use: enc`, unsupported curve or key type).
    #[error("unusable JWK: {0}")]
    UnusableJwk(String),
    /// The operation needs a private key or secret this key does not hold.
    #[error("key `{kid}` cannot sign (verification only)")]
    CannotSign {
        /// The key's id.
        kid: String,
    },
    /// The operation is not supported for this algorithm.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Rng,
}

/// The largest `kid` tokenward accepts, in bytes.
pub const MAX_KID_LEN: usize = 256;

/// A verification (and possibly signing) key with its `kid` and its one algorithm.
///
/// Keys are immutable and validated once, at load time: size, curve and algorithm binding.
/// HMAC keys and private keys are held as the crypto provider's key objects. With aws-lc-rs,
/// public keys are parsed once, at load time; *ring* 0.17 has no type for a parsed public
/// key, so with it RSA, EC and Ed25519 public keys are kept as validated bytes that ring
/// parses on each verification (as every ring-based verifier does). `Debug` output never shows
/// secret or private material.
pub struct Key {
    kid: String,
    alg: Algorithm,
    material: Material,
}

#[cfg_attr(
    feature = "aws-lc-rs",
    expect(
        clippy::large_enum_variant,
        reason = "aws-lc-rs keeps HMAC's prepared context inline (~1.2 KiB); a key lives once \
                  per kid in its key set, and boxing it would add an indirection to every \
                  HMAC verification"
    )
)]
enum Material {
    Hmac {
        key: hmac::Key,
        secret: Zeroizing<Vec<u8>>,
    },
    Rsa {
        public: sig::RsaPublicKeyComponents<Vec<u8>>,
        verifier: Verifier,
        pair: Option<sig::RsaKeyPair>,
    },
    Ec {
        point: Vec<u8>,
        verifier: Verifier,
        pair: Option<sig::EcdsaKeyPair>,
    },
    Ed {
        public: Vec<u8>,
        verifier: Verifier,
        pair: Option<sig::Ed25519KeyPair>,
    },
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("can_sign", &self.can_sign())
            .finish_non_exhaustive()
    }
}

fn mismatch(alg: Algorithm, reason: impl Into<String>) -> KeyError {
    KeyError::AlgorithmMismatch {
        alg,
        reason: reason.into(),
    }
}

impl Key {
    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key is bound to.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether the key holds a private key or secret and can sign.
    pub fn can_sign(&self) -> bool {
        match &self.material {
            Material::Hmac { .. } => true,
            Material::Rsa { pair, .. } => pair.is_some(),
            Material::Ec { pair, .. } => pair.is_some(),
            Material::Ed { pair, .. } => pair.is_some(),
        }
    }

    /// Whether this is a symmetric (HMAC) key, whose "public" form is the secret itself.
    pub fn is_symmetric(&self) -> bool {
        matches!(self.material, Material::Hmac { .. })
    }

    /// Verifies `signature` over `message` with this key and its algorithm.
    ///
    /// HMAC comparison is constant-time (in the provider). ECDSA signatures must be in the
    /// fixed-width `r || s` form JWS uses; zero or out-of-range `r`/`s` are rejected
    /// (CVE-2022-21449).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hmac { key, .. } => hmac::verify(key, message, signature).is_ok(),
            Material::Rsa { verifier, .. }
            | Material::Ec { verifier, .. }
            | Material::Ed { verifier, .. } => verifier.verify(message, signature),
        }
    }

    /// Signs `message` with this key and its algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let cannot = || KeyError::CannotSign {
            kid: self.kid.clone(),
        };
        match &self.material {
            Material::Hmac { key, .. } => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Material::Rsa { pair, .. } => {
                let pair = pair.as_ref().ok_or_else(cannot)?;
                let (_, padding) = rsa_algorithms(self.alg).ok_or_else(cannot)?;
                let mut out = vec![0; pair.public_key().modulus_len()];
                pair.sign(padding, &SystemRandom::new(), message, &mut out)
                    .map_err(|_| KeyError::Rng)?;
                Ok(out)
            }
            Material::Ec { pair, .. } => {
                let pair = pair.as_ref().ok_or_else(cannot)?;
                let s = pair
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| KeyError::Rng)?;
                Ok(s.as_ref().to_vec())
            }
            Material::Ed { pair, .. } => Ok(pair
                .as_ref()
                .ok_or_else(cannot)?
                .sign(message)
                .as_ref()
                .to_vec()),
        }
    }

    /// The public part as a JWK (with `kid`, `alg` and `"use": "sig"`), or `None` for an HMAC
    /// key, which has no public part.
    pub fn public_jwk(&self) -> Option<Jwk> {
        let algorithm = match &self.material {
            Material::Hmac { .. } => return None,
            Material::Rsa { public, .. } => AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: b64::encode(&public.n),
                e: b64::encode(&public.e),
            }),
            Material::Ec { point, .. } => {
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: if self.alg == Algorithm::ES384 {
                        EllipticCurve::P384
                    } else {
                        EllipticCurve::P256
                    },
                    x: b64::encode(x),
                    y: b64::encode(y),
                })
            }
            Material::Ed { public, .. } => {
                AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: b64::encode(public),
                })
            }
        };
        Some(Jwk {
            common: self.common_params(),
            algorithm,
        })
    }

    /// An HMAC key as an `oct` JWK, **including the secret**. Only for distributing a shared
    /// secret to the services that must hold it; `None` for asymmetric keys.
    pub fn dangerous_secret_jwk(&self) -> Option<Jwk> {
        match &self.material {
            Material::Hmac { secret, .. } => Some(Jwk {
                common: self.common_params(),
                algorithm: AlgorithmParameters::OctetKey(OctetKeyParameters {
                    key_type: OctetKeyType::Octet,
                    value: b64::encode(secret),
                }),
            }),
            _ => None,
        }
    }

    fn common_params(&self) -> CommonParameters {
        CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::from(self.alg)),
            key_id: Some(self.kid.clone()),
            ..CommonParameters::default()
        }
    }
}

/// The provider's algorithms for an RSA JWS algorithm: the verification parameters and the signing
/// padding (PKCS#1 v1.5 for RS*, PSS for PS*; 2048 to 8192 bits).
pub(crate) fn rsa_algorithms(
    alg: Algorithm,
) -> Option<(&'static sig::RsaParameters, &'static dyn sig::RsaEncoding)> {
    let algorithms: (&'static sig::RsaParameters, &'static dyn sig::RsaEncoding) = match alg {
        Algorithm::RS256 => (&sig::RSA_PKCS1_2048_8192_SHA256, &sig::RSA_PKCS1_SHA256),
        Algorithm::RS384 => (&sig::RSA_PKCS1_2048_8192_SHA384, &sig::RSA_PKCS1_SHA384),
        Algorithm::RS512 => (&sig::RSA_PKCS1_2048_8192_SHA512, &sig::RSA_PKCS1_SHA512),
        Algorithm::PS256 => (&sig::RSA_PSS_2048_8192_SHA256, &sig::RSA_PSS_SHA256),
        Algorithm::PS384 => (&sig::RSA_PSS_2048_8192_SHA384, &sig::RSA_PSS_SHA384),
        Algorithm::PS512 => (&sig::RSA_PSS_2048_8192_SHA512, &sig::RSA_PSS_SHA512),
        _ => return None,
    };
    Some(algorithms)
}

/// The provider's algorithms for an ECDSA JWS algorithm: verification and signing, both in the
/// fixed-width `r || s` form JWS uses.
pub(crate) fn ecdsa_algorithms(
    alg: Algorithm,
) -> Option<(
    &'static sig::EcdsaVerificationAlgorithm,
    &'static sig::EcdsaSigningAlgorithm,
)> {
    match alg {
        Algorithm::ES256 => Some((
            &sig::ECDSA_P256_SHA256_FIXED,
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        )),
        Algorithm::ES384 => Some((
            &sig::ECDSA_P384_SHA384_FIXED,
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        )),
        _ => None,
    }
}

pub(crate) fn ecdsa_signing(
    alg: Algorithm,
) -> Result<&'static sig::EcdsaSigningAlgorithm, KeyError> {
    ecdsa_algorithms(alg)
        .map(|(_, signing)| signing)
        .ok_or_else(|| mismatch(alg, "an EC private key needs ES256 or ES384"))
}

/// Generates a new private key as PKCS#8 DER for `ES256`, `ES384` or `EdDSA`, using the
/// crypto provider's system random number generator.
///
/// RSA key generation is not available here (ring has none); `tokenward keygen --alg RS256`
/// provides it.
/// For HMAC use [`generate_secret`].
pub fn generate_pkcs8(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let rng = SystemRandom::new();
    let doc = match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            sig::EcdsaKeyPair::generate_pkcs8(ecdsa_signing(alg)?, &rng)
                .map_err(|_| KeyError::Rng)?
        }
        Algorithm::EdDSA => sig::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Rng)?,
        other => {
            return Err(KeyError::Unsupported(format!(
                "generating {} keys in tokenward-claims",
                alg::name(other)
            )));
        }
    };
    Ok(Zeroizing::new(doc.as_ref().to_vec()))
}

/// Generates a random HMAC secret of the algorithm's hash length × 2 (64/96/128 bytes).
pub fn generate_secret(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let len = match alg {
        Algorithm::HS256 => 64,
        Algorithm::HS384 => 96,
        Algorithm::HS512 => 128,
        other => return Err(mismatch(other, "only HS* algorithms use shared secrets")),
    };
    let mut secret = Zeroizing::new(vec![0u8; len]);
    rand::SecureRandom::fill(&SystemRandom::new(), &mut secret).map_err(|_| KeyError::Rng)?;
    Ok(secret)
}
