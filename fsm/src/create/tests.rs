use statig::blocking::IntoStateMachineExt;

use super::*;
use crate::operation::Action;
use crate::test_support::{self, owed, owed_before, record, resources, sends, step_failure};
use crate::{ErrorBody, SbAction};

type Harness = test_support::Harness<FlowCreate>;

impl Harness {
    /// A create from switch 1 to `dst` of `linear:3`.
    fn create(dst: u64) -> Self {
        let machine =
            FlowCreate::new(record(dst), Timeouts::default(), "f1:1".into()).state_machine();
        Harness::new(machine, 100)
    }

    /// Drives a 3-switch create up to (and into) `stop`, returning the actions that entered it.
    fn drive_to(&mut self, stop: State) -> Vec<Action> {
        let mut actions = self.handle(OpEvent::Start);
        if self.state() == stop {
            return actions;
        }
        actions = self.handle(OpEvent::Allocated(resources(3)));
        while self.state() != stop {
            actions = self.succeed_all(&actions);
        }
        actions
    }
}

fn saved_status(actions: &[Action]) -> Option<FlowStatus> {
    actions.iter().find_map(|a| match a {
        Action::Save(record) => Some(record.status),
        _ => None,
    })
}

/// The history of a whole create from switch 1 to `dst`, every command answered with success.
fn whole_create_history(dst: u64) -> Vec<String> {
    let mut h = Harness::create(dst);
    let mut all = h.handle(OpEvent::Start);
    let mut actions = h.handle(OpEvent::Allocated(resources(dst)));
    while !h.state().is_finished() {
        all.extend(actions.clone());
        actions = h.succeed_all(&actions);
    }
    all.extend(actions);
    all.iter()
        .filter_map(|a| match a {
            Action::History {
                event,
                from_state,
                to_state,
                ..
            } => Some(format!("{event}: {from_state} -> {to_state}")),
            _ => None,
        })
        .collect()
}

#[test]
fn start_arms_the_deadline_and_asks_for_allocation() {
    let mut h = Harness::create(3);
    let actions = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::validating());
    assert!(actions.contains(&Action::ArmDeadline { after_ms: 30_000 }));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Allocate(r) if r.flow_id == "f1")));
}

#[test]
fn the_allocated_flow_is_saved_and_answered_then_installed_and_up() {
    let mut h = Harness::create(3);
    h.handle(OpEvent::Start);
    let allocated = h.handle(OpEvent::Allocated(resources(3)));
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress)
    );
    assert_eq!(saved_status(&allocated), Some(FlowStatus::InProgress));
    assert!(allocated
        .iter()
        .any(|a| matches!(a, Action::Respond(NbResponse::Flow { .. }))));

    let mut actions = allocated;
    while !h.state().is_finished() {
        actions = h.succeed_all(&actions);
    }
    assert_eq!(h.state(), State::up());
    assert_eq!(saved_status(&actions), Some(FlowStatus::Up));
}

#[test]
fn a_one_switch_create_goes_straight_to_the_ingress_install() {
    assert_eq!(
        whole_create_history(1),
        vec![
            "start: Received -> Validating",
            "allocated: Validating -> InstallingIngress",
            "command_succeeded: InstallingIngress -> VerifyingIngress",
            "command_succeeded: VerifyingIngress -> Up",
        ]
    );
}

#[test]
fn allocation_failure_answers_with_the_error_and_keeps_no_record() {
    let mut h = Harness::create(3);
    h.handle(OpEvent::Start);
    let error = ErrorBody::new(503, "no-path", "No path", "not enough bandwidth");
    let actions = h.handle(OpEvent::AllocationFailed(error.clone()));
    assert_eq!(h.state(), State::rejected());
    assert!(h.state().is_finished());
    assert!(actions.contains(&Action::Respond(NbResponse::Error { error })));
    assert_eq!(saved_status(&actions), None);
    assert!(!actions.contains(&Action::Free));
}

#[test]
fn timeout_before_allocation_answers_and_releases_a_late_allocation() {
    let mut h = Harness::create(3);
    h.handle(OpEvent::Start);
    let actions = h.handle(OpEvent::Timeout);
    assert_eq!(h.state(), State::releasing_allocation());
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Respond(NbResponse::Error { error }) if error.status == 504)));
    let late = h.handle(OpEvent::Allocated(resources(3)));
    assert_eq!(late.first(), Some(&Action::Free));
    assert_eq!(h.state(), State::rejected());
}

#[test]
fn a_failed_allocation_after_the_timeout_needs_no_release() {
    let mut h = Harness::create(3);
    h.handle(OpEvent::Start);
    h.handle(OpEvent::Timeout);
    let actions = h.handle(OpEvent::AllocationFailed(ErrorBody::new(
        404,
        "not-found",
        "x",
        "y",
    )));
    assert!(!actions.contains(&Action::Free));
    assert_eq!(h.state(), State::rejected());
}

/// Which rules a rollback removes at each step is the install sub-machine's (its tests);
/// here, what create does around it.
#[test]
fn a_failed_command_or_the_deadline_rolls_back_and_ends_down() {
    let switch_down = "SWITCH_UNAVAILABLE after 3 attempts";
    for (failure, reason) in [
        (Some(switch_down), switch_down),
        (None, "flow create timed out"),
    ] {
        let mut h = Harness::create(3);
        let verifying = h.drive_to(State::installing_rules(InstallStep::VerifyIngress));
        let rollback = h.handle(step_failure(&verifying, failure));
        assert_eq!(h.state(), State::rolling_back(), "{reason}");
        assert!(rollback.contains(&Action::Abandon));
        assert!(rollback.contains(&Action::ArmDeadline { after_ms: 10_000 }));
        let removes = sends(&rollback);
        assert_eq!(removes.len(), 6, "every rule of the flow was sent");
        assert!(removes.iter().all(|(_, a)| *a == SbAction::Remove));

        let done = h.succeed_all(&rollback);
        assert_eq!(h.state(), State::down(), "{reason}");
        assert_eq!(done.first(), Some(&Action::Free));
        let saved = done.iter().find_map(|a| match a {
            Action::Save(r) => Some((r.status, r.status_info.clone(), r.resources.clone())),
            _ => None,
        });
        assert_eq!(
            saved,
            Some((FlowStatus::Down, Some(reason.to_string()), None))
        );
    }
}

#[test]
fn a_late_success_of_an_abandoned_install_does_not_finish_the_rollback() {
    let mut h = Harness::create(3);
    let entered = h.drive_to(State::installing_rules(InstallStep::InstallNonIngress));
    let ids = sends(&entered);
    let rollback = h.handle(OpEvent::CommandFailed {
        command_id: ids[0].0.clone(),
        reason: "x".into(),
    });
    h.handle(OpEvent::CommandSucceeded {
        command_id: ids[1].0.clone(),
    });
    assert_eq!(h.state(), State::rolling_back());
    h.succeed_all(&rollback);
    assert_eq!(h.state(), State::down());
}

#[test]
fn a_failed_removal_is_reported_and_the_rollback_still_ends() {
    let mut h = Harness::create(3);
    h.drive_to(State::installing_rules(InstallStep::InstallNonIngress));
    let rollback = h.handle(OpEvent::Timeout);
    let removes = sends(&rollback);
    h.handle(OpEvent::CommandFailed {
        command_id: removes[0].0.clone(),
        reason: "SWITCH_UNAVAILABLE".into(),
    });
    let mut last = Vec::new();
    for (command_id, _) in &removes[1..] {
        last = h.handle(OpEvent::CommandSucceeded {
            command_id: command_id.clone(),
        });
    }
    assert_eq!(h.state(), State::down());
    let info = last.iter().find_map(|a| match a {
        Action::Save(r) => r.status_info.clone(),
        _ => None,
    });
    assert_eq!(
        info.as_deref(),
        Some("flow create timed out; rule removal failed: SWITCH_UNAVAILABLE")
    );
    let debts = owed(&last);
    assert_eq!(debts.len(), 1);
    assert_eq!(debts[0].reservation.resources, resources(3));
    assert_eq!(
        debts[0].rules.len(),
        1,
        "the one rule not confirmed removed"
    );
    assert!(
        owed_before(&last, &Action::Free),
        "its reservation is owed before it is freed"
    );
}

#[test]
fn rollback_gives_up_waiting_at_its_own_deadline() {
    let mut h = Harness::create(3);
    h.drive_to(State::installing_rules(InstallStep::VerifyIngress));
    h.handle(OpEvent::Timeout);
    assert_eq!(h.state(), State::rolling_back());
    let actions = h.handle(OpEvent::Timeout);
    assert_eq!(h.state(), State::down());
    assert!(actions.contains(&Action::Free));
    assert_eq!(
        owed(&actions)[0].rules.len(),
        6,
        "every rule sent is owed when its removal is not answered"
    );
}

#[test]
fn every_transition_is_written_to_the_history() {
    let mut h = Harness::create(3);
    h.handle(OpEvent::Start);
    let actions = h.handle(OpEvent::Allocated(resources(3)));
    let history: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::History {
                event,
                from_state,
                to_state,
                ..
            } => Some((event.as_str(), from_state.as_str(), to_state.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        history,
        vec![("allocated", "Validating", "InstallingNonIngress")]
    );
}

#[test]
fn finished_machines_ignore_further_events() {
    let mut h = Harness::create(3);
    h.drive_to(State::up());
    for event in [
        OpEvent::Timeout,
        OpEvent::CommandFailed {
            command_id: "f1:1:1".into(),
            reason: "x".into(),
        },
    ] {
        assert!(h.handle(event).is_empty());
        assert_eq!(h.state(), State::up());
    }
}
