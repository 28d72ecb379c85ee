use std::collections::BTreeSet;

use statig::blocking::IntoStateMachineExt;

use super::*;
use crate::segments::{FORWARD_COOKIE_FLAG, REVERSE_COOKIE_FLAG};
use crate::test_support::{self, record, request, resources, sends};
use crate::{FlowTarget, Resources};

type Harness = test_support::Harness<FlowSync>;

impl Harness {
    fn sync(flow: FlowRecord) -> Self {
        let machine = FlowSync::new(flow, Timeouts::default(), "f1:3".into()).state_machine();
        Harness::new(machine, 300)
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

    /// Starts and answers every command up to (and into) `stop`, returning the actions that
    /// entered it.
    fn drive_to(&mut self, stop: State) -> Vec<Action> {
        let mut actions = self.handle(OpEvent::Start);
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

/// What an interrupted reroute was moving the flow to: cookie 2, same switches.
fn target_resources() -> Resources {
    Resources {
        cookie: 2,
        transit_vlan: 3,
        ..resources(3)
    }
}

/// The flow as a crash in the middle of a reroute left it: IN_PROGRESS, with a target.
fn interrupted_flow() -> FlowRecord {
    let mut flow = up_flow();
    flow.status = FlowStatus::InProgress;
    flow.target = Some(Box::new(FlowTarget {
        request: request(1, 3),
        resources: target_resources(),
    }));
    flow
}

fn recorded_segments() -> Vec<FlowSegment> {
    flow_segments(&request(1, 3), &resources(3))
}

fn target_segments() -> Vec<FlowSegment> {
    flow_segments(&request(1, 3), &target_resources())
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

fn saves(actions: &[Action]) -> Vec<FlowRecord> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Save(record) => Some(record.clone()),
            _ => None,
        })
        .collect()
}

fn saved(actions: &[Action]) -> Option<FlowRecord> {
    saves(actions).into_iter().last()
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

fn transitions(actions: &[Action]) -> Vec<String> {
    history(actions)
        .into_iter()
        .map(|(event, from, to, _)| format!("{event}: {from} -> {to}"))
        .collect()
}

fn with_cookie(cookie: u64, segments: &[(SbAction, FlowSegment)]) -> bool {
    segments.iter().all(|(_, s)| {
        s.cookie == FORWARD_COOKIE_FLAG | cookie || s.cookie == REVERSE_COOKIE_FLAG | cookie
    })
}

/// Sync keeps the flow's reservation; it only lets go of an interrupted move's.
fn touches_reservations(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Free | Action::Commit | Action::Allocate(_) | Action::Reallocate(_)
        )
    })
}

fn releases(actions: &[Action]) -> usize {
    actions.iter().filter(|a| **a == Action::Release).count()
}

/// Every action of a sync of `flow` whose commands all succeed.
fn whole_sync(flow: FlowRecord) -> Vec<Action> {
    let mut h = Harness::sync(flow);
    let mut actions = h.handle(OpEvent::Start);
    let mut all = Vec::new();
    while !h.state().is_finished() {
        all.extend(actions.clone());
        actions = h.succeed_all(&actions);
    }
    all.extend(actions);
    all
}

#[test]
fn start_marks_the_flow_in_progress_and_answers_with_it() {
    let mut h = Harness::sync(up_flow());
    let actions = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::installing_non_ingress());
    assert_eq!(
        actions.first(),
        Some(&Action::ArmDeadline { after_ms: 30_000 })
    );
    let record = saved(&actions).unwrap();
    assert_eq!(
        (record.status, record.version, record.resources.clone()),
        (FlowStatus::InProgress, 2, Some(resources(3)))
    );
    assert_eq!(responded_flow(&actions), Some(record));
}

#[test]
fn a_synced_flow_reinstalls_exactly_its_recorded_rules_and_ends_up() {
    let mut flow = up_flow();
    flow.status = FlowStatus::Down;
    flow.status_info = Some("SWITCH_UNAVAILABLE".into());
    let mut h = Harness::sync(flow);
    let started = h.handle(OpEvent::Start);
    let (steps, done) = h.finish(started);
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
        ]
    );
    let segments_of = |step: &[(SbAction, FlowSegment)]| -> Vec<FlowSegment> {
        step.iter().map(|(_, s)| s.clone()).collect()
    };
    assert_eq!(segments_of(&steps[0]), segments_of(&steps[1]));
    assert_eq!(segments_of(&steps[2]), segments_of(&steps[3]));
    let mut installed = segments_of(&steps[0]);
    installed.extend(segments_of(&steps[2]));
    let mut expected = recorded_segments();
    installed.sort_by_key(|s| (s.cookie, s.switch_id));
    expected.sort_by_key(|s| (s.cookie, s.switch_id));
    assert_eq!(installed, expected);

    assert_eq!(h.state(), State::up());
    assert!(h.state().is_finished());
    let record = saved(&done).unwrap();
    assert_eq!(
        (
            record.status,
            record.status_info,
            record.resources,
            record.target
        ),
        (FlowStatus::Up, None, Some(resources(3)), None)
    );
    assert_eq!(record.version, 3);
}

#[test]
fn a_sync_never_touches_reservations() {
    for flow in [up_flow(), interrupted_flow(), record(3)] {
        let had_target = flow.target.is_some();
        let actions = whole_sync(flow);
        assert!(!touches_reservations(&actions));
        assert_eq!(
            releases(&actions),
            usize::from(had_target),
            "the target's reservation goes back once its rules are removed"
        );
    }
}

#[test]
fn the_rules_of_an_interrupted_reroute_are_removed_before_the_recorded_ones_are_installed() {
    let mut h = Harness::sync(interrupted_flow());
    let started = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::removing_target());
    let journaled = saves(&started);
    assert_eq!(journaled.len(), 1);
    assert!(
        journaled[0].target.is_some(),
        "kept until its rules are gone"
    );
    assert_eq!(
        started
            .iter()
            .filter(|a| matches!(a, Action::ArmDeadline { .. }))
            .collect::<Vec<_>>(),
        vec![
            &Action::ArmDeadline { after_ms: 30_000 },
            &Action::ArmDeadline { after_ms: 10_000 },
        ]
    );
    let removes = sent(&started);
    assert!(removes.iter().all(|(a, _)| *a == SbAction::Remove));
    assert!(with_cookie(2, &removes));
    assert_eq!(
        removes.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
        target_segments(),
        "all of them, ingress included"
    );
    assert_eq!(
        removes.iter().filter(|(_, s)| s.kind.is_ingress()).count(),
        2
    );

    let removal_ids = sends(&started);
    let halfway = h.succeed(&removal_ids[..5]);
    assert!(halfway.is_empty(), "waits for every removal");
    assert_eq!(h.state(), State::removing_target());
    let removed = h.succeed(&removal_ids[5..]);
    assert_eq!(h.state(), State::installing_non_ingress());
    assert!(removed.contains(&Action::ArmDeadline { after_ms: 30_000 }));
    assert!(with_cookie(1, &sent(&removed)));
    assert_eq!(history(&removed)[0].3, "");

    let (steps, done) = h.finish(removed);
    assert_eq!(steps.len(), 4);
    assert!(steps
        .iter()
        .all(|step| with_cookie(1, step) && step.iter().all(|(a, _)| *a != SbAction::Remove)));
    assert_eq!(h.state(), State::up());
    let record = saved(&done).unwrap();
    assert_eq!(
        (record.status, record.resources, record.target),
        (FlowStatus::Up, Some(resources(3)), None)
    );
}

#[test]
fn command_ids_stay_unique_across_removal_and_install() {
    let all = whole_sync(interrupted_flow());
    let ids: Vec<_> = sends(&all).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 6 + 12);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
    assert!(ids.iter().all(|id| id.starts_with("f1:3:")));
}

#[test]
fn a_failed_or_timed_out_target_removal_still_goes_on() {
    for by_timeout in [false, true] {
        let mut h = Harness::sync(interrupted_flow());
        let started = h.handle(OpEvent::Start);
        let removes = sends(&started);
        let done = if by_timeout {
            h.handle(OpEvent::Timeout)
        } else {
            h.handle(OpEvent::CommandFailed {
                command_id: removes[0].0.clone(),
                reason: "MISSING_RULE".into(),
            });
            h.succeed(&removes[1..])
        };
        assert_eq!(h.state(), State::installing_non_ingress(), "{by_timeout}");
        assert_eq!(done.contains(&Action::Abandon), by_timeout);
        assert!(done.contains(&Action::ArmDeadline { after_ms: 30_000 }));
        let expected = if by_timeout {
            "target rule removal timed out"
        } else {
            "target rule removal failed: MISSING_RULE"
        };
        assert_eq!(history(&done)[0].3, expected);

        // A removal answering after the timeout does not disturb the install.
        let late = h.handle(OpEvent::CommandFailed {
            command_id: removes[1].0.clone(),
            reason: "SWITCH_UNAVAILABLE".into(),
        });
        assert!(late.is_empty());
        assert_eq!(h.state(), State::installing_non_ingress());

        let (_, finished) = h.finish(done);
        assert_eq!(h.state(), State::up());
        let record = saved(&finished).unwrap();
        assert_eq!((record.status, record.target), (FlowStatus::Up, None));
    }
}

#[test]
fn a_flow_without_resources_goes_down_with_nothing_sent() {
    let mut h = Harness::sync(record(3));
    let actions = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::down());
    assert!(h.state().is_finished());
    assert!(sends(&actions).is_empty());
    let records = saves(&actions);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].status, FlowStatus::InProgress);
    assert_eq!(
        (
            records[1].status,
            records[1].status_info.as_deref(),
            records[1].resources.clone(),
            records[1].target.clone()
        ),
        (
            FlowStatus::Down,
            Some("no path is reserved for the flow"),
            None,
            None
        )
    );
    assert_eq!(
        history(&actions),
        vec![(
            "start".to_string(),
            "Received".to_string(),
            "Down".to_string(),
            "no path is reserved for the flow".to_string()
        )]
    );
}

#[test]
fn a_flow_without_resources_still_loses_the_rules_of_its_interrupted_reroute() {
    let mut flow = interrupted_flow();
    flow.resources = None;
    let mut h = Harness::sync(flow);
    let started = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::removing_target());
    assert_eq!(sent(&started).len(), 6);
    let done = h.succeed_all(&started);
    assert_eq!(h.state(), State::down());
    assert!(sends(&done).is_empty());
    assert!(!done.contains(&Action::ArmDeadline { after_ms: 30_000 }));
    let record = saved(&done).unwrap();
    assert_eq!(
        (
            record.status,
            record.status_info.as_deref(),
            record.resources,
            record.target
        ),
        (
            FlowStatus::Down,
            Some("no path is reserved for the flow"),
            None,
            None
        )
    );
}

/// Every install step ends DOWN on a failed command and on the deadline, resources kept.
#[test]
fn every_install_step_fails_down_with_the_reason() {
    let steps = [
        State::installing_non_ingress(),
        State::verifying_non_ingress(),
        State::installing_ingress(),
        State::verifying_ingress(),
    ];
    for step in steps {
        for by_timeout in [false, true] {
            let mut h = Harness::sync(interrupted_flow());
            let entered = h.drive_to(step.clone());
            let (event, reason) = if by_timeout {
                (OpEvent::Timeout, "flow sync timed out")
            } else {
                (
                    OpEvent::CommandFailed {
                        command_id: sends(&entered)[1].0.clone(),
                        reason: "SWITCH_UNAVAILABLE after 3 attempts".into(),
                    },
                    "SWITCH_UNAVAILABLE after 3 attempts",
                )
            };
            let failed = h.handle(event);
            assert_eq!(h.state(), State::down(), "from {step:?}");
            assert!(failed.contains(&Action::Abandon));
            assert!(sends(&failed).is_empty(), "nothing is rolled back");
            assert!(!touches_reservations(&failed));
            let record = saved(&failed).unwrap();
            assert_eq!(
                (
                    record.status,
                    record.status_info.as_deref(),
                    record.resources,
                    record.target
                ),
                (FlowStatus::Down, Some(reason), Some(resources(3)), None),
                "from {step:?}"
            );
            assert_eq!(history(&failed)[0].3, reason);

            // Answers of the abandoned step change nothing.
            for (command_id, _) in sends(&entered) {
                assert!(h
                    .handle(OpEvent::CommandSucceeded { command_id })
                    .is_empty());
            }
            assert_eq!(h.state(), State::down());
        }
    }
}

#[test]
fn a_one_switch_flow_goes_straight_to_the_ingress_step() {
    let mut flow = record(1);
    flow.status = FlowStatus::Up;
    flow.resources = Some(resources(1));
    let mut h = Harness::sync(flow);
    let started = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::installing_ingress());
    let installs = sent(&started);
    assert_eq!(installs.len(), 2);
    assert!(installs
        .iter()
        .all(|(a, s)| *a == SbAction::Install && s.kind.is_ingress()));
    let (steps, done) = h.finish(started);
    assert_eq!(steps.len(), 2);
    assert_eq!(h.state(), State::up());
    assert_eq!(saved(&done).unwrap().status, FlowStatus::Up);
}

#[test]
fn every_transition_of_a_sync_is_written_to_the_history() {
    assert_eq!(
        transitions(&whole_sync(up_flow())),
        vec![
            "start: Received -> InstallingNonIngress",
            "command_succeeded: InstallingNonIngress -> VerifyingNonIngress",
            "command_succeeded: VerifyingNonIngress -> InstallingIngress",
            "command_succeeded: InstallingIngress -> VerifyingIngress",
            "command_succeeded: VerifyingIngress -> Up",
        ]
    );
    assert_eq!(
        transitions(&whole_sync(interrupted_flow()))[..2],
        [
            "start: Received -> RemovingTarget",
            "command_succeeded: RemovingTarget -> InstallingNonIngress",
        ]
    );
}

#[test]
fn unrelated_and_late_events_are_ignored() {
    let mut h = Harness::sync(up_flow());
    let stray = OpEvent::CommandSucceeded {
        command_id: "f1:3:99".into(),
    };
    assert!(h.handle(stray.clone()).is_empty());
    assert!(h.handle(OpEvent::Timeout).is_empty());
    assert_eq!(h.state(), State::received());
    let started = h.handle(OpEvent::Start);
    for event in [
        stray,
        OpEvent::Start,
        OpEvent::Allocated(resources(3)),
        OpEvent::CommandFailed {
            command_id: "f1:3:99".into(),
            reason: "x".into(),
        },
    ] {
        assert!(h.handle(event).is_empty());
        assert_eq!(h.state(), State::installing_non_ingress());
    }
    h.finish(started);
    for event in [
        OpEvent::Timeout,
        OpEvent::CommandFailed {
            command_id: "f1:3:1".into(),
            reason: "x".into(),
        },
    ] {
        assert!(h.handle(event).is_empty());
        assert_eq!(h.state(), State::up());
    }
}
