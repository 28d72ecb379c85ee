//! Flow sync, after OpenKilda's `FlowSyncFsm`: make the switches hold exactly the flow's
//! recorded rules. Remove the rules of an interrupted reroute or update (`flow.target`) →
//! re-install the recorded rules (non-ingress → verify → ingress → verify; installs are
//! idempotent on the switches) → UP. A flow without a reserved path, or whose rules cannot be
//! installed, goes DOWN. Sync never touches reservations: no Free, Release or Commit.
//!
//! It serves `POST /v2/flows/{id}/sync` and recovery: a flow found IN_PROGRESS after a
//! restart is synced.

use statig::prelude::*;

use crate::install::RuleInstall;
use crate::operation::{Action, OpContext, OpEvent, Timeouts};
use crate::segments::{flow_segments, FlowSegment};
use crate::{FlowRecord, FlowStatus, NbResponse, SbAction};

/// Why a flow without resources cannot be synced.
const NO_PATH: &str = "no path is reserved for the flow";

pub struct FlowSync {
    flow: FlowRecord,
    timeouts: Timeouts,
    /// The rules of an interrupted reroute or update, from `flow.target`: they go first.
    target_segments: Vec<FlowSegment>,
    /// The recorded rules, from `flow.resources`; empty when the flow has none.
    install: RuleInstall,
    failure: String,
    removal_failures: Vec<String>,
}

impl FlowSync {
    /// `flow` is the flow's stored record; `command_prefix` makes command ids unique.
    pub fn new(flow: FlowRecord, timeouts: Timeouts, command_prefix: String) -> Self {
        let target_segments = flow
            .target
            .as_ref()
            .map(|t| flow_segments(&t.request, &t.resources))
            .unwrap_or_default();
        let mut install = RuleInstall::new(command_prefix);
        if let Some(resources) = &flow.resources {
            install.set_segments(flow_segments(&flow.request, resources));
        }
        FlowSync {
            flow,
            timeouts,
            target_segments,
            install,
            failure: String::new(),
            removal_failures: Vec::new(),
        }
    }

    /// Where the sync goes once no foreign rule is left: installing the recorded rules, or
    /// DOWN when the flow has none.
    fn install_or_down(&mut self, context: &mut OpContext) -> State {
        if self.flow.resources.is_none() {
            self.failure = NO_PATH.into();
            if !context.details.is_empty() {
                context.details.push_str("; ");
            }
            context.details.push_str(NO_PATH);
            State::down()
        } else if self.install.has_non_ingress() {
            State::installing_non_ingress()
        } else {
            State::installing_ingress()
        }
    }

    /// Abandons the install for `reason`: the partial rules stay, they belong to the flow.
    fn give_up(&mut self, context: &mut OpContext, reason: String) -> Outcome<State> {
        context.details = reason.clone();
        self.install.commands.abandon();
        context.push(Action::Abandon);
        self.failure = reason;
        Transition(State::down())
    }
}

#[state_machine(
    initial = "State::received()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    superstate(derive(Debug)),
    after_transition = "Self::after_transition"
)]
impl FlowSync {
    #[state]
    fn received(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Start => {
                self.flow = context.begin(&self.flow, self.timeouts.operation_ms);
                context.push(Action::Respond(NbResponse::Flow {
                    flow: self.flow.clone(),
                }));
                if self.target_segments.is_empty() {
                    Transition(self.install_or_down(context))
                } else {
                    Transition(State::removing_target())
                }
            }
            _ => Handled,
        }
    }

    /// The rules of an interrupted reroute or update go, whatever the switches answer: a
    /// missing rule is fine, a failure is noted and switch validation cleans up later.
    #[state(entry_action = "remove_target")]
    fn removing_target(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        let what = "target rule removal";
        if !self
            .install
            .removal_done(context, event, what, &mut self.removal_failures)
        {
            return Handled;
        }
        // Its rules are gone: a reservation restored for the target goes back.
        context.push(Action::Release);
        if self.flow.resources.is_some() {
            // The removal ran under the rollback deadline (or used it up): the install gets
            // the operation's.
            context.push(Action::ArmDeadline {
                after_ms: self.timeouts.operation_ms,
            });
        }
        Transition(self.install_or_down(context))
    }

    #[action]
    fn remove_target(&mut self, context: &mut OpContext) {
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.rollback_ms,
        });
        let all: Vec<usize> = (0..self.target_segments.len()).collect();
        self.install
            .commands
            .send(context, SbAction::Remove, &self.target_segments, &all);
    }

    #[state(superstate = "installing", entry_action = "install_non_ingress")]
    fn installing_non_ingress(&mut self, event: &OpEvent) -> Outcome<State> {
        self.install.advance(event, State::verifying_non_ingress())
    }

    #[state(superstate = "installing", entry_action = "verify_non_ingress")]
    fn verifying_non_ingress(&mut self, event: &OpEvent) -> Outcome<State> {
        self.install.advance(event, State::installing_ingress())
    }

    #[state(superstate = "installing", entry_action = "install_ingress")]
    fn installing_ingress(&mut self, event: &OpEvent) -> Outcome<State> {
        self.install.advance(event, State::verifying_ingress())
    }

    #[state(superstate = "installing", entry_action = "verify_ingress")]
    fn verifying_ingress(&mut self, event: &OpEvent) -> Outcome<State> {
        self.install.advance(event, State::up())
    }

    /// A failure leaves the flow DOWN on its recorded resources; nothing is rolled back.
    #[superstate]
    fn installing(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::CommandFailed { command_id, reason }
                if self.install.is_pending(command_id) =>
            {
                self.give_up(context, reason.clone())
            }
            OpEvent::Timeout => self.give_up(context, "flow sync timed out".into()),
            _ => Handled,
        }
    }

    #[action]
    fn install_non_ingress(&mut self, context: &mut OpContext) {
        self.install.send_step(context, SbAction::Install, false);
    }

    #[action]
    fn verify_non_ingress(&mut self, context: &mut OpContext) {
        self.install.send_step(context, SbAction::Verify, false);
    }

    #[action]
    fn install_ingress(&mut self, context: &mut OpContext) {
        self.install.send_step(context, SbAction::Install, true);
    }

    #[action]
    fn verify_ingress(&mut self, context: &mut OpContext) {
        self.install.send_step(context, SbAction::Verify, true);
    }

    #[state(entry_action = "mark_up")]
    fn up(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn mark_up(&mut self, context: &mut OpContext) {
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.status = FlowStatus::Up;
            r.status_info = None;
            r.target = None;
        });
        context.push(Action::Save(self.flow.clone()));
    }

    /// The flow keeps its resources (and whatever of its rules made it to the switches).
    #[state(entry_action = "mark_down")]
    fn down(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn mark_down(&mut self, context: &mut OpContext) {
        let reason = self.failure.clone();
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.status = FlowStatus::Down;
            r.status_info = Some(reason);
            r.target = None;
        });
        context.push(Action::Save(self.flow.clone()));
    }
}

impl FlowSync {
    fn after_transition(&mut self, source: &State, target: &State, context: &mut OpContext) {
        context.record_transition(source, target);
    }
}

impl State {
    pub fn is_finished(&self) -> bool {
        matches!(self, State::Up {} | State::Down {})
    }
}

#[cfg(test)]
mod tests;
