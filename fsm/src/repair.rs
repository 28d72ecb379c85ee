//! Flow repair: the switch keeper found a flow's rules missing or different on one switch;
//! install the flow's recorded rules there again (an install replaces a differing rule with
//! the same match), then verify them. The flow's status does not change: a repair only puts
//! back what the record already says. A failure is noted in the history; the next sweep of
//! the switch tries again.
//!
//! Only the flow's hub installs a flow's rules, one operation at a time, so a repair never
//! races a create, an update or a delete of the same flow.

use statig::prelude::*;

use crate::operation::{variant_name, Action, CommandBatch, Completion, HistoryName, OpContext};
use crate::operation::{OpEvent, Timeouts};
use crate::segments::{flow_segments, FlowSegment};
use crate::{FlowRecord, SbAction, SwitchId};

pub struct FlowRepair {
    timeouts: Timeouts,
    /// The record's rules on the switch.
    rules: Vec<FlowSegment>,
    commands: CommandBatch,
    switch_id: SwitchId,
}

impl FlowRepair {
    /// Repairs `flow`'s rules on `switch_id`; `command_prefix` makes command ids unique.
    pub fn new(
        flow: &FlowRecord,
        switch_id: SwitchId,
        timeouts: Timeouts,
        command_prefix: String,
    ) -> Self {
        let rules = flow
            .resources
            .as_ref()
            .map(|r| flow_segments(&flow.request, r))
            .unwrap_or_default()
            .into_iter()
            .filter(|rule| rule.switch_id == switch_id)
            .collect();
        FlowRepair {
            timeouts,
            rules,
            commands: CommandBatch::new(command_prefix),
            switch_id,
        }
    }

    fn send(&mut self, context: &mut OpContext, action: SbAction) {
        let all: Vec<usize> = (0..self.rules.len()).collect();
        self.commands.send(context, action, &self.rules, &all);
    }

    /// Moves to `next` once the step's commands all succeeded; a failed command or the
    /// deadline ends the repair.
    fn step(&mut self, context: &mut OpContext, event: &OpEvent, next: State) -> Outcome<State> {
        match event {
            OpEvent::CommandSucceeded { command_id } => match self.commands.complete(command_id) {
                Completion::StepDone => Transition(next),
                Completion::Remaining | Completion::NotPending => Handled,
            },
            OpEvent::CommandFailed { command_id, reason }
                if self.commands.is_pending(command_id) =>
            {
                self.give_up(context, reason.clone())
            }
            OpEvent::Timeout => self.give_up(context, "flow repair timed out".into()),
            _ => Handled,
        }
    }

    fn give_up(&mut self, context: &mut OpContext, reason: String) -> Outcome<State> {
        self.commands.abandon();
        context.push(Action::Abandon);
        context.details = format!("switch {}: {reason}", self.switch_id);
        Transition(State::failed())
    }
}

#[state_machine(
    initial = "State::received()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    after_transition = "Self::after_transition"
)]
impl FlowRepair {
    #[state]
    fn received(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Start if self.rules.is_empty() => {
                context.details = format!("no rule of the flow on switch {}", self.switch_id);
                Transition(State::repaired())
            }
            OpEvent::Start => {
                context.push(Action::ArmDeadline {
                    after_ms: self.timeouts.operation_ms,
                });
                Transition(State::installing())
            }
            _ => Handled,
        }
    }

    #[state(entry_action = "install")]
    fn installing(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        self.step(context, event, State::verifying())
    }

    #[action]
    fn install(&mut self, context: &mut OpContext) {
        self.send(context, SbAction::Install);
    }

    #[state(entry_action = "verify")]
    fn verifying(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        self.step(context, event, State::repaired())
    }

    #[action]
    fn verify(&mut self, context: &mut OpContext) {
        self.send(context, SbAction::Verify);
    }

    #[state]
    fn repaired(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[state]
    fn failed(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }
}

impl FlowRepair {
    fn after_transition(&mut self, source: &State, target: &State, context: &mut OpContext) {
        if matches!(target, State::Repaired {}) && context.details.is_empty() {
            context.details = format!(
                "{} rule(s) installed again on switch {}",
                self.rules.len(),
                self.switch_id
            );
        }
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
        matches!(self, State::Repaired {} | State::Failed {})
    }
}

#[cfg(test)]
mod tests {
    use statig::blocking::IntoStateMachineExt;

    use super::*;
    use crate::test_support::{self, record, resources, sends};
    use crate::FlowStatus;

    type Harness = test_support::Harness<FlowRepair>;

    fn harness(switch: u64) -> Harness {
        let mut flow = record(3);
        flow.status = FlowStatus::Up;
        flow.resources = Some(resources(3));
        let machine = FlowRepair::new(&flow, SwitchId(switch), Timeouts::default(), "f1:9".into());
        Harness::new(machine.state_machine(), 900)
    }

    #[test]
    fn the_records_rules_on_the_switch_are_installed_then_verified_and_nothing_else_changes() {
        let mut h = harness(2);
        let installs = h.handle(OpEvent::Start);
        assert_eq!(h.state(), State::installing());
        let sent = sends(&installs);
        assert_eq!(sent.len(), 2, "switch 2's transit rule, each way");
        assert!(sent.iter().all(|(_, a)| *a == SbAction::Install));
        let verifies = h.succeed_all(&installs);
        assert!(sends(&verifies).iter().all(|(_, a)| *a == SbAction::Verify));
        let done = h.succeed_all(&verifies);
        assert_eq!(h.state(), State::repaired());
        assert!(
            !done.iter().any(|a| matches!(a, Action::Save(_))),
            "the record does not change"
        );
    }

    #[test]
    fn a_failure_ends_the_repair_and_says_why() {
        let mut h = harness(1);
        let installs = h.handle(OpEvent::Start);
        let failed = h.handle(OpEvent::CommandFailed {
            command_id: sends(&installs)[0].0.clone(),
            reason: "TABLE_FULL".into(),
        });
        assert_eq!(h.state(), State::failed());
        assert!(failed.contains(&Action::Abandon));
        let mut h = harness(1);
        h.handle(OpEvent::Start);
        h.handle(OpEvent::Timeout);
        assert_eq!(h.state(), State::failed());
    }
}
