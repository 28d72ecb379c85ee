//! Network failures, reroutes and updates, against any deployment.

use std::time::Duration;

use serde_json::{json, Value};

use super::flows::{assert_tables_hold_exactly, create_all, links_add_up, switch_id};
use super::Api;

/// Two links of grid:3x3 fail one after the other under 100 flows: the network view finds the
/// flows on each, and each is rerouted make-before-break. Every flow ends UP on a path that
/// avoids both links, the switches hold exactly the rules of the new paths (no rule of an old
/// path is left behind), and `/v2/links` shows the two links DOWN.
pub async fn two_busiest_links_fail(api: &Api, count: usize) {
    create_all(api, count).await;
    let all_up_avoiding = |failed: Vec<(u64, u64)>| async move {
        let settled =
            |f: &Value| f["status"] == "UP" && !failed.iter().any(|&(a, b)| uses_link(f, a, b));
        let limit = Duration::from_secs(60);
        api.flows_when(count, limit, "all flows UP off the failed links", settled)
            .await
    };
    let mut flows = all_up_avoiding(vec![]).await;

    let mut failed = Vec::new();
    for _ in 0..2 {
        // The busiest link: the one whose failure moves the most flows.
        let (a, b) = busiest_link(&flows);
        api.fail_link(a, b).await;
        failed.push((a, b));
        let moved: Vec<&Value> = flows.iter().filter(|f| uses_link(f, a, b)).collect();
        let after = all_up_avoiding(failed.clone()).await;
        assert_tables_hold_exactly(api, &after).await;
        links_add_up(api, &after).await;
        for flow in &after {
            let before = flows.iter().find(|f| f["flow_id"] == flow["flow_id"]);
            let was_moved = moved.iter().any(|m| m["flow_id"] == flow["flow_id"]);
            assert_eq!(
                before.map(|b| &b["path"]) != Some(&flow["path"]),
                was_moved,
                "only the flows on link {a}-{b} move: {flow}"
            );
        }
        flows = after;
    }

    let down: Vec<(String, String)> = api
        .links()
        .await
        .iter()
        .filter(|l| l["state"] == "DOWN")
        .map(|l| {
            let end = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (end("src_switch"), end("dst_switch"))
        })
        .collect();
    assert_eq!(down.len(), 4, "two links, both directions: {down:?}");
    for (a, b) in failed {
        assert!(down.contains(&(switch_id(a), switch_id(b))), "{down:?}");
    }
}

/// The link (lower switch first) the most flows' paths use.
fn busiest_link(flows: &[Value]) -> (u64, u64) {
    let mut counts: std::collections::BTreeMap<(u64, u64), usize> = Default::default();
    for flow in flows {
        let path = flow["path"].as_array().expect("path");
        for hop in path.windows(2) {
            let switch = |node: &Value| {
                let id = node["switch_id"].as_str().unwrap_or_default();
                u64::from_str_radix(&id.replace(':', ""), 16).unwrap_or(0)
            };
            let (x, y) = (switch(&hop[0]), switch(&hop[1]));
            *counts.entry((x.min(y), x.max(y))).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .map(|(link, _)| link)
        .expect("some flow crosses a link")
}

/// Whether the flow's path goes over the link between switches `a` and `b` (either way).
fn uses_link(flow: &Value, a: u64, b: u64) -> bool {
    let (a, b) = (switch_id(a), switch_id(b));
    flow["path"].as_array().is_some_and(|path| {
        path.windows(2).any(|hop| {
            let ends = (hop[0]["switch_id"].as_str(), hop[1]["switch_id"].as_str());
            ends == (Some(&a), Some(&b)) || ends == (Some(&b), Some(&a))
        })
    })
}

/// A flow on grid:3x3 is updated (bandwidth and destination change) and comes UP with exactly
/// the new rules and the new bandwidth on its links; a failed link moves it onto a detour,
/// which it keeps once the link is back; `POST …/reroute` brings it back onto the best path.
/// After each move the switches hold exactly its rules.
pub async fn update_then_reroute(api: &Api) {
    api.wait_for_grid().await;
    let endpoint = |switch: u64, port: u64, vlan: u64| json!({"switch_id": switch_id(switch), "port_number": port, "vlan_id": vlan});
    let created = json!({
        "flow_id": "mbb", "source": endpoint(1, 30, 7), "destination": endpoint(9, 30, 8),
        "maximum_bandwidth": 1000,
    });
    api.create_and_wait_up(&created).await;

    let updated = json!({
        "source": endpoint(1, 30, 7), "destination": endpoint(9, 31, 9),
        "maximum_bandwidth": 5000,
    });
    api.update("mbb", &updated).await;
    let up = |flow: &Value| flow["status"] == "UP";
    let flow = api
        .flow_when("mbb", "the update UP", |f| {
            up(f) && f["maximum_bandwidth"] == 5000 && f["destination"]["port_number"] == 31
        })
        .await;
    assert_tables_hold_exactly(api, std::slice::from_ref(&flow)).await;
    links_add_up(api, std::slice::from_ref(&flow)).await;

    let best = flow;
    let (a, b) = busiest_link(std::slice::from_ref(&best));
    api.fail_link(a, b).await;
    let detour = api
        .flow_when("mbb", "the flow on a detour", |f| {
            up(f) && !uses_link(f, a, b)
        })
        .await;
    api.restore_link(a, b).await;
    // Back up, the link does not pull an UP flow back by itself.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kept = api.flow("mbb").await;
    assert_eq!(kept["path"], detour["path"]);
    api.reroute("mbb").await;
    let flow = api
        .flow_when("mbb", "the flow back on the best path", |f| {
            up(f) && f["path"] == best["path"]
        })
        .await;
    assert_tables_hold_exactly(api, &[flow]).await;
}
