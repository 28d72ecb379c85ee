//! The topology running live: timely workers on threads, fed by the bus. Each worker's source
//! stamps what it reads with the wall clock and advances its capability as the clock moves
//! (that is what lets deadlines fire). A publish on the bus wakes the source through a
//! `SyncActivator`. The clock only needs to move when a deadline falls, so an idle source
//! (after a grace period that covers a deadline being registered in answer to the last input)
//! sleeps until the earliest pending deadline, at most a second, and the workers park: an
//! idle topology uses next to no CPU, even with the keeper's sweep always pending.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use hubspoke_bus::clock::now_ms;
use hubspoke_bus::flow_log::{FlowLog, FlowLogError, GroupCommit, Lane};
use hubspoke_bus::{ChannelInbound, InProcessBus, InboundSource, Publish, Waker};
use hubspoke_fsm::{Envelope, NbResponse, NetworkState, SbCommand, SbEvent};
use parking_lot::Mutex;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::Probe;
use timely::dataflow::{Scope, StreamVec};
use timely::WorkerConfig;
use tracing::info;

use crate::cluster::{heartbeats, ClusterWatch};
use crate::dataflow::{build, Inbound, Outbound, Settings, Time};
use crate::metrics::Metrics;
use crate::recovery::Recovery;

/// How much one activation of a source takes from each topic before yielding to the
/// operators downstream (it re-activates itself at once if more is waiting).
const SOURCE_BATCH: usize = 4096;

/// How often the watchdog checks the peers' heartbeats.
const WATCHDOG_EVERY: Duration = Duration::from_millis(100);

/// The shortest time between two heartbeats.
const HEARTBEAT_MIN: Duration = Duration::from_millis(50);

/// How long the workers of a failed cluster get to stop (and leave the consumer group)
/// before the owner is told anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a source keeps ticking after its last input even with no deadline pending yet.
const TICK_GRACE: Duration = Duration::from_secs(1);

/// The longest an idle source sleeps while a deadline is pending.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(1);

/// Where a live topology reads from and writes to: the in-process bus or Kafka.
#[derive(Clone)]
pub struct BusPorts {
    /// Makes the input of one worker, given the worker's index in this process.
    pub inbound: Arc<dyn Fn(usize) -> Box<dyn InboundSource> + Send + Sync>,
    pub nb_responses: Arc<dyn Publish<Envelope<NbResponse>>>,
    pub sb_commands: Arc<dyn Publish<Envelope<SbCommand>>>,
    /// Where flow events are made durable (and from where readers get them); read back at
    /// start to recover.
    pub flow_log: Arc<dyn FlowLog>,
    pub network_states: Arc<dyn Publish<Envelope<NetworkState>>>,
}

impl BusPorts {
    pub fn in_process(bus: &Arc<InProcessBus>, flow_log: Arc<dyn FlowLog>) -> Self {
        let inbound_bus = bus.clone();
        BusPorts {
            inbound: Arc::new(move |_worker| Box::new(ChannelInbound::new(inbound_bus.clone()))),
            nb_responses: bus.nb_responses.clone(),
            sb_commands: bus.sb_commands.clone(),
            flow_log,
            network_states: bus.network_states.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Worker threads in this process.
    pub workers: usize,
    /// The cluster this process belongs to (or none), and the watch that fails it whole.
    pub watch: Arc<ClusterWatch>,
    pub settings: Settings,
    /// How often an idle source advances its clock, so deadlines fire on time.
    pub tick: Duration,
    /// The network as far as it is known before the start (over Kafka, `sb.events` read to
    /// its end): the allocator starts with it.
    pub known_network: Vec<SbEvent>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            workers: 1,
            watch: ClusterWatch::alone(ClusterWatch::logging()),
            settings: Settings::default(),
            tick: Duration::from_millis(10),
            known_network: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("--workers must be at least 1")]
    NoWorkers,
    #[error("could not start the timely workers: {0}")]
    Start(String),
    #[error("could not read the flow log to recover: {0}")]
    Recovery(#[from] FlowLogError),
    #[error("could not mark the start of this generation in the flow log: {0}")]
    Generation(FlowLogError),
}

/// A running topology; dropping it stops the workers.
pub struct LiveTopology {
    stop: Arc<AtomicBool>,
    /// Wake each worker's source, so a parked worker sees `stop`.
    wakers: Arc<Mutex<Vec<Waker>>>,
    watch: Arc<ClusterWatch>,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
    /// Dropped after the workers, so it writes what they submitted last.
    group_commit: Option<Arc<GroupCommit>>,
}

impl LiveTopology {
    pub fn start(
        mut config: LiveConfig,
        ports: BusPorts,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LiveError> {
        if config.workers == 0 {
            return Err(LiveError::NoWorkers);
        }
        let reading = Instant::now();
        let mut recovery = Recovery::from_log(now_ms(), ports.flow_log.read_all()?);
        recovery.network = std::mem::take(&mut config.known_network);
        let generation = recovery.generation;
        let flow_log = ports.flow_log.clone();
        let recovery = Arc::new(recovery);
        info!(
            network_events = recovery.network.len(),
            flows = recovery.flows.len(),
            interrupted = recovery
                .flows
                .iter()
                .filter(|f| f.interrupted.is_some())
                .count(),
            generation = recovery.generation,
            took_ms = u64::try_from(reading.elapsed().as_millis()).unwrap_or(u64::MAX),
            "recovered from the flow log"
        );
        let group_commit = Arc::new(GroupCommit::start(ports.flow_log.clone()));
        let worker_group_commit = group_commit.clone();
        // Held until the last local worker has built its dataflow, then freed: the closure
        // timely keeps for the workers' lifetime must not keep every recovered flow twice.
        let recovery_slot = Arc::new(Mutex::new(Some(recovery)));
        let still_building = Arc::new(AtomicUsize::new(config.workers));
        let stop = Arc::new(AtomicBool::new(false));
        let worker_stop = stop.clone();
        let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
        let worker_wakers = wakers.clone();
        let last_input_ms = Arc::new(AtomicU64::new(now_ms()));
        let watch = config.watch.clone();
        let communication = match watch.cluster() {
            None => timely::CommunicationConfig::Process(config.workers),
            Some(cluster) => timely::CommunicationConfig::Cluster {
                threads: config.workers,
                process: cluster.process,
                addresses: cluster.addresses.clone(),
                report: false,
                zerocopy: false,
            },
        };
        let timely_config = timely::Config {
            communication,
            worker: WorkerConfig::default(),
        };
        // A deadline pending in another process needs this process's clock to move too, and
        // the local gauge cannot see it: in a cluster the sources always tick.
        let always_tick = watch.cluster().is_some();
        let heartbeat_every = (watch.timeouts().failure / 10).max(HEARTBEAT_MIN);
        let running = Arc::new(AtomicUsize::new(0));
        spawn_watchdog(&watch, &stop, &wakers, &running);
        let worker_watch = watch.clone();
        let workers_per_process = config.workers;
        let guards = timely::execute(timely_config, move |worker| {
            let _running = Running::count(&running);
            let (ports, metrics, wakers) = (ports.clone(), metrics.clone(), worker_wakers.clone());
            let last_input_ms = last_input_ms.clone();
            let recovery = recovery_slot.lock().clone().unwrap_or_default();
            let group_commit = worker_group_commit.clone();
            let (settings, tick) = (config.settings, config.tick);
            let local_index = worker.index() % config.workers;
            worker.dataflow::<Time, _, _>(move |scope| {
                let published = ProbeHandle::new();
                let setup = Source {
                    inbound: (ports.inbound)(local_index),
                    tick,
                    always_tick,
                    published: published.clone(),
                    wakers,
                    last_input_ms,
                };
                let inbound = bus_source(scope, setup, metrics.clone());
                let out = build(scope, inbound, settings, metrics, &recovery);
                outbox(scope, out, &ports, &group_commit, &published, generation);
            });
            if always_tick {
                let watch = worker_watch.clone();
                worker.dataflow::<Time, _, _>(move |scope| {
                    heartbeats(scope, watch, workers_per_process, heartbeat_every);
                });
            }
            if still_building.fetch_sub(1, Ordering::AcqRel) == 1 {
                recovery_slot.lock().take();
                worker_watch.recovered();
            }
            info!(worker = worker.index(), "topology worker running");
            // Parked until an activation: the bus, a timer, or `stop` waking the source. (A
            // periodic wake-up would cost each idle worker a step of every operator.)
            while !worker_stop.load(Ordering::Relaxed) {
                worker.step_or_park(None);
            }
            // The sources never finish on their own; without this, timely would go on
            // stepping the worker after we return, waiting for the dataflow to complete.
            for dataflow in worker.installed_dataflows() {
                worker.drop_dataflow(dataflow);
            }
        })
        .map_err(LiveError::Start)?;
        watch.connected();
        info!("every timely peer connected");
        // Every process has read the log by now (timely connected them all): mark where this
        // generation begins, so late appends of the one before it are fenced off.
        if watch.cluster().is_none_or(|c| c.process == 0) {
            flow_log
                .begin_generation(generation)
                .map_err(LiveError::Generation)?;
        }
        Ok(LiveTopology {
            stop,
            wakers,
            watch,
            guards: Some(guards),
            group_commit: Some(group_commit),
        })
    }

    pub fn stop(mut self) {
        self.shut_down();
    }

    pub fn watch(&self) -> &Arc<ClusterWatch> {
        &self.watch
    }

    fn shut_down(&mut self) {
        self.watch.stopping();
        stop_workers(&self.stop, &self.wakers);
        if let Some(guards) = self.guards.take() {
            drop(guards.join());
        }
        self.group_commit = None;
    }
}

impl Drop for LiveTopology {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn stop_workers(stop: &AtomicBool, wakers: &Mutex<Vec<Waker>>) {
    stop.store(true, Ordering::Relaxed);
    for wake in wakers.lock().iter() {
        wake();
    }
}

/// Counts a worker as running for as long as it lives, panics included.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn count(running: &Arc<AtomicUsize>) -> Running {
        running.fetch_add(1, Ordering::AcqRel);
        Running(running.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Checks the cluster's timeouts, and on the first failure stops the workers (their Kafka
/// consumers leave the group as they are dropped), gives them `LEAVE_TIMEOUT` to do so, and
/// tells the watch's owner. Ends when the topology stops on purpose.
fn spawn_watchdog(
    watch: &Arc<ClusterWatch>,
    stop: &Arc<AtomicBool>,
    wakers: &Arc<Mutex<Vec<Waker>>>,
    running: &Arc<AtomicUsize>,
) {
    let (watch, stop, wakers, running) =
        (watch.clone(), stop.clone(), wakers.clone(), running.clone());
    let spawned = std::thread::Builder::new()
        .name("cluster-watchdog".into())
        .spawn(move || loop {
            if watch.is_stopping() {
                return;
            }
            let Some(failure) = watch.wait_for_failure(WATCHDOG_EVERY) else {
                watch.check(Instant::now());
                continue;
            };
            stop_workers(&stop, &wakers);
            let since = Instant::now();
            while running.load(Ordering::Acquire) > 0 && since.elapsed() < LEAVE_TIMEOUT {
                std::thread::sleep(WATCHDOG_EVERY);
            }
            watch.report(&failure);
            return;
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the cluster watchdog");
    }
}

/// What a worker's source needs besides the scope.
struct Source {
    inbound: Box<dyn InboundSource>,
    tick: Duration,
    always_tick: bool,
    /// Passes a time when every output before it has been published.
    published: ProbeHandle<Time>,
    /// Where every source of the process leaves its waker, for `LiveTopology::stop` and for
    /// each other.
    wakers: Arc<Mutex<Vec<Waker>>>,
    /// When any source of the process last took input (clock ms).
    last_input_ms: Arc<AtomicU64>,
}

fn bus_source<'scope>(
    scope: Scope<'scope, Time>,
    setup: Source,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Time, Inbound> {
    let worker = scope.worker();
    let Source {
        mut inbound,
        tick,
        always_tick,
        published,
        wakers,
        last_input_ms,
    } = setup;
    source::<_, CapacityContainerBuilder<Vec<Inbound>>, _, _>(
        scope,
        "BusSource",
        move |capability, info| {
            let activator = worker.sync_activator_for(info.address.to_vec());
            let waker: Waker = Arc::new(move || {
                let _ = activator.activate();
            });
            wakers.lock().push(waker.clone());
            inbound.set_waker(waker);
            let activator = scope.activator_for(info.address.clone());
            let mut capability = capability;
            move |output| {
                let now = now_ms().max(*capability.time());
                capability.downgrade(&now);
                let mut session = output.session(&capability);
                let taken = inbound.poll(now, SOURCE_BATCH, &mut |message| session.give(message));
                let handled = published
                    .with_frontier(|frontier| frontier.iter().min().copied().unwrap_or(Time::MAX));
                inbound.handled_before(handled);
                if taken > 0 {
                    // What this input causes leaves only once every worker's source has moved
                    // past its time. Over Kafka each worker hears only of its own partitions,
                    // so a parked one would hold everything back until its keepalive: wake
                    // them all, and let them tick through the grace period too.
                    last_input_ms.store(now, Ordering::Relaxed);
                    for wake in wakers.lock().iter() {
                        wake();
                    }
                    activator.activate();
                } else if always_tick
                    || inbound.has_unhandled()
                    || now_ms().saturating_sub(last_input_ms.load(Ordering::Relaxed))
                        < TICK_GRACE.as_millis() as Time
                {
                    activator.activate_after(tick);
                } else if let Some(next) = metrics.next_deadline.earliest() {
                    // Only deadlines are waited for: wake when the earliest falls, checking
                    // now and then (a deadline registered meanwhile may be earlier).
                    let wait = Duration::from_millis(next.saturating_sub(now));
                    activator.activate_after(wait.clamp(tick, MAX_IDLE_WAIT));
                } else if let Some(keepalive) = inbound.keepalive() {
                    activator.activate_after(keepalive);
                }
            }
        },
    )
}

/// What waits in the outbox for the flow events of its time to be durable.
#[derive(Default)]
struct Held {
    /// The group-commit ticket of this time's flow events (0: none).
    ticket: u64,
    commands: Vec<Envelope<SbCommand>>,
    responses: Vec<Envelope<NbResponse>>,
    states: Vec<Envelope<NetworkState>>,
}

/// Sends what the topology produced. Flow events go to the flow log's group commit as they
/// come; commands, answers and network states of a time leave only once no flow event of that
/// time or earlier can still come and the ones that came are durable. So a switch never holds
/// a rule, and a client never hears of a flow, that a restart would not know about; and the
/// worker goes on computing while the log writes.
///
/// Everything leaves stamped with this start's `generation`, for the readers' fence.
///
/// Its (empty) output lets `published` see when everything before a time has been sent.
fn outbox<'scope>(
    scope: Scope<'scope, Time>,
    out: Outbound<'scope>,
    ports: &BusPorts,
    group_commit: &GroupCommit,
    published: &ProbeHandle<Time>,
    generation: u64,
) {
    let mut builder = OperatorBuilder::new("Outbox".to_owned(), scope);
    let activator = scope
        .worker()
        .sync_activator_for(builder.operator_info().address.to_vec());
    let mut lane: Lane = group_commit.lane(Arc::new(move || {
        let _ = activator.activate();
    }));
    let mut events = builder.new_input(out.flow_events, Pipeline);
    let mut commands = builder.new_input(out.sb_commands, Pipeline);
    let mut responses = builder.new_input(out.nb_responses, Pipeline);
    let mut states = builder.new_input(out.network_states, Pipeline);
    let (_done_out, done) = builder.new_output::<Vec<()>>();
    let ports = ports.clone();
    builder.build(move |_initial_capabilities| {
        let mut held: BTreeMap<Time, (Capability<Time>, Held)> = BTreeMap::new();
        let mut stamped = Vec::new();
        move |frontiers| {
            let mut batch = Vec::new();
            events.for_each_stamp(|capability, data| {
                if let Some(time) = capability.least().copied() {
                    stamped.push(time);
                    stash_at(&mut held, capability);
                }
                batch.extend(
                    data.flat_map(|b| b.drain(..))
                        .map(|e| stamped_with(e, generation)),
                );
            });
            let ticket = lane.submit(batch);
            for time in stamped.drain(..) {
                if let Some((_, stash)) = held.get_mut(&time) {
                    stash.ticket = ticket;
                }
            }
            commands.for_each_stamp(|capability, data| {
                if let Some(stash) = stash_at(&mut held, capability) {
                    stash.commands.extend(data.flat_map(|b| b.drain(..)));
                }
            });
            responses.for_each_stamp(|capability, data| {
                if let Some(stash) = stash_at(&mut held, capability) {
                    stash.responses.extend(data.flat_map(|b| b.drain(..)));
                }
            });
            states.for_each_stamp(|capability, data| {
                if let Some(stash) = stash_at(&mut held, capability) {
                    stash.states.extend(data.flat_map(|b| b.drain(..)));
                }
            });
            let durable = lane.durable();
            while let Some(entry) = held.first_entry() {
                if frontiers[0].frontier().less_equal(entry.key()) || entry.get().1.ticket > durable
                {
                    break;
                }
                let (_capability, stash) = entry.remove();
                stash
                    .commands
                    .into_iter()
                    .for_each(|c| ports.sb_commands.publish(stamped_with(c, generation)));
                stash
                    .responses
                    .into_iter()
                    .for_each(|r| ports.nb_responses.publish(stamped_with(r, generation)));
                stash
                    .states
                    .into_iter()
                    .for_each(|s| ports.network_states.publish(stamped_with(s, generation)));
            }
        }
    });
    done.probe_with(published);
}

/// `envelope`, as sent by topology generation `generation` (see `Envelope::epoch`).
fn stamped_with<P>(mut envelope: Envelope<P>, generation: u64) -> Envelope<P> {
    envelope.epoch = generation;
    envelope
}

/// The stash for the capability's time, holding that time open on the outbox's output.
fn stash_at(
    held: &mut BTreeMap<Time, (Capability<Time>, Held)>,
    capability: timely::dataflow::operators::InputCapability<Time>,
) -> Option<&mut Held> {
    let time = *capability.least()?;
    match held.entry(time) {
        std::collections::btree_map::Entry::Occupied(entry) => Some(&mut entry.into_mut().1),
        std::collections::btree_map::Entry::Vacant(entry) => {
            let kept = capability.retain_least(0)?;
            Some(&mut entry.insert((kept, Held::default())).1)
        }
    }
}
