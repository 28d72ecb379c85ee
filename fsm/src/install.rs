//! What create, update and reroute share: installing a flow's rules in two steps, non-ingress
//! first (so traffic enters only once the rest of the path is ready) then ingress, each one
//! installed then verified; and, when a step fails, removing what was sent.

use std::collections::BTreeSet;

use statig::prelude::Outcome;

use crate::operation::{Action, CommandBatch, Completion, OpContext, OpEvent};
use crate::segments::FlowSegment;
use crate::SbAction;

#[derive(Debug)]
pub struct RuleInstall {
    segments: Vec<FlowSegment>,
    /// Segments an install was sent for: the ones a rollback must remove.
    sent: BTreeSet<usize>,
    /// Every command of the operation, so ids stay unique across its steps.
    pub commands: CommandBatch,
}

impl RuleInstall {
    pub fn new(command_prefix: String) -> Self {
        RuleInstall {
            segments: Vec::new(),
            sent: BTreeSet::new(),
            commands: CommandBatch::new(command_prefix),
        }
    }

    pub fn set_segments(&mut self, segments: Vec<FlowSegment>) {
        self.segments = segments;
    }

    /// A one-switch flow has only ingress rules: it starts with the ingress step.
    pub fn has_non_ingress(&self) -> bool {
        !self.indices(false).is_empty()
    }

    fn indices(&self, ingress: bool) -> Vec<usize> {
        (0..self.segments.len())
            .filter(|&i| self.segments[i].kind.is_ingress() == ingress)
            .collect()
    }

    /// Sends `action` for the ingress or the non-ingress rules, as the new step.
    pub fn send_step(&mut self, context: &mut OpContext, action: SbAction, ingress: bool) {
        let indices = self.indices(ingress);
        if action == SbAction::Install {
            self.sent.extend(&indices);
        }
        self.commands
            .send(context, action, &self.segments, &indices);
    }

    /// Moves to `next` when the event completes the current step; leaves other events to the
    /// superstate.
    pub fn advance<S>(&mut self, event: &OpEvent, next: S) -> Outcome<S> {
        match event {
            OpEvent::CommandSucceeded { command_id } => match self.commands.complete(command_id) {
                Completion::StepDone => Outcome::Transition(next),
                Completion::Remaining | Completion::NotPending => Outcome::Handled,
            },
            _ => Outcome::Super,
        }
    }

    /// Whether a failed command belongs to the current step (not a late one).
    pub fn is_pending(&self, command_id: &str) -> bool {
        self.commands.is_pending(command_id)
    }

    /// Abandons the current step for `reason`: to `rolling_back` if some rule may be on a
    /// switch, else straight to `nothing_sent`.
    pub fn roll_back<S>(
        &mut self,
        context: &mut OpContext,
        reason: &str,
        rolling_back: S,
        nothing_sent: S,
    ) -> Outcome<S> {
        context.details = reason.to_string();
        self.commands.abandon();
        context.push(Action::Abandon);
        if self.sent.is_empty() {
            Outcome::Transition(nothing_sent)
        } else {
            Outcome::Transition(rolling_back)
        }
    }

    /// For a step that removes rules and goes on whatever the switches answer: true once it
    /// is over (its last command answered, or the deadline passed). A failed removal is
    /// noted in `failures` and, with a timeout, in the history details, named by `what`.
    pub fn removal_done(
        &mut self,
        context: &mut OpContext,
        event: &OpEvent,
        what: &str,
        failures: &mut Vec<String>,
    ) -> bool {
        let mut notes = Vec::new();
        if let OpEvent::Timeout = event {
            self.commands.abandon();
            context.push(Action::Abandon);
            notes.push(format!("{what} timed out"));
        } else if self.commands.complete_despite_failures(event, failures)
            != Some(Completion::StepDone)
        {
            return false;
        }
        notes.extend(
            failures
                .iter()
                .map(|failure| format!("{what} failed: {failure}")),
        );
        context.details = notes.join("; ");
        true
    }

    /// Removes every rule an install was sent for, under the rollback deadline.
    pub fn remove_sent(&mut self, context: &mut OpContext, rollback_ms: u64) {
        context.push(Action::ArmDeadline {
            after_ms: rollback_ms,
        });
        let sent: Vec<usize> = self.sent.iter().copied().collect();
        self.commands
            .send(context, SbAction::Remove, &self.segments, &sent);
    }
}
