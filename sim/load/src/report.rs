//! The figures of a run: as JSON for machines (`Serialize`) and as a table for people
//! (`Display`), the same figures in both.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::kafka_baseline::WARMUP_ROUND_TRIPS;
use super::stats::{Latencies, LatencySummary, PhaseStats, Rejection};
use super::{LoadConfig, Plan};

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub url: String,
    /// Every flow id of the run starts with it.
    pub run_prefix: String,
    pub seed: u64,
    pub flows: usize,
    pub concurrency: usize,
    pub network_aware: bool,
    /// What each flow asked for (network-aware runs may lower the requested one).
    pub bandwidth_kbps: u64,
    pub create: CreateReport,
    pub delete: Option<DeleteReport>,
    pub kafka_baseline: Option<KafkaBaselineReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CreateReport {
    pub duration_s: f64,
    pub accepted: u64,
    pub up: u64,
    /// Flows that settled other than UP, by `STATUS: reason`.
    pub not_up: BTreeMap<String, u64>,
    pub timed_out: u64,
    pub rejected: Vec<RejectionCount>,
    pub poll_errors: u64,
    pub creates_answered_per_s: f64,
    pub up_per_s: f64,
    /// POST sent → its answer (accepted creates).
    pub answered: LatencySummary,
    /// POST sent → first GET that shows the flow UP.
    pub to_up: LatencySummary,
    /// How late that first UP observation may be: last poll not showing UP sent → the poll
    /// showing it received. The measurement error of `to_up`.
    pub up_observation_window: LatencySummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeleteReport {
    pub duration_s: f64,
    pub accepted: u64,
    pub gone: u64,
    /// Flows that settled without being removed, by `STATUS: reason`.
    pub not_gone: BTreeMap<String, u64>,
    pub timed_out: u64,
    pub rejected: Vec<RejectionCount>,
    pub poll_errors: u64,
    pub deletes_answered_per_s: f64,
    pub gone_per_s: f64,
    /// DELETE sent → its answer (accepted deletes).
    pub answered: LatencySummary,
    /// DELETE sent → first GET that answers 404.
    pub to_gone: LatencySummary,
    /// The measurement error of `to_gone`, as `up_observation_window` is of `to_up`.
    pub gone_observation_window: LatencySummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct RejectionCount {
    /// None when no answer came (the error type says why).
    pub status: Option<u16>,
    pub error_type: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KafkaBaselineReport {
    pub brokers: String,
    pub warmup: usize,
    /// produce → echo consumes and produces → consume.
    pub round_trip: LatencySummary,
    /// Create to UP ÷ round trip, at p50 and at p99; None without a round trip.
    pub create_to_up_ratio_p50: Option<f64>,
    pub create_to_up_ratio_p99: Option<f64>,
}

impl Report {
    pub fn new(
        config: &LoadConfig,
        run_prefix: &str,
        seed: u64,
        plan: &Plan,
        create: &PhaseStats,
        delete: Option<&PhaseStats>,
        round_trips: Option<&(String, Latencies)>,
    ) -> Report {
        let create = CreateReport {
            duration_s: create.duration.as_secs_f64(),
            accepted: create.accepted(),
            up: create.reached,
            not_up: create.not_reached.clone(),
            timed_out: create.timed_out,
            rejected: rejection_counts(&create.rejected),
            poll_errors: create.poll_errors,
            creates_answered_per_s: create.rate(create.accepted()),
            up_per_s: create.rate(create.reached),
            answered: create.answered.summary(),
            to_up: create.to_reached.summary(),
            up_observation_window: create.observation_window.summary(),
        };
        let delete = delete.map(|delete| DeleteReport {
            duration_s: delete.duration.as_secs_f64(),
            accepted: delete.accepted(),
            gone: delete.reached,
            not_gone: delete.not_reached.clone(),
            timed_out: delete.timed_out,
            rejected: rejection_counts(&delete.rejected),
            poll_errors: delete.poll_errors,
            deletes_answered_per_s: delete.rate(delete.accepted()),
            gone_per_s: delete.rate(delete.reached),
            answered: delete.answered.summary(),
            to_gone: delete.to_reached.summary(),
            gone_observation_window: delete.observation_window.summary(),
        });
        let kafka_baseline = round_trips.map(|(brokers, latencies)| {
            let round_trip = latencies.summary();
            let ratio = |end_to_end: f64, transport: f64| {
                (round_trip.count > 0 && transport > 0.0).then(|| end_to_end / transport)
            };
            KafkaBaselineReport {
                brokers: brokers.clone(),
                warmup: WARMUP_ROUND_TRIPS,
                create_to_up_ratio_p50: ratio(create.to_up.p50_ms, round_trip.p50_ms),
                create_to_up_ratio_p99: ratio(create.to_up.p99_ms, round_trip.p99_ms),
                round_trip,
            }
        });
        Report {
            url: config.url.clone(),
            run_prefix: run_prefix.to_string(),
            seed,
            flows: plan.flows.len(),
            concurrency: config.concurrency,
            network_aware: config.network_aware,
            bandwidth_kbps: plan.bandwidth_kbps,
            create,
            delete,
            kafka_baseline,
        }
    }
}

fn rejection_counts(rejected: &BTreeMap<Rejection, u64>) -> Vec<RejectionCount> {
    rejected
        .iter()
        .map(|(rejection, &count)| RejectionCount {
            status: rejection.status,
            error_type: rejection.error_type.clone(),
            count,
        })
        .collect()
}

fn latency_row(f: &mut fmt::Formatter<'_>, name: &str, l: &LatencySummary) -> fmt::Result {
    writeln!(
        f,
        "{name:<22}{:>8}{:>10.2}{:>10.2}{:>10.2}{:>10.2}",
        l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
    )
}

fn problems(
    f: &mut fmt::Formatter<'_>,
    phase: &str,
    rejected: &[RejectionCount],
    settled_elsewhere: &BTreeMap<String, u64>,
) -> fmt::Result {
    for rejection in rejected {
        let status = rejection
            .status
            .map_or("no answer".to_string(), |s| s.to_string());
        writeln!(
            f,
            "  {phase} rejected, {status} {}: {}",
            rejection.error_type, rejection.count
        )?;
    }
    for (state, count) in settled_elsewhere {
        writeln!(f, "  {phase} settled {state}: {count}")?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let create = &self.create;
        writeln!(
            f,
            "hubspoke load against {}: run {}, seed {}",
            self.url, self.run_prefix, self.seed
        )?;
        writeln!(
            f,
            "{} flows, {} clients, {}, {} kbps a flow",
            self.flows,
            self.concurrency,
            if self.network_aware {
                "network-aware"
            } else {
                "random switches"
            },
            self.bandwidth_kbps
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "create  {} accepted, {} UP, {} not UP, {} timed out, {} rejected in {:.2} s: \
             {:.1} creates answered/s, {:.1} flows UP/s",
            create.accepted,
            create.up,
            create.not_up.values().sum::<u64>(),
            create.timed_out,
            create.rejected.iter().map(|r| r.count).sum::<u64>(),
            create.duration_s,
            create.creates_answered_per_s,
            create.up_per_s
        )?;
        if let Some(delete) = &self.delete {
            writeln!(
                f,
                "delete  {} accepted, {} gone, {} not gone, {} timed out, {} rejected in {:.2} s: \
                 {:.1} deletes answered/s, {:.1} flows gone/s",
                delete.accepted,
                delete.gone,
                delete.not_gone.values().sum::<u64>(),
                delete.timed_out,
                delete.rejected.iter().map(|r| r.count).sum::<u64>(),
                delete.duration_s,
                delete.deletes_answered_per_s,
                delete.gone_per_s
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<22}{:>8}{:>10}{:>10}{:>10}{:>10}",
            "latency (ms)", "count", "p50", "p90", "p99", "max"
        )?;
        latency_row(f, "create answered", &create.answered)?;
        latency_row(f, "create to UP", &create.to_up)?;
        latency_row(f, "  UP seen within", &create.up_observation_window)?;
        if let Some(delete) = &self.delete {
            latency_row(f, "delete answered", &delete.answered)?;
            latency_row(f, "delete to gone", &delete.to_gone)?;
            latency_row(f, "  gone seen within", &delete.gone_observation_window)?;
        }
        if let Some(baseline) = &self.kafka_baseline {
            latency_row(f, "kafka round trip", &baseline.round_trip)?;
            let times = |ratio: Option<f64>| ratio.map_or("-".to_string(), |r| format!("{r:.1}×"));
            writeln!(
                f,
                "\ncreate to UP ÷ Kafka round trip ({}): p50 {}, p99 {}",
                baseline.brokers,
                times(baseline.create_to_up_ratio_p50),
                times(baseline.create_to_up_ratio_p99)
            )?;
        }
        writeln!(
            f,
            "\n\"seen within\": how late the first observation may be (the poll interval \
             plus a GET); it bounds the error of the \"to\" rows."
        )?;
        let delete_problems = self
            .delete
            .as_ref()
            .is_some_and(|d| !d.rejected.is_empty() || !d.not_gone.is_empty());
        if !create.rejected.is_empty() || !create.not_up.is_empty() || delete_problems {
            writeln!(f, "\nnot as asked:")?;
            problems(f, "create", &create.rejected, &create.not_up)?;
            if let Some(delete) = &self.delete {
                problems(f, "delete", &delete.rejected, &delete.not_gone)?;
            }
        }
        let poll_errors = create.poll_errors + self.delete.as_ref().map_or(0, |d| d.poll_errors);
        if poll_errors > 0 {
            writeln!(f, "\npolls that failed (and were repeated): {poll_errors}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> LoadConfig {
        LoadConfig {
            url: "http://127.0.0.1:8080".into(),
            flows: 3,
            concurrency: 2,
            network_aware: true,
            bandwidth_kbps: 1000,
            delete: false,
            seed: Some(1),
            timeout: Duration::from_secs(5),
            kafka_baseline: None,
        }
    }

    fn create_stats() -> PhaseStats {
        let mut stats = PhaseStats {
            accepted_flow_ids: vec!["a".into(), "b".into(), "c".into()],
            reached: 2,
            duration: Duration::from_secs(2),
            ..PhaseStats::default()
        };
        stats.not_reached.insert("DOWN: no path".into(), 1);
        stats.rejected.insert(
            Rejection {
                status: Some(503),
                error_type: "no-path".into(),
            },
            4,
        );
        for ms in [10, 20] {
            stats.to_reached.record(Duration::from_millis(ms));
        }
        stats
    }

    #[test]
    fn json_and_table_carry_the_same_figures() {
        let mut round_trip = Latencies::default();
        round_trip.record(Duration::from_millis(2));
        let plan = Plan {
            flows: vec![],
            bandwidth_kbps: 500,
        };
        let report = Report::new(
            &config(),
            "load-x",
            1,
            &plan,
            &create_stats(),
            None,
            Some(&("127.0.0.1:9092".to_string(), round_trip)),
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["create"]["accepted"], 3);
        assert_eq!(json["create"]["up_per_s"], 1.0);
        assert_eq!(json["create"]["rejected"][0]["status"], 503);
        assert_eq!(json["create"]["not_up"]["DOWN: no path"], 1);
        assert_eq!(json["bandwidth_kbps"], 500);
        assert!(json["delete"].is_null());
        let ratio = json["kafka_baseline"]["create_to_up_ratio_p99"]
            .as_f64()
            .unwrap();
        assert!((ratio - 10.0).abs() < 0.1, "20 ms ÷ 2 ms: {ratio}");
        let table = report.to_string();
        for expected in [
            "3 accepted, 2 UP, 1 not UP, 0 timed out, 4 rejected",
            "1.5 creates answered/s, 1.0 flows UP/s",
            "create rejected, 503 no-path: 4",
            "create settled DOWN: no path: 1",
            "p99 10.0×",
        ] {
            assert!(table.contains(expected), "{expected:?} not in\n{table}");
        }
    }
}
