//! What the per-flow state machines share: the events they take, the actions they ask for,
//! and the bookkeeping of the southbound commands of one step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::segments::FlowSegment;
use crate::{
    ErrorBody, FlowEndpoints, FlowRecord, FlowRequest, FlowStatus, NbResponse, Reallocation,
    RemovalDebt, Reservation, Resources, SbAction,
};

/// How long an operation may take, in logical milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// The whole operation, from start to UP/DOWN.
    pub operation_ms: u64,
    /// Removing rules after a failure: a second, shorter deadline so rollback cannot hang.
    pub rollback_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            operation_ms: 30_000,
            rollback_ms: 10_000,
        }
    }
}

/// What happens to an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpEvent {
    Start,
    Allocated(Resources),
    AllocationFailed(ErrorBody),
    CommandSucceeded {
        command_id: String,
    },
    CommandFailed {
        command_id: String,
        reason: String,
    },
    /// A dump command's answer: the rules its switch holds.
    RulesListed {
        command_id: String,
        rules: Vec<FlowSegment>,
    },
    /// The operation's current deadline passed.
    Timeout,
    /// What the allocator decided for the endpoint swap this flow is half of.
    Pair(PairSignal),
}

/// The allocator's word to the two flows of an endpoint swap: it decides for both, so they
/// end up swapped together or not at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairSignal {
    /// Both new paths are installed and verified: swap the ingress rules.
    Go,
    /// Both swapped their ingress rules: the swap is done, the old rules go.
    Commit,
    /// One of the two failed (the error the first flow answers with): both go back.
    Abort(ErrorBody),
}

/// What one flow of an endpoint swap tells the allocator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairVote {
    /// Its new path is installed and verified, its ingress rules not yet swapped.
    Ready,
    /// Its new ingress rules are installed and verified.
    Swapped,
    /// It failed, or waited too long: the swap is off unless it is already committed.
    Failed(ErrorBody),
}

impl OpEvent {
    pub fn name(&self) -> &'static str {
        match self {
            OpEvent::Start => "start",
            OpEvent::Allocated(_) => "allocated",
            OpEvent::AllocationFailed(_) => "allocation_failed",
            OpEvent::CommandSucceeded { .. } => "command_succeeded",
            OpEvent::CommandFailed { .. } => "command_failed",
            OpEvent::RulesListed { .. } => "rules_listed",
            OpEvent::Timeout => "timeout",
            OpEvent::Pair(PairSignal::Go) => "pair_go",
            OpEvent::Pair(PairSignal::Commit) => "pair_commit",
            OpEvent::Pair(PairSignal::Abort(_)) => "pair_abort",
        }
    }
}

/// A side effect a state machine asks the hub to carry out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Validate against the network and reserve path, cookie, VLAN, meters and bandwidth.
    Allocate(FlowRequest),
    /// Release everything reserved for the flow.
    Free,
    /// Make-before-break: reserve a new path and resources for `request` next to the ones the
    /// flow holds (its own bandwidth counts as available, so a shared ISL is not counted
    /// twice). Answered with `Allocated` or `AllocationFailed`.
    Reallocate {
        request: FlowRequest,
        kind: Reallocation,
    },
    /// The new reservation becomes the flow's; the old one is released.
    Commit,
    /// The new reservation is released; the flow keeps the old one.
    Release,
    /// Make-before-break for a new protected path: like `Reallocate`, but the primary path
    /// stays while it can carry the flow.
    Reprotect(FlowRequest),
    /// The flow's traffic is on its protected path: the reservation's paths exchange.
    SwapPaths,
    /// An endpoint swap's reservations: `request` (this flow with its new endpoints) and the
    /// other flow's at `partner`, one for both or none. This flow is answered `Allocated` or
    /// `AllocationFailed`; the other one's hub starts its half.
    ReserveEndpointSwap {
        request: FlowRequest,
        partner: FlowEndpoints,
    },
    /// This flow's word on the endpoint swap it is half of.
    PairVote(PairVote),
    /// Hand a southbound command to the speaker worker.
    Send {
        command_id: String,
        action: SbAction,
        segment: FlowSegment,
    },
    /// Forget the flow's commands still pending at the speaker: their answers no longer matter.
    Abandon,
    /// Hand rules whose removal was not confirmed to the removal debt, which retries them and
    /// keeps their reservation taken until they are gone. Comes before the action that
    /// releases the reservation (Free, Release, Commit).
    Owe(RemovalDebt),
    Respond(NbResponse),
    Save(FlowRecord),
    /// The flow record is gone (a finished delete).
    Remove {
        version: u64,
    },
    /// (Re)arm the operation's deadline, replacing the previous one.
    ArmDeadline {
        after_ms: u64,
    },
    History {
        event: String,
        from_state: String,
        to_state: String,
        details: String,
    },
}

/// The external context a machine runs in: the logical time and the action sink.
#[derive(Debug, Default)]
pub struct OpContext {
    pub now_ms: u64,
    pub actions: Vec<Action>,
    /// Set by a handler to explain the transition it makes, for the history.
    pub details: String,
    event: &'static str,
}

impl OpContext {
    pub fn new(now_ms: u64) -> Self {
        OpContext {
            now_ms,
            ..Default::default()
        }
    }

    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// How an operation on an existing flow starts: its deadline armed, the flow saved
    /// IN_PROGRESS. Returns the saved record.
    pub fn begin(&mut self, flow: &FlowRecord, operation_ms: u64) -> FlowRecord {
        self.push(Action::ArmDeadline {
            after_ms: operation_ms,
        });
        let flow = flow.changed(self.now_ms, |r| r.status = FlowStatus::InProgress);
        self.push(Action::Save(flow.clone()));
        flow
    }

    /// Notes the event being handled so the history can name it.
    pub fn handling(&mut self, event: &OpEvent) {
        self.event = event.name();
    }

    /// The history entry of a transition, built from the event and the handler's details.
    pub fn record_transition(&mut self, from: &impl HistoryName, to: &impl HistoryName) {
        let details = std::mem::take(&mut self.details);
        self.actions.push(Action::History {
            event: self.event.to_string(),
            from_state: from.history_name(),
            to_state: to.history_name(),
            details,
        });
    }
}

/// How the flow history names a machine's states. The names are what stored histories hold,
/// so they are kept apart from how a state is written in code.
pub trait HistoryName: std::fmt::Debug {
    /// By default the state's variant name; a state whose fields say more overrides it.
    fn history_name(&self) -> String {
        variant_name(self)
    }
}

/// `Validating {}` → `Validating`.
pub fn variant_name(state: &(impl std::fmt::Debug + ?Sized)) -> String {
    let text = format!("{state:?}");
    text.split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What removal steps could not confirm: the rules still owed, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removal {
    pub owed: Vec<FlowSegment>,
    /// The reasons switches gave for the failed removals.
    pub failures: Vec<String>,
    /// The step's deadline passed with removals unanswered.
    pub timed_out: bool,
}

impl Removal {
    /// Owes the rules of the reservation `request` + `resources` (those carrying its cookie)
    /// whose removal was not confirmed, if any.
    pub fn owe(&self, context: &mut OpContext, request: &FlowRequest, resources: &Resources) {
        let rules: Vec<FlowSegment> = self
            .owed
            .iter()
            .filter(|rule| rule.cookie_id() == resources.cookie)
            .cloned()
            .collect();
        if !rules.is_empty() {
            context.push(Action::Owe(RemovalDebt {
                reservation: Reservation {
                    request: request.clone(),
                    resources: resources.clone(),
                },
                rules,
            }));
        }
    }

    /// The history's note of what went wrong, the rules named by `what`.
    pub fn details(&self, what: &str) -> String {
        let mut notes: Vec<String> = Vec::new();
        if self.timed_out {
            notes.push(format!("{what} timed out"));
        }
        notes.extend(
            self.failures
                .iter()
                .map(|failure| format!("{what} failed: {failure}")),
        );
        if !self.owed.is_empty() {
            notes.push(format!(
                "{} rule(s) handed to the removal debt",
                self.owed.len()
            ));
        }
        notes.join("; ")
    }
}

/// Whether a command result finished the step it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Not a command of the current step (late, or from an abandoned step).
    NotPending,
    Remaining,
    StepDone,
}

/// The commands of the current step: ids are `{prefix}:{n}`, unique within the operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBatch {
    prefix: String,
    issued: u32,
    pending: BTreeMap<String, usize>,
}

impl CommandBatch {
    pub fn new(prefix: String) -> Self {
        CommandBatch {
            prefix,
            issued: 0,
            pending: BTreeMap::new(),
        }
    }

    /// Sends `action` for each of `segments[i]`, `i` in `indices`, as the new step.
    pub fn send(
        &mut self,
        context: &mut OpContext,
        action: SbAction,
        segments: &[FlowSegment],
        indices: &[usize],
    ) {
        self.pending.clear();
        for &index in indices {
            self.issued += 1;
            let command_id = format!("{}:{}", self.prefix, self.issued);
            self.pending.insert(command_id.clone(), index);
            context.push(Action::Send {
                command_id,
                action,
                segment: segments[index].clone(),
            });
        }
    }

    pub fn complete(&mut self, command_id: &str) -> Completion {
        match self.pending.remove(command_id) {
            None => Completion::NotPending,
            Some(_) if self.pending.is_empty() => Completion::StepDone,
            Some(_) => Completion::Remaining,
        }
    }

    /// For a step that removes rules and goes on whatever the switches answer (`segments` are
    /// what it was sent with): a failed command's rule is owed, with its reason; at the
    /// deadline every rule still pending is owed. True once the step is over.
    pub fn removal_progress(
        &mut self,
        event: &OpEvent,
        segments: &[FlowSegment],
        removal: &mut Removal,
    ) -> bool {
        match event {
            OpEvent::CommandSucceeded { command_id } => {
                self.complete(command_id) == Completion::StepDone
            }
            OpEvent::CommandFailed { command_id, reason } => {
                let Some(index) = self.pending.remove(command_id) else {
                    return false;
                };
                removal.owed.extend(segments.get(index).cloned());
                removal.failures.push(reason.clone());
                self.pending.is_empty()
            }
            OpEvent::Timeout => {
                let pending = std::mem::take(&mut self.pending);
                removal
                    .owed
                    .extend(pending.values().filter_map(|&i| segments.get(i)).cloned());
                removal.timed_out = true;
                true
            }
            _ => false,
        }
    }

    /// How `event` ends the current step: `Some(Ok(()))` once its last command succeeded,
    /// `Some(Err(reason))` when one of its commands failed or the deadline passed (the reason
    /// `timed_out` gives), `None` while it goes on (or for a late answer).
    pub fn step_outcome(
        &mut self,
        event: &OpEvent,
        timed_out: impl FnOnce() -> String,
    ) -> Option<Result<(), String>> {
        match event {
            OpEvent::CommandSucceeded { command_id } => {
                (self.complete(command_id) == Completion::StepDone).then_some(Ok(()))
            }
            OpEvent::CommandFailed { command_id, reason } if self.is_pending(command_id) => {
                Some(Err(reason.clone()))
            }
            OpEvent::Timeout => Some(Err(timed_out())),
            _ => None,
        }
    }

    pub fn is_pending(&self, command_id: &str) -> bool {
        self.pending.contains_key(command_id)
    }

    pub fn abandon(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::SegmentKind;
    use crate::SwitchId;

    #[test]
    fn a_step_is_done_when_its_last_command_completes() {
        let segment = FlowSegment {
            switch_id: SwitchId(1),
            kind: SegmentKind::Transit,
            cookie: 1,
            in_port: 1,
            in_vlan: 2,
            out_port: 3,
            out_vlan: 2,
            meter_id: None,
            bandwidth: 0,
        };
        let mut context = OpContext::new(0);
        let mut batch = CommandBatch::new("f:1".into());
        batch.send(
            &mut context,
            SbAction::Install,
            &[segment.clone(), segment],
            &[0, 1],
        );
        assert_eq!(context.actions.len(), 2);
        assert_eq!(batch.complete("f:1:1"), Completion::Remaining);
        assert_eq!(batch.complete("f:1:1"), Completion::NotPending);
        assert_eq!(batch.complete("other"), Completion::NotPending);
        assert_eq!(batch.complete("f:1:2"), Completion::StepDone);
    }

    #[test]
    fn variant_names_drop_the_fields() {
        use crate::create::State;
        use crate::install::InstallStep;
        assert_eq!(variant_name(&State::Validating {}), "Validating");
        assert_eq!(
            variant_name(&State::InstallingRules {
                step: InstallStep::InstallIngress
            }),
            "InstallingRules"
        );
    }
}
