//! Loading keys: PEM, PKCS#8, PKCS#1 and SubjectPublicKeyInfo DER, JWK. Each input is parsed
//! and checked once — `kid`, key type against the algorithm, size, curve, encoding — into the
//! crypto provider's objects a [`Key`] signs and verifies with.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use zeroize::Zeroizing;

use super::{
    Key, KeyError, MAX_KID_LEN, Material, ecdsa_algorithms, ecdsa_signing, mismatch, rsa_algorithms,
};
use crate::provider::backend::hmac;
use crate::provider::backend::signature::{self as sig, KeyPair as _};
use crate::provider::{Verifier, ecdsa_pair_from_pkcs8, rejected};
use crate::{alg, b64};

/// Describes a JSON error by its category and position only: serde_json's messages can quote
/// values from the document, which for a secret JWK would be key material.
pub(crate) fn json_error(what: &str, e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected structure or value type",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!(
        "{what}: {category} at line {} column {}",
        e.line(),
        e.column()
    )
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() {
        return Err(KeyError::InvalidKid("empty"));
    }
    if kid.len() > MAX_KID_LEN {
        return Err(KeyError::InvalidKid("longer than 256 bytes"));
    }
    if kid.chars().any(char::is_control) {
        return Err(KeyError::InvalidKid("contains control characters"));
    }
    Ok(())
}

impl Key {
    /// An HMAC key (`HS256`/`HS384`/`HS512`) from a shared secret.
    ///
    /// The secret must be at least as long as the hash output (32/48/64 bytes, RFC 7518 §3.2).
    pub fn hmac(kid: impl Into<String>, alg: Algorithm, secret: &[u8]) -> Result<Key, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        let (ring_alg, min) = match alg {
            Algorithm::HS256 => (hmac::HMAC_SHA256, 32),
            Algorithm::HS384 => (hmac::HMAC_SHA384, 48),
            Algorithm::HS512 => (hmac::HMAC_SHA512, 64),
            other => return Err(mismatch(other, "a shared secret can only be used with HS*")),
        };
        if secret.len() < min {
            return Err(KeyError::Weak(format!(
                "{} needs a secret of at least {min} bytes, got {}",
                alg::name(alg),
                secret.len()
            )));
        }
        Ok(Key {
            kid,
            alg,
            material: Material::Hmac {
                key: hmac::Key::new(ring_alg, secret),
                secret: Zeroizing::new(secret.to_vec()),
            },
        })
    }

    /// A key from PEM text, bound to `alg`.
    ///
    /// Accepted: `PRIVATE KEY` (PKCS#8: RSA, P-256, P-384, Ed25519), `RSA PRIVATE KEY`
    /// (PKCS#1), `PUBLIC KEY` (SubjectPublicKeyInfo) and `RSA PUBLIC KEY` (PKCS#1). For HMAC
    /// secrets use [`Key::hmac`].
    pub fn from_pem(kid: impl Into<String>, alg: Algorithm, pem: &[u8]) -> Result<Key, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        let parsed = pem::parse(pem).map_err(|e| KeyError::Malformed(format!("PEM: {e}")))?;
        let der = Zeroizing::new(parsed.contents().to_vec());
        match parsed.tag() {
            "PRIVATE KEY" => Key::from_pkcs8_der(kid, alg, &der),
            "RSA PRIVATE KEY" => Key::from_pkcs1_private_der(kid, alg, &der),
            "PUBLIC KEY" => Key::from_spki_der(kid, alg, &der),
            "RSA PUBLIC KEY" => Key::from_pkcs1_public_der(kid, alg, &der),
            "EC PRIVATE KEY" => Err(KeyError::Unsupported(
                "SEC1 `EC PRIVATE KEY`: convert it to PKCS#8 \
                 (`openssl pkcs8 -topk8 -nocrypt -in key.pem`)"
                    .into(),
            )),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Unsupported(
                "encrypted PKCS#8: decrypt it first".into(),
            )),
            other => Err(KeyError::Malformed(format!(
                "unsupported PEM label `{other}`"
            ))),
        }
    }

    /// An RSA private key from PKCS#1 `RSAPrivateKey` DER (`RSA PRIVATE KEY` PEM contents).
    pub fn from_pkcs1_private_der(
        kid: impl Into<String>,
        alg: Algorithm,
        der: &[u8],
    ) -> Result<Key, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        require_rsa(alg)?;
        let pair = sig::RsaKeyPair::from_der(der).map_err(rejected)?;
        Key::from_rsa_pair(kid, alg, pair)
    }

    /// An RSA public key from PKCS#1 `RSAPublicKey` DER (`RSA PUBLIC KEY` PEM contents).
    pub fn from_pkcs1_public_der(
        kid: impl Into<String>,
        alg: Algorithm,
        der: &[u8],
    ) -> Result<Key, KeyError> {
        let (n, e) = parse_pkcs1_public(der)?;
        Key::rsa_public(kid, alg, n, e)
    }

    /// A private key from PKCS#8 DER, bound to `alg`.
    ///
    /// The key's type is read from the document first: a key given an algorithm of another
    /// type (an Ed25519 key as `ES256`, a P-256 key as `ES384`) is a
    /// [`KeyError::AlgorithmMismatch`].
    pub fn from_pkcs8_der(
        kid: impl Into<String>,
        alg: Algorithm,
        der: &[u8],
    ) -> Result<Key, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| KeyError::Malformed(format!("PKCS#8: {e}")))?;
        match KeyType::of(&info.algorithm)?.bind(alg)? {
            KeyType::Rsa => {
                let pair = sig::RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
                Key::from_rsa_pair(kid, alg, pair)
            }
            KeyType::P256 | KeyType::P384 => {
                let signing = ecdsa_signing(alg)?;
                let pair = ecdsa_pair_from_pkcs8(signing, der).map_err(rejected)?;
                let point = pair.public_key().as_ref().to_vec();
                let mut key = Key::ec_point(kid, alg, point)?;
                if let Material::Ec { pair: slot, .. } = &mut key.material {
                    *slot = Some(pair);
                }
                Ok(key)
            }
            KeyType::Ed25519 => {
                let pair =
                    sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
                let public = pair.public_key().as_ref().to_vec();
                let mut key = Key::ed25519_public(kid, alg, public)?;
                if let Material::Ed { pair: slot, .. } = &mut key.material {
                    *slot = Some(pair);
                }
                Ok(key)
            }
        }
    }

    /// A public key from SubjectPublicKeyInfo DER (`PUBLIC KEY` PEM), bound to `alg`.
    pub fn from_spki_der(
        kid: impl Into<String>,
        alg: Algorithm,
        der: &[u8],
    ) -> Result<Key, KeyError> {
        use spki::der::Decode as _;
        let kid = kid.into();
        check_kid(&kid)?;
        let info = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| KeyError::Malformed(format!("SubjectPublicKeyInfo: {e}")))?;
        let bits = info.subject_public_key.as_bytes().ok_or_else(|| {
            KeyError::Malformed("public key bit string is not byte-aligned".into())
        })?;
        match KeyType::of(&info.algorithm)?.bind(alg)? {
            KeyType::Rsa => {
                let (n, e) = parse_pkcs1_public(bits)?;
                Key::rsa_public(kid, alg, n, e)
            }
            KeyType::P256 | KeyType::P384 => Key::ec_point(kid, alg, bits.to_vec()),
            KeyType::Ed25519 => Key::ed25519_public(kid, alg, bits.to_vec()),
        }
    }

    /// An RSA public key from its big-endian modulus and exponent.
    ///
    /// The modulus must be 2048 to 8192 bits; the exponent odd, at least 3, at most 2³³−1.
    pub fn rsa_public(
        kid: impl Into<String>,
        alg: Algorithm,
        n: &[u8],
        e: &[u8],
    ) -> Result<Key, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        require_rsa(alg)?;
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_len(n);
        if bits < 2048 {
            return Err(KeyError::Weak(format!(
                "RSA modulus of {bits} bits; at least 2048 needed"
            )));
        }
        if bits > 8192 {
            return Err(KeyError::Malformed(format!(
                "RSA modulus of {bits} bits; at most 8192"
            )));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err(KeyError::Malformed("RSA modulus is even".into()));
        }
        let e_value = match e.len() {
            1..=5 => e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
            _ => return Err(KeyError::Malformed("RSA exponent out of range".into())),
        };
        if e_value < 3 || e_value % 2 == 0 || e_value > (1 << 33) - 1 {
            return Err(KeyError::Malformed("RSA exponent out of range".into()));
        }
        let (params, _) =
            rsa_algorithms(alg).ok_or_else(|| mismatch(alg, "not an RSA algorithm"))?;
        Ok(Key {
            kid,
            alg,
            material: Material::Rsa {
                public: sig::RsaPublicKeyComponents {
                    n: n.to_vec(),
                    e: e.to_vec(),
                },
                verifier: Verifier::rsa(params, n, e)?,
                pair: None,
            },
        })
    }

    fn from_rsa_pair(kid: String, alg: Algorithm, pair: sig::RsaKeyPair) -> Result<Key, KeyError> {
        require_rsa(alg)?;
        let components = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        // Reuse the public-key checks (size, exponent) for private keys too.
        let mut key = Key::rsa_public(kid, alg, &components.n, &components.e)?;
        if let Material::Rsa { pair: slot, .. } = &mut key.material {
            *slot = Some(pair);
        }
        Ok(key)
    }

    fn ec_point(kid: String, alg: Algorithm, point: Vec<u8>) -> Result<Key, KeyError> {
        let len = match alg {
            Algorithm::ES256 => 65,
            Algorithm::ES384 => 97,
            other => return Err(mismatch(other, "an EC public key needs ES256 or ES384")),
        };
        if point.len() != len || point.first() != Some(&4) {
            return Err(KeyError::Malformed(format!(
                "{} public key must be an uncompressed point of {len} bytes",
                alg::name(alg)
            )));
        }
        let (verification, _) =
            ecdsa_algorithms(alg).ok_or_else(|| mismatch(alg, "not an ECDSA algorithm"))?;
        let verifier = Verifier::raw(verification, &point)?;
        Ok(Key {
            kid,
            alg,
            material: Material::Ec {
                point,
                verifier,
                pair: None,
            },
        })
    }

    fn ed25519_public(kid: String, alg: Algorithm, public: Vec<u8>) -> Result<Key, KeyError> {
        if alg != Algorithm::EdDSA {
            return Err(mismatch(alg, "an Ed25519 key needs EdDSA"));
        }
        if public.len() != sig::ED25519_PUBLIC_KEY_LEN {
            return Err(KeyError::Malformed(format!(
                "Ed25519 public key must be 32 bytes, got {}",
                public.len()
            )));
        }
        let verifier = Verifier::raw(&sig::ED25519, &public)?;
        Ok(Key {
            kid,
            alg,
            material: Material::Ed {
                public,
                verifier,
                pair: None,
            },
        })
    }

    /// A key from a JWK (RFC 7517), public (`RSA`, `EC`, `OKP`) or secret (`oct`).
    ///
    /// The JWK's `kid` is used, or `kid` when the JWK has none. The algorithm is the JWK's
    /// `alg`, or `alg` when it has none, or else the one its key type implies (RSA → RS256,
    /// `P-256` → ES256, `P-384` → ES384, `Ed25519` → EdDSA; never HMAC: an `oct` JWK needs an
    /// `alg`). `alg` and the JWK's `alg` must agree. JWKs marked `"use": "enc"` or whose
    /// `key_ops` allow neither `sign` nor `verify` are refused. `x5c`/`x5t` members are never
    /// a source of key material.
    pub fn from_jwk(jwk: &Jwk, kid: Option<&str>, alg: Option<Algorithm>) -> Result<Key, KeyError> {
        let kid = jwk
            .common
            .key_id
            .as_deref()
            .or(kid)
            .ok_or_else(|| KeyError::UnusableJwk("no `kid`".into()))?
            .to_owned();
        check_kid(&kid)?;
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return Err(KeyError::UnusableJwk("`use` is not `sig`".into()));
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops
                .iter()
                .any(|op| matches!(op, KeyOperations::Verify | KeyOperations::Sign))
        {
            return Err(KeyError::UnusableJwk(
                "`key_ops` allow neither sign nor verify".into(),
            ));
        }
        let jwk_alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => Some(Algorithm::try_from(ka).map_err(|_| {
                KeyError::UnusableJwk(format!("`alg` {ka} is not a signature algorithm"))
            })?),
        };
        let alg = match (jwk_alg, alg) {
            (Some(a), Some(b)) if a != b => {
                return Err(mismatch(b, format!("the JWK says {}", alg::name(a))));
            }
            (Some(a), _) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        let decode = |field: &str, value: &str| {
            b64::decode(value.as_bytes())
                .ok_or_else(|| KeyError::Malformed(format!("JWK `{field}` is not base64url")))
        };
        match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let alg = alg.unwrap_or(Algorithm::RS256);
                Key::rsa_public(kid, alg, &decode("n", &p.n)?, &decode("e", &p.e)?)
            }
            AlgorithmParameters::EllipticCurve(p) => {
                let implied = match p.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => return Err(KeyError::UnusableJwk("unsupported EC curve".into())),
                };
                let alg = alg.unwrap_or(implied);
                if alg != implied {
                    return Err(mismatch(alg, "the JWK's curve does not match"));
                }
                let (x, y) = (decode("x", &p.x)?, decode("y", &p.y)?);
                let size = if implied == Algorithm::ES256 { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return Err(KeyError::Malformed(format!(
                        "EC JWK coordinates must be {size} bytes each"
                    )));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Key::ec_point(kid, alg, point)
            }
            AlgorithmParameters::OctetKeyPair(p) => {
                if p.curve != EllipticCurve::Ed25519 {
                    return Err(KeyError::UnusableJwk("unsupported OKP curve".into()));
                }
                let alg = alg.unwrap_or(Algorithm::EdDSA);
                Key::ed25519_public(kid, alg, decode("x", &p.x)?)
            }
            AlgorithmParameters::OctetKey(p) => {
                let alg = alg.ok_or_else(|| {
                    KeyError::UnusableJwk("`oct` JWK without `alg` (HS256/384/512?)".into())
                })?;
                let secret = Zeroizing::new(decode("k", &p.value)?);
                Key::hmac(kid, alg, &secret)
            }
            _ => Err(KeyError::UnusableJwk("unsupported `kty`".into())),
        }
    }

    /// A key from a JWK given as JSON text.
    pub fn from_jwk_json(json: &str, alg: Option<Algorithm>) -> Result<Key, KeyError> {
        let jwk: Jwk =
            serde_json::from_str(json).map_err(|e| KeyError::Malformed(json_error("JWK", &e)))?;
        Key::from_jwk(&jwk, None, alg)
    }
}

const OID_RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");

/// The type of an asymmetric key, read from its DER `AlgorithmIdentifier` (PKCS#8 or
/// SubjectPublicKeyInfo) before ring parses it, so that a key given the wrong algorithm is an
/// [`KeyError::AlgorithmMismatch`] whatever its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyType {
    fn of(id: &spki::AlgorithmIdentifierRef<'_>) -> Result<KeyType, KeyError> {
        if id.oid == OID_RSA {
            Ok(KeyType::Rsa)
        } else if id.oid == OID_EC {
            let curve = id
                .parameters_oid()
                .map_err(|_| KeyError::Malformed("EC key without a named curve".into()))?;
            if curve == OID_P256 {
                Ok(KeyType::P256)
            } else if curve == OID_P384 {
                Ok(KeyType::P384)
            } else {
                Err(KeyError::Unsupported(format!("EC curve OID {curve}")))
            }
        } else if id.oid == OID_ED25519 {
            Ok(KeyType::Ed25519)
        } else {
            Err(KeyError::Unsupported(format!(
                "key algorithm OID {}",
                id.oid
            )))
        }
    }

    /// `self` if a key of this type can be bound to `alg`, else the mismatch.
    fn bind(self, alg: Algorithm) -> Result<KeyType, KeyError> {
        let (fits, reason) = match self {
            KeyType::Rsa => (
                alg.family() == AlgorithmFamily::Rsa,
                "an RSA key needs RS256/384/512 or PS256/384/512",
            ),
            KeyType::P256 => (alg == Algorithm::ES256, "a P-256 key needs ES256"),
            KeyType::P384 => (alg == Algorithm::ES384, "a P-384 key needs ES384"),
            KeyType::Ed25519 => (alg == Algorithm::EdDSA, "an Ed25519 key needs EdDSA"),
        };
        if fits {
            Ok(self)
        } else {
            Err(mismatch(alg, reason))
        }
    }
}

fn parse_pkcs1_public(der: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
    use pkcs1::der::Decode as _;
    let key = pkcs1::RsaPublicKey::from_der(der)
        .map_err(|e| KeyError::Malformed(format!("RSAPublicKey: {e}")))?;
    Ok((key.modulus.as_bytes(), key.public_exponent.as_bytes()))
}

fn require_rsa(alg: Algorithm) -> Result<(), KeyError> {
    if rsa_algorithms(alg).is_some() {
        Ok(())
    } else {
        Err(mismatch(
            alg,
            "an RSA key needs RS256/384/512 or PS256/384/512",
        ))
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
    }
}
