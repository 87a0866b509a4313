//! The cryptography library keys verify and sign with: one internal interface over *ring*
//! (feature `ring`, the default) and aws-lc-rs (feature `aws-lc-rs`).
//!
//! Both libraries expose the same API shape (aws-lc-rs keeps *ring*'s), so the rest of the
//! crate names the library once, as [`backend`], and calls its `hmac`, `signature`, `rand`
//! and `digest` modules. What differs lives here and nowhere else:
//!
//! - [`Verifier`]: a public key ready to verify. aws-lc-rs parses it once, at load time
//!   (`ParsedPublicKey`): a key that does not parse is refused when it is loaded, and each
//!   verification skips the parsing. *ring* 0.17 has no parsed public-key type, so it keeps
//!   the validated bytes and parses them on each verification, as every ring-based verifier
//!   does.
//! - [`ecdsa_pair_from_pkcs8`]: *ring* takes a random number generator to build an ECDSA key
//!   pair (for its signing nonces' blinding); aws-lc-rs does not.
//!
//! When both features are enabled (a dependency graph can unify them), aws-lc-rs is used: a
//! crate that asks for it gets it even if another one left the default on.

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!(
    "tokenward-claims needs a crypto provider: enable its `ring` feature (the default) or its \
     `aws-lc-rs` feature"
);

#[cfg(feature = "aws-lc-rs")]
pub(crate) use aws_lc_rs as backend;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) use ring as backend;

use backend::signature as sig;

/// The name of the library this build verifies and signs with: `"aws-lc-rs"` or `"ring"`.
#[cfg(feature = "aws-lc-rs")]
pub const NAME: &str = "aws-lc-rs";
/// The name of the library this build verifies and signs with: `"aws-lc-rs"` or `"ring"`.
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub const NAME: &str = "ring";

/// A key the library refused, described without its material.
pub(crate) fn rejected(e: backend::error::KeyRejected) -> crate::KeyError {
    crate::KeyError::Rejected(e.to_string())
}

/// An ECDSA key pair from PKCS#8 DER.
pub(crate) fn ecdsa_pair_from_pkcs8(
    signing: &'static sig::EcdsaSigningAlgorithm,
    der: &[u8],
) -> Result<sig::EcdsaKeyPair, backend::error::KeyRejected> {
    #[cfg(feature = "aws-lc-rs")]
    {
        sig::EcdsaKeyPair::from_pkcs8(signing, der)
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        sig::EcdsaKeyPair::from_pkcs8(signing, der, &backend::rand::SystemRandom::new())
    }
}

/// A public key ready to verify signatures with one algorithm.
pub(crate) struct Verifier {
    #[cfg(feature = "aws-lc-rs")]
    key: sig::ParsedPublicKey,
    #[cfg(not(feature = "aws-lc-rs"))]
    key: RingPublic,
}

#[cfg(not(feature = "aws-lc-rs"))]
enum RingPublic {
    Rsa {
        params: &'static sig::RsaParameters,
        components: sig::RsaPublicKeyComponents<Vec<u8>>,
    },
    Raw {
        alg: &'static dyn sig::VerificationAlgorithm,
        bytes: Vec<u8>,
    },
}

impl Verifier {
    /// An RSA public key from its big-endian modulus and exponent (already checked for size
    /// and range by the caller, without leading zeros).
    pub(crate) fn rsa(
        params: &'static sig::RsaParameters,
        n: &[u8],
        e: &[u8],
    ) -> Result<Verifier, crate::KeyError> {
        let components = sig::RsaPublicKeyComponents {
            n: n.to_vec(),
            e: e.to_vec(),
        };
        #[cfg(feature = "aws-lc-rs")]
        let key = components.to_parsed_public_key(params).map_err(rejected)?;
        #[cfg(not(feature = "aws-lc-rs"))]
        let key = RingPublic::Rsa { params, components };
        Ok(Verifier { key })
    }

    /// An EC point (uncompressed) or an Ed25519 public key, as the algorithm reads it.
    pub(crate) fn raw(
        alg: &'static dyn sig::VerificationAlgorithm,
        bytes: &[u8],
    ) -> Result<Verifier, crate::KeyError> {
        #[cfg(feature = "aws-lc-rs")]
        let key = sig::ParsedPublicKey::new(alg, bytes).map_err(rejected)?;
        #[cfg(not(feature = "aws-lc-rs"))]
        let key = RingPublic::Raw {
            alg,
            bytes: bytes.to_vec(),
        };
        Ok(Verifier { key })
    }

    /// Whether `signature` is a valid signature of `message` under this key.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        #[cfg(feature = "aws-lc-rs")]
        {
            self.key.verify_sig(message, signature).is_ok()
        }
        #[cfg(not(feature = "aws-lc-rs"))]
        match &self.key {
            RingPublic::Rsa { params, components } => {
                components.verify(params, message, signature).is_ok()
            }
            RingPublic::Raw { alg, bytes } => sig::UnparsedPublicKey::new(*alg, bytes)
                .verify(message, signature)
                .is_ok(),
        }
    }
}
