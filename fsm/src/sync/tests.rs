use statig::blocking::IntoStateMachineExt;

use super::*;
use crate::test_support::{self, owed, owed_before, record, request, resources, step_failure};
use crate::{Reservation, Resources};

type Harness = test_support::Harness<FlowSync>;

impl Harness {
    fn sync(flow: FlowRecord) -> Self {
        let machine = FlowSync::new(flow, Timeouts::default(), "f1:3".into()).state_machine();
        Harness::new(machine, 300)
    }

    /// Answers every command of `actions` as switches holding `held` would: a dump lists the
    /// rules of its switch, anything else succeeds. The actions of the last answer.
    fn answer(&mut self, actions: &[Action], held: &[FlowSegment]) -> Vec<Action> {
        let mut last = Vec::new();
        for (command_id, action, segment) in sent(actions) {
            last = self.handle(match action {
                SbAction::Dump => OpEvent::RulesListed {
                    command_id,
                    rules: held
                        .iter()
                        .filter(|r| {
                            r.switch_id == segment.switch_id && r.cookie_id() == segment.cookie
                        })
                        .cloned()
                        .collect(),
                },
                _ => OpEvent::CommandSucceeded { command_id },
            });
        }
        last
    }

    /// Runs the whole sync against switches holding `held`: every action, in order.
    fn run(&mut self, held: &[FlowSegment]) -> Vec<Action> {
        let mut actions = self.handle(OpEvent::Start);
        let mut all = actions.clone();
        while !self.state().is_finished() {
            actions = self.answer(&actions, held);
            all.extend(actions.clone());
        }
        all
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
        transit_vlans: vec![3; resources(3).forward_path.len()],
        ..resources(3)
    }
}

/// The flow as a crash in the middle of a reroute left it: IN_PROGRESS, with a target.
fn interrupted_flow() -> FlowRecord {
    let mut flow = up_flow();
    flow.status = FlowStatus::InProgress;
    flow.target = Some(Box::new(Reservation {
        request: request(1, 3),
        resources: target_resources(),
    }));
    flow
}

fn recorded() -> Vec<FlowSegment> {
    flow_segments(&request(1, 3), &resources(3))
}

fn target() -> Vec<FlowSegment> {
    flow_segments(&request(1, 3), &target_resources())
}

/// Another flow's rule on switch 2 (cookie 9): never the sync's business.
fn foreign() -> FlowSegment {
    FlowSegment {
        cookie: 9,
        ..recorded()[0].clone()
    }
}

fn sent(actions: &[Action]) -> Vec<(String, SbAction, FlowSegment)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                command_id,
                action,
                segment,
            } => Some((command_id.clone(), *action, segment.clone())),
            _ => None,
        })
        .collect()
}

fn of(actions: &[Action], wanted: SbAction) -> Vec<FlowSegment> {
    sent(actions)
        .into_iter()
        .filter(|(_, action, _)| *action == wanted)
        .map(|(_, _, segment)| segment)
        .collect()
}

fn last_saved(actions: &[Action]) -> FlowRecord {
    actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Save(record) => Some(record.clone()),
            _ => None,
        })
        .expect("a saved record")
}

fn count(actions: &[Action], wanted: &Action) -> usize {
    actions.iter().filter(|a| *a == wanted).count()
}

fn sorted(mut segments: Vec<FlowSegment>) -> Vec<FlowSegment> {
    segments.sort_by_key(|s| (s.switch_id, s.cookie));
    segments
}

#[test]
fn start_answers_in_progress_and_lists_the_rules_of_every_switch_on_the_path() {
    let mut h = Harness::sync(up_flow());
    let actions = h.handle(OpEvent::Start);
    assert_eq!(h.state(), State::listing_rules());
    let saved = last_saved(&actions);
    assert_eq!((saved.status, saved.version), (FlowStatus::InProgress, 2));
    assert!(actions.contains(&Action::Respond(NbResponse::Flow { flow: saved })));
    let dumped: Vec<u64> = of(&actions, SbAction::Dump)
        .iter()
        .map(|s| s.switch_id.0)
        .collect();
    assert_eq!(dumped, vec![1, 2, 3]);
}

#[test]
fn a_synced_flow_gets_exactly_its_recorded_rules_and_ends_up() {
    let mut h = Harness::sync(up_flow());
    let actions = h.run(&[foreign()]);
    assert!(of(&actions, SbAction::Remove).is_empty(), "nothing stray");
    assert_eq!(sorted(of(&actions, SbAction::Install)), sorted(recorded()));
    assert_eq!(sorted(of(&actions, SbAction::Verify)), sorted(recorded()));
    assert_eq!(h.state(), State::up());
    let saved = last_saved(&actions);
    assert_eq!(
        (
            saved.status,
            saved.status_info,
            saved.resources,
            saved.target
        ),
        (FlowStatus::Up, None, Some(resources(3)), None)
    );
    for reservation in [Action::Free, Action::Release, Action::Commit] {
        assert_eq!(count(&actions, &reservation), 0, "{reservation:?}");
    }
}

/// What switches hold after a crash in the middle of a reroute, one rule per match as on
/// OpenFlow switches: the interrupted move's ingress rules replaced the recorded ones (same
/// endpoints), its other rules sit on matches of their own; switch 2's recorded transit rule
/// was tampered with (another port), a copy of it sits on another VLAN; and switch 2 also
/// holds another flow's rule. Returns what is held and the rules that must go.
fn after_an_interrupted_move() -> (Vec<FlowSegment>, Vec<FlowSegment>) {
    let (target, recorded) = (target(), recorded());
    let tampered = FlowSegment {
        out_port: 40,
        ..recorded[1].clone()
    };
    let elsewhere = FlowSegment {
        in_vlan: 99,
        ..recorded[1].clone()
    };
    let target_elsewhere: Vec<FlowSegment> = target
        .iter()
        .filter(|rule| !rule.kind.is_ingress())
        .cloned()
        .collect();
    let mut held: Vec<FlowSegment> = target.clone();
    held.extend([tampered, elsewhere.clone(), foreign()]);
    held.extend(
        recorded
            .iter()
            .enumerate()
            .filter(|(i, rule)| *i != 1 && !rule.kind.is_ingress())
            .map(|(_, rule)| rule.clone()),
    );
    let mut must_go = target_elsewhere;
    must_go.push(elsewhere);
    (held, must_go)
}

#[test]
fn stray_rules_of_the_flow_are_removed_and_others_left_alone() {
    let (held, must_go) = after_an_interrupted_move();
    let mut h = Harness::sync(interrupted_flow());
    let actions = h.run(&held);
    assert_eq!(
        sorted(of(&actions, SbAction::Remove)),
        sorted(must_go),
        "rules where the record expects another one are replaced by the install, not removed"
    );
    assert_eq!(
        count(&actions, &Action::Release),
        1,
        "the target's reservation goes back"
    );
    assert_eq!(sorted(of(&actions, SbAction::Install)), sorted(recorded()));
    let saved = last_saved(&actions);
    assert_eq!((saved.status, saved.target), (FlowStatus::Up, None));
    let removals_first = actions.iter().position(|a| {
        matches!(
            a,
            Action::Send {
                action: SbAction::Remove,
                ..
            }
        )
    }) < actions.iter().position(|a| {
        matches!(
            a,
            Action::Send {
                action: SbAction::Install,
                ..
            }
        )
    });
    assert!(
        removals_first,
        "strays go before the recorded rules are installed"
    );
    assert!(owed(&actions).is_empty(), "every removal was confirmed");
}

#[test]
fn strays_whose_removal_fails_are_owed_with_the_reservation_they_use() {
    let (held, must_go) = after_an_interrupted_move();
    let mut h = Harness::sync(interrupted_flow());
    let listing = h.handle(OpEvent::Start);
    h.answer(&listing, &held);
    assert_eq!(h.state(), State::removing_strays());
    let done = h.handle(OpEvent::Timeout);
    let debts = owed(&done);
    let cookies: Vec<u64> = debts
        .iter()
        .map(|d| d.reservation.resources.cookie)
        .collect();
    assert_eq!(cookies, vec![1, 2], "the record's stray and the target's");
    let owed_rules: Vec<FlowSegment> = debts.into_iter().flat_map(|d| d.rules).collect();
    assert_eq!(sorted(owed_rules), sorted(must_go));
    assert!(owed_before(&done, &Action::Release));
}

#[test]
fn a_flow_without_resources_goes_down_and_still_loses_its_target_rules() {
    let mut bare = record(3);
    bare.status = FlowStatus::InProgress;
    let mut h = Harness::sync(bare.clone());
    let actions = h.run(&[]);
    assert!(sent(&actions).is_empty(), "no switch to look at");
    let saved = last_saved(&actions);
    assert_eq!(saved.status, FlowStatus::Down);
    assert_eq!(saved.status_info.as_deref(), Some(NO_PATH));

    bare.target = interrupted_flow().target;
    let mut h = Harness::sync(bare);
    let actions = h.run(&target());
    assert_eq!(sorted(of(&actions, SbAction::Remove)), sorted(target()));
    assert_eq!(count(&actions, &Action::Release), 1);
    assert_eq!(last_saved(&actions).status, FlowStatus::Down);
}

#[test]
fn a_switch_that_cannot_list_its_rules_does_not_stop_the_sync() {
    let mut h = Harness::sync(up_flow());
    let start = h.handle(OpEvent::Start);
    let dumps = sent(&start);
    for (command_id, _, _) in &dumps[..2] {
        h.handle(OpEvent::RulesListed {
            command_id: command_id.clone(),
            rules: Vec::new(),
        });
    }
    let next = h.handle(OpEvent::CommandFailed {
        command_id: dumps[2].0.clone(),
        reason: "SWITCH_UNAVAILABLE".into(),
    });
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress)
    );
    assert!(!of(&next, SbAction::Install).is_empty());

    let mut h = Harness::sync(up_flow());
    h.handle(OpEvent::Start);
    h.handle(OpEvent::Timeout);
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress),
        "a listing timeout goes on"
    );
}

#[test]
fn an_install_failure_or_timeout_leaves_the_flow_down_on_its_resources() {
    for (failure, reason) in [
        (Some("TABLE_FULL"), "TABLE_FULL"),
        (None, "flow sync timed out"),
    ] {
        let mut h = Harness::sync(up_flow());
        let start = h.handle(OpEvent::Start);
        let installs = h.answer(&start, &[]);
        assert_eq!(
            h.state(),
            State::installing_rules(InstallStep::InstallNonIngress)
        );
        let actions = h.handle(step_failure(&installs, failure));
        assert_eq!(h.state(), State::down());
        assert!(actions.contains(&Action::Abandon));
        let saved = last_saved(&actions);
        assert_eq!(
            saved.resources,
            Some(resources(3)),
            "the partial rules are the flow's"
        );
        assert_eq!(saved.status_info.as_deref(), Some(reason));
    }
}

#[test]
fn a_one_switch_flow_goes_straight_to_the_ingress_step() {
    let mut flow = record(1);
    flow.resources = Some(resources(1));
    let mut h = Harness::sync(flow);
    let start = h.handle(OpEvent::Start);
    h.answer(&start, &[]);
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallIngress)
    );
}

#[test]
fn every_transition_of_a_sync_is_written_to_the_history() {
    let mut h = Harness::sync(up_flow());
    let actions = h.run(&[]);
    let transitions: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::History {
                from_state,
                to_state,
                ..
            } => Some(format!("{from_state} -> {to_state}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        transitions,
        vec![
            "Received -> ListingRules",
            "ListingRules -> InstallingNonIngress",
            "InstallingNonIngress -> VerifyingNonIngress",
            "VerifyingNonIngress -> InstallingIngress",
            "InstallingIngress -> VerifyingIngress",
            "VerifyingIngress -> Up",
        ]
    );
}

#[test]
fn late_and_unknown_answers_are_ignored() {
    let mut h = Harness::sync(up_flow());
    h.handle(OpEvent::Start);
    let ignored = h.handle(OpEvent::RulesListed {
        command_id: "other:1".into(),
        rules: target(),
    });
    assert!(ignored.is_empty());
    assert_eq!(h.state(), State::listing_rules());
}
