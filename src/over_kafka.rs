//! The parts as processes of their own over a Kafka broker: the topology, the northbound shim
//! (`nb`) and the switch simulator (`sb`). Each `start_*` connects its consumers and
//! producers and returns the running part; the binary serves it until a signal, then stops it.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::middleware::from_fn;
use axum::Router;
use hubspoke_bus::{publish_network_events, InProcessBus, InboundSource, NetworkEvents, Publish};
use hubspoke_fsm::network::Network;
use hubspoke_fsm::{Envelope, NbRequest, NbResponse, SbCommand, SbEvent, SbResponse};
use hubspoke_kafka::{
    read_to_end, spawn_consumer, ConsumerHandle, KafkaError, KafkaFlowLog, KafkaInbound,
    KafkaProducer, KafkaSettings, Membership, TopicName, WorkerSeat,
};
use hubspoke_northbound::Northbound;
use hubspoke_of_switches::{OpenFlowSpeaker, SpeakerConfig, SpeakerError};
use hubspoke_rest::Readiness;
use hubspoke_rest::{correlation_middleware, health_routes, not_found_fallback};
use hubspoke_switch_sim::{sim_router, FabricError, Simulator, SimulatorHandle, SwitchFabric};
use hubspoke_topology::cluster::ClusterWatch;
use hubspoke_topology::dataflow::Settings;
use hubspoke_topology::live::{BusPorts, LiveConfig, LiveError, LiveTopology};
use hubspoke_topology::metrics::Metrics;
use parking_lot::Mutex;

use crate::embedded::topology_readiness;

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
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
}

/// The consumer group of `sb.commands`: the simulator's or the speaker's, whichever runs.
const SB_GROUP: &str = "hubspoke-sb";

#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// Timely worker threads in this process; each is one consumer of the inbound partitions.
    pub workers: usize,
    /// The cluster (or none) and the watch that fails it whole.
    pub watch: Arc<ClusterWatch>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}

/// How many partitions the topology group has assigned to this process's consumers; empty
/// until they exist. Readiness asks it.
#[derive(Clone, Default)]
pub struct GroupAssignment(Arc<Mutex<Vec<Arc<AtomicUsize>>>>);

impl GroupAssignment {
    pub fn partitions(&self) -> usize {
        self.0
            .lock()
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }
}

/// What the topology process must have before it takes traffic: its consumer group
/// assigned, its cluster connected, its flows recovered.
pub fn topology_process_readiness(watch: &Arc<ClusterWatch>, group: &GroupAssignment) -> Readiness {
    let group = group.clone();
    Readiness::new()
        .with("consumer group assigned", move || group.partitions() > 0)
        .and(topology_readiness(watch))
}

/// The topology, fed by the inbound topics. It first reads `sb.events` to its end, so no
/// request meets a switch it has not heard of yet.
pub fn start_topology(
    kafka: &KafkaSettings,
    producer: &KafkaProducer,
    config: TopologyConfig,
    group: &GroupAssignment,
) -> Result<LiveTopology, OverKafkaError> {
    let started = Instant::now();
    let (announced, network_end) =
        read_to_end::<SbEvent>(kafka, &kafka.topic(TopicName::SbEvents))?;
    tracing::info!(
        events = announced.len(),
        took_ms = ms(started),
        "read the network"
    );
    // One consumer per worker, made up front so a bad setting fails here, not in a worker.
    let cluster = config.watch.cluster();
    let process = cluster.map_or(0, |c| c.process);
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
    *group.0.lock() = inbounds.iter().map(|i| i.assigned_partitions()).collect();
    let waiting = Instant::now();
    if KafkaInbound::wait_for_partitions(&inbounds, cluster.is_none(), PARTITIONS_WAIT) {
        tracing::info!(
            took_ms = ms(waiting),
            "the consumer group assigned the partitions"
        );
    } else {
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
        watch: config.watch,
        settings: config.settings,
        known_network: announced.into_iter().map(|e| e.payload).collect(),
        ..LiveConfig::default()
    };
    Ok(LiveTopology::start(live, ports, config.metrics)?)
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
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
        readiness: Readiness::new(),
    };
    Ok(NbPart {
        router: northbound.router(),
        _consumers: consumers,
    })
}

/// The OpenFlow speaker over Kafka: real switches connect to it; it keeps its consumer and
/// its threads running while it lives.
pub struct SpeakerPart {
    pub speaker: OpenFlowSpeaker,
    _commands: ConsumerHandle,
}

/// Takes `sb.commands` (in the southbound's group, so it stands where `hubspoke sb` would),
/// answers them on `sb.responses`, and reports the switches and links it finds on
/// `sb.events`.
pub fn start_speaker(
    kafka: &KafkaSettings,
    producer: &KafkaProducer,
    config: SpeakerConfig,
) -> Result<SpeakerPart, OverKafkaError> {
    let sb = SouthboundPorts::over(kafka, producer)?;
    let speaker = OpenFlowSpeaker::start(config, sb.commands, sb.responses, sb.events)?;
    Ok(SpeakerPart {
        speaker,
        _commands: sb.consumer,
    })
}

/// What a southbound part (the simulator or the speaker) takes and gives over Kafka: the
/// commands of `sb.commands` (in the southbound's group), and publishers for its answers and
/// its network events.
struct SouthboundPorts {
    consumer: ConsumerHandle,
    commands: crossbeam_channel::Receiver<Envelope<SbCommand>>,
    responses: Arc<dyn Publish<Envelope<SbResponse>>>,
    events: NetworkEvents,
}

impl SouthboundPorts {
    fn over(kafka: &KafkaSettings, producer: &KafkaProducer) -> Result<Self, OverKafkaError> {
        let local = InProcessBus::new();
        let consumer = spawn_consumer(
            kafka,
            TopicName::SbCommands,
            Membership::Group(SB_GROUP),
            local.sb_commands.clone(),
            producer.clone(),
        )?;
        Ok(SouthboundPorts {
            consumer,
            commands: local.sb_commands.receiver(),
            responses: Arc::new(
                producer.publisher::<SbResponse>(kafka.topic(TopicName::SbResponses)),
            ),
            events: Arc::new(producer.publisher::<SbEvent>(kafka.topic(TopicName::SbEvents))),
        })
    }
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
    let sb = SouthboundPorts::over(kafka, producer)?;
    let fabric = match data_dir {
        Some(dir) => SwitchFabric::open_in(network, dir)?,
        None => SwitchFabric::new(network),
    };
    let fabric = Arc::new(Mutex::new(fabric));
    let simulator = Simulator::spawn(fabric.clone(), sb.commands, sb.responses);
    let network_events = sb.events;
    publish_network_events(&network_events, fabric.lock().announce(), "start");
    // Ready as soon as it serves: the network is announced and the commands are consumed.
    let router = sim_router(fabric, network_events)
        .merge(health_routes(Readiness::new()))
        .fallback(not_found_fallback)
        .layer(from_fn(correlation_middleware));
    Ok(SbPart {
        router,
        _commands: sb.consumer,
        _simulator: simulator,
    })
}
