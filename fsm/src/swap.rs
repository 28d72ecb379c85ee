//! Swapping a flow onto its protected path, after OpenKilda's `FlowPathSwapFsm`. The protected
//! path's transit and egress rules are on the switches already, so only the ingress rules
//! change: the protected path's ingress rules are installed over the primary's (an install
//! replaces the rule at its match), one per endpoint switch, and verified; then the record's
//! primary and protected paths exchange. No path search, no allocation. A failure puts the
//! primary's ingress rules back and leaves the flow as it was.

use statig::prelude::*;

use crate::operation::{variant_name, Action, CommandBatch, HistoryName, OpContext};
use crate::operation::{OpEvent, Timeouts};
use crate::segments::{flow_segments, protected_ingress, FlowSegment};
use crate::{ErrorBody, FlowRecord, FlowStatus, NbResponse, Resources, SbAction};

pub struct FlowSwap {
    flow: FlowRecord,
    timeouts: Timeouts,
    /// What the flow's resources become: primary and protected exchanged (`None`: the flow
    /// has no protected path).
    swapped: Option<Resources>,
    /// The protected path's ingress rules, then the primary's: what a rollback puts back.
    new_ingress: Vec<FlowSegment>,
    old_ingress: Vec<FlowSegment>,
    commands: CommandBatch,
    status_before: (FlowStatus, Option<String>),
    failure: String,
    /// Why putting back the primary's ingress rules failed: the flow has no way in.
    restore_failure: Option<String>,
}

impl FlowSwap {
    /// Swaps `flow` onto its protected path; `command_prefix` makes command ids unique.
    pub fn new(flow: FlowRecord, timeouts: Timeouts, command_prefix: String) -> Self {
        let resources = flow.resources.as_ref();
        let swapped = resources.and_then(Resources::swapped);
        let new_ingress = resources
            .map(|r| protected_ingress(&flow.request, r))
            .unwrap_or_default();
        let old_ingress = resources
            .map(|r| flow_segments(&flow.request, r))
            .unwrap_or_default()
            .into_iter()
            .filter(|rule| rule.kind.is_ingress())
            .collect();
        FlowSwap {
            status_before: (flow.status, flow.status_info.clone()),
            flow,
            timeouts,
            swapped,
            new_ingress,
            old_ingress,
            commands: CommandBatch::new(command_prefix),
            failure: String::new(),
            restore_failure: None,
        }
    }

    fn send(&mut self, context: &mut OpContext, action: SbAction, old: bool) {
        let rules = if old {
            &self.old_ingress
        } else {
            &self.new_ingress
        };
        let all: Vec<usize> = (0..rules.len()).collect();
        self.commands.send(context, action, rules, &all);
    }

    /// Moves to `next` once the step's commands all succeeded; a failed command or the
    /// deadline puts the primary's ingress rules back.
    fn step(&mut self, context: &mut OpContext, event: &OpEvent, next: State) -> Outcome<State> {
        match self
            .commands
            .step_outcome(event, || "flow swap timed out".into())
        {
            None => Handled,
            Some(Ok(())) => Transition(next),
            Some(Err(failure)) => {
                self.abandon(context, &failure);
                self.failure = failure;
                Transition(State::restoring_ingress())
            }
        }
    }

    fn abandon(&mut self, context: &mut OpContext, reason: &str) {
        context.details = reason.to_string();
        self.commands.abandon();
        context.push(Action::Abandon);
    }
}

#[state_machine(
    initial = "State::received()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    after_transition = "Self::after_transition"
)]
impl FlowSwap {
    #[state]
    fn received(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Start if self.swapped.is_none() => {
                context.details = "the flow has no protected path".into();
                context.push(Action::Respond(NbResponse::Error {
                    error: ErrorBody::new(
                        409,
                        "no-protected-path",
                        "The flow has no protected path",
                        format!(
                            "flow {} has no protected path to swap to",
                            self.flow.flow_id()
                        ),
                    ),
                }));
                Transition(State::refused())
            }
            OpEvent::Start => {
                self.flow = context.begin(&self.flow, self.timeouts.operation_ms);
                Transition(State::installing_ingress())
            }
            _ => Handled,
        }
    }

    /// The protected path's ingress rules take the flow's traffic over.
    #[state(entry_action = "install_new_ingress")]
    fn installing_ingress(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        self.step(context, event, State::verifying_ingress())
    }

    #[action]
    fn install_new_ingress(&mut self, context: &mut OpContext) {
        self.send(context, SbAction::Install, false);
    }

    #[state(entry_action = "verify_new_ingress")]
    fn verifying_ingress(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        self.step(context, event, State::swapped())
    }

    #[action]
    fn verify_new_ingress(&mut self, context: &mut OpContext) {
        self.send(context, SbAction::Verify, false);
    }

    #[state(entry_action = "commit")]
    fn swapped(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn commit(&mut self, context: &mut OpContext) {
        context.push(Action::SwapPaths);
        let resources = self.swapped.clone();
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.resources = resources;
            r.mark_in_place();
        });
        context.push(Action::Save(self.flow.clone()));
        context.push(Action::Respond(NbResponse::Flow {
            flow: self.flow.clone(),
        }));
    }

    /// The primary's ingress rules go back over whatever of the new ones landed.
    #[state(entry_action = "reinstall_old_ingress")]
    fn restoring_ingress(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        let timed_out = || "putting back the primary's ingress rules timed out".into();
        match self.commands.step_outcome(event, timed_out) {
            None => Handled,
            Some(Ok(())) => Transition(State::failed()),
            Some(Err(failure)) => {
                self.abandon(context, &failure);
                self.restore_failure = Some(failure);
                Transition(State::failed())
            }
        }
    }

    #[action]
    fn reinstall_old_ingress(&mut self, context: &mut OpContext) {
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.rollback_ms,
        });
        self.send(context, SbAction::Install, true);
    }

    /// The flow stays on its primary path.
    #[state(entry_action = "restore")]
    fn failed(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn restore(&mut self, context: &mut OpContext) {
        let (status, info) = match &self.restore_failure {
            Some(failure) => (
                FlowStatus::Down,
                Some(format!(
                    "swap failed: {}; the primary's ingress rules could not be put back: {failure}",
                    self.failure
                )),
            ),
            None => self.status_before.clone(),
        };
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.status = status;
            r.status_info = info;
        });
        context.push(Action::Save(self.flow.clone()));
        context.push(Action::Respond(NbResponse::Error {
            error: ErrorBody::new(
                500,
                "swap-failed",
                "Flow swap failed",
                format!("the protected path's ingress rules: {}", self.failure),
            ),
        }));
    }

    /// Nothing to swap to: nothing changed.
    #[state]
    fn refused(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }
}

impl FlowSwap {
    fn after_transition(&mut self, source: &State, target: &State, context: &mut OpContext) {
        context.record_transition(source, target);
    }
}

impl HistoryName for State {
    fn history_name(&self) -> String {
        variant_name(self)
    }
}

impl State {
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            State::Swapped {} | State::Failed {} | State::Refused {}
        )
    }
}

#[cfg(test)]
mod tests;
