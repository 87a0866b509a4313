//! `RevocationStore::check` and `revoke_token` on the in-memory store holding 100 000 live
//! revocations (80 % tokens, 15 % sessions, 5 % subjects; see
//! `tokenward_bench::revocation::Population`).
//!
//! Driven through a Tokio current-thread runtime with criterion's `to_async`: the timed loop
//! runs inside one `block_on` and awaits each call, so a figure is the cost of one call as an
//! async caller pays it (including the boxed `async_trait` future), without a per-iteration
//! `block_on`.
//!
//! `cargo bench -p tokenward-bench --bench revocation`; results in `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use tokenward_bench::revocation::{Population, T0, TokenIds, token_id};
use tokenward_core::{Clock, ManualClock, StoreId, TokenRef};
use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevocationStore, RevokedBy};

/// Live revocations in the store.
const LIVE: usize = 100_000;

/// Distinct tokens each `check` benchmark cycles through, so that lookups hit different hash
/// buckets instead of one cache-hot entry.
const TOKENS: usize = 4096;

/// Fresh `jti`s the `revoke_token` benchmark cycles through (a power of two).
const REVOKE_IDS: usize = 1 << 18;

/// The manual clock moves this much per `revoke_token` ...
const TICK: Duration = Duration::from_micros(1);
/// ... and each of those revocations lasts this long, so the store holds about
/// `REVOKE_TTL / TICK` = 10 000 of them on top of the 100 000, expiring and being swept as
/// the benchmark goes: the steady state of a store under a constant revocation rate.
const REVOKE_TTL: Duration = Duration::from_millis(10);

#[expect(
    clippy::indexing_slicing,
    reason = "indexes are reduced modulo the length of non-empty slices"
)]
fn bench_check(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    store: &MemoryRevocationStore,
    cases: &[(&str, Vec<TokenRef<'_>>)],
) {
    let mut group = c.benchmark_group("revocation/memory_100k");
    for (name, tokens) in cases {
        let mut i = 0;
        group.bench_function(*name, |b| {
            b.to_async(rt).iter(|| {
                i = (i + 1) % tokens.len();
                store.check(black_box(&tokens[i]))
            });
        });
    }
    group.finish();
}

#[expect(
    clippy::indexing_slicing,
    reason = "the index is masked below REVOKE_IDS, the length of ids"
)]
fn bench_revoke(
    c: &mut Criterion,
    ids: &[StoreId<'static>],
    rt: &tokio::runtime::Runtime,
    store: &MemoryRevocationStore,
    clock: &ManualClock,
) {
    let mut group = c.benchmark_group("revocation/memory_100k");
    let mut i = 0;
    group.bench_function("revoke_token", |b| {
        b.to_async(rt).iter(|| {
            i = (i + 1) & (REVOKE_IDS - 1);
            clock.advance(TICK);
            let until = clock.now().saturating_add(REVOKE_TTL);
            store.revoke_token(black_box(&ids[i]), until)
        });
    });
    group.finish();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let clock = ManualClock::new(T0);
    let store = MemoryRevocationStore::with_clock(Arc::new(clock.clone()));
    let population = Population::new(LIVE);
    rt.block_on(population.revoke_into(&store, T0))?;
    if store.len() != LIVE {
        return Err(format!("expected {LIVE} live revocations, found {}", store.len()).into());
    }

    let make =
        |f: &dyn Fn(u64) -> TokenIds| -> Vec<TokenIds> { (0..TOKENS as u64).map(f).collect() };
    let active = make(&|n| population.active_token(n, T0));
    let revoked = make(&|n| population.revoked_token(n * 19, T0));
    let subject = make(&|n| population.subject_revoked_token(n));
    let cases: Vec<(&str, Vec<TokenRef<'_>>, RevocationStatus)> = vec![
        (
            "check/active",
            active
                .iter()
                .map(TokenIds::token_ref)
                .collect::<Result<_, _>>()?,
            RevocationStatus::Active,
        ),
        (
            "check/revoked_token",
            revoked
                .iter()
                .map(TokenIds::token_ref)
                .collect::<Result<_, _>>()?,
            RevocationStatus::Revoked(RevokedBy::Token),
        ),
        (
            "check/revoked_subject",
            subject
                .iter()
                .map(TokenIds::token_ref)
                .collect::<Result<_, _>>()?,
            RevocationStatus::Revoked(RevokedBy::Subject { before: T0 }),
        ),
    ];
    // Every token gets the answer its case claims before anything is measured.
    for (name, tokens, expected) in &cases {
        for token in tokens {
            let status = rt.block_on(store.check(token))?;
            if status != *expected {
                return Err(format!("{name}: {token:?} is {status:?}, not {expected:?}").into());
            }
        }
    }
    let cases: Vec<(&str, Vec<TokenRef<'_>>)> = cases
        .into_iter()
        .map(|(name, tokens, _)| (name, tokens))
        .collect();

    let mut criterion = Criterion::default().configure_from_args();
    bench_check(&mut criterion, &rt, &store, &cases);
    // Last: it moves the clock (by at most a few minutes of manual time, well within the
    // population's 15-minute lifetime).
    let ids: Vec<StoreId<'static>> = (0..REVOKE_IDS as u64)
        .map(|n| StoreId::new(token_id((1 << 50) + n)))
        .collect::<Result<_, _>>()?;
    bench_revoke(&mut criterion, &ids, &rt, &store, &clock);
    criterion.final_summary();
    println!(
        "after revoke_token: {} live revocations, {} stored, manual clock +{:?}",
        store.len(),
        store.stored(),
        clock.now().saturating_duration_since(T0)
    );
    Ok(())
}
