use std::collections::BTreeSet;

use statig::blocking::IntoStateMachineExt;

use super::*;
use crate::dataplane::{trace, PortVlan};
use crate::segments::{HeldRule, SegmentKind};
use crate::test_support::{self, protected_resources, record, sends, Tables};
use crate::SwitchId;

type Harness = test_support::Harness<FlowSwap>;

/// Flow "f1" UP on 1 → 2 → 3 of a `ring:4`, protected by 1 → 4 → 3.
fn protected_flow() -> FlowRecord {
    let mut flow = record(3);
    flow.request.allocate_protected_path = true;
    flow.status = FlowStatus::Up;
    flow.resources = Some(protected_resources());
    flow
}

fn harness(flow: FlowRecord) -> Harness {
    let machine = FlowSwap::new(flow, Timeouts::default(), "f1:5".into()).state_machine();
    Harness::new(machine, 500)
}

/// The switches as a create left them: every rule of the flow, the primary's ingress the way in.
fn installed(flow: &FlowRecord) -> Tables {
    let resources = flow.resources.as_ref().unwrap();
    Tables::new("ring:4", flow_segments(&flow.request, resources))
}

/// Whether a packet gets from each endpoint to the other.
fn carries_both_ways(tables: &Tables, flow: &FlowRecord) -> bool {
    let (source, destination): (PortVlan, PortVlan) = (
        (&flow.request.source).into(),
        (&flow.request.destination).into(),
    );
    trace(tables, source).delivered_at(&destination)
        && trace(tables, destination).delivered_at(&source)
}

/// Takes the primary's first link (1 → 2) down, both ways.
fn fail_primary(tables: &mut Tables, flow: &FlowRecord) {
    let isl = flow.resources.as_ref().unwrap().forward_path[0];
    tables.down.insert((isl.src_switch, isl.src_port));
    tables.down.insert((isl.dst_switch, isl.dst_port));
}

/// Every rule the tables hold, as switches hold them.
fn held(tables: &Tables) -> BTreeSet<(SwitchId, HeldRule)> {
    tables
        .rules
        .values()
        .flatten()
        .map(|rule| (rule.switch_id, rule.held()))
        .collect()
}

fn saved(actions: &[Action]) -> Option<FlowRecord> {
    actions.iter().rev().find_map(|a| match a {
        Action::Save(record) => Some(record.clone()),
        _ => None,
    })
}

#[test]
fn a_swap_changes_only_the_ingress_rules_and_packets_take_the_protected_path() {
    let flow = protected_flow();
    let mut tables = installed(&flow);
    fail_primary(&mut tables, &flow);
    assert!(!carries_both_ways(&tables, &flow), "the primary is broken");

    let mut h = harness(flow.clone());
    let installs = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::installing_ingress());
    let installed_on: Vec<(SwitchId, SegmentKind)> = installs
        .iter()
        .filter_map(|a| match a {
            Action::Send { segment, .. } => Some((segment.switch_id, segment.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        installed_on,
        vec![
            (SwitchId(1), SegmentKind::Ingress),
            (SwitchId(3), SegmentKind::Ingress)
        ],
        "one install per endpoint switch"
    );
    tables.apply_installs(&installs);
    assert!(
        carries_both_ways(&tables, &flow),
        "the protected path carries the flow"
    );

    let verifies = h.succeed_all(&installs);
    assert!(sends(&verifies).iter().all(|(_, a)| *a == SbAction::Verify));
    let done = h.succeed_all(&verifies);
    assert_eq!(h.state(), State::swapped());
    assert!(done.contains(&Action::SwapPaths));
    let record = saved(&done).unwrap();
    assert_eq!(record.status, FlowStatus::Up);
    let before = flow.resources.as_ref().unwrap();
    let after = record.resources.as_ref().unwrap();
    assert_eq!(
        Some(&after.forward_path),
        before.protected.as_ref().map(|p| &p.forward_path)
    );
    assert_eq!(
        after.protected.as_ref().map(|p| &p.forward_path),
        Some(&before.forward_path)
    );
    // What the switches hold is what the swapped record expects.
    let expected = Tables::new("ring:4", flow_segments(&record.request, after));
    assert_eq!(held(&tables), held(&expected));
    assert!(done
        .iter()
        .any(|a| matches!(a, Action::Respond(NbResponse::Flow { .. }))));
}

/// A swap moves traffic, not the reservation's shortfall: a DEGRADED flow stays DEGRADED.
#[test]
fn a_degraded_flow_swapped_stays_degraded_with_its_reason() {
    let mut flow = protected_flow();
    let reason = "no path has 1000 kbps available";
    if let Some(resources) = flow.resources.as_mut() {
        resources.without_bandwidth = true;
        resources.degraded = Some(reason.into());
    }
    flow.status = FlowStatus::Degraded;
    flow.status_info = Some(reason.into());
    let mut h = harness(flow);
    let installs = h.handle(OpEvent::Start);
    let verifies = h.succeed_all(&installs);
    let done = h.succeed_all(&verifies);
    assert_eq!(h.state(), State::swapped());
    let record = saved(&done).expect("saved");
    assert_eq!(
        (record.status, record.status_info.as_deref()),
        (FlowStatus::Degraded, Some(reason))
    );
}

#[test]
fn a_swap_a_switch_refuses_puts_the_primarys_ingress_back_and_leaves_the_flow_as_it_was() {
    let flow = protected_flow();
    let mut tables = installed(&flow);
    let mut h = harness(flow.clone());
    let installs = h.handle(OpEvent::Start);
    tables.apply_installs(&installs);
    let first = sends(&installs)[0].0.clone();
    h.handle(OpEvent::CommandSucceeded { command_id: first });
    let refused = sends(&installs)[1].0.clone();
    let restores = h.handle(OpEvent::CommandFailed {
        command_id: refused,
        reason: "BAD_COMMAND".into(),
    });
    assert_eq!(h.state(), State::restoring_ingress());
    assert!(restores.contains(&Action::Abandon));
    tables.apply_installs(&restores);
    assert!(
        carries_both_ways(&tables, &flow),
        "the primary carries the flow again"
    );
    assert_eq!(held(&tables), held(&installed(&flow)));

    let done = h.succeed_all(&restores);
    assert_eq!(h.state(), State::failed());
    assert!(!done.contains(&Action::SwapPaths));
    let record = saved(&done).unwrap();
    assert_eq!(
        (record.status, &record.resources),
        (FlowStatus::Up, &flow.resources),
        "the record is as it was"
    );
    assert!(done.iter().any(|a| matches!(
        a,
        Action::Respond(NbResponse::Error { error }) if error.status == 500
    )));
}

#[test]
fn a_swap_whose_rollback_fails_leaves_the_flow_down_and_says_why() {
    let mut h = harness(protected_flow());
    h.handle(OpEvent::Start);
    let restores = h.handle(OpEvent::Timeout);
    assert_eq!(h.state(), State::restoring_ingress());
    let done = h.handle(OpEvent::CommandFailed {
        command_id: sends(&restores)[0].0.clone(),
        reason: "SWITCH_UNAVAILABLE".into(),
    });
    let record = saved(&done).unwrap();
    assert_eq!(record.status, FlowStatus::Down);
    assert!(record
        .status_info
        .unwrap()
        .contains("could not be put back: SWITCH_UNAVAILABLE"));
}

#[test]
fn a_flow_without_a_protected_path_is_refused_and_unchanged() {
    let mut flow = protected_flow();
    if let Some(resources) = flow.resources.as_mut() {
        resources.protected = None;
    }
    let mut h = harness(flow);
    let actions = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::refused());
    assert!(sends(&actions).is_empty());
    assert!(saved(&actions).is_none());
    assert!(matches!(
        actions.first(),
        Some(Action::Respond(NbResponse::Error { error })) if error.status == 409
    ));
}
