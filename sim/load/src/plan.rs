//! Which flows a run creates, from the network the northbound API shows: endpoints whose
//! port/VLAN pair is used once per switch (the allocator refuses one already in use, so the
//! generator's flows never collide with each other or with flows already there), and, when
//! asked to be network-aware, pairs and a bandwidth the network can carry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use hubspoke_fsm::{
    FlowEndpoint, FlowRequest, LinkState, LinkStatus, SwitchId, SwitchState, SwitchStatus, MAX_VLAN,
};
use rand::rngs::StdRng;
use rand::RngExt;

/// What to plan.
#[derive(Clone, Debug)]
pub struct PlanRequest<'a> {
    pub switches: &'a [SwitchState],
    pub links: &'a [LinkState],
    /// Endpoints that flows already on the network hold.
    pub in_use: &'a HashSet<FlowEndpoint>,
    pub flows: usize,
    /// Per flow; with `network_aware`, lowered until the whole load fits.
    pub bandwidth_kbps: u64,
    /// Only active switches connected by links that are up, and a bandwidth that fits.
    pub network_aware: bool,
    /// Flow ids are `{run_prefix}-{index}`.
    pub run_prefix: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub flows: Vec<FlowRequest>,
    /// What each flow asks for: the requested bandwidth, or less if that did not fit.
    pub bandwidth_kbps: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the network has no switch with a free (non-ISL) port to put flows on")]
    NoSwitches,
    #[error("no two active switches are connected by links that are up")]
    NoConnectedPair,
    #[error("switch {0} has no free port/VLAN pair left for another endpoint")]
    EndpointsExhausted(SwitchId),
    #[error(
        "{flows} flows do not fit: the least available link has {available_kbps} kbps, \
         less than 1 kbps a flow (--bandwidth 0 asks for best-effort flows)"
    )]
    BandwidthDoesNotFit { flows: usize, available_kbps: u64 },
}

pub fn plan(request: &PlanRequest<'_>, rng: &mut StdRng) -> Result<Plan, PlanError> {
    let mut endpoints = EndpointAllocator::new(request);
    let (pairs, bandwidth_kbps) = if request.network_aware {
        let groups = connected_groups(request.switches, request.links);
        if groups.is_empty() {
            return Err(PlanError::NoConnectedPair);
        }
        let bandwidth = fitting_bandwidth(request, &groups)?;
        // A switch without a free port still carries transit traffic for its group.
        let endpoint_groups: Vec<Vec<SwitchId>> = groups
            .into_iter()
            .map(|group| endpoints.with_ports(group))
            .filter(|group| group.len() >= 2)
            .collect();
        if endpoint_groups.is_empty() {
            return Err(PlanError::NoConnectedPair);
        }
        let members = endpoint_groups
            .iter()
            .enumerate()
            .flat_map(|(group, switches)| (0..switches.len()).map(move |at| (group, at)))
            .collect();
        let pairs = PairPicker::Connected {
            groups: endpoint_groups,
            members,
        };
        (pairs, bandwidth)
    } else {
        let switches = endpoints.with_ports(request.switches.iter().map(|s| s.switch_id));
        if switches.is_empty() {
            return Err(PlanError::NoSwitches);
        }
        (PairPicker::Any(switches), request.bandwidth_kbps)
    };
    // Not sized up front: an absurd --flows ends in EndpointsExhausted, not an abort.
    let mut flows = Vec::new();
    for index in 0..request.flows {
        let (src, dst) = pairs.pick(rng);
        let source = endpoints.take(src)?;
        let destination = endpoints.take(dst)?;
        flows.push(FlowRequest {
            flow_id: format!("{}-{index}", request.run_prefix),
            source,
            destination,
            maximum_bandwidth: bandwidth_kbps,
            description: format!("hubspoke load {}", request.run_prefix),
            ..Default::default()
        });
    }
    Ok(Plan {
        flows,
        bandwidth_kbps,
    })
}

/// The most ports of one switch the generator uses.
const MAX_PORTS: u32 = 4096;

/// Hands out each switch's free port/VLAN pairs in order, ports first, so consecutive flows
/// on a switch land on different ports.
struct EndpointAllocator<'a> {
    edge_ports: BTreeMap<SwitchId, Vec<u32>>,
    /// Per switch, how many pairs were looked at so far.
    cursor: HashMap<SwitchId, usize>,
    in_use: &'a HashSet<FlowEndpoint>,
}

impl<'a> EndpointAllocator<'a> {
    fn new(request: &PlanRequest<'a>) -> Self {
        let mut isl_ports: HashSet<(SwitchId, u32)> = HashSet::new();
        for link in request.links {
            isl_ports.insert((link.src_switch, link.src_port));
            isl_ports.insert((link.dst_switch, link.dst_port));
        }
        let edge_ports = request
            .switches
            .iter()
            .map(|switch| {
                // A server announcing billions of ports must not make the generator list them.
                let ports = switch
                    .each_port()
                    .take_while(|&port| port <= MAX_PORTS)
                    .filter(|&port| !isl_ports.contains(&(switch.switch_id, port)))
                    .collect::<Vec<_>>();
                (switch.switch_id, ports)
            })
            .filter(|(_, ports)| !ports.is_empty())
            .collect();
        EndpointAllocator {
            edge_ports,
            cursor: HashMap::new(),
            in_use: request.in_use,
        }
    }

    /// The switches that have a port a flow may use.
    fn with_ports(&self, switches: impl IntoIterator<Item = SwitchId>) -> Vec<SwitchId> {
        switches
            .into_iter()
            .filter(|switch| self.edge_ports.contains_key(switch))
            .collect()
    }

    fn take(&mut self, switch_id: SwitchId) -> Result<FlowEndpoint, PlanError> {
        let exhausted = || PlanError::EndpointsExhausted(switch_id);
        let ports = self.edge_ports.get(&switch_id).ok_or_else(exhausted)?;
        let cursor = self.cursor.entry(switch_id).or_default();
        // VLAN 0 is untagged: it would take the whole port.
        let pairs = ports.len() * usize::from(MAX_VLAN);
        while *cursor < pairs {
            let (vlan_index, port_index) = (*cursor / ports.len(), *cursor % ports.len());
            *cursor += 1;
            let endpoint = FlowEndpoint {
                switch_id,
                port_number: ports[port_index],
                vlan_id: u16::try_from(vlan_index + 1).unwrap_or(MAX_VLAN),
            };
            if !self.in_use.contains(&endpoint) {
                return Ok(endpoint);
            }
        }
        Err(exhausted())
    }
}

enum PairPicker {
    /// Any two switches, the same one included (a one-switch flow); never empty.
    Any(Vec<SwitchId>),
    /// Two different switches of one group connected over links that are up.
    Connected {
        /// Each of two switches or more.
        groups: Vec<Vec<SwitchId>>,
        /// (group, index in it) of every switch, never empty: sources are drawn from these, so
        /// every switch is as likely a source whatever the size of its group.
        members: Vec<(usize, usize)>,
    },
}

impl PairPicker {
    fn pick(&self, rng: &mut StdRng) -> (SwitchId, SwitchId) {
        match self {
            PairPicker::Any(switches) => (
                switches[rng.random_range(0..switches.len())],
                switches[rng.random_range(0..switches.len())],
            ),
            PairPicker::Connected { groups, members } => {
                let (group, at) = members[rng.random_range(0..members.len())];
                let group = &groups[group];
                let other = rng.random_range(0..group.len() - 1);
                (
                    group[at],
                    group[if other >= at { other + 1 } else { other }],
                )
            }
        }
    }
}

/// The undirected links usable by a flow: up in both directions between active switches.
fn usable_links<'a>(
    switches: &[SwitchState],
    links: &'a [LinkState],
) -> impl Iterator<Item = &'a LinkState> {
    let active: HashSet<SwitchId> = switches
        .iter()
        .filter(|s| s.state == SwitchStatus::Active)
        .map(|s| s.switch_id)
        .collect();
    let up: HashSet<_> = links
        .iter()
        .filter(|l| l.state == LinkStatus::Up)
        .map(LinkState::isl)
        .collect();
    links.iter().filter(move |link| {
        link.state == LinkStatus::Up
            && up.contains(&link.isl().reversed())
            && active.contains(&link.src_switch)
            && active.contains(&link.dst_switch)
    })
}

/// Groups of two or more active switches, each connected over usable links; switches sorted,
/// so a seed gives the same plan.
fn connected_groups(switches: &[SwitchState], links: &[LinkState]) -> Vec<Vec<SwitchId>> {
    let mut neighbours: BTreeMap<SwitchId, BTreeSet<SwitchId>> = BTreeMap::new();
    for link in usable_links(switches, links) {
        neighbours
            .entry(link.src_switch)
            .or_default()
            .insert(link.dst_switch);
    }
    let mut seen = HashSet::new();
    let mut groups = Vec::new();
    for &start in neighbours.keys() {
        if !seen.insert(start) {
            continue;
        }
        let mut group = vec![start];
        let mut next = 0;
        while let Some(&at) = group.get(next) {
            next += 1;
            for &neighbour in neighbours.get(&at).into_iter().flatten() {
                if seen.insert(neighbour) {
                    group.push(neighbour);
                }
            }
        }
        group.sort();
        groups.push(group);
    }
    groups
}

/// The requested bandwidth, lowered so that all flows fit even if every one crossed the least
/// available link of their groups: the generator never causes a no-path rejection, whatever
/// paths the allocator picks.
fn fitting_bandwidth(
    request: &PlanRequest<'_>,
    groups: &[Vec<SwitchId>],
) -> Result<u64, PlanError> {
    if request.bandwidth_kbps == 0 {
        return Ok(0);
    }
    let grouped: HashSet<SwitchId> = groups.iter().flatten().copied().collect();
    let least_available = usable_links(request.switches, request.links)
        .filter(|link| grouped.contains(&link.src_switch))
        .map(|link| link.available_bandwidth)
        .min()
        .unwrap_or(0);
    let flows = u64::try_from(request.flows).unwrap_or(u64::MAX).max(1);
    match least_available / flows {
        0 => Err(PlanError::BandwidthDoesNotFit {
            flows: request.flows,
            available_kbps: least_available,
        }),
        per_flow => Ok(per_flow.min(request.bandwidth_kbps)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn switch(n: u64, ports: u32, state: SwitchStatus) -> SwitchState {
        SwitchState {
            switch_id: SwitchId(n),
            ports,
            port_numbers: Vec::new(),
            state,
        }
    }

    /// Both directions of a link between `a` and `b` on port `b` of `a` and port `a` of `b`.
    fn link(a: u64, b: u64, state: LinkStatus, available: u64) -> [LinkState; 2] {
        let one_way = |from: u64, to: u64| LinkState {
            src_switch: SwitchId(from),
            src_port: u32::try_from(to).unwrap(),
            dst_switch: SwitchId(to),
            dst_port: u32::try_from(from).unwrap(),
            state,
            capacity: 10_000,
            max_bandwidth: 10_000,
            available_bandwidth: available,
            latency_ns: 1_000_000,
            cost: 700,
        };
        [one_way(a, b), one_way(b, a)]
    }

    fn request<'a>(
        switches: &'a [SwitchState],
        links: &'a [LinkState],
        in_use: &'a HashSet<FlowEndpoint>,
        flows: usize,
        network_aware: bool,
    ) -> PlanRequest<'a> {
        PlanRequest {
            switches,
            links,
            in_use,
            flows,
            bandwidth_kbps: 100,
            network_aware,
            run_prefix: "run",
        }
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn endpoints_never_repeat_on_a_switch_and_avoid_isl_ports_and_used_ones() {
        let switches = [
            switch(1, 4, SwitchStatus::Active),
            switch(2, 4, SwitchStatus::Active),
        ];
        let links = link(1, 2, LinkStatus::Up, 10_000);
        let taken = FlowEndpoint {
            switch_id: SwitchId(1),
            port_number: 1,
            vlan_id: 1,
        };
        let in_use = HashSet::from([taken.clone()]);
        let plan = plan(&request(&switches, &links, &in_use, 500, false), &mut rng()).unwrap();
        let mut seen = HashSet::new();
        for flow in &plan.flows {
            for endpoint in [&flow.source, &flow.destination] {
                assert!(seen.insert(endpoint.clone()), "{endpoint:?} used twice");
                let isl_port = u32::try_from(3 - endpoint.switch_id.0).unwrap();
                assert_ne!(endpoint.port_number, isl_port, "an ISL port");
                assert!((1..=MAX_VLAN).contains(&endpoint.vlan_id));
            }
            flow.validate().unwrap();
        }
        assert!(!seen.contains(&taken));
        let ids: HashSet<_> = plan.flows.iter().map(|f| &f.flow_id).collect();
        assert_eq!(ids.len(), 500);
        assert!(plan.flows.iter().all(|f| f.flow_id.starts_with("run-")));
    }

    #[test]
    fn only_ports_a_switch_has_are_endpoints() {
        // Switch 1 has ports 1, 2 (its link to 2 is on port 2) and 10, 11: a real switch's gap.
        let mut gapped = switch(1, 11, SwitchStatus::Active);
        gapped.port_numbers = vec![1, 2, 10, 11];
        let switches = [gapped, switch(2, 4, SwitchStatus::Active)];
        let links = link(1, 2, LinkStatus::Up, 10_000);
        let in_use = HashSet::new();
        let plan = plan(&request(&switches, &links, &in_use, 200, false), &mut rng()).unwrap();
        let ports: HashSet<u32> = plan
            .flows
            .iter()
            .flat_map(|f| [&f.source, &f.destination])
            .filter(|end| end.switch_id == SwitchId(1))
            .map(|end| end.port_number)
            .collect();
        assert_eq!(ports, HashSet::from([1, 10, 11]));
    }

    #[test]
    fn a_seed_gives_the_same_plan() {
        let switches: Vec<_> = (1..=5)
            .map(|n| switch(n, 8, SwitchStatus::Active))
            .collect();
        let links: Vec<LinkState> = (1..5)
            .flat_map(|n| link(n, n + 1, LinkStatus::Up, 1_000_000))
            .collect();
        let in_use = HashSet::new();
        for network_aware in [false, true] {
            let req = request(&switches, &links, &in_use, 50, network_aware);
            let first = plan(&req, &mut rng());
            assert_eq!(
                first,
                plan(&req, &mut rng()),
                "network-aware: {network_aware}"
            );
            let other = plan(&req, &mut StdRng::seed_from_u64(99));
            assert_ne!(first, other, "another seed, another plan");
        }
    }

    #[test]
    fn a_full_switch_is_an_error_not_a_collision() {
        let switches = [switch(1, 1, SwitchStatus::Active)];
        let in_use = HashSet::new();
        let pairs = usize::from(MAX_VLAN);
        let req = request(&switches, &[], &in_use, pairs / 2, false);
        assert_eq!(plan(&req, &mut rng()).unwrap().flows.len(), pairs / 2);
        let req = request(&switches, &[], &in_use, pairs / 2 + 1, false);
        assert_eq!(
            plan(&req, &mut rng()),
            Err(PlanError::EndpointsExhausted(SwitchId(1)))
        );
    }

    #[test]
    fn network_aware_pairs_only_cross_links_that_are_up_between_active_switches() {
        // 1-2 up, 2-3 up, 4-5 down, 6 inactive but linked to 1, 7 alone.
        let switches = [
            switch(1, 16, SwitchStatus::Active),
            switch(2, 16, SwitchStatus::Active),
            switch(3, 16, SwitchStatus::Active),
            switch(4, 16, SwitchStatus::Active),
            switch(5, 16, SwitchStatus::Active),
            switch(6, 16, SwitchStatus::Inactive),
            switch(7, 16, SwitchStatus::Active),
        ];
        let links: Vec<LinkState> = [
            link(1, 2, LinkStatus::Up, 10_000),
            link(2, 3, LinkStatus::Up, 10_000),
            link(4, 5, LinkStatus::Down, 10_000),
            link(1, 6, LinkStatus::Up, 10_000),
        ]
        .concat();
        let in_use = HashSet::new();
        let plan = plan(&request(&switches, &links, &in_use, 300, true), &mut rng()).unwrap();
        let group = [SwitchId(1), SwitchId(2), SwitchId(3)];
        for flow in &plan.flows {
            let (src, dst) = (flow.source.switch_id, flow.destination.switch_id);
            assert!(group.contains(&src) && group.contains(&dst), "{src}→{dst}");
            assert_ne!(src, dst);
        }
        let sources: HashSet<_> = plan.flows.iter().map(|f| f.source.switch_id).collect();
        assert_eq!(sources.len(), 3, "every connected switch is used");
    }

    #[test]
    fn a_link_up_one_way_only_connects_nothing() {
        let switches = [
            switch(1, 4, SwitchStatus::Active),
            switch(2, 4, SwitchStatus::Active),
        ];
        let [forward, mut backward] = link(1, 2, LinkStatus::Up, 10_000);
        backward.state = LinkStatus::Down;
        let links = [forward, backward];
        let in_use = HashSet::new();
        assert_eq!(
            plan(&request(&switches, &links, &in_use, 1, true), &mut rng()),
            Err(PlanError::NoConnectedPair)
        );
    }

    #[test]
    fn network_aware_bandwidth_fits_the_least_available_link_for_all_flows() {
        let switches: Vec<_> = (1..=3)
            .map(|n| switch(n, 8, SwitchStatus::Active))
            .collect();
        // 2-3 has 3000 kbps left; a down link with less does not count.
        let links: Vec<LinkState> = [
            link(1, 2, LinkStatus::Up, 10_000),
            link(2, 3, LinkStatus::Up, 3_000),
        ]
        .concat();
        let in_use = HashSet::new();
        let fits = plan(&request(&switches, &links, &in_use, 20, true), &mut rng()).unwrap();
        assert_eq!(fits.bandwidth_kbps, 100, "20 × 100 fits in 3000");
        let lowered = plan(&request(&switches, &links, &in_use, 60, true), &mut rng()).unwrap();
        assert_eq!(lowered.bandwidth_kbps, 50, "60 flows share 3000");
        assert!(lowered.flows.iter().all(|f| f.maximum_bandwidth == 50));
        assert_eq!(
            plan(
                &request(&switches, &links, &in_use, 3_001, true),
                &mut rng()
            ),
            Err(PlanError::BandwidthDoesNotFit {
                flows: 3_001,
                available_kbps: 3_000
            })
        );
        let mut best_effort = request(&switches, &links, &in_use, 3_001, true);
        best_effort.bandwidth_kbps = 0;
        assert_eq!(
            plan(&best_effort, &mut rng()).unwrap().bandwidth_kbps,
            0,
            "best effort always fits"
        );
    }

    #[test]
    fn without_network_awareness_the_bandwidth_is_as_asked() {
        let switches = [switch(1, 4, SwitchStatus::Inactive)];
        let in_use = HashSet::new();
        let plan = plan(&request(&switches, &[], &in_use, 3, false), &mut rng()).unwrap();
        assert_eq!(plan.bandwidth_kbps, 100);
        assert_eq!(plan.flows.len(), 3);
    }
}
