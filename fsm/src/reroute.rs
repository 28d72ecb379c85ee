//! Flow reroute and flow update, after OpenKilda's `FlowRerouteFsm`/`FlowUpdateFsm`:
//! make-before-break. Reserve a new path next to the old one → install the new non-ingress
//! rules → verify → swap the ingress rules → verify → remove the old rules → commit → UP.
//! Any failure before the swap is verified puts back the old ingress rules the swap replaced
//! (an install replaces the rule with the same match), removes what was sent of the new rules,
//! releases the new reservation and leaves the flow on its old path. Rules whose removal is
//! not confirmed are handed to the removal debt with the reservation they use.
//!
//! An endpoint swap runs one of these on each of its two flows (on their own hubs), with the
//! allocator deciding for both: each waits for the other before it swaps its ingress rules
//! (`AwaitingPartner`), and before it removes its old rules (`AwaitingCommit`). A failure of
//! either, before both swapped, takes both back.

use serde::{Deserialize, Serialize};
use statig::prelude::*;

use crate::install::{InstallStep, RuleInstall};
use crate::operation::{
    variant_name, Action, HistoryName, OpContext, OpEvent, PairSignal, PairVote, Removal, Timeouts,
};
use crate::segments::{flow_segments, FlowSegment};
use crate::{
    ErrorBody, FlowEndpoints, FlowRecord, FlowRequest, FlowStatus, NbResponse, Reallocation,
    Reservation, Resources, SbAction,
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
    /// `POST /v2/flows/swap-endpoint`: this flow's half of an endpoint swap.
    SwapEndpoints(EndpointSwap),
}

/// One flow's half of an endpoint swap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSwap {
    /// The flow with its new endpoints.
    pub request: FlowRequest,
    /// The other flow's new endpoints.
    pub partner: FlowEndpoints,
    /// The flow named first: it asks for both reservations and answers the request.
    pub first: bool,
}

impl EndpointSwap {
    /// The answer to the request: both flows' new endpoints, in the order they were named.
    fn answer(&self) -> NbResponse {
        let own = FlowEndpoints::of(&self.request);
        let (first_flow, second_flow) = if self.first {
            (own, self.partner.clone())
        } else {
            (self.partner.clone(), own)
        };
        NbResponse::EndpointsSwapped {
            first_flow,
            second_flow,
        }
    }
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
    /// An endpoint swap's halves may swap their ingress rules: either may have replaced
    /// this flow's old ones (they share endpoints).
    pair_go: bool,
    /// An endpoint swap is off for this flow: the allocator aborted it, or was told this
    /// flow failed. Nothing more to tell it.
    pair_over: bool,
    /// Why the endpoint swap failed, as the first flow answers it.
    pair_error: Option<ErrorBody>,
    /// The request is answered (an endpoint swap answers once, when it is decided).
    answered: bool,
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
            RerouteKind::SwapEndpoints(swap) => swap.request.clone(),
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
            pair_go: false,
            pair_over: false,
            pair_error: None,
            answered: false,
        }
    }

    /// "update" for Update, "reprotect" for Reprotect, "reroute" otherwise (the hub uses it as the history's operation name).
    pub fn operation_name(&self) -> &'static str {
        match self.kind {
            RerouteKind::Update(_) => "update",
            RerouteKind::Reprotect => "reprotect",
            RerouteKind::SwapEndpoints(_) => "swap_endpoints",
            _ => "reroute",
        }
    }

    pub fn is_endpoint_swap(&self) -> bool {
        self.pair().is_some()
    }

    /// The endpoint swap this flow is half of.
    fn pair(&self) -> Option<&EndpointSwap> {
        match &self.kind {
            RerouteKind::SwapEndpoints(swap) => Some(swap),
            _ => None,
        }
    }

    /// Answers the request (once).
    fn answer(&mut self, context: &mut OpContext, response: NbResponse) {
        if !self.answered {
            self.answered = true;
            context.push(Action::Respond(response));
        }
    }

    /// Tells the allocator this half of an endpoint swap failed, so the other half goes back
    /// too (unless the allocator already called the swap off).
    fn vote_failed(&mut self, context: &mut OpContext, reason: &str) {
        let error = ErrorBody::new(
            500,
            "swap-endpoints-failed",
            "Swap endpoints failed",
            format!("flow {}: {reason}", self.request.flow_id),
        );
        self.vote_off(context, error);
    }

    /// Votes the swap off with `error`, once; nothing for a flow that is not half of one.
    fn vote_off(&mut self, context: &mut OpContext, error: ErrorBody) {
        if self.pair().is_none() || self.pair_over {
            return;
        }
        self.pair_over = true;
        self.pair_error.get_or_insert(error.clone());
        context.push(Action::PairVote(PairVote::Failed(error)));
    }

    /// A half of an endpoint swap that waits for the allocator and times out says so, and
    /// waits on for its word: the swap may be committed already, and then this half must go
    /// through with it.
    fn pair_timed_out(&mut self, context: &mut OpContext) -> Outcome<State> {
        context.details = "timed out waiting for the other flow of the swap".into();
        let error = ErrorBody::new(
            504,
            "operation-timeout",
            "Swap endpoints timed out",
            format!(
                "flow {} waited too long for the other flow of the swap",
                self.request.flow_id
            ),
        );
        self.vote_off(context, error);
        context.push(Action::ArmDeadline {
            after_ms: self.timeouts.rollback_ms,
        });
        Handled
    }

    fn pair_aborted(&mut self, context: &mut OpContext, error: &ErrorBody) -> Outcome<State> {
        self.pair_over = true;
        self.pair_error = Some(error.clone());
        self.roll_back(context, error.error_description.clone())
    }

    /// What to ask the allocator for. A re-protection keeps the primary; otherwise what it
    /// may settle for: a DEGRADED flow the network retries wants better than it has, a flow
    /// the network broke or left DOWN takes what it can get.
    /// The second flow of an endpoint swap asks for nothing: the first one's request reserved
    /// for both.
    fn allocation_request(&self) -> Option<Action> {
        let kind = match &self.kind {
            RerouteKind::Reprotect => return Some(Action::Reprotect(self.request.clone())),
            RerouteKind::SwapEndpoints(swap) => {
                return swap.first.then(|| Action::ReserveEndpointSwap {
                    request: self.request.clone(),
                    partner: swap.partner.clone(),
                })
            }
            RerouteKind::Update(_) | RerouteKind::Manual => Reallocation::Requested,
            RerouteKind::Retry if self.status_before.0 == FlowStatus::Degraded => {
                Reallocation::Upgrade
            }
            RerouteKind::PathDown | RerouteKind::Retry => Reallocation::Repair,
        };
        Some(Action::Reallocate {
            request: self.request.clone(),
            kind,
        })
    }

    fn timed_out(&self) -> String {
        format!("flow {} timed out", self.operation_name())
    }

    fn roll_back(&mut self, context: &mut OpContext, reason: String) -> Outcome<State> {
        self.vote_failed(context, &reason);
        let replaced = self.install.sent_ingress_matches();
        // Once an endpoint swap's halves may swap ingress rules, the other flow's new ones may
        // have replaced this flow's old ones at the endpoints they share.
        let pair_go = self.pair_go;
        self.replaced_ingress = (0..self.old_segments.len())
            .filter(|&i| {
                let old = &self.old_segments[i];
                old.kind.is_ingress()
                    && (pair_go || replaced.contains(&(old.switch_id, old.rule_match())))
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

    fn error(&self, error: ErrorBody) -> NbResponse {
        NbResponse::Error { error }
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
                if let Some(request) = self.allocation_request() {
                    context.push(request);
                }
                Transition(State::validating())
            }
            _ => Handled,
        }
    }

    /// Waiting for the allocator's answer.
    #[state]
    fn validating(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            // The other half of an endpoint swap refused before this one heard of its
            // reservation: it is let go of as soon as it comes.
            OpEvent::Pair(PairSignal::Abort(error)) => {
                self.pair_over = true;
                self.pair_error = Some(error.clone());
                self.failure = error.error_description.clone();
                Handled
            }
            OpEvent::Allocated(resources) if self.pair_error.is_some() => {
                self.new_resources = Some(resources.clone());
                Transition(State::failed())
            }
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
                // An endpoint swap always installs: its partner counts on it.
                let pair = self.pair().is_some();
                if let Some(why) = stays.filter(|_| same_path && !pair) {
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
                if pair {
                    return Transition(install_state(true, self.install.first_step()));
                }
                let mut prospective = self.flow.clone();
                prospective.request = self.request.clone();
                prospective.resources = Some(resources.clone());
                prospective.target = None;
                self.answer(context, NbResponse::Flow { flow: prospective });
                Transition(State::installing_rules(self.install.first_step()))
            }
            OpEvent::AllocationFailed(error) => {
                context.details = error.error_message.clone();
                self.failure = error.error_description.clone();
                self.pair_over = true;
                self.answer(context, self.error(error.clone()));
                Transition(State::failed())
            }
            OpEvent::Timeout => {
                context.details = "timed out waiting for resource allocation".into();
                self.failure = self.timed_out();
                let message = format!("Flow {} timed out", self.operation_name());
                let error = self.error(ErrorBody::new(
                    504,
                    "operation-timeout",
                    message,
                    "resource allocation did not answer in time",
                ));
                self.answer(context, error);
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
        let done = match self.pair() {
            Some(_) => State::awaiting_commit(),
            None => self.after_swap(),
        };
        let waits = self.pair().is_some() && !self.pair_go;
        self.install
            .advance(*step, event, |step| install_state(waits, step), done)
    }

    /// Half of an endpoint swap with its new path installed and verified: it swaps its
    /// ingress rules only once the other half is as far (the allocator's `Go`).
    #[state(entry_action = "vote_ready")]
    fn awaiting_partner(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Pair(PairSignal::Go) => {
                self.pair_go = true;
                Transition(State::installing_rules(InstallStep::InstallIngress))
            }
            OpEvent::Pair(PairSignal::Abort(error)) => self.pair_aborted(context, error),
            OpEvent::Timeout => self.pair_timed_out(context),
            _ => Handled,
        }
    }

    #[action]
    fn vote_ready(&mut self, context: &mut OpContext) {
        context.push(Action::PairVote(PairVote::Ready));
    }

    /// Half of an endpoint swap with its new ingress rules in place: its old rules go only
    /// once the other half swapped too (the allocator's `Commit`).
    #[state(entry_action = "vote_swapped")]
    fn awaiting_commit(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Pair(PairSignal::Commit) => {
                if let Some(answer) = self.pair().filter(|s| s.first).map(EndpointSwap::answer) {
                    self.answer(context, answer);
                }
                Transition(self.after_swap())
            }
            OpEvent::Pair(PairSignal::Abort(error)) => self.pair_aborted(context, error),
            OpEvent::Timeout => self.pair_timed_out(context),
            _ => Handled,
        }
    }

    #[action]
    fn vote_swapped(&mut self, context: &mut OpContext) {
        context.push(Action::PairVote(PairVote::Swapped));
    }

    /// The new path is not proven yet: failures roll back to the old one from here.
    #[superstate]
    fn installing(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        if let OpEvent::Pair(PairSignal::Abort(error)) = event {
            return self.pair_aborted(context, error);
        }
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
        let failure = self.failure.clone();
        self.vote_failed(context, &failure);
        if let Some(swap) = self.pair().filter(|s| s.first) {
            let error = self.pair_error.clone().unwrap_or_else(|| {
                ErrorBody::new(
                    500,
                    "swap-endpoints-failed",
                    "Swap endpoints failed",
                    format!("flow {}: {failure}", swap.request.flow_id),
                )
            });
            let error = self.error(error);
            self.answer(context, error);
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
            (
                RerouteKind::Manual
                | RerouteKind::Update(_)
                | RerouteKind::Reprotect
                | RerouteKind::SwapEndpoints(_),
                None,
            ) if !self.old_segments.is_empty() => self.status_before.clone(),
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

/// The state carrying install `step`; the half of an endpoint swap that `waits` for the
/// other half goes to wait for it instead of swapping its ingress rules.
fn install_state(waits: bool, step: InstallStep) -> State {
    if waits && step == InstallStep::InstallIngress {
        State::awaiting_partner()
    } else {
        State::installing_rules(step)
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
