//! A blast in numbers: counts by answer, rates, and latency percentiles from HdrHistograms.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Answer, Blast, Load};

/// Latency percentiles, ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th.
    pub p90_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// 99.9th.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles of a histogram in µs.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: histogram.max() as f64 / 1000.0,
        }
    }
}

/// A new histogram of µs latencies (1 µs .. 1 h, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    // A true invariant: these bounds (low ≥ 1, high ≥ 2 × low, ≤ 5 digits) are always valid.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The blast in numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BlastSummary {
    /// The load shape.
    pub load: Option<Load>,
    /// Requests sent.
    pub sent: usize,
    /// `202`s.
    pub accepted_202: usize,
    /// `200`s (decided at once).
    pub decided_200: usize,
    /// Other HTTP statuses, by code.
    pub refused: Vec<(u16, usize)>,
    /// Transport failures.
    pub failed: usize,
    /// First failure message, if any.
    pub first_failure: Option<String>,
    /// Seconds from start to last answer.
    pub seconds: f64,
    /// Answered requests (any status) per second.
    pub answers_per_sec: f64,
    /// `202` + `200` per second: the accept rate.
    pub accept_rate: f64,
    /// Latency of `202`/`200` answers from intended send time.
    pub latency: Percentiles,
}

impl Blast {
    /// Counts and latency percentiles.
    pub fn summary(&self) -> BlastSummary {
        let mut refused = std::collections::BTreeMap::<u16, usize>::new();
        let mut summary = BlastSummary {
            load: Some(self.load),
            sent: self.records.len(),
            seconds: self.elapsed.as_secs_f64(),
            ..BlastSummary::default()
        };
        let mut latency = histogram();
        for record in &self.records {
            match &record.answer {
                Answer::Accepted(_) => summary.accepted_202 += 1,
                Answer::Decided(..) => summary.decided_200 += 1,
                Answer::Refused(code) => *refused.entry(*code).or_default() += 1,
                Answer::Failed(message) => {
                    summary.failed += 1;
                    summary.first_failure.get_or_insert_with(|| message.clone());
                }
            }
            if record.answer.request_id().is_some() {
                // Saturates at the histogram's bound rather than dropping a sample.
                latency.saturating_record(record.latency_us().max(1));
            }
        }
        summary.refused = refused.into_iter().collect();
        let seconds = summary.seconds.max(1e-6);
        summary.answers_per_sec = summary.sent as f64 / seconds;
        summary.accept_rate = (summary.accepted_202 + summary.decided_200) as f64 / seconds;
        summary.latency = Percentiles::of(&latency);
        summary
    }

    /// Accept rate and latency per time bucket, from the answer instants.
    pub fn timeline(&self, bucket: Duration) -> Vec<TrafficPoint> {
        let width = bucket.as_micros().max(1) as u64;
        let buckets = (self.elapsed.as_micros() as u64 / width + 1) as usize;
        let mut points: Vec<(u64, Histogram<u64>)> =
            (0..buckets).map(|_| (0, histogram())).collect();
        for record in &self.records {
            if record.answer.request_id().is_none() {
                continue;
            }
            if let Some((count, latency)) = points.get_mut((record.answered_us / width) as usize) {
                *count += 1;
                latency.saturating_record(record.latency_us().max(1));
            }
        }
        let seconds = bucket.as_secs_f64();
        points
            .into_iter()
            .enumerate()
            .map(|(i, (count, latency))| TrafficPoint {
                t: (i + 1) as f64 * seconds,
                accept_rate: count as f64 / seconds,
                p50_ms: latency.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: latency.value_at_quantile(0.99) as f64 / 1000.0,
            })
            .collect()
    }
}

/// One bucket of [`Blast::timeline`].
#[derive(Debug, Clone, Serialize)]
pub struct TrafficPoint {
    /// End of the bucket, seconds since the blast started.
    pub t: f64,
    /// Accepted (`202`/`200`) per second.
    pub accept_rate: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}
