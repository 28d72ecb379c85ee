//! What create, update, reroute and sync share: the install sub-machine, which installs a
//! flow's rules in two steps, non-ingress first (so traffic enters only once the rest of the
//! path is ready) then ingress, each one installed then verified; and, when a step fails,
//! removing what was sent.
//!
//! statig cannot share states between machines, so each machine has one state carrying the
//! current [`InstallStep`], and [`RuleInstall`] does the rest.

use std::collections::BTreeSet;

use statig::prelude::Outcome;

use crate::dataplane::RuleMatch;
use crate::operation::{Action, CommandBatch, Completion, OpContext, OpEvent, Removal};
use crate::segments::FlowSegment;
use crate::{SbAction, SwitchId};

/// A step of the install sub-machine, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallStep {
    InstallNonIngress,
    VerifyNonIngress,
    InstallIngress,
    VerifyIngress,
}

impl InstallStep {
    /// What the step asks the switches to do.
    fn action(self) -> SbAction {
        match self {
            InstallStep::InstallNonIngress | InstallStep::InstallIngress => SbAction::Install,
            InstallStep::VerifyNonIngress | InstallStep::VerifyIngress => SbAction::Verify,
        }
    }

    /// Whether the step is for the ingress rules (else for all the others).
    fn is_ingress(self) -> bool {
        matches!(
            self,
            InstallStep::InstallIngress | InstallStep::VerifyIngress
        )
    }

    /// The step after this one; `None` after the last.
    fn next(self) -> Option<InstallStep> {
        match self {
            InstallStep::InstallNonIngress => Some(InstallStep::VerifyNonIngress),
            InstallStep::VerifyNonIngress => Some(InstallStep::InstallIngress),
            InstallStep::InstallIngress => Some(InstallStep::VerifyIngress),
            InstallStep::VerifyIngress => None,
        }
    }

    /// The step's name in the flow history: the name of the state it was when each step was
    /// a state of its own, which stored histories and the replay goldens hold.
    pub fn history_name(self) -> &'static str {
        match self {
            InstallStep::InstallNonIngress => "InstallingNonIngress",
            InstallStep::VerifyNonIngress => "VerifyingNonIngress",
            InstallStep::InstallIngress => "InstallingIngress",
            InstallStep::VerifyIngress => "VerifyingIngress",
        }
    }
}

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

    /// Where the sub-machine starts: a one-switch flow starts with the ingress install.
    pub fn first_step(&self) -> InstallStep {
        if self.has_non_ingress() {
            InstallStep::InstallNonIngress
        } else {
            InstallStep::InstallIngress
        }
    }

    /// A one-switch flow has only ingress rules.
    fn has_non_ingress(&self) -> bool {
        !self.indices(false).is_empty()
    }

    fn indices(&self, ingress: bool) -> Vec<usize> {
        (0..self.segments.len())
            .filter(|&i| self.segments[i].kind.is_ingress() == ingress)
            .collect()
    }

    /// Sends what `step` sends, as the new step: the entry action of the state carrying it.
    pub fn send_step(&mut self, context: &mut OpContext, step: InstallStep) {
        let indices = self.indices(step.is_ingress());
        if step.action() == SbAction::Install {
            self.sent.extend(&indices);
        }
        self.commands
            .send(context, step.action(), &self.segments, &indices);
    }

    /// When the event completes `step`, moves to the state carrying the next step
    /// (`step_state`), or to `done` after the last one; leaves events that are not command
    /// successes to the superstate.
    pub fn advance<S>(
        &mut self,
        step: InstallStep,
        event: &OpEvent,
        step_state: impl FnOnce(InstallStep) -> S,
        done: S,
    ) -> Outcome<S> {
        match event {
            OpEvent::CommandSucceeded { command_id } => match self.commands.complete(command_id) {
                Completion::StepDone => Outcome::Transition(step.next().map_or(done, step_state)),
                Completion::Remaining | Completion::NotPending => Outcome::Handled,
            },
            _ => Outcome::Super,
        }
    }

    /// Why `event` fails the current step, if it does: a failed command of the step (not a
    /// late one, of a step done or abandoned), or the deadline, explained by `timed_out`.
    pub fn step_failure(
        &self,
        event: &OpEvent,
        timed_out: impl FnOnce() -> String,
    ) -> Option<String> {
        match event {
            OpEvent::CommandFailed { command_id, reason }
                if self.commands.is_pending(command_id) =>
            {
                Some(reason.clone())
            }
            OpEvent::Timeout => Some(timed_out()),
            _ => None,
        }
    }

    /// Where an ingress rule was sent to: an install replaces the rule at its match (as
    /// OpenFlow's add does), so whatever rule was there before may be gone.
    pub fn sent_ingress_matches(&self) -> BTreeSet<(SwitchId, RuleMatch)> {
        self.sent
            .iter()
            .map(|&i| &self.segments[i])
            .filter(|segment| segment.kind.is_ingress())
            .map(|segment| (segment.switch_id, segment.rule_match()))
            .collect()
    }

    /// Abandons the current step for `reason`, which the history notes: the answers of its
    /// commands no longer matter.
    pub fn abandon(&mut self, context: &mut OpContext, reason: &str) {
        context.details = reason.to_string();
        self.commands.abandon();
        context.push(Action::Abandon);
    }

    /// Abandons the current step for `reason`, then rolls back: to `rolling_back` if some rule
    /// may be on a switch, else straight to `nothing_sent`.
    pub fn roll_back<S>(
        &mut self,
        context: &mut OpContext,
        reason: &str,
        rolling_back: S,
        nothing_sent: S,
    ) -> Outcome<S> {
        self.abandon(context, reason);
        if self.sent.is_empty() {
            Outcome::Transition(nothing_sent)
        } else {
            Outcome::Transition(rolling_back)
        }
    }

    /// For a step that removes `segments` and goes on whatever the switches answer: true once
    /// it is over (its last command answered, or the deadline passed, which abandons the
    /// rest). What it could not confirm is noted in `removal`, and in the history details, the
    /// rules named by `what`.
    pub fn removal_done(
        &mut self,
        context: &mut OpContext,
        event: &OpEvent,
        segments: &[FlowSegment],
        what: &str,
        removal: &mut Removal,
    ) -> bool {
        removal_step_done(&mut self.commands, context, event, segments, what, removal)
    }

    /// [`removal_done`](Self::removal_done) for the removal of the rules an install was sent
    /// for ([`remove_sent`](Self::remove_sent)).
    pub fn rollback_done(
        &mut self,
        context: &mut OpContext,
        event: &OpEvent,
        what: &str,
        removal: &mut Removal,
    ) -> bool {
        removal_step_done(
            &mut self.commands,
            context,
            event,
            &self.segments,
            what,
            removal,
        )
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

fn removal_step_done(
    commands: &mut CommandBatch,
    context: &mut OpContext,
    event: &OpEvent,
    segments: &[FlowSegment],
    what: &str,
    removal: &mut Removal,
) -> bool {
    if !commands.removal_progress(event, segments, removal) {
        return false;
    }
    if let OpEvent::Timeout = event {
        context.push(Action::Abandon);
    }
    context.details = removal.details(what);
    true
}

#[cfg(test)]
mod tests;
