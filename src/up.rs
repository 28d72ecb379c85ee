//! `hubspoke up`: the whole hub-and-spoke path in one process over the in-process bus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hubspoke_fsm::operation::Timeouts;
use hubspoke_sim::{
    load_network, nb_router, sim_router, spawn_reply_dispatcher, spawn_view_updater,
};
use hubspoke_sim::{FlowView, NbState, PendingReplies, Simulator, SwitchFabric};
use hubspoke_spokes::bus::InProcessBus;
use hubspoke_spokes::speaker::RetryPolicy;
use hubspoke_topology::dataflow::Settings;
use hubspoke_topology::live::{BusPorts, LiveConfig, LiveTopology};
use hubspoke_topology::metrics::Metrics;
use parking_lot::Mutex;
use tracing::info;

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
    /// Deadline of a whole flow operation (create, delete).
    #[arg(long, default_value_t = 30_000)]
    operation_timeout_ms: u64,
    /// How long one southbound command attempt waits for its response.
    #[arg(long, default_value_t = 2_000)]
    command_timeout_ms: u64,
    /// Attempts per southbound command before it is given up.
    #[arg(long, default_value_t = 3)]
    command_attempts: u32,
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let network = Arc::new(
        load_network(&args.network)
            .with_context(|| format!("loading network {:?}", args.network))?,
    );
    let bus = InProcessBus::new();
    let metrics = Arc::new(Metrics::default());

    let fabric = Arc::new(Mutex::new(SwitchFabric::new(&network)));
    let _simulator = Simulator::spawn(
        fabric.clone(),
        bus.sb_commands.receiver(),
        bus.sb_responses.clone(),
    );

    let settings = Settings {
        timeouts: Timeouts {
            operation_ms: args.operation_timeout_ms,
            ..Timeouts::default()
        },
        retry: RetryPolicy {
            max_attempts: args.command_attempts.max(1),
            response_timeout_ms: args.command_timeout_ms,
            ..RetryPolicy::default()
        },
    };
    let config = LiveConfig {
        workers: args.workers,
        settings,
        ..LiveConfig::default()
    };
    let topology = LiveTopology::start(
        config,
        network.clone(),
        BusPorts::in_process(&bus),
        metrics.clone(),
    )?;

    let view = FlowView::new();
    spawn_view_updater(view.clone(), bus.flow_events.receiver());
    let pending = PendingReplies::new();
    spawn_reply_dispatcher(pending.clone(), view.clone(), bus.nb_responses.receiver());

    let mut state = NbState::new(bus.nb_requests.clone(), pending, view, network.clone());
    state.request_timeout = Duration::from_millis(args.request_timeout_ms);
    state.metrics_render = Arc::new(move || metrics.render());
    let app = nb_router(state).merge(sim_router(fabric));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        // Printed on stdout so scripts and tests can find the port when --listen uses port 0.
        println!("hubspoke up: listening on http://{address}");
        info!(
            %address,
            network = %args.network,
            switches = network.switches().count(),
            isls = network.links().len(),
            workers = args.workers,
            "hubspoke up"
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        anyhow::Ok(())
    })?;
    info!("shutting down");
    topology.stop();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
