//! Full-policy verification, tokenward against `jsonwebtoken` as its users build it, and
//! against the bare signature check of tokenward's crypto provider — in one process, side
//! by side, in interleaved rounds. See `Cargo.toml` for the three builds and
//! `cargo xtask bench peers` for how they are run (pinned to one core when `taskset` exists).
//!
//! Equal work is checked before anything is timed: both libraries accept the same valid token
//! and reject the same forgeries (tampered payload, altered signature, `alg: none`, another
//! audience, another key), or the run fails.
//!
//! Output: a Markdown table per build and one `@bench peers ...` line per algorithm. The
//! `ring` build (or a run outside xtask) then compares the rate limit with governor as its
//! users build it (`ratelimit`).
//! `TOKENWARD_BENCH_QUICK=1` shortens the run (5 rounds of 20 ms batches instead of 15 of
//! 100 ms).

mod ratelimit;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokenward_claims::crypto::PROVIDER_NAME;
use tokenward_claims::jwk::AlgorithmParameters;
use tokenward_claims::{
    AccessToken, Audience, Key, KeySet, SharedKeySet, TokenIssuer, ValidationPolicy, Validator,
};

#[cfg(all(feature = "jwt-aws-lc-rs", feature = "jwt-rust-crypto"))]
compile_error!("one jsonwebtoken backend per build: jsonwebtoken panics with both");
#[cfg(not(any(feature = "jwt-aws-lc-rs", feature = "jwt-rust-crypto")))]
compile_error!("enable jwt-aws-lc-rs or jwt-rust-crypto: jsonwebtoken panics with neither");

const JWT_BACKEND: &str = if cfg!(feature = "jwt-aws-lc-rs") {
    "aws_lc_rs"
} else {
    "rust_crypto"
};

const ISSUER: &str = "https://auth.bench.tokenward.example";
const AUDIENCE: &str = "bench-api";
const TTL: Duration = Duration::from_secs(3600);
const HS256_SECRET: &[u8] = b"tokenward-bench-test-only-secret";
const FIXTURES: &str = "../../crates/tokenward-claims/tests/fixtures";

/// What a `jsonwebtoken` user decodes the token into: the members tokenward's policy
/// requires (`iat` and `jti` required by type, as jsonwebtoken cannot require them).
#[derive(Deserialize)]
#[allow(dead_code)]
struct JwtClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: u64,
    nbf: Option<u64>,
    iat: u64,
    jti: String,
    sid: Option<String>,
    scope: Option<String>,
}

type Check = Box<dyn Fn(&[u8], &[u8]) -> bool>;

struct Fixture {
    alg: Algorithm,
    signing: SharedKeySet,
    token: String,
    validator: Validator,
    decoding_key: DecodingKey,
    validation: Validation,
    /// The bare signature check of tokenward's provider: signing input and signature bytes.
    bare: Check,
}

fn fixture_text(name: &str) -> Result<Vec<u8>, String> {
    let path = format!("{}/{FIXTURES}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).map_err(|e| format!("{path}: {e}"))
}

fn b64(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("base64url: {e}"))
}

impl Fixture {
    fn new(alg: Algorithm) -> Result<Fixture, String> {
        let kid = "bench";
        let e = |e: tokenward_claims::KeyError| e.to_string();
        let pair = |private: &str, public: &str| -> Result<(Key, Key), String> {
            Ok((
                Key::from_pem(kid, alg, &fixture_text(private)?).map_err(e)?,
                Key::from_pem(kid, alg, &fixture_text(public)?).map_err(e)?,
            ))
        };
        let (signing, verifying) = match alg {
            Algorithm::HS256 => (
                Key::hmac(kid, alg, HS256_SECRET).map_err(e)?,
                Key::hmac(kid, alg, HS256_SECRET).map_err(e)?,
            ),
            Algorithm::RS256 => pair("rsa2048.pem", "rsa2048.pub.pem")?,
            Algorithm::ES256 => pair("p256.pem", "p256.pub.pem")?,
            Algorithm::EdDSA => pair("ed25519.pem", "ed25519.pub.pem")?,
            other => return Err(format!("no key for {other:?}")),
        };
        let jwk = verifying.public_jwk();
        let decoding_key = match &jwk {
            Some(jwk) => DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?,
            None => DecodingKey::from_secret(HS256_SECRET),
        };
        let bare = bare_check(alg, jwk.as_ref().map(|j| &j.algorithm))?;
        let signing: SharedKeySet = KeySet::single(signing).into();
        let issuer = TokenIssuer::builder(signing.clone(), ISSUER)
            .audience(AUDIENCE)
            .ttl(TTL)
            .build()
            .map_err(|e| e.to_string())?;
        let token = issuer
            .issue(
                &AccessToken::new("alice")
                    .sid("family-1")
                    .scope("orders:read"),
            )
            .map_err(|e| e.to_string())?
            .token;
        let policy = ValidationPolicy::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .max_lifetime(TTL)
            .build()
            .map_err(|e| e.to_string())?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = policy.leeway().as_secs();
        validation.validate_nbf = true;
        Ok(Fixture {
            alg,
            signing,
            token,
            validator: Validator::new(policy, KeySet::single(verifying)),
            decoding_key,
            validation,
            bare,
        })
    }

    fn tokenward(&self, token: &str) -> bool {
        self.validator.verify(token).is_ok()
    }

    fn jsonwebtoken(&self, token: &str) -> bool {
        jsonwebtoken::decode::<JwtClaims>(token, &self.decoding_key, &self.validation).is_ok()
    }

    /// Both libraries accept the valid token and refuse each forgery; the bare check accepts
    /// the valid signature and refuses an altered one.
    fn check_equal_work(&self) -> Result<(), String> {
        let name = format!("{:?}", self.alg);
        let (input, sig) = split(&self.token)?;
        let (head, _) = input.split_once('.').ok_or("no payload")?;
        let mut bent = sig.clone();
        if let Some(last) = bent.last_mut() {
            *last ^= 1;
        }
        let other_audience = TokenIssuer::builder(self.signing.clone(), ISSUER)
            .audience("another-api")
            .ttl(TTL)
            .build()
            .map_err(|e| e.to_string())?
            .issue(&AccessToken::new("alice"))
            .map_err(|e| e.to_string())?
            .token;
        let payload_admin = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "admin", "exp": 4_000_000_000u64,
                "iat": 1_700_000_000u64, "jti": "x"})
                .to_string(),
        );
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"bench"}"#);
        let forgeries = [
            (
                "tampered payload",
                format!("{head}.{payload_admin}.{}", URL_SAFE_NO_PAD.encode(&sig)),
            ),
            (
                "altered signature",
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bent)),
            ),
            ("alg none", format!("{none_header}.{payload_admin}.")),
            ("another audience", other_audience),
        ];
        if !self.tokenward(&self.token) || !self.jsonwebtoken(&self.token) {
            return Err(format!("{name}: the valid token is refused by one side"));
        }
        for (what, token) in &forgeries {
            if self.tokenward(token) || self.jsonwebtoken(token) {
                return Err(format!("{name}: `{what}` is accepted by one side"));
            }
        }
        if !(self.bare)(input.as_bytes(), &sig) || (self.bare)(input.as_bytes(), &bent) {
            return Err(format!("{name}: the bare check does not match the token"));
        }
        Ok(())
    }
}

fn split(token: &str) -> Result<(String, Vec<u8>), String> {
    let (input, sig) = token.rsplit_once('.').ok_or("not a JWS")?;
    Ok((input.to_owned(), b64(sig)?))
}

/// The provider's bare signature check for the fixture key, the way its own documentation
/// verifies: *ring* parses the public key at each call (it has no parsed-key type); aws-lc-rs
/// uses a key parsed once (its fastest form).
fn bare_check(alg: Algorithm, public: Option<&AlgorithmParameters>) -> Result<Check, String> {
    #[cfg(feature = "tokenward-aws-lc-rs")]
    use aws_lc_rs as lib;
    use lib::{hmac, signature as sig};
    #[cfg(not(feature = "tokenward-aws-lc-rs"))]
    use ring as lib;

    match (alg, public) {
        (Algorithm::HS256, None) => {
            let key = hmac::Key::new(hmac::HMAC_SHA256, HS256_SECRET);
            Ok(Box::new(move |m: &[u8], s: &[u8]| {
                hmac::verify(&key, m, s).is_ok()
            }))
        }
        (Algorithm::RS256, Some(AlgorithmParameters::RSA(rsa))) => {
            let components = sig::RsaPublicKeyComponents {
                n: b64(&rsa.n)?,
                e: b64(&rsa.e)?,
            };
            #[cfg(feature = "tokenward-aws-lc-rs")]
            {
                let parsed = components
                    .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|e| e.to_string())?;
                Ok(Box::new(move |m: &[u8], s: &[u8]| {
                    parsed.verify_sig(m, s).is_ok()
                }))
            }
            #[cfg(not(feature = "tokenward-aws-lc-rs"))]
            Ok(Box::new(move |m: &[u8], s: &[u8]| {
                components
                    .verify(&sig::RSA_PKCS1_2048_8192_SHA256, m, s)
                    .is_ok()
            }))
        }
        (Algorithm::ES256, Some(AlgorithmParameters::EllipticCurve(ec))) => {
            let mut point = vec![4u8];
            point.extend(b64(&ec.x)?);
            point.extend(b64(&ec.y)?);
            raw(&sig::ECDSA_P256_SHA256_FIXED, point)
        }
        (Algorithm::EdDSA, Some(AlgorithmParameters::OctetKeyPair(okp))) => {
            raw(&sig::ED25519, b64(&okp.x)?)
        }
        _ => Err(format!("no bare check for {alg:?}")),
    }
}

#[cfg(feature = "tokenward-aws-lc-rs")]
fn raw(
    alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    bytes: Vec<u8>,
) -> Result<Check, String> {
    let parsed =
        aws_lc_rs::signature::ParsedPublicKey::new(alg, bytes).map_err(|e| e.to_string())?;
    Ok(Box::new(move |m: &[u8], s: &[u8]| {
        parsed.verify_sig(m, s).is_ok()
    }))
}

#[cfg(not(feature = "tokenward-aws-lc-rs"))]
fn raw(
    alg: &'static dyn ring::signature::VerificationAlgorithm,
    bytes: Vec<u8>,
) -> Result<Check, String> {
    Ok(Box::new(move |m: &[u8], s: &[u8]| {
        ring::signature::UnparsedPublicKey::new(alg, &bytes)
            .verify(m, s)
            .is_ok()
    }))
}

/// Nanoseconds per call of `f` over `iters` calls.
fn batch(f: &dyn Fn() -> bool, iters: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// How many calls take about `target`.
fn calibrate(f: &dyn Fn() -> bool, target: Duration) -> u64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        let took = start.elapsed();
        if took >= target / 4 || iters >= 1 << 30 {
            let per = took.as_secs_f64() / iters as f64;
            return ((target.as_secs_f64() / per) as u64).max(1);
        }
        iters *= 2;
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

struct Row {
    alg: Algorithm,
    tokenward: f64,
    jwt: f64,
    bare: f64,
    ratios: Vec<f64>,
}

fn measure(fixture: &Fixture, rounds: usize, batch_time: Duration) -> Row {
    let token = fixture.token.as_str();
    let (input, sig) = split(token).unwrap_or_default();
    let tw = || fixture.tokenward(black_box(token));
    let jwt = || fixture.jsonwebtoken(black_box(token));
    let bare = || (fixture.bare)(black_box(input.as_bytes()), black_box(&sig));
    let fns: [&dyn Fn() -> bool; 3] = [&tw, &jwt, &bare];
    let iters: Vec<u64> = fns.iter().map(|f| calibrate(*f, batch_time)).collect();
    // One warm-up round, not kept.
    for (f, n) in fns.iter().zip(&iters) {
        batch(*f, *n);
    }
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        // The order rotates so that no side always runs first.
        for k in 0..3 {
            let i = (round + k) % 3;
            samples[i].push(batch(fns[i], iters[i]));
        }
    }
    let ratios = samples[0]
        .iter()
        .zip(&samples[1])
        .map(|(t, j)| t / j)
        .collect();
    let [mut t, mut j, mut b] = samples;
    Row {
        alg: fixture.alg,
        tokenward: median(&mut t),
        jwt: median(&mut j),
        bare: median(&mut b),
        ratios,
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let quick = std::env::var_os("TOKENWARD_BENCH_QUICK").is_some_and(|v| v == "1");
    let (rounds, batch_time) = if quick {
        (5, Duration::from_millis(20))
    } else {
        (15, Duration::from_millis(100))
    };
    let build = std::env::var("TOKENWARD_PEERS_BUILD").unwrap_or_else(|_| PROVIDER_NAME.into());
    let fixtures = [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ]
    .into_iter()
    .map(Fixture::new)
    .collect::<Result<Vec<_>, _>>()?;
    for fixture in &fixtures {
        fixture.check_equal_work()?;
    }
    println!(
        "\nBuild `{build}`: tokenward-claims on **{PROVIDER_NAME}**, jsonwebtoken 11 with `{JWT_BACKEND}`; {rounds} interleaved rounds of {} ms batches per side, medians; ratio = tokenward / jsonwebtoken per round (median, min–max).\n",
        batch_time.as_millis()
    );
    println!(
        "| alg | tokenward ({PROVIDER_NAME}) | jsonwebtoken ({JWT_BACKEND}) | ratio (median, min–max) | bare {PROVIDER_NAME} check | tokenward − bare | tokenward / (1.05 × bare + 1.5 µs) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for fixture in &fixtures {
        let mut row = measure(fixture, rounds, batch_time);
        let min = row.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = row.ratios.iter().copied().fold(0.0, f64::max);
        let ratio = median(&mut row.ratios);
        let budget = row.tokenward / (1.05 * row.bare + 1500.0);
        let alg = format!("{:?}", row.alg);
        println!(
            "| {alg} | {} | {} | {ratio:.2} ({min:.2}–{max:.2}) | {} | {} | {budget:.2} |",
            fmt_ns(row.tokenward),
            fmt_ns(row.jwt),
            fmt_ns(row.bare),
            fmt_ns(row.tokenward - row.bare),
        );
        eprintln!(
            "@bench peers build={build} provider={PROVIDER_NAME} jwt={JWT_BACKEND} alg={alg} tokenward_ns={:.1} jwt_ns={:.1} bare_ns={:.1} ratio={ratio:.3} ratio_min={min:.3} ratio_max={max:.3} budget={budget:.3}",
            row.tokenward, row.jwt, row.bare
        );
    }
    // Crypto plays no part in it: once, in the first build.
    if build == "ring" || std::env::var_os("TOKENWARD_PEERS_BUILD").is_none() {
        ratelimit::run(rounds, batch_time)?;
    }
    Ok(())
}
