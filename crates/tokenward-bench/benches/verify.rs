//! Full-policy verification: tokenward's `Validator::verify` against `jsonwebtoken::decode`,
//! side by side per algorithm, with the same key and the same ring crypto
//! (see `tokenward_bench::Fixture`).
//!
//! `cargo bench -p tokenward-bench --bench verify`; results in `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::Criterion;
use tokenward_bench::{ALGORITHMS, Fixture, FixtureError};
use tokenward_claims::alg;

fn verify(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group(format!("verify/{}", alg::name(fixture.alg())));
    group.bench_function("tokenward", |b| {
        b.iter(|| fixture.verify_tokenward(black_box(fixture.token())));
    });
    group.bench_function("jsonwebtoken", |b| {
        b.iter(|| fixture.decode_jsonwebtoken(black_box(fixture.token())));
    });
    group.finish();
}

fn main() -> Result<(), FixtureError> {
    // Every fixture is built and checked (both sides accept its token) before anything is
    // measured, so no benchmark can silently time an error path.
    let fixtures = ALGORITHMS
        .into_iter()
        .map(Fixture::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut criterion = Criterion::default().configure_from_args();
    for fixture in &fixtures {
        verify(&mut criterion, fixture);
    }
    criterion.final_summary();
    Ok(())
}
