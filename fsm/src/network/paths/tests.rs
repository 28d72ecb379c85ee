use std::collections::BTreeSet;

use super::*;
use crate::network::{Link, SwitchInfo};

const MS: u64 = 1_000_000;

fn unlimited(_: &Isl) -> Option<u64> {
    Some(u64::MAX)
}

/// Switch 1 to switch 4 by four two-hop routes, through switch 2, 3, 5 or 6 (in port
/// order on switch 1), each hop with the same cost and latency:
/// via 2: cost 10, 5 ms (cheapest, slowest); via 3: cost 50, 1 ms (fastest, dearest);
/// via 5: cost 10, 3 ms (as cheap as via 2); via 6: cost 30, 1.25 ms.
fn four_routes() -> Network {
    let switches = (1..=6)
        .map(|n| SwitchInfo {
            switch_id: SwitchId(n),
            ports: 8,
            port_numbers: Vec::new(),
        })
        .collect();
    let mut links = Vec::new();
    for (port, (via, cost, latency_ns)) in [
        (2, 10, 5 * MS),
        (3, 50, MS),
        (5, 10, 3 * MS),
        (6, 30, 5 * MS / 4),
    ]
    .into_iter()
    .enumerate()
    {
        let port = port as u32 + 1;
        for (src, src_port, dst, dst_port) in [(1, port, via, 1), (via, 2, 4, port)] {
            links.push(Link {
                latency_ns,
                cost,
                ..Link::new(
                    Isl {
                        src_switch: SwitchId(src),
                        src_port,
                        dst_switch: SwitchId(dst),
                        dst_port,
                    },
                    1_000,
                )
            });
        }
    }
    Network::new(switches, links).expect("a valid network")
}

/// The switch a path goes through (two-hop paths of [`four_routes`]).
fn via(path: &FoundPath) -> u64 {
    assert_eq!(path.isls.len(), 2, "{path:?}");
    path.isls[0].dst_switch.0
}

fn best(network: &Network, weight: PathWeight, usable: impl Fn(&Isl) -> Option<u64>) -> u64 {
    via(&network
        .best_path(SwitchId(1), SwitchId(4), 1, weight, usable)
        .expect("a path"))
}

#[test]
fn cost_takes_the_cheapest_and_ties_go_to_the_lowest_port() {
    let network = four_routes();
    let path = network
        .best_path(SwitchId(1), SwitchId(4), 1, PathWeight::Cost, unlimited)
        .expect("a path");
    assert_eq!((via(&path), path.cost, path.latency_ns), (2, 20, 10 * MS));
}

#[test]
fn latency_takes_the_fastest() {
    let network = four_routes();
    assert_eq!(best(&network, PathWeight::Latency, unlimited), 3);
}

#[test]
fn cost_and_available_bandwidth_breaks_a_cost_tie_by_the_narrowest_link() {
    let network = four_routes();
    // Via 2 has 100 kbps free on its second hop's way back, via 5 has 500 everywhere.
    let usable = |isl: &Isl| {
        Some(
            if isl.src_switch == SwitchId(4) && isl.dst_switch == SwitchId(2) {
                100
            } else {
                500
            },
        )
    };
    assert_eq!(
        best(&network, PathWeight::Cost, usable),
        2,
        "COST ignores it"
    );
    let path = network
        .best_path(
            SwitchId(1),
            SwitchId(4),
            1,
            PathWeight::CostThenBandwidth,
            usable,
        )
        .expect("a path");
    assert_eq!((via(&path), path.available_bandwidth), (5, 500));
    let only_via_2_is_free = |isl: &Isl| {
        Some(if [isl.src_switch, isl.dst_switch].contains(&SwitchId(2)) {
            900
        } else {
            100
        })
    };
    assert_eq!(
        best(&network, PathWeight::CostThenBandwidth, only_via_2_is_free),
        2,
        "a more expensive path never wins by bandwidth"
    );
}

#[test]
fn cheapest_within_a_latency_limit() {
    let network = four_routes();
    let within = |limit_ns| {
        network
            .cheapest_within(SwitchId(1), SwitchId(4), 1, limit_ns, unlimited)
            .map(|p| via(&p))
    };
    assert_eq!(within(10 * MS), Some(2), "the cheapest is within");
    assert_eq!(within(6 * MS), Some(5), "the next cheapest is");
    assert_eq!(
        within(3 * MS),
        Some(6),
        "the cheapest of those within, not the fastest"
    );
    assert_eq!(within(2 * MS), Some(3), "only the fastest is within");
    assert_eq!(within(2 * MS - 1), None);
}

#[test]
fn a_search_avoids_what_is_not_usable_and_needs_bandwidth_both_ways() {
    let network = four_routes();
    let no_way_back_via_3 = |isl: &Isl| {
        Some(
            if isl.src_switch == SwitchId(4) && isl.dst_switch == SwitchId(3) {
                0
            } else {
                5
            },
        )
    };
    assert_eq!(
        network
            .best_path(
                SwitchId(1),
                SwitchId(4),
                5,
                PathWeight::Latency,
                no_way_back_via_3
            )
            .map(|p| via(&p)),
        Some(6)
    );
    let without_switch_1_links = |isl: &Isl| (isl.src_switch != SwitchId(1)).then_some(5);
    assert!(network
        .best_path(
            SwitchId(1),
            SwitchId(4),
            0,
            PathWeight::Cost,
            without_switch_1_links
        )
        .is_none());
}

#[test]
fn yen_lists_every_route_best_first() {
    let network = four_routes();
    let paths = network.best_paths(
        SwitchId(1),
        SwitchId(4),
        1,
        PathWeight::Latency,
        10,
        unlimited,
    );
    let order: Vec<u64> = paths.iter().map(via).collect();
    assert_eq!(order, vec![3, 6, 5, 2]);
    let latencies: Vec<u64> = paths.iter().map(|p| p.latency_ns).collect();
    assert_eq!(latencies, vec![2 * MS, 5 * MS / 2, 6 * MS, 10 * MS]);
    assert_eq!(
        network
            .best_paths(SwitchId(1), SwitchId(4), 1, PathWeight::Cost, 2, unlimited)
            .iter()
            .map(via)
            .collect::<Vec<_>>(),
        vec![2, 5]
    );
}

/// Every loopless path from `src` to `dst`, by depth-first search.
fn every_path(network: &Network, src: SwitchId, dst: SwitchId) -> Vec<Vec<Isl>> {
    fn walk(
        network: &Network,
        at: SwitchId,
        dst: SwitchId,
        seen: &mut Vec<SwitchId>,
        path: &mut Vec<Isl>,
        out: &mut Vec<Vec<Isl>>,
    ) {
        if at == dst {
            out.push(path.clone());
            return;
        }
        for link in network.links().iter().filter(|l| l.isl.src_switch == at) {
            let next = link.isl.dst_switch;
            if seen.contains(&next) {
                continue;
            }
            seen.push(next);
            path.push(link.isl);
            walk(network, next, dst, seen, path, out);
            path.pop();
            seen.pop();
        }
    }
    let mut out = Vec::new();
    walk(network, src, dst, &mut vec![src], &mut Vec::new(), &mut out);
    out
}

#[test]
fn yen_agrees_with_enumerating_every_path() {
    for spec in ["mesh:5", "grid:3x3", "ring:6"] {
        let network = Network::generate(spec).unwrap().unwrap();
        let (src, dst) = (SwitchId(1), SwitchId(5));
        let latency = |path: &[Isl]| -> u64 {
            path.iter()
                .map(|isl| {
                    network
                        .links()
                        .iter()
                        .find(|l| l.isl == *isl)
                        .expect("a link of the network")
                        .latency_ns
                })
                .sum()
        };
        let mut expected: Vec<u64> = every_path(&network, src, dst)
            .iter()
            .map(|p| latency(p))
            .collect();
        expected.sort_unstable();
        expected.truncate(12);
        let found = network.best_paths(src, dst, 0, PathWeight::Latency, 12, unlimited);
        let latencies: Vec<u64> = found.iter().map(|p| p.latency_ns).collect();
        assert_eq!(latencies, expected, "{spec}");
        assert!(found.iter().all(|p| latency(&p.isls) == p.latency_ns));
        let distinct: BTreeSet<&Vec<Isl>> = found.iter().map(|p| &p.isls).collect();
        assert_eq!(distinct.len(), found.len(), "{spec}: no path twice");
        for path in &found {
            let mut switches: Vec<SwitchId> = path.isls.iter().map(|i| i.src_switch).collect();
            switches.push(dst);
            let unique: BTreeSet<_> = switches.iter().collect();
            assert_eq!(unique.len(), switches.len(), "{spec}: {path:?} loops");
            assert!(path
                .isls
                .windows(2)
                .all(|w| w[0].dst_switch == w[1].src_switch));
        }
    }
}

#[test]
fn a_one_switch_path_is_empty() {
    let network = four_routes();
    let path = network
        .best_path(SwitchId(1), SwitchId(1), 1, PathWeight::Cost, unlimited)
        .expect("the switch itself");
    assert!(path.isls.is_empty());
    assert_eq!(
        network
            .best_paths(SwitchId(1), SwitchId(1), 1, PathWeight::Cost, 3, unlimited)
            .len(),
        1
    );
}
