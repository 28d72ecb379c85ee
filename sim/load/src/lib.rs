//! The load generator: many northbound clients against a running hubspoke (embedded or over
//! Kafka). It plans flows between endpoints of the network, creates them, waits for each to
//! be UP, optionally deletes them, and reports throughput and latency percentiles, and, on
//! request, the broker's bare round trip for comparison.

pub mod client;
pub mod kafka_baseline;
pub mod plan;
pub mod report;
pub mod stats;

use std::time::Duration;

use hubspoke_kafka::KafkaSettings;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub use client::{NetworkSnapshot, NorthboundClients};
pub use kafka_baseline::{measure_round_trips, BaselineError};
pub use plan::{plan, Plan, PlanError, PlanRequest};
pub use report::Report;
pub use stats::{Latencies, LatencySummary, PhaseStats, Rejection};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot make the HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error("GET {url}: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("{url} showed no network within {waited:?}")]
    NoNetwork { url: String, waited: Duration },
    #[error("cannot plan the flows: {0}")]
    Plan(#[from] PlanError),
    #[error("Kafka baseline: {0}")]
    Baseline(#[from] BaselineError),
    #[error("the Kafka baseline stopped: {0}")]
    BaselineTask(#[from] tokio::task::JoinError),
}

/// What a person watching a run sees move.
pub trait Progress: Send + Sync {
    /// A stage of `total` steps begins (and the one before ends).
    fn stage(&self, name: &str, total: u64);
    /// One step of the current stage is done.
    fn advance(&self);
}

/// A run of the load generator.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The northbound REST API, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub flows: usize,
    /// Clients at once; each has one request in flight.
    pub concurrency: usize,
    pub network_aware: bool,
    pub bandwidth_kbps: u64,
    /// Delete the flows afterwards, measured too.
    pub delete: bool,
    /// Seeds the choice of endpoints; a random one when None (the report says which).
    pub seed: Option<u64>,
    /// How long one flow may take to reach its state (and one request, the network, a round
    /// trip) before the run gives up on it.
    pub timeout: Duration,
    pub kafka_baseline: Option<BaselineConfig>,
}

/// The broker whose bare round trip to measure, and how many round trips.
#[derive(Clone, Debug)]
pub struct BaselineConfig {
    pub brokers: String,
    pub samples: usize,
}

/// Measures the Kafka baseline (if asked), then creates the flows, then deletes them (if
/// asked). Rejections are counted, never fatal; what stops a run is not reaching the server
/// or the broker at all, or a network the flows cannot be planned on.
pub async fn run(config: &LoadConfig, progress: &dyn Progress) -> Result<Report, LoadError> {
    let seed = config.seed.unwrap_or_else(rand::random);
    let run_prefix = format!("load-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    tracing::debug!(%run_prefix, seed, "load run");

    let round_trips = match &config.kafka_baseline {
        Some(baseline) => {
            Some(measure_baseline(baseline, &run_prefix, config.timeout, progress).await?)
        }
        None => None,
    };

    let clients = NorthboundClients::new(&config.url, config.concurrency, config.timeout)?;
    let network = clients.network(config.network_aware).await?;
    let plan = plan::plan(
        &PlanRequest {
            switches: &network.switches,
            links: &network.links,
            in_use: &network.in_use,
            flows: config.flows,
            bandwidth_kbps: config.bandwidth_kbps,
            network_aware: config.network_aware,
            run_prefix: &run_prefix,
        },
        &mut StdRng::seed_from_u64(seed),
    )?;
    if plan.bandwidth_kbps < config.bandwidth_kbps {
        tracing::warn!(
            requested_kbps = config.bandwidth_kbps,
            planned_kbps = plan.bandwidth_kbps,
            "bandwidth per flow lowered so that all flows fit the links"
        );
    }

    progress.stage("create", total(plan.flows.len()));
    let create = clients.create_all(&plan.flows, progress).await;
    let delete = if config.delete {
        progress.stage("delete", total(create.accepted_flow_ids.len()));
        Some(
            clients
                .delete_all(&create.accepted_flow_ids, progress)
                .await,
        )
    } else {
        None
    };
    Ok(Report::new(
        config,
        &run_prefix,
        seed,
        &plan,
        &create,
        delete.as_ref(),
        round_trips.as_ref(),
    ))
}

/// The round trips, measured on a blocking thread: rdkafka's clients block.
async fn measure_baseline(
    baseline: &BaselineConfig,
    run_prefix: &str,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<(String, Latencies), LoadError> {
    let settings = KafkaSettings::new(&baseline.brokers);
    let (run_prefix, samples) = (run_prefix.to_string(), baseline.samples);
    // A blocking task must own what it uses: its progress comes back over a channel.
    let (steps, mut step_events) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::task::spawn_blocking(move || {
        measure_round_trips(
            &settings,
            &run_prefix,
            samples,
            timeout,
            &ChannelProgress(steps),
        )
    });
    while let Some(step) = step_events.recv().await {
        match step {
            Step::Stage(name, total) => progress.stage(&name, total),
            Step::Advance => progress.advance(),
        }
    }
    let latencies = task.await??;
    Ok((baseline.brokers.clone(), latencies))
}

enum Step {
    Stage(String, u64),
    Advance,
}

/// Progress reported from another thread.
struct ChannelProgress(tokio::sync::mpsc::UnboundedSender<Step>);

impl Progress for ChannelProgress {
    fn stage(&self, name: &str, total: u64) {
        // The receiver lives until the sender is dropped.
        let _ = self.0.send(Step::Stage(name.to_string(), total));
    }

    fn advance(&self) {
        let _ = self.0.send(Step::Advance);
    }
}

fn total(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}
