//! Flow create, after OpenKilda's `FlowCreateFsm`:
//! validate → allocate → install non-ingress → verify → install ingress → verify → UP;
//! any failure or timeout after allocation → remove what was sent → free → DOWN.

use statig::prelude::*;

use crate::install::{InstallStep, RuleInstall};
use crate::operation::{variant_name, Action, HistoryName, OpContext, OpEvent, Removal, Timeouts};
use crate::segments::flow_segments;
use crate::{ErrorBody, FlowRecord, FlowStatus, NbResponse};

pub struct FlowCreate {
    flow: FlowRecord,
    timeouts: Timeouts,
    install: RuleInstall,
    failure: Option<String>,
    removal: Removal,
}

impl FlowCreate {
    /// `flow` is the new record (IN_PROGRESS); `command_prefix` makes command ids unique.
    pub fn new(flow: FlowRecord, timeouts: Timeouts, command_prefix: String) -> Self {
        FlowCreate {
            flow,
            timeouts,
            install: RuleInstall::new(command_prefix),
            failure: None,
            removal: Removal::default(),
        }
    }

    fn roll_back(&mut self, context: &mut OpContext, reason: String) -> Outcome<State> {
        let outcome =
            self.install
                .roll_back(context, &reason, State::rolling_back(), State::down());
        self.failure = Some(reason);
        outcome
    }

    fn error(&self, error: ErrorBody) -> Action {
        Action::Respond(NbResponse::Error { error })
    }
}

#[state_machine(
    initial = "State::received()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    superstate(derive(Debug)),
    after_transition = "Self::after_transition"
)]
impl FlowCreate {
    #[state]
    fn received(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Start => {
                context.push(Action::ArmDeadline {
                    after_ms: self.timeouts.operation_ms,
                });
                context.push(Action::Allocate(self.flow.request.clone()));
                Transition(State::validating())
            }
            _ => Handled,
        }
    }

    /// Waiting for the allocator's answer.
    #[state]
    fn validating(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Allocated(resources) => {
                self.install
                    .set_segments(flow_segments(&self.flow.request, resources));
                self.flow = self
                    .flow
                    .changed(context.now_ms, |r| r.resources = Some(resources.clone()));
                context.push(Action::Save(self.flow.clone()));
                context.push(Action::Respond(NbResponse::Flow {
                    flow: self.flow.clone(),
                }));
                Transition(State::installing_rules(self.install.first_step()))
            }
            OpEvent::AllocationFailed(error) => {
                context.details = error.error_message.clone();
                context.push(self.error(error.clone()));
                Transition(State::rejected())
            }
            OpEvent::Timeout => {
                context.details = "timed out waiting for resource allocation".into();
                context.push(self.error(ErrorBody::new(
                    504,
                    "operation-timeout",
                    "Flow create timed out",
                    "resource allocation did not answer in time",
                )));
                Transition(State::releasing_allocation())
            }
            _ => Handled,
        }
    }

    /// The request was already answered with a timeout; whatever the allocator reserved goes back.
    #[state]
    fn releasing_allocation(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Allocated(_) => {
                context.push(Action::Free);
                Transition(State::rejected())
            }
            OpEvent::AllocationFailed(_) => Transition(State::rejected()),
            _ => Handled,
        }
    }

    /// The install sub-machine, one state for its steps; the history names it by its step.
    #[state(superstate = "installing", entry_action = "send_install_step")]
    fn installing_rules(&mut self, step: &InstallStep, event: &OpEvent) -> Outcome<State> {
        self.install
            .advance(*step, event, State::installing_rules, State::up())
    }

    /// Resources are held and rules may be on switches: failures roll back from here.
    #[superstate]
    fn installing(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match self
            .install
            .step_failure(event, || "flow create timed out".into())
        {
            Some(reason) => self.roll_back(context, reason),
            None => Handled,
        }
    }

    #[action]
    fn send_install_step(&mut self, step: &InstallStep, context: &mut OpContext) {
        self.install.send_step(context, *step);
    }

    #[state(entry_action = "remove_sent_rules")]
    fn rolling_back(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        if self
            .install
            .rollback_done(context, event, "rule removal", &mut self.removal)
        {
            Transition(State::down())
        } else {
            Handled
        }
    }

    #[action]
    fn remove_sent_rules(&mut self, context: &mut OpContext) {
        self.install.remove_sent(context, self.timeouts.rollback_ms);
    }

    #[state(entry_action = "mark_up")]
    fn up(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn mark_up(&mut self, context: &mut OpContext) {
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.mark_in_place();
        });
        context.push(Action::Save(self.flow.clone()));
    }

    #[state(entry_action = "mark_down")]
    fn down(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn mark_down(&mut self, context: &mut OpContext) {
        let mut reason = self
            .failure
            .clone()
            .unwrap_or_else(|| "flow create failed".into());
        for failure in &self.removal.failures {
            reason.push_str(&format!("; rule removal failed: {failure}"));
        }
        if let Some(resources) = &self.flow.resources {
            self.removal.owe(context, &self.flow.request, resources);
        }
        context.push(Action::Free);
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.status = FlowStatus::Down;
            r.status_info = Some(reason);
            r.resources = None;
        });
        context.push(Action::Save(self.flow.clone()));
    }

    /// Refused before anything was reserved: no record is kept.
    #[state]
    fn rejected(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }
}

impl FlowCreate {
    fn after_transition(&mut self, source: &State, target: &State, context: &mut OpContext) {
        context.record_transition(source, target);
    }
}

impl HistoryName for State {
    fn history_name(&self) -> String {
        match self {
            State::InstallingRules { step } => step.history_name().into(),
            _ => variant_name(self),
        }
    }
}

impl State {
    pub fn is_finished(&self) -> bool {
        matches!(self, State::Up {} | State::Down {} | State::Rejected {})
    }
}

#[cfg(test)]
mod tests;
