//! Shared fixtures for the state machine tests.

use std::collections::{BTreeMap, BTreeSet};

use statig::blocking::{IntoStateMachine, State, StateMachine, Superstate};

use crate::dataplane::{DataPlane, LinkEnd, RuleMatch};
use crate::network::Network;
use crate::operation::{Action, OpContext, OpEvent};
use crate::segments::FlowSegment;
use crate::{
    FlowEndpoint, FlowRecord, FlowRequest, ProtectedPath, RemovalDebt, Resources, SbAction,
    SwitchId,
};

/// Flow "f1" from port 40 VLAN 10 of switch `src` to port 41 VLAN 20 of switch `dst`, 1 Mbit/s.
pub fn request(src: u64, dst: u64) -> FlowRequest {
    FlowRequest {
        flow_id: "f1".into(),
        source: FlowEndpoint {
            switch_id: SwitchId(src),
            port_number: 40,
            vlan_id: 10,
        },
        destination: FlowEndpoint {
            switch_id: SwitchId(dst),
            port_number: 41,
            vlan_id: 20,
        },
        maximum_bandwidth: 1000,
        description: String::new(),
        ..Default::default()
    }
}

/// A flow from switch 1 to switch `dst` of a `linear:3` network (dst 1 = one-switch flow).
pub fn record(dst: u64) -> FlowRecord {
    FlowRecord::new(request(1, dst), 100)
}

pub fn resources(dst: u64) -> Resources {
    let network = Network::generate("linear:3").unwrap().unwrap();
    let path = network
        .shortest_path(SwitchId(1), SwitchId(dst), 0, |_| Some(u64::MAX))
        .unwrap();
    Resources {
        cookie: 1,
        transit_vlans: vec![2; path.len()],
        forward_meter: Some(32),
        reverse_meter: Some(32),
        forward_path: path,
        ..Default::default()
    }
}

/// The (command id, action) of every Send among `actions`.
pub fn sends(actions: &[Action]) -> Vec<(String, SbAction)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                command_id, action, ..
            } => Some((command_id.clone(), *action)),
            _ => None,
        })
        .collect()
}

/// What ends the install step that `entered` started: the failure of its first command for
/// `reason`, or the deadline when there is no reason.
pub fn step_failure(entered: &[Action], reason: Option<&str>) -> OpEvent {
    match reason {
        Some(reason) => OpEvent::CommandFailed {
            command_id: sends(entered)[0].0.clone(),
            reason: reason.into(),
        },
        None => OpEvent::Timeout,
    }
}

/// The debts handed over among `actions`.
pub fn owed(actions: &[Action]) -> Vec<RemovalDebt> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Owe(debt) => Some(debt.clone()),
            _ => None,
        })
        .collect()
}

/// Whether the debts among `actions` are handed over before `release` lets go of a
/// reservation.
pub fn owed_before(actions: &[Action], release: &Action) -> bool {
    let last_owe = actions.iter().rposition(|a| matches!(a, Action::Owe(_)));
    let release = actions.iter().position(|a| a == release);
    matches!((last_owe, release), (Some(owe), Some(release)) if owe < release)
}

/// Drives one of the flow machines: each event a millisecond after the last, returning the
/// actions it asked for.
pub struct Harness<M: IntoStateMachine> {
    pub machine: StateMachine<M>,
    pub now: u64,
}

impl<M> Harness<M>
where
    for<'evt, 'ctx> M: IntoStateMachine<Event<'evt> = OpEvent, Context<'ctx> = OpContext>,
    M::State: State<M> + Clone,
    for<'sub> M::Superstate<'sub>: Superstate<M>,
{
    pub fn new(machine: StateMachine<M>, now: u64) -> Self {
        Harness { machine, now }
    }

    pub fn handle(&mut self, event: OpEvent) -> Vec<Action> {
        self.now += 1;
        let mut context = OpContext::new(self.now);
        context.handling(&event);
        self.machine.handle_with_context(&event, &mut context);
        context.actions
    }

    pub fn state(&self) -> M::State {
        self.machine.state().clone()
    }

    /// Answers every command of `actions` with success; returns the actions of the last answer.
    pub fn succeed_all(&mut self, actions: &[Action]) -> Vec<Action> {
        let mut last = Vec::new();
        for (command_id, _) in sends(actions) {
            last = self.handle(OpEvent::CommandSucceeded { command_id });
        }
        last
    }
}

/// A flow from switch 1 to switch 3 of a `ring:4`, on 1 → 2 → 3, protected by 1 → 4 → 3.
pub fn protected_resources() -> Resources {
    let network = Network::generate("ring:4").unwrap().unwrap();
    let through = |via: u64| {
        network
            .shortest_path(SwitchId(1), SwitchId(3), 0, |isl| {
                let avoided = if via == 2 { SwitchId(4) } else { SwitchId(2) };
                (isl.src_switch != avoided && isl.dst_switch != avoided).then_some(u64::MAX)
            })
            .unwrap()
    };
    Resources {
        cookie: 1,
        transit_vlans: vec![2, 2],
        forward_meter: Some(32),
        reverse_meter: Some(32),
        forward_path: through(2),
        protected: Some(Box::new(ProtectedPath {
            forward_path: through(4),
            transit_vlans: vec![3, 3],
        })),
        ..Default::default()
    }
}

/// Rule tables as plain lists (so two rules may match one packet) over a generated network.
pub struct Tables {
    pub rules: BTreeMap<SwitchId, Vec<FlowSegment>>,
    pub network: Network,
    /// Ports whose link is down, by the switch they are on.
    pub down: BTreeSet<(SwitchId, u32)>,
}

impl Tables {
    pub fn new(spec: &str, rules: Vec<FlowSegment>) -> Tables {
        let network = Network::generate(spec).unwrap().unwrap();
        let mut tables: BTreeMap<SwitchId, Vec<FlowSegment>> = network
            .switches()
            .map(|s| (s.switch_id, Vec::new()))
            .collect();
        for rule in rules {
            tables.entry(rule.switch_id).or_default().push(rule);
        }
        Tables {
            rules: tables,
            network,
            down: BTreeSet::new(),
        }
    }

    /// Applies the installs among `actions` as a switch does: each replaces the rule at its
    /// match.
    pub fn apply_installs(&mut self, actions: &[Action]) {
        for action in actions {
            if let Action::Send {
                action: SbAction::Install,
                segment,
                ..
            } = action
            {
                let table = self.rules.entry(segment.switch_id).or_default();
                table.retain(|rule| rule.rule_match() != segment.rule_match());
                table.push(segment.clone());
            }
        }
    }
}

impl DataPlane for Tables {
    fn matching(&self, switch_id: SwitchId, rule: RuleMatch) -> Option<Vec<&FlowSegment>> {
        let rules = self.rules.get(&switch_id)?;
        Some(rules.iter().filter(|r| r.rule_match() == rule).collect())
    }

    fn link(&self, switch_id: SwitchId, port: u32) -> Option<LinkEnd> {
        let isl = self
            .network
            .links()
            .iter()
            .map(|l| l.isl)
            .find(|i| i.src_switch == switch_id && i.src_port == port)?;
        Some(LinkEnd {
            switch_id: isl.dst_switch,
            port: isl.dst_port,
            up: !self.down.contains(&(switch_id, port)),
        })
    }
}
