//! Benchmarks of tokenward against its peers, and the fixtures they share.
//!
//! The benchmarks live in `benches/` (run them with `cargo bench -p tokenward-bench`; results
//! and the exact command are in `docs/benchmarks.md`). This library holds what they share, so
//! that the comparison is of *equal work* and a unit test can prove it:
//!
//! - [`Fixture`] — for one algorithm: a token issued by tokenward's [`TokenIssuer`], the
//!   full-policy tokenward [`Validator`] for it, and the equivalent `jsonwebtoken`
//!   [`DecodingKey`] + [`Validation`] + claims type ([`JwtClaims`]).
//! - [`revocation`] — for the revocation-store benchmarks: realistic ids and a mix of live
//!   revocations ([`Population`](revocation::Population)).
//! - [`latency`] — latency under concurrency: closed loops of timed calls started together,
//!   nearest-rank percentiles.
//! - [`harness`] — what every harness does around its measurement: exit code, runtime,
//!   `--quick` and the configuration filter, CPU time, load average, and the benchmark Redis
//!   (described before, its counters read, the run's key prefix deleted after; through
//!   `tokenward-testsupport`, which the tests use too).
//! - [`memory`] — the live heap (`stats_alloc`) and resident set size.
//! - [`load`] — for the HTTP benchmarks: an in-process HTTP/1.1 load generator (closed-loop
//!   keep-alive connections on loopback, latency of every timed request).
//!
//! **Same key, same crypto.** `jsonwebtoken` is built without any crypto-backend feature;
//! [`Fixture::new`] installs tokenward's ring-backed
//! [`PROVIDER`](tokenward_claims::crypto::PROVIDER) as its process-wide provider, so
//! both sides verify signatures with the same `ring` code. The `jsonwebtoken` key is built
//! from the public JWK of the very key the tokenward validator holds (for HMAC: the same
//! secret). What differs is only what each library does around the signature check.
//!
//! Test-only keys: the fixtures embed the public test keys of
//! `crates/tokenward-claims/tests/fixtures/`, which protect nothing.
//!
//! ```
//! use jsonwebtoken::Algorithm;
//! use tokenward_bench::Fixture;
//!
//! let fixture = Fixture::new(Algorithm::ES256)?;
//! let verified = fixture.verify_tokenward(fixture.token())?;
//! let decoded = fixture.decode_jsonwebtoken(fixture.token())?;
//! assert_eq!(verified.claims.jti.as_deref(), Some(decoded.claims.jti.as_str()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod harness;
pub mod latency;
pub mod load;
pub mod memory;
pub mod revocation;

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, TokenData, Validation};
use serde::Deserialize;
use tokenward_claims::{
    AccessToken, Audience, IssueError, Key, KeyError, KeySet, PolicyError, Rejection, TokenIssuer,
    ValidationPolicy, Validator, Verified, alg, crypto,
};

/// The algorithms the benchmarks compare, one key each.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// The issuer of the fixture tokens, required by both validators.
pub const ISSUER: &str = "https://auth.bench.tokenward.example";

/// The audience of the fixture tokens, required by both validators.
pub const AUDIENCE: &str = "bench-api";

/// The lifetime of the fixture tokens: one hour, the tokenward policy's default maximum, so
/// tokens issued with the system clock stay valid for a whole benchmark run.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The HS256 secret (test-only, 32 bytes as RFC 7518 §3.2 requires).
const HS256_SECRET: &[u8] = b"tokenward-bench-test-only-secret";

const RSA2048_PEM: &[u8] = include_bytes!("../../tokenward-claims/tests/fixtures/rsa2048.pem");
const RSA2048_PUB_PEM: &[u8] =
    include_bytes!("../../tokenward-claims/tests/fixtures/rsa2048.pub.pem");
const P256_PEM: &[u8] = include_bytes!("../../tokenward-claims/tests/fixtures/p256.pem");
const P256_PUB_PEM: &[u8] = include_bytes!("../../tokenward-claims/tests/fixtures/p256.pub.pem");
const ED25519_PEM: &[u8] = include_bytes!("../../tokenward-claims/tests/fixtures/ed25519.pem");
const ED25519_PUB_PEM: &[u8] =
    include_bytes!("../../tokenward-claims/tests/fixtures/ed25519.pub.pem");

/// Why a fixture could not be built or does not behave as a benchmark needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The benchmarks have no key for this algorithm.
    #[error("no benchmark key for {0:?}")]
    Unsupported(Algorithm),
    /// A test key did not load.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The token could not be issued.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The validation policy could not be built.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The `jsonwebtoken` key could not be built.
    #[error("jsonwebtoken: {0}")]
    Jsonwebtoken(#[from] jsonwebtoken::errors::Error),
    /// Another `jsonwebtoken` crypto provider was installed first, so the two sides would not
    /// use the same crypto.
    #[error("a jsonwebtoken crypto provider other than tokenward's ring provider is installed")]
    ForeignProvider,
    /// The fixture token was rejected, so a benchmark would measure an error path.
    #[error("{by} rejected the fixture token: {reason}")]
    Rejected {
        /// Which side rejected it.
        by: &'static str,
        /// Why.
        reason: String,
    },
}

/// The claims a `jsonwebtoken` user decodes a tokenward access token into: the same members
/// tokenward's [`RegisteredClaims`](tokenward_claims::RegisteredClaims) holds.
///
/// `iat` and `jti` are not `Option`s: `jsonwebtoken` cannot require them through
/// [`Validation::required_spec_claims`], so deserialization requires them instead, as the
/// tokenward policy does.
#[derive(Debug, Clone, Deserialize)]
pub struct JwtClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience (one string or an array, parsed by tokenward's own type).
    pub aud: Audience,
    /// Expiration time.
    pub exp: u64,
    /// Not before.
    pub nbf: Option<u64>,
    /// Issued at.
    pub iat: u64,
    /// Token id.
    pub jti: String,
    /// Session id.
    pub sid: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
}

/// One algorithm's benchmark setup: a valid token and the two equivalent verifiers.
#[derive(Debug)]
pub struct Fixture {
    alg: Algorithm,
    issuer: TokenIssuer,
    token: String,
    validator: Validator,
    decoding_key: DecodingKey,
    validation: Validation,
}

impl Fixture {
    /// Builds the fixture for `alg` (one of [`ALGORITHMS`]), issuing a token valid for
    /// [`TOKEN_TTL`] from now (system clock: `jsonwebtoken` always reads the system time).
    ///
    /// Installs tokenward's ring provider into `jsonwebtoken` (idempotent).
    pub fn new(alg: Algorithm) -> Result<Fixture, FixtureError> {
        if !crypto::install_provider() {
            return Err(FixtureError::ForeignProvider);
        }
        let kid = format!("bench-{}", alg::name(alg)).to_ascii_lowercase();
        let (signing, verifying) = match alg {
            Algorithm::HS256 => (
                Key::hmac(kid.clone(), alg, HS256_SECRET)?,
                Key::hmac(kid, alg, HS256_SECRET)?,
            ),
            Algorithm::RS256 => pem_pair(kid, alg, RSA2048_PEM, RSA2048_PUB_PEM)?,
            Algorithm::ES256 => pem_pair(kid, alg, P256_PEM, P256_PUB_PEM)?,
            Algorithm::EdDSA => pem_pair(kid, alg, ED25519_PEM, ED25519_PUB_PEM)?,
            other => return Err(FixtureError::Unsupported(other)),
        };

        // The same key for jsonwebtoken: the HMAC secret, or the verifying key's public JWK.
        let decoding_key = match verifying.public_jwk() {
            Some(jwk) => DecodingKey::from_jwk(&jwk)?,
            None => DecodingKey::from_secret(HS256_SECRET),
        };

        let issuer = TokenIssuer::builder(KeySet::single(signing), ISSUER)
            .audience(AUDIENCE)
            .ttl(TOKEN_TTL)
            .build()?;
        let token = issuer
            .issue(
                &AccessToken::new("alice")
                    .sid("family-1")
                    .scope("orders:read"),
            )?
            .token;

        // tokenward: the default full policy: iss, aud, exp, nbf, iat (leeway 30 s), required
        // exp/iat/iss/aud/sub/jti, typ, kid, size cap, and a maximum lifetime (1 h, stated
        // explicitly because the fixture tokens use all of it).
        let policy = ValidationPolicy::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .max_lifetime(TOKEN_TTL)
            .build()?;

        // jsonwebtoken: as close as it allows. It cannot check typ, kid, the token size or
        // the lifetime; `iat` and `jti` are required through `JwtClaims`.
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = policy.leeway().as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;

        let fixture = Fixture {
            alg,
            issuer,
            token,
            validator: Validator::new(policy, KeySet::single(verifying)),
            decoding_key,
            validation,
        };
        fixture.check()?;
        Ok(fixture)
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The valid token both verifiers accept. Test-only: it is safe to print.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The tokenward validator (to build a Guard around it).
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Issues another token with the fixture's key and issuer (for negative cases).
    pub fn issue(&self, req: &AccessToken) -> Result<String, FixtureError> {
        Ok(self.issuer.issue(req)?.token)
    }

    /// Full-policy verification by tokenward: what the benchmark measures.
    #[inline]
    pub fn verify_tokenward(&self, token: &str) -> Result<Verified, Rejection> {
        self.validator.verify(token)
    }

    /// `jsonwebtoken::decode` with the same key and the closest `Validation`: what the
    /// benchmark measures against.
    #[inline]
    pub fn decode_jsonwebtoken(
        &self,
        token: &str,
    ) -> jsonwebtoken::errors::Result<TokenData<JwtClaims>> {
        jsonwebtoken::decode::<JwtClaims>(token, &self.decoding_key, &self.validation)
    }

    /// Checks that both sides accept the fixture token, so no benchmark measures an error
    /// path.
    pub fn check(&self) -> Result<(), FixtureError> {
        self.verify_tokenward(&self.token)
            .map_err(|e| FixtureError::Rejected {
                by: "tokenward",
                reason: e.to_string(),
            })?;
        self.decode_jsonwebtoken(&self.token)
            .map_err(|e| FixtureError::Rejected {
                by: "jsonwebtoken",
                reason: e.to_string(),
            })?;
        Ok(())
    }
}

/// `alg`'s fixture key as text, the way a peer library loads it: the HS256 secret, or the
/// public key's PEM (RS256, ES256, EdDSA). `None` for other algorithms. Test-only keys.
pub fn peer_key_text(alg: Algorithm) -> Option<&'static str> {
    let bytes = match alg {
        Algorithm::HS256 => HS256_SECRET,
        Algorithm::RS256 => RSA2048_PUB_PEM,
        Algorithm::ES256 => P256_PUB_PEM,
        Algorithm::EdDSA => ED25519_PUB_PEM,
        _ => return None,
    };
    std::str::from_utf8(bytes).ok()
}

/// A signing key from a private PEM and its verification-only twin from the public PEM.
fn pem_pair(
    kid: String,
    alg: Algorithm,
    private: &[u8],
    public: &[u8],
) -> Result<(Key, Key), KeyError> {
    Ok((
        Key::from_pem(kid.clone(), alg, private)?,
        Key::from_pem(kid, alg, public)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::errors::ErrorKind;
    use tokenward_claims::RejectionClass;

    /// Replaces the payload of `token` by that of `other`, keeping `token`'s signature.
    fn splice_payload(token: &str, other: &str) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let other: Vec<&str> = other.split('.').collect();
        format!("{}.{}.{}", parts[0], other[1], parts[2])
    }

    #[test]
    fn both_sides_accept_the_fixture_token_and_agree_on_its_claims() {
        for alg in ALGORITHMS {
            let f = Fixture::new(alg).unwrap();
            assert_eq!(f.alg(), alg);
            let ours = f.verify_tokenward(f.token()).unwrap();
            let theirs = f.decode_jsonwebtoken(f.token()).unwrap();
            let (c, t) = (&ours.claims, &theirs.claims);
            assert_eq!(ours.alg, alg);
            assert_eq!(theirs.header.alg, alg);
            assert_eq!(c.iss.as_deref(), Some(t.iss.as_str()), "{alg:?}");
            assert_eq!(c.sub.as_deref(), Some(t.sub.as_str()), "{alg:?}");
            assert_eq!(c.jti.as_deref(), Some(t.jti.as_str()), "{alg:?}");
            assert_eq!(c.aud.as_ref(), Some(&t.aud), "{alg:?}");
            assert_eq!((c.exp, c.iat, c.nbf), (Some(t.exp), Some(t.iat), t.nbf));
            assert_eq!(
                (c.sid.as_ref(), c.scope.as_ref()),
                (t.sid.as_ref(), t.scope.as_ref())
            );
            assert_eq!(t.exp - t.iat, TOKEN_TTL.as_secs());
        }
    }

    /// Both sides reject each bad token, for the same reason.
    #[test]
    fn both_sides_reject_the_same_bad_tokens() {
        for alg in ALGORITHMS {
            let f = Fixture::new(alg).unwrap();
            let mallory = f.issue(&AccessToken::new("mallory")).unwrap();
            let other_aud = f
                .issue(&AccessToken::new("alice").audience("admin-api"))
                .unwrap();
            for (token, class, kind) in [
                (
                    splice_payload(f.token(), &mallory),
                    RejectionClass::Signature,
                    ErrorKind::InvalidSignature,
                ),
                (
                    other_aud,
                    RejectionClass::Audience,
                    ErrorKind::InvalidAudience,
                ),
            ] {
                let ours = f.verify_tokenward(&token).unwrap_err();
                let theirs = f.decode_jsonwebtoken(&token).unwrap_err();
                assert_eq!(ours.class(), class, "{alg:?}: {ours}");
                assert_eq!(theirs.kind(), &kind, "{alg:?}: {theirs}");
            }
        }
    }

    #[test]
    fn unsupported_algorithms_are_refused() {
        assert!(matches!(
            Fixture::new(Algorithm::PS512),
            Err(FixtureError::Unsupported(Algorithm::PS512))
        ));
    }
}
