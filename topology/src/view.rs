//! The network view, in differential dataflow: switches, links with their capacity, flow
//! reservations, installed paths and diversity groups are collections; available bandwidth
//! per link, the flows whose path uses a down link and the members of a diversity group whose
//! paths share an ISL are maintained from them incrementally.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, VecCollection};
use hubspoke_fsm::{
    FlowId, Isl, LinkState, LinkStatus, NetworkState, SwitchId, SwitchState, SwitchStatus,
};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::dataflow::Time;

/// One change to the collections the view is built from. The allocator makes them: it owns
/// the reservations and is the first to hear of every network event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ViewChange {
    Switch {
        switch_id: SwitchId,
        ports: u32,
        port_numbers: Vec<u32>,
        up: bool,
        diff: isize,
    },
    /// A directed ISL.
    Link {
        isl: Isl,
        props: LinkProps,
        up: bool,
        diff: isize,
    },
    /// `flow_id` reserves `bandwidth` on a directed ISL. During make-before-break a flow holds
    /// two reservations; on an ISL both paths share it counts once, with the larger bandwidth.
    Reservation {
        isl: Isl,
        flow_id: FlowId,
        bandwidth: u64,
        diff: isize,
    },
    /// A directed ISL of a path the flow's rules are installed on (both directions are
    /// listed): its primary, or its protected path.
    Path {
        isl: Isl,
        flow_id: FlowId,
        protected: bool,
        diff: isize,
    },
    /// `flow_id` is a member of the diversity group.
    GroupMember {
        group: String,
        flow_id: FlowId,
        diff: isize,
    },
}

/// A directed ISL's properties, as announced by the switches and patched by an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkProps {
    /// kbps
    pub capacity: u64,
    /// What flows may reserve on it, in kbps: the capacity, unless an operator lowered it.
    pub max_bandwidth: u64,
    pub latency_ns: u64,
    pub cost: u64,
}

/// One of a flow's installed paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowPath {
    pub flow_id: FlowId,
    /// The protected path; else the primary, the one the flow's traffic takes.
    pub protected: bool,
}

/// What the view emits: only what changed, at the time it changed.
pub struct ViewStreams<'scope> {
    /// Flows' paths that use a down ISL: `(path, true)` when the first of its ISLs goes down,
    /// `(path, false)` when none is down any more (or the flow left such a path). Only
    /// changes, never repeats.
    pub affected: StreamVec<'scope, Time, (FlowPath, bool)>,
    /// Members of a diversity group whose installed primary paths share a link: `(flow,
    /// other, true)` when they start to, `(flow, other, false)` when they no longer do; both
    /// ways round. Only changes.
    pub shared: StreamVec<'scope, Time, (FlowId, FlowId, bool)>,
    /// The new state of every switch and link whose state changed at that time.
    pub states: StreamVec<'scope, Time, NetworkState>,
}

/// What one ISL's view is made of: the link itself and the bandwidth each flow reserves on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum IslPart {
    Link { props: LinkProps, up: bool },
    Reserved(u64),
}

/// Maintains the network view from `changes` (each at the time of its stream). Every
/// collection is keyed (by switch, ISL or flow), so differential spreads the work over all
/// workers whichever worker the changes arrive on.
pub fn network_view<'scope>(changes: StreamVec<'scope, Time, ViewChange>) -> ViewStreams<'scope> {
    // Each change becomes an update of weight 1 at the stream's time; `explode` below moves its
    // own `diff` into the weight, so retractions cancel the records they retract.
    let updates = changes
        .unary(Pipeline, "ViewUpdates", |_, _| {
            |input, output| {
                input.for_each_stamp(|capability, data| {
                    if let Some(&time) = capability.least() {
                        output.session(&capability).give_iterator(
                            data.flat_map(|batch| batch.drain(..))
                                .map(|change| (change, time, 1)),
                        );
                    }
                });
            }
        })
        .as_collection();
    let switches = updates.clone().explode(|change| match change {
        ViewChange::Switch {
            switch_id,
            ports,
            port_numbers,
            up,
            diff,
        } => Some(((switch_id, (ports, port_numbers, up)), diff)),
        _ => None,
    });
    let links = updates.clone().explode(|change| match change {
        ViewChange::Link {
            isl,
            props,
            up,
            diff,
        } => Some(((isl, (props, up)), diff)),
        _ => None,
    });
    let reservations = updates.clone().explode(|change| match change {
        ViewChange::Reservation {
            isl,
            flow_id,
            bandwidth,
            diff,
        } => Some((((isl, flow_id), bandwidth), diff)),
        _ => None,
    });
    let paths = updates.clone().explode(|change| match change {
        ViewChange::Path {
            isl,
            flow_id,
            protected,
            diff,
        } => Some(((isl, FlowPath { flow_id, protected }), diff)),
        _ => None,
    });
    let members = updates.explode(|change| match change {
        ViewChange::GroupMember {
            group,
            flow_id,
            diff,
        } => Some(((flow_id, group), diff)),
        _ => None,
    });

    // Both reservations of a flow in make-before-break share an ISL: it uses the larger one.
    // Values come sorted, so the last is the largest.
    let reserved = reservations.reduce(|_, bandwidths, max| {
        if let Some((&bandwidth, _)) = bandwidths.last() {
            max.push((bandwidth, 1));
        }
    });
    let link_view = links
        .clone()
        .map(|(isl, (props, up))| (isl, IslPart::Link { props, up }))
        .concat(reserved.map(|((isl, _), bandwidth)| (isl, IslPart::Reserved(bandwidth))))
        .reduce(|isl, parts, view| {
            let mut link = None;
            let mut used = 0u64;
            for (part, count) in parts {
                match part {
                    IslPart::Link { props, up } => link = Some((*props, *up)),
                    // `count` flows reserve this same bandwidth.
                    IslPart::Reserved(bandwidth) => {
                        let flows = u64::try_from(*count).unwrap_or(0);
                        used = used.saturating_add(bandwidth.saturating_mul(flows));
                    }
                }
            }
            if let Some((props, up)) = link {
                view.push((link_state(isl, &props, up, used), 1));
            }
        });
    let switch_view = switches.reduce(|&switch_id, states, view| {
        if let Some(((ports, port_numbers, up), _)) = states.last() {
            let state = if *up {
                SwitchStatus::Active
            } else {
                SwitchStatus::Inactive
            };
            view.push((
                SwitchState {
                    switch_id,
                    ports: *ports,
                    port_numbers: port_numbers.clone(),
                    state,
                },
                1,
            ));
        }
    });

    let down = links.filter(|(_, (_, up))| !up).map(|(isl, _)| isl);
    let affected = paths
        .clone()
        .semijoin(down)
        .map(|(_, path)| path)
        .distinct();

    // The links (one direction stands for both) each member's primary path uses, keyed by
    // group and link: two members under one key share it.
    let member_links = paths
        .filter(|(_, path)| !path.protected)
        .map(|(isl, path)| (path.flow_id, isl.min(isl.reversed())))
        .distinct()
        .join(members)
        .map(|(flow_id, (link, group))| ((group, link), flow_id));
    let shared = member_links
        .clone()
        .join(member_links)
        .filter(|(_, (flow, other))| flow != other)
        .map(|(_, pair)| pair)
        .distinct();

    // A reduce emits `-old +new` for a key that changed: the new state is the `+`.
    let states = at_own_time(link_view, |(_, link), diff| {
        (diff > 0).then_some(NetworkState::Link(link))
    })
    .concat(at_own_time(switch_view, |(_, switch), diff| {
        (diff > 0).then_some(NetworkState::Switch(switch))
    }));
    ViewStreams {
        affected: at_own_time(affected, |path, diff| Some((path, diff > 0))),
        shared: at_own_time(shared, |(flow, other), diff| Some((flow, other, diff > 0))),
        states,
    }
}

/// What `GET /v2/links` shows of a directed ISL with `used` kbps reserved on it.
pub fn link_state(isl: &Isl, props: &LinkProps, up: bool, used: u64) -> LinkState {
    LinkState {
        src_switch: isl.src_switch,
        src_port: isl.src_port,
        dst_switch: isl.dst_switch,
        dst_port: isl.dst_port,
        state: if up { LinkStatus::Up } else { LinkStatus::Down },
        capacity: props.capacity,
        max_bandwidth: props.max_bandwidth,
        available_bandwidth: props.max_bandwidth.saturating_sub(used),
        latency_ns: props.latency_ns,
        cost: props.cost,
    }
}

/// Sends `logic(record, diff)` for each update at the update's own time: differential sends
/// a batch under the earliest time it completes, and the batch may hold later times too.
fn at_own_time<'scope, D, D2>(
    collection: VecCollection<'scope, Time, D>,
    mut logic: impl FnMut(D, isize) -> Option<D2> + 'static,
) -> StreamVec<'scope, Time, D2>
where
    D: Clone + 'static,
    D2: Clone + 'static,
{
    collection.inner.unary(Pipeline, "AtOwnTime", |_, _| {
        move |input, output| {
            input.for_each_stamp(|capability, data| {
                let mut by_time = BTreeMap::<Time, Vec<D2>>::new();
                for (record, time, diff) in data.flat_map(|batch| batch.drain(..)) {
                    if let Some(out) = logic(record, diff) {
                        by_time.entry(time).or_default().push(out);
                    }
                }
                for (time, mut out) in by_time {
                    let at = capability.delayed(&time, output.output_index());
                    output.session(&at).give_container(&mut out);
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use hubspoke_fsm::network::Network;
    use timely::dataflow::operators::vec::Input;
    use timely::dataflow::operators::{Inspect, Probe};
    use timely::dataflow::ProbeHandle;

    use super::*;

    /// What the view emitted at one time.
    #[derive(Debug, Default)]
    struct Emitted {
        affected: Vec<(FlowPath, bool)>,
        shared: Vec<(FlowId, FlowId, bool)>,
        links: Vec<LinkState>,
        switches: Vec<SwitchState>,
    }

    /// Adds what `stream` emits at each time to that time's entry of `sink`.
    fn record<D: Clone + 'static>(
        stream: StreamVec<'_, Time, D>,
        sink: &Arc<Mutex<BTreeMap<Time, Emitted>>>,
        probe: &ProbeHandle<Time>,
        mut add: impl FnMut(&mut Emitted, &[D]) + 'static,
    ) {
        let into = sink.clone();
        stream
            .inspect_core(move |event| {
                if let Ok((stamp, data)) = event {
                    let mut emitted = into.lock().unwrap();
                    add(emitted.entry(*stamp.expect_singleton()).or_default(), data);
                }
            })
            .probe_with(probe);
    }

    /// Feeds `batches[i]` at time `i + 1` on worker 0 of `workers`. With `step_each_time` the
    /// workers run until each time is done before the next enters; without, all times are
    /// in flight together.
    fn run(
        workers: usize,
        batches: Vec<Vec<ViewChange>>,
        step_each_time: bool,
    ) -> BTreeMap<Time, Emitted> {
        let emitted = Arc::new(Mutex::new(BTreeMap::<Time, Emitted>::new()));
        let sink = emitted.clone();
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let probe = ProbeHandle::new();
            let mut input = worker.dataflow::<Time, _, _>(|scope| {
                let (input, changes) = scope.new_input::<ViewChange>();
                let view = network_view(changes);
                record(view.affected, &sink, &probe, |at, data| {
                    at.affected.extend(data.iter().cloned())
                });
                record(view.shared, &sink, &probe, |at, data| {
                    at.shared.extend(data.iter().cloned())
                });
                record(view.states, &sink, &probe, |at, data| {
                    for state in data {
                        match state.clone() {
                            NetworkState::Link(link) => at.links.push(link),
                            NetworkState::Switch(switch) => at.switches.push(switch),
                        }
                    }
                });
                input
            });
            for (round, batch) in batches.iter().enumerate() {
                let time = round as Time + 1;
                input.advance_to(time);
                if worker.index() == 0 {
                    for change in batch {
                        input.send(change.clone());
                    }
                }
                if step_each_time {
                    input.advance_to(time + 1);
                    worker.step_while(|| probe.less_than(&(time + 1)));
                }
            }
        })
        .unwrap();
        for result in guards.join() {
            result.unwrap();
        }
        let mut emitted = std::mem::take(&mut *emitted.lock().unwrap());
        for at in emitted.values_mut() {
            at.affected.sort();
            at.shared.sort();
            at.links.sort();
            at.switches.sort();
        }
        emitted
    }

    fn props(capacity: u64) -> LinkProps {
        LinkProps {
            capacity,
            max_bandwidth: capacity,
            latency_ns: 1_000_000,
            cost: 700,
        }
    }

    fn link(isl: Isl, capacity: u64, up: bool, diff: isize) -> ViewChange {
        ViewChange::Link {
            isl,
            props: props(capacity),
            up,
            diff,
        }
    }

    fn reservation(isl: Isl, flow_id: &str, bandwidth: u64, diff: isize) -> ViewChange {
        ViewChange::Reservation {
            isl,
            flow_id: flow_id.to_string(),
            bandwidth,
            diff,
        }
    }

    fn path(isl: Isl, flow_id: &str, diff: isize) -> ViewChange {
        path_of(isl, flow_id, false, diff)
    }

    fn path_of(isl: Isl, flow_id: &str, protected: bool, diff: isize) -> ViewChange {
        ViewChange::Path {
            isl,
            flow_id: flow_id.to_string(),
            protected,
            diff,
        }
    }

    fn member(group: &str, flow_id: &str, diff: isize) -> ViewChange {
        ViewChange::GroupMember {
            group: group.to_string(),
            flow_id: flow_id.to_string(),
            diff,
        }
    }

    fn primary(flow_id: &str) -> FlowPath {
        FlowPath {
            flow_id: flow_id.to_string(),
            protected: false,
        }
    }

    fn isl(src: u64, dst: u64) -> Isl {
        Isl {
            src_switch: SwitchId(src),
            src_port: dst as u32,
            dst_switch: SwitchId(dst),
            dst_port: src as u32,
        }
    }

    fn down_then_up(isl: Isl, capacity: u64) -> [Vec<ViewChange>; 2] {
        let flip = |up: bool| {
            [isl, isl.reversed()]
                .into_iter()
                .flat_map(|isl| [link(isl, capacity, !up, -1), link(isl, capacity, up, 1)])
                .collect()
        };
        [flip(false), flip(true)]
    }

    /// 200 flows over a 3x3 grid, bandwidth 1000 + i kbps each.
    struct Grid {
        network: Network,
        paths: Vec<(FlowId, Vec<Isl>)>,
    }

    impl Grid {
        fn new() -> Grid {
            let network = Network::generate("grid:3x3").unwrap().unwrap();
            let ids: Vec<SwitchId> = network.switches().map(|s| s.switch_id).collect();
            let paths = (0..200)
                .map(|i| {
                    let src = ids[i % ids.len()];
                    let dst = ids[(i / ids.len() + 1 + i) % ids.len()];
                    let dst = if dst == src {
                        ids[(i + 4) % ids.len()]
                    } else {
                        dst
                    };
                    let path = network
                        .shortest_path(src, dst, 0, |_| Some(u64::MAX))
                        .unwrap();
                    (format!("flow-{i}"), path)
                })
                .collect();
            Grid { network, paths }
        }

        fn bandwidth(i: usize) -> u64 {
            1000 + i as u64
        }

        fn everything(&self) -> Vec<ViewChange> {
            let mut changes: Vec<ViewChange> = self
                .network
                .switches()
                .map(|s| ViewChange::Switch {
                    switch_id: s.switch_id,
                    ports: s.ports,
                    port_numbers: s.port_numbers.clone(),
                    up: true,
                    diff: 1,
                })
                .collect();
            for l in self.network.links() {
                changes.push(link(l.isl, l.capacity, true, 1));
            }
            for (i, (flow_id, isls)) in self.paths.iter().enumerate() {
                for isl in isls.iter().flat_map(|isl| [*isl, isl.reversed()]) {
                    changes.push(path(isl, flow_id, 1));
                    changes.push(reservation(isl, flow_id, Self::bandwidth(i), 1));
                }
            }
            changes
        }

        fn flows_on(&self, isl: Isl) -> BTreeSet<FlowId> {
            self.paths
                .iter()
                .filter(|(_, isls)| isls.iter().any(|x| *x == isl || x.reversed() == isl))
                .map(|(flow_id, _)| flow_id.clone())
                .collect()
        }

        fn used(&self, isl: Isl) -> u64 {
            self.paths
                .iter()
                .enumerate()
                .filter(|(_, (_, isls))| isls.iter().any(|x| *x == isl || x.reversed() == isl))
                .map(|(i, _)| Self::bandwidth(i))
                .sum()
        }
    }

    #[test]
    fn view_one_link_failing_under_200_flows_changes_only_its_flows_and_link() {
        let grid = Grid::new();
        // The link from the centre switch 5 to switch 2 carries some flows, not all.
        let failing = grid
            .network
            .links()
            .iter()
            .find(|l| l.isl.src_switch == SwitchId(5) && l.isl.dst_switch == SwitchId(2))
            .unwrap()
            .clone();
        let hit = grid.flows_on(failing.isl);
        assert!(!hit.is_empty() && hit.len() < 200, "{} flows", hit.len());
        let [down, up] = down_then_up(failing.isl, failing.capacity);
        let expected_links = |up: bool| {
            let mut links: Vec<LinkState> = [failing.isl, failing.isl.reversed()]
                .into_iter()
                .map(|isl| link_state(&isl, &props(failing.capacity), up, grid.used(isl)))
                .collect();
            links.sort();
            links
        };
        let flagged = |affected: bool| -> Vec<(FlowPath, bool)> {
            hit.iter().map(|f| (primary(f), affected)).collect()
        };

        for workers in [1, 3] {
            let emitted = run(
                workers,
                vec![grid.everything(), down.clone(), up.clone()],
                true,
            );
            assert!(emitted[&1].affected.is_empty());
            assert_eq!(emitted[&1].links.len(), 24);
            assert_eq!(emitted[&1].switches.len(), 9);
            assert_eq!(emitted[&2].affected, flagged(true), "{workers} workers");
            assert_eq!(emitted[&2].links, expected_links(false));
            assert!(emitted[&2].switches.is_empty());
            assert_eq!(emitted[&3].affected, flagged(false), "{workers} workers");
            assert_eq!(emitted[&3].links, expected_links(true));
            assert!(emitted[&3].switches.is_empty());
        }
    }

    #[test]
    fn view_available_bandwidth_counts_a_flows_largest_reservation_and_sums_flows() {
        let shared = isl(1, 2);
        let idle = isl(2, 1);
        let available = |emitted: &Emitted| -> Vec<(Isl, u64)> {
            emitted
                .links
                .iter()
                .map(|l| (l.isl(), l.available_bandwidth))
                .collect()
        };
        let emitted = run(
            1,
            vec![
                vec![
                    link(shared, 100, true, 1),
                    link(idle, 100, true, 1),
                    // Make-before-break: both of f1's paths share this ISL.
                    reservation(shared, "f1", 5, 1),
                    reservation(shared, "f1", 7, 1),
                ],
                vec![reservation(shared, "f1", 7, -1)],
                vec![reservation(shared, "f2", 10, 1)],
                vec![reservation(shared, "f3", 5, 1)],
            ],
            true,
        );
        assert_eq!(available(&emitted[&1]), vec![(shared, 93), (idle, 100)]);
        assert_eq!(available(&emitted[&2]), vec![(shared, 95)]);
        assert_eq!(available(&emitted[&3]), vec![(shared, 85)]);
        // f3 reserves what f1 does: equal bandwidths of two flows both count.
        assert_eq!(available(&emitted[&4]), vec![(shared, 80)]);
    }

    #[test]
    fn view_moving_a_flow_off_a_down_link_clears_it() {
        let (a, b) = (isl(1, 2), isl(1, 3));
        let [down, _] = down_then_up(a, 100);
        let emitted = run(
            1,
            vec![
                vec![
                    link(a, 100, true, 1),
                    link(a.reversed(), 100, true, 1),
                    link(b, 100, true, 1),
                    path(a, "f", 1),
                ],
                down,
                vec![path(a, "f", -1), path(b, "f", 1)],
            ],
            true,
        );
        assert_eq!(emitted[&2].affected, vec![(primary("f"), true)]);
        assert_eq!(emitted[&3].affected, vec![(primary("f"), false)]);
        assert!(emitted[&3].links.is_empty());
    }

    #[test]
    fn view_members_sharing_a_link_are_reported_both_ways_until_they_part() {
        let (a, b, c) = (isl(1, 2), isl(2, 3), isl(1, 3));
        let both_ways = |flow: &str, isl: Isl, diff: isize| {
            vec![path(isl, flow, diff), path(isl.reversed(), flow, diff)]
        };
        let pair = |shared: bool| {
            vec![
                ("f1".to_string(), "f2".to_string(), shared),
                ("f2".to_string(), "f1".to_string(), shared),
            ]
        };
        let emitted = run(
            2,
            vec![
                // f1 on 1-2-3, f2 on 1-3, f3 (no group) on 1-2: nothing shared in the group.
                [
                    both_ways("f1", a, 1),
                    both_ways("f1", b, 1),
                    both_ways("f2", c, 1),
                    both_ways("f3", a, 1),
                    vec![member("g", "f1", 1), member("g", "f2", 1)],
                ]
                .concat(),
                // f2 moves onto 2-3 (listed the other way round): it shares that link with f1.
                [both_ways("f2", c, -1), both_ways("f2", b.reversed(), 1)].concat(),
                // f1 leaves the group: nothing shared.
                vec![member("g", "f1", -1)],
            ],
            true,
        );
        assert!(emitted.get(&1).is_none_or(|at| at.shared.is_empty()));
        assert_eq!(emitted[&2].shared, pair(true));
        assert_eq!(emitted[&3].shared, pair(false));
    }

    #[test]
    fn view_updates_keep_their_own_time_when_several_times_complete_at_once() {
        let a = isl(1, 2);
        let [down, up] = down_then_up(a, 100);
        let setup = vec![
            link(a, 100, true, 1),
            link(a.reversed(), 100, true, 1),
            path(a, "f", 1),
        ];
        let emitted = run(2, vec![setup, down, up], false);
        assert_eq!(emitted[&2].affected, vec![(primary("f"), true)]);
        assert_eq!(emitted[&3].affected, vec![(primary("f"), false)]);
        assert!(emitted[&2]
            .links
            .iter()
            .all(|l| l.state == LinkStatus::Down));
        assert!(emitted[&3].links.iter().all(|l| l.state == LinkStatus::Up));
    }

    #[test]
    fn view_a_swap_moves_a_down_link_from_the_primary_to_the_protected_path() {
        let (a, b) = (isl(1, 2), isl(1, 3));
        let [down, _] = down_then_up(a, 100);
        let protected = FlowPath {
            flow_id: "f".to_string(),
            protected: true,
        };
        let emitted = run(
            1,
            vec![
                vec![
                    link(a, 100, true, 1),
                    link(a.reversed(), 100, true, 1),
                    link(b, 100, true, 1),
                    path(a, "f", 1),
                    path_of(b, "f", true, 1),
                ],
                down,
                vec![
                    path(a, "f", -1),
                    path_of(b, "f", true, -1),
                    path(b, "f", 1),
                    path_of(a, "f", true, 1),
                ],
            ],
            true,
        );
        assert_eq!(emitted[&2].affected, vec![(primary("f"), true)]);
        assert_eq!(
            emitted[&3].affected,
            vec![(primary("f"), false), (protected, true)]
        );
    }
}
