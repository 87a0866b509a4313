//! HTTP: an axum hello-world behind tokenward's `GuardLayer`, behind `jwt-authorizer`'s
//! layer, and without authentication, driven by an in-process hyper load generator
//! (`tokenward_bench::load`) on loopback — requests per second and latency percentiles.
//!
//! Variants, per algorithm (HS256, EdDSA), all sent the **same token** (issued by the
//! fixture's `TokenIssuer`) with the same key:
//!
//! - `tokenward` — axum 0.8, `GuardLayer` around a `Guard` with **in-memory** stores: the
//!   failure-ban check, full-policy verification, revocation check (10 000 revoked `jti`s in
//!   the store, none of them this token's), a per-subject limit high enough never to deny
//!   (10⁹/s, burst 10⁹), `RateLimit` response headers, and the audit event (no `tracing`
//!   subscriber installed: a disabled callsite).
//! - `jwt_authorizer` — axum 0.7 (the axum jwt-authorizer 0.15 is written for),
//!   `JwtAuthorizer::from_secret` / `from_ed_pem_text` with the same key, validation of
//!   `iss`, `aud`, `exp`, `nbf` with 30 s leeway, claims decoded into the same `JwtClaims`
//!   type as the `verify` benchmark. It has no revocation, limits or audit events.
//! - `no_auth_axum08` / `no_auth_axum07` — the same hello-world without auth on each axum,
//!   the floor for each authenticated variant.
//! - `tokenward_axum07` — tokenward's same `GuardLayer` and `Guard` on axum 0.7 (the layer is
//!   plain tower, so it runs on either), behind a `map_request` that copies axum 0.7's
//!   `ConnectInfo` into the axum 0.8 `ConnectInfo` tokenward-axum reads: the like-for-like
//!   comparison with jwt-authorizer, whose axum 0.7 floor differs from axum 0.8's.
//!
//! Every server is served with `into_make_service_with_connect_info::<SocketAddr>()` (the
//! Guard's failure ban needs the client address). Before measuring, each variant must answer
//! 200 to the token and each authenticated one 401 without it. Load: 64 keep-alive
//! connections, each a closed loop, all in this process on one multi-thread Tokio runtime
//! (one worker per core) shared by client and servers. Rounds are interleaved (every variant
//! once per round, in reverse order every other round so that a drift of the machine's speed
//! within a round favours no one), and the summary is the median over rounds. Since the
//! machine's speed moves between rounds by more than the difference being measured, the
//! comparison is also made **per round** — tokenward's req/s ÷ jwt-authorizer's, measured
//! seconds apart — and the `ratio` (tokenward on axum 0.8) and `ratio_axum07` (tokenward on
//! axum 0.7, like jwt-authorizer) lines give the median, the range and how many rounds were at
//! least 1.
//!
//! `cargo bench -p tokenward-bench --bench http [-- --quick]`; results in
//! `docs/benchmarks.md`. Each summary line starting with `@bench` is read by
//! `cargo xtask bench`.

#![expect(clippy::panic, reason = "a benchmark stops loudly on a broken fixture")]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use jwt_authorizer::{IntoLayer as _, JwtAuthorizer, Validation};
use tokenward_axum::GuardLayer;
use tokenward_bench::harness::{load_average, quick, runtime};
use tokenward_bench::load::{self, LoadSpec, median};
use tokenward_bench::{AUDIENCE, Fixture, ISSUER, JwtClaims, peer_key_text};
use tokenward_claims::{Algorithm, alg};
use tokenward_core::StoreId;
use tokenward_core::UnixTime;
use tokenward_guard::{Guard, GuardStores};
use tokenward_ratelimit::{GcraQuota, MemoryRateLimitStore, SubjectLimit};
use tokenward_refresh::MemoryRefreshStore;
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

const CONNECTIONS: usize = 64;
const VARIANTS: [&str; 5] = [
    "tokenward",
    "no_auth_axum08",
    "jwt_authorizer",
    "no_auth_axum07",
    "tokenward_axum07",
];

/// On axum 0.7, hands the connection's address to tokenward's layer the way axum 0.8 would:
/// tokenward-axum reads axum 0.8's `ConnectInfo`, which axum 0.7 does not insert.
async fn connect_info_08(mut req: axum07::extract::Request) -> axum07::extract::Request {
    if let Some(axum07::extract::ConnectInfo(peer)) = req
        .extensions()
        .get::<axum07::extract::ConnectInfo<SocketAddr>>()
        .copied()
    {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
    }
    req
}

async fn hello() -> &'static str {
    "hello, world"
}

async fn guard_for(fixture: &Fixture) -> Guard {
    let revocation = Arc::new(MemoryRevocationStore::new());
    for n in 0..10_000u64 {
        revocation
            .revoke_token(
                &StoreId::new(format!("revoked-{n:016x}")).unwrap_or_else(|e| panic!("id: {e}")),
                UnixTime::from_secs(u64::from(u32::MAX)),
            )
            .await
            .unwrap_or_else(|e| panic!("revoke: {e}"));
    }
    let stores = GuardStores::new(
        revocation,
        Arc::new(MemoryRateLimitStore::new()),
        Arc::new(MemoryRefreshStore::new()),
    );
    let limit = SubjectLimit::new(
        "subject",
        GcraQuota::per_second(NonZeroU32::new(1_000_000_000).unwrap_or(NonZeroU32::MAX)),
    )
    .unwrap_or_else(|e| panic!("limit: {e}"));
    Guard::builder(fixture.validator().clone(), stores)
        .subject_limit(limit)
        .build()
        .unwrap_or_else(|e| panic!("guard: {e}"))
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    (listener, addr)
}

async fn serve_axum08(app: axum::Router) -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

async fn serve_axum07(app: axum07::Router) -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        axum07::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

/// Starts the five servers for `fixture`, in [`VARIANTS`] order.
async fn servers(fixture: &Fixture) -> [SocketAddr; 5] {
    let guard = guard_for(fixture).await;
    let tokenward = axum::Router::new()
        .route("/hello", axum::routing::get(hello))
        .layer(GuardLayer::new(guard.clone()));
    // The same layer on the axum jwt-authorizer runs on (the layer is plain tower).
    let tokenward07 = axum07::Router::new()
        .route("/hello", axum07::routing::get(hello))
        .layer(GuardLayer::new(guard))
        .layer(axum07::middleware::map_request(connect_info_08));
    let plain08 = axum::Router::new().route("/hello", axum::routing::get(hello));

    let key = peer_key_text(fixture.alg())
        .unwrap_or_else(|| panic!("no peer key for {:?}", fixture.alg()));
    let builder = match fixture.alg() {
        Algorithm::HS256 => JwtAuthorizer::<JwtClaims>::from_secret(key),
        Algorithm::EdDSA => JwtAuthorizer::<JwtClaims>::from_ed_pem_text(key),
        Algorithm::ES256 => JwtAuthorizer::<JwtClaims>::from_ec_pem_text(key),
        Algorithm::RS256 => JwtAuthorizer::<JwtClaims>::from_rsa_pem_text(key),
        other => panic!("no jwt-authorizer setup for {other:?}"),
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
        .await
        .unwrap_or_else(|e| panic!("jwt-authorizer: {e}"));
    let layer = [authorizer].into_layer();
    let jwt_authorizer = axum07::Router::new()
        .route("/hello", axum07::routing::get(hello))
        .layer(layer);
    let plain07 = axum07::Router::new().route("/hello", axum07::routing::get(hello));

    [
        serve_axum08(tokenward).await,
        serve_axum08(plain08).await,
        serve_axum07(jwt_authorizer).await,
        serve_axum07(plain07).await,
        serve_axum07(tokenward07).await,
    ]
}

/// Each server answers 200 to the token; the authenticated ones 401 without it.
async fn check(addrs: &[SocketAddr; 5], header: &HeaderValue) {
    for (name, addr) in VARIANTS.iter().zip(addrs) {
        let (status, body) = load::request(*addr, Method::GET, "/hello", Some(header), None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status, StatusCode::OK, "{name} with the token: {body:?}");
        let (status, _) = load::request(*addr, Method::GET, "/hello", None, None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = if name.starts_with("no_auth") {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, expected, "{name} without a token");
    }
}

#[derive(Default)]
struct Samples {
    rps: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
}

fn main() {
    let (warm_up, measure, rounds) = if quick() {
        (Duration::from_millis(300), Duration::from_millis(1000), 3)
    } else {
        (Duration::from_secs(1), Duration::from_secs(3), 7)
    };
    let rt = runtime(None).unwrap_or_else(|e| panic!("runtime: {e}"));
    let algorithms = [Algorithm::HS256, Algorithm::EdDSA];
    let fixtures: Vec<Fixture> = algorithms
        .into_iter()
        .map(|a| Fixture::new(a).unwrap_or_else(|e| panic!("fixture: {e}")))
        .collect();

    rt.block_on(async {
        let mut setups = Vec::new();
        for fixture in &fixtures {
            let addrs = servers(fixture).await;
            let header = HeaderValue::from_str(&format!("Bearer {}", fixture.token()))
                .unwrap_or_else(|e| panic!("header: {e}"));
            check(&addrs, &header).await;
            setups.push((alg::name(fixture.alg()), addrs, header));
        }
        println!(
            "{CONNECTIONS} connections, warm-up {warm_up:?}, measurement {measure:?}, \
             {rounds} round(s); load average at the start {}",
            load_average()
        );
        // For profiling: `TOKENWARD_BENCH_HTTP_ONLY=HS256/tokenward[,HS256/jwt_authorizer…]`
        // runs only those servers (the summary then has no figures for the others).
        let only = std::env::var("TOKENWARD_BENCH_HTTP_ONLY").ok();
        let mut samples: Vec<Vec<Samples>> = setups
            .iter()
            .map(|_| VARIANTS.iter().map(|_| Samples::default()).collect())
            .collect();
        // tokenward / jwt-authorizer req/s of each round, per algorithm: tokenward on axum
        // 0.8 and on axum 0.7.
        let mut round_ratios: Vec<Vec<(f64, f64)>> = setups.iter().map(|_| Vec::new()).collect();
        for round in 1..=rounds {
            for (((name, addrs, header), per_variant), ratios) in
                setups.iter().zip(&mut samples).zip(&mut round_ratios)
            {
                // Odd rounds run the variants in order, even rounds in reverse, so a drift
                // of the machine's speed during a round favours no variant over the rounds.
                let mut order: Vec<usize> = (0..VARIANTS.len()).collect();
                if round % 2 == 0 {
                    order.reverse();
                }
                let mut round_rps = [f64::NAN; VARIANTS.len()];
                for i in order {
                    let (Some(variant), Some(addr), Some(s)) =
                        (VARIANTS.get(i), addrs.get(i), per_variant.get_mut(i))
                    else {
                        panic!("variant {i} out of range");
                    };
                    if only
                        .as_ref()
                        .is_some_and(|o| !o.split(',').any(|v| v == format!("{name}/{variant}")))
                    {
                        continue;
                    }
                    let spec = LoadSpec {
                        addr: *addr,
                        path: "/hello".to_owned(),
                        authorization: Some(header.clone()),
                        connections: CONNECTIONS,
                        warm_up,
                        measure,
                        expect: StatusCode::OK,
                        rate: None,
                    };
                    let result = load::run(&spec)
                        .await
                        .unwrap_or_else(|e| panic!("{name} {variant}: {e}"));
                    assert_eq!(
                        result.unexpected, 0,
                        "{name} {variant}: unexpected status {:?}",
                        result.first_unexpected
                    );
                    let (rps, p50, p99) = (
                        result.requests_per_second(),
                        result.percentile_us(5_000),
                        result.percentile_us(9_900),
                    );
                    println!(
                        "round {round} {name} {variant:<15} {rps:>9.0} req/s  p50 {p50:>7.1} µs  \
                         p99 {p99:>7.1} µs  (load average {})",
                        load_average()
                    );
                    s.rps.push(rps);
                    s.p50_us.push(p50);
                    s.p99_us.push(p99);
                    if let Some(slot) = round_rps.get_mut(i) {
                        *slot = rps;
                    }
                }
                // In `VARIANTS` order.
                let [ours, _, theirs, _, ours07] = round_rps;
                println!(
                    "round {round} {name} req/s ratio tokenward / jwt_authorizer {:.3}, on \
                     axum 0.7 both {:.3}",
                    ours / theirs,
                    ours07 / theirs
                );
                ratios.push((ours / theirs, ours07 / theirs));
            }
        }
        println!("\n| algorithm | server | req/s | p50 µs | p99 µs |");
        println!("|---|---|---|---|---|");
        for ((name, _, _), per_variant) in setups.iter().zip(&mut samples) {
            for (variant, s) in VARIANTS.iter().zip(per_variant) {
                let rps = median(&mut s.rps).unwrap_or(f64::NAN);
                let p50 = median(&mut s.p50_us).unwrap_or(f64::NAN);
                let p99 = median(&mut s.p99_us).unwrap_or(f64::NAN);
                println!("| {name} | {variant} | {rps:.0} | {p50:.1} | {p99:.1} |");
                println!(
                    "@bench http/{name}/{variant} rps={rps:.0} p50_us={p50:.1} p99_us={p99:.1} \
                     rounds={rounds}"
                );
            }
        }
        for ((name, _, _), pairs) in setups.iter().zip(&round_ratios) {
            for (line, pick) in [
                ("ratio", (|p: &(f64, f64)| p.0) as fn(&(f64, f64)) -> f64),
                ("ratio_axum07", |p: &(f64, f64)| p.1),
            ] {
                let mut ratios: Vec<f64> = pairs.iter().map(pick).collect();
                let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let above = ratios.iter().filter(|&&r| r >= 1.0).count();
                let med = median(&mut ratios).unwrap_or(f64::NAN);
                println!(
                    "@bench http/{name}/{line} rps_ratio_median={med:.4} rps_ratio_min={min:.4} \
                     rps_ratio_max={max:.4} rounds_at_least_1={above} rounds={rounds}"
                );
            }
        }
        println!("load average at the end {}", load_average());
    });
}
