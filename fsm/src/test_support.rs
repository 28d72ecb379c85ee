//! Shared fixtures for the state machine tests.

use crate::network::Network;
use crate::operation::Action;
use crate::{FlowEndpoint, FlowRecord, FlowRequest, Resources, SbAction, SwitchId};

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
        transit_vlan: 2,
        forward_meter: Some(32),
        reverse_meter: Some(32),
        forward_path: path,
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
