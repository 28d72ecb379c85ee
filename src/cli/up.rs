//! `hubspoke up`: everything in one process, served until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hubspoke::embedded::{Embedded, EmbeddedConfig, Storage, Switches};
use hubspoke_switch_sim::load_network;
use hubspoke_topology::cluster::ClusterWatch;
use tracing::info;

use super::openflow_args::OpenFlowArgs;
use super::operation_args::OperationArgs;
use super::parts::exit_on_failure;
use super::serve::serve;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Address of the REST API (northbound and /sim/ control).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Which switches to program: the built-in simulator, or real OpenFlow 1.3 switches
    /// (Open vSwitch, hardware) that connect to --openflow-listen.
    #[arg(long, value_enum, default_value_t = SwitchKind::Simulator)]
    switches: SwitchKind,
    /// The simulated network: grid:RxC, mesh:N, ring:N, linear:N or a JSON file (with
    /// `--switches openflow` the network is what the switches report).
    #[arg(long, default_value = "grid:3x3")]
    network: String,
    #[command(flatten)]
    openflow: OpenFlowArgs,
    /// Timely worker threads; flows are spread over them by flow id.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// How long a REST call waits for the topology's answer.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Where the flows (and the simulated switches' tables) are kept across restarts.
    #[arg(long, default_value = "hubspoke-data")]
    data_dir: std::path::PathBuf,
    /// How long the history of finished operations is kept (flow records are kept forever).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    history_retention_secs: u64,
    #[command(flatten)]
    operation: OperationArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SwitchKind {
    Simulator,
    Openflow,
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let switches = match args.switches {
        SwitchKind::Simulator => {
            let network = load_network(&args.network)
                .with_context(|| format!("loading network {:?}", args.network))?;
            info!(network = %args.network, switches = network.switches().count(),
                isls = network.links().len(), "simulated switches");
            Switches::Simulated(Arc::new(network))
        }
        SwitchKind::Openflow => Switches::OpenFlow(args.openflow.speaker_config()),
    };
    let embedded = Embedded::start(EmbeddedConfig {
        switches,
        workers: args.workers,
        settings: args.operation.settings(),
        data_dir: args.data_dir,
        history_retention_ms: args.history_retention_secs.saturating_mul(1000),
        storage: Storage::Durable,
        watch: ClusterWatch::alone(exit_on_failure("hubspoke up")),
    })?;
    let app = embedded.router(Duration::from_millis(args.request_timeout_ms));
    if let Some(addr) = embedded.openflow_addr() {
        info!(%addr, "OpenFlow switches connect here");
    }
    info!(workers = args.workers, "hubspoke up");
    serve("hubspoke up", args.listen, app)?;
    info!("shutting down");
    embedded.stop();
    Ok(())
}
