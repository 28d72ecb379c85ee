//! Network failures, reroutes and updates, against any deployment.

use std::time::Duration;

use serde_json::{json, Value};

use super::flows::{
    assert_tables_hold_exactly, create_all, links_add_up, switch_id, wait_for_the_network,
};
use super::flows::{GRID_ISLS, SWITCHES};
use super::{eventually, eventually_explained, get_json, Endpoints};

/// Two links of grid:3x3 fail one after the other under 100 flows: the network view finds the
/// flows on each, and each is rerouted make-before-break. Every flow ends UP on a path that
/// avoids both links, the switches hold exactly the rules of the new paths (no rule of an old
/// path is left behind), and `/v2/links` shows the two links DOWN.
pub async fn two_busiest_links_fail(client: &reqwest::Client, at: &Endpoints, count: usize) {
    create_all(client, at, count).await;
    let all_up_avoiding = |failed: Vec<(u64, u64)>| {
        let client = client.clone();
        let url = at.nb("/v2/flows");
        async move {
            eventually_explained(
                Duration::from_secs(60),
                "all flows UP off the failed links",
                || async {
                    let flows = get_json(&client, &url).await;
                    let flows = flows.as_array().expect("list").clone();
                    let unsettled: Vec<&Value> = flows
                        .iter()
                        .filter(|f| {
                            f["status"] != "UP" || failed.iter().any(|&(a, b)| uses_link(f, a, b))
                        })
                        .collect();
                    if flows.len() == count && unsettled.is_empty() {
                        Ok(flows)
                    } else {
                        Err(format!(
                            "{} flows of {count}; unsettled: {}",
                            flows.len(),
                            serde_json::to_string(&unsettled).unwrap_or_default()
                        ))
                    }
                },
            )
            .await
        }
    };
    let mut flows = all_up_avoiding(vec![]).await;

    let mut failed = Vec::new();
    for _ in 0..2 {
        // The busiest link: the one whose failure moves the most flows.
        let (a, b) = busiest_link(&flows);
        let fail = at.sim(&format!(
            "/sim/links/{}/{}/fail",
            switch_id(a),
            switch_id(b)
        ));
        assert_eq!(client.post(fail).send().await.expect("fail").status(), 200);
        failed.push((a, b));
        let moved: Vec<&Value> = flows.iter().filter(|f| uses_link(f, a, b)).collect();
        let after = all_up_avoiding(failed.clone()).await;
        assert_tables_hold_exactly(client, at, &after).await;
        links_add_up(client, at, &after).await;
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

    let links = get_json(client, &at.nb("/v2/links")).await;
    let down: Vec<(String, String)> = links
        .as_array()
        .expect("links")
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

async fn flow_when(
    client: &reqwest::Client,
    at: &Endpoints,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    eventually(Duration::from_secs(30), what, || async {
        let flow = get_json(client, &at.nb("/v2/flows/mbb")).await;
        ok(&flow).then_some(flow)
    })
    .await
}

async fn post_ok(client: &reqwest::Client, url: String) {
    let response = client.post(&url).send().await.expect("POST");
    assert_eq!(response.status(), 200, "{url}: {:?}", response.text().await);
}

/// A flow on grid:3x3 is updated (bandwidth and destination change) and comes UP with exactly
/// the new rules and the new bandwidth on its links; a failed link moves it onto a detour,
/// which it keeps once the link is back; `POST …/reroute` brings it back onto the best path.
/// After each move the switches hold exactly its rules.
pub async fn update_then_reroute(client: &reqwest::Client, at: &Endpoints) {
    wait_for_the_network(client, at, SWITCHES as usize, GRID_ISLS).await;
    let endpoint = |switch: u64, port: u64, vlan: u64| json!({"switch_id": switch_id(switch), "port_number": port, "vlan_id": vlan});
    let created = json!({
        "flow_id": "mbb", "source": endpoint(1, 30, 7), "destination": endpoint(9, 30, 8),
        "maximum_bandwidth": 1000,
    });
    let response = client
        .post(at.nb("/v2/flows"))
        .json(&created)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let up = |flow: &Value| flow["status"] == "UP";
    flow_when(client, at, "the flow UP", up).await;

    let updated = json!({
        "source": endpoint(1, 30, 7), "destination": endpoint(9, 31, 9),
        "maximum_bandwidth": 5000,
    });
    let response = client
        .put(at.nb("/v2/flows/mbb"))
        .json(&updated)
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), 200);
    let flow = flow_when(client, at, "the update UP", |f| {
        up(f) && f["maximum_bandwidth"] == 5000 && f["destination"]["port_number"] == 31
    })
    .await;
    assert_tables_hold_exactly(client, at, std::slice::from_ref(&flow)).await;
    links_add_up(client, at, std::slice::from_ref(&flow)).await;

    let best = flow;
    let (a, b) = busiest_link(std::slice::from_ref(&best));
    let link = format!("/sim/links/{}/{}", switch_id(a), switch_id(b));
    post_ok(client, at.sim(&format!("{link}/fail"))).await;
    let detour = flow_when(client, at, "the flow on a detour", |f| {
        up(f) && !uses_link(f, a, b)
    })
    .await;
    post_ok(client, at.sim(&format!("{link}/restore"))).await;
    // Back up, the link does not pull an UP flow back by itself.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kept = get_json(client, &at.nb("/v2/flows/mbb")).await;
    assert_eq!(kept["path"], detour["path"]);
    post_ok(client, at.nb("/v2/flows/mbb/reroute")).await;
    let flow = flow_when(client, at, "the flow back on the best path", |f| {
        up(f) && f["path"] == best["path"]
    })
    .await;
    assert_tables_hold_exactly(client, at, &[flow]).await;
}
