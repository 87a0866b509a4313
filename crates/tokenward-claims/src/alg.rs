//! Algorithm names, parsed exactly (case-sensitive, RFC 7518).

use jsonwebtoken::Algorithm;

/// Every algorithm tokenward supports.
pub const SUPPORTED: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The JOSE name of `alg` (`"HS256"`, `"EdDSA"`, ...).
pub fn name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

/// Parses a JOSE algorithm name exactly as RFC 7518 spells it. `none` (in any casing) and
/// anything unknown give `None`.
pub fn parse(s: &str) -> Option<Algorithm> {
    SUPPORTED.into_iter().find(|a| name(*a) == s)
}

/// Whether `alg` is one of the HMAC algorithms.
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        for a in SUPPORTED {
            assert_eq!(parse(name(a)), Some(a));
        }
        for bad in [
            "none", "None", "NONE", "nOnE", "hs256", "HS256 ", "", "ES512", "Ed25519",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
