//! The translations against the simulator's behaviour, per segment kind, and the round trip
//! that matters most: what we install, as OVS reports it back, reads as the segment again.

mod round_trip;
mod session;
mod translations;

use hubspoke_fsm::segments::{FlowSegment, SegmentKind, FORWARD_COOKIE_FLAG};
use hubspoke_fsm::SwitchId;
use hubspoke_openflow::{FlowMod, FlowStats, Message};

/// A segment of kind `kind` with the VLANs hubspoke gives it.
fn segment(kind: SegmentKind, in_vlan: u16, out_vlan: u16, meter_id: Option<u32>) -> FlowSegment {
    FlowSegment {
        switch_id: SwitchId(2),
        kind,
        cookie: FORWARD_COOKIE_FLAG | 7,
        in_port: 10,
        in_vlan,
        out_port: 11,
        out_vlan,
        meter_id,
        bandwidth: 10_000,
    }
}

/// Every kind, with both kinds of customer endpoint where it has one.
fn every_kind() -> Vec<FlowSegment> {
    use SegmentKind::*;
    vec![
        segment(Ingress, 0, 300, Some(32)),
        segment(Ingress, 100, 300, Some(32)),
        segment(Ingress, 0, 300, None),
        segment(Transit, 300, 301, None),
        segment(Egress, 301, 0, None),
        segment(Egress, 301, 20, None),
        segment(OneSwitch, 100, 0, Some(33)),
        segment(OneSwitch, 0, 0, None),
    ]
}

fn flow_mods(messages: &[Message]) -> Vec<&FlowMod> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::FlowMod(flow) => Some(flow),
            _ => None,
        })
        .collect()
}

/// The entry OVS reports for an added FLOW_MOD: in table 0, the match normalised (a masked
/// vlan_vid reported exact, fields in its order), the instructions as sent.
fn as_ovs_reports(flow: &FlowMod) -> FlowStats {
    FlowStats {
        table_id: flow.table_id,
        duration_sec: 12,
        duration_nsec: 345,
        priority: flow.priority,
        idle_timeout: flow.idle_timeout,
        hard_timeout: flow.hard_timeout,
        flags: flow.flags,
        cookie: flow.cookie,
        packet_count: 99,
        byte_count: 9_900,
        matching: flow.matching.normalized(),
        instructions: flow.instructions.clone(),
    }
}
