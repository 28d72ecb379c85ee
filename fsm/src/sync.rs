//! Flow sync, after OpenKilda's `FlowSyncFsm` and its switch validation: make the switches
//! hold exactly the flow's recorded rules. List the rules of every switch the flow's path (or
//! an interrupted reroute's or update's, `flow.target`) crosses → remove the stray ones
//! (carrying one of the flow's cookies where the record expects no rule; one where the record
//! expects a different rule is replaced by the install) → re-install the recorded rules
//! (non-ingress → verify → ingress → verify; installs are idempotent on the switches) → UP.
//! A flow without a reserved path, or whose rules cannot be installed, goes DOWN. Sync keeps
//! the flow's reservation; an interrupted move's is released. Strays whose removal is not
//! confirmed are handed to the removal debt.
//!
//! It serves `POST /v2/flows/{id}/sync` and recovery: a flow found IN_PROGRESS after a
//! restart is synced.

use std::collections::{BTreeSet, HashSet};

use statig::prelude::*;

use crate::install::{InstallStep, RuleInstall};
use crate::operation::{
    variant_name, Action, Completion, HistoryName, OpContext, OpEvent, Removal, Timeouts,
};
use crate::segments::{flow_segments, FlowSegment};
use crate::{FlowRecord, FlowStatus, NbResponse, SbAction, SwitchId};

/// Why a flow without resources cannot be synced.
const NO_PATH: &str = "no path is reserved for the flow";

pub struct FlowSync {
    flow: FlowRecord,
    timeouts: Timeouts,
    /// What to validate: each switch of the recorded rules and of the target's, with each of
    /// the flow's cookie ids.
    queries: Vec<FlowSegment>,
    /// The cookie ids a rule of this flow carries: the record's and the target's.
    cookie_ids: HashSet<u64>,
    /// The recorded rules, from `flow.resources`; empty when the flow has none.
    install: RuleInstall,
    expected: Vec<FlowSegment>,
    /// Rules the switches hold with the flow's cookies where the record expects no rule.
    strays: Vec<FlowSegment>,
    /// Rules the switches hold where the record expects a different one: the install
    /// replaces them (an install replaces the rule with the same match).
    differing: usize,
    failure: String,
    /// Switches that could not be listed, and why.
    listing_failures: Vec<String>,
    removal: Removal,
}

impl FlowSync {
    /// `flow` is the flow's stored record; `command_prefix` makes command ids unique.
    pub fn new(flow: FlowRecord, timeouts: Timeouts, command_prefix: String) -> Self {
        let target_segments = flow
            .target
            .as_ref()
            .map(|t| flow_segments(&t.request, &t.resources))
            .unwrap_or_default();
        let expected = flow
            .resources
            .as_ref()
            .map(|r| flow_segments(&flow.request, r))
            .unwrap_or_default();
        let switches: BTreeSet<SwitchId> = expected
            .iter()
            .chain(&target_segments)
            .map(|s| s.switch_id)
            .collect();
        let cookie_ids: BTreeSet<u64> = expected
            .iter()
            .chain(&target_segments)
            .map(FlowSegment::cookie_id)
            .collect();
        // Per flow cookie, so a switch answers with this flow's few rules, not its table.
        let queries = switches
            .iter()
            .flat_map(|&switch| {
                cookie_ids
                    .iter()
                    .map(move |&cookie_id| FlowSegment::dump_query(switch, cookie_id))
            })
            .collect();
        let mut install = RuleInstall::new(command_prefix);
        install.set_segments(expected.clone());
        FlowSync {
            flow,
            timeouts,
            queries,
            cookie_ids: cookie_ids.into_iter().collect(),
            install,
            expected,
            strays: Vec::new(),
            differing: 0,
            failure: String::new(),
            listing_failures: Vec::new(),
            removal: Removal::default(),
        }
    }

    /// A listed rule that is the flow's but not one the record expects: where the record
    /// expects another rule, the install will replace it; anywhere else it must go.
    fn note_strays(&mut self, rules: &[FlowSegment]) {
        let unexpected = rules.iter().filter(|rule| {
            self.cookie_ids.contains(&rule.cookie_id())
                && !self.expected.iter().any(|e| e.is_held_as(rule))
        });
        for rule in unexpected {
            let replaced = self.expected.iter().any(|expected| {
                expected.switch_id == rule.switch_id && expected.rule_match() == rule.rule_match()
            });
            if replaced {
                self.differing += 1;
            } else {
                self.strays.push(rule.clone());
            }
        }
    }

    /// After validation: remove the strays, or go on.
    fn after_listing(&mut self, context: &mut OpContext) -> State {
        if self.strays.is_empty() {
            self.after_strays(context)
        } else {
            State::removing_strays()
        }
    }

    /// No stray rule is left (or what is left is owed): an interrupted move's reservation
    /// goes back, and the recorded rules are installed (or the flow goes DOWN without any).
    fn after_strays(&mut self, context: &mut OpContext) -> State {
        if let Some(resources) = &self.flow.resources {
            self.removal.owe(context, &self.flow.request, resources);
        }
        if let Some(target) = &self.flow.target {
            self.removal
                .owe(context, &target.request, &target.resources);
        }
        if self.flow.target.is_some() {
            context.push(Action::Release);
        }
        self.install_or_down(context)
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
        } else {
            State::installing_rules(self.install.first_step())
        }
    }

    /// Abandons the install for `reason`: the partial rules stay, they belong to the flow.
    fn give_up(&mut self, context: &mut OpContext, reason: String) -> Outcome<State> {
        self.install.abandon(context, &reason);
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
                if self.queries.is_empty() {
                    Transition(self.install_or_down(context))
                } else {
                    Transition(State::listing_rules())
                }
            }
            _ => Handled,
        }
    }

    /// Switch validation: what do the switches hold? A switch that does not answer is not
    /// validated (noted in the history); the install still puts the flow's rules there.
    #[state(entry_action = "list_rules")]
    fn listing_rules(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        let done = match event {
            OpEvent::RulesListed { command_id, rules } => {
                let completion = self.install.commands.complete(command_id);
                if completion != Completion::NotPending {
                    self.note_strays(rules);
                }
                completion == Completion::StepDone
            }
            OpEvent::CommandFailed { command_id, reason } => {
                let completion = self.install.commands.complete(command_id);
                if completion != Completion::NotPending {
                    self.listing_failures
                        .push(format!("rule listing failed: {reason}"));
                }
                completion == Completion::StepDone
            }
            OpEvent::Timeout => {
                self.install.commands.abandon();
                context.push(Action::Abandon);
                self.listing_failures.push("rule listing timed out".into());
                true
            }
            _ => false,
        };
        if !done {
            return Handled;
        }
        let mut notes = std::mem::take(&mut self.listing_failures);
        if !self.strays.is_empty() {
            notes.push(format!("{} stray rule(s) found", self.strays.len()));
        }
        if self.differing > 0 {
            notes.push(format!("{} rule(s) differ from the record", self.differing));
        }
        context.details = notes.join("; ");
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.operation_ms,
        });
        Transition(self.after_listing(context))
    }

    #[action]
    fn list_rules(&mut self, context: &mut OpContext) {
        let all: Vec<usize> = (0..self.queries.len()).collect();
        self.install
            .commands
            .send(context, SbAction::Dump, &self.queries, &all);
    }

    /// The strays go, whatever the switches answer: a missing rule is fine, a failure is
    /// noted.
    #[state(entry_action = "remove_strays")]
    fn removing_strays(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        let strays = &self.strays;
        if !self.install.removal_done(
            context,
            event,
            strays,
            "stray rule removal",
            &mut self.removal,
        ) {
            return Handled;
        }
        // The removal ran under the rollback deadline (or used it up): the install gets the
        // operation's.
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.operation_ms,
        });
        Transition(self.after_strays(context))
    }

    #[action]
    fn remove_strays(&mut self, context: &mut OpContext) {
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.rollback_ms,
        });
        let all: Vec<usize> = (0..self.strays.len()).collect();
        self.install
            .commands
            .send(context, SbAction::Remove, &self.strays, &all);
    }

    /// The install sub-machine for the recorded rules, one state for its steps; the history
    /// names it by its step.
    #[state(superstate = "installing", entry_action = "send_install_step")]
    fn installing_rules(&mut self, step: &InstallStep, event: &OpEvent) -> Outcome<State> {
        self.install
            .advance(*step, event, State::installing_rules, State::up())
    }

    /// A failure leaves the flow DOWN on its recorded resources; nothing is rolled back.
    #[superstate]
    fn installing(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match self
            .install
            .step_failure(event, || "flow sync timed out".into())
        {
            Some(reason) => self.give_up(context, reason),
            None => Handled,
        }
    }

    #[action]
    fn send_install_step(&mut self, step: &InstallStep, context: &mut OpContext) {
        self.install.send_step(context, *step);
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
        matches!(self, State::Up {} | State::Down {})
    }
}

#[cfg(test)]
mod tests;
