//! The parts as processes of their own over a Kafka broker: the topology, the northbound shim
//! (`nb`) and the switch simulator (`sb`). Each `start_*` connects its consumers and
//! producers and returns the running part; the binary serves it until a signal, then stops it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware::from_fn;
use axum::Router;
use hubspoke_bus::{InProcessBus, InboundSource};
use hubspoke_fsm::network::Network;
use hubspoke_fsm::{NbRequest, NbResponse, SbCommand, SbEvent, SbResponse};
use hubspoke_kafka::{
    read_to_end, spawn_consumer, ConsumerHandle, KafkaError, KafkaFlowLog, KafkaInbound,
    KafkaProducer, KafkaSettings, Membership, TopicName, WorkerSeat,
};
use hubspoke_northbound::Northbound;
use hubspoke_rest::{correlation_middleware, not_found_fallback};
use hubspoke_switch_sim::{
    publish_network_events, sim_router, FabricError, NetworkEvents, Simulator, SimulatorHandle,
    SwitchFabric,
};
use hubspoke_topology::dataflow::Settings;
use hubspoke_topology::live::{BusPorts, Cluster, LiveConfig, LiveError, LiveTopology};
use hubspoke_topology::metrics::Metrics;
use parking_lot::Mutex;

/// How long a starting topology waits for its consumer group to hand it partitions: longer
/// than a dead member's session (6 s) plus a rebalance.
const PARTITIONS_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum OverKafkaError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Topology(#[from] LiveError),
    #[error("opening the simulated switches' store: {0}")]
    Switches(#[from] FabricError),
}

#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// Timely worker threads in this process; each is one consumer of the inbound partitions.
    pub workers: usize,
    /// `None`: one process.
    pub cluster: Option<Cluster>,
    pub settings: Settings,
}

/// The topology, fed by the inbound topics. It first reads `sb.events` to its end, so no
/// request meets a switch it has not heard of yet.
pub fn start_topology(
    kafka: &KafkaSettings,
    producer: &KafkaProducer,
    config: TopologyConfig,
) -> Result<LiveTopology, OverKafkaError> {
    let (announced, network_end) =
        read_to_end::<SbEvent>(kafka, &kafka.topic(TopicName::SbEvents))?;
    // One consumer per worker, made up front so a bad setting fails here, not in a worker.
    let process = config.cluster.as_ref().map_or(0, |c| c.process);
    let mut consumers = Vec::new();
    for worker in 0..config.workers {
        consumers.push(Some(KafkaInbound::new(
            kafka,
            producer.clone(),
            WorkerSeat { process, worker },
            &network_end,
        )?));
    }
    // The group's dead members (if this is a restart) must let go of their partitions first.
    let inbounds: Vec<&KafkaInbound> = consumers.iter().flatten().collect();
    if !KafkaInbound::wait_for_partitions(&inbounds, config.cluster.is_none(), PARTITIONS_WAIT) {
        tracing::warn!(waited = ?PARTITIONS_WAIT, "not every partition assigned yet; starting anyway");
    }
    let consumers = Arc::new(Mutex::new(consumers));
    let ports = BusPorts {
        inbound: Arc::new(move |worker| -> Box<dyn InboundSource> {
            let consumer = consumers.lock().get_mut(worker).and_then(Option::take);
            Box::new(consumer.expect("one Kafka consumer was made per worker"))
        }),
        nb_responses: Arc::new(
            producer.publisher::<NbResponse>(kafka.topic(TopicName::NbResponses)),
        ),
        sb_commands: Arc::new(producer.publisher::<SbCommand>(kafka.topic(TopicName::SbCommands))),
        flow_log: Arc::new(KafkaFlowLog::new(kafka, producer.clone())),
        network_states: Arc::new(producer.publisher(kafka.topic(TopicName::NetworkStates))),
    };
    let live = LiveConfig {
        workers: config.workers,
        cluster: config.cluster,
        settings: config.settings,
        known_network: announced.into_iter().map(|e| e.payload).collect(),
        ..LiveConfig::default()
    };
    Ok(LiveTopology::start(
        live,
        ports,
        Arc::new(Metrics::default()),
    )?)
}

/// The northbound shim over Kafka; it keeps its consumers running while it lives.
pub struct NbPart {
    pub router: Router,
    _consumers: Vec<ConsumerHandle>,
}

/// Kafka feeds local topics, so the shim reads them exactly as in `hubspoke up`. Every shim
/// reads every partition itself: it sees every response, the whole flow history and every
/// network state.
pub fn start_nb(
    kafka: &KafkaSettings,
    producer: &KafkaProducer,
    request_timeout: Duration,
) -> Result<NbPart, OverKafkaError> {
    let local = InProcessBus::new();
    let consumers = vec![
        spawn_consumer(
            kafka,
            TopicName::NbResponses,
            Membership::EveryPartitionFromNow,
            local.nb_responses.clone(),
            producer.clone(),
        )?,
        spawn_consumer(
            kafka,
            TopicName::FlowEvents,
            Membership::EveryPartitionFromStart,
            local.flow_events.clone(),
            producer.clone(),
        )?,
        spawn_consumer(
            kafka,
            TopicName::NetworkStates,
            Membership::EveryPartitionFromStart,
            local.network_states.clone(),
            producer.clone(),
        )?,
    ];
    let northbound = Northbound {
        requests: Arc::new(producer.publisher::<NbRequest>(kafka.topic(TopicName::NbRequests))),
        responses: local.nb_responses.receiver(),
        flow_events: local.flow_events.receiver(),
        network_states: local.network_states.receiver(),
        request_timeout,
        metrics: Arc::new(String::new),
    };
    Ok(NbPart {
        router: northbound.router(),
        _consumers: consumers,
    })
}

/// The switch simulator over Kafka with its `/sim/` control API; it keeps its consumer and
/// its thread running while it lives.
pub struct SbPart {
    pub router: Router,
    _commands: ConsumerHandle,
    _simulator: SimulatorHandle,
}

/// Announces the whole network on `sb.events` at start, then answers `sb.commands`. With a
/// `data_dir` the switches keep their tables there across restarts.
pub fn start_sb(
    kafka: &KafkaSettings,
    producer: &KafkaProducer,
    network: &Network,
    data_dir: Option<&Path>,
) -> Result<SbPart, OverKafkaError> {
    let local = InProcessBus::new();
    let commands = spawn_consumer(
        kafka,
        TopicName::SbCommands,
        Membership::Group("hubspoke-sb"),
        local.sb_commands.clone(),
        producer.clone(),
    )?;
    let fabric = match data_dir {
        Some(dir) => SwitchFabric::open_in(network, dir)?,
        None => SwitchFabric::new(network),
    };
    let fabric = Arc::new(Mutex::new(fabric));
    let responses = Arc::new(producer.publisher::<SbResponse>(kafka.topic(TopicName::SbResponses)));
    let simulator = Simulator::spawn(fabric.clone(), local.sb_commands.receiver(), responses);
    let network_events: NetworkEvents =
        Arc::new(producer.publisher::<SbEvent>(kafka.topic(TopicName::SbEvents)));
    publish_network_events(&network_events, fabric.lock().announce(), "start");
    let router = sim_router(fabric, network_events)
        .fallback(not_found_fallback)
        .layer(from_fn(correlation_middleware));
    Ok(SbPart {
        router,
        _commands: commands,
        _simulator: simulator,
    })
}
