//! `hubspoke up`: the whole hub-and-spoke path in one process over the in-process bus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hubspoke_bus::flow_log::{RedbFlowLog, FLOW_LOG_FILE};
use hubspoke_bus::InProcessBus;
use hubspoke_switch_sim::{load_network, sim_router, NetworkEvents, Simulator, SwitchFabric};
use hubspoke_topology::live::{clock_ms, BusPorts, LiveConfig, LiveTopology};
use hubspoke_topology::metrics::Metrics;
use parking_lot::Mutex;
use tracing::info;

use crate::cli::operation_args::OperationArgs;
use crate::northbound::{serve, Northbound};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Address of the REST API (northbound and /sim/ control).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The simulated network: grid:RxC, mesh:N, ring:N, linear:N or a JSON file.
    #[arg(long, default_value = "grid:3x3")]
    network: String,
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

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let network = Arc::new(
        load_network(&args.network)
            .with_context(|| format!("loading network {:?}", args.network))?,
    );
    let bus = InProcessBus::new();
    let metrics = Arc::new(Metrics::default());

    // The simulated switches keep their tables across restarts, as real ones do.
    let fabric = SwitchFabric::open_in(&network, &args.data_dir)
        .context("opening the simulated switches' store")?;
    let fabric = Arc::new(Mutex::new(fabric));
    let _simulator = Simulator::on_bus(fabric.clone(), &bus);
    let network_events: NetworkEvents = bus.sb_events.clone();

    let config = LiveConfig {
        workers: args.workers,
        settings: args.operation.settings(),
        ..LiveConfig::default()
    };
    let flow_log = RedbFlowLog::open_in(
        &args.data_dir,
        args.history_retention_secs.saturating_mul(1000),
        clock_ms(),
        bus.flow_events.clone(),
    )
    .with_context(|| {
        let path = args.data_dir.join(FLOW_LOG_FILE);
        format!("opening {}", path.display())
    })?;
    let ports = BusPorts::in_process(&bus, Arc::new(flow_log));
    let topology = LiveTopology::start(config, ports, metrics.clone())?;

    let northbound = Northbound {
        requests: bus.nb_requests.clone(),
        responses: bus.nb_responses.receiver(),
        flow_events: bus.flow_events.receiver(),
        network_states: bus.network_states.receiver(),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        metrics: Arc::new(move || metrics.render()),
    };
    let app = northbound
        .router()
        .merge(sim_router(fabric, network_events));
    info!(
        network = %args.network,
        switches = network.switches().count(),
        isls = network.links().len(),
        workers = args.workers,
        "hubspoke up"
    );
    serve("hubspoke up", args.listen, app)?;
    info!("shutting down");
    topology.stop();
    Ok(())
}
