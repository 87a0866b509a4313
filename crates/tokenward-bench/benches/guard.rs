//! The in-memory Guard pipeline against verification alone: what the Guard adds on top of
//! `Validator::verify` with the same key and token.
//!
//! `guard` = `Guard::authenticate` with in-memory stores: the failure-ban check for the
//! client IP, credentials from the `Authorization` value, verification (custom claims kept as
//! a JSON map), the revocation check (the store holds 10 000 revoked `jti`s, none of them this
//! token's), the per-subject limit (a quota high enough that every call is admitted), and the
//! audit event. Three variants of the audit event's cost: `guard/no_subscriber` (no
//! `tracing` subscriber: the event is a disabled callsite), `guard/audit_filtered` (a
//! subscriber whose filter drops `tokenward::audit`), `guard/audit_formatted` (a `fmt`
//! subscriber that formats every audit event into `io::sink`). `guard/anomaly_detectors`:
//! `guard/no_subscriber` with a `tokenward-anomaly` detector (every detector on, state in
//! memory) as its decision hook — the hook's cost on the allowed path. `guard/ban_in_force`:
//! `guard/no_subscriber` while another client's network is banned, so the ban check reads the
//! client's address and network keys (with nobody banned, the in-memory store answers
//! `holds_no_ban` and the check reads nothing).
//!
//! Awaited through criterion's `to_async` on a current-thread Tokio runtime (boxed
//! `async_trait` futures included), like the store benchmarks.
//!
//! `cargo bench -p tokenward-bench --bench guard`; results in `docs/benchmarks.md`.

#![expect(clippy::panic, reason = "a benchmark stops loudly on a broken fixture")]

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use criterion::Criterion;
use tokenward_anomaly::{AnomalyConfig, AnomalyDetector};
use tokenward_bench::{Fixture, FixtureError};
use tokenward_claims::{Algorithm, alg};
use tokenward_core::StoreId;
use tokenward_core::UnixTime;
use tokenward_guard::{AuthRequest, Credentials, DecisionHook, Guard, GuardStores};
use tokenward_ratelimit::{GcraQuota, MemoryRateLimitStore, SubjectLimit};
use tokenward_refresh::MemoryRefreshStore;
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;

fn guard_for(
    fixture: &Fixture,
    rt: &tokio::runtime::Runtime,
    hook: Option<Arc<dyn DecisionHook>>,
) -> Guard {
    let revocation = Arc::new(MemoryRevocationStore::new());
    rt.block_on(async {
        for n in 0..10_000u64 {
            revocation
                .revoke_token(
                    &StoreId::new(format!("revoked-{n:016x}"))
                        .unwrap_or_else(|e| panic!("id: {e}")),
                    UnixTime::from_secs(u64::from(u32::MAX)),
                )
                .await
                .unwrap_or_else(|e| panic!("revoke: {e}"));
        }
    });
    let stores = GuardStores::new(
        revocation,
        Arc::new(MemoryRateLimitStore::new()),
        Arc::new(MemoryRefreshStore::new()),
    );
    let limit = SubjectLimit::new(
        "subject",
        GcraQuota::per_second(NonZeroU32::new(1_000_000_000).unwrap_or(NonZeroU32::MAX))
            .with_burst(NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MAX))
            .unwrap_or_else(|e| panic!("quota: {e}")),
    )
    .unwrap_or_else(|e| panic!("limit: {e}"));
    let mut builder = Guard::builder(fixture.validator().clone(), stores).subject_limit(limit);
    if let Some(hook) = hook {
        builder = builder.decision_hook(hook);
    }
    builder.build().unwrap_or_else(|e| panic!("guard: {e}"))
}

fn bench(c: &mut Criterion, fixture: &Fixture, rt: &tokio::runtime::Runtime) {
    let guard = guard_for(fixture, rt, None);
    // Every detector on, its state in memory: the hook's work on the request path (a
    // repeated (token, network) pair is skipped without queueing anything).
    let detector = {
        let _runtime = rt.enter();
        AnomalyDetector::builder(AnomalyConfig::default())
            .start()
            .unwrap_or_else(|e| panic!("detector: {e}"))
    };
    let with_anomaly = guard_for(fixture, rt, Some(Arc::new(detector)));
    // Another client's network banned: the in-memory store can no longer answer "nobody
    // banned" at once, so every ban check builds the client's two keys and reads them.
    let ban_in_force = guard_for(fixture, rt, None);
    rt.block_on(async {
        let stores = ban_in_force.stores();
        let ban = ban_in_force
            .failure_ban()
            .unwrap_or_else(|| panic!("the Guard has a failure ban"));
        let other: IpAddr = "198.51.100.9".parse().unwrap_or_else(|e| panic!("{e}"));
        ban.ban_network(
            &*stores.ratelimit,
            other,
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap_or_else(|e| panic!("ban: {e}"));
        assert!(!stores.ratelimit.holds_no_ban());
    });
    let header = format!("Bearer {}", fixture.token());
    let ip: IpAddr = "192.0.2.77".parse().unwrap_or_else(|e| panic!("{e}"));
    let run = |guard: &Guard| {
        let creds = guard.credentials([header.as_bytes()], []);
        let req = AuthRequest::new("GET", "/orders", ip, creds);
        let guard = guard.clone();
        async move {
            let auth = guard.authenticate(black_box(&req)).await;
            assert!(auth.is_ok(), "the benchmark must time the success path");
            auth
        }
    };
    // Checked once before measuring: the Guard admits the token.
    let _admitted = rt.block_on(run(&guard));
    let _admitted = rt.block_on(run(&with_anomaly));
    let _admitted = rt.block_on(run(&ban_in_force));
    assert!(matches!(
        guard.credentials([header.as_bytes()], []),
        Credentials::Bearer(_)
    ));

    let mut group = c.benchmark_group(format!("guard/{}", alg::name(fixture.alg())));
    group.bench_function("verify_only", |b| {
        b.iter(|| fixture.verify_tokenward(black_box(fixture.token())));
    });
    group.bench_function("guard/no_subscriber", |b| {
        b.to_async(rt).iter(|| run(&guard));
    });
    group.bench_function("guard/anomaly_detectors", |b| {
        b.to_async(rt).iter(|| run(&with_anomaly));
    });
    group.bench_function("guard/ban_in_force", |b| {
        b.to_async(rt).iter(|| run(&ban_in_force));
    });
    let filtered = tracing_subscriber::registry().with(
        Targets::new()
            .with_target("tokenward::audit", LevelFilter::OFF)
            .with_default(LevelFilter::INFO),
    );
    tracing::subscriber::with_default(filtered, || {
        group.bench_function("guard/audit_filtered", |b| {
            b.to_async(rt).iter(|| run(&guard));
        });
    });
    let formatted = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(formatted, || {
        group.bench_function("guard/audit_formatted", |b| {
            b.to_async(rt).iter(|| run(&guard));
        });
    });
    group.finish();
}

fn main() -> Result<(), FixtureError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let fixtures = [Algorithm::HS256, Algorithm::EdDSA]
        .into_iter()
        .map(Fixture::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut criterion = Criterion::default().configure_from_args();
    for fixture in &fixtures {
        bench(&mut criterion, fixture, &rt);
    }
    criterion.final_summary();
    Ok(())
}
