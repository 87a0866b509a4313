//! One HTTP server per process, for `cargo xtask bench http-peers` (which pins it to one core
//! and drives it with wrk pinned to another): an axum hello-world at `GET /hello` behind one
//! stack, for one algorithm, on a current-thread Tokio runtime.
//!
//! ```text
//! http_server serve <tokenward|jwt-authorizer|none> <HS256|EdDSA> <port>
//! http_server tokens <HS256|EdDSA>
//! ```
//!
//! `serve` prints `ready <address>` once it listens. The stacks are those of
//! tokenward-bench's `http` bench (`crates/tokenward-bench/benches/http.rs`), set up the same
//! way (that crate's fixtures pull Redis and PostgreSQL clients this project does without):
//!
//! - `tokenward` — axum 0.8, `tokenward_axum::GuardLayer` around a `Guard` with in-memory
//!   stores: the failure-ban check, full-policy verification, the revocation check (10 000
//!   revoked `jti`s, none of them this token's), a per-subject limit that never denies (10⁹/s),
//!   `RateLimit` response headers and the audit event (no `tracing` subscriber);
//! - `jwt-authorizer` — axum 0.7 (which jwt-authorizer 0.15 is written for),
//!   `from_secret` / `from_ed_pem_text` with the same key, `iss`, `aud`, `exp`, `nbf` checked
//!   with 30 s leeway, the claims decoded into [`JwtClaims`];
//! - `none` — the same hello-world on axum 0.8 without authentication: the floor.
//!
//! `tokens` prints, one per line, the token every stack must accept (`valid ...`), the same
//! token with one bit of its signature flipped (`forged ...`) and a token of the same key,
//! issuer and audience that expired an hour ago (`expired ...`). xtask prints them once per
//! algorithm and build, and sends the same ones to every stack. Test-only keys.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_authorizer::{IntoLayer as _, JwtAuthorizer, Validation};
use serde::Deserialize;
use tokenward_axum::GuardLayer;
use tokenward_claims::{
    AccessToken, Algorithm, Audience, Key, KeySet, TokenIssuer, ValidationPolicy, Validator,
};
use tokenward_core::{ManualClock, StoreId, UnixTime};
use tokenward_guard::{Guard, GuardStores};
use tokenward_ratelimit::{GcraQuota, MemoryRateLimitStore, SubjectLimit};
use tokenward_refresh::MemoryRefreshStore;
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

const ISSUER: &str = "https://auth.bench.tokenward.example";
const AUDIENCE: &str = "bench-api";
const TTL: Duration = Duration::from_secs(3600);
/// Test-only, 32 bytes; the same secret as tokenward-bench's fixtures.
const HS256_SECRET: &str = "tokenward-bench-test-only-secret";
const ED25519_PEM: &[u8] =
    include_bytes!("../../../../crates/tokenward-claims/tests/fixtures/ed25519.pem");
const ED25519_PUB_PEM: &[u8] =
    include_bytes!("../../../../crates/tokenward-claims/tests/fixtures/ed25519.pub.pem");

type Error = Box<dyn std::error::Error>;

/// What jwt-authorizer decodes the token into (tokenward-bench's `JwtClaims`): `iat` and
/// `jti` required by type, as tokenward's policy requires them.
#[derive(Debug, Clone, Deserialize)]
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

fn algorithm(name: &str) -> Result<Algorithm, Error> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(format!("algorithm {other:?}: HS256 or EdDSA").into()),
    }
}

/// The signing key and its verification-only twin.
fn keys(alg: Algorithm) -> Result<(Key, Key), Error> {
    let kid = "bench";
    Ok(match alg {
        Algorithm::EdDSA => (
            Key::from_pem(kid, alg, ED25519_PEM)?,
            Key::from_pem(kid, alg, ED25519_PUB_PEM)?,
        ),
        _ => (
            Key::hmac(kid, alg, HS256_SECRET.as_bytes())?,
            Key::hmac(kid, alg, HS256_SECRET.as_bytes())?,
        ),
    })
}

/// The valid, forged and expired tokens (see the module docs).
fn tokens(alg: Algorithm) -> Result<[String; 3], Error> {
    let (signing, _) = keys(alg)?;
    let signing = KeySet::single(signing);
    let request = AccessToken::new("alice")
        .sid("family-1")
        .scope("orders:read");
    let valid = TokenIssuer::builder(signing.clone(), ISSUER)
        .audience(AUDIENCE)
        .ttl(TTL)
        .build()?
        .issue(&request)?
        .token;
    let (input, signature) = valid.rsplit_once('.').ok_or("not a JWS")?;
    let mut signature = URL_SAFE_NO_PAD.decode(signature)?;
    if let Some(last) = signature.last_mut() {
        *last ^= 1;
    }
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let two_hours_ago = UnixTime::from_secs(now.as_secs().saturating_sub(2 * 3600));
    let expired = TokenIssuer::builder(signing, ISSUER)
        .audience(AUDIENCE)
        .ttl(TTL)
        .clock(Arc::new(ManualClock::new(two_hours_ago)))
        .build()?
        .issue(&request)?
        .token;
    Ok([valid, forged, expired])
}

async fn hello() -> &'static str {
    "hello, world"
}

/// tokenward-bench's `guard_for`: the Guard of the `tokenward` stack.
async fn guard(alg: Algorithm) -> Result<Guard, Error> {
    let (_, verifying) = keys(alg)?;
    let policy = ValidationPolicy::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .max_lifetime(TTL)
        .build()?;
    let revocation = Arc::new(MemoryRevocationStore::new());
    for n in 0..10_000u64 {
        revocation
            .revoke_token(
                &StoreId::new(format!("revoked-{n:016x}"))?,
                UnixTime::from_secs(u64::from(u32::MAX)),
            )
            .await?;
    }
    let stores = GuardStores::new(
        revocation,
        Arc::new(MemoryRateLimitStore::new()),
        Arc::new(MemoryRefreshStore::new()),
    );
    let limit = SubjectLimit::new(
        "subject",
        GcraQuota::per_second(NonZeroU32::new(1_000_000_000).unwrap_or(NonZeroU32::MAX)),
    )?;
    Ok(
        Guard::builder(Validator::new(policy, KeySet::single(verifying)), stores)
            .subject_limit(limit)
            .build()?,
    )
}

async fn jwt_authorizer(alg: Algorithm) -> Result<axum07::Router, Error> {
    let builder = match alg {
        Algorithm::EdDSA => {
            JwtAuthorizer::<JwtClaims>::from_ed_pem_text(std::str::from_utf8(ED25519_PUB_PEM)?)
        }
        _ => JwtAuthorizer::<JwtClaims>::from_secret(HS256_SECRET),
    };
    let authorizer = builder
        .validation(
            Validation::new()
                .iss(&[ISSUER])
                .aud(&[AUDIENCE])
                .nbf(true)
                .leeway(30),
        )
        .build()
        .await?;
    Ok(axum07::Router::new()
        .route("/hello", axum07::routing::get(hello))
        .layer([authorizer].into_layer()))
}

async fn serve(stack: &str, alg: Algorithm, port: u16) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let plain = axum::Router::new().route("/hello", axum::routing::get(hello));
    let ready = || println!("ready {addr}");
    // Served with the connection's address, as the Guard's failure ban needs it.
    match stack {
        "tokenward" => {
            let app = plain.layer(GuardLayer::new(guard(alg).await?));
            ready();
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await?;
        }
        "none" => {
            ready();
            axum::serve(
                listener,
                plain.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await?;
        }
        "jwt-authorizer" => {
            let app = jwt_authorizer(alg).await?;
            ready();
            axum07::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await?;
        }
        other => return Err(format!("stack {other:?}: tokenward, jwt-authorizer or none").into()),
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), Error> {
    match args {
        [command, stack, alg, port] if command == "serve" => {
            let (alg, port) = (algorithm(alg)?, port.parse()?);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(serve(stack, alg, port))
        }
        [command, alg] if command == "tokens" => {
            let [valid, forged, expired] = tokens(algorithm(alg)?)?;
            println!("valid {valid}\nforged {forged}\nexpired {expired}");
            Ok(())
        }
        _ => Err(
            "usage: http_server serve <tokenward|jwt-authorizer|none> <HS256|EdDSA> \
                  <port> | http_server tokens <HS256|EdDSA>"
                .into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_server: {e}");
            ExitCode::FAILURE
        }
    }
}
