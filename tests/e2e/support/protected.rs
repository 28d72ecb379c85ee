//! The protected-path scenario of the end-to-end tests, against any deployment whose switches
//! are the simulator: 50 protected flows on `mesh:4` fail over onto their protected paths when
//! their primary's link fails, with only their ingress rules changed, then get a new protected
//! path once the network has one again.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use super::flows::{rule_from_switch, switch_id, Rule};
use super::Api;

pub const NETWORK: &str = "mesh:4";
const FLOWS: usize = 50;

/// Flow i from port 20 of switch 1 to port 21 of switch 2, a VLAN each, protected.
fn flow_body(i: usize) -> Value {
    json!({
        "flow_id": format!("protected-{i}"),
        "source": {"switch_id": switch_id(1), "port_number": 20, "vlan_id": 100 + i},
        "destination": {"switch_id": switch_id(2), "port_number": 21, "vlan_id": 1000 + i},
        "maximum_bandwidth": 1000,
        "allocate_protected_path": true,
    })
}

async fn rules(api: &Api) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for n in 1..=4 {
        let switch = switch_id(n);
        for rule in &api.rules(&switch).await {
            rules.insert(rule_from_switch(&switch, rule));
        }
    }
    rules
}

/// The switches of a path in the shape of `path`.
fn switches(path: &Value) -> Vec<String> {
    path.as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["switch_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The links (unordered switch pairs) of a path in the shape of `path`.
fn links(path: &Value) -> BTreeSet<(String, String)> {
    let switches = switches(path);
    switches
        .windows(2)
        .map(|pair| {
            let (a, b) = (pair[0].clone(), pair[1].clone());
            if a < b {
                (a, b)
            } else {
                (b, a)
            }
        })
        .collect()
}

/// A packet from each endpoint leaves at the other, through `via`.
async fn carried_both_ways(api: &Api, flow: &Value, via: &str) {
    for trace in api.assert_delivered_both_ways(flow).await {
        let crossed = trace["hops"]
            .as_array()
            .is_some_and(|hops| hops.iter().any(|hop| hop["switch_id"] == via));
        assert!(
            crossed,
            "flow {}: a packet must go through {via}: {trace}",
            flow["flow_id"]
        );
    }
}

/// The whole scenario: 1-4 down first (so the flows have exactly one way round), 50 flows UP
/// on 1-2 protected by 1-3-2; 1-2 fails: every flow is on 1-3-2, the switches' tables differ
/// only in the ingress rules (one per endpoint switch and flow, at the same matches), and
/// packets take 1-3-2 both ways; 1-4 comes back: every flow gets a new protected path, 1-4-2,
/// sharing no link with its primary.
pub async fn fifty_protected_flows_fail_over_then_are_protected_again(api: &Api) {
    api.wait_for_network(4, 12).await;
    api.fail_link(1, 4).await;
    for i in 0..FLOWS {
        api.create(&flow_body(i)).await;
    }
    let up = api
        .flows_when(FLOWS, Duration::from_secs(60), "every flow UP", |f| {
            f["status"] == "UP" && f["protected_path"].is_array()
        })
        .await;
    for flow in &up {
        assert_eq!(
            switches(&flow["path"]),
            [switch_id(1), switch_id(2)],
            "{flow}"
        );
        assert_eq!(
            switches(&flow["protected_path"]),
            [switch_id(1), switch_id(3), switch_id(2)],
            "{flow}"
        );
        assert_eq!(flow["status_details"]["protected_path"], "Up", "{flow}");
    }
    let before = rules(api).await;

    api.fail_link(1, 2).await;
    let swapped = api
        .flows_when(FLOWS, Duration::from_secs(60), "every flow swapped", |f| {
            f["status"] == "UP" && switches(&f["path"]).contains(&switch_id(3))
        })
        .await;
    let after = rules(api).await;
    let changed: BTreeSet<&Rule> = before.symmetric_difference(&after).collect();
    assert!(
        changed.iter().all(
            |(_, _, kind, in_port, ..)| kind == "ingress" && (*in_port == 20 || *in_port == 21)
        ),
        "only ingress rules changed: {changed:?}"
    );
    assert_eq!(
        changed.len(),
        4 * FLOWS,
        "each flow's two ingress rules replaced (old and new of each)"
    );
    let matches = |rules: &BTreeSet<Rule>| -> BTreeSet<(String, u64, u64)> {
        rules
            .iter()
            .map(|(switch, _, _, port, vlan, ..)| (switch.clone(), *port, *vlan))
            .collect()
    };
    assert_eq!(matches(&before), matches(&after), "at the same matches");
    for flow in &swapped {
        carried_both_ways(api, flow, &switch_id(3)).await;
    }

    api.restore_link(1, 4).await;
    let protected_again = api
        .flows_when(
            FLOWS,
            Duration::from_secs(90),
            "every flow protected again",
            |f| f["status"] == "UP" && switches(&f["protected_path"]).contains(&switch_id(4)),
        )
        .await;
    for flow in &protected_again {
        assert!(
            links(&flow["path"]).is_disjoint(&links(&flow["protected_path"])),
            "{flow}"
        );
        carried_both_ways(api, flow, &switch_id(3)).await;
    }
}
