//! The flow as the REST contract shows it.

use hubspoke_fsm::{
    FlowEndpoint, FlowRecord, FlowRequest, FlowStatus, PathComputationStrategy, Resources, SwitchId,
};
use serde::{Deserialize, Serialize};

use hubspoke_bus::clock::rfc3339_ms;

/// One switch of a flow's forward path, with the ports traffic enters and leaves by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathNode {
    pub switch_id: SwitchId,
    pub input_port: u32,
    pub output_port: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowJson {
    pub flow_id: String,
    pub source: FlowEndpoint,
    pub destination: FlowEndpoint,
    pub maximum_bandwidth: u64,
    pub description: String,
    pub pinned: bool,
    pub path_computation_strategy: PathComputationStrategy,
    pub max_latency: Option<u64>,
    pub max_latency_tier2: Option<u64>,
    pub allocate_protected_path: bool,
    pub diverse_flow_id: Option<String>,
    pub priority: Option<u32>,
    pub ignore_bandwidth: bool,
    pub strict_bandwidth: bool,
    pub status: FlowStatus,
    pub status_info: Option<String>,
    pub path: Vec<PathNode>,
    pub created: String,
    pub last_updated: String,
}

impl From<&FlowRecord> for FlowJson {
    fn from(record: &FlowRecord) -> Self {
        let request = &record.request;
        FlowJson {
            flow_id: request.flow_id.clone(),
            source: request.source.clone(),
            destination: request.destination.clone(),
            maximum_bandwidth: request.maximum_bandwidth,
            description: request.description.clone(),
            pinned: request.pinned,
            path_computation_strategy: request.path_computation_strategy,
            max_latency: request.max_latency,
            max_latency_tier2: request.max_latency_tier2,
            allocate_protected_path: request.allocate_protected_path,
            diverse_flow_id: request.diverse_flow_id.clone(),
            priority: request.priority,
            ignore_bandwidth: request.ignore_bandwidth,
            strict_bandwidth: request.strict_bandwidth,
            status: record.status,
            status_info: record.status_info.clone(),
            path: record
                .resources
                .as_ref()
                .map(|r| forward_path(request, r))
                .unwrap_or_default(),
            created: rfc3339_ms(record.created_ms),
            last_updated: rfc3339_ms(record.last_updated_ms),
        }
    }
}

/// The switches from source to destination: each enters by the port the previous hop
/// arrives on (the source port first) and leaves by the next hop's (the destination last).
pub fn forward_path(request: &FlowRequest, resources: &Resources) -> Vec<PathNode> {
    let mut nodes = Vec::with_capacity(resources.forward_path.len() + 1);
    let (mut switch_id, mut input_port) = (request.source.switch_id, request.source.port_number);
    for isl in &resources.forward_path {
        nodes.push(PathNode {
            switch_id,
            input_port,
            output_port: isl.src_port,
        });
        (switch_id, input_port) = (isl.dst_switch, isl.dst_port);
    }
    nodes.push(PathNode {
        switch_id,
        input_port,
        output_port: request.destination.port_number,
    });
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::network::Network;

    fn request(src: u64, dst: u64) -> FlowRequest {
        FlowRequest {
            flow_id: "f".into(),
            source: FlowEndpoint {
                switch_id: SwitchId(src),
                port_number: 40,
                vlan_id: 0,
            },
            destination: FlowEndpoint {
                switch_id: SwitchId(dst),
                port_number: 41,
                vlan_id: 7,
            },
            maximum_bandwidth: 100,
            description: "d".into(),
            ..Default::default()
        }
    }

    fn resources(path: Vec<hubspoke_fsm::Isl>) -> Resources {
        Resources {
            cookie: 1,
            transit_vlans: vec![2; path.len()],
            forward_meter: None,
            reverse_meter: None,
            forward_path: path,
            protected: None,
        }
    }

    #[test]
    fn a_three_switch_path_lists_ports_hop_by_hop() {
        let network = Network::generate("linear:3").unwrap().unwrap();
        let path = network
            .shortest_path(SwitchId(1), SwitchId(3), 1, |_| Some(u64::MAX))
            .unwrap();
        let nodes = forward_path(&request(1, 3), &resources(path.clone()));
        assert_eq!(
            nodes,
            vec![
                PathNode {
                    switch_id: SwitchId(1),
                    input_port: 40,
                    output_port: path[0].src_port
                },
                PathNode {
                    switch_id: SwitchId(2),
                    input_port: path[0].dst_port,
                    output_port: path[1].src_port
                },
                PathNode {
                    switch_id: SwitchId(3),
                    input_port: path[1].dst_port,
                    output_port: 41
                },
            ]
        );
    }

    #[test]
    fn a_one_switch_flow_is_one_node_and_no_resources_no_path() {
        let nodes = forward_path(&request(4, 4), &resources(vec![]));
        assert_eq!(
            nodes,
            vec![PathNode {
                switch_id: SwitchId(4),
                input_port: 40,
                output_port: 41
            }]
        );
        let mut record = FlowRecord::new(request(1, 3), 1_700_000_000_000);
        record.last_updated_ms = 1_700_000_000_250;
        let json = FlowJson::from(&record);
        assert!(json.path.is_empty());
        assert_eq!(json.created, "2023-11-14T22:13:20.000Z");
        assert_eq!(json.last_updated, "2023-11-14T22:13:20.250Z");
        let text = serde_json::to_value(&json).unwrap();
        assert_eq!(text["status"], "IN_PROGRESS");
        assert_eq!(text["destination"]["vlan_id"], 7);
    }
}
