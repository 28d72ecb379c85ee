//! The topology as a timely dataflow. Every flow-keyed operator (hub, speaker worker,
//! coordinator) exchanges its inputs by flow id, so all state of one flow lives on one worker;
//! the allocator runs on worker 0 so bandwidth is reserved in one place. The network view
//! (differential) is fed by the allocator and spread over all workers by key.
//!
//! ```text
//! inbound ─┬─ nb requests ─► hub ◄── feedback(+1): allocations, speaker reports, hub timeouts,
//!          │                  │                    flows on down links
//!          ├─ sb events ──────┼─► allocator ─┬──────────► allocations
//!          │                  │              ├─► network view ─► flows on down links
//!          │                  │              │               └─► network states (out)
//!          │                  │              └─► "network improved" (broadcast) ─► hub
//!          │                  ├─► speaker requests ─► speaker ◄── feedback(+1): speaker timeouts
//!          └─ sb responses ─────────────────────────►    ├─► reports
//!                             │                           ├─► sb commands (out)
//!                             ├─► deadlines ─┬────────────┘ deadlines
//!                             │              └─► coordinator ─► timeouts (hub / speaker)
//!                             └─► nb responses, flow events (out)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

pub use hubspoke_bus::Inbound;
use hubspoke_fsm::operation::Timeouts;
use hubspoke_fsm::{
    stable_hash, Envelope, FlowEvent, FlowRecord, NbRequest, NbResponse, NetworkState, SbCommand,
    SbEvent, SbResponse,
};
use hubspoke_speaker::deadline::{DeadlineRequest, Timeout, TimerOwner};
use hubspoke_speaker::{RetryPolicy, SpeakerOutput, SpeakerRequest, SpeakerStats, SpeakerWorker};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::channels::pushers::Output;
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Capability, Concat, ConnectLoop, Feedback, InputCapability};
use timely::dataflow::{Scope, StreamVec};

use crate::allocator::{AllocatorRequest, ResourcePool};
use crate::coordinator::DeadlineTable;
use crate::hub::{Hub, HubInput, HubOutput, RerouteThrottle, REROUTE_TIMER, WATCHDOG_TIMER};
use crate::metrics::Metrics;
use crate::recovery::{RecoveredFlow, Recovery};
use crate::view::{network_view, ViewChange};
use crate::wire::Json;

/// Logical time: milliseconds.
pub type Time = u64;

/// The settings that shape the topology's behaviour (not its transport).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    #[serde(default)]
    pub reroute: RerouteThrottle,
}

/// What leaves the topology for the bus.
pub struct Outbound<'scope> {
    pub sb_commands: StreamVec<'scope, Time, Envelope<SbCommand>>,
    pub nb_responses: StreamVec<'scope, Time, Envelope<NbResponse>>,
    pub flow_events: StreamVec<'scope, Time, Envelope<FlowEvent>>,
    pub network_states: StreamVec<'scope, Time, Envelope<NetworkState>>,
}

/// The worker a flow lives on is chosen by this hash of its id.
pub fn route(flow_id: &str) -> u64 {
    stable_hash(&[flow_id.as_bytes()])
}

/// Builds the topology. `recovery` is what the flow log held when the topology started (empty
/// for a fresh one): worker 0 restores the reservations and hands every flow to its hub.
pub fn build<'scope>(
    scope: Scope<'scope, Time>,
    inbound: StreamVec<'scope, Time, Inbound>,
    settings: Settings,
    metrics: Arc<Metrics>,
    recovery: &Recovery,
) -> Outbound<'scope> {
    let first_worker = scope.worker().index() == 0;
    let restored: Vec<Json<Restored>> = if first_worker {
        let flows = recovery.flows.iter().cloned().map(Restored::Flow);
        let answers = recovery.answers.values().cloned().map(Restored::Answer);
        flows.chain(answers).map(Json).collect()
    } else {
        Vec::new()
    };
    let restored = at_time(scope, restored, recovery.at_ms);
    // Partition moves each message to one branch; cloning the stream would copy every message
    // into every branch.
    let mut branches = inbound
        .partition::<CapacityContainerBuilder<Vec<Inbound>>, _, _>(3, |m| {
            let branch = match &m {
                Inbound::NbRequest(_) => 0,
                Inbound::SbResponse(_) => 1,
                Inbound::SbEvent(_) => 2,
            };
            (branch, m)
        })
        .into_iter();
    let (Some(nb_requests), Some(sb_responses), Some(network_events)) =
        (branches.next(), branches.next(), branches.next())
    else {
        unreachable!("partition into 3 gives 3 streams")
    };
    let nb_requests = nb_requests.flat_map(|m| match m {
        Inbound::NbRequest(envelope) => Some(Json(envelope)),
        _ => None,
    });
    let sb_responses = sb_responses.flat_map(|m| match m {
        Inbound::SbResponse(envelope) => Some(Json(envelope)),
        _ => None,
    });
    let network_events = network_events.flat_map(|m| match m {
        Inbound::SbEvent(envelope) => Some(AllocatorRequest::Network(Json(envelope.payload))),
        _ => None,
    });
    let (hub_loop, hub_feedback) = scope.feedback::<Vec<HubInput>>(1);
    let (speaker_loop, speaker_timeouts) = scope.feedback::<Vec<Timeout>>(1);

    let (improved_loop, improved) = scope.feedback::<Vec<()>>(1);
    let hub = hub_operator(
        scope,
        HubInputs {
            requests: nb_requests,
            feedback: hub_feedback,
            improved,
            restored,
        },
        settings,
        recovery.at_ms,
        metrics.clone(),
    );
    let known = if first_worker {
        Known {
            network: recovery.network.clone(),
            reservations: recovery.flows.iter().map(|f| f.record.clone()).collect(),
            at_ms: recovery.at_ms,
        }
    } else {
        Known::default()
    };
    let allocator = allocator_operator(scope, network_events.concat(hub.allocator), known);
    allocator
        .view_changes
        .clone()
        .flat_map(|change| improves(&change).then_some(()))
        .broadcast()
        .connect_loop(improved_loop);
    let view = network_view(allocator.view_changes);
    let affected = view
        .affected
        .map(|(flow_id, affected)| HubInput::PathAffected { flow_id, affected });
    let speaker = speaker_operator(
        scope,
        hub.speaker,
        sb_responses,
        speaker_timeouts,
        settings.retry,
        metrics.clone(),
    );
    let timeouts = coordinator_operator(hub.deadlines.concat(speaker.deadlines), metrics);

    let mut by_owner = timeouts
        .partition::<CapacityContainerBuilder<Vec<Timeout>>, _, _>(2, |t| {
            (u64::from(t.key.owner == TimerOwner::Speaker), t)
        })
        .into_iter();
    let (Some(hub_timeouts), Some(speaker_timeouts)) = (by_owner.next(), by_owner.next()) else {
        unreachable!("partition into 2 gives 2 streams")
    };
    let hub_timeouts = hub_timeouts.map(|t| {
        let (flow_id, generation) = (t.key.flow_id, t.generation);
        match t.key.name.as_str() {
            REROUTE_TIMER => HubInput::RerouteDue {
                flow_id,
                generation,
            },
            WATCHDOG_TIMER => HubInput::Overdue {
                flow_id,
                generation,
            },
            _ => HubInput::Timeout {
                flow_id,
                generation,
            },
        }
    });
    speaker_timeouts.connect_loop(speaker_loop);
    allocator
        .results
        .concat(speaker.reports)
        .concat(hub_timeouts)
        .concat(affected)
        .connect_loop(hub_loop);

    Outbound {
        sb_commands: speaker.commands,
        nb_responses: hub.responses,
        flow_events: hub.events,
        network_states: stamped(view.states),
    }
}

/// `items` as a stream at logical time `at`: a restarted topology's state enters at the time
/// it restarted, so the clocks of what it sets going (deadlines, retries) start there.
fn at_time<'scope, D: Clone + 'static>(
    scope: Scope<'scope, Time>,
    items: Vec<D>,
    at: Time,
) -> StreamVec<'scope, Time, D> {
    source::<_, CapacityContainerBuilder<Vec<D>>, _, _>(scope, "AtTime", move |capability, _| {
        let mut pending = Some((capability, items));
        move |output| {
            if let Some((mut capability, items)) = pending.take() {
                capability.downgrade(&at);
                output.session(&capability).give_iterator(items.into_iter());
            }
        }
    })
}

/// Whether a change may give a DOWN flow a path: a link or switch coming up.
fn improves(change: &ViewChange) -> bool {
    matches!(
        change,
        ViewChange::Link {
            up: true,
            diff: 1,
            ..
        } | ViewChange::Switch {
            up: true,
            diff: 1,
            ..
        }
    )
}

/// Network states as bus messages, keyed by switch or link, stamped with their time.
fn stamped<'scope>(
    states: StreamVec<'scope, Time, NetworkState>,
) -> StreamVec<'scope, Time, Envelope<NetworkState>> {
    states.unary(Pipeline, "Stamp", |_capability, _info| {
        move |input, output| {
            input.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                let mut session = output.session(&capability);
                for state in data.flat_map(|batch| batch.drain(..)) {
                    session.give(Envelope::new("network-view", state.key(), now, state));
                }
            });
        }
    })
}

/// Sends `data` on `output` at the input's time, if there is any.
fn ship<D: 'static>(
    output: &mut Output<Time, Vec<D>>,
    input: &InputCapability<Time>,
    data: &mut Vec<D>,
) {
    if data.is_empty() {
        return;
    }
    if let Some(capability) = input.retain_least(output.output_index()) {
        output.activate().give(&capability, data);
    }
    data.clear();
}

struct HubStreams<'scope> {
    speaker: StreamVec<'scope, Time, SpeakerRequest>,
    allocator: StreamVec<'scope, Time, AllocatorRequest>,
    deadlines: StreamVec<'scope, Time, DeadlineRequest>,
    responses: StreamVec<'scope, Time, Envelope<NbResponse>>,
    events: StreamVec<'scope, Time, Envelope<FlowEvent>>,
}

/// Per-output buffers of the hub, filled from its outputs in one pass.
#[derive(Default)]
struct HubBuffers {
    speaker: Vec<SpeakerRequest>,
    allocator: Vec<AllocatorRequest>,
    deadlines: Vec<DeadlineRequest>,
    responses: Vec<Envelope<NbResponse>>,
    events: Vec<Envelope<FlowEvent>>,
}

impl HubBuffers {
    fn sort(&mut self, outputs: &mut Vec<HubOutput>) {
        for output in outputs.drain(..) {
            match output {
                HubOutput::Speaker(x) => self.speaker.push(x),
                HubOutput::Allocator(x) => self.allocator.push(x),
                HubOutput::Deadline(x) => self.deadlines.push(x),
                HubOutput::Response(x) => self.responses.push(x),
                HubOutput::Event(x) => self.events.push(x),
            }
        }
    }
}

/// What a restarted topology hands the hubs, each to the worker of its flow.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Restored {
    Flow(RecoveredFlow),
    Answer(Envelope<NbResponse>),
}

impl Restored {
    fn flow_id(&self) -> &str {
        match self {
            Restored::Flow(flow) => flow.record.flow_id(),
            Restored::Answer(answer) => &answer.key,
        }
    }
}

struct HubInputs<'scope> {
    requests: StreamVec<'scope, Time, Json<Envelope<NbRequest>>>,
    feedback: StreamVec<'scope, Time, HubInput>,
    improved: StreamVec<'scope, Time, ()>,
    restored: StreamVec<'scope, Time, Json<Restored>>,
}

fn hub_operator<'scope>(
    scope: Scope<'scope, Time>,
    inputs: HubInputs<'scope>,
    settings: Settings,
    restored_at_ms: Time,
    metrics: Arc<Metrics>,
) -> HubStreams<'scope> {
    let HubInputs {
        requests,
        feedback,
        improved,
        restored,
    } = inputs;
    let mut builder = OperatorBuilder::new("Hub".to_owned(), scope);
    let mut restored = builder.new_input(
        restored,
        Exchange::new(|r: &Json<Restored>| route(r.0.flow_id())),
    );
    let mut requests = builder.new_input(
        requests,
        Exchange::new(|e: &Json<Envelope<NbRequest>>| route(e.0.payload.flow_id())),
    );
    let mut feedback =
        builder.new_input(feedback, Exchange::new(|i: &HubInput| route(i.flow_id())));
    let mut improved = builder.new_input(improved, Pipeline);
    let (mut speaker_out, speaker) = builder.new_output();
    let (mut allocator_out, allocator) = builder.new_output();
    let (mut deadlines_out, deadlines) = builder.new_output();
    let (mut responses_out, responses) = builder.new_output();
    let (mut events_out, events) = builder.new_output();
    builder.build(move |_initial_capabilities| {
        let mut hub = Hub::new(settings.timeouts, settings.reroute, metrics);
        let mut outputs = Vec::new();
        let mut buffers = HubBuffers::default();
        move |_frontiers| {
            let mut flush = |capability: &InputCapability<Time>, outputs: &mut Vec<HubOutput>| {
                buffers.sort(outputs);
                ship(&mut speaker_out, capability, &mut buffers.speaker);
                ship(&mut allocator_out, capability, &mut buffers.allocator);
                ship(&mut deadlines_out, capability, &mut buffers.deadlines);
                ship(&mut responses_out, capability, &mut buffers.responses);
                ship(&mut events_out, capability, &mut buffers.events);
            };
            restored.for_each_stamp(|capability, data| {
                let (mut flows, mut answers) = (Vec::new(), Vec::new());
                for Json(item) in data.flat_map(|batch| batch.drain(..)) {
                    match item {
                        Restored::Flow(flow) => flows.push(flow),
                        Restored::Answer(answer) => answers.push(answer),
                    }
                }
                hub.restore(restored_at_ms, flows, answers, &mut outputs);
                flush(&capability, &mut outputs);
            });
            requests.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for Json(envelope) in data.flat_map(|batch| batch.drain(..)) {
                    hub.request(now, envelope, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            feedback.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for input in data.flat_map(|batch| batch.drain(..)) {
                    hub.input(now, input, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            // However many links came up at once, DOWN flows are queued once.
            improved.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                if data.flat_map(|batch| batch.drain(..)).count() > 0 {
                    hub.network_improved(now, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
        }
    });
    HubStreams {
        speaker,
        allocator,
        deadlines,
        responses,
        events,
    }
}

struct AllocatorStreams<'scope> {
    results: StreamVec<'scope, Time, HubInput>,
    view_changes: StreamVec<'scope, Time, ViewChange>,
}

/// What the allocator knows before its first request.
#[derive(Default)]
struct Known {
    /// The network announced so far.
    network: Vec<SbEvent>,
    /// The records a restarted topology found, whose resources are taken back before
    /// anything else is allocated.
    reservations: Vec<FlowRecord>,
    /// When the topology started: what the view learns from this enters at that time.
    at_ms: Time,
}

fn allocator_operator<'scope>(
    scope: Scope<'scope, Time>,
    requests: StreamVec<'scope, Time, AllocatorRequest>,
    known: Known,
) -> AllocatorStreams<'scope> {
    let mut builder = OperatorBuilder::new("Allocator".to_owned(), scope);
    let mut requests = builder.new_input(requests, Exchange::new(|_: &AllocatorRequest| 0));
    let (mut results_out, results) = builder.new_output();
    let (mut changes_out, view_changes) = builder.new_output();
    builder.build(move |initial_capabilities| {
        let mut pool = ResourcePool::new();
        for event in &known.network {
            pool.apply_network_event(event);
        }
        for record in &known.reservations {
            pool.restore(record);
        }
        // The view learns what was known at the start time (the hubs' clocks count from
        // there); then the initial capabilities go.
        let mut restored = initial_capabilities
            .into_iter()
            .nth(1)
            .map(|mut capability| {
                capability.downgrade(&known.at_ms);
                let changes = pool.take_view_changes();
                (capability, changes)
            });
        let mut answers = Vec::new();
        move |_frontiers| {
            if let Some((capability, mut changes)) = restored.take() {
                if !changes.is_empty() {
                    changes_out.activate().give(&capability, &mut changes);
                }
            }
            requests.for_each_stamp(|capability, data| {
                for request in data.flat_map(|batch| batch.drain(..)) {
                    if let Some(result) = pool.handle(request) {
                        answers.push(HubInput::Allocation(result));
                    }
                }
                ship(&mut results_out, &capability, &mut answers);
                ship(&mut changes_out, &capability, &mut pool.take_view_changes());
            });
        }
    });
    AllocatorStreams {
        results,
        view_changes,
    }
}

struct SpeakerStreams<'scope> {
    commands: StreamVec<'scope, Time, Envelope<SbCommand>>,
    reports: StreamVec<'scope, Time, HubInput>,
    deadlines: StreamVec<'scope, Time, DeadlineRequest>,
}

fn speaker_operator<'scope>(
    scope: Scope<'scope, Time>,
    requests: StreamVec<'scope, Time, SpeakerRequest>,
    responses: StreamVec<'scope, Time, Json<Envelope<SbResponse>>>,
    timeouts: StreamVec<'scope, Time, Timeout>,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
) -> SpeakerStreams<'scope> {
    let mut builder = OperatorBuilder::new("Speaker".to_owned(), scope);
    let mut requests = builder.new_input(
        requests,
        Exchange::new(|r: &SpeakerRequest| route(r.flow_id())),
    );
    let mut responses = builder.new_input(
        responses,
        Exchange::new(|e: &Json<Envelope<SbResponse>>| route(&e.0.key)),
    );
    let mut timeouts =
        builder.new_input(timeouts, Exchange::new(|t: &Timeout| route(&t.key.flow_id)));
    let (mut commands_out, commands) = builder.new_output();
    let (mut reports_out, reports) = builder.new_output();
    let (mut deadlines_out, deadlines) = builder.new_output();
    builder.build(move |_initial_capabilities| {
        let mut worker = SpeakerWorker::new(policy);
        let mut reported = SpeakerStats::default();
        let mut outputs = Vec::new();
        let (mut commands_buf, mut reports_buf, mut deadlines_buf) =
            (Vec::new(), Vec::new(), Vec::new());
        move |_frontiers| {
            let mut flush = |capability: &InputCapability<Time>,
                             outputs: &mut Vec<SpeakerOutput>| {
                for output in outputs.drain(..) {
                    match output {
                        SpeakerOutput::Command(c) => commands_buf.push(c),
                        SpeakerOutput::Report(r) => reports_buf.push(HubInput::Report(r)),
                        SpeakerOutput::Deadline(d) => deadlines_buf.push(d),
                    }
                }
                ship(&mut commands_out, capability, &mut commands_buf);
                ship(&mut reports_out, capability, &mut reports_buf);
                ship(&mut deadlines_out, capability, &mut deadlines_buf);
            };
            requests.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for request in data.flat_map(|batch| batch.drain(..)) {
                    worker.request(now, request, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            responses.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for Json(envelope) in data.flat_map(|batch| batch.drain(..)) {
                    worker.response(now, &envelope.payload, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            timeouts.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for timeout in data.flat_map(|batch| batch.drain(..)) {
                    worker.timeout(now, &timeout.key, timeout.generation, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            let stats = worker.stats();
            metrics
                .sb_commands_sent
                .add(stats.commands_sent - reported.commands_sent);
            metrics.sb_retries.add(stats.retries - reported.retries);
            metrics
                .sb_commands_failed
                .add(stats.commands_failed - reported.commands_failed);
            metrics
                .sb_responses_dropped
                .add(stats.responses_dropped - reported.responses_dropped);
            reported = stats;
        }
    });
    SpeakerStreams {
        commands,
        reports,
        deadlines,
    }
}

/// The coordinator operator: applies deadline registrations and cancellations (exchanged by
/// flow id) to a [`DeadlineTable`], holds one capability per pending deadline time, and emits
/// the [`Timeout`]s of a time once the input frontier has passed it. Public so that
/// benchmarks can drive the real operator in a dataflow of their own; [`build`] wires it.
pub fn coordinator_operator<'scope>(
    requests: StreamVec<'scope, Time, DeadlineRequest>,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Time, Timeout> {
    let pact = Exchange::new(|d: &DeadlineRequest| route(&d.key().flow_id));
    requests.unary_frontier(pact, "Coordinator", move |_capability, _info| {
        let mut table = DeadlineTable::default();
        let mut held: BTreeMap<Time, Capability<Time>> = BTreeMap::new();
        let mut counted = 0;
        move |(input, frontier), output| {
            input.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for request in data.flat_map(|batch| batch.drain(..)) {
                    let (added, emptied) = table.apply(now, request);
                    if let Some(at) = added {
                        held.entry(at).or_insert_with(|| capability.delayed(&at, 0));
                    }
                    if let Some(at) = emptied {
                        held.remove(&at);
                    }
                }
            });
            while let Some(entry) = held.first_entry() {
                if frontier.frontier().less_equal(entry.key()) {
                    break;
                }
                let (at, capability) = entry.remove_entry();
                let due = table.take_due(at);
                metrics.deadlines_fired.add(due.len() as u64);
                output.session(&capability).give_iterator(due.into_iter());
            }
            metrics.deadlines_pending.add(table.len() as i64 - counted);
            counted = table.len() as i64;
        }
    })
}
