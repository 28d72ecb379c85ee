//! A diversity group of four flows on `grid:4x4` (switches numbered row by row, 1 to 16)
//! through two link failures, against any deployment. Each time, the paths are read back
//! from the switches: a packet traced from each endpoint must leave at the other one, and
//! no two members' packets may cross the same link.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::exact::{ISLS, SWITCHES};
use super::flows::switch_id;
use super::Api;

/// The group, in the order created, every flow naming the first: two across the grid from
/// switch 5 to 8 and two down it, from 2 to 14 and from 3 to 15. Alone, each would take its
/// straight line, and the lines cross. Ends shared by two flows are told apart by port.
const MEMBERS: [(&str, u64, u64, u64); 4] = [
    ("across-1", 5, 8, 30),
    ("across-2", 5, 8, 31),
    ("down-1", 2, 14, 32),
    ("down-2", 3, 15, 33),
];

/// A flow from `src` to `dst` on port `port` of both, in `partner`'s group.
pub fn body(flow_id: &str, src: u64, dst: u64, port: u64, partner: Option<&str>) -> Value {
    let endpoint = |switch: u64| json!({"switch_id": switch_id(switch), "port_number": port});
    json!({
        "flow_id": flow_id,
        "source": endpoint(src),
        "destination": endpoint(dst),
        "maximum_bandwidth": 1000,
        "diverse_flow_id": partner,
    })
}

/// The group is created apart: across-1 on the straight line, across-2 around the top; the
/// two down the grid cross across-1's switches (no path avoids them) but none of its links.
/// Then link 6-7 fails under across-1, and link 10-11 under where it went: each time it
/// moves to a path sharing no link with the others, where the shortest path around the
/// failure would have shared one.
pub async fn a_group_of_four_never_shares_a_link(api: &Api) {
    api.wait_for_network(SWITCHES as usize, ISLS).await;
    let first = MEMBERS[0].0;
    for (flow_id, src, dst, port) in MEMBERS {
        let partner = (flow_id != first).then_some(first);
        api.create_and_wait_up(&body(flow_id, src, dst, port, partner))
            .await;
    }
    let members = MEMBERS.map(|m| m.0);
    let shown = api.flow(first).await;
    assert_eq!(shown["diverse_with"], json!(members[1..]), "{shown}");
    let mut links = assert_diverse_on_the_switches(api, &members).await;

    for (a, b) in [(6, 7), (10, 11)] {
        let hit = flow_on(&links, a, b);
        api.fail_link(a, b).await;
        api.flow_when_within(
            Duration::from_secs(30),
            &hit,
            "the member on the failed link moved",
            |f| f["status"] == "UP" && !path_crosses(f, a, b),
        )
        .await;
        links = assert_diverse_on_the_switches(api, &members).await;
        assert!(links.keys().all(|&link| link != (a, b)));
    }
    for flow_id in members {
        let flow = api.flow(flow_id).await;
        assert_eq!(flow["status_info"], Value::Null, "nothing shared: {flow}");
    }
}

/// Traces every member both ways through the switches' tables; each packet must be
/// delivered at the other end, and no link may carry two members. Returns which member
/// crosses each link (lower switch first).
pub async fn assert_diverse_on_the_switches(
    api: &Api,
    members: &[&str],
) -> BTreeMap<(u64, u64), String> {
    let mut owner: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for &flow_id in members {
        let flow = api.flow(flow_id).await;
        assert_eq!(flow["status"], "UP", "{flow}");
        for trace in api.assert_delivered_both_ways(&flow).await {
            let switches: Vec<u64> = trace["hops"]
                .as_array()
                .expect("hops")
                .iter()
                .map(|hop| number(&hop["switch_id"]))
                .collect();
            for hop in switches.windows(2) {
                let link = (hop[0].min(hop[1]), hop[0].max(hop[1]));
                let first = owner.entry(link).or_insert_with(|| flow_id.to_string());
                assert_eq!(
                    first, flow_id,
                    "link {link:?} carries {first} and {flow_id}"
                );
            }
        }
    }
    owner
}

fn flow_on(links: &BTreeMap<(u64, u64), String>, a: u64, b: u64) -> String {
    links.get(&(a, b)).cloned().expect("a member on the link")
}

fn number(switch: &Value) -> u64 {
    let id = switch.as_str().unwrap_or_default().replace(':', "");
    u64::from_str_radix(&id, 16).unwrap_or(0)
}

/// Whether the flow's path (as GET shows it) goes over the link between `a` and `b`.
pub fn path_crosses(flow: &Value, a: u64, b: u64) -> bool {
    flow["path"].as_array().is_some_and(|path| {
        path.windows(2).any(|hop| {
            let (x, y) = (number(&hop[0]["switch_id"]), number(&hop[1]["switch_id"]));
            (x.min(y), x.max(y)) == (a, b)
        })
    })
}
