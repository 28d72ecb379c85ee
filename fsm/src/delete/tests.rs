use statig::blocking::{IntoStateMachineExt, StateMachine};

use super::*;
use crate::operation::Action;
use crate::test_support::{owed, owed_before, record, resources, sends};
use crate::FlowStatus;

fn machine(with_resources: bool) -> StateMachine<FlowDelete> {
    let mut flow = record(3);
    flow.status = FlowStatus::Up;
    if with_resources {
        flow.resources = Some(resources(3));
    }
    FlowDelete::new(flow, Timeouts::default(), "f1:2".into()).state_machine()
}

fn handle(machine: &mut StateMachine<FlowDelete>, event: OpEvent) -> Vec<Action> {
    let mut context = OpContext::new(500);
    context.handling(&event);
    machine.handle_with_context(&event, &mut context);
    context.actions
}

#[test]
fn delete_removes_every_rule_then_frees_and_forgets() {
    let mut m = machine(true);
    let started = handle(&mut m, OpEvent::Start);
    assert_eq!(m.state(), &State::removing_rules());
    assert!(started.iter().any(|a| matches!(a, Action::Respond(NbResponse::Flow { flow }) if flow.status == FlowStatus::InProgress)));
    let removes = sends(&started);
    assert_eq!(removes.len(), 6);
    assert!(removes.iter().all(|(_, a)| *a == SbAction::Remove));
    let mut last = Vec::new();
    for (command_id, _) in removes {
        last = handle(&mut m, OpEvent::CommandSucceeded { command_id });
    }
    assert!(m.state().is_finished());
    assert_eq!(&last[..2], &[Action::Free, Action::Remove { version: 3 }]);
}

#[test]
fn a_flow_without_resources_is_forgotten_at_once() {
    let mut m = machine(false);
    let actions = handle(&mut m, OpEvent::Start);
    assert!(m.state().is_finished());
    assert!(sends(&actions).is_empty());
    assert!(!actions.contains(&Action::Free));
    assert!(actions.contains(&Action::Remove { version: 3 }));
}

#[test]
fn removal_failures_do_not_keep_the_flow() {
    let mut m = machine(true);
    let removes = sends(&handle(&mut m, OpEvent::Start));
    handle(
        &mut m,
        OpEvent::CommandFailed {
            command_id: removes[0].0.clone(),
            reason: "SWITCH_UNAVAILABLE".into(),
        },
    );
    let mut last = Vec::new();
    for (command_id, _) in &removes[1..] {
        last = handle(
            &mut m,
            OpEvent::CommandSucceeded {
                command_id: command_id.clone(),
            },
        );
    }
    assert!(m.state().is_finished());
    assert!(last.contains(&Action::Free));
    let details = last.iter().find_map(|a| match a {
        Action::History { details, .. } => Some(details.clone()),
        _ => None,
    });
    assert_eq!(
        details.as_deref(),
        Some("rule removal failed: SWITCH_UNAVAILABLE; 1 rule(s) handed to the removal debt")
    );
    let debts = owed(&last);
    assert_eq!(debts.len(), 1);
    assert_eq!(
        debts[0].rules.len(),
        1,
        "only the rule not confirmed removed"
    );
    assert!(owed_before(&last, &Action::Free));
}

#[test]
fn the_deadline_ends_a_delete_that_hangs() {
    let mut m = machine(true);
    handle(&mut m, OpEvent::Start);
    let actions = handle(&mut m, OpEvent::Timeout);
    assert!(m.state().is_finished());
    assert!(actions.contains(&Action::Abandon));
    assert!(actions.contains(&Action::Free));
    assert_eq!(
        owed(&actions)[0].rules.len(),
        6,
        "every rule still unanswered is owed"
    );
}
