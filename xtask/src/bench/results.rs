//! Reading what the benchmarks measured: criterion's `estimates.json` files, the `@bench`
//! lines of the own harnesses, and the harnesses' markdown tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::Result;

/// A criterion mean and its 95 % confidence interval, in ns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Estimate {
    pub(super) mean: f64,
    pub(super) low: f64,
    pub(super) high: f64,
}

/// Criterion's results: `<dir>/<group>/<function>/new/estimates.json`.
pub(super) struct Criterion {
    /// `target/criterion`.
    pub(super) dir: PathBuf,
}

impl Criterion {
    /// The mean of criterion's `group`/`function`, in ns, with its 95 % interval.
    pub(super) fn estimate(&self, group: &str, function: &str) -> Result<Estimate> {
        let path = self
            .dir
            .join(criterion_dir(group))
            .join(criterion_dir(function))
            .join("new/estimates.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e} (did the bench run?)", path.display()))?;
        parse_estimate(&text).ok_or_else(|| format!("{}: no mean in it", path.display()).into())
    }
}

/// Criterion's directory name for a group or function id.
pub(super) fn criterion_dir(id: &str) -> String {
    id.chars()
        .map(|c| if "/\\?\"<>|*:".contains(c) { '_' } else { c })
        .collect()
}

/// The `mean` of a criterion `estimates.json`: its point estimate and 95 % interval.
fn parse_estimate(json: &str) -> Option<Estimate> {
    let json: serde_json::Value = serde_json::from_str(json).ok()?;
    let number = |pointer: &str| json.pointer(pointer)?.as_f64();
    Some(Estimate {
        mean: number("/mean/point_estimate")?,
        low: number("/mean/confidence_interval/lower_bound")?,
        high: number("/mean/confidence_interval/upper_bound")?,
    })
}

/// The `@bench NAME key=value ...` lines of a harness's output, by name.
pub(super) struct BenchLines(BTreeMap<String, BTreeMap<String, f64>>);

impl BenchLines {
    /// Reads the `@bench` lines of `output`; other lines, and values that are not numbers,
    /// are skipped. A name printed twice keeps its last line.
    pub(super) fn parse(output: &str) -> BenchLines {
        let mut results = BTreeMap::new();
        for line in output.lines() {
            let Some(rest) = line.strip_prefix("@bench ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let Some(name) = words.next() else { continue };
            let values = words
                .filter_map(|w| w.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect();
            results.insert(name.to_owned(), values);
        }
        BenchLines(results)
    }

    /// `key` of the line `name`.
    pub(super) fn get(&self, name: &str, key: &str) -> Result<f64> {
        self.0
            .get(name)
            .and_then(|v| v.get(key))
            .copied()
            .ok_or_else(|| format!("no `@bench {name} {key}=…` line in the harness output").into())
    }

    /// Every line's name, sorted.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// The markdown tables of a harness's output (lines starting with `|`), with the line of
/// text just before each table as its caption.
pub(super) fn tables(output: &str) -> String {
    // `@bench` lines are for xtask, not for the reader.
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| !l.starts_with("@bench "))
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with('|') {
            continue;
        }
        let first_row = i == 0 || lines.get(i - 1).is_none_or(|prev| !prev.starts_with('|'));
        if first_row {
            let before = lines.get(..i).unwrap_or_default();
            if let Some(caption) = before.iter().rev().find(|l| !l.trim().is_empty()) {
                let _ = writeln!(out, "\n{}\n", caption.trim());
            } else {
                out.push('\n');
            }
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_json_mean_is_read() {
        let json = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1342.25,"upper_bound":1362.39},"point_estimate":1351.54,"standard_error":5.1},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1337.28}}"#;
        assert_eq!(
            parse_estimate(json),
            Some(Estimate {
                mean: 1351.54,
                low: 1342.25,
                high: 1362.39
            })
        );
        assert_eq!(parse_estimate("{}"), None);
        assert_eq!(parse_estimate("not json"), None);
        assert_eq!(
            parse_estimate(
                r#"{"mean": {"point_estimate": 1e3, "confidence_interval": {"lower_bound": 9.5e2, "upper_bound": 1050}}}"#
            ),
            Some(Estimate {
                mean: 1000.0,
                low: 950.0,
                high: 1050.0
            })
        );
    }

    #[test]
    fn estimates_are_read_from_criterion_directories() {
        let dir = super::super::testdata::temp_dir();
        let criterion = Criterion {
            dir: dir.path().join("criterion"),
        };
        assert!(
            criterion
                .estimate("guard/HS256", "guard/no_subscriber")
                .is_err()
        );
        super::super::testdata::estimate_file(
            dir.path(),
            "guard/HS256",
            "guard/no_subscriber",
            500.0,
        );
        let estimate = criterion
            .estimate("guard/HS256", "guard/no_subscriber")
            .unwrap();
        assert_eq!(estimate.mean, 500.0);
        assert!(
            dir.path()
                .join("criterion/guard_HS256/guard_no_subscriber/new/estimates.json")
                .is_file()
        );
    }

    #[test]
    fn criterion_dirs_replace_slashes() {
        assert_eq!(criterion_dir("guard/no_subscriber"), "guard_no_subscriber");
        assert_eq!(
            criterion_dir("ratelimit/admit/1_key"),
            "ratelimit_admit_1_key"
        );
    }

    #[test]
    fn bench_lines_are_parsed() {
        let out = "noise\n@bench http/HS256/tokenward rps=41907 p50_us=679.3 bad x=y\n| a |\n";
        let parsed = BenchLines::parse(out);
        assert_eq!(parsed.get("http/HS256/tokenward", "rps").unwrap(), 41907.0);
        assert_eq!(parsed.get("http/HS256/tokenward", "p50_us").unwrap(), 679.3);
        assert_eq!(parsed.names().collect::<Vec<_>>(), ["http/HS256/tokenward"]);
        for (name, key) in [
            ("http/HS256/tokenward", "x"),
            ("http/HS256/tokenward", "bad"),
            ("http/EdDSA/tokenward", "rps"),
        ] {
            let err = parsed.get(name, key).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("no `@bench {name} {key}=…` line in the harness output")
            );
        }
    }

    #[test]
    fn tables_keep_their_caption() {
        let out = "start\nStore A:\n\n| x | y |\n@bench x a=1\n|---|---|\n| 1 | 2 |\nend\n";
        assert_eq!(
            tables(out),
            "\nStore A:\n\n| x | y |\n|---|---|\n| 1 | 2 |\n"
        );
        assert_eq!(tables("| a |\n|---|\n"), "\n| a |\n|---|\n");
    }
}
