//! What a run measures: latency distributions (HdrHistogram: exact counts, percentiles to
//! three significant digits whatever the spread) and the counts of each outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency told apart from longer ones: an hour, in microseconds.
const HIGHEST_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies recorded in microseconds.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(
            Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
        )
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> LatencySummary {
        let millis = |micros: u64| micros as f64 / 1000.0;
        let quantile = |q: f64| millis(self.0.value_at_quantile(q));
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.count(),
            p50_ms: quantile(0.50),
            p90_ms: quantile(0.90),
            p99_ms: quantile(0.99),
            max_ms: millis(self.0.max()),
        }
    }
}

/// Percentiles in milliseconds; all zero when nothing was recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A request the server refused (status and the error body's `error_type`), or that got no
/// answer at all (no status; the kind of transport error).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Rejection {
    pub status: Option<u16>,
    pub error_type: String,
}

/// One phase of a run (the creates, or the deletes): every flow ends in exactly one of
/// `reached`, `not_reached`, `timed_out` or `rejected`.
#[derive(Clone, Debug, Default)]
pub struct PhaseStats {
    /// From sending the request to its answer, for answers that accepted it.
    pub answered: Latencies,
    /// From sending the request to the first observation of the state it aims at (UP, gone).
    pub to_reached: Latencies,
    /// How late that first observation may be: from sending the last poll that did not see
    /// the state yet (or the request itself) to receiving the one that did.
    pub observation_window: Latencies,
    /// Flows whose request was accepted, in the order the answers came.
    pub accepted_flow_ids: Vec<String>,
    pub reached: u64,
    /// Flows that settled elsewhere (DOWN, DEGRADED), by `STATUS: reason`.
    pub not_reached: BTreeMap<String, u64>,
    /// Accepted flows still in progress when the wait timed out.
    pub timed_out: u64,
    pub rejected: BTreeMap<Rejection, u64>,
    /// Polls that failed (no answer, or an unexpected status); the poll is repeated.
    pub poll_errors: u64,
    /// From the first request of the phase to its last flow settling.
    pub duration: Duration,
}

impl PhaseStats {
    pub fn accepted(&self) -> u64 {
        u64::try_from(self.accepted_flow_ids.len()).unwrap_or(u64::MAX)
    }

    /// Events per second of the phase's duration.
    pub fn rate(&self, events: u64) -> f64 {
        let seconds = self.duration.as_secs_f64();
        if seconds > 0.0 {
            events as f64 / seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latencies = Latencies::default();
        for ms in 1..=1000 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.001;
        assert!(close(summary.p50_ms, 500.0), "{summary:?}");
        assert!(close(summary.p90_ms, 900.0), "{summary:?}");
        assert!(close(summary.p99_ms, 990.0), "{summary:?}");
        assert!(close(summary.max_ms, 1000.0), "{summary:?}");
    }

    #[test]
    fn nothing_recorded_is_all_zero_and_huge_values_saturate() {
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
        let mut latencies = Latencies::default();
        latencies.record(Duration::from_secs(100_000));
        assert_eq!(latencies.count(), 1);
        assert!(latencies.summary().max_ms >= 3_600_000.0 * 0.999);
    }

    #[test]
    fn rates_are_per_second_of_the_phase() {
        let stats = PhaseStats {
            duration: Duration::from_millis(2500),
            ..PhaseStats::default()
        };
        assert_eq!(stats.rate(100), 40.0);
        assert_eq!(PhaseStats::default().rate(100), 0.0);
    }
}
