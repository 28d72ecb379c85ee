//! The rules a flow needs on its switches, derived from the request and its resources.

use serde::{Deserialize, Serialize};

use crate::{FlowEndpoint, FlowRequest, Isl, Resources, SwitchId};

/// OpenKilda's direction bits on a flow cookie.
pub const FORWARD_COOKIE_FLAG: u64 = 0x4000_0000_0000_0000;
pub const REVERSE_COOKIE_FLAG: u64 = 0x2000_0000_0000_0000;
/// Flow cookie ids are below this (48 bits), so the direction flag is all a cookie adds.
pub const COOKIE_ID_LIMIT: u64 = 1 << 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// First switch: matches the customer port/VLAN, meters, tags with the first ISL's VLAN.
    Ingress,
    /// Middle switch: forwards from one ISL to the next, swapping one's VLAN for the other's.
    Transit,
    /// Last switch: strips the last ISL's VLAN and delivers to the customer port/VLAN.
    Egress,
    /// Source and destination on the same switch: one rule does it all.
    OneSwitch,
}

impl SegmentKind {
    /// Ingress rules go last so traffic enters only once the rest of the path is ready.
    pub fn is_ingress(self) -> bool {
        matches!(self, SegmentKind::Ingress | SegmentKind::OneSwitch)
    }
}

/// One rule on one switch, as the speaker installs, verifies or removes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowSegment {
    pub switch_id: SwitchId,
    pub kind: SegmentKind,
    pub cookie: u64,
    pub in_port: u32,
    /// 0 matches untagged packets.
    pub in_vlan: u16,
    pub out_port: u32,
    /// The VLAN packets leave with; 0 leaves them untagged.
    pub out_vlan: u16,
    pub meter_id: Option<u32>,
    /// kbps the meter enforces.
    pub bandwidth: u64,
}

/// What a switch keeps of a segment's rule: its cookie, match, actions and meter. Not the
/// segment's kind, and its bandwidth only through its meter's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeldRule {
    pub cookie: u64,
    pub in_port: u32,
    /// 0: untagged.
    pub in_vlan: u16,
    pub out_port: u32,
    /// 0: leaves untagged.
    pub out_vlan: u16,
    pub meter_id: Option<u32>,
}

impl FlowSegment {
    /// What a switch keeps of this rule.
    pub fn held(&self) -> HeldRule {
        HeldRule {
            cookie: self.cookie,
            in_port: self.in_port,
            in_vlan: self.in_vlan,
            out_port: self.out_port,
            out_vlan: self.out_vlan,
            meter_id: self.meter_id,
        }
    }

    /// Whether `held` (a rule as a switch lists it) is this rule as a switch holds it: the
    /// same switch and [`HeldRule`]. The meter's rate is checked with the meters, so a real
    /// switch's rule is judged on what it has.
    pub fn is_held_as(&self, held: &FlowSegment) -> bool {
        self.switch_id == held.switch_id && self.held() == held.held()
    }

    /// What a dump command carries: the switch, and the flow cookie id whose rules (both
    /// directions) it asks for; 0 asks for every rule.
    pub fn dump_query(switch_id: SwitchId, cookie_id: u64) -> Self {
        FlowSegment {
            switch_id,
            kind: SegmentKind::Transit,
            cookie: cookie_id,
            in_port: 0,
            in_vlan: 0,
            out_port: 0,
            out_vlan: 0,
            meter_id: None,
            bandwidth: 0,
        }
    }

    /// The flow's cookie id, without the direction flag.
    pub fn cookie_id(&self) -> u64 {
        self.cookie & !(FORWARD_COOKIE_FLAG | REVERSE_COOKIE_FLAG)
    }

    /// Whether the rule is in hubspoke's cookie space (one direction flag and a flow cookie
    /// id): anything else on a switch is somebody else's, and hubspoke leaves it alone.
    pub fn is_hubspoke_cookie(&self) -> bool {
        is_hubspoke_cookie(self.cookie)
    }
}

/// Whether `cookie` is in hubspoke's cookie space: one direction flag and a flow cookie id.
pub fn is_hubspoke_cookie(cookie: u64) -> bool {
    let direction = cookie & (FORWARD_COOKIE_FLAG | REVERSE_COOKIE_FLAG);
    let id = cookie & !(FORWARD_COOKIE_FLAG | REVERSE_COOKIE_FLAG);
    (direction == FORWARD_COOKIE_FLAG || direction == REVERSE_COOKIE_FLAG)
        && id != 0
        && id < COOKIE_ID_LIMIT
}

/// Every rule of a flow: the primary path's, forward direction first, then the protected
/// path's transit and egress rules (its ingress rules are the primary's way in, taken over only
/// by a swap).
pub fn flow_segments(request: &FlowRequest, resources: &Resources) -> Vec<FlowSegment> {
    let mut segments = path_segments(
        request,
        resources,
        &resources.forward_path,
        &resources.transit_vlans,
    );
    segments.extend(
        protected_segments(request, resources)
            .into_iter()
            .filter(|segment| !segment.kind.is_ingress()),
    );
    segments
}

/// The ingress rules of the protected path: what a swap installs in place of the primary's.
pub fn protected_ingress(request: &FlowRequest, resources: &Resources) -> Vec<FlowSegment> {
    protected_segments(request, resources)
        .into_iter()
        .filter(|segment| segment.kind.is_ingress())
        .collect()
}

/// Every rule of the protected path, ingress included; none without one.
fn protected_segments(request: &FlowRequest, resources: &Resources) -> Vec<FlowSegment> {
    resources
        .protected
        .as_ref()
        .map_or_else(Vec::new, |protected| {
            path_segments(
                request,
                resources,
                &protected.forward_path,
                &protected.transit_vlans,
            )
        })
}

/// The rules of one path of the flow, both directions, forward first.
fn path_segments(
    request: &FlowRequest,
    resources: &Resources,
    forward_path: &[Isl],
    transit_vlans: &[u16],
) -> Vec<FlowSegment> {
    let reverse_path: Vec<Isl> = forward_path.iter().rev().map(Isl::reversed).collect();
    let reverse_vlans: Vec<u16> = transit_vlans.iter().rev().copied().collect();
    let mut segments = direction_segments(
        &request.source,
        &request.destination,
        forward_path,
        FORWARD_COOKIE_FLAG | resources.cookie,
        resources.forward_meter,
        transit_vlans,
        request.maximum_bandwidth,
    );
    segments.extend(direction_segments(
        &request.destination,
        &request.source,
        &reverse_path,
        REVERSE_COOKIE_FLAG | resources.cookie,
        resources.reverse_meter,
        &reverse_vlans,
        request.maximum_bandwidth,
    ));
    segments
}

fn direction_segments(
    from: &FlowEndpoint,
    to: &FlowEndpoint,
    path: &[Isl],
    cookie: u64,
    meter_id: Option<u32>,
    link_vlans: &[u16],
    bandwidth: u64,
) -> Vec<FlowSegment> {
    // A record always has one VLAN per ISL; 0 (untagged) only if one were ever missing.
    let vlan = |link: usize| link_vlans.get(link).copied().unwrap_or(0);
    let segment = |switch_id, kind, in_port, in_vlan, out_port, out_vlan, meter_id| FlowSegment {
        switch_id,
        kind,
        cookie,
        in_port,
        in_vlan,
        out_port,
        out_vlan,
        meter_id,
        bandwidth,
    };
    let (Some(first), Some(last)) = (path.first(), path.last()) else {
        return vec![segment(
            from.switch_id,
            SegmentKind::OneSwitch,
            from.port_number,
            from.vlan_id,
            to.port_number,
            to.vlan_id,
            meter_id,
        )];
    };
    let mut segments = vec![segment(
        from.switch_id,
        SegmentKind::Ingress,
        from.port_number,
        from.vlan_id,
        first.src_port,
        vlan(0),
        meter_id,
    )];
    for (link, hop) in path.windows(2).enumerate() {
        let (arrive, leave) = (hop[0], hop[1]);
        segments.push(segment(
            arrive.dst_switch,
            SegmentKind::Transit,
            arrive.dst_port,
            vlan(link),
            leave.src_port,
            vlan(link + 1),
            None,
        ));
    }
    segments.push(segment(
        to.switch_id,
        SegmentKind::Egress,
        last.dst_port,
        vlan(path.len() - 1),
        to.port_number,
        to.vlan_id,
        None,
    ));
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;
    use crate::test_support::request;

    #[test]
    fn a_three_switch_path_has_ingress_transit_egress_both_ways() {
        let network = Network::generate("linear:3").unwrap().unwrap();
        let path = network
            .shortest_path(SwitchId(1), SwitchId(3), 1, |_| Some(u64::MAX))
            .unwrap();
        let resources = Resources {
            cookie: 7,
            transit_vlans: vec![300, 301],
            forward_meter: Some(32),
            reverse_meter: Some(33),
            forward_path: path,
            ..Default::default()
        };
        let segments = flow_segments(&request(1, 3), &resources);
        let kinds: Vec<_> = segments.iter().map(|s| (s.switch_id.0, s.kind)).collect();
        use SegmentKind::*;
        assert_eq!(
            kinds,
            vec![
                (1, Ingress),
                (2, Transit),
                (3, Egress),
                (3, Ingress),
                (2, Transit),
                (1, Egress)
            ]
        );
        assert_eq!(
            (
                segments[0].in_port,
                segments[0].in_vlan,
                segments[0].out_vlan
            ),
            (40, 10, 300)
        );
        assert_eq!(segments[0].meter_id, Some(32));
        assert_eq!(segments[3].meter_id, Some(33));
        assert_eq!((segments[2].out_port, segments[2].out_vlan), (41, 20));
        assert_eq!(segments[0].cookie, FORWARD_COOKIE_FLAG | 7);
        assert_eq!(segments[3].cookie, REVERSE_COOKIE_FLAG | 7);
        // the transit rule forwards from the ISL it arrives on to the one it leaves on
        assert_eq!(segments[1].in_port, resources.forward_path[0].dst_port);
        assert_eq!(segments[1].out_port, resources.forward_path[1].src_port);
        // ... and swaps the first ISL's VLAN for the second's, the other way back
        assert_eq!((segments[1].in_vlan, segments[1].out_vlan), (300, 301));
        assert_eq!((segments[4].in_vlan, segments[4].out_vlan), (301, 300));
        assert_eq!((segments[3].out_vlan, segments[5].in_vlan), (301, 300));
    }

    #[test]
    fn a_one_switch_flow_has_one_rule_per_direction() {
        let resources = Resources {
            cookie: 1,
            transit_vlans: vec![],
            forward_meter: None,
            reverse_meter: None,
            forward_path: vec![],
            ..Default::default()
        };
        let segments = flow_segments(&request(4, 4), &resources);
        assert_eq!(segments.len(), 2);
        assert!(segments.iter().all(|s| s.kind == SegmentKind::OneSwitch));
        assert_eq!((segments[1].in_port, segments[1].out_port), (41, 40));
    }
}
