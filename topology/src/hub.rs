//! The hub: one state machine per in-flight operation on a flow. It never blocks and never
//! does I/O; it turns requests, allocation results, speaker reports and timeouts into
//! outputs for the allocator, the speaker worker, the coordinator and the bus.

use std::collections::HashMap;
use std::sync::Arc;

use hubspoke_fsm::create::FlowCreate;
use hubspoke_fsm::delete::FlowDelete;
use hubspoke_fsm::operation::{Action, OpContext, OpEvent, Timeouts};
use hubspoke_fsm::{
    Envelope, ErrorBody, FlowEvent, FlowRecord, HistoryEntry, NbRequest, NbResponse,
};
use hubspoke_spokes::deadline::{DeadlineRequest, TimerKey, TimerOwner};
use hubspoke_spokes::speaker::{ReportOutcome, SpeakerReport, SpeakerRequest};
use serde::{Deserialize, Serialize};
use statig::blocking::{IntoStateMachineExt, StateMachine};
use tracing::{debug, info_span};

use crate::allocator::{AllocationResult, AllocatorRequest};
use crate::metrics::Metrics;

/// What comes back to the hub through the dataflow's feedback edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HubInput {
    Allocation(AllocationResult),
    Report(SpeakerReport),
    Timeout { flow_id: String, generation: u64 },
}

impl HubInput {
    pub fn flow_id(&self) -> &str {
        match self {
            HubInput::Allocation(result) => &result.flow_id,
            HubInput::Report(report) => &report.flow_id,
            HubInput::Timeout { flow_id, .. } => flow_id,
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

enum Machine {
    Create(StateMachine<FlowCreate>),
    Delete(StateMachine<FlowDelete>),
}

impl Machine {
    fn handle(&mut self, event: &OpEvent, context: &mut OpContext) {
        match self {
            Machine::Create(m) => m.handle_with_context(event, context),
            Machine::Delete(m) => m.handle_with_context(event, context),
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            Machine::Create(m) => m.state().is_finished(),
            Machine::Delete(m) => m.state().is_finished(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Machine::Create(_) => "create",
            Machine::Delete(_) => "delete",
        }
    }
}

struct Operation {
    machine: Machine,
    correlation_id: String,
    /// The generation of the operation's registered deadline (0: none yet).
    deadline_generation: u64,
}

#[derive(Default)]
struct FlowSlot {
    record: Option<FlowRecord>,
    operation: Option<Operation>,
}

pub struct Hub {
    timeouts: Timeouts,
    flows: HashMap<String, FlowSlot>,
    next_generation: u64,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(timeouts: Timeouts, metrics: Arc<Metrics>) -> Self {
        Hub {
            timeouts,
            flows: HashMap::new(),
            next_generation: 0,
            metrics,
        }
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
        if let Err(error) = self.admit(now_ms, &envelope) {
            self.metrics.requests_rejected.inc();
            debug!(status = error.status, reason = %error.error_description, "request rejected");
            out.push(HubOutput::Response(envelope.reply(
                &flow_id,
                now_ms,
                NbResponse::Error { error },
            )));
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
            NbRequest::DeleteFlow { .. } => {
                let Some(record) = slot.record.clone() else {
                    return;
                };
                Machine::Delete(FlowDelete::new(record, self.timeouts, prefix).state_machine())
            }
           NbRequest::UpdateFlow { .. } | NbRequest::RerouteFlow { .. } => return,
        };
        self.metrics.operations_started.inc();
        slot.operation = Some(Operation {
            machine,
            correlation_id: envelope.correlation_id,
            deadline_generation: 0,
        });
        self.drive(now_ms, &flow_id, &OpEvent::Start, out);
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
            NbRequest::DeleteFlow { .. } if !exists => {
                return Err(ErrorBody::new(
                    404,
                    "not-found",
                    "Flow not found",
                    format!("flow {flow_id} does not exist"),
                ));
            }
            NbRequest::DeleteFlow { .. } => {}
            NbRequest::UpdateFlow { .. } | NbRequest::RerouteFlow { .. } => {
                return Err(ErrorBody::new(501, "not-implemented", "Not implemented", "soon"));
            }
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
        for action in context.actions {
            match action {
                Action::Allocate(request) => {
                    out.push(HubOutput::Allocator(AllocatorRequest::Allocate {
                        flow_id: flow_id.to_string(),
                        request,
                    }))
                }
                Action::Reallocate(_) | Action::Commit | Action::Release => {}
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
                Action::Respond(response) => out.push(HubOutput::Response(Envelope::new(
                    correlation_id.clone(),
                    flow_id,
                    now_ms,
                    response,
                ))),
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
                        key: hub_timer(flow_id),
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
                key: hub_timer(flow_id),
                generation: operation.deadline_generation,
            }));
            self.metrics.operations_finished.inc();
            slot.operation = None;
            if slot.record.is_none() {
                self.flows.remove(flow_id);
            }
        }
    }
}

fn hub_timer(flow_id: &str) -> TimerKey {
    TimerKey {
        owner: TimerOwner::Hub,
        flow_id: flow_id.to_string(),
        name: String::new(),
    }
}
