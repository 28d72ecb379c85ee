use statig::blocking::IntoStateMachineExt;

use super::*;
use crate::network::Network;
use crate::segments::{FORWARD_COOKIE_FLAG, REVERSE_COOKIE_FLAG};
use crate::test_support::{
    self, owed, owed_before, record, request, resources, sends, step_failure,
};
use crate::{FlowRequest, Reallocation, SwitchId};

type Harness = test_support::Harness<FlowReroute>;

impl Harness {
    fn reroute(flow: FlowRecord, kind: RerouteKind) -> Self {
        let machine =
            FlowReroute::new(flow, kind, Timeouts::default(), "f1:2".into()).state_machine();
        Harness::new(machine, 200)
    }

    /// A manual reroute of an UP flow on 1 → 2 → 3.
    fn manual() -> Self {
        Harness::reroute(up_flow(), RerouteKind::Manual)
    }

    fn succeed(&mut self, commands: &[(String, SbAction)]) -> Vec<Action> {
        let mut last = Vec::new();
        for (command_id, _) in commands {
            last = self.handle(OpEvent::CommandSucceeded {
                command_id: command_id.clone(),
            });
        }
        last
    }

    /// Starts and answers the allocation with `new`: the actions of the allocation.
    fn allocate(&mut self, new: Resources) -> Vec<Action> {
        self.handle(OpEvent::Start);
        self.handle(OpEvent::Allocated(new))
    }

    /// Drives a move to the detour up to (and into) `stop`, returning the actions that entered it.
    fn drive_to(&mut self, stop: State) -> Vec<Action> {
        let mut actions = self.allocate(detour());
        while self.state() != stop {
            actions = self.succeed_all(&actions);
        }
        actions
    }

    /// Answers every command until the machine finishes; every step's Sends, then the last
    /// answer's actions.
    fn finish(
        &mut self,
        mut actions: Vec<Action>,
    ) -> (Vec<Vec<(SbAction, FlowSegment)>>, Vec<Action>) {
        let mut steps = Vec::new();
        while !self.state().is_finished() {
            steps.push(sent(&actions));
            actions = self.succeed_all(&actions);
        }
        (steps, actions)
    }
}

/// Flow "f1" UP on 1 → 2 → 3 of `linear:3`, cookie 1.
fn up_flow() -> FlowRecord {
    let mut flow = record(3);
    flow.status = FlowStatus::Up;
    flow.resources = Some(resources(3));
    flow
}

/// The new reservation: cookie 2 on 1 → 4 → 3 of a `ring:4`, around switch 2.
fn detour() -> Resources {
    let network = Network::generate("ring:4").unwrap().unwrap();
    let avoid = SwitchId(2);
    let path = network
        .shortest_path(SwitchId(1), SwitchId(3), 0, |isl| {
            (isl.src_switch != avoid && isl.dst_switch != avoid).then_some(u64::MAX)
        })
        .unwrap();
    Resources {
        cookie: 2,
        transit_vlans: vec![3; path.len()],
        forward_meter: Some(33),
        reverse_meter: Some(33),
        forward_path: path,
        ..Default::default()
    }
}

/// A new reservation on the flow's current path.
fn same_path() -> Resources {
    Resources {
        cookie: 2,
        ..resources(3)
    }
}

/// Every action of a successful manual reroute to the detour.
fn whole_manual_reroute() -> Vec<Action> {
    let mut h = Harness::manual();
    let mut all = h.handle(OpEvent::Start);
    let mut actions = h.handle(OpEvent::Allocated(detour()));
    while !h.state().is_finished() {
        all.extend(actions.clone());
        actions = h.succeed_all(&actions);
    }
    all.extend(actions);
    all
}

fn sent(actions: &[Action]) -> Vec<(SbAction, FlowSegment)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                action, segment, ..
            } => Some((*action, segment.clone())),
            _ => None,
        })
        .collect()
}

fn saved(actions: &[Action]) -> Option<FlowRecord> {
    actions.iter().find_map(|a| match a {
        Action::Save(record) => Some(record.clone()),
        _ => None,
    })
}

fn responded_flow(actions: &[Action]) -> Option<FlowRecord> {
    actions.iter().find_map(|a| match a {
        Action::Respond(NbResponse::Flow { flow }) => Some(flow.clone()),
        _ => None,
    })
}

fn history(actions: &[Action]) -> Vec<(String, String, String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::History {
                event,
                from_state,
                to_state,
                details,
            } => Some((
                event.clone(),
                from_state.clone(),
                to_state.clone(),
                details.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn position(actions: &[Action], wanted: &Action) -> usize {
    actions.iter().position(|a| a == wanted).unwrap()
}

fn with_cookie(cookie: u64, segments: &[(SbAction, FlowSegment)]) -> bool {
    segments.iter().all(|(_, s)| {
        s.cookie == FORWARD_COOKIE_FLAG | cookie || s.cookie == REVERSE_COOKIE_FLAG | cookie
    })
}

#[test]
fn start_marks_the_flow_in_progress_and_asks_for_a_new_reservation() {
    let mut h = Harness::manual();
    let actions = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::validating());
    assert!(actions.contains(&Action::ArmDeadline { after_ms: 30_000 }));
    assert!(actions.contains(&Action::Reallocate {
        request: request(1, 3),
        kind: Reallocation::Requested
    }));
    let record = saved(&actions).unwrap();
    assert_eq!((record.status, record.version), (FlowStatus::InProgress, 2));
    assert_eq!(record.resources, Some(resources(3)));
}

#[test]
fn a_reroute_installs_the_new_path_before_removing_the_old_one() {
    let mut h = Harness::manual();
    h.handle(OpEvent::Start);
    let allocated = h.handle(OpEvent::Allocated(detour()));
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress)
    );
    let journaled = saved(&allocated).expect("the target is saved before rules are sent");
    assert_eq!(
        journaled.resources,
        Some(resources(3)),
        "still on the old path"
    );
    assert_eq!(journaled.target.map(|t| t.resources), Some(detour()));
    let answer = responded_flow(&allocated).unwrap();
    assert_eq!(
        (answer.status, answer.resources),
        (FlowStatus::InProgress, Some(detour()))
    );

    let (steps, done) = h.finish(allocated);
    assert!(steps
        .iter()
        .all(|step| step.iter().all(|(action, _)| *action == step[0].0)));
    let shape: Vec<_> = steps
        .iter()
        .map(|step| {
            let ingress = step.iter().filter(|(_, s)| s.kind.is_ingress()).count();
            (step[0].0, ingress, step.len())
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (SbAction::Install, 0, 4),
            (SbAction::Verify, 0, 4),
            (SbAction::Install, 2, 2),
            (SbAction::Verify, 2, 2),
            (SbAction::Remove, 2, 6),
        ]
    );
    assert!(steps[..4].iter().all(|step| with_cookie(2, step)));
    let removed: Vec<_> = steps[4].iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(removed, flow_segments(&request(1, 3), &resources(3)));

    assert_eq!(h.state(), State::up());
    assert!(
        position(&done, &Action::Commit)
            < done
                .iter()
                .position(|a| matches!(a, Action::Save(_)))
                .unwrap()
    );
    let record = saved(&done).unwrap();
    assert_eq!(
        (record.status, record.status_info, record.resources),
        (FlowStatus::Up, None, Some(detour()))
    );
    assert!(record.version > 2);
}

#[test]
fn a_reroute_never_frees_and_commits_once() {
    let all = whole_manual_reroute();
    assert!(!all.contains(&Action::Free));
    assert!(!all.contains(&Action::Release));
    assert_eq!(all.iter().filter(|a| **a == Action::Commit).count(), 1);
}

#[test]
fn a_flow_already_on_the_best_path_stays_where_it_is() {
    for kind in [
        RerouteKind::Manual,
        RerouteKind::PathDown,
        RerouteKind::Retry,
    ] {
        let mut flow = up_flow();
        flow.status = FlowStatus::Down;
        flow.status_info = Some("no path".into());
        let mut h = Harness::reroute(flow, kind.clone());
        let actions = h.allocate(same_path());
        assert_eq!(h.state(), State::unchanged(), "{kind:?}");
        assert!(h.state().is_finished());
        assert!(sends(&actions).is_empty());
        assert_eq!(actions.first(), Some(&Action::Release));
        let record = saved(&actions).unwrap();
        assert_eq!(
            (
                record.status,
                record.status_info.clone(),
                record.resources.clone()
            ),
            (FlowStatus::Up, None, Some(resources(3)))
        );
        assert_eq!(responded_flow(&actions), Some(record));
        assert_eq!(history(&actions)[0].3, "already on the best path");
    }
}

#[test]
fn an_update_on_the_same_path_still_installs_the_new_rules() {
    let mut wanted = request(1, 3);
    wanted.maximum_bandwidth = 5000;
    let mut h = Harness::reroute(up_flow(), RerouteKind::Update(wanted.clone()));
    let started = h.handle(OpEvent::Start);
    assert!(started.contains(&Action::Reallocate {
        request: wanted.clone(),
        kind: Reallocation::Requested
    }));
    let allocated = h.handle(OpEvent::Allocated(same_path()));
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress)
    );
    assert_eq!(responded_flow(&allocated).unwrap().request, wanted);
    let (steps, done) = h.finish(allocated);
    assert!(steps[..4]
        .iter()
        .flatten()
        .all(|(_, s)| s.bandwidth == 5000));
    assert!(steps[4].iter().all(|(_, s)| s.bandwidth == 1000));
    let record = saved(&done).unwrap();
    assert_eq!(
        (record.request, record.status, record.resources),
        (wanted, FlowStatus::Up, Some(same_path()))
    );
}

/// A patch of what neither path nor rules depend on moves nothing: the new reservation goes
/// back, no command is sent, and the record keeps its rules with the new request.
#[test]
fn an_update_of_bookkeeping_only_keeps_the_rules_and_saves_the_request() {
    let wanted = FlowRequest {
        description: "renamed".into(),
        priority: Some(3),
        ..request(1, 3)
    };
    let mut h = Harness::reroute(up_flow(), RerouteKind::Update(wanted.clone()));
    h.handle(OpEvent::Start);
    let actions = h.handle(OpEvent::Allocated(same_path()));
    assert_eq!(h.state(), State::unchanged());
    assert!(sent(&actions).is_empty());
    assert!(actions.contains(&Action::Release));
    let record = saved(&actions).expect("saved");
    assert_eq!(record.request, wanted);
    assert_eq!(record.resources, Some(resources(3)));
    assert_eq!(record.status, FlowStatus::Up);
}

#[test]
fn an_update_to_a_one_switch_flow_goes_straight_to_the_ingress_swap() {
    let wanted = request(1, 1);
    let mut h = Harness::reroute(up_flow(), RerouteKind::Update(wanted));
    let allocated = h.allocate(Resources {
        forward_path: Vec::new(),
        protected: None,
        ..same_path()
    });
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallIngress)
    );
    assert_eq!(sends(&allocated).len(), 2);
    h.finish(allocated);
    assert_eq!(h.state(), State::up());
}

#[test]
fn operation_names_tell_updates_from_reroutes() {
    let name =
        |kind| FlowReroute::new(up_flow(), kind, Timeouts::default(), "p".into()).operation_name();
    assert_eq!(name(RerouteKind::Update(request(1, 3))), "update");
    assert_eq!(name(RerouteKind::Manual), "reroute");
    assert_eq!(name(RerouteKind::PathDown), "reroute");
}

#[test]
fn a_failed_allocation_leaves_a_path_down_flow_down_and_a_manual_one_as_it_was() {
    let error = ErrorBody::new(
        404,
        "no-path",
        "No path",
        "no path from 1 to 3 with 1000 kbps",
    );
    let cases = [
        (
            up_flow(),
            RerouteKind::PathDown,
            FlowStatus::Down,
            Some(error.error_description.clone()),
        ),
        (up_flow(), RerouteKind::Manual, FlowStatus::Up, None),
        (
            up_flow(),
            RerouteKind::Update(request(1, 2)),
            FlowStatus::Up,
            None,
        ),
        (
            record(3),
            RerouteKind::Manual,
            FlowStatus::Down,
            Some(error.error_description.clone()),
        ),
    ];
    for (flow, kind, status, info) in cases {
        let old = (flow.request.clone(), flow.resources.clone());
        let mut h = Harness::reroute(flow, kind.clone());
        h.handle(OpEvent::Start);
        let actions = h.handle(OpEvent::AllocationFailed(error.clone()));
        assert_eq!(h.state(), State::failed(), "{kind:?}");
        assert!(actions.contains(&Action::Respond(NbResponse::Error {
            error: error.clone()
        })));
        assert!(!actions.contains(&Action::Release));
        let record = saved(&actions).unwrap();
        assert_eq!(
            (record.status, record.status_info),
            (status, info),
            "{kind:?}"
        );
        assert_eq!((record.request, record.resources), old);
        assert_eq!(record.version, 3);
    }
}

/// A DEGRADED flow the network retries asks for an upgrade; finding none, it stays as it was.
#[test]
fn a_degraded_flow_that_finds_nothing_better_stays_degraded_on_its_path() {
    let mut degraded = up_flow();
    degraded.status = FlowStatus::Degraded;
    degraded.status_info = Some("no path has 1000 kbps available".into());
    let before = (degraded.status, degraded.status_info.clone());
    let mut h = Harness::reroute(degraded, RerouteKind::Retry);
    let started = h.handle(OpEvent::Start);
    assert!(started.contains(&Action::Reallocate {
        request: request(1, 3),
        kind: Reallocation::Upgrade
    }));
    let error = ErrorBody::new(503, "no-path", "No path", "no path with 1000 kbps");
    let actions = h.handle(OpEvent::AllocationFailed(error));
    let record = saved(&actions).expect("saved");
    assert_eq!((record.status, record.status_info), before);
    assert_eq!(record.resources, Some(resources(3)));
}

/// A repair onto a reservation without the flow's bandwidth makes it DEGRADED, with why.
#[test]
fn a_path_down_flow_moved_onto_a_path_without_its_bandwidth_is_degraded() {
    let mut h = Harness::reroute(up_flow(), RerouteKind::PathDown);
    let started = h.handle(OpEvent::Start);
    assert!(started.contains(&Action::Reallocate {
        request: request(1, 3),
        kind: Reallocation::Repair
    }));
    let short = Resources {
        without_bandwidth: true,
        degraded: Some("no path has 1000 kbps available".into()),
        ..detour()
    };
    let mut actions = h.handle(OpEvent::Allocated(short.clone()));
    while !h.state().is_finished() {
        actions = h.succeed_all(&actions);
    }
    assert_eq!(h.state(), State::up());
    let record = saved(&actions).expect("saved");
    assert_eq!(
        (record.status, record.status_info.as_deref()),
        (
            FlowStatus::Degraded,
            Some("no path has 1000 kbps available")
        )
    );
    assert_eq!(record.resources, Some(short));
}

/// Which rules a rollback removes at each step is the install sub-machine's (its tests);
/// here, that the old ingress rules the swap replaced (same endpoints, same match) go back
/// first, then only new rules go, and the flow stays on its old path.
#[test]
fn a_failed_swap_rolls_back_to_the_old_path() {
    let new_segments = flow_segments(&request(1, 3), &detour());
    let old_ingress: Vec<FlowSegment> = flow_segments(&request(1, 3), &resources(3))
        .into_iter()
        .filter(|s| s.kind.is_ingress())
        .collect();
    for failure in [Some("SWITCH_UNAVAILABLE after 3 attempts"), None] {
        let mut h = Harness::manual();
        let swapping = h.drive_to(State::installing_rules(InstallStep::InstallIngress));
        let restoring = h.handle(step_failure(&swapping, failure));
        assert_eq!(h.state(), State::restoring_old_ingress());
        assert!(restoring.contains(&Action::Abandon));
        assert!(restoring.contains(&Action::ArmDeadline { after_ms: 10_000 }));
        let installs = sent(&restoring);
        assert_eq!(
            installs,
            old_ingress
                .iter()
                .map(|s| (SbAction::Install, s.clone()))
                .collect::<Vec<_>>(),
            "the replaced old ingress rules go back"
        );

        let rollback = h.succeed_all(&restoring);
        assert_eq!(h.state(), State::rolling_back());
        let removes = sent(&rollback);
        assert_eq!(removes.len(), 6);
        assert!(removes
            .iter()
            .all(|(a, s)| *a == SbAction::Remove && new_segments.contains(s)));
        assert!(with_cookie(2, &removes));

        let done = h.succeed_all(&rollback);
        assert_eq!(h.state(), State::failed());
        assert_eq!(done.first(), Some(&Action::Release));
        assert!(!done.contains(&Action::Commit));
        let record = saved(&done).unwrap();
        assert_eq!(
            (record.status, record.status_info, record.resources),
            (FlowStatus::Up, None, Some(resources(3)))
        );
    }
}

#[test]
fn a_rollback_that_cannot_put_the_old_ingress_back_leaves_the_flow_down() {
    let mut h = Harness::manual();
    let swapping = h.drive_to(State::installing_rules(InstallStep::InstallIngress));
    let restoring = h.handle(step_failure(&swapping, Some("TABLE_FULL")));
    let rollback = h.handle(OpEvent::CommandFailed {
        command_id: sends(&restoring)[0].0.clone(),
        reason: "SWITCH_UNAVAILABLE".into(),
    });
    assert_eq!(h.state(), State::rolling_back());
    let done = h.succeed_all(&rollback);
    let record = saved(&done).unwrap();
    assert_eq!(record.status, FlowStatus::Down);
    let info = record.status_info.unwrap_or_default();
    assert!(
        info.contains("TABLE_FULL") && info.contains("old ingress rules could not be put back"),
        "{info}"
    );
}

#[test]
fn a_path_down_flow_that_cannot_move_goes_down_with_the_reason() {
    let mut h = Harness::reroute(up_flow(), RerouteKind::PathDown);
    let entered = h.drive_to(State::installing_rules(InstallStep::VerifyIngress));
    let restoring = h.handle(OpEvent::CommandFailed {
        command_id: sends(&entered)[1].0.clone(),
        reason: "MISSING_RULE".into(),
    });
    let rollback = h.succeed_all(&restoring);
    let done = h.succeed_all(&rollback);
    let record = saved(&done).unwrap();
    assert_eq!(
        (
            record.status,
            record.status_info.as_deref(),
            record.resources
        ),
        (FlowStatus::Down, Some("MISSING_RULE"), Some(resources(3)))
    );
}

#[test]
fn a_path_down_flow_goes_down_even_when_its_rollback_hangs() {
    let mut h = Harness::reroute(up_flow(), RerouteKind::PathDown);
    h.allocate(detour());
    h.handle(OpEvent::Timeout);
    assert_eq!(h.state(), State::rolling_back());
    let done = h.handle(OpEvent::Timeout);
    assert_eq!(h.state(), State::failed());
    assert_eq!(
        saved(&done).unwrap().status_info.as_deref(),
        Some("flow reroute timed out")
    );
    assert_eq!(
        history(&done)[0].3,
        "new rule removal timed out; 4 rule(s) handed to the removal debt"
    );
    let owed = owed(&done);
    assert_eq!(owed.len(), 1, "one reservation owes");
    assert_eq!(owed[0].reservation.resources, detour());
    assert_eq!(owed[0].rules.len(), 4, "the non-ingress rules sent");
    assert!(
        owed_before(&done, &Action::Release),
        "the debt is handed over before the release"
    );
}

#[test]
fn a_failed_removal_of_new_rules_is_noted_and_the_rollback_still_ends() {
    let mut h = Harness::manual();
    h.drive_to(State::installing_rules(InstallStep::VerifyNonIngress));
    let rollback = h.handle(OpEvent::Timeout);
    let removes = sends(&rollback);
    let removed = sent(&rollback);
    h.handle(OpEvent::CommandFailed {
        command_id: removes[0].0.clone(),
        reason: "SWITCH_UNAVAILABLE".into(),
    });
    let last = h.succeed(&removes[1..]);
    assert_eq!(h.state(), State::failed());
    assert!(last.contains(&Action::Release));
    assert_eq!(
        history(&last)[0].3,
        "new rule removal failed: SWITCH_UNAVAILABLE; 1 rule(s) handed to the removal debt"
    );
    assert_eq!(owed(&last)[0].rules, vec![removed[0].1.clone()]);
    assert!(owed_before(&last, &Action::Release));
}

#[test]
fn a_late_allocation_after_the_timeout_is_released() {
    let mut h = Harness::manual();
    h.handle(OpEvent::Start);
    let timed_out = h.handle(OpEvent::Timeout);
    assert_eq!(h.state(), State::releasing_allocation());
    assert!(timed_out
        .iter()
        .any(|a| matches!(a, Action::Respond(NbResponse::Error { error }) if error.status == 504)));
    let late = h.handle(OpEvent::Allocated(detour()));
    assert_eq!(late.first(), Some(&Action::Release));
    assert_eq!(h.state(), State::failed());
    let record = saved(&late).unwrap();
    assert_eq!(
        (record.status, record.resources),
        (FlowStatus::Up, Some(resources(3)))
    );

    let mut h = Harness::manual();
    h.handle(OpEvent::Start);
    h.handle(OpEvent::Timeout);
    let refused = h.handle(OpEvent::AllocationFailed(ErrorBody::new(
        404, "no-path", "x", "y",
    )));
    assert!(!refused.contains(&Action::Release));
    assert_eq!(h.state(), State::failed());
}

#[test]
fn the_old_rules_go_even_when_their_removal_fails_or_times_out() {
    for by_timeout in [false, true] {
        let mut h = Harness::manual();
        let removing = h.drive_to(State::removing_old_rules());
        assert!(removing.contains(&Action::ArmDeadline { after_ms: 10_000 }));
        let removes = sends(&removing);
        let done = if by_timeout {
            h.handle(OpEvent::Timeout)
        } else {
            h.handle(OpEvent::CommandFailed {
                command_id: removes[0].0.clone(),
                reason: "SWITCH_UNAVAILABLE".into(),
            });
            h.succeed(&removes[1..])
        };
        assert_eq!(h.state(), State::up());
        assert!(done.contains(&Action::Commit));
        let record = saved(&done).unwrap();
        assert_eq!(
            (record.status, record.status_info, record.resources),
            (FlowStatus::Up, None, Some(detour()))
        );
        let expected = if by_timeout {
            "old rule removal timed out; 6 rule(s) handed to the removal debt"
        } else {
            "old rule removal failed: SWITCH_UNAVAILABLE; 1 rule(s) handed to the removal debt"
        };
        assert_eq!(history(&done)[0].3, expected);
        let owed = owed(&done);
        assert_eq!(
            owed[0].reservation.resources,
            resources(3),
            "the old path's"
        );
        assert!(owed_before(&done, &Action::Commit));
    }
}

#[test]
fn a_retried_flow_without_rules_has_nothing_old_to_remove() {
    let mut flow = record(3);
    flow.status = FlowStatus::Down;
    flow.status_info = Some("no path".into());
    let mut h = Harness::reroute(flow, RerouteKind::Retry);
    let allocated = h.allocate(resources(3));
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress)
    );
    let (steps, done) = h.finish(allocated);
    assert_eq!(steps.len(), 4);
    assert!(steps.iter().flatten().all(|(a, _)| *a != SbAction::Remove));
    assert_eq!(h.state(), State::up());
    assert!(done.contains(&Action::Commit));
    let record = saved(&done).unwrap();
    assert_eq!(
        (record.status, record.status_info, record.resources),
        (FlowStatus::Up, None, Some(resources(3)))
    );
}

#[test]
fn every_transition_of_a_reroute_is_written_to_the_history() {
    let all = whole_manual_reroute();
    let transitions: Vec<_> = history(&all)
        .into_iter()
        .map(|(event, from, to, _)| format!("{event}: {from} -> {to}"))
        .collect();
    assert_eq!(
        transitions,
        vec![
            "start: Received -> Validating",
            "allocated: Validating -> InstallingNonIngress",
            "command_succeeded: InstallingNonIngress -> VerifyingNonIngress",
            "command_succeeded: VerifyingNonIngress -> InstallingIngress",
            "command_succeeded: InstallingIngress -> VerifyingIngress",
            "command_succeeded: VerifyingIngress -> RemovingOldRules",
            "command_succeeded: RemovingOldRules -> Up",
        ]
    );
}

#[test]
fn unrelated_and_late_events_are_ignored() {
    let mut h = Harness::manual();
    h.handle(OpEvent::Start);
    let stray = OpEvent::CommandSucceeded {
        command_id: "f1:2:99".into(),
    };
    assert!(h.handle(stray.clone()).is_empty());
    assert_eq!(h.state(), State::validating());
    let allocated = h.handle(OpEvent::Allocated(detour()));
    assert!(h.handle(stray).is_empty());
    assert!(h.handle(OpEvent::Allocated(detour())).is_empty());
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress)
    );
    h.finish(allocated);
    for event in [
        OpEvent::Timeout,
        OpEvent::CommandFailed {
            command_id: "f1:2:1".into(),
            reason: "x".into(),
        },
    ] {
        assert!(h.handle(event).is_empty());
        assert_eq!(h.state(), State::up());
    }
}

/// One half of an endpoint swap of "f1" (UP on 1 → 2 → 3) with "f2": f1's destination moves
/// to port 42.
fn endpoint_swap(first: bool) -> Harness {
    let mut moved = request(1, 3);
    moved.destination.port_number = 42;
    let partner = FlowEndpoints {
        flow_id: "f2".into(),
        source: moved.source.clone(),
        destination: request(1, 3).destination,
    };
    let swap = EndpointSwap {
        request: moved,
        partner,
        first,
    };
    Harness::reroute(up_flow(), RerouteKind::SwapEndpoints(swap))
}

/// A half of an endpoint swap (see `endpoint_swap`) driven into `stop`, `AwaitingPartner` or
/// (after the allocator's Go) `AwaitingCommit`, every command answered; the actions that
/// entered it.
fn endpoint_swap_in(first: bool, stop: State) -> (Harness, Vec<Action>) {
    let mut h = endpoint_swap(first);
    h.handle(OpEvent::Start);
    let mut actions = h.handle(OpEvent::Allocated(detour()));
    while h.state() != State::awaiting_partner() {
        actions = h.succeed_all(&actions);
    }
    if stop == State::awaiting_commit() {
        actions = h.handle(OpEvent::Pair(PairSignal::Go));
        while h.state() != stop {
            actions = h.succeed_all(&actions);
        }
    }
    (h, actions)
}

fn votes(actions: &[Action]) -> Vec<PairVote> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::PairVote(vote) => Some(vote.clone()),
            _ => None,
        })
        .collect()
}

fn abort() -> OpEvent {
    OpEvent::Pair(PairSignal::Abort(ErrorBody::new(
        409,
        "operation-in-progress",
        "Flow is busy",
        "flow f2 is busy",
    )))
}

#[test]
fn an_endpoint_swap_half_waits_for_the_allocator_before_its_ingress_and_before_its_old_rules() {
    let mut h = endpoint_swap(true);
    let started = h.handle(OpEvent::Start);
    assert!(matches!(
        started.as_slice(),
        [.., Action::ReserveEndpointSwap { partner, .. }, _] if partner.flow_id == "f2"
    ));
    let allocated = h.handle(OpEvent::Allocated(detour()));
    assert_eq!(responded_flow(&allocated), None, "answered once decided");
    let mut actions = allocated;
    while h.state() != State::awaiting_partner() {
        assert!(sent(&actions).iter().all(|(_, s)| !s.kind.is_ingress()));
        actions = h.succeed_all(&actions);
    }
    assert_eq!(votes(&actions), vec![PairVote::Ready]);
    assert!(sent(&actions).is_empty(), "no ingress rule before Go");

    let go = h.handle(OpEvent::Pair(PairSignal::Go));
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallIngress)
    );
    assert!(sent(&go)
        .iter()
        .all(|(a, s)| *a == SbAction::Install && s.kind.is_ingress()));
    let mut actions = go;
    while h.state() != State::awaiting_commit() {
        actions = h.succeed_all(&actions);
    }
    assert_eq!(votes(&actions), vec![PairVote::Swapped]);
    assert!(
        sent(&actions).is_empty(),
        "no old rule goes before the commit"
    );

    let committed = h.handle(OpEvent::Pair(PairSignal::Commit));
    let answer = committed.iter().find_map(|a| match a {
        Action::Respond(NbResponse::EndpointsSwapped {
            first_flow,
            second_flow,
        }) => Some((first_flow.clone(), second_flow.clone())),
        _ => None,
    });
    let (first_flow, second_flow) = answer.expect("the first half answers on the commit");
    assert_eq!(
        (
            first_flow.destination.port_number,
            second_flow.flow_id.as_str()
        ),
        (42, "f2")
    );
    assert!(sent(&committed)
        .iter()
        .all(|(a, s)| *a == SbAction::Remove && s.cookie & 1 == 1));
    let (_, done) = h.finish(committed);
    assert_eq!(h.state(), State::up());
    let record = saved(&done).unwrap();
    assert_eq!(
        (record.status, record.request.destination.port_number),
        (FlowStatus::Up, 42)
    );
}

#[test]
fn the_second_half_asks_for_nothing_and_answers_nothing() {
    let mut h = endpoint_swap(false);
    let started = h.handle(OpEvent::Start);
    assert!(!started.iter().any(|a| matches!(
        a,
        Action::ReserveEndpointSwap { .. } | Action::Reallocate { .. }
    )));
    let mut actions = h.handle(OpEvent::Allocated(detour()));
    let mut all = Vec::new();
    for signal in [PairSignal::Go, PairSignal::Commit] {
        while !matches!(
            h.state(),
            State::AwaitingPartner {} | State::AwaitingCommit {}
        ) {
            all.extend(actions.clone());
            actions = h.succeed_all(&actions);
        }
        all.extend(actions);
        actions = h.handle(OpEvent::Pair(signal));
    }
    let (_, done) = h.finish(actions);
    all.extend(done);
    assert_eq!(h.state(), State::up());
    assert!(!all.iter().any(|a| matches!(a, Action::Respond(_))));
}

#[test]
fn an_abort_before_go_removes_the_new_rules_and_keeps_the_old_endpoints() {
    let (mut h, _) = endpoint_swap_in(true, State::awaiting_partner());
    let aborted = h.handle(abort());
    assert_eq!(h.state(), State::rolling_back());
    assert!(
        votes(&aborted).is_empty(),
        "the allocator decided: nothing to tell it"
    );
    let removed = sent(&aborted);
    assert!(removed
        .iter()
        .all(|(a, s)| *a == SbAction::Remove && !s.kind.is_ingress() && s.cookie & 2 == 2));
    let (_, done) = h.finish(aborted);
    assert_eq!(h.state(), State::failed());
    assert!(done.contains(&Action::Release));
    let record = saved(&done).unwrap();
    assert_eq!(
        (record.status, record.request.destination.port_number),
        (FlowStatus::Up, 41),
        "back as it was"
    );
    assert!(done.iter().any(|a| matches!(
        a,
        Action::Respond(NbResponse::Error { error }) if error.status == 409
    )));
}

#[test]
fn an_abort_after_go_puts_back_every_old_ingress_rule() {
    let (mut h, _) = endpoint_swap_in(false, State::awaiting_commit());
    let aborted = h.handle(abort());
    assert_eq!(h.state(), State::restoring_old_ingress());
    // The source's new ingress rule replaced the old one; the destination's old one may have
    // been replaced by the other flow's: both go back.
    let old_ingress: Vec<FlowSegment> = flow_segments(&request(1, 3), &resources(3))
        .into_iter()
        .filter(|s| s.kind.is_ingress())
        .collect();
    let reinstalled: Vec<FlowSegment> = sent(&aborted).into_iter().map(|(_, s)| s).collect();
    assert_eq!(reinstalled, old_ingress);
    let (_, done) = h.finish(aborted);
    assert_eq!(h.state(), State::failed());
    assert_eq!(saved(&done).unwrap().status, FlowStatus::Up);
}

#[test]
fn a_half_that_fails_tells_the_allocator() {
    let mut h = endpoint_swap(false);
    h.handle(OpEvent::Start);
    let actions = h.handle(OpEvent::Allocated(detour()));
    let (command_id, _) = sends(&actions).remove(0);
    let failed = h.handle(OpEvent::CommandFailed {
        command_id,
        reason: "TABLE_FULL".into(),
    });
    assert!(matches!(
        votes(&failed).as_slice(),
        [PairVote::Failed(error)] if error.error_description.contains("TABLE_FULL")
    ));
    let (_, done) = h.finish(failed);
    assert!(votes(&done).is_empty(), "told once");
}

#[test]
fn a_half_that_times_out_waiting_says_so_and_carries_out_the_word() {
    let (mut h, _) = endpoint_swap_in(true, State::awaiting_commit());
    let timed_out = h.handle(OpEvent::Timeout);
    assert_eq!(
        h.state(),
        State::awaiting_commit(),
        "it does not go back alone"
    );
    assert!(matches!(
        votes(&timed_out).as_slice(),
        [PairVote::Failed(error)] if error.status == 504
    ));
    // The other half swapped in time: the allocator had committed.
    let committed = h.handle(OpEvent::Pair(PairSignal::Commit));
    let (_, done) = h.finish(committed);
    assert_eq!(h.state(), State::up());
    assert_eq!(saved(&done).unwrap().request.destination.port_number, 42);
}

#[test]
fn an_abort_before_the_reservation_is_heard_of_lets_it_go_at_once() {
    let mut h = endpoint_swap(true);
    h.handle(OpEvent::Start);
    assert_eq!(h.handle(abort()), vec![], "nothing to do yet");
    let allocated = h.handle(OpEvent::Allocated(detour()));
    assert_eq!(h.state(), State::failed());
    assert!(sent(&allocated).is_empty());
    assert!(allocated.contains(&Action::Release));
    assert!(votes(&allocated).is_empty());
    assert!(allocated.iter().any(|a| matches!(
        a,
        Action::Respond(NbResponse::Error { error }) if error.status == 409
    )));
}
