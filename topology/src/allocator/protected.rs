//! The search for a flow's protected path: a second path that shares no ISL with the primary
//! (in either direction), and no switch but the endpoints where the network allows.

use std::collections::HashSet;

use hubspoke_fsm::network::Network;
use hubspoke_fsm::{FlowRequest, Isl, SwitchId};

/// The protected path for `request` beside `primary`: first avoiding the primary's transit
/// switches too, then its ISLs only. `usable` is what each ISL has free for the flow (`None`:
/// down). `None` when the network has no such path with the flow's bandwidth.
pub(super) fn protected_path(
    network: &Network,
    request: &FlowRequest,
    primary: &[Isl],
    usable: impl Fn(&Isl) -> Option<u64>,
) -> Option<Vec<Isl>> {
    let (src, dst) = (request.source.switch_id, request.destination.switch_id);
    if primary.is_empty() {
        return None;
    }
    let primary_isls: HashSet<Isl> = primary.iter().flat_map(|i| [*i, i.reversed()]).collect();
    let transit: HashSet<SwitchId> = primary.iter().map(|isl| isl.dst_switch).collect();
    let search = |avoid_switches: bool| {
        network.shortest_path(src, dst, request.maximum_bandwidth, |isl: &Isl| {
            let through_transit = avoid_switches
                && (transit.contains(&isl.src_switch) && isl.src_switch != src
                    || transit.contains(&isl.dst_switch) && isl.dst_switch != dst);
            if primary_isls.contains(isl) || through_transit {
                None
            } else {
                usable(isl)
            }
        })
    };
    search(true).or_else(|| search(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::network::Link;
    use hubspoke_fsm::FlowEndpoint;

    fn request(src: u64, dst: u64) -> FlowRequest {
        let endpoint = |switch: u64| FlowEndpoint {
            switch_id: SwitchId(switch),
            port_number: 40,
            vlan_id: 0,
        };
        FlowRequest {
            flow_id: "f".into(),
            source: endpoint(src),
            destination: endpoint(dst),
            maximum_bandwidth: 10,
            allocate_protected_path: true,
            ..Default::default()
        }
    }

    fn switches(path: &[Isl]) -> Vec<u64> {
        path.iter().map(|isl| isl.dst_switch.0).collect()
    }

    fn shares_isl(a: &[Isl], b: &[Isl]) -> bool {
        a.iter()
            .any(|x| b.iter().any(|y| x == y || *x == y.reversed()))
    }

    #[test]
    fn the_protected_path_avoids_the_primarys_isls_and_transit_switches() {
        // A 3x3 grid: 1 2 3 / 4 5 6 / 7 8 9, from the top left to the bottom right corner.
        let network = Network::generate("grid:3x3").unwrap().unwrap();
        let all = |_: &Isl| Some(u64::MAX);
        let primary = network
            .shortest_path(SwitchId(1), SwitchId(9), 10, all)
            .unwrap();
        let protected = protected_path(&network, &request(1, 9), &primary, all).unwrap();
        assert!(!shares_isl(&primary, &protected));
        let transit = |path: &[Isl]| switches(path)[..path.len() - 1].to_vec();
        assert!(transit(&protected)
            .iter()
            .all(|s| !transit(&primary).contains(s)));
    }

    #[test]
    fn a_switch_is_shared_when_only_the_isls_can_be_kept_apart() {
        // Two triangles joined at switch 3: 1-2-3 with 1-3, and 3-4-5 with 3-5.
        let mut network = Network::default();
        for switch in 1..=5 {
            network.add_switch(SwitchId(switch), 8, &[]);
        }
        for (a, a_port, b, b_port) in [
            (1, 1, 2, 1),
            (2, 2, 3, 1),
            (1, 2, 3, 2),
            (3, 3, 4, 1),
            (4, 2, 5, 1),
            (3, 4, 5, 2),
        ] {
            let isl = Isl {
                src_switch: SwitchId(a),
                src_port: a_port,
                dst_switch: SwitchId(b),
                dst_port: b_port,
            };
            network.add_isl(Link::new(isl, 100));
            network.add_isl(Link::new(isl.reversed(), 100));
        }
        let all = |_: &Isl| Some(u64::MAX);
        let primary = network
            .shortest_path(SwitchId(1), SwitchId(5), 10, all)
            .unwrap();
        let protected = protected_path(&network, &request(1, 5), &primary, all).unwrap();
        assert!(!shares_isl(&primary, &protected));
        assert!(switches(&protected).contains(&3));
    }

    #[test]
    fn no_protected_path_without_a_second_way_or_the_bandwidth() {
        let linear = Network::generate("linear:3").unwrap().unwrap();
        let all = |_: &Isl| Some(u64::MAX);
        let primary = linear
            .shortest_path(SwitchId(1), SwitchId(3), 10, all)
            .unwrap();
        assert_eq!(protected_path(&linear, &request(1, 3), &primary, all), None);

        let ring = Network::generate("ring:4").unwrap().unwrap();
        let primary = ring
            .shortest_path(SwitchId(1), SwitchId(2), 10, all)
            .unwrap();
        let around = protected_path(&ring, &request(1, 2), &primary, all).unwrap();
        assert_eq!(switches(&around), vec![4, 3, 2]);
        let thin = |_: &Isl| Some(5);
        assert_eq!(protected_path(&ring, &request(1, 2), &primary, thin), None);
    }
}
