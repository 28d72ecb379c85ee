//! The hub: one state machine per in-flight operation on a flow. It never blocks and never
//! does I/O; it turns requests, allocation results, speaker reports and timeouts into
//! outputs for the allocator, the speaker worker, the coordinator and the bus.
//!
//! - this module: the operation driver (admitting requests, starting machines, carrying out
//!   what they ask for, the watchdog);
//! - [`answers`]: the answers remembered by correlation id (a request sent again);
//! - [`reroutes`]: the reroutes the network asks for, throttled, and retried;
//! - [`operator`]: the timely operator around the hub.

mod answers;
pub mod operator;
mod reroutes;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use hubspoke_fsm::create::FlowCreate;
use hubspoke_fsm::delete::FlowDelete;
use hubspoke_fsm::operation::{Action, OpContext, OpEvent, PairSignal, PairVote, Timeouts};
use hubspoke_fsm::repair::FlowRepair;
use hubspoke_fsm::reroute::{EndpointSwap, FlowReroute, RerouteKind};
use hubspoke_fsm::swap::FlowSwap;
use hubspoke_fsm::sync::FlowSync;
use hubspoke_fsm::{
    Envelope, ErrorBody, FlowEndpoints, FlowEvent, FlowRecord, FlowStatus, HistoryEntry, NbRequest,
    NbResponse, Resources, SwitchId,
};
use hubspoke_speaker::deadline::DeadlineRequest;
use hubspoke_speaker::{ReportOutcome, Requester, SpeakerReport, SpeakerRequest};
use serde::{Deserialize, Serialize};
use statig::blocking::{IntoStateMachineExt, StateMachine};
use tracing::{debug, info_span};

use crate::allocator::{AllocationResult, AllocatorRequest};
use crate::coordinator::{Deadline, HubTimer, TimerKey};
use crate::metrics::Metrics;
use crate::recovery::RecoveredFlow;
use answers::Answers;
use reroutes::RerouteState;
pub use reroutes::RerouteThrottle;

/// What comes back to the hub through the dataflow's feedback edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HubInput {
    Allocation(AllocationResult),
    Report(SpeakerReport),
    /// One of the flow's timers fired.
    Timer {
        flow_id: String,
        timer: HubTimer,
        generation: u64,
    },
    /// From the network view: one of the flow's installed paths (its primary, or its
    /// protected path) uses a down link (or no longer does).
    PathAffected {
        flow_id: String,
        protected: bool,
        affected: bool,
    },
    /// From the switch keeper: the flow's rules on the switch are missing or differ.
    Repair {
        flow_id: String,
        switch_id: SwitchId,
    },
    /// From the allocator: both reservations of an endpoint swap another flow asked for are
    /// made, and this flow's half starts on its own.
    SwapJoined(Box<SwapJoined>),
    /// From the allocator: its word on the endpoint swap `pair` (the swap request's
    /// correlation id) the flow is half of.
    Pair {
        flow_id: String,
        pair: String,
        signal: PairSignal,
    },
}

/// The second flow's half of an endpoint swap, reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapJoined {
    /// This flow's new endpoints.
    pub endpoints: FlowEndpoints,
    /// The first flow's new endpoints.
    pub partner: FlowEndpoints,
    /// The reservation for this flow's new endpoints.
    pub resources: Resources,
    /// The swap request's.
    pub correlation_id: String,
}

impl HubInput {
    pub fn flow_id(&self) -> &str {
        match self {
            HubInput::Allocation(result) => &result.flow_id,
            HubInput::Report(report) => &report.flow_id,
            HubInput::Timer { flow_id, .. }
            | HubInput::PathAffected { flow_id, .. }
            | HubInput::Repair { flow_id, .. }
            | HubInput::Pair { flow_id, .. } => flow_id,
            HubInput::SwapJoined(joined) => &joined.endpoints.flow_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubOutput {
    Speaker(SpeakerRequest),
    Allocator(AllocatorRequest),
    Deadline(Deadline),
    Response(Envelope<NbResponse>),
    Event(Envelope<FlowEvent>),
}

enum Machine {
    Create(StateMachine<FlowCreate>),
    Delete(StateMachine<FlowDelete>),
    // Boxed: make-before-break keeps two sets of segments, which makes it the big one.
    Reroute(Box<StateMachine<FlowReroute>>),
    Sync(Box<StateMachine<FlowSync>>),
    Repair(StateMachine<FlowRepair>),
    Swap(Box<StateMachine<FlowSwap>>),
}

impl Machine {
    fn handle(&mut self, event: &OpEvent, context: &mut OpContext) {
        match self {
            Machine::Create(m) => m.handle_with_context(event, context),
            Machine::Delete(m) => m.handle_with_context(event, context),
            Machine::Reroute(m) => m.handle_with_context(event, context),
            Machine::Sync(m) => m.handle_with_context(event, context),
            Machine::Repair(m) => m.handle_with_context(event, context),
            Machine::Swap(m) => m.handle_with_context(event, context),
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            Machine::Create(m) => m.state().is_finished(),
            Machine::Delete(m) => m.state().is_finished(),
            Machine::Reroute(m) => m.state().is_finished(),
            Machine::Sync(m) => m.state().is_finished(),
            Machine::Repair(m) => m.state().is_finished(),
            Machine::Swap(m) => m.state().is_finished(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Machine::Create(_) => "create",
            Machine::Delete(_) => "delete",
            Machine::Reroute(m) => m.inner().operation_name(),
            Machine::Sync(_) => "sync",
            Machine::Repair(_) => "repair",
            Machine::Swap(_) => "swap",
        }
    }

    fn is_endpoint_swap(&self) -> bool {
        matches!(self, Machine::Reroute(m) if m.inner().is_endpoint_swap())
    }

    /// For a finished swap, whether the flow is on its other path now.
    fn swapped(&self) -> Option<bool> {
        match self {
            Machine::Swap(m) => Some(*m.state() == hubspoke_fsm::swap::State::Swapped {}),
            _ => None,
        }
    }
}

struct Operation {
    machine: Machine,
    correlation_id: String,
    /// The generation of the operation's registered deadline (0: none yet).
    deadline_generation: u64,
    /// Whether somebody waits for an answer (a network-triggered reroute has nobody).
    answered: bool,
    /// The generation of the operation's watchdog.
    watchdog_generation: u64,
}

#[derive(Default)]
struct FlowSlot {
    record: Option<FlowRecord>,
    operation: Option<Operation>,
    reroute: RerouteState,
    /// Switches the keeper found the flow's rules missing on while a repair of another one
    /// ran: repaired next, one after the other.
    repairs_waiting: BTreeSet<SwitchId>,
}

impl FlowSlot {
    fn is_down(&self) -> bool {
        self.has_status(FlowStatus::Down)
    }

    fn is_up(&self) -> bool {
        self.has_status(FlowStatus::Up)
    }

    /// DOWN, or DEGRADED: the network owes it something, so it is tried again.
    fn wants_better(&self) -> bool {
        self.is_down() || self.has_status(FlowStatus::Degraded)
    }

    /// Asks for a protected path and has none, or one that is broken.
    fn wants_protection(&self) -> bool {
        self.record.as_ref().is_some_and(|r| {
            r.request.allocate_protected_path
                && (self.reroute.protected_is_down()
                    || r.resources.as_ref().is_some_and(|r| r.protected.is_none()))
        })
    }

    fn has_status(&self, status: FlowStatus) -> bool {
        self.record.as_ref().is_some_and(|r| r.status == status)
    }
}

/// An operation arms at most an operation deadline, a rollback deadline and (a sync after an
/// interrupted move) a second operation deadline; the watchdog waits for all of them and more.
fn watchdog_after(timeouts: &Timeouts) -> u64 {
    3 * timeouts.operation_ms + 2 * timeouts.rollback_ms
}

pub struct Hub {
    timeouts: Timeouts,
    throttle: RerouteThrottle,
    flows: HashMap<String, FlowSlot>,
    /// The DEGRADED flows, tried again when a deleted flow frees its bandwidth.
    degraded: BTreeSet<String>,
    /// Every deadline the hub registers gets the next one, so a stale one is recognised.
    next_generation: u64,
    answers: Answers,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(timeouts: Timeouts, throttle: RerouteThrottle, metrics: Arc<Metrics>) -> Self {
        Hub {
            timeouts,
            throttle,
            flows: HashMap::new(),
            degraded: BTreeSet::new(),
            next_generation: 0,
            answers: Answers::default(),
            metrics,
        }
    }

    /// Takes over what a stopped topology left, as its flow log tells: every flow's record
    /// and the answers it gave. An operation that was in flight is not continued where it
    /// stopped (its step and pending commands were in memory): a delete is run again, anything
    /// else is synced (the recorded rules installed again, an interrupted move's rules
    /// removed), with its deadline armed anew.
    pub fn restore(
        &mut self,
        now_ms: u64,
        flows: impl IntoIterator<Item = RecoveredFlow>,
        answers: impl IntoIterator<Item = Envelope<NbResponse>>,
        out: &mut Vec<HubOutput>,
    ) {
        for answer in answers {
            self.answers.remember(answer);
        }
        for RecoveredFlow {
            record,
            interrupted,
        } in flows
        {
            let flow_id = record.flow_id().to_string();
            if record.status == FlowStatus::Degraded {
                self.degraded.insert(flow_id.clone());
            }
            let slot = self.flows.entry(flow_id.clone()).or_default();
            slot.record = Some(record.clone());
            let Some(operation) = interrupted else {
                continue;
            };
            self.metrics.operations_recovered.inc();
            let prefix = format!("{flow_id}:{now_ms}");
            let machine = if operation == "delete" {
                Machine::Delete(FlowDelete::new(record, self.timeouts, prefix).state_machine())
            } else {
                self.sync_machine(record, prefix)
            };
            let correlation_id = format!("recovery:{flow_id}:{now_ms}");
            let _span =
                info_span!("hub", flow_id = %flow_id, correlation_id = %correlation_id).entered();
            debug!(%operation, "resuming an interrupted operation");
            self.start(now_ms, &flow_id, machine, correlation_id, false, out);
        }
    }

    /// Answers a request and makes the answer durable, so that the same request sent again
    /// (same correlation id) gets it again, also after a restart.
    fn answer(&mut self, response: Envelope<NbResponse>, out: &mut Vec<HubOutput>) {
        out.push(HubOutput::Event(Envelope::new(
            response.correlation_id.clone(),
            response.key.clone(),
            response.created_at_ms,
            FlowEvent::Answered {
                response: response.payload.clone(),
            },
        )));
        out.push(HubOutput::Response(response.clone()));
        self.answers.remember(response);
    }

    /// A request seen before: its answer again, or nothing while it is still being worked on.
    fn duplicate(
        &self,
        flow_id: &str,
        envelope: &Envelope<NbRequest>,
    ) -> Option<Option<Envelope<NbResponse>>> {
        if let Some(answer) = self.answers.get(&envelope.correlation_id) {
            return Some(Some(answer.clone()));
        }
        let running = self
            .operation(flow_id)
            .is_some_and(|op| op.correlation_id == envelope.correlation_id);
        running.then_some(None)
    }

    pub fn request(
        &mut self,
        now_ms: u64,
        envelope: Envelope<NbRequest>,
        out: &mut Vec<HubOutput>,
    ) {
        let flow_id = match envelope.payload.flow_id() {
            Some(flow_id) if !envelope.payload.is_for_keeper() => flow_id.to_string(),
            _ => {
                let error = ErrorBody::new(
                    400,
                    "bad-request",
                    "Not a flow operation",
                    "the hub runs operations on flows; validations are the switch keeper's",
                );
                let key = envelope.key.clone();
                self.answer(
                    envelope.reply(key, now_ms, NbResponse::Error { error }),
                    out,
                );
                return;
            }
        };
        let _span =
            info_span!("hub", flow_id = %flow_id, correlation_id = %envelope.correlation_id)
                .entered();
        if let Some(answer) = self.duplicate(&flow_id, &envelope) {
            self.metrics.requests_deduplicated.inc();
            debug!("the same request again: answered as before");
            out.extend(answer.map(HubOutput::Response));
            return;
        }
        let envelope = self.patched(&flow_id, envelope);
        if let Err(error) = self.admit(now_ms, &flow_id, &envelope) {
            self.metrics.requests_rejected.inc();
            debug!(status = error.status, reason = %error.error_description, "request rejected");
            self.answer(
                envelope.reply(&flow_id, now_ms, NbResponse::Error { error }),
                out,
            );
            return;
        }
        // Command ids are `{flow}:{start ms}:{n}`: the same whatever the worker count, and
        // unique across the flow's operations (one at a time, each lasting at least 1 ms), so a
        // late answer to an earlier operation can never match a later one.
        let prefix = format!("{flow_id}:{now_ms}");
        let slot = self.flows.entry(flow_id.clone()).or_default();
        let machine = match envelope.payload {
            NbRequest::CreateFlow { flow } => {
                let record = FlowRecord::new(flow, now_ms);
                Machine::Create(FlowCreate::new(record, self.timeouts, prefix).state_machine())
            }
            on_existing => {
                let Some(record) = slot.record.clone() else {
                    return;
                };
                let Some(machine) = self.machine_for(on_existing, record, prefix) else {
                    return;
                };
                machine
            }
        };
        self.start(
            now_ms,
            &flow_id,
            machine,
            envelope.correlation_id,
            true,
            out,
        );
    }

    /// A patch becomes the update it means: the record's request with the patch's fields in
    /// place. A patch of a flow the hub does not hold is left for `admit` to refuse.
    fn patched(&self, flow_id: &str, mut envelope: Envelope<NbRequest>) -> Envelope<NbRequest> {
        if let NbRequest::PatchFlow { patch, .. } = &envelope.payload {
            if let Some(record) = self.flows.get(flow_id).and_then(|s| s.record.as_ref()) {
                let flow = patch.applied_to(&record.request);
                envelope.payload = NbRequest::UpdateFlow { flow };
            }
        }
        envelope
    }

    /// The machine for an operation on an existing flow (none for the keeper's requests).
    fn machine_for(
        &self,
        request: NbRequest,
        record: FlowRecord,
        prefix: String,
    ) -> Option<Machine> {
        Some(match request {
            NbRequest::UpdateFlow { flow } => {
                self.reroute_machine(record, RerouteKind::Update(flow), prefix)
            }
            NbRequest::PatchFlow { .. } => return None,
            NbRequest::RerouteFlow { .. } => {
                self.reroute_machine(record, RerouteKind::Manual, prefix)
            }
            NbRequest::SyncFlow { .. } => self.sync_machine(record, prefix),
            NbRequest::SwapFlow { .. } => self.swap_machine(record, prefix),
            NbRequest::SwapEndpoints {
                first_flow,
                second_flow,
            } => {
                let swap = EndpointSwap {
                    request: first_flow.applied_to(&record.request),
                    partner: second_flow,
                    first: true,
                };
                self.reroute_machine(record, RerouteKind::SwapEndpoints(swap), prefix)
            }
            NbRequest::DeleteFlow { .. } | NbRequest::CreateFlow { .. } => {
                Machine::Delete(FlowDelete::new(record, self.timeouts, prefix).state_machine())
            }
            NbRequest::ValidateFlow { .. }
            | NbRequest::PingFlow { .. }
            | NbRequest::ValidateSwitch { .. }
            | NbRequest::SyncSwitch { .. }
            | NbRequest::Ping
            | NbRequest::PatchLink { .. }
            | NbRequest::FindPaths { .. } => return None,
        })
    }

    fn sync_machine(&self, record: FlowRecord, prefix: String) -> Machine {
        Machine::Sync(Box::new(
            FlowSync::new(record, self.timeouts, prefix).state_machine(),
        ))
    }

    fn swap_machine(&self, record: FlowRecord, prefix: String) -> Machine {
        Machine::Swap(Box::new(
            FlowSwap::new(record, self.timeouts, prefix).state_machine(),
        ))
    }

    fn reroute_machine(&self, record: FlowRecord, kind: RerouteKind, prefix: String) -> Machine {
        Machine::Reroute(Box::new(
            FlowReroute::new(record, kind, self.timeouts, prefix).state_machine(),
        ))
    }

    fn start(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        machine: Machine,
        correlation_id: String,
        answered: bool,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        self.metrics.operations_started.inc();
        self.next_generation += 1;
        slot.operation = Some(Operation {
            machine,
            correlation_id,
            deadline_generation: 0,
            answered,
            watchdog_generation: self.next_generation,
        });
        out.push(HubOutput::Deadline(DeadlineRequest::Register {
            key: hub_timer(flow_id, HubTimer::Watchdog),
            generation: self.next_generation,
            at_ms: now_ms + watchdog_after(&self.timeouts),
        }));
        self.drive(now_ms, flow_id, &OpEvent::Start, out);
    }

    /// The remediation of an operation that outlived every deadline (which should never
    /// happen: if it does, a bug is made visible in `operations_remediated` and the log). It
    /// is dropped, whatever it still waits for is abandoned, and the flow is synced to its
    /// record; a flow without a record yet lets go of anything reserved for it.
    fn overdue(&mut self, now_ms: u64, flow_id: &str, generation: u64, out: &mut Vec<HubOutput>) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        if slot.operation.as_ref().map(|op| op.watchdog_generation) != Some(generation) {
            return;
        }
        let Some(stuck) = slot.operation.take() else {
            return;
        };
        self.metrics.operations_remediated.inc();
        tracing::error!(
            flow_id,
            operation = stuck.machine.name(),
            correlation_id = %stuck.correlation_id,
            "an operation outlived all its deadlines: remediated"
        );
        out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
            key: hub_timer(flow_id, HubTimer::Operation),
            generation: stuck.deadline_generation,
        }));
        out.push(HubOutput::Speaker(SpeakerRequest::Abandon {
            flow_id: flow_id.to_string(),
        }));
        match slot.record.clone() {
            Some(record) => {
                let machine = self.sync_machine(record, format!("{flow_id}:{now_ms}"));
                let correlation_id = format!("remediation:{flow_id}:{now_ms}");
                self.start(now_ms, flow_id, machine, correlation_id, false, out);
            }
            None => {
                self.flows.remove(flow_id);
                out.push(HubOutput::Allocator(AllocatorRequest::Free {
                    flow_id: flow_id.to_string(),
                }));
            }
        }
    }

    /// The keeper found the flow's rules missing or different on a switch: an idle flow with
    /// a path gets them installed again. A flow busy repairing another switch repairs this one
    /// next (switches that connect together lose their tables together); one busy otherwise
    /// is left to its operation (which sets its rules anyway), and the next sweep looks
    /// again. A DOWN flow whose path is not broken (a rollback could not put its old ingress
    /// back) is synced instead: all its rules, and UP.
    fn repair(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        switch_id: SwitchId,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        if let Some(operation) = &slot.operation {
            if matches!(operation.machine, Machine::Repair(_)) {
                slot.repairs_waiting.insert(switch_id);
            }
            return;
        }
        let Some(record) = slot.record.clone().filter(|r| r.resources.is_some()) else {
            return;
        };
        let prefix = format!("{flow_id}:{now_ms}");
        let machine = if slot.is_down() && !slot.reroute.path_is_down() {
            self.sync_machine(record, prefix)
        } else {
            Machine::Repair(
                FlowRepair::new(&record, switch_id, self.timeouts, prefix).state_machine(),
            )
        };
        let correlation_id = format!("repair:{flow_id}:{now_ms}");
        self.start(now_ms, flow_id, machine, correlation_id, false, out);
    }

    /// The allocator reserved both paths of an endpoint swap the other flow asked for: this
    /// flow's half starts on its reservation. A flow that is busy or gone lets go of it, and
    /// the swap is off.
    fn join_swap(&mut self, now_ms: u64, joined: SwapJoined, out: &mut Vec<HubOutput>) {
        let SwapJoined {
            endpoints,
            partner,
            resources,
            correlation_id,
        } = joined;
        let flow_id = endpoints.flow_id.clone();
        let _span =
            info_span!("hub", flow_id = %flow_id, correlation_id = %correlation_id).entered();
        let record = match self.flows.get(&flow_id) {
            Some(slot) if slot.operation.is_some() => Err(ErrorBody::new(
                409,
                "operation-in-progress",
                "Flow is busy",
                format!("flow {flow_id} has an operation in progress; retry when it finishes"),
            )),
            Some(FlowSlot {
                record: Some(record),
                ..
            }) => Ok(record.clone()),
            _ => Err(ErrorBody::new(
                404,
                "not-found",
                "Flow not found",
                format!("flow {flow_id} does not exist"),
            )),
        };
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                debug!(reason = %error.error_description, "the second flow of an endpoint swap refused");
                out.push(HubOutput::Allocator(AllocatorRequest::Release {
                    flow_id: flow_id.clone(),
                }));
                out.push(HubOutput::Allocator(AllocatorRequest::PairVote {
                    flow_id,
                    pair: correlation_id,
                    vote: PairVote::Failed(error),
                }));
                return;
            }
        };
        let swap = EndpointSwap {
            request: endpoints.applied_to(&record.request),
            partner,
            first: false,
        };
        let prefix = format!("{flow_id}:{now_ms}");
        let machine = self.reroute_machine(record, RerouteKind::SwapEndpoints(swap), prefix);
        self.start(now_ms, &flow_id, machine, correlation_id, false, out);
        self.drive(now_ms, &flow_id, &OpEvent::Allocated(resources), out);
    }

    /// Checks a request against the flows this hub knows; the allocator checks the network.
    fn admit(
        &self,
        now_ms: u64,
        flow_id: &str,
        envelope: &Envelope<NbRequest>,
    ) -> Result<(), ErrorBody> {
        if envelope
            .deadline_ms
            .is_some_and(|deadline| deadline < now_ms)
        {
            return Err(ErrorBody::new(
                408,
                "request-expired",
                "Request expired",
                "the request reached the hub after its deadline",
            ));
        }
        let slot = self.flows.get(flow_id);
        if slot.is_some_and(|s| s.operation.is_some()) {
            return Err(ErrorBody::new(
                409,
                "operation-in-progress",
                "Flow is busy",
                format!("flow {flow_id} has an operation in progress; retry when it finishes"),
            ));
        }
        let exists = slot.is_some_and(|s| s.record.is_some());
        let record = slot.and_then(|s| s.record.as_ref());
        let pinned = record.is_some_and(|r| r.request.pinned);
        let protection = record.map(|r| {
            let path = r.resources.as_ref().and_then(|r| r.protected.as_ref());
            (r.request.allocate_protected_path, path.is_some())
        });
        match &envelope.payload {
            NbRequest::CreateFlow { flow } => {
                flow.validate().map_err(|reason| {
                    ErrorBody::new(400, "data-invalid", "Invalid flow request", reason)
                })?;
                if exists {
                    return Err(ErrorBody::new(
                        409,
                        "already-exists",
                        "Flow already exists",
                        format!("flow {flow_id} already exists"),
                    ));
                }
            }
            _ if !exists => {
                return Err(ErrorBody::new(
                    404,
                    "not-found",
                    "Flow not found",
                    format!("flow {flow_id} does not exist"),
                ));
            }
            NbRequest::UpdateFlow { flow } => {
                flow.validate().map_err(|reason| {
                    ErrorBody::new(400, "data-invalid", "Invalid flow request", reason)
                })?;
            }
            NbRequest::RerouteFlow { .. } if pinned => {
                return Err(ErrorBody::new(
                    409,
                    "flow-pinned",
                    "Flow is pinned",
                    format!("flow {flow_id} is pinned to its path: it is never moved (unpin it first: PATCH {{\"pinned\": false}})"),
                ));
            }
            NbRequest::SwapFlow { .. } if protection.is_some_and(|(asked, _)| !asked) => {
                return Err(ErrorBody::new(
                    400,
                    "no-protection",
                    "The flow is not protected",
                    format!("flow {flow_id} has no allocate_protected_path: nothing to swap to"),
                ));
            }
            NbRequest::SwapFlow { .. } if protection.is_some_and(|(_, has)| !has) => {
                return Err(ErrorBody::new(
                    409,
                    "no-protected-path",
                    "The flow has no protected path",
                    format!("flow {flow_id} has no protected path now (the network has none)"),
                ));
            }
            NbRequest::SwapFlow { .. } if slot.is_some_and(|s| s.reroute.protected_is_down()) => {
                return Err(ErrorBody::new(
                    409,
                    "protected-path-down",
                    "The protected path is down",
                    format!("flow {flow_id}'s protected path uses a link that is down"),
                ));
            }
            NbRequest::SwapEndpoints {
                first_flow,
                second_flow,
            } => {
                if first_flow.flow_id == second_flow.flow_id {
                    return Err(ErrorBody::new(
                        400,
                        "data-invalid",
                        "Invalid swap request",
                        "the two flows of an endpoint swap must differ",
                    ));
                }
                if let Some(record) = record {
                    first_flow
                        .applied_to(&record.request)
                        .validate()
                        .map_err(|reason| {
                            ErrorBody::new(400, "data-invalid", "Invalid swap request", reason)
                        })?;
                }
            }
            NbRequest::DeleteFlow { .. }
            | NbRequest::PatchFlow { .. }
            | NbRequest::SwapFlow { .. }
            | NbRequest::RerouteFlow { .. }
            | NbRequest::SyncFlow { .. }
            | NbRequest::ValidateFlow { .. }
            | NbRequest::PingFlow { .. }
            | NbRequest::ValidateSwitch { .. }
            | NbRequest::SyncSwitch { .. }
            | NbRequest::Ping
            | NbRequest::PatchLink { .. }
            | NbRequest::FindPaths { .. } => {}
        }
        Ok(())
    }

    pub fn input(&mut self, now_ms: u64, input: HubInput, out: &mut Vec<HubOutput>) {
        let flow_id = input.flow_id().to_string();
        let event = match input {
            HubInput::Allocation(AllocationResult {
                result: Ok(resources),
                ..
            }) => OpEvent::Allocated(resources),
            HubInput::Allocation(AllocationResult {
                result: Err(error), ..
            }) => OpEvent::AllocationFailed(error),
            HubInput::Report(SpeakerReport {
                command_id,
                outcome: ReportOutcome::Succeeded,
                ..
            }) => OpEvent::CommandSucceeded { command_id },
            HubInput::Report(SpeakerReport {
                command_id,
                outcome: ReportOutcome::Failed { reason },
                ..
            }) => OpEvent::CommandFailed { command_id, reason },
            HubInput::Report(SpeakerReport {
                command_id,
                outcome: ReportOutcome::Listed { rules, .. },
                ..
            }) => OpEvent::RulesListed { command_id, rules },
            // A hub sends no pings: a switch that answers one of its commands with a ping's
            // result answered wrong.
            HubInput::Report(SpeakerReport {
                command_id,
                outcome: outcome @ (ReportOutcome::Pinged { .. } | ReportOutcome::PingLost { .. }),
                ..
            }) => OpEvent::CommandFailed {
                command_id,
                reason: format!("the switch answered with a ping's result: {outcome:?}"),
            },
            HubInput::PathAffected {
                protected,
                affected,
                ..
            } => {
                self.path_affected(now_ms, &flow_id, protected, affected, out);
                return;
            }
            HubInput::Repair { switch_id, .. } => {
                self.repair(now_ms, &flow_id, switch_id, out);
                return;
            }
            HubInput::SwapJoined(joined) => {
                self.join_swap(now_ms, *joined, out);
                return;
            }
            HubInput::Pair { pair, signal, .. } => {
                let for_this_swap = self
                    .operation(&flow_id)
                    .is_some_and(|op| op.correlation_id == pair && op.machine.is_endpoint_swap());
                if !for_this_swap {
                    debug!(%pair, "a word on an endpoint swap no longer running: dropped");
                    return;
                }
                OpEvent::Pair(signal)
            }
            HubInput::Timer {
                timer: HubTimer::Reroute,
                generation,
                ..
            } => {
                self.reroute_due(now_ms, &flow_id, generation, out);
                return;
            }
            HubInput::Timer {
                timer: HubTimer::Watchdog,
                generation,
                ..
            } => {
                self.overdue(now_ms, &flow_id, generation, out);
                return;
            }
            HubInput::Timer {
                timer: HubTimer::Operation,
                generation,
                ..
            } => {
                let current = self.operation(&flow_id).map(|op| op.deadline_generation);
                if current != Some(generation) {
                    return;
                }
                self.metrics.operation_timeouts.inc();
                OpEvent::Timeout
            }
        };
        let correlation_id = self
            .operation(&flow_id)
            .map(|op| op.correlation_id.clone())
            .unwrap_or_default();
        let _span =
            info_span!("hub", flow_id = %flow_id, correlation_id = %correlation_id).entered();
        if self.operation(&flow_id).is_none() {
            debug!(
                event = event.name(),
                "no operation in progress: event dropped"
            );
            return;
        }
        self.drive(now_ms, &flow_id, &event, out);
    }

    fn operation(&self, flow_id: &str) -> Option<&Operation> {
        self.flows
            .get(flow_id)
            .and_then(|slot| slot.operation.as_ref())
    }

    /// Runs one event through the flow's machine, carries out what it asks for, and, when
    /// the machine has finished, closes the operation.
    fn drive(&mut self, now_ms: u64, flow_id: &str, event: &OpEvent, out: &mut Vec<HubOutput>) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        let Some(operation) = slot.operation.as_mut() else {
            return;
        };
        let mut context = OpContext::new(now_ms);
        context.handling(event);
        operation.machine.handle(event, &mut context);
        let mut carrying = Carrying {
            now_ms,
            flow_id,
            slot,
            next_generation: &mut self.next_generation,
            out,
            responses: Vec::new(),
        };
        for action in context.actions {
            carrying.carry_out(action);
        }
        let responses = std::mem::take(&mut carrying.responses);
        if slot
            .operation
            .as_ref()
            .is_some_and(|op| op.machine.is_finished())
        {
            self.finish(now_ms, flow_id, out);
        }
        for response in responses {
            self.answer(response, out);
        }
    }

    /// The operation's machine has finished: its timers go, and a flow that no longer exists
    /// goes with them.
    fn finish(&mut self, now_ms: u64, flow_id: &str, out: &mut Vec<HubOutput>) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        let Some(operation) = slot.operation.take() else {
            return;
        };
        out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
            key: hub_timer(flow_id, HubTimer::Operation),
            generation: operation.deadline_generation,
        }));
        out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
            key: hub_timer(flow_id, HubTimer::Watchdog),
            generation: operation.watchdog_generation,
        }));
        self.metrics.operations_finished.inc();
        if slot.has_status(FlowStatus::Degraded) {
            self.degraded.insert(flow_id.to_string());
        } else {
            self.degraded.remove(flow_id);
        }
        let swapped = operation.machine.swapped();
        if swapped == Some(true) {
            slot.reroute.paths_swapped();
        }
        if slot.record.is_none() {
            if let Some(gone) = self.flows.remove(flow_id) {
                gone.reroute.cancel(flow_id, out);
            }
            self.bandwidth_freed(now_ms, out);
        } else {
            let next_repair = slot.repairs_waiting.pop_first();
            self.after_operation(now_ms, flow_id, swapped.is_some(), out);
            if let Some(switch_id) = next_repair {
                self.repair(now_ms, flow_id, switch_id, out);
            }
        }
    }
}

/// What one event of an operation asked for, carried out: outputs for the allocator, the
/// speaker, the coordinator and the bus, and the flow's record kept current.
struct Carrying<'a> {
    now_ms: u64,
    flow_id: &'a str,
    slot: &'a mut FlowSlot,
    next_generation: &'a mut u64,
    out: &'a mut Vec<HubOutput>,
    /// Answers go out after the operation's own outputs (and once it is closed).
    responses: Vec<Envelope<NbResponse>>,
}

impl Carrying<'_> {
    fn carry_out(&mut self, action: Action) {
        let Some(operation) = self.slot.operation.as_mut() else {
            return;
        };
        let (now_ms, flow_id) = (self.now_ms, self.flow_id.to_string());
        let correlation_id = operation.correlation_id.clone();
        let output = match action {
            Action::Allocate(request) => {
                HubOutput::Allocator(AllocatorRequest::Allocate { flow_id, request })
            }
            Action::Reallocate { request, kind } => {
                HubOutput::Allocator(AllocatorRequest::Reallocate {
                    flow_id,
                    request,
                    kind,
                })
            }
            Action::Reprotect(request) => {
                HubOutput::Allocator(AllocatorRequest::Reprotect { flow_id, request })
            }
            Action::SwapPaths => HubOutput::Allocator(AllocatorRequest::Swap { flow_id }),
            Action::ReserveEndpointSwap { request, partner } => {
                HubOutput::Allocator(AllocatorRequest::SwapEndpoints {
                    first: request,
                    second: partner,
                    correlation_id,
                })
            }
            Action::PairVote(vote) => HubOutput::Allocator(AllocatorRequest::PairVote {
                flow_id,
                pair: correlation_id,
                vote,
            }),
            Action::Commit => HubOutput::Allocator(AllocatorRequest::Commit { flow_id }),
            Action::Release => HubOutput::Allocator(AllocatorRequest::Release { flow_id }),
            Action::Free => HubOutput::Allocator(AllocatorRequest::Free { flow_id }),
            Action::Send {
                command_id,
                action,
                segment,
            } => HubOutput::Speaker(SpeakerRequest::Run {
                requester: Requester::Hub,
                flow_id,
                correlation_id,
                command_id,
                action,
                segment,
            }),
            Action::Abandon => HubOutput::Speaker(SpeakerRequest::Abandon { flow_id }),
            Action::Owe(debt) => {
                // Durable first, in the flow's own order on the log, then to the allocator.
                let event = FlowEvent::RemovalOwed {
                    flow_id: flow_id.clone(),
                    debt: debt.clone(),
                };
                self.out.push(HubOutput::Event(Envelope::new(
                    correlation_id,
                    flow_id.clone(),
                    now_ms,
                    event,
                )));
                HubOutput::Allocator(AllocatorRequest::Owe { flow_id, debt })
            }
            Action::Respond(response) => {
                if operation.answered {
                    let answer = Envelope::new(correlation_id, flow_id, now_ms, response);
                    self.responses.push(answer);
                }
                return;
            }
            Action::Save(record) => {
                self.slot.record = Some(record.clone());
                let event = FlowEvent::Updated { flow: record };
                HubOutput::Event(Envelope::new(correlation_id, flow_id, now_ms, event))
            }
            Action::Remove { version } => {
                self.slot.record = None;
                let event = FlowEvent::Removed {
                    flow_id: flow_id.clone(),
                    version,
                };
                HubOutput::Event(Envelope::new(correlation_id, flow_id, now_ms, event))
            }
            Action::ArmDeadline { after_ms } => {
                *self.next_generation += 1;
                operation.deadline_generation = *self.next_generation;
                HubOutput::Deadline(DeadlineRequest::Register {
                    key: hub_timer(&flow_id, HubTimer::Operation),
                    generation: *self.next_generation,
                    at_ms: now_ms + after_ms,
                })
            }
            Action::History {
                event,
                from_state,
                to_state,
                details,
            } => {
                debug!(%event, %from_state, %to_state, %details, "transition");
                let entry = HistoryEntry {
                    timestamp_ms: now_ms,
                    operation: operation.machine.name().to_string(),
                    event,
                    from_state,
                    to_state,
                    details,
                    correlation_id: correlation_id.clone(),
                };
                let event = FlowEvent::History {
                    flow_id: flow_id.clone(),
                    entry,
                };
                HubOutput::Event(Envelope::new(correlation_id, flow_id, now_ms, event))
            }
        };
        self.out.push(output);
    }
}

fn hub_timer(flow_id: &str, timer: HubTimer) -> TimerKey {
    TimerKey::Hub {
        flow_id: flow_id.to_string(),
        timer,
    }
}

#[cfg(test)]
mod tests;
