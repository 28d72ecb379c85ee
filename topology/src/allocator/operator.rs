//! The allocator as a timely operator: every request is exchanged to worker 0, so bandwidth,
//! cookies, VLANs and meters are reserved in one place and never over-committed. It answers
//! the hub, and hands every change it makes to the network view.
//!
//! The switch keeper lives here too: it judges switches against the same reservations, and
//! its removal debt keeps what the owed rules use taken (see `keeper`).

use std::collections::BTreeMap;
use std::sync::Arc;

use hubspoke_fsm::operation::PairSignal;
use hubspoke_fsm::{
    Envelope, FlowEndpoints, FlowEvent, FlowId, FlowRecord, FlowRequest, NbRequest, NbResponse,
    Reallocation, SbEvent, SwitchId,
};
use hubspoke_speaker::{SpeakerReport, SpeakerRequest};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::{Scope, StreamVec};

use super::diversity::GroupId;
use super::endpoint_swap::EndpointSwaps;
use super::{AllocationResult, AllocatorRequest, ResourcePool};
use crate::coordinator::Deadline;
use crate::dataflow::{ship, Time};
use crate::hub::{HubInput, SwapJoined};
use crate::keeper::{Keeper, KeeperOutput, KeeperSettings, KeeperStats, KeeperTimer};
use crate::metrics::Metrics;
use crate::recovery::RecoveredDebt;
use crate::view::ViewChange;
use crate::wire::Json;

/// What the switch keeper hears besides the allocator's own requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum KeeperInput {
    /// A validation or a switch sync from the northbound.
    Request(Json<Envelope<NbRequest>>),
    /// The answer to one of its commands.
    Report(SpeakerReport),
    Timer {
        timer: KeeperTimer,
        generation: u64,
    },
}

pub struct AllocatorStreams<'scope> {
    /// Allocation results, and the keeper's repair requests.
    pub results: StreamVec<'scope, Time, HubInput>,
    pub view_changes: StreamVec<'scope, Time, ViewChange>,
    /// The keeper's commands.
    pub speaker: StreamVec<'scope, Time, SpeakerRequest>,
    /// The keeper's timers.
    pub deadlines: StreamVec<'scope, Time, Deadline>,
    pub responses: StreamVec<'scope, Time, Envelope<NbResponse>>,
    pub events: StreamVec<'scope, Time, Envelope<FlowEvent>>,
}

/// What the allocator knows before its first request.
#[derive(Default)]
pub struct Known {
    /// The network announced so far.
    pub network: Vec<SbEvent>,
    /// The records a restarted topology found, whose resources are taken back before
    /// anything else is allocated.
    pub reservations: Vec<FlowRecord>,
    /// The diversity group of each flow in one, as the flow log last gave it.
    pub groups: Vec<(FlowId, GroupId)>,
    /// The removal debt a restarted topology found: its reservations stay quarantined.
    pub debts: Vec<RecoveredDebt>,
    /// When the topology started: what the view learns from this enters at that time.
    pub at_ms: Time,
}

/// The repairs and upgrades of one moment, held until every one of them has arrived (the
/// input's frontier has passed their time), to be served most important first.
struct HeldMoves {
    results_at: Capability<Time>,
    changes_at: Capability<Time>,
    requests: Vec<AllocatorRequest>,
}

/// A reallocation the network asked for waits for the others of its moment; what a client
/// asked for is served at once.
fn waits_for_its_moment(request: &AllocatorRequest) -> bool {
    matches!(
        request,
        AllocatorRequest::Reallocate {
            kind: Reallocation::Repair | Reallocation::Upgrade,
            ..
        }
    )
}

/// Most important first (lower `priority`; none is the least important), then by flow id, so
/// the order does not depend on which worker a request came from.
fn by_priority(request: &AllocatorRequest) -> (u32, String) {
    match request {
        AllocatorRequest::Reallocate {
            flow_id, request, ..
        } => (request.priority.unwrap_or(u32::MAX), flow_id.clone()),
        _ => (u32::MAX, String::new()),
    }
}

/// Per-output buffers of the keeper, filled from its outputs in one pass.
#[derive(Default)]
struct KeeperBuffers {
    results: Vec<HubInput>,
    speaker: Vec<SpeakerRequest>,
    deadlines: Vec<Deadline>,
    responses: Vec<Envelope<NbResponse>>,
    events: Vec<Envelope<FlowEvent>>,
}

impl KeeperBuffers {
    fn sort(&mut self, outputs: &mut Vec<KeeperOutput>) {
        for output in outputs.drain(..) {
            match output {
                KeeperOutput::Speaker(x) => self.speaker.push(x),
                KeeperOutput::Deadline(x) => self.deadlines.push(x),
                KeeperOutput::Response(x) => self.responses.push(x),
                KeeperOutput::Event(x) => self.events.push(x),
                KeeperOutput::Repair { flow_id, switch_id } => {
                    self.results.push(HubInput::Repair { flow_id, switch_id })
                }
            }
        }
    }
}

pub fn allocator_operator<'scope>(
    scope: Scope<'scope, Time>,
    requests: StreamVec<'scope, Time, AllocatorRequest>,
    keeper_inputs: StreamVec<'scope, Time, KeeperInput>,
    known: Known,
    keeper_settings: KeeperSettings,
    metrics: Arc<Metrics>,
) -> AllocatorStreams<'scope> {
    let mut builder = OperatorBuilder::new("Allocator".to_owned(), scope);
    let mut requests = builder.new_input(requests, Exchange::new(|_: &AllocatorRequest| 0));
    let mut keeper_inputs = builder.new_input(keeper_inputs, Exchange::new(|_: &KeeperInput| 0));
    let (mut results_out, results) = builder.new_output();
    let (mut changes_out, view_changes) = builder.new_output();
    let (mut speaker_out, speaker) = builder.new_output();
    let (mut deadlines_out, deadlines) = builder.new_output();
    let (mut responses_out, responses) = builder.new_output();
    let (mut events_out, events) = builder.new_output();
    let first_worker = scope.index() == 0;
    builder.build(move |initial_capabilities| {
        let mut pool = ResourcePool::new();
        for event in &known.network {
            pool.apply_network_event(event);
        }
        for record in &known.reservations {
            pool.restore(record);
        }
        for (flow_id, group) in &known.groups {
            pool.restore_group(flow_id, group.clone());
        }
        for debt in &known.debts {
            debt.restore_into(&mut pool);
        }
        let mut keeper = Keeper::new(keeper_settings);
        let mut swaps = EndpointSwaps::default();
        // What was known at the start enters at the start time (the hubs' clocks count from
        // there): the view's first changes, the keeper's first timers and the debt's first
        // payments. Then the initial capabilities go.
        let mut started = Vec::new();
        if first_worker {
            keeper.start(known.at_ms, &pool, &mut started);
        }
        let mut start = Some((
            initial_capabilities
                .into_iter()
                .map(|mut capability| {
                    capability.downgrade(&known.at_ms);
                    capability
                })
                .collect::<Vec<_>>(),
            pool.take_view_changes(),
            started,
        ));
        let mut buffers = KeeperBuffers::default();
        let mut outputs = Vec::new();
        let mut reported = KeeperStats::default();
        let mut held_moves: BTreeMap<Time, HeldMoves> = BTreeMap::new();
        move |frontiers| {
            if let Some((capabilities, mut changes, mut started)) = start.take() {
                buffers.sort(&mut started);
                let at = |output: usize| &capabilities[output];
                if !changes.is_empty() {
                    changes_out.activate().give(at(1), &mut changes);
                }
                if !buffers.speaker.is_empty() {
                    speaker_out.activate().give(at(2), &mut buffers.speaker);
                }
                if !buffers.deadlines.is_empty() {
                    deadlines_out.activate().give(at(3), &mut buffers.deadlines);
                }
            }
            // Whatever an input caused leaves at that input's time.
            let mut ship_all = |capability: &InputCapability<Time>,
                                buffers: &mut KeeperBuffers,
                                changes: &mut Vec<ViewChange>| {
                ship(&mut results_out, capability, &mut buffers.results);
                ship(&mut changes_out, capability, changes);
                ship(&mut speaker_out, capability, &mut buffers.speaker);
                ship(&mut deadlines_out, capability, &mut buffers.deadlines);
                ship(&mut responses_out, capability, &mut buffers.responses);
                ship(&mut events_out, capability, &mut buffers.events);
            };
            requests.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for request in data.flat_map(|batch| batch.drain(..)) {
                    if waits_for_its_moment(&request) {
                        held_moves
                            .entry(now)
                            .or_insert_with(|| HeldMoves {
                                results_at: capability.delayed(&now, 0),
                                changes_at: capability.delayed(&now, 1),
                                requests: Vec::new(),
                            })
                            .requests
                            .push(request);
                        continue;
                    }
                    let mut allocator = Allocator {
                        pool: &mut pool,
                        keeper: &mut keeper,
                        swaps: &mut swaps,
                    };
                    allocator.handle(now, request, &mut buffers, &mut outputs);
                }
                buffers.sort(&mut outputs);
                ship_all(&capability, &mut buffers, &mut pool.take_view_changes());
            });
            keeper_inputs.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for input in data.flat_map(|batch| batch.drain(..)) {
                    match input {
                        KeeperInput::Request(Json(envelope)) => {
                            match pool.answer(&envelope.payload) {
                                Some(answer) => outputs.push(KeeperOutput::Response(
                                    envelope.reply(envelope.key.clone(), now, answer),
                                )),
                                None => keeper.request(now, &pool, envelope, &mut outputs),
                            }
                        }
                        KeeperInput::Report(report) => {
                            keeper.report(now, &mut pool, report, &mut outputs)
                        }
                        KeeperInput::Timer { timer, generation } => {
                            keeper.timer(now, &pool, timer, generation, &mut outputs)
                        }
                    }
                }
                buffers.sort(&mut outputs);
                ship_all(&capability, &mut buffers, &mut pool.take_view_changes());
            });
            while let Some(entry) = held_moves.first_entry() {
                if frontiers[0].less_equal(entry.key()) {
                    break;
                }
                let (now, mut moves) = entry.remove_entry();
                moves.requests.sort_by_cached_key(by_priority);
                let mut allocator = Allocator {
                    pool: &mut pool,
                    keeper: &mut keeper,
                    swaps: &mut swaps,
                };
                for request in moves.requests {
                    allocator.handle(now, request, &mut buffers, &mut outputs);
                }
                let mut changes = pool.take_view_changes();
                if !buffers.results.is_empty() {
                    results_out
                        .activate()
                        .give(&moves.results_at, &mut buffers.results);
                }
                if !changes.is_empty() {
                    changes_out.activate().give(&moves.changes_at, &mut changes);
                }
            }
            if first_worker {
                metrics
                    .rules_pending_removal
                    .set(i64::try_from(pool.owed().len()).unwrap_or(i64::MAX));
                let stats = keeper.stats();
                metrics.switch_sweeps.add(stats.sweeps - reported.sweeps);
                metrics
                    .excess_rules_removed
                    .add(stats.excess_removed - reported.excess_removed);
                metrics
                    .missing_rules_reinstalled
                    .add(stats.missing_reinstalled - reported.missing_reinstalled);
                metrics
                    .rules_removed_from_debt
                    .add(stats.debt_paid - reported.debt_paid);
                reported = stats;
            }
        }
    });
    AllocatorStreams {
        results,
        view_changes,
        speaker,
        deadlines,
        responses,
        events,
    }
}

/// What the allocator's own requests act on.
struct Allocator<'a> {
    pool: &'a mut ResourcePool,
    keeper: &'a mut Keeper,
    swaps: &'a mut EndpointSwaps,
}

impl Allocator<'_> {
    /// One of the allocator's own requests: allocations answer the hub; a debt handed over
    /// and a switch coming back set the keeper going; an endpoint swap answers both flows.
    fn handle(
        &mut self,
        now: Time,
        request: AllocatorRequest,
        buffers: &mut KeeperBuffers,
        outputs: &mut Vec<KeeperOutput>,
    ) {
        let pool = &mut *self.pool;
        match request {
            AllocatorRequest::Owe { flow_id, debt } => {
                let switches: Vec<SwitchId> = debt.rules.iter().map(|r| r.switch_id).collect();
                pool.owe(&flow_id, debt);
                for switch_id in switches {
                    self.keeper.owed(now, switch_id, outputs);
                }
            }
            AllocatorRequest::Network(Json(event)) => {
                if let Some(back) = pool.apply_network_event(&event) {
                    self.keeper.switch_back(pool, back, outputs);
                }
            }
            AllocatorRequest::SwapEndpoints {
                first,
                second,
                correlation_id,
            } => self.swap_endpoints(first, second, correlation_id, buffers),
            AllocatorRequest::PairVote {
                flow_id,
                pair,
                vote,
            } => {
                let Some(decision) = self.swaps.vote(&pair, &flow_id, vote) else {
                    return;
                };
                for (flow_id, cookie) in decision.flows {
                    if decision.signal == PairSignal::Commit {
                        let event = FlowEvent::EndpointSwapCommitted {
                            flow_id: flow_id.clone(),
                            cookie,
                        };
                        let key = flow_id.clone();
                        buffers
                            .events
                            .push(Envelope::new(pair.clone(), key, now, event));
                    }
                    buffers.results.push(HubInput::Pair {
                        flow_id,
                        pair: pair.clone(),
                        signal: decision.signal.clone(),
                    });
                }
            }
            request => {
                if let Some(result) = pool.handle(request) {
                    buffers.results.push(HubInput::Allocation(result));
                }
                for (flow_id, group) in pool.take_group_changes() {
                    buffers.events.push(Envelope::new(
                        "diversity-group",
                        flow_id.clone(),
                        now,
                        FlowEvent::DiverseGroup { flow_id, group },
                    ));
                }
            }
        }
    }

    /// Reserves both flows' new paths: the first flow is answered, the second one's hub is
    /// told to start its half.
    fn swap_endpoints(
        &mut self,
        first: FlowRequest,
        second: FlowEndpoints,
        correlation_id: String,
        buffers: &mut KeeperBuffers,
    ) {
        let flow_id = first.flow_id.clone();
        let result = self.pool.reserve_endpoint_swap(&first, &second);
        let (first_resources, second_resources) = match result {
            Ok(reserved) => reserved,
            Err(error) => {
                buffers.results.push(HubInput::Allocation(AllocationResult {
                    flow_id,
                    result: Err(error),
                }));
                return;
            }
        };
        self.swaps.begin(
            correlation_id.clone(),
            [
                (flow_id.clone(), first_resources.cookie),
                (second.flow_id.clone(), second_resources.cookie),
            ],
        );
        buffers.results.push(HubInput::Allocation(AllocationResult {
            flow_id: flow_id.clone(),
            result: Ok(first_resources),
        }));
        let partner = FlowEndpoints::of(&first);
        buffers
            .results
            .push(HubInput::SwapJoined(Box::new(SwapJoined {
                endpoints: second,
                partner,
                resources: second_resources,
                correlation_id,
            })));
    }
}
