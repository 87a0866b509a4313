//! What a million revocations cost in PostgreSQL, and what is left once they expired:
//! `PgRevocationStore::import_tokens` of 1 000 000 `jti`s (one transaction), the size of
//! the `revocations` table with its indexes, the bounded purge once every row expired
//! (`PgBackend::purge_expired`, batches of 10 000), and the size after a plain `VACUUM`
//! (what autovacuum does on its own; no `VACUUM FULL`, no lock on readers). Then the size
//! of 10 000 refresh families rotated 4 times each (`refresh_families` and
//! `refresh_history` with their indexes).
//!
//! PostgreSQL: `DATABASE_URL` or `postgres://postgres@127.0.0.1:5432/postgres`, in a fresh
//! schema, dropped at the end. `TOKENWARD_BENCH_QUICK=1`: 100 000 rows.
//!
//! `cargo bench -p tokenward-bench --bench postgres_storage`; results in `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use std::convert::Infallible;
use std::sync::Arc;
use tokenward_bench::harness::{BoxError, exit_code, runtime};

use tokenward_core::{Clock, IssuerScope, StoreId, SystemClock};
use tokenward_postgres::{PgBackend, PgConfig, PgRefreshStore, PgRevocationStore};
use tokenward_refresh::{MintRequest, MintedToken, RefreshEngine};
use tokenward_revocation::MemoryRevocationStore;
use tokenward_testsupport::unique_schema;

/// Refresh families of the sizing run, and rotations of each.
const FAMILIES: usize = 10_000;
const ROTATIONS: usize = 4;

/// How long the imported revocations live.
const LIFETIME: Duration = Duration::from_secs(20);

fn main() -> std::process::ExitCode {
    exit_code(run())
}

async fn size(backend: &PgBackend) -> Result<(i64, i64), BoxError> {
    let s = backend.schema();
    let row: (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM {s}.revocations), \
                pg_total_relation_size('{s}.revocations')"
    ))
    .fetch_one(backend.pool())
    .await?;
    Ok(row)
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn run() -> Result<(), BoxError> {
    let rows: usize = if std::env::var_os("TOKENWARD_BENCH_QUICK").is_some() {
        100_000
    } else {
        1_000_000
    };
    runtime(Some(2))?.block_on(async {
        let url = tokenward_testsupport::database_url();
        let schema = unique_schema("bench_pg_storage");
        let config = PgConfig::new(url).schema(schema).purge_interval(None);
        let backend = PgBackend::connect(&config)
            .await
            .map_err(|e| format!("PostgreSQL for the bench (set DATABASE_URL): {e}"))?;
        let result = measure(&backend, rows).await;
        let drop = format!("DROP SCHEMA {} CASCADE", backend.schema());
        sqlx::query(&drop).execute(backend.pool()).await?;
        result
    })
}

async fn measure(backend: &PgBackend, rows: usize) -> Result<(), BoxError> {
    let store = PgRevocationStore::new(backend.clone());
    let until = SystemClock.now().saturating_add(LIFETIME);
    // Ids as long as a scoped jti (a 16-character issuer tag, `:`, a UUID).
    let ids: Vec<StoreId<'static>> = (0..rows)
        .map(|i| {
            StoreId::new(format!(
                "AbCdEfGhIjKlMnOp:{i:08x}-7c1e-4f0a-9b3d-5e2f8a6c4d10"
            ))
        })
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let report = store
        .import_tokens(ids.into_iter().map(|id| (id, until)))
        .await?;
    let import = start.elapsed();
    if report.imported != rows as u64 {
        return Err(format!("imported {} of {rows}", report.imported).into());
    }
    let (live, live_size) = size(backend).await?;
    let wait = until.saturating_duration_since(SystemClock.now()) + Duration::from_secs(1);
    tokio::time::sleep(wait).await;
    let start = Instant::now();
    let purged = backend.purge_expired().await?;
    let purge = start.elapsed();
    let (left, purged_size) = size(backend).await?;
    sqlx::query(&format!("VACUUM {}.revocations", backend.schema()))
        .execute(backend.pool())
        .await?;
    let (_, vacuumed_size) = size(backend).await?;
    println!("\n| step | rows | table + indexes | time, or size per family |");
    println!("|---|---|---|---|");
    println!(
        "| import {rows} revocations (one transaction) | {live} | {} | {:.1} s ({:.0} rows/s) |",
        mib(live_size),
        import.as_secs_f64(),
        rows as f64 / import.as_secs_f64()
    );
    println!(
        "| all expired, `purge_expired` | {left} (deleted {purged}) | {} | {:.1} s |",
        mib(purged_size),
        purge.as_secs_f64()
    );
    println!(
        "| then `VACUUM` (autovacuum's job) | {left} | {} | – |",
        mib(vacuumed_size)
    );
    if left != 0 {
        return Err(format!("{left} expired rows left after the purge").into());
    }
    families(backend).await
}

fn mint(req: MintRequest<'_>) -> Result<MintedToken, Infallible> {
    Ok(MintedToken::new("access", req.covered_until))
}

/// 10 000 families, each rotated 4 times (its history then holds 3 hashes), from 8 tasks.
async fn families(backend: &PgBackend) -> Result<(), BoxError> {
    let engine = Arc::new(RefreshEngine::new(
        Arc::new(PgRefreshStore::new(backend.clone())),
        Arc::new(MemoryRevocationStore::new()),
        IssuerScope::new("https://bench.tokenward.test"),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let engine = Arc::clone(&engine);
        tasks.spawn(async move {
            for i in (task..FAMILIES).step_by(8) {
                let sub = StoreId::new(format!("user-{i}"))?;
                let login = engine.issue(&sub, mint).await?;
                let mut token = login.refresh_token.expose().to_owned();
                for _ in 0..ROTATIONS {
                    token = engine
                        .rotate(&token, None, mint)
                        .await?
                        .refresh_token
                        .expose()
                        .to_owned();
                }
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let s = backend.schema();
    let (families, history, bytes): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM {s}.refresh_families), \
                (SELECT count(*) FROM {s}.refresh_history), \
                pg_total_relation_size('{s}.refresh_families') \
                + pg_total_relation_size('{s}.refresh_history')"
    ))
    .fetch_one(backend.pool())
    .await?;
    println!(
        "| {families} refresh families, {ROTATIONS} rotations each ({history} history rows) | \
         {} | {} | {:.0} bytes per family |",
        families + history,
        mib(bytes),
        bytes as f64 / families as f64
    );
    Ok(())
}
