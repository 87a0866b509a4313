//! The report of one `cargo xtask bench` run: the markdown text (what the run was, on which
//! machine, a section per area, the commands) and the figures of its last line, a JSON
//! object with every ratio and the targets missed.

use std::fmt::Write as _;
use std::time::Duration;

use super::results::{Criterion, Estimate, tables};
use super::sections;
use crate::Result;

/// What one run produced, to be reported.
pub(super) struct Run<'a> {
    /// A `--quick` run.
    pub(super) quick: bool,
    /// How long the benchmarks took.
    pub(super) took: Duration,
    /// The machine table ([`super::machine::Machine::table`]).
    pub(super) machine: &'a str,
    /// Where criterion wrote its results.
    pub(super) criterion: &'a Criterion,
    /// The stdout of the `http` harness.
    pub(super) http: &'a str,
    /// The stdout of the `demo_redis` harness.
    pub(super) demo_redis: &'a str,
    /// The title and stdout of each full-run-only harness that ran.
    pub(super) full_run_only: &'a [(&'static str, String)],
    /// Every command run, as a person would type it.
    pub(super) commands: &'a [String],
}

/// The report and its figures.
pub(super) struct Report {
    pub(super) text: String,
    ratios: Vec<Ratio>,
}

/// A figure, with whether it met its target (`None`: it has none), for the JSON line.
struct Ratio {
    key: String,
    value: f64,
    met: Option<bool>,
}

impl Report {
    /// The report of `run`; an error when a result it needs is missing.
    pub(super) fn render(run: &Run<'_>) -> Result<Report> {
        let mut report = Report::new();
        let mode = if run.quick {
            "`cargo xtask bench --quick` (criterion warm-up 0.5 s and measurement 1.5 s; harnesses with `TOKENWARD_BENCH_QUICK=1`: `http` three interleaved rounds of 1 s, `demo_redis` one round and paced runs of 3 s)"
        } else {
            "`cargo xtask bench` (criterion defaults: 3 s warm-up, 5 s measurement, 100 samples; harnesses: `http` seven interleaved rounds of 3 s, `demo_redis` three rounds of 10 s then paced runs of 10 s, medians)"
        };
        let _ = writeln!(
            report.text,
            "All figures below come from **one run** of {mode}, taking {:.0} s; every comparison is between numbers measured side by side in that run.\n",
            run.took.as_secs_f64()
        );
        report.text.push_str(run.machine);
        sections::verification(run.criterion, &mut report)?;
        sections::guard(run.criterion, &mut report)?;
        sections::ratelimit(run.criterion, &mut report)?;
        sections::http(run.http, &mut report)?;
        sections::redis_me(run.demo_redis, &mut report)?;
        for (title, output) in run.full_run_only {
            let _ = writeln!(
                report.text,
                "\n### {title}\n\nThe harness's own tables, as printed:"
            );
            report.text.push_str(&tables(output));
        }
        let _ = writeln!(report.text, "\n### Commands\n\n```sh");
        for line in run.commands {
            let _ = writeln!(report.text, "{line}");
        }
        let _ = writeln!(report.text, "```");
        Ok(report)
    }

    pub(super) fn new() -> Report {
        Report {
            text: String::new(),
            ratios: Vec::new(),
        }
    }

    /// Starts a table: its `### title` (if any), the paragraph introducing it, and the
    /// table's header row with `columns`.
    pub(super) fn table(&mut self, title: Option<&str>, intro: &str, columns: &[&str]) {
        if let Some(title) = title {
            let _ = writeln!(self.text, "\n### {title}");
        }
        let _ = writeln!(self.text, "\n{intro}\n");
        let _ = writeln!(self.text, "| {} |", columns.join(" | "));
        let _ = writeln!(self.text, "|{}", "---|".repeat(columns.len()));
    }

    /// Records a figure for the JSON line; `met` is whether it met its target, `None` if it
    /// has none.
    pub(super) fn ratio(&mut self, key: String, value: f64, met: Option<bool>) {
        self.ratios.push(Ratio { key, value, met });
    }

    /// The JSON object of the ratios (4 decimals; `null` when not finite), plus the keys of
    /// the missed targets.
    pub(super) fn json(&self) -> String {
        let mut fields: Vec<String> = self
            .ratios
            .iter()
            .map(|r| {
                let value = if r.value.is_finite() {
                    format!("{:.4}", r.value)
                } else {
                    "null".to_owned()
                };
                format!("{}:{value}", serde_json::Value::from(r.key.as_str()))
            })
            .collect();
        let missed: Vec<&str> = self
            .ratios
            .iter()
            .filter(|r| r.met == Some(false))
            .map(|r| r.key.as_str())
            .collect();
        fields.push(format!(
            "\"targets_missed\":{}",
            serde_json::Value::from(missed)
        ));
        format!("{{{}}}", fields.join(","))
    }
}

/// A duration in ns, as ns below 1 µs, else as µs.
pub(super) fn fmt_ns(ns: f64) -> String {
    if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

/// `mean [low, high]`, the unit written once.
pub(super) fn fmt_estimate(e: Estimate) -> String {
    format!(
        "{} [{}, {}]",
        fmt_ns(e.mean),
        fmt_ns(e.low)
            .trim_end_matches(" ns")
            .trim_end_matches(" µs"),
        fmt_ns(e.high)
    )
}

/// A target's "met" cell; a miss stands out.
pub(super) fn yes_no(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        HTTP_OUTPUT, REDIS_OUTPUT, criterion_fixture, golden_sections, temp_dir,
    };
    use super::*;

    #[test]
    fn json_lists_missed_targets() {
        let mut report = Report::new();
        report.ratio("a".to_owned(), 0.5, Some(true));
        report.ratio("b".to_owned(), 1.25, Some(false));
        report.ratio("c".to_owned(), f64::NAN, None);
        report.ratio("d\"e".to_owned(), 2.0, Some(false));
        assert_eq!(
            report.json(),
            r#"{"a":0.5000,"b":1.2500,"c":null,"d\"e":2.0000,"targets_missed":["b","d\"e"]}"#
        );
        assert_eq!(Report::new().json(), r#"{"targets_missed":[]}"#);
    }

    #[test]
    fn tables_start_with_title_intro_and_header() {
        let mut report = Report::new();
        report.table(Some("1. T"), "Intro.", &["a", "`b`"]);
        report.table(None, "More.", &["c"]);
        assert_eq!(
            report.text,
            "\n### 1. T\n\nIntro.\n\n| a | `b` |\n|---|---|\n\nMore.\n\n| c |\n|---|\n"
        );
    }

    #[test]
    fn times_and_estimates_are_formatted() {
        assert_eq!(fmt_ns(999.94), "999.9 ns");
        assert_eq!(fmt_ns(1_000.0), "1.00 µs");
        assert_eq!(
            fmt_estimate(Estimate {
                mean: 1_351.54,
                low: 990.0,
                high: 1_362.39
            }),
            "1.35 µs [990.0, 1.36 µs]"
        );
        assert_eq!((yes_no(true), yes_no(false)), ("yes", "**no**"));
    }

    /// The whole report of a full run and of a quick one, from fixed results.
    #[test]
    fn reports_are_rendered_from_the_results() {
        let (_dir, criterion) = criterion_fixture();
        let full_run_only = [(
            "6. Refresh rotation, memory and Redis (`refresh_latency`)",
            "noise\nStore:\n| a | b |\n|---|---|\n| 1 | 2 |\n@bench x y=1\n".to_owned(),
        )];
        let commands = ["cargo bench -p tokenward-bench --bench verify".to_owned()];
        let mut run = Run {
            quick: false,
            took: Duration::from_millis(820_600),
            machine: "| | |\n|---|---|\n| cores (available parallelism) | 2 |\n",
            criterion: &criterion,
            http: HTTP_OUTPUT,
            demo_redis: REDIS_OUTPUT,
            full_run_only: &full_run_only,
            commands: &commands,
        };
        let (sections, json) = golden_sections();
        let report = Report::render(&run).unwrap();
        assert_eq!(report.json(), json);
        let head = "All figures below come from **one run** of `cargo xtask bench` (criterion defaults: 3 s warm-up, 5 s measurement, 100 samples; harnesses: `http` seven interleaved rounds of 3 s, `demo_redis` three rounds of 10 s then paced runs of 10 s, medians), taking 821 s; every comparison is between numbers measured side by side in that run.\n\n| | |\n|---|---|\n| cores (available parallelism) | 2 |\n";
        let tail = "\n### 6. Refresh rotation, memory and Redis (`refresh_latency`)\n\nThe harness's own tables, as printed:\n\nStore:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n### Commands\n\n```sh\ncargo bench -p tokenward-bench --bench verify\n```\n";
        assert_eq!(report.text, format!("{head}{sections}{tail}"));

        run.quick = true;
        run.full_run_only = &[];
        let quick = Report::render(&run).unwrap();
        assert!(
            quick
                .text
                .starts_with("All figures below come from **one run** of `cargo xtask bench --quick` (criterion warm-up 0.5 s")
        );
        assert!(quick.text.contains(&sections));
        assert!(!quick.text.contains("### 6."));
        assert_eq!(quick.json(), json);
    }

    #[test]
    fn a_missing_result_is_an_error() {
        let dir = temp_dir();
        let criterion = Criterion {
            dir: dir.path().join("criterion"),
        };
        let run = Run {
            quick: true,
            took: Duration::ZERO,
            machine: "",
            criterion: &criterion,
            http: HTTP_OUTPUT,
            demo_redis: REDIS_OUTPUT,
            full_run_only: &[],
            commands: &[],
        };
        let err = Report::render(&run).err().unwrap().to_string();
        assert!(err.contains("did the bench run?"), "{err}");
    }
}
