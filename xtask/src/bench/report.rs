//! The report of one `cargo xtask bench` run as it is written: its markdown text, table by
//! table, and the figures of its last line, a JSON object with every ratio and the targets
//! missed.

use std::fmt::Write as _;

use super::results::Estimate;

/// The report and its figures.
pub(super) struct Report {
    /// The markdown.
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
    /// An empty report.
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
}
