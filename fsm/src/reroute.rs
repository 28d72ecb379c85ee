//! Flow reroute and flow update, after OpenKilda's `FlowRerouteFsm`/`FlowUpdateFsm`:
//! make-before-break. Reserve a new path next to the old one → install the new non-ingress
//! rules → verify → swap the ingress rules → verify → remove the old rules → commit → UP.
//! Any failure before the swap is verified puts back the old ingress rules the swap replaced
//! (an install replaces the rule with the same match), removes what was sent of the new rules,
//! releases the new reservation and leaves the flow on its old path. Rules whose removal is
//! not confirmed are handed to the removal debt with the reservation they use.

use serde::{Deserialize, Serialize};
use statig::prelude::*;

use crate::install::{InstallStep, RuleInstall};
use crate::operation::{variant_name, Action, HistoryName, OpContext, OpEvent, Removal, Timeouts};
use crate::segments::{flow_segments, FlowSegment};
use crate::{
    ErrorBody, FlowRecord, FlowRequest, FlowStatus, NbResponse, Reallocation, Reservation,
    Resources, SbAction,
};

/// Why a flow is moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RerouteKind {
    /// `PUT /v2/flows/{id}`: the flow moves to this request (bandwidth, endpoints or VLANs).
    Update(FlowRequest),
    /// `POST /v2/flows/{id}/reroute`.
    Manual,
    /// Its installed path uses a link that went down.
    PathDown,
    /// It is DOWN and the network got better (a link came up).
    Retry,
    /// Its protected path is broken or missing (after a swap, or none was found): a new one
    /// beside the primary, which stays while it can carry the flow.
    Reprotect,
}

pub struct FlowReroute {
    /// The stored record: old request and resources until the commit.
    flow: FlowRecord,
    kind: RerouteKind,
    /// What the flow becomes: the update's request, or the current one.
    request: FlowRequest,
    timeouts: Timeouts,
    /// What a failed Manual or Update goes back to.
    status_before: (FlowStatus, Option<String>),
    /// The installed rules, from `flow.resources`; empty when the flow has none.
    old_segments: Vec<FlowSegment>,
    /// The new reservation, held from `Allocated` until it is committed or released.
    new_resources: Option<Resources>,
    /// The new path's rules.
    install: RuleInstall,
    failure: String,
    removal: Removal,
    /// Old ingress rules the swap replaced, to be installed again by a rollback (indices into
    /// `old_segments`).
    replaced_ingress: Vec<usize>,
    /// Why putting back the replaced old ingress rules failed: the old path has no way in.
    restore_failure: Option<String>,
}

impl FlowReroute {
    /// `flow` is the flow's current record; `command_prefix` makes command ids unique.
    pub fn new(
        flow: FlowRecord,
        kind: RerouteKind,
        timeouts: Timeouts,
        command_prefix: String,
    ) -> Self {
        let request = match &kind {
            RerouteKind::Update(request) => request.clone(),
            _ => flow.request.clone(),
        };
        let old_segments = flow
            .resources
            .as_ref()
            .map(|r| flow_segments(&flow.request, r))
            .unwrap_or_default();
        FlowReroute {
            status_before: (flow.status, flow.status_info.clone()),
            flow,
            kind,
            request,
            timeouts,
            old_segments,
            new_resources: None,
            install: RuleInstall::new(command_prefix),
            failure: String::new(),
            removal: Removal::default(),
            replaced_ingress: Vec::new(),
            restore_failure: None,
        }
    }

    /// "update" for Update, "reprotect" for Reprotect, "reroute" otherwise (the hub uses it as the history's operation name).
    pub fn operation_name(&self) -> &'static str {
        match self.kind {
            RerouteKind::Update(_) => "update",
            RerouteKind::Reprotect => "reprotect",
            _ => "reroute",
        }
    }

    /// What to ask the allocator for. A re-protection keeps the primary; otherwise what it
    /// may settle for: a DEGRADED flow the network retries wants better than it has, a flow
    /// the network broke or left DOWN takes what it can get.
    fn allocation_request(&self) -> Action {
        let kind = match self.kind {
            RerouteKind::Reprotect => return Action::Reprotect(self.request.clone()),
            RerouteKind::Update(_) | RerouteKind::Manual => Reallocation::Requested,
            RerouteKind::Retry if self.status_before.0 == FlowStatus::Degraded => {
                Reallocation::Upgrade
            }
            RerouteKind::PathDown | RerouteKind::Retry => Reallocation::Repair,
        };
        Action::Reallocate {
            request: self.request.clone(),
            kind,
        }
    }

    fn timed_out(&self) -> String {
        format!("flow {} timed out", self.operation_name())
    }

    fn roll_back(&mut self, context: &mut OpContext, reason: String) -> Outcome<State> {
        let replaced = self.install.sent_ingress_matches();
        self.replaced_ingress = (0..self.old_segments.len())
            .filter(|&i| {
                let old = &self.old_segments[i];
                old.kind.is_ingress() && replaced.contains(&(old.switch_id, old.rule_match()))
            })
            .collect();
        let rolling_back = if self.replaced_ingress.is_empty() {
            State::rolling_back()
        } else {
            State::restoring_old_ingress()
        };
        let outcome = self
            .install
            .roll_back(context, &reason, rolling_back, State::failed());
        self.failure = reason;
        outcome
    }

    fn after_swap(&self) -> State {
        if self.old_segments.is_empty() {
            State::up()
        } else {
            State::removing_old_rules()
        }
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
impl FlowReroute {
    #[state]
    fn received(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Start => {
                self.flow = context.begin(&self.flow, self.timeouts.operation_ms);
                context.push(self.allocation_request());
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
                self.new_resources = Some(resources.clone());
                // A re-protection that found no new protected path keeps the flow as it is.
                let keeps_protected =
                    resources.protected.is_none() && self.kind == RerouteKind::Reprotect;
                // A reservation on the same path that reserves more, or falls short in
                // another way, is still a move: its rules are installed anew.
                let same_path = self.flow.resources.as_ref().is_some_and(|old| {
                    old.forward_path == resources.forward_path
                        && old.without_bandwidth == resources.without_bandwidth
                        && old.degraded == resources.degraded
                        && (keeps_protected
                            || old.protected.as_ref().map(|p| &p.forward_path)
                                == resources.protected.as_ref().map(|p| &p.forward_path))
                });
                let stays = match self.kind {
                    RerouteKind::Update(_)
                        if !self.request.same_path_and_rules(&self.flow.request) =>
                    {
                        None
                    }
                    RerouteKind::Update(_) => Some("the path and rules stay as they are"),
                    RerouteKind::Reprotect if keeps_protected => {
                        Some("no other protected path: the flow stays as it is")
                    }
                    _ => Some("already on the best path"),
                };
                if let Some(why) = stays.filter(|_| same_path) {
                    context.details = why.into();
                    return Transition(State::unchanged());
                }
                self.install
                    .set_segments(flow_segments(&self.request, resources));
                // Saved before any new rule is sent: a restart must know what to remove.
                let target = Reservation {
                    request: self.request.clone(),
                    resources: resources.clone(),
                };
                self.flow = self.flow.changed(context.now_ms, |r| {
                    r.target = Some(Box::new(target));
                });
                context.push(Action::Save(self.flow.clone()));
                let mut prospective = self.flow.clone();
                prospective.request = self.request.clone();
                prospective.resources = Some(resources.clone());
                prospective.target = None;
                context.push(Action::Respond(NbResponse::Flow { flow: prospective }));
                Transition(State::installing_rules(self.install.first_step()))
            }
            OpEvent::AllocationFailed(error) => {
                context.details = error.error_message.clone();
                self.failure = error.error_description.clone();
                context.push(self.error(error.clone()));
                Transition(State::failed())
            }
            OpEvent::Timeout => {
                context.details = "timed out waiting for resource allocation".into();
                self.failure = self.timed_out();
                let message = format!("Flow {} timed out", self.operation_name());
                context.push(self.error(ErrorBody::new(
                    504,
                    "operation-timeout",
                    message,
                    "resource allocation did not answer in time",
                )));
                Transition(State::releasing_allocation())
            }
            _ => Handled,
        }
    }

    /// The request was already answered with a timeout; whatever the allocator reserved goes back.
    #[state]
    fn releasing_allocation(&mut self, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Allocated(resources) => {
                self.new_resources = Some(resources.clone());
                Transition(State::failed())
            }
            OpEvent::AllocationFailed(_) => Transition(State::failed()),
            _ => Handled,
        }
    }

    /// The install sub-machine on the new path, one state for its steps; the history names it
    /// by its step. The ingress install is the swap: the new ingress rules take the flow's
    /// traffic over to the new path.
    #[state(superstate = "installing", entry_action = "send_install_step")]
    fn installing_rules(&mut self, step: &InstallStep, event: &OpEvent) -> Outcome<State> {
        let after_swap = self.after_swap();
        self.install
            .advance(*step, event, State::installing_rules, after_swap)
    }

    /// The new path is not proven yet: failures roll back to the old one from here.
    #[superstate]
    fn installing(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match self.install.step_failure(event, || self.timed_out()) {
            Some(reason) => self.roll_back(context, reason),
            None => Handled,
        }
    }

    #[action]
    fn send_install_step(&mut self, step: &InstallStep, context: &mut OpContext) {
        self.install.send_step(context, *step);
    }

    /// The swap replaced old ingress rules: they go back first, so the old path has its way
    /// in again before the new rules go.
    #[state(entry_action = "reinstall_old_ingress")]
    fn restoring_old_ingress(
        &mut self,
        context: &mut OpContext,
        event: &OpEvent,
    ) -> Outcome<State> {
        let timed_out = || "putting back the old ingress rules timed out".into();
        match self.install.commands.step_outcome(event, timed_out) {
            None => Handled,
            Some(Ok(())) => Transition(State::rolling_back()),
            Some(Err(failure)) => {
                self.install.abandon(context, &failure);
                self.restore_failure = Some(failure);
                Transition(State::rolling_back())
            }
        }
    }

    #[action]
    fn reinstall_old_ingress(&mut self, context: &mut OpContext) {
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.rollback_ms,
        });
        self.install.commands.send(
            context,
            SbAction::Install,
            &self.old_segments,
            &self.replaced_ingress,
        );
    }

    #[state(entry_action = "remove_sent_rules")]
    fn rolling_back(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        if self
            .install
            .rollback_done(context, event, "new rule removal", &mut self.removal)
        {
            Transition(State::failed())
        } else {
            Handled
        }
    }

    #[action]
    fn remove_sent_rules(&mut self, context: &mut OpContext) {
        self.install.remove_sent(context, self.timeouts.rollback_ms);
    }

    /// The new path carries the traffic; the old rules go, and a switch that fails to remove
    /// one does not undo the move (switch validation cleans up later).
    #[state(entry_action = "remove_old_rules")]
    fn removing_old_rules(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        let old = &self.old_segments;
        if self
            .install
            .removal_done(context, event, old, "old rule removal", &mut self.removal)
        {
            Transition(State::up())
        } else {
            Handled
        }
    }

    #[action]
    fn remove_old_rules(&mut self, context: &mut OpContext) {
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.rollback_ms,
        });
        let all: Vec<usize> = (0..self.old_segments.len()).collect();
        self.install
            .commands
            .send(context, SbAction::Remove, &self.old_segments, &all);
    }

    #[state(entry_action = "commit")]
    fn up(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn commit(&mut self, context: &mut OpContext) {
        if let Some(old) = &self.flow.resources {
            self.removal.owe(context, &self.flow.request, old);
        }
        context.push(Action::Commit);
        let (request, resources) = (self.request.clone(), self.new_resources.clone());
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.request = request;
            r.resources = resources;
            r.target = None;
            r.mark_in_place();
        });
        context.push(Action::Save(self.flow.clone()));
    }

    /// The flow already is on the best path, its rules in place: nothing to move.
    #[state(entry_action = "keep_path")]
    fn unchanged(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn keep_path(&mut self, context: &mut OpContext) {
        context.push(Action::Release);
        let request = self.request.clone();
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.request = request;
            r.mark_in_place();
        });
        context.push(Action::Save(self.flow.clone()));
        context.push(Action::Respond(NbResponse::Flow {
            flow: self.flow.clone(),
        }));
    }

    /// The flow stays on its old request and resources.
    #[state(entry_action = "restore")]
    fn failed(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn restore(&mut self, context: &mut OpContext) {
        if let Some(resources) = &self.new_resources {
            self.removal.owe(context, &self.request, resources);
            context.push(Action::Release);
        }
        // A path-down or retry flow has no usable path; neither has one that never had rules,
        // nor one whose old ingress rules could not be put back.
        let (status, info) = match (&self.kind, &self.restore_failure) {
            (_, Some(failure)) => (
                FlowStatus::Down,
                Some(format!(
                    "{}; the old ingress rules could not be put back: {failure}",
                    self.failure
                )),
            ),
            (RerouteKind::Manual | RerouteKind::Update(_) | RerouteKind::Reprotect, None)
                if !self.old_segments.is_empty() =>
            {
                self.status_before.clone()
            }
            // A DEGRADED flow found nothing better: it stays on its whole path.
            (RerouteKind::Retry, None) if self.status_before.0 == FlowStatus::Degraded => {
                self.status_before.clone()
            }
            _ => (FlowStatus::Down, Some(self.failure.clone())),
        };
        self.flow = self.flow.changed(context.now_ms, |r| {
            r.status = status;
            r.status_info = info;
            r.target = None;
        });
        context.push(Action::Save(self.flow.clone()));
    }
}

impl FlowReroute {
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
        matches!(self, State::Up {} | State::Unchanged {} | State::Failed {})
    }
}

#[cfg(test)]
mod tests;
