//! Latency under concurrency, which criterion does not give: closed loops of timed calls
//! started together ([`closed_loops`], [`Timings`]) and their nearest-rank percentiles
//! ([`LatencySummary`], [`percentile`]).
//!
//! ```
//! use std::time::Duration;
//! use tokenward_bench::latency::{LatencySummary, closed_loops, task_calls};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! // 2 tasks share 10 calls; each call is timed.
//! let mut timings = closed_loops(0..2, |task| async move {
//!     let mut timings = tokenward_bench::latency::Timings::default();
//!     for _call in task_calls(task, 2, 10) {
//!         timings.time(async { Ok::<_, std::io::Error>(()) }).await;
//!     }
//!     timings
//! })
//! .await?;
//! assert!(timings.errors.is_empty());
//! let summary = LatencySummary::from_samples(&mut timings.samples).unwrap();
//! assert_eq!(summary.count, 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Display;
use std::future::Future;
use std::iter::StepBy;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The column headers matching [`LatencySummary::micros_cells`].
pub const LATENCY_COLUMNS: &str = "p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | mean µs";

/// Latency percentiles of one benchmark configuration (nearest-rank: the smallest sample
/// with at least `p` % of the samples at or below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: usize,
    /// Mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest sample.
    pub max: Duration,
}

impl LatencySummary {
    /// Summarises `samples` (sorted in place); `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        let count = samples.len();
        let total: Duration = samples.iter().sum();
        let mean = total.checked_div(u32::try_from(count).ok()?)?;
        Some(LatencySummary {
            count,
            mean,
            p50: percentile(samples, 5_000)?,
            p90: percentile(samples, 9_000)?,
            p99: percentile(samples, 9_900)?,
            p999: percentile(samples, 9_990)?,
            max: *samples.last()?,
        })
    }

    /// p50, p90, p99, p99.9, max and mean in microseconds, as Markdown table cells (the
    /// columns of [`LATENCY_COLUMNS`]).
    pub fn micros_cells(&self) -> String {
        [self.p50, self.p90, self.p99, self.p999, self.max, self.mean]
            .map(micros)
            .join(" | ")
    }
}

/// The nearest-rank percentile of `sorted` (ascending), `per_10k` in hundredths of a per
/// cent (9 900 = p99): the sample at rank ⌈per_10k × n / 10 000⌉ (at least 1), in integers so
/// that no rounding moves it.
pub fn percentile(sorted: &[Duration], per_10k: usize) -> Option<Duration> {
    let rank = (per_10k.checked_mul(sorted.len())?).div_ceil(10_000).max(1);
    sorted.get(rank - 1).copied()
}

/// `d` in microseconds with one decimal.
pub fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// The timed calls of one closed loop (or of all of them, merged): every call's latency, and
/// the errors of those that failed.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// The latency of every call, in call order (until summarised).
    pub samples: Vec<Duration>,
    /// What went wrong, one entry per failed (or wrongly answered) call.
    pub errors: Vec<String>,
}

impl Timings {
    /// Room for `calls` samples, so recording one never reallocates.
    pub fn with_capacity(calls: usize) -> Self {
        Timings {
            samples: Vec::with_capacity(calls),
            errors: Vec::new(),
        }
    }

    /// Times `call` and records its latency, and its error if it failed; then yields to the
    /// runtime (not timed), so that the tasks interleave as a server's requests do. Returns
    /// the answer of a call that succeeded.
    pub async fn time<T, E: Display>(
        &mut self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        let start = Instant::now();
        let result = call.await;
        self.samples.push(start.elapsed());
        let answer = result.map_err(|e| self.errors.push(e.to_string())).ok();
        tokio::task::yield_now().await;
        answer
    }

    fn extend(&mut self, other: Timings) {
        self.samples.extend(other.samples);
        self.errors.extend(other.errors);
    }
}

/// The calls of task `task` of `tasks` when they share `total` calls: `task`, `task + tasks`,
/// `task + 2 × tasks`, … below `total`.
pub fn task_calls(task: usize, tasks: usize, total: usize) -> StepBy<Range<usize>> {
    (task..total).step_by(tasks.max(1))
}

/// Runs one closed loop per item of `inputs` (`task(item)` builds it), each in a Tokio task of
/// its own, all started together (behind a barrier, once every task is spawned), and returns
/// their timings merged.
pub async fn closed_loops<I, F, Fut>(
    inputs: I,
    mut task: F,
) -> Result<Timings, tokio::task::JoinError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Timings> + Send + 'static,
{
    let loops: Vec<Fut> = inputs.into_iter().map(&mut task).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(loops.len()));
    let handles: Vec<_> = loops
        .into_iter()
        .map(|closed_loop| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                closed_loop.await
            })
        })
        .collect();
    let mut all = Timings::default();
    for handle in handles {
        all.extend(handle.await?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = Duration::from_millis;
        // 1..=100 ms, shuffled: the p-th percentile is p ms.
        let mut samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        samples.swap(3, 70);
        let s = LatencySummary::from_samples(&mut samples).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(
            (s.p50, s.p90, s.p99, s.max),
            (ms(50), ms(90), ms(99), ms(100))
        );
        assert_eq!(s.p999, ms(100));
        assert_eq!(s.mean, Duration::from_micros(50_500));
        assert_eq!(
            s.micros_cells(),
            "50000.0 | 90000.0 | 99000.0 | 100000.0 | 100000.0 | 50500.0"
        );
        assert_eq!(percentile(&[ms(7)], 9_990), Some(ms(7)));
        assert_eq!(percentile(&[ms(1), ms(2)], 5_000), Some(ms(1)));
        assert_eq!(percentile(&[ms(1), ms(2)], 5_001), Some(ms(2)));
        assert_eq!(percentile(&[ms(1), ms(2)], 0), Some(ms(1)));
        assert_eq!(percentile(&[], 5_000), None);
        // 20 000 samples: p99.9 is the 19 980th, exactly (floats would say 19 981).
        let many: Vec<Duration> = (1..=20_000).map(Duration::from_nanos).collect();
        assert_eq!(percentile(&many, 9_990), Some(Duration::from_nanos(19_980)));
        assert_eq!(percentile(&many, 9_900), Some(Duration::from_nanos(19_800)));
        assert_eq!(LatencySummary::from_samples(&mut []), None);
    }

    #[test]
    fn tasks_share_the_calls_exactly() {
        let mut calls: Vec<usize> = (0..3).flat_map(|t| task_calls(t, 3, 10)).collect();
        calls.sort_unstable();
        assert_eq!(calls, (0..10).collect::<Vec<_>>());
        assert_eq!(task_calls(0, 1, 3).collect::<Vec<_>>(), [0, 1, 2]);
    }

    /// Every call of every loop is timed; failures are recorded with their error, answers
    /// returned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loops_time_every_call_and_keep_the_errors() {
        let all = closed_loops(0..4, |task| async move {
            let mut t = Timings::with_capacity(5);
            for call in task_calls(task, 4, 20) {
                let answer = t
                    .time(async move {
                        if call % 5 == 0 {
                            Err(format!("call {call} failed"))
                        } else {
                            Ok(call)
                        }
                    })
                    .await;
                assert_eq!(answer, (call % 5 != 0).then_some(call));
            }
            t
        })
        .await
        .unwrap();
        assert_eq!(all.samples.len(), 20);
        let mut errors = all.errors;
        errors.sort();
        assert_eq!(
            errors,
            [
                "call 0 failed",
                "call 10 failed",
                "call 15 failed",
                "call 5 failed"
            ]
        );
    }
}
