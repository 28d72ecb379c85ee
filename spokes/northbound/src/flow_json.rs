//! The flow as the REST contract shows it.

use hubspoke_fsm::{
    FlowEndpoint, FlowRecord, FlowRequest, FlowStatus, Isl, PathComputationStrategy, Resources,
    SwitchId,
};
use serde::{Deserialize, Serialize};

use hubspoke_bus::clock::rfc3339_ms;

use crate::view::Diversity;

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
    /// The other flows of its diversity group (OpenKilda's `diverse_with`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diverse_with: Vec<String>,
    pub priority: Option<u32>,
    pub ignore_bandwidth: bool,
    pub strict_bandwidth: bool,
    pub status: FlowStatus,
    pub status_info: Option<String>,
    /// For a flow with `allocate_protected_path`: whether each of its paths carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    pub path: Vec<PathNode>,
    /// The protected path, in the shape of `path`, while the flow has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_path: Option<Vec<PathNode>>,
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
            diverse_with: Vec::new(),
            priority: request.priority,
            ignore_bandwidth: request.ignore_bandwidth,
            strict_bandwidth: request.strict_bandwidth,
            status: record.status,
            status_info: record.status_info.clone(),
            status_details: request
                .allocate_protected_path
                .then(|| StatusDetails::of(record)),
            path: record
                .resources
                .as_ref()
                .map(|r| forward_path(request, r))
                .unwrap_or_default(),
            protected_path: record
                .resources
                .as_ref()
                .and_then(|r| r.protected.as_ref())
                .map(|p| path_nodes(request, &p.forward_path)),
            created: rfc3339_ms(record.created_ms),
            last_updated: rfc3339_ms(record.last_updated_ms),
        }
    }
}

impl FlowJson {
    /// The flow as a member of its diversity group: its other members, and (when nothing
    /// else is to be said of an UP flow) the members its path could not keep apart from.
    pub fn with_diversity(mut self, diversity: Diversity) -> Self {
        self.diverse_with = diversity.diverse_with;
        if self.status_info.is_none() && !diversity.shares_path_with.is_empty() {
            self.status_info = Some(format!(
                "no diverse path: shares ISLs with {}",
                diversity.shares_path_with.join(", ")
            ));
        }
        self
    }
}

/// OpenKilda's `FlowStatusDetails`: a protected flow's status per path. Without a protected
/// path the flow stays UP on its primary, its protection down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    pub main_path: PathStatus,
    pub protected_path: PathStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathStatus {
    Up,
    Down,
    #[serde(rename = "In progress")]
    InProgress,
}

impl StatusDetails {
    fn of(record: &FlowRecord) -> Self {
        let main_path = match record.status {
            FlowStatus::Up | FlowStatus::Degraded => PathStatus::Up,
            FlowStatus::InProgress => PathStatus::InProgress,
            FlowStatus::Down => PathStatus::Down,
        };
        let protected = record.resources.as_ref().and_then(|r| r.protected.as_ref());
        let protected_path = match (protected, main_path) {
            (None, _) => PathStatus::Down,
            (Some(_), PathStatus::Down) => PathStatus::Down,
            (Some(_), status) => status,
        };
        StatusDetails {
            main_path,
            protected_path,
        }
    }
}

/// The switches from source to destination: each enters by the port the previous hop
/// arrives on (the source port first) and leaves by the next hop's (the destination last).
pub fn forward_path(request: &FlowRequest, resources: &Resources) -> Vec<PathNode> {
    path_nodes(request, &resources.forward_path)
}

/// [`forward_path`] of any of the flow's paths.
fn path_nodes(request: &FlowRequest, path: &[Isl]) -> Vec<PathNode> {
    let mut nodes = Vec::with_capacity(path.len() + 1);
    let (mut switch_id, mut input_port) = (request.source.switch_id, request.source.port_number);
    for isl in path {
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
            ..Default::default()
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

    #[test]
    fn a_member_shows_its_group_and_says_which_paths_it_shares() {
        let mut record = FlowRecord::new(request(1, 3), 1);
        record.status = FlowStatus::Up;
        let diversity = |shares: &[&str]| Diversity {
            diverse_with: vec!["g".into(), "h".into()],
            shares_path_with: shares.iter().map(|f| f.to_string()).collect(),
        };
        let diverse = FlowJson::from(&record).with_diversity(diversity(&[]));
        assert_eq!(diverse.diverse_with, vec!["g", "h"]);
        assert_eq!(diverse.status_info, None);
        let shared = FlowJson::from(&record).with_diversity(diversity(&["h"]));
        assert_eq!(
            shared.status_info.as_deref(),
            Some("no diverse path: shares ISLs with h")
        );
        let alone = serde_json::to_value(FlowJson::from(&record)).unwrap();
        assert!(alone.get("diverse_with").is_none(), "{alone}");
    }

    #[test]
    fn a_protected_flow_shows_its_protected_path_and_the_status_of_each_path() {
        let network = Network::generate("ring:4").unwrap().unwrap();
        let direct = network
            .shortest_path(SwitchId(1), SwitchId(2), 1, |_| Some(u64::MAX))
            .unwrap();
        let around = network
            .shortest_path(SwitchId(1), SwitchId(2), 1, |isl| {
                (*isl != direct[0]).then_some(u64::MAX)
            })
            .unwrap();
        let mut flow = request(1, 2);
        flow.allocate_protected_path = true;
        let mut record = FlowRecord::new(flow, 1_700_000_000_000);
        record.status = FlowStatus::Up;
        record.resources = Some(resources(direct));
        let json = serde_json::to_value(FlowJson::from(&record)).unwrap();
        assert_eq!(json["status"], "UP");
        assert_eq!(
            json["status_details"],
            serde_json::json!({"main_path": "Up", "protected_path": "Down"}),
            "no protected path: UP on the primary, the protection down"
        );
        assert!(json.get("protected_path").is_none());

        if let Some(resources) = record.resources.as_mut() {
            resources.protected = Some(Box::new(hubspoke_fsm::ProtectedPath {
                transit_vlans: vec![2; around.len()],
                forward_path: around,
            }));
        }
        let json = FlowJson::from(&record);
        let protected = json.protected_path.unwrap();
        let switches: Vec<u64> = protected.iter().map(|node| node.switch_id.0).collect();
        assert_eq!(switches, vec![1, 4, 3, 2]);
        assert_eq!(
            (protected[0].input_port, protected[3].output_port),
            (40, 41)
        );
        assert_eq!(
            json.status_details.map(|d| d.protected_path),
            Some(PathStatus::Up)
        );
    }
}
