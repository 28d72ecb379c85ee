//! The parts as separate processes talking over Kafka: `topology`, `nb` and `sb`. Each waits
//! for the broker with a clear message, creates missing topics, and exits cleanly on Ctrl-C
//! or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::middleware::from_fn;
use clap::Args;
use hubspoke_bus::{InProcessBus, InboundSource};
use hubspoke_fsm::network::Network;
use hubspoke_fsm::{NbRequest, NbResponse, SbCommand, SbEvent, SbResponse};
use hubspoke_kafka::{
    read_to_end, spawn_consumer, KafkaFlowLog, KafkaInbound, Membership, TopicName, WorkerSeat,
};
use hubspoke_rest::{correlation_middleware, not_found_fallback};
use hubspoke_switch_sim::{
    load_network, publish_network_events, sim_router, NetworkEvents, Simulator, SwitchFabric,
};
use hubspoke_topology::live::{clock_ms, BusPorts, Cluster, LiveConfig, LiveTopology};
use hubspoke_topology::metrics::Metrics;
use parking_lot::Mutex;
use tracing::info;

use crate::cli::kafka_args::KafkaArgs;
use crate::cli::operation_args::OperationArgs;
use crate::northbound::{serve, wait_for_shutdown, Northbound};

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

/// How long a starting topology waits for its consumer group to hand it partitions: longer
/// than a dead member's session (6 s) plus a rebalance.
const PARTITIONS_WAIT: Duration = Duration::from_secs(20);

fn network(spec: &str) -> anyhow::Result<Arc<Network>> {
    Ok(Arc::new(
        load_network(spec).with_context(|| format!("loading network {spec:?}"))?,
    ))
}

pub fn topology(args: TopologyArgs) -> anyhow::Result<()> {
    let cluster = args.cluster()?;
    let (settings, producer) = args.kafka.connect()?;
    // The network as announced so far, before anything else: no request may meet a switch
    // the topology has not heard of yet.
    let (announced, network_end) =
        read_to_end::<SbEvent>(&settings, &settings.topic(TopicName::SbEvents))?;
    // One consumer per worker, made up front so a bad setting fails here, not in a worker.
    let process = cluster.as_ref().map_or(0, |c| c.process);
    let mut consumers = Vec::new();
    for worker in 0..args.workers {
        consumers.push(Some(KafkaInbound::new(
            &settings,
            producer.clone(),
            clock_ms,
            WorkerSeat { process, worker },
            &network_end,
        )?));
    }
    // The group's dead members (if this is a restart) must let go of their partitions first.
    let inbounds: Vec<&KafkaInbound> = consumers.iter().flatten().collect();
    if !KafkaInbound::wait_for_partitions(&inbounds, cluster.is_none(), PARTITIONS_WAIT) {
        tracing::warn!(waited = ?PARTITIONS_WAIT, "not every partition assigned yet; starting anyway");
    }
    let consumers = Arc::new(Mutex::new(consumers));
    let ports = BusPorts {
        inbound: Arc::new(move |worker| -> Box<dyn InboundSource> {
            let consumer = consumers.lock().get_mut(worker).and_then(Option::take);
            Box::new(consumer.expect("one Kafka consumer was made per worker"))
        }),
        nb_responses: Arc::new(
            producer.publisher::<NbResponse>(settings.topic(TopicName::NbResponses)),
        ),
        sb_commands: Arc::new(
            producer.publisher::<SbCommand>(settings.topic(TopicName::SbCommands)),
        ),
        flow_log: Arc::new(KafkaFlowLog::new(&settings, producer.clone())),
        network_states: Arc::new(producer.publisher(settings.topic(TopicName::NetworkStates))),
    };
    let place = cluster.as_ref().map_or_else(String::new, |c| {
        format!(" as process {} of {}", c.process, c.addresses.len())
    });
    let config = LiveConfig {
        workers: args.workers,
        cluster,
        settings: args.operation.settings(),
        known_network: announced.into_iter().map(|e| e.payload).collect(),
        ..LiveConfig::default()
    };
    let topology = LiveTopology::start(config, ports, Arc::new(Metrics::default()))?;
    info!(workers = args.workers, "topology running over Kafka{place}");
    println!(
        "hubspoke topology: running with {} worker(s){place}",
        args.workers
    );
    wait_for_shutdown()?;
    info!("shutting down");
    topology.stop();
    producer.flush(Duration::from_secs(5));
    Ok(())
}

pub fn nb(args: NbArgs) -> anyhow::Result<()> {
    let (settings, producer) = args.kafka.connect()?;
    // Kafka feeds local topics, so the shim reads them exactly as in `hubspoke up`. Every shim
    // reads every partition itself: it sees every response, the whole flow history and every
    // network state.
    let local = InProcessBus::new();
    let _responses = spawn_consumer(
        &settings,
        TopicName::NbResponses,
        Membership::EveryPartitionFromNow,
        local.nb_responses.clone(),
        producer.clone(),
        clock_ms,
    )?;
    let _events = spawn_consumer(
        &settings,
        TopicName::FlowEvents,
        Membership::EveryPartitionFromStart,
        local.flow_events.clone(),
        producer.clone(),
        clock_ms,
    )?;
    let _network_states = spawn_consumer(
        &settings,
        TopicName::NetworkStates,
        Membership::EveryPartitionFromStart,
        local.network_states.clone(),
        producer.clone(),
        clock_ms,
    )?;
    let northbound = Northbound {
        requests: Arc::new(producer.publisher::<NbRequest>(settings.topic(TopicName::NbRequests))),
        responses: local.nb_responses.receiver(),
        flow_events: local.flow_events.receiver(),
        network_states: local.network_states.receiver(),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        metrics: Arc::new(String::new),
    };
    serve("hubspoke nb", args.listen, northbound.router())?;
    producer.flush(Duration::from_secs(5));
    Ok(())
}

pub fn sb(args: SbArgs) -> anyhow::Result<()> {
    let network = network(&args.network)?;
    let (settings, producer) = args.kafka.connect()?;
    let local = InProcessBus::new();
    let _commands = spawn_consumer(
        &settings,
        TopicName::SbCommands,
        Membership::Group("hubspoke-sb"),
        local.sb_commands.clone(),
        producer.clone(),
        clock_ms,
    )?;
    let fabric = match &args.data_dir {
        Some(dir) => {
            SwitchFabric::open_in(&network, dir).context("opening the simulated switches' store")?
        }
        None => SwitchFabric::new(&network),
    };
    let fabric = Arc::new(Mutex::new(fabric));
    let responses =
        Arc::new(producer.publisher::<SbResponse>(settings.topic(TopicName::SbResponses)));
    let _simulator = Simulator::spawn(fabric.clone(), local.sb_commands.receiver(), responses);
    let network_events: NetworkEvents =
        Arc::new(producer.publisher::<SbEvent>(settings.topic(TopicName::SbEvents)));
    publish_network_events(&network_events, fabric.lock().announce(), "start");
    let app = sim_router(fabric, network_events)
        .fallback(not_found_fallback)
        .layer(from_fn(correlation_middleware));
    serve("hubspoke sb", args.listen, app)?;
    producer.flush(Duration::from_secs(5));
    Ok(())
}
