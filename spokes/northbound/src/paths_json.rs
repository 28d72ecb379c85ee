//! `GET /v2/network/paths` in OpenKilda's shape: `{"paths": [{bandwidth, latency, latency_ns,
//! latency_ms, nodes: [{switch_id, input_port, output_port}]}]}`, with each path's cost.

use hubspoke_fsm::network::FoundPath;
use hubspoke_fsm::SwitchId;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathsJson {
    pub paths: Vec<PathJson>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathJson {
    /// kbps still free on its narrowest ISL, either direction.
    pub bandwidth: u64,
    /// Nanoseconds, as OpenKilda's `latency`.
    pub latency: u64,
    pub latency_ns: u64,
    /// Whole milliseconds, rounded down.
    pub latency_ms: u64,
    /// The sum of its ISLs' costs.
    pub cost: u64,
    pub nodes: Vec<PathNodeJson>,
}

/// A switch of the path: the port it is entered by (none for the first) and left by (none
/// for the last).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathNodeJson {
    pub switch_id: SwitchId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_port: Option<u32>,
}

impl From<&FoundPath> for PathJson {
    fn from(path: &FoundPath) -> Self {
        let mut nodes: Vec<PathNodeJson> = Vec::with_capacity(path.isls.len() + 1);
        for isl in &path.isls {
            match nodes.last_mut() {
                Some(last) => last.output_port = Some(isl.src_port),
                None => nodes.push(PathNodeJson {
                    switch_id: isl.src_switch,
                    input_port: None,
                    output_port: Some(isl.src_port),
                }),
            }
            nodes.push(PathNodeJson {
                switch_id: isl.dst_switch,
                input_port: Some(isl.dst_port),
                output_port: None,
            });
        }
        PathJson {
            bandwidth: path.available_bandwidth,
            latency: path.latency_ns,
            latency_ns: path.latency_ns,
            latency_ms: path.latency_ns / 1_000_000,
            cost: path.cost,
            nodes,
        }
    }
}
