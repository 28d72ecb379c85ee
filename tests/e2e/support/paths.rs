//! Paths by strategy end to end: a network whose routes differ in cost and latency, and what
//! a flow's installed path costs in latency, read back over REST.

use std::path::Path;

use serde_json::{json, Value};

use super::flows::switch_id;
use super::Api;

pub const MS: u64 = 1_000_000;

/// Switch 1 to switch 4 three ways, both hops of each alike:
/// via 2: cost 100 a hop, 5 ms (cheapest, slowest: 10 ms); via 5: cost 300, 3.5 ms (7 ms);
/// via 3: cost 500, 2 ms (fastest: 4 ms). Written as a JSON network file in `dir`.
pub fn three_routes(dir: &Path) -> String {
    let switches: Vec<Value> = (1..=5)
        .map(|n| json!({"switch_id": switch_id(n), "ports": 20}))
        .collect();
    let mut links = Vec::new();
    for (port, via, cost, latency_ns) in [
        (1, 2, 100, 5 * MS),
        (2, 5, 300, 7 * MS / 2),
        (3, 3, 500, 2 * MS),
    ] {
        for (src, src_port, dst, dst_port) in [(1, port, via, 1), (via, 2, 4, port)] {
            links.push(json!({
                "src_switch": switch_id(src), "src_port": src_port,
                "dst_switch": switch_id(dst), "dst_port": dst_port,
                "capacity": 10_000_000, "latency_ns": latency_ns, "cost": cost,
            }));
        }
    }
    let file = dir.join("three-routes.json");
    let network = json!({"switches": switches, "links": links});
    std::fs::write(&file, network.to_string()).expect("write the network file");
    file.to_string_lossy().into_owned()
}

/// A flow from port `port` of switch 1 to port `port` of switch 4, with `options` (the
/// strategy and its limits) added.
pub fn routed_flow(flow_id: &str, port: u32, options: Value) -> Value {
    let mut body = json!({
        "flow_id": flow_id,
        "source": {"switch_id": switch_id(1), "port_number": port, "vlan_id": 10},
        "destination": {"switch_id": switch_id(4), "port_number": port, "vlan_id": 20},
        "maximum_bandwidth": 1000,
    });
    if let (Some(body), Some(options)) = (body.as_object_mut(), options.as_object()) {
        body.extend(options.clone());
    }
    body
}

/// The switch after switch 1 on the flow's path.
pub fn via(flow: &Value) -> Value {
    flow["path"][1]["switch_id"].clone()
}

/// The latency of the flow's installed path: its hops (`GET /v2/flows/{id}` `path`) summed
/// from the links' latencies (`GET /v2/links`).
pub async fn path_latency_ns(api: &Api, flow: &Value) -> u64 {
    let links = api.links().await;
    let path = flow["path"].as_array().expect("a path");
    path.windows(2)
        .map(|hop| {
            links
                .iter()
                .find(|l| {
                    l["src_switch"] == hop[0]["switch_id"]
                        && l["src_port"] == hop[0]["output_port"]
                        && l["dst_switch"] == hop[1]["switch_id"]
                        && l["dst_port"] == hop[1]["input_port"]
                })
                .and_then(|l| l["latency_ns"].as_u64())
                .unwrap_or_else(|| panic!("no link for the hop {hop:?} of {flow}"))
        })
        .sum()
}
