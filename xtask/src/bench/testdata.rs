//! Fixed results for the tests of the report: criterion estimates, harness output, and the
//! golden text they render to (`xtask/testdata/bench-sections.md`).

use std::path::Path;

use super::results::{Criterion, criterion_dir};
use crate::workdir::WorkDir;

/// A fresh directory for a test, removed at its end.
pub(super) fn temp_dir() -> WorkDir {
    WorkDir::create("xtask-bench-test").unwrap()
}

/// Writes criterion's `estimates.json` for `group`/`function` under `target`, with a median
/// that differs from the mean (the mean is what counts).
pub(super) fn estimate_file(target: &Path, group: &str, function: &str, mean: f64) {
    let dir = target
        .join("criterion")
        .join(criterion_dir(group))
        .join(criterion_dir(function))
        .join("new");
    std::fs::create_dir_all(&dir).unwrap();
    let (low, high) = (mean * 0.99, mean * 1.02);
    let json = format!(
        r#"{{"mean":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{low},"upper_bound":{high}}},"point_estimate":{mean},"standard_error":1.5}},"median":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}},"point_estimate":1.5,"standard_error":0.1}},"median_abs_dev":null,"slope":null,"std_dev":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}},"point_estimate":1.5,"standard_error":0.1}}}}"#
    );
    std::fs::write(dir.join("estimates.json"), json).unwrap();
}

/// [`criterion_results`] in a fresh directory (removed when the first value is dropped).
pub(super) fn criterion_fixture() -> (WorkDir, Criterion) {
    let dir = temp_dir();
    criterion_results(dir.path());
    let criterion = Criterion {
        dir: dir.path().join("criterion"),
    };
    (dir, criterion)
}

/// Criterion results under `target` for every group the report reads: some targets met,
/// some missed.
fn criterion_results(target: &Path) {
    for (alg, ours, theirs) in [
        ("HS256", 700.0, 1000.0),
        ("RS256", 30_500.0, 30_000.0),
        ("ES256", 41_000.0, 42_000.0),
        ("EdDSA", 21_000.0, 20_000.0),
    ] {
        estimate_file(target, &format!("verify/{alg}"), "tokenward", ours);
        estimate_file(target, &format!("verify/{alg}"), "jsonwebtoken", theirs);
    }
    for (alg, verify, added) in [("HS256", 690.0, 450.0), ("EdDSA", 20_900.0, 1_200.0)] {
        let group = format!("guard/{alg}");
        estimate_file(target, &group, "verify_only", verify);
        estimate_file(target, &group, "guard/no_subscriber", verify + added);
        estimate_file(
            target,
            &group,
            "guard/anomaly_detectors",
            verify + added + 60.0,
        );
        estimate_file(target, &group, "guard/ban_in_force", verify + added + 200.0);
        estimate_file(
            target,
            &group,
            "guard/audit_filtered",
            verify + added + 30.0,
        );
        estimate_file(
            target,
            &group,
            "guard/audit_formatted",
            verify + added + 900.0,
        );
    }
    for (scenario, ours, theirs) in [
        ("ratelimit/admit/1_key", 55.0, 50.0),
        ("ratelimit/admit/10k_keys", 66.0, 52.0),
        ("ratelimit/deny/1_key", 48.0, 47.0),
        ("ratelimit/deny/10k_keys", 70.0, 60.0),
    ] {
        estimate_file(target, scenario, "tokenward_now", ours);
        estimate_file(target, scenario, "governor", theirs);
        estimate_file(target, scenario, "tokenward", ours + 40.0);
        estimate_file(target, scenario, "tokenward_polled", ours + 20.0);
    }
}

/// What the `http` harness prints (its tables, its `@bench` lines, other lines).
pub(super) const HTTP_OUTPUT: &str = "\
round 1 of 7
| algorithm | server | req/s | p50 µs | p99 µs |
|---|---|---|---|---|
| HS256 | tokenward | 41907 | 679.3 | 1810.2 |
@bench http/HS256/tokenward rps=41907 p50_us=679.3 p99_us=1810.2 rounds=7
@bench http/HS256/tokenward_axum07 rps=43000 p50_us=660.0 p99_us=1700.5 rounds=7
@bench http/HS256/jwt_authorizer rps=42500 p50_us=670.1 p99_us=1750.0 rounds=7
@bench http/HS256/no_auth_axum08 rps=52000 p50_us=540.0 p99_us=1400.0 rounds=7
@bench http/HS256/no_auth_axum07 rps=53000 p50_us=530.0 p99_us=1390.0 rounds=7
@bench http/EdDSA/tokenward rps=30100 p50_us=900.0 p99_us=2500.0 rounds=7
@bench http/EdDSA/tokenward_axum07 rps=30500 p50_us=890.0 p99_us=2400.0 rounds=7
@bench http/EdDSA/jwt_authorizer rps=29000 p50_us=950.0 p99_us=2600.0 rounds=7
@bench http/EdDSA/no_auth_axum08 rps=52100 p50_us=541.0 p99_us=1401.0 rounds=7
@bench http/EdDSA/no_auth_axum07 rps=53100 p50_us=531.0 p99_us=1391.0 rounds=7
@bench http/HS256/ratio rps_ratio_median=0.9870 rps_ratio_min=0.9500 rps_ratio_max=1.0100 rounds_at_least_1=2 rounds=7
@bench http/HS256/ratio_axum07 rps_ratio_median=1.0120 rps_ratio_min=0.9900 rps_ratio_max=1.0400 rounds_at_least_1=5 rounds=7
@bench http/EdDSA/ratio rps_ratio_median=1.0380 rps_ratio_min=1.0010 rps_ratio_max=1.0700 rounds_at_least_1=7 rounds=7
@bench http/EdDSA/ratio_axum07 rps_ratio_median=1.0510 rps_ratio_min=1.0200 rps_ratio_max=1.0900 rounds_at_least_1=7 rounds=7
load average at the end 1.23
";

/// What the `demo_redis` harness prints.
pub(super) const REDIS_OUTPUT: &str = "\
round 1: 18000 req/s
  per request: EVALSHA 1.000, GET 0.002
  per request: EVALSHA 1.000, GET 0.001
@bench redis/me rps=18234 p50_us=3400.5 p99_us=5100.2 round_trips_per_request=1.002 commands_per_request=3.004 rounds=3
@bench redis/me_paced_10 offered_rps=1823 rps=1822 p50_us=180.2 p99_us=420.7 p999_us=800.1 max_us=1500.0
@bench redis/jwks_paced_10 offered_rps=1823 rps=1823 p50_us=120.1 p99_us=300.3 p999_us=600.6 max_us=900.0
@bench redis/me_paced_50 offered_rps=9117 rps=9100 p50_us=350.0 p99_us=1250.5 p999_us=2500.0 max_us=4000.0
@bench redis/jwks_paced_50 offered_rps=9117 rps=9117 p50_us=200.0 p99_us=700.0 p999_us=1500.0 max_us=2000.0
@bench redis/me_paced_80 offered_rps=14587 rps=14580 p50_us=450.0 p99_us=2800.0 p999_us=5600.0 max_us=3000.0
@bench redis/jwks_paced_80 offered_rps=14587 rps=14587 p50_us=250.0 p99_us=900.0 p999_us=1900.0 max_us=1800.0
";

/// The golden file: what the judged sections render from the results above (the text), then
/// the JSON line, then a newline.
pub(super) const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/bench-sections.md");

/// The golden sections' text and JSON line.
pub(super) fn golden_sections() -> (String, String) {
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    let (text, json) = golden.trim_end_matches('\n').rsplit_once('\n').unwrap();
    (text.to_owned(), json.to_owned())
}
