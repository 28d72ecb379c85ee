//! The hub: one state machine per in-flight operation on a flow. It never blocks and never
//! does I/O; it turns requests, allocation results, speaker reports and timeouts into
//! outputs for the allocator, the speaker worker, the coordinator and the bus.
//!
//! It also moves flows when the network changes: a flow whose path uses a down link, and a
//! DOWN flow once a link comes up, is rerouted. Such reroutes wait for the network to settle
//! (every new trigger for a flow pushes its reroute back by `delay_ms`, up to `max_delay_ms`
//! after the first), so a flapping link costs nothing and a failure becomes one batch.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hubspoke_fsm::create::FlowCreate;
use hubspoke_fsm::delete::FlowDelete;
use hubspoke_fsm::operation::{Action, OpContext, OpEvent, Timeouts};
use hubspoke_fsm::reroute::{FlowReroute, RerouteKind};
use hubspoke_fsm::sync::FlowSync;
use hubspoke_fsm::{
    Envelope, ErrorBody, FlowEvent, FlowRecord, FlowStatus, HistoryEntry, NbRequest, NbResponse,
};
use hubspoke_speaker::deadline::{DeadlineRequest, TimerKey, TimerOwner};
use hubspoke_speaker::{ReportOutcome, SpeakerReport, SpeakerRequest};
use serde::{Deserialize, Serialize};
use statig::blocking::{IntoStateMachineExt, StateMachine};
use tracing::{debug, info_span};

use crate::allocator::{AllocationResult, AllocatorRequest};
use crate::metrics::Metrics;
use crate::recovery::RecoveredFlow;

/// What comes back to the hub through the dataflow's feedback edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HubInput {
    Allocation(AllocationResult),
    Report(SpeakerReport),
    Timeout {
        flow_id: String,
        generation: u64,
    },
    /// From the network view: the flow's installed path uses a down link (or no longer does).
    PathAffected {
        flow_id: String,
        affected: bool,
    },
    /// A flow's settle time for a network-triggered reroute passed.
    RerouteDue {
        flow_id: String,
        generation: u64,
    },
    /// An operation is still running long after every deadline it can arm: a bug, resolved.
    Overdue {
        flow_id: String,
        generation: u64,
    },
}

impl HubInput {
    pub fn flow_id(&self) -> &str {
        match self {
            HubInput::Allocation(result) => &result.flow_id,
            HubInput::Report(report) => &report.flow_id,
            HubInput::Timeout { flow_id, .. }
            | HubInput::PathAffected { flow_id, .. }
            | HubInput::RerouteDue { flow_id, .. }
            | HubInput::Overdue { flow_id, .. } => flow_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubOutput {
    Speaker(SpeakerRequest),
    Allocator(AllocatorRequest),
    Deadline(DeadlineRequest),
    Response(Envelope<NbResponse>),
    Event(Envelope<FlowEvent>),
}

/// How long network-triggered reroutes wait for the network to settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerouteThrottle {
    /// A flow is rerouted once no new trigger came for it for this long.
    pub delay_ms: u64,
    /// ... but no later than this after its first trigger.
    pub max_delay_ms: u64,
}

impl Default for RerouteThrottle {
    fn default() -> Self {
        RerouteThrottle {
            delay_ms: 500,
            max_delay_ms: 5_000,
        }
    }
}

enum Machine {
    Create(StateMachine<FlowCreate>),
    Delete(StateMachine<FlowDelete>),
    // Boxed: make-before-break keeps two sets of segments, which makes it the big one.
    Reroute(Box<StateMachine<FlowReroute>>),
    Sync(Box<StateMachine<FlowSync>>),
}

impl Machine {
    fn handle(&mut self, event: &OpEvent, context: &mut OpContext) {
        match self {
            Machine::Create(m) => m.handle_with_context(event, context),
            Machine::Delete(m) => m.handle_with_context(event, context),
            Machine::Reroute(m) => m.handle_with_context(event, context),
            Machine::Sync(m) => m.handle_with_context(event, context),
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            Machine::Create(m) => m.state().is_finished(),
            Machine::Delete(m) => m.state().is_finished(),
            Machine::Reroute(m) => m.state().is_finished(),
            Machine::Sync(m) => m.state().is_finished(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Machine::Create(_) => "create",
            Machine::Delete(_) => "delete",
            Machine::Reroute(m) => m.inner().operation_name(),
            Machine::Sync(_) => "sync",
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

/// A network-triggered reroute waiting for the network to settle.
struct QueuedReroute {
    kind: RerouteKind,
    first_ms: u64,
    generation: u64,
}

#[derive(Default)]
struct FlowSlot {
    record: Option<FlowRecord>,
    operation: Option<Operation>,
    /// The network view says the flow's installed path uses a down link.
    path_down: bool,
    queued: Option<QueuedReroute>,
    /// Reroutes of the broken path that failed in a row: the next retry waits longer.
    failed_reroutes: u32,
}

impl FlowSlot {
    fn is_down(&self) -> bool {
        self.has_status(FlowStatus::Down)
    }

    fn is_up(&self) -> bool {
        self.has_status(FlowStatus::Up)
    }

    fn has_status(&self, status: FlowStatus) -> bool {
        self.record.as_ref().is_some_and(|r| r.status == status)
    }
}

/// The hub's timers: the operation's deadline, the reroute's settle time, and the watchdog
/// that catches an operation outliving every deadline it can arm.
const OPERATION_TIMER: &str = "";
pub const REROUTE_TIMER: &str = "reroute";
pub const WATCHDOG_TIMER: &str = "watchdog";

/// An operation arms at most an operation deadline, a rollback deadline and (a sync after an
/// interrupted move) a second operation deadline; the watchdog waits for all of them and more.
fn watchdog_after(timeouts: &Timeouts) -> u64 {
    3 * timeouts.operation_ms + 2 * timeouts.rollback_ms
}

/// A flow whose path broke and whose reroute failed (a switch timed out, no path yet) is
/// retried after `max_delay_ms` doubled per failure in a row, up to this many doublings.
const RETRY_DOUBLINGS: u32 = 4;

/// How long an answer is remembered for a request sent again with its correlation id.
const ANSWER_MEMORY_MS: u64 = 24 * 3600 * 1000;

pub struct Hub {
    timeouts: Timeouts,
    throttle: RerouteThrottle,
    flows: HashMap<String, FlowSlot>,
    next_generation: u64,
    /// The answers given, by correlation id, oldest first in `answer_order`.
    answers: HashMap<String, Envelope<NbResponse>>,
    answer_order: VecDeque<(u64, String)>,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(timeouts: Timeouts, throttle: RerouteThrottle, metrics: Arc<Metrics>) -> Self {
        Hub {
            timeouts,
            throttle,
            flows: HashMap::new(),
            next_generation: 0,
            answers: HashMap::new(),
            answer_order: VecDeque::new(),
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
            self.remember(answer);
        }
        for RecoveredFlow {
            record,
            interrupted,
        } in flows
        {
            let flow_id = record.flow_id().to_string();
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
        self.remember(response);
    }

    fn remember(&mut self, response: Envelope<NbResponse>) {
        let at = response.created_at_ms;
        while self
            .answer_order
            .front()
            .is_some_and(|(t, _)| t + ANSWER_MEMORY_MS < at)
        {
            if let Some((_, old)) = self.answer_order.pop_front() {
                self.answers.remove(&old);
            }
        }
        self.answer_order
            .push_back((at, response.correlation_id.clone()));
        self.answers
            .insert(response.correlation_id.clone(), response);
    }

    /// A request seen before: its answer again, or nothing while it is still being worked on.
    fn duplicate(&self, envelope: &Envelope<NbRequest>) -> Option<Option<Envelope<NbResponse>>> {
        if let Some(answer) = self.answers.get(&envelope.correlation_id) {
            return Some(Some(answer.clone()));
        }
        let running = self
            .operation(envelope.payload.flow_id())
            .is_some_and(|op| op.correlation_id == envelope.correlation_id);
        running.then_some(None)
    }

    pub fn request(
        &mut self,
        now_ms: u64,
        envelope: Envelope<NbRequest>,
        out: &mut Vec<HubOutput>,
    ) {
        let flow_id = envelope.payload.flow_id().to_string();
        let _span =
            info_span!("hub", flow_id = %flow_id, correlation_id = %envelope.correlation_id)
                .entered();
        if let Some(answer) = self.duplicate(&envelope) {
            self.metrics.requests_deduplicated.inc();
            debug!("the same request again: answered as before");
            out.extend(answer.map(HubOutput::Response));
            return;
        }
        if let Err(error) = self.admit(now_ms, &envelope) {
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
                self.machine_for(on_existing, record, prefix)
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

    /// The machine for a request on an existing flow.
    fn machine_for(&self, request: NbRequest, record: FlowRecord, prefix: String) -> Machine {
        match request {
            NbRequest::UpdateFlow { flow } => {
                self.reroute_machine(record, RerouteKind::Update(flow), prefix)
            }
            NbRequest::RerouteFlow { .. } => {
                self.reroute_machine(record, RerouteKind::Manual, prefix)
            }
            NbRequest::SyncFlow { .. } => self.sync_machine(record, prefix),
            NbRequest::DeleteFlow { .. } | NbRequest::CreateFlow { .. } => {
                Machine::Delete(FlowDelete::new(record, self.timeouts, prefix).state_machine())
            }
        }
    }

    fn sync_machine(&self, record: FlowRecord, prefix: String) -> Machine {
        Machine::Sync(Box::new(
            FlowSync::new(record, self.timeouts, prefix).state_machine(),
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
            key: hub_timer(flow_id, WATCHDOG_TIMER),
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
            key: hub_timer(flow_id, OPERATION_TIMER),
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

    /// A link came up or a switch came back: every DOWN flow gets another chance.
    pub fn network_improved(&mut self, now_ms: u64, out: &mut Vec<HubOutput>) {
        let down: Vec<String> = self
            .flows
            .iter()
            .filter(|(_, slot)| slot.is_down())
            .map(|(flow_id, _)| flow_id.clone())
            .collect();
        for flow_id in down {
            self.queue_reroute(now_ms, &flow_id, RerouteKind::Retry, out);
        }
    }

    /// Schedules a network-triggered reroute, or pushes a scheduled one back.
    fn queue_reroute(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        kind: RerouteKind,
        out: &mut Vec<HubOutput>,
    ) {
        self.queue_reroute_in(now_ms, flow_id, kind, self.throttle.delay_ms, out);
    }

    /// Schedules a reroute `delay_ms` from now (at the latest `max_delay_ms` after the first
    /// trigger, unless the delay itself is longer).
    fn queue_reroute_in(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        kind: RerouteKind,
        delay_ms: u64,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        self.next_generation += 1;
        let first_ms = slot.queued.as_ref().map_or(now_ms, |q| q.first_ms);
        let latest_ms = first_ms + self.throttle.max_delay_ms.max(delay_ms);
        let at_ms = (now_ms + delay_ms).min(latest_ms);
        slot.queued = Some(QueuedReroute {
            kind,
            first_ms,
            generation: self.next_generation,
        });
        out.push(HubOutput::Deadline(DeadlineRequest::Register {
            key: hub_timer(flow_id, REROUTE_TIMER),
            generation: self.next_generation,
            at_ms: at_ms.max(now_ms + 1),
        }));
    }

    fn unqueue_reroute(&mut self, flow_id: &str, out: &mut Vec<HubOutput>) {
        let Some(queued) = self.flows.get_mut(flow_id).and_then(|s| s.queued.take()) else {
            return;
        };
        out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
            key: hub_timer(flow_id, REROUTE_TIMER),
            generation: queued.generation,
        }));
    }

    fn path_affected(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        affected: bool,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        slot.path_down = affected;
        let queued_for_path = slot
            .queued
            .as_ref()
            .is_some_and(|q| q.kind == RerouteKind::PathDown);
        if affected {
            self.queue_reroute(now_ms, flow_id, RerouteKind::PathDown, out);
        } else if queued_for_path {
            self.unqueue_reroute(flow_id, out);
        }
    }

    /// Starts a queued reroute if it is still wanted; a busy flow waits another round.
    fn reroute_due(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        generation: u64,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        if slot.queued.as_ref().map(|q| q.generation) != Some(generation) {
            return;
        }
        if slot.operation.is_some() {
            let kind = slot
                .queued
                .as_ref()
                .map_or(RerouteKind::Retry, |q| q.kind.clone());
            slot.queued = None;
            self.queue_reroute(now_ms, flow_id, kind, out);
            return;
        }
        let Some(queued) = slot.queued.take() else {
            return;
        };
        let wanted = match queued.kind {
            RerouteKind::PathDown => slot.path_down,
            _ => slot.is_down(),
        };
        let Some(record) = slot.record.clone().filter(|_| wanted) else {
            return;
        };
        self.metrics.reroutes_started.inc();
        let prefix = format!("{flow_id}:{now_ms}");
        let machine = self.reroute_machine(record, queued.kind, prefix);
        let correlation_id = format!("reroute:{flow_id}:{now_ms}");
        self.start(now_ms, flow_id, machine, correlation_id, false, out);
    }

    /// Checks a request against the flows this hub knows; the allocator checks the network.
    fn admit(&self, now_ms: u64, envelope: &Envelope<NbRequest>) -> Result<(), ErrorBody> {
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
        let flow_id = envelope.payload.flow_id();
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
            NbRequest::DeleteFlow { .. }
            | NbRequest::RerouteFlow { .. }
            | NbRequest::SyncFlow { .. } => {}
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
                outcome: ReportOutcome::Listed { rules },
                ..
            }) => OpEvent::RulesListed { command_id, rules },
            HubInput::PathAffected { affected, .. } => {
                self.path_affected(now_ms, &flow_id, affected, out);
                return;
            }
            HubInput::RerouteDue { generation, .. } => {
                self.reroute_due(now_ms, &flow_id, generation, out);
                return;
            }
            HubInput::Overdue { generation, .. } => {
                self.overdue(now_ms, &flow_id, generation, out);
                return;
            }
            HubInput::Timeout { generation, .. } => {
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

    /// Runs one event through the flow's machine and carries out what it asks for.
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
        let correlation_id = operation.correlation_id.clone();
        let mut responses = Vec::new();
        for action in context.actions {
            match action {
                Action::Allocate(request) => {
                    out.push(HubOutput::Allocator(AllocatorRequest::Allocate {
                        flow_id: flow_id.to_string(),
                        request,
                    }))
                }
                Action::Reallocate(request) => {
                    out.push(HubOutput::Allocator(AllocatorRequest::Reallocate {
                        flow_id: flow_id.to_string(),
                        request,
                    }))
                }
                Action::Commit => out.push(HubOutput::Allocator(AllocatorRequest::Commit {
                    flow_id: flow_id.to_string(),
                })),
                Action::Release => out.push(HubOutput::Allocator(AllocatorRequest::Release {
                    flow_id: flow_id.to_string(),
                })),
                Action::Free => out.push(HubOutput::Allocator(AllocatorRequest::Free {
                    flow_id: flow_id.to_string(),
                })),
                Action::Send {
                    command_id,
                    action,
                    segment,
                } => out.push(HubOutput::Speaker(SpeakerRequest::Run {
                    flow_id: flow_id.to_string(),
                    correlation_id: correlation_id.clone(),
                    command_id,
                    action,
                    segment,
                })),
                Action::Abandon => out.push(HubOutput::Speaker(SpeakerRequest::Abandon {
                    flow_id: flow_id.to_string(),
                })),
                Action::Respond(response) if operation.answered => responses.push(Envelope::new(
                    correlation_id.clone(),
                    flow_id,
                    now_ms,
                    response,
                )),
                Action::Respond(_) => {}
                Action::Save(record) => {
                    slot.record = Some(record.clone());
                    out.push(HubOutput::Event(Envelope::new(
                        correlation_id.clone(),
                        flow_id,
                        now_ms,
                        FlowEvent::Updated { flow: record },
                    )));
                }
                Action::Remove { version } => {
                    slot.record = None;
                    out.push(HubOutput::Event(Envelope::new(
                        correlation_id.clone(),
                        flow_id,
                        now_ms,
                        FlowEvent::Removed {
                            flow_id: flow_id.to_string(),
                            version,
                        },
                    )));
                }
                Action::ArmDeadline { after_ms } => {
                    self.next_generation += 1;
                    operation.deadline_generation = self.next_generation;
                    out.push(HubOutput::Deadline(DeadlineRequest::Register {
                        key: hub_timer(flow_id, OPERATION_TIMER),
                        generation: self.next_generation,
                        at_ms: now_ms + after_ms,
                    }));
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
                    out.push(HubOutput::Event(Envelope::new(
                        correlation_id.clone(),
                        flow_id,
                        now_ms,
                        FlowEvent::History {
                            flow_id: flow_id.to_string(),
                            entry,
                        },
                    )));
                }
            }
        }
        if operation.machine.is_finished() {
            out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
                key: hub_timer(flow_id, OPERATION_TIMER),
                generation: operation.deadline_generation,
            }));
            out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
                key: hub_timer(flow_id, WATCHDOG_TIMER),
                generation: operation.watchdog_generation,
            }));
            self.metrics.operations_finished.inc();
            slot.operation = None;
            if slot.record.is_none() {
                if let Some(queued) = self.flows.remove(flow_id).and_then(|s| s.queued) {
                    out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
                        key: hub_timer(flow_id, REROUTE_TIMER),
                        generation: queued.generation,
                    }));
                }
            } else if slot.is_up() {
                slot.failed_reroutes = 0;
                if slot.path_down && slot.queued.is_none() {
                    // The path broke while the operation ran.
                    self.queue_reroute(now_ms, flow_id, RerouteKind::PathDown, out);
                }
            } else if slot.path_down && slot.queued.is_none() && slot.is_down() {
                // The reroute failed: nothing else would try again until the network
                // improves, so a switch that timed out under load must not strand the flow.
                let delay_ms =
                    self.throttle.max_delay_ms.max(1) << slot.failed_reroutes.min(RETRY_DOUBLINGS);
                slot.failed_reroutes += 1;
                self.queue_reroute_in(now_ms, flow_id, RerouteKind::Retry, delay_ms, out);
            }
        }
        for response in responses {
            self.answer(response, out);
        }
    }
}

fn hub_timer(flow_id: &str, name: &str) -> TimerKey {
    TimerKey {
        owner: TimerOwner::Hub,
        flow_id: flow_id.to_string(),
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests;
