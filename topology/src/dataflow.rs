//! The topology as a timely dataflow: this module wires the operators, each of which lives
//! beside its logic (`hub::operator`, `allocator::operator`, `speaker`, `coordinator`,
//! `view`). Every flow-keyed operator (hub, speaker worker, coordinator) exchanges its inputs
//! by flow id, so all state of one flow lives on one worker; the allocator runs on worker 0 so
//! bandwidth is reserved in one place. The network view (differential) is fed by the
//! allocator and spread over all workers by key.
//!
//! ```text
//! inbound ─┬─ nb requests ─► hub ◄── feedback(+1): allocations, speaker reports, hub timeouts,
//!          │                  │                    flows on down links
//!          ├─ sb events ──────┼─► allocator ─┬──────────► allocations
//!          │                  │              ├─► network view ─► flows on down links
//!          │                  │              │               ├─► network states (out)
//!          │                  │              │               └─► paths shared in a diversity
//!          │                  │              │                   group (flow events, out)
//!          │                  │              └─► "network improved" (broadcast) ─► hub
//!          │                  ├─► speaker requests ─► speaker ◄── feedback(+1): speaker timeouts
//!          └─ sb responses ─────────────────────────►    ├─► reports
//!                             │                           ├─► sb commands (out)
//!                             ├─► deadlines ─┬────────────┘ deadlines
//!                             │              └─► coordinator ─► timeouts (hub / speaker)
//!                             └─► nb responses, flow events (out)
//! ```

use std::sync::Arc;

pub use hubspoke_bus::Inbound;
use hubspoke_fsm::operation::Timeouts;
use hubspoke_fsm::{stable_hash, Envelope, FlowEvent, NbResponse, NetworkState, SbCommand};
use hubspoke_speaker::deadline::{CommandTimer, Timeout};
use hubspoke_speaker::{Requester, RetryPolicy, SpeakerReport};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::channels::pushers::Output;
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Concat, ConnectLoop, Feedback, InputCapability};
use timely::dataflow::{Scope, StreamVec};

use crate::allocator::operator::{allocator_operator, KeeperInput, Known};
use crate::allocator::AllocatorRequest;
use crate::coordinator::{coordinator_operator, TimerKey};
use crate::hub::operator::{hub_operator, HubInputs, Restored};
use crate::hub::{HubInput, RerouteThrottle};
use crate::keeper::KeeperSettings;
use crate::metrics::Metrics;
use crate::recovery::Recovery;
use crate::speaker::speaker_operator;
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
    #[serde(default)]
    pub keeper: KeeperSettings,
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
        .partition::<CapacityContainerBuilder<Vec<Inbound>>, _, _>(4, |m| {
            let branch = match &m {
                Inbound::NbRequest(e) if e.payload.is_for_keeper() => 3,
                Inbound::NbRequest(_) => 0,
                Inbound::SbResponse(_) => 1,
                Inbound::SbEvent(_) => 2,
            };
            (branch, m)
        })
        .into_iter();
    let (Some(nb_requests), Some(sb_responses), Some(network_events), Some(keeper_requests)) = (
        branches.next(),
        branches.next(),
        branches.next(),
        branches.next(),
    ) else {
        unreachable!("partition into 4 gives 4 streams")
    };
    let nb_requests = nb_requests.flat_map(|m| match m {
        Inbound::NbRequest(envelope) => Some(Json(envelope)),
        _ => None,
    });
    let keeper_requests = keeper_requests.flat_map(|m| match m {
        Inbound::NbRequest(envelope) => Some(KeeperInput::Request(Json(envelope))),
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
    let (speaker_loop, speaker_timeouts) = scope.feedback::<Vec<Timeout<CommandTimer>>>(1);
    let (keeper_loop, keeper_feedback) = scope.feedback::<Vec<KeeperInput>>(1);
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
            groups: recovery.groups.clone(),
            debts: recovery.debts.clone(),
            at_ms: recovery.at_ms,
        }
    } else {
        Known::default()
    };
    let allocator = allocator_operator(
        scope,
        network_events.concat(hub.allocator),
        keeper_requests.concat(keeper_feedback),
        known,
        settings.keeper,
        metrics.clone(),
    );
    allocator
        .view_changes
        .clone()
        .flat_map(|change| improves(&change).then_some(()))
        .broadcast()
        .connect_loop(improved_loop);
    let view = network_view(allocator.view_changes);
    let affected = view
        .affected
        .map(|(path, affected)| HubInput::PathAffected {
            flow_id: path.flow_id,
            protected: path.protected,
            affected,
        });
    let speaker = speaker_operator(
        scope,
        hub.speaker.concat(allocator.speaker),
        sb_responses,
        speaker_timeouts,
        settings.retry,
        metrics.clone(),
    );
    let timeouts = coordinator_operator(
        hub.deadlines
            .concat(speaker.deadlines)
            .concat(allocator.deadlines),
        metrics,
    );

    // Each timeout goes back to its owner: the hub's as hub input, the speaker's to it, the
    // keeper's to the keeper.
    let mut by_owner = timeouts
        .partition::<CapacityContainerBuilder<Vec<Timeout<TimerKey>>>, _, _>(3, |t| {
            let owner = match t.key {
                TimerKey::Hub { .. } => 0,
                TimerKey::Command(_) => 1,
                TimerKey::Keeper(_) => 2,
            };
            (owner, t)
        })
        .into_iter();
    let (Some(hub_timeouts), Some(speaker_timeouts), Some(keeper_timeouts)) =
        (by_owner.next(), by_owner.next(), by_owner.next())
    else {
        unreachable!("partition into 3 gives 3 streams")
    };
    let hub_timeouts = hub_timeouts.flat_map(|t| match t.key {
        TimerKey::Hub { flow_id, timer } => Some(HubInput::Timer {
            flow_id,
            timer,
            generation: t.generation,
        }),
        _ => None,
    });
    let speaker_timeouts = speaker_timeouts.flat_map(|t| match t.key {
        TimerKey::Command(key) => Some(Timeout {
            key,
            generation: t.generation,
        }),
        _ => None,
    });
    let keeper_timeouts = keeper_timeouts.flat_map(|t| match t.key {
        TimerKey::Keeper(timer) => Some(KeeperInput::Timer {
            timer,
            generation: t.generation,
        }),
        _ => None,
    });
    speaker_timeouts.connect_loop(speaker_loop);

    // Each report goes back to whoever asked for the command.
    let mut by_requester = speaker
        .reports
        .partition::<CapacityContainerBuilder<Vec<SpeakerReport>>, _, _>(2, |r| {
            (u64::from(r.requester == Requester::Keeper), r)
        })
        .into_iter();
    let (Some(hub_reports), Some(keeper_reports)) = (by_requester.next(), by_requester.next())
    else {
        unreachable!("partition into 2 gives 2 streams")
    };
    keeper_reports
        .map(KeeperInput::Report)
        .concat(keeper_timeouts)
        .connect_loop(keeper_loop);
    allocator
        .results
        .concat(hub_reports.map(HubInput::Report))
        .concat(hub_timeouts)
        .concat(affected)
        .connect_loop(hub_loop);

    Outbound {
        sb_commands: speaker.commands,
        nb_responses: hub.responses.concat(allocator.responses),
        flow_events: hub.events.concat(allocator.events).concat(stamped(
            view.shared,
            |(flow_id, with, shared)| {
                (
                    flow_id.clone(),
                    FlowEvent::PathShared {
                        flow_id,
                        with,
                        shared,
                    },
                )
            },
        )),
        network_states: stamped(view.states, |state| (state.key(), state)),
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

/// What the network view derives as bus messages (`message` gives the key and payload),
/// stamped with their time.
fn stamped<'scope, D: 'static, P: Clone + 'static>(
    derived: StreamVec<'scope, Time, D>,
    message: impl Fn(D) -> (String, P) + 'static,
) -> StreamVec<'scope, Time, Envelope<P>> {
    derived.unary(Pipeline, "Stamp", |_capability, _info| {
        move |input, output| {
            input.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                let mut session = output.session(&capability);
                for item in data.flat_map(|batch| batch.drain(..)) {
                    let (key, payload) = message(item);
                    session.give(Envelope::new("network-view", key, now, payload));
                }
            });
        }
    })
}

/// Sends `data` on `output` at the input's time, if there is any.
pub(crate) fn ship<D: 'static>(
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
