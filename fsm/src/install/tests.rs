use statig::blocking::IntoStateMachineExt;
use statig::prelude::*;

use super::*;
use crate::segments::flow_segments;
use crate::test_support::{self, request, resources, sends, step_failure};

/// The smallest machine on the install sub-machine, wired as create, reroute and sync wire
/// it: `Start` enters it at the flow's first step, the last step ends in `installed`, and a
/// failure of the current step or the deadline ends in `failed`.
struct Installer {
    install: RuleInstall,
}

#[state_machine(
    initial = "State::idle()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    superstate(derive(Debug))
)]
impl Installer {
    #[state]
    fn idle(&mut self, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Start => Transition(State::installing_rules(self.install.first_step())),
            _ => Handled,
        }
    }

    #[state(superstate = "installing", entry_action = "send_install_step")]
    fn installing_rules(&mut self, step: &InstallStep, event: &OpEvent) -> Outcome<State> {
        self.install
            .advance(*step, event, State::installing_rules, State::installed())
    }

    #[action]
    fn send_install_step(&mut self, step: &InstallStep, context: &mut OpContext) {
        self.install.send_step(context, *step);
    }

    /// Gives up as sync does; create and reroute roll back, with `RuleInstall::roll_back`.
    #[superstate]
    fn installing(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        let Some(reason) = self.install.step_failure(event, || "timed out".into()) else {
            return Handled;
        };
        self.install.abandon(context, &reason);
        Transition(State::failed())
    }

    #[state]
    fn installed(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[state]
    fn failed(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }
}

type Harness = test_support::Harness<Installer>;

const EVERY_STEP: [InstallStep; 4] = [
    InstallStep::InstallNonIngress,
    InstallStep::VerifyNonIngress,
    InstallStep::InstallIngress,
    InstallStep::VerifyIngress,
];

/// The rules of a flow from switch 1 to switch `dst` of `linear:3` (dst 1 = one switch).
fn segments(dst: u64) -> Vec<FlowSegment> {
    flow_segments(&request(1, dst), &resources(dst))
}

fn rule_install(dst: u64) -> RuleInstall {
    let mut install = RuleInstall::new("f1:1".into());
    install.set_segments(segments(dst));
    install
}

impl Harness {
    fn installer(dst: u64) -> Self {
        let machine = Installer {
            install: rule_install(dst),
        }
        .state_machine();
        Harness::new(machine, 100)
    }

    /// Drives a 3-switch install up to (and into) `stop`, returning the actions that entered it.
    fn drive_to(&mut self, stop: InstallStep) -> Vec<Action> {
        let mut actions = self.handle(OpEvent::Start);
        while self.state() != State::installing_rules(stop) {
            actions = self.succeed_all(&actions);
        }
        actions
    }

    fn succeed(&mut self, command_id: &str) {
        self.handle(OpEvent::CommandSucceeded {
            command_id: command_id.into(),
        });
    }
}

/// The Sends of `action` for the rules of `segments` that are (or are not) ingress rules,
/// numbered on from `issued`.
fn step_sends(
    segments: &[FlowSegment],
    action: SbAction,
    ingress: bool,
    issued: &mut u32,
) -> Vec<Action> {
    segments
        .iter()
        .filter(|segment| segment.kind.is_ingress() == ingress)
        .map(|segment| {
            *issued += 1;
            Action::Send {
                command_id: format!("f1:1:{issued}"),
                action,
                segment: segment.clone(),
            }
        })
        .collect()
}

#[test]
fn the_non_ingress_rules_are_installed_and_verified_before_the_ingress_ones() {
    let mut h = Harness::installer(3);
    let mut actions = h.handle(OpEvent::Start);
    let mut issued = 0;
    let expected = [
        (InstallStep::InstallNonIngress, SbAction::Install, false, 4),
        (InstallStep::VerifyNonIngress, SbAction::Verify, false, 4),
        (InstallStep::InstallIngress, SbAction::Install, true, 2),
        (InstallStep::VerifyIngress, SbAction::Verify, true, 2),
    ];
    for (step, action, ingress, rules) in expected {
        assert_eq!(h.state(), State::installing_rules(step));
        let wanted = step_sends(&segments(3), action, ingress, &mut issued);
        assert_eq!(wanted.len(), rules, "{step:?}");
        assert_eq!(actions, wanted, "{step:?}: its Sends, ids numbered on");
        actions = h.succeed_all(&actions);
    }
    assert_eq!(h.state(), State::installed());
    assert!(actions.is_empty());
}

#[test]
fn a_one_switch_flow_starts_with_the_ingress_install() {
    let mut h = Harness::installer(1);
    let installs = h.handle(OpEvent::Start);
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallIngress)
    );
    let mut issued = 0;
    assert_eq!(
        installs,
        step_sends(&segments(1), SbAction::Install, true, &mut issued)
    );
    assert_eq!(installs.len(), 2, "one ingress rule each way");
    let verifies = h.succeed_all(&installs);
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::VerifyIngress)
    );
    assert_eq!(
        verifies,
        step_sends(&segments(1), SbAction::Verify, true, &mut issued)
    );
    h.succeed_all(&verifies);
    assert_eq!(h.state(), State::installed());
}

#[test]
fn a_step_waits_for_every_command_and_ignores_repeated_late_and_unknown_answers() {
    let mut h = Harness::installer(3);
    let installs = sends(&h.handle(OpEvent::Start));
    for (command_id, _) in &installs[..3] {
        h.succeed(command_id);
    }
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress)
    );
    h.succeed(&installs[0].0);
    h.succeed("f1:0:99");
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::InstallNonIngress),
        "a repeated answer and an unknown one change nothing"
    );
    h.succeed(&installs[3].0);
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::VerifyNonIngress)
    );
    for (command_id, _) in &installs {
        h.succeed(command_id);
    }
    assert_eq!(
        h.state(),
        State::installing_rules(InstallStep::VerifyNonIngress),
        "the previous step's answers do not complete this one"
    );
}

#[test]
fn a_failure_of_the_current_step_or_the_deadline_goes_to_the_superstate_from_every_step() {
    for step in EVERY_STEP {
        for failure in [Some("SWITCH_UNAVAILABLE after 3 attempts"), None] {
            let mut h = Harness::installer(3);
            let event = step_failure(&h.drive_to(step), failure);
            let actions = h.handle(event.clone());
            assert_eq!(h.state(), State::failed(), "{event:?} in {step:?}");
            assert_eq!(actions, vec![Action::Abandon]);
        }
    }
}

#[test]
fn a_failure_of_a_command_not_pending_goes_nowhere() {
    let mut h = Harness::installer(3);
    let installs = h.handle(OpEvent::Start);
    h.succeed_all(&installs);
    let answered = sends(&installs)[0].0.clone();
    for command_id in [answered, "f1:0:99".into()] {
        let actions = h.handle(OpEvent::CommandFailed {
            command_id,
            reason: "x".into(),
        });
        assert!(actions.is_empty());
        assert_eq!(
            h.state(),
            State::installing_rules(InstallStep::VerifyNonIngress)
        );
    }
}

#[test]
fn a_rollback_removes_every_rule_an_install_was_sent_for() {
    let installed = |ingress_too: bool| -> Vec<FlowSegment> {
        segments(3)
            .into_iter()
            .filter(|s| ingress_too || !s.kind.is_ingress())
            .collect()
    };
    let cases = [
        (1, installed(false)),
        (2, installed(false)),
        (3, installed(true)),
        (4, installed(true)),
    ];
    for (steps_sent, rules_sent) in cases {
        let mut install = rule_install(3);
        let mut context = OpContext::new(100);
        for step in &EVERY_STEP[..steps_sent] {
            install.send_step(&mut context, *step);
        }
        let pending = sends(&context.actions).pop().unwrap().0;

        let mut context = OpContext::new(101);
        let outcome = install.roll_back(&mut context, "TABLE_FULL", "rolling back", "idle");
        assert_eq!(outcome, Outcome::Transition("rolling back"));
        assert_eq!(context.details, "TABLE_FULL");
        assert_eq!(context.actions, vec![Action::Abandon]);
        assert!(
            !install.commands.is_pending(&pending),
            "the step is abandoned"
        );

        install.remove_sent(&mut context, 10_000);
        assert_eq!(context.actions[1], Action::ArmDeadline { after_ms: 10_000 });
        let removed: Vec<FlowSegment> = context.actions[2..]
            .iter()
            .map(|a| match a {
                Action::Send {
                    action: SbAction::Remove,
                    segment,
                    ..
                } => segment.clone(),
                other => panic!("not a removal: {other:?}"),
            })
            .collect();
        assert_eq!(removed, rules_sent, "after {steps_sent} step(s)");
    }
}

#[test]
fn a_rollback_before_any_install_has_nothing_to_remove() {
    let mut install = rule_install(3);
    let mut context = OpContext::new(100);
    let outcome = install.roll_back(&mut context, "TABLE_FULL", "rolling back", "idle");
    assert_eq!(outcome, Outcome::Transition("idle"));
}
