//! `hubspoke topology`, `nb` and `sb`: the parts as separate processes over Kafka. Each waits
//! for the broker with a clear message, creates missing topics, and exits cleanly on Ctrl-C
//! or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use hubspoke::over_kafka::{
    start_nb, start_sb, start_speaker, start_topology, topology_process_readiness, GroupAssignment,
    TopologyConfig,
};
use hubspoke_rest::health_routes;
use hubspoke_switch_sim::load_network;
use hubspoke_topology::cluster::{Cluster, ClusterTimeouts, ClusterWatch, OnFailure};
use hubspoke_topology::metrics::Metrics;
use tracing::info;

use super::kafka_args::KafkaArgs;
use super::openflow_args::OpenFlowArgs;
use super::operation_args::OperationArgs;
use super::serve::{serve, serve_in_background};

#[derive(Args, Debug)]
pub struct TopologyArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Timely worker threads in this process; each is one consumer of the inbound topics'
    /// partitions.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Timely cluster mode: this process's index (timely's -p), with --hostfile.
    #[arg(long, requires = "hostfile")]
    process: Option<usize>,
    /// Timely cluster mode: a file with one host:port per process, in process order (timely's -h).
    #[arg(long, requires = "process")]
    hostfile: Option<std::path::PathBuf>,
    /// Timely cluster mode: a peer not heard from for this long is lost, and this process
    /// exits (the cluster must be restarted as a whole).
    #[arg(long, default_value_t = ClusterTimeouts::default().failure.as_secs())]
    cluster_failure_timeout_secs: u64,
    /// Timely cluster mode: give up (and exit) if not every peer has connected by then.
    #[arg(long, default_value_t = ClusterTimeouts::default().connect.as_secs())]
    cluster_connect_timeout_secs: u64,
    /// Address of `/health`, `/ready` and `/metrics`.
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Static membership of the consumer group: each worker joins as
    /// PREFIX-pPROCESS-wWORKER, so a restarted process gets its partitions back at once where
    /// the broker supports it (Apache Kafka; it gains nothing on tansu, see the README).
    #[arg(long)]
    group_instance_prefix: Option<String>,
    #[command(flatten)]
    operation: OperationArgs,
}

impl TopologyArgs {
    fn cluster(&self) -> anyhow::Result<Option<Cluster>> {
        let (Some(process), Some(hostfile)) = (self.process, &self.hostfile) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(hostfile)
            .with_context(|| format!("reading {}", hostfile.display()))?;
        let addresses: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        anyhow::ensure!(
            process < addresses.len(),
            "--process {process} but {} lists {} process(es)",
            hostfile.display(),
            addresses.len()
        );
        Ok(Some(Cluster { process, addresses }))
    }
}

#[derive(Args, Debug)]
pub struct NbArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address of the northbound REST API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How long a REST call waits for the topology's answer (then 504).
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
}

#[derive(Args, Debug)]
pub struct SbArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address of the simulator's /sim/ control API (8081, so it can run beside `nb`).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The simulated network.
    #[arg(long, default_value = "grid:3x3")]
    network: String,
    /// Where the simulated switches keep their rules, meters and failures across restarts
    /// (created if missing; the file is `switches.redb`). Without it they live in memory.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct SpeakerArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address of `/health`, `/ready` and `/metrics` (8081, where `hubspoke sb` would serve:
    /// one of the two runs).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    #[command(flatten)]
    openflow: OpenFlowArgs,
}

/// The topology serves `/health`, `/ready` and `/metrics` from the start (not ready while
/// it waits for its peers and recovers), and exits non-zero when its cluster fails.
pub fn topology(args: TopologyArgs) -> anyhow::Result<()> {
    let cluster = args.cluster()?;
    let place = cluster.as_ref().map_or_else(String::new, |c| {
        format!(" as process {} of {}", c.process, c.addresses.len())
    });
    let timeouts = ClusterTimeouts {
        failure: Duration::from_secs(args.cluster_failure_timeout_secs),
        connect: Duration::from_secs(args.cluster_connect_timeout_secs),
    };
    let watch = ClusterWatch::new(cluster, timeouts, exit_on_failure("hubspoke topology"));
    let (mut settings, producer) = args.kafka.connect()?;
    settings.group_instance_prefix = args.group_instance_prefix.clone();
    let metrics = Arc::new(Metrics::default());
    let group = GroupAssignment::default();
    let rendered = metrics.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = rendered.render();
                async move { text }
            }),
        )
        .merge(health_routes(topology_process_readiness(&watch, &group)));
    let server = serve_in_background(&format!("hubspoke topology{place}"), args.listen, app)?;
    let config = TopologyConfig {
        workers: args.workers,
        watch,
        settings: args.operation.settings(),
        metrics,
    };
    let topology = start_topology(&settings, &producer, config, &group)?;
    info!(workers = args.workers, "topology running over Kafka{place}");
    println!(
        "hubspoke topology: running with {} worker(s){place}",
        args.workers
    );
    let served = server.wait();
    info!("shutting down");
    topology.stop();
    producer.flush(Duration::from_secs(5));
    served
}

/// What a process does when its topology fails: say why on stderr, and exit non-zero so its
/// supervisor restarts it (in a cluster: every process, together).
pub fn exit_on_failure(what: &'static str) -> OnFailure {
    Arc::new(move |failure| {
        eprintln!(
            "{what}: {failure}. The topology cannot go on: restart it (in a cluster, stop and \
             start every topology process together)."
        );
        std::process::exit(EXIT_TOPOLOGY_FAILED);
    })
}

/// The exit status of a process whose topology failed (a lost peer, a dead worker thread).
pub const EXIT_TOPOLOGY_FAILED: i32 = 3;

pub fn nb(args: NbArgs) -> anyhow::Result<()> {
    let (settings, producer) = args.kafka.connect()?;
    let nb = start_nb(
        &settings,
        &producer,
        Duration::from_millis(args.request_timeout_ms),
    )?;
    serve("hubspoke nb", args.listen, nb.router.clone())?;
    drop(nb);
    producer.flush(Duration::from_secs(5));
    Ok(())
}

pub fn sb(args: SbArgs) -> anyhow::Result<()> {
    let network = load_network(&args.network)
        .with_context(|| format!("loading network {:?}", args.network))?;
    let (settings, producer) = args.kafka.connect()?;
    let sb = start_sb(&settings, &producer, &network, args.data_dir.as_deref())?;
    serve("hubspoke sb", args.listen, sb.router.clone())?;
    drop(sb);
    producer.flush(Duration::from_secs(5));
    Ok(())
}

/// `hubspoke speaker`: the OpenFlow speaker in place of the simulator, serving until a
/// signal. Ready once it listens for switches and consumes the commands.
pub fn speaker(args: SpeakerArgs) -> anyhow::Result<()> {
    let (settings, producer) = args.kafka.connect()?;
    let part = start_speaker(&settings, &producer, args.openflow.speaker_config())?;
    info!(switches = %part.speaker.local_addr(), "OpenFlow speaker running over Kafka");
    let metrics = part.speaker.metrics();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { text }
            }),
        )
        .merge(health_routes(hubspoke_rest::Readiness::new()))
        .fallback(hubspoke_rest::not_found_fallback);
    serve("hubspoke speaker", args.listen, app)?;
    drop(part);
    producer.flush(Duration::from_secs(5));
    Ok(())
}
