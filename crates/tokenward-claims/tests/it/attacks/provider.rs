//! The crypto provider under attack and against a reference: the suite runs on *ring* and on
//! aws-lc-rs (`cargo xtask ci`'s feature matrix), and these cases pin what could differ
//! between them — signature malleability, keys that are not on their curve, and signatures
//! that each library must accept from the other.

use jsonwebtoken::Algorithm;
use ring::signature::{self as reference, KeyPair as _};
use serde_json::json;
use tokenward_claims::crypto::PROVIDER_NAME;
use tokenward_claims::{Key, KeyError};

use super::*;

/// `cargo xtask ci` names the provider each configuration must have picked; a feature that
/// stopped selecting its library would otherwise test the other one twice.
#[test]
fn the_provider_is_the_one_the_build_asked_for() {
    let expected = std::env::var("TOKENWARD_CRYPTO_PROVIDER").ok();
    if let Some(expected) = expected {
        assert_eq!(
            PROVIDER_NAME, expected,
            "tokenward_claims::crypto::PROVIDER_NAME"
        );
    }
    assert!(matches!(PROVIDER_NAME, "ring" | "aws-lc-rs"));
}

/// Ed25519's S must be below the group order L (RFC 8032 §5.1.7): S + L verifies the same
/// equation, so accepting it would make every signature malleable.
#[test]
fn ed25519_signature_with_s_plus_l_is_refused() {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let s = signers();
    let good = forge(&header("EdDSA", "ed"), &claims(json!({})), &s.ed);
    let parts: Vec<&str> = good.split('.').collect();
    let mut sig = unb64(parts[2]);
    let mut carry = 0u16;
    for (byte, l) in sig[32..].iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 32 bytes");
    let cases = [
        case("EdDSA good", good.clone(), Ok(())),
        case(
            "EdDSA S + L",
            format!("{}.{}.{}", parts[0], parts[1], b64(&sig)),
            Err(Signature),
        ),
    ];
    check(&default_validator(&s), &cases);
}

/// An EC public key whose point is not on the curve: refused when it is loaded (aws-lc-rs
/// parses keys once) or never verifying anything (*ring* parses at each verification) —
/// never a key that accepts a forged signature.
#[test]
fn an_off_curve_ec_key_never_verifies() {
    let s = signers();
    let jwk = s.ec.public_jwk().unwrap();
    let mut value = serde_json::to_value(&jwk).unwrap();
    let y = unb64(value["y"].as_str().unwrap());
    let mut bent = y.clone();
    bent[31] ^= 1;
    value["y"] = json!(b64(&bent));
    match Key::from_jwk_json(&value.to_string(), None) {
        Err(KeyError::Rejected(_)) => assert_eq!(PROVIDER_NAME, "aws-lc-rs"),
        Err(other) => panic!("unexpected error for an off-curve point: {other}"),
        Ok(key) => {
            assert_eq!(PROVIDER_NAME, "ring");
            let token = forge(&header("ES256", "ec"), &claims(json!({})), &s.ec);
            let input = token.rsplit_once('.').unwrap().0;
            let sig = unb64(token.rsplit('.').next().unwrap());
            assert!(!key.verify(input.as_bytes(), &sig));
            assert!(!key.verify(input.as_bytes(), &[0u8; 64]));
        }
    }
}

/// What the provider signs, *ring* (the reference here, whichever provider is under test)
/// verifies; what *ring* signs, the provider verifies.
#[test]
fn signatures_interoperate_with_the_reference() {
    let message = b"eyJhbGciOiJ0ZXN0In0.eyJzdWIiOiJhbGljZSJ9";
    let der = |pem_text: &str| pem::parse(pem_text).unwrap().into_contents();
    let rsa_private = der(RSA_PRIVATE);
    let rsa_public_spki = der(RSA_PUBLIC);
    let ec_private = der(P256_PRIVATE);
    let ed_private = der(ED_PRIVATE);

    // RSA, PKCS#1 v1.5 and PSS.
    let ring_rsa = reference::RsaKeyPair::from_pkcs8(&rsa_private).unwrap();
    let rsa_pub_key = ring_rsa.public_key().as_ref().to_vec();
    for (alg, verify, padding) in [
        (
            Algorithm::RS256,
            &reference::RSA_PKCS1_2048_8192_SHA256,
            &reference::RSA_PKCS1_SHA256 as &'static dyn reference::RsaEncoding,
        ),
        (
            Algorithm::PS256,
            &reference::RSA_PSS_2048_8192_SHA256,
            &reference::RSA_PSS_SHA256,
        ),
        (
            Algorithm::PS512,
            &reference::RSA_PSS_2048_8192_SHA512,
            &reference::RSA_PSS_SHA512,
        ),
    ] {
        let ours = Key::from_pkcs8_der("rsa", alg, &rsa_private).unwrap();
        let sig = ours.sign(message).unwrap();
        reference::UnparsedPublicKey::new(verify, &rsa_pub_key)
            .verify(message, &sig)
            .unwrap_or_else(|_| panic!("{alg:?}: ring refused the provider's signature"));
        let mut theirs = vec![0; ring_rsa.public().modulus_len()];
        ring_rsa
            .sign(
                padding,
                &ring::rand::SystemRandom::new(),
                message,
                &mut theirs,
            )
            .unwrap();
        let public = Key::from_spki_der("rsa", alg, &rsa_public_spki).unwrap();
        assert!(
            public.verify(message, &theirs),
            "{alg:?}: ring's signature refused"
        );
        assert!(
            ours.verify(message, &theirs),
            "{alg:?}: private key's verify"
        );
    }

    // ECDSA P-256, fixed-width r || s.
    let rng = ring::rand::SystemRandom::new();
    let ring_ec = reference::EcdsaKeyPair::from_pkcs8(
        &reference::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ec_private,
        &rng,
    )
    .unwrap();
    let ours = Key::from_pkcs8_der("ec", Algorithm::ES256, &ec_private).unwrap();
    let sig = ours.sign(message).unwrap();
    reference::UnparsedPublicKey::new(
        &reference::ECDSA_P256_SHA256_FIXED,
        ring_ec.public_key().as_ref(),
    )
    .verify(message, &sig)
    .expect("ES256: ring refused the provider's signature");
    let theirs = ring_ec.sign(&rng, message).unwrap();
    assert!(
        ours.verify(message, theirs.as_ref()),
        "ES256: ring's signature refused"
    );

    // Ed25519: deterministic, so both must produce the very same bytes.
    let ring_ed = reference::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&ed_private).unwrap();
    let ours = Key::from_pkcs8_der("ed", Algorithm::EdDSA, &ed_private).unwrap();
    assert_eq!(
        ours.sign(message).unwrap(),
        ring_ed.sign(message).as_ref(),
        "EdDSA signatures differ"
    );

    // HMAC.
    let ours = Key::hmac("hs", Algorithm::HS256, HS_SECRET).unwrap();
    let reference_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HS_SECRET);
    assert_eq!(
        ours.sign(message).unwrap(),
        ring::hmac::sign(&reference_key, message).as_ref()
    );
}
