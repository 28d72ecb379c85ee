//! Switches hold exactly what the flows say, under any interleaving: random creates, deletes,
//! reroutes, swaps onto protected paths (odd flows ask for one), endpoint swaps (two flows
//! exchange their destinations), link failures and restorations run through the real topology (one worker, in
//! logical time) against simulated OpenFlow switches (an install replaces the rule with the
//! same match) that lose, refuse and delay commands at random, but apply the commands to one
//! switch in the order they were sent, as one connection to it does. Checked throughout:
//!
//! - no two flows' rules ever match the same packet: no install lands on a match where
//!   another flow's rule is (but an ingress rule of one of two flows that swap endpoints,
//!   which replaces the other's by design);
//! - no resource is handed out while a rule using it may still be on a switch: when a flow
//!   gets a cookie, a transit VLAN on a link, a meter or an endpoint, no other flow's rule
//!   that uses it is on a switch or on its way to one.
//!
//! Then the faults stop and every link comes back: every flow must be UP again (DOWN ones are
//! retried), the keeper sweeps, and every flow's packets must go from its source endpoint to
//! its destination endpoint both ways, and along its protected path too, every rule on the
//! switches carrying some flow's packets.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use hubspoke_fsm::dataplane::{PortVlan, TraceEnd};
use hubspoke_fsm::network::Network;
use hubspoke_fsm::operation::Timeouts;
use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{
    stable_hash, Envelope, FlowEndpoint, FlowEndpoints, FlowEvent, FlowRecord, FlowRequest,
    FlowStatus, Isl, NbRequest, Resources, SbAction, SbCommand, SbErrorCode, SbOutcome, SbResponse,
    SwitchId,
};
use hubspoke_speaker::RetryPolicy;
use hubspoke_switch_sim::SwitchFabric;
use hubspoke_topology::dataflow::{build, Inbound, Settings, Time};
use hubspoke_topology::hub::RerouteThrottle;
use hubspoke_topology::keeper::KeeperSettings;
use hubspoke_topology::metrics::Metrics;
use hubspoke_topology::recovery::Recovery;
use hubspoke_topology::replay::capture;
use proptest::prelude::*;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::input::Handle as InputHandle;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Input, Probe};

const FLOWS: usize = 10;
/// The longest logical time the test moves at once.
const STRIDE: Time = 25;
/// How long everything gets to settle once the faults are gone: the keeper's debt retries
/// (up to 0.8 s apart), a few sweeps (0.9 s round), repairs and reroutes.
const SETTLE_MS: Time = 6_000;
const NETWORK: &str = "grid:3x3";

#[derive(Clone, Debug)]
enum Step {
    Create {
        flow: usize,
        src: u64,
        dst: u64,
    },
    Delete {
        flow: usize,
    },
    Reroute {
        flow: usize,
    },
    Swap {
        flow: usize,
    },
    /// Two of the flows that exist, picked by `pick`, exchange their destinations.
    SwapEndpoints {
        pick: usize,
    },
    FailLink {
        link: usize,
    },
    RestoreLink {
        link: usize,
    },
    Wait {
        ms: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let flow = 0..FLOWS;
    prop_oneof![
        3 => (flow.clone(), 1..=9u64, 1..=9u64).prop_map(|(flow, src, dst)| Step::Create { flow, src, dst }),
        2 => flow.clone().prop_map(|flow| Step::Delete { flow }),
        2 => flow.clone().prop_map(|flow| Step::Reroute { flow }),
        1 => flow.prop_map(|flow| Step::Swap { flow }),
        2 => (0..100usize).prop_map(|pick| Step::SwapEndpoints { pick }),
        1 => (0..12usize).prop_map(|link| Step::FailLink { link }),
        1 => (0..12usize).prop_map(|link| Step::RestoreLink { link }),
        4 => (1..400u64).prop_map(|ms| Step::Wait { ms }),
    ]
}

fn settings() -> Settings {
    Settings {
        timeouts: Timeouts {
            operation_ms: 2_000,
            rollback_ms: 800,
        },
        retry: RetryPolicy {
            max_attempts: 2,
            response_timeout_ms: 60,
            backoff_base_ms: 10,
            backoff_cap_ms: 50,
        },
        reroute: RerouteThrottle {
            delay_ms: 50,
            max_delay_ms: 200,
        },
        keeper: KeeperSettings {
            debt_retry_ms: 100,
            debt_retry_cap_ms: 800,
            sweep_ms: 900,
            sweep_parallel: 2,
        },
    }
}

/// Flow `flow`'s request: its endpoints depend on the flow only, so a flow created again
/// asks for the same ones.
fn request(flow: usize, src: u64, dst: u64) -> FlowRequest {
    let end = |switch, port| FlowEndpoint {
        switch_id: SwitchId(switch),
        port_number: port,
        vlan_id: 10 + flow as u16,
    };
    FlowRequest {
        flow_id: format!("f{flow}"),
        source: end(src, 20),
        destination: end(dst, if src == dst { 21 } else { 20 }),
        maximum_bandwidth: 1_000_000,
        description: String::new(),
        allocate_protected_path: flow % 2 == 1 && src != dst,
        ..Default::default()
    }
}

/// A command on its way to a switch: it lands at `at`, unless lost.
struct InFlight {
    at: Time,
    command: Envelope<SbCommand>,
    fate: Fate,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Never reaches the switch.
    Lost,
    /// Reaches the switch, but its answer is lost.
    AppliedUnanswered,
    Refused,
    Applied,
}

/// What the test knows of the flows: who owns each cookie id, and their latest records.
#[derive(Default)]
struct Model {
    owner: HashMap<u64, String>,
    /// Flows that were asked to swap endpoints with each other: each may take the other's
    /// endpoints, and replace its ingress rules there.
    partners: BTreeSet<(String, String)>,
    records: BTreeMap<String, FlowRecord>,
    violations: Vec<String>,
}

impl Model {
    fn owner_of(&self, rule: &FlowSegment) -> Option<&String> {
        self.owner.get(&rule.cookie_id())
    }

    fn are_partners(&self, a: &str, b: &str) -> bool {
        let (a, b) = (a.to_string(), b.to_string());
        self.partners.contains(&(a.clone(), b.clone())) || self.partners.contains(&(b, a))
    }

    /// A flow got (or kept) `resources`: nothing another flow's rule uses may be among them.
    fn check_resources(
        &mut self,
        flow_id: &str,
        request: &FlowRequest,
        resources: &Resources,
        may_exist: &[(FlowSegment, Option<String>)],
    ) {
        for (rule, owner) in may_exist {
            let Some(owner) = owner.as_deref().filter(|o| *o != flow_id) else {
                continue;
            };
            let mut clash = Vec::new();
            if rule.cookie_id() == resources.cookie {
                clash.push("cookie");
            }
            let protected = resources
                .protected
                .iter()
                .flat_map(|p| p.forward_path.iter().zip(&p.transit_vlans));
            let path_vlans = resources
                .forward_path
                .iter()
                .zip(&resources.transit_vlans)
                .chain(protected);
            for (isl, vlan) in path_vlans {
                for (switch, port) in [
                    (isl.src_switch, isl.src_port),
                    (isl.dst_switch, isl.dst_port),
                ] {
                    let uses = rule.switch_id == switch
                        && ((rule.in_port == port && rule.in_vlan == *vlan)
                            || (rule.out_port == port && rule.out_vlan == *vlan));
                    if uses {
                        clash.push("transit VLAN");
                    }
                }
            }
            let partner = self.are_partners(flow_id, owner);
            for end in [&request.source, &request.destination] {
                if !partner
                    && rule.switch_id == end.switch_id
                    && rule.in_port == end.port_number
                    && rule.in_vlan == end.vlan_id
                {
                    clash.push("endpoint");
                }
            }
            for (switch, meter) in [
                (request.source.switch_id, resources.forward_meter),
                (request.destination.switch_id, resources.reverse_meter),
            ] {
                if meter.is_some() && rule.switch_id == switch && rule.meter_id == meter {
                    clash.push("meter");
                }
            }
            if !clash.is_empty() {
                self.violations.push(format!(
                    "{flow_id} was given a {} that {owner}'s rule {rule:?} may still use",
                    clash.join(", ")
                ));
            }
        }
    }
}

struct Rig {
    fabric: SwitchFabric,
    in_flight: Vec<InFlight>,
    /// When the last command sent to each switch lands: the next one cannot land before it.
    last_landing: HashMap<SwitchId, Time>,
    model: Model,
    seed: u64,
    drawn: u64,
    faults: bool,
}

impl Rig {
    /// A deterministic draw in 0..100 for each command.
    fn draw(&mut self) -> u64 {
        self.drawn += 1;
        stable_hash(&[&self.seed.to_le_bytes(), &self.drawn.to_le_bytes()]) % 100
    }

    fn send(&mut self, now: Time, command: Envelope<SbCommand>) {
        let roll = self.draw();
        let fate = match roll {
            _ if !self.faults => Fate::Applied,
            0..=9 => Fate::Lost,
            10..=19 => Fate::AppliedUnanswered,
            20..=34 => Fate::Refused,
            _ => Fate::Applied,
        };
        let switch = command.payload.segment.switch_id;
        let last = self.last_landing.get(&switch).copied().unwrap_or(0);
        let at = (now + 1 + self.draw() % 40).max(last);
        self.last_landing.insert(switch, at);
        self.in_flight.push(InFlight { at, command, fate });
    }

    /// Everything a switch holds or may come to hold: rules there, and installs on the way.
    fn may_exist(&self) -> Vec<(FlowSegment, Option<String>)> {
        let held = (1..=9).flat_map(|n| self.fabric.rules(SwitchId(n)).unwrap_or_default());
        let coming = self
            .in_flight
            .iter()
            .filter(|c| {
                matches!(c.fate, Fate::Applied | Fate::AppliedUnanswered)
                    && c.command.payload.action == SbAction::Install
            })
            .map(|c| c.command.payload.segment.clone());
        held.chain(coming)
            .map(|rule| {
                let owner = self.model.owner_of(&rule).cloned();
                (rule, owner)
            })
            .collect()
    }

    /// Lands the commands due by `now`; the answers to send.
    fn land(&mut self, now: Time) -> Vec<Envelope<SbResponse>> {
        let (due, later): (Vec<InFlight>, Vec<InFlight>) =
            self.in_flight.drain(..).partition(|c| c.at <= now);
        self.in_flight = later;
        let mut answers = Vec::new();
        for landing in due {
            let command = &landing.command.payload;
            let outcome = match landing.fate {
                Fate::Lost => continue,
                Fate::Refused => SbOutcome::Error {
                    code: SbErrorCode::SwitchUnavailable,
                    message: "refused by the test".into(),
                },
                Fate::Applied | Fate::AppliedUnanswered => {
                    if command.action == SbAction::Install {
                        self.check_install(&command.segment);
                    }
                    let outcome = self.fabric.apply(command);
                    if landing.fate == Fate::AppliedUnanswered {
                        continue;
                    }
                    outcome
                }
            };
            answers.push(landing.command.reply(
                landing.command.key.clone(),
                now,
                SbResponse {
                    command_id: command.command_id.clone(),
                    attempt: command.attempt,
                    switch_id: command.segment.switch_id,
                    outcome,
                },
            ));
        }
        answers
    }

    /// An install replaces the rule at its match: it must not be another flow's.
    fn check_install(&mut self, rule: &FlowSegment) {
        let there = self
            .fabric
            .rules(rule.switch_id)
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.rule_match() == rule.rule_match());
        if let Some(there) = there {
            let (new, old) = (self.model.owner_of(rule), self.model.owner_of(&there));
            let swapped = rule.kind.is_ingress()
                && new
                    .zip(old)
                    .is_some_and(|(new, old)| self.model.are_partners(new, old));
            if new != old && !swapped {
                self.model.violations.push(format!(
                    "two flows' rules match the same packet: {there:?} ({old:?}) and {rule:?} ({new:?})"
                ));
            }
        }
    }

    /// A flow event: learns who owns which cookie, and checks newly handed-out resources.
    fn learn(&mut self, event: &FlowEvent) {
        let flow = match event {
            FlowEvent::Updated { flow } => flow,
            FlowEvent::Removed { flow_id, .. } => {
                self.model.records.remove(flow_id);
                return;
            }
            _ => return,
        };
        let reservations = flow
            .resources
            .iter()
            .map(|r| (flow.request.clone(), r.clone()))
            .chain(
                flow.target
                    .iter()
                    .map(|t| (t.request.clone(), t.resources.clone())),
            );
        for (request, resources) in reservations {
            if self.model.owner.get(&resources.cookie) != Some(&flow.request.flow_id) {
                let may_exist = self.may_exist();
                self.model
                    .check_resources(flow.flow_id(), &request, &resources, &may_exist);
                self.model
                    .owner
                    .insert(resources.cookie, flow.request.flow_id.clone());
            }
        }
        self.model
            .records
            .insert(flow.flow_id().to_string(), flow.clone());
    }
}

type Captured<D> = Rc<RefCell<Vec<(Time, D)>>>;

/// Runs the steps, then lets everything settle without faults; the violations found.
fn run(steps: Vec<Step>, seed: u64) -> Vec<String> {
    timely::execute_directly(move |worker| {
        let network = Network::generate(NETWORK).unwrap().unwrap();
        let links: Vec<(SwitchId, SwitchId)> = network
            .links()
            .iter()
            .map(|l| (l.isl.src_switch, l.isl.dst_switch))
            .filter(|(a, b)| a < b)
            .collect();
        let probe = ProbeHandle::new();
        let commands: Captured<Envelope<SbCommand>> = Rc::default();
        let events: Captured<Envelope<FlowEvent>> = Rc::default();
        let mut input = worker.dataflow::<Time, _, _>(|scope| {
            let (input, inbound) = scope.new_input::<Vec<Inbound>>();
            let out = build(
                scope,
                inbound,
                settings(),
                Arc::new(Metrics::default()),
                &Recovery::default(),
            );
            capture(out.sb_commands, &probe, &commands, |time, d| (time, d));
            capture(out.flow_events, &probe, &events, |time, d| (time, d));
            out.nb_responses.probe_with(&probe);
            out.network_states.probe_with(&probe);
            input
        });
        let mut rig = Rig {
            fabric: SwitchFabric::new(&network),
            in_flight: Vec::new(),
            last_landing: HashMap::new(),
            model: Model::default(),
            seed,
            drawn: 0,
            faults: true,
        };
        let mut now: Time = 1;
        let mut requests: u64 = 0;
        for event in rig.fabric.announce() {
            input.send(Inbound::SbEvent(Envelope::new("net", "net", 0, event)));
        }
        // Time moves in steps of up to `STRIDE` ms, to the next command landing if sooner: the
        // dataflow is stepped once a step, not once a millisecond.
        let mut tick = |input: &mut InputHandle<Time, CapacityContainerBuilder<Vec<Inbound>>>,
                        rig: &mut Rig,
                        now: &mut Time| {
            let next = rig
                .in_flight
                .iter()
                .map(|c| c.at)
                .min()
                .unwrap_or(Time::MAX);
            let stride = next.saturating_sub(*now).clamp(1, STRIDE);
            *now += stride;
            input.advance_to(*now);
            while probe.less_than(&*now) {
                worker.step();
            }
            for (_, event) in events.borrow_mut().drain(..) {
                rig.learn(&event.payload);
            }
            for (_, command) in commands.borrow_mut().drain(..) {
                rig.send(*now, command);
            }
            for answer in rig.land(*now) {
                input.send(Inbound::SbResponse(answer));
            }
        };
        for step in steps {
            requests += 1;
            let correlation = format!("c{requests}");
            let ask = |payload: NbRequest| {
                let key = payload.key();
                Inbound::NbRequest(Envelope::new(correlation.clone(), key, now, payload))
            };
            match step {
                Step::Create { flow, src, dst } => input.send(ask(NbRequest::CreateFlow {
                    flow: request(flow, src, dst),
                })),
                Step::Delete { flow } => input.send(ask(NbRequest::DeleteFlow {
                    flow_id: format!("f{flow}"),
                })),
                Step::Reroute { flow } => input.send(ask(NbRequest::RerouteFlow {
                    flow_id: format!("f{flow}"),
                })),
                Step::Swap { flow } => input.send(ask(NbRequest::SwapFlow {
                    flow_id: format!("f{flow}"),
                })),
                Step::SwapEndpoints { pick } => {
                    let records: Vec<&FlowRecord> = rig.model.records.values().collect();
                    let count = records.len();
                    if count < 2 {
                        continue;
                    }
                    let first = pick % count;
                    let second = (first + 1 + pick / count % (count - 1)) % count;
                    let (a, b) = (records[first], records[second]);
                    let moved = |flow: &FlowRecord, destination: &FlowEndpoint| FlowEndpoints {
                        flow_id: flow.flow_id().to_string(),
                        source: flow.request.source.clone(),
                        destination: destination.clone(),
                    };
                    let request = NbRequest::SwapEndpoints {
                        first_flow: moved(a, &b.request.destination),
                        second_flow: moved(b, &a.request.destination),
                    };
                    let pair = (a.flow_id().to_string(), b.flow_id().to_string());
                    rig.model.partners.insert(pair);
                    input.send(ask(request));
                }
                Step::FailLink { link } | Step::RestoreLink { link } => {
                    let (a, b) = links[link % links.len()];
                    let fail = matches!(step, Step::FailLink { .. });
                    let changed = rig.fabric.change(|fabric| {
                        if fail {
                            fabric.fail_link(a, b)
                        } else {
                            fabric.restore_link(a, b)
                        }
                    });
                    for event in changed.map(|(_, events)| events).unwrap_or_default() {
                        input.send(Inbound::SbEvent(Envelope::new("net", "net", now, event)));
                    }
                }
                Step::Wait { ms } => {
                    let until = now + ms;
                    while now < until {
                        tick(&mut input, &mut rig, &mut now);
                    }
                }
            }
            tick(&mut input, &mut rig, &mut now);
        }
        // The faults stop and every link comes back; the keeper sweeps and pays its debt.
        rig.faults = false;
        for &(a, b) in &links {
            if let Ok((_, events)) = rig.fabric.change(|fabric| fabric.restore_link(a, b)) {
                for event in events {
                    input.send(Inbound::SbEvent(Envelope::new("net", "net", now, event)));
                }
            }
        }
        let until = now + SETTLE_MS;
        while now < until {
            tick(&mut input, &mut rig, &mut now);
        }
        let mut violations = std::mem::take(&mut rig.model.violations);
        violations.extend(data_plane_violations(&rig));
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
        violations
    })
}

/// Every UP flow's packets go from one endpoint to the other, both ways, and every rule on a
/// switch carries one of them.
fn data_plane_violations(rig: &Rig) -> Vec<String> {
    let mut violations = Vec::new();
    let mut met = BTreeSet::new();
    for record in rig.model.records.values() {
        if record.status != FlowStatus::Up {
            violations.push(format!(
                "{} {:?} though the faults are gone and every link is up",
                record.flow_id(),
                record.status
            ));
            continue;
        }
        let end = |e: &FlowEndpoint| PortVlan {
            switch_id: e.switch_id,
            port: e.port_number,
            vlan: e.vlan_id,
        };
        let (source, destination) = (
            end(&record.request.source),
            end(&record.request.destination),
        );
        // The protected path, from where a packet arrives on its first ISL each way.
        let protected = record.resources.iter().flat_map(|r| {
            let path = r.protected.iter().flat_map(|p| {
                let (first, last) = (p.forward_path.first(), p.forward_path.last());
                let arrive = |isl: &Isl, vlan: Option<&u16>| PortVlan {
                    switch_id: isl.dst_switch,
                    port: isl.dst_port,
                    vlan: vlan.copied().unwrap_or(0),
                };
                let forward = first.map(|isl| (arrive(isl, p.transit_vlans.first()), destination));
                let reverse =
                    last.map(|isl| (arrive(&isl.reversed(), p.transit_vlans.last()), source));
                forward.into_iter().chain(reverse)
            });
            path.collect::<Vec<_>>()
        });
        let primary = [(source, destination), (destination, source)];
        for (from, to) in primary.into_iter().chain(protected) {
            let trace = rig.fabric.trace(from);
            if trace.end != TraceEnd::Delivered(to) {
                violations.push(format!(
                    "{}: a packet from {from:?} should leave at {to:?}: {trace:?}",
                    record.flow_id()
                ));
            }
            met.extend(
                trace
                    .hops
                    .iter()
                    .map(|h| (h.switch_id, h.cookie, h.in_port, h.in_vlan)),
            );
        }
    }
    for n in 1..=9 {
        for rule in rig.fabric.rules(SwitchId(n)).unwrap_or_default() {
            if !met.contains(&(rule.switch_id, rule.cookie, rule.in_port, rule.in_vlan)) {
                violations.push(format!("a rule no UP flow's packet meets: {rule:?}"));
            }
        }
    }
    violations
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn switches_hold_exactly_what_the_flows_say(
        steps in prop::collection::vec(step(), 5..60),
        seed in any::<u64>(),
    ) {
        let violations = run(steps, seed);
        prop_assert!(violations.is_empty(), "{}", violations.join("\n"));
    }
}
