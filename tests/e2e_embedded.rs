//! End to end over REST against a real `hubspoke up` process (embedded default, in-process
//! bus).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::flows::{self, assert_tables_hold_exactly, create_all, switch_id, FLOWS};
use support::{eventually, get_json, Hubspoke};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_flows_come_up_with_exact_rules_and_leave_nothing_behind() {
    let hub = Hubspoke::up(&["--network", "grid:3x3", "--workers", "2"]);
    flows::fifty_flows_up_exact_then_clean(&reqwest::Client::new(), &hub.endpoints()).await;
}

/// Lost commands are retried, and a switch that refuses every command (TABLE_FULL, not worth
/// retrying) makes the flows that need it roll back: every flow ends UP or DOWN (none stays
/// IN_PROGRESS), the UP ones avoid that switch and own exactly the rules on the switches, the
/// DOWN ones own none and no bandwidth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_commands_are_retried_and_a_refusing_switch_rolls_flows_back() {
    let hub = Hubspoke::up(&[
        "--network",
        "grid:3x3",
        "--workers",
        "2",
        "--command-timeout-ms",
        "100",
        "--command-attempts",
        "10",
    ]);
    let client = reqwest::Client::new();
    let faults = json!({"latency_ms": 2, "error_rate": 0.0, "drop_rate": 0.3});
    let response = client
        .put(hub.url("/sim/faults"))
        .json(&faults)
        .send()
        .await
        .expect("PUT faults");
    assert_eq!(response.status(), 200);
    let failed = switch_id(5);
    let refuse = json!({"switch_id": failed, "error_rate": 1.0, "error_code": "TABLE_FULL"});
    let response = client
        .put(hub.url("/sim/faults"))
        .json(&refuse)
        .send()
        .await
        .expect("PUT switch faults");
    assert_eq!(response.status(), 200);

    create_all(&client, &hub.endpoints(), FLOWS).await;
    let flows: Vec<Value> =
        eventually(Duration::from_secs(90), "every flow UP or DOWN", || async {
            let flows = get_json(&client, &hub.url("/v2/flows")).await;
            let flows = flows.as_array().expect("list").clone();
            let settled = flows
                .iter()
                .all(|f| f["status"] == "UP" || f["status"] == "DOWN");
            (flows.len() == FLOWS && settled).then_some(flows)
        })
        .await;

    let (up, down): (Vec<Value>, Vec<Value>) = flows.into_iter().partition(|f| f["status"] == "UP");
    assert!(
        !up.is_empty() && !down.is_empty(),
        "some flows need switch 5, some do not"
    );
    for flow in &up {
        let path = flow["path"].as_array().expect("path");
        assert!(
            path.iter().all(|node| node["switch_id"] != failed.as_str()),
            "UP flow crosses the failed switch: {flow}"
        );
    }
    for flow in &down {
        let info = flow["status_info"].as_str().unwrap_or_default();
        assert!(
            info.contains(&format!("switch {failed}")),
            "DOWN because of the failed switch: {flow}"
        );
        assert_eq!(flow["path"], json!([]), "a DOWN flow holds no path: {flow}");
    }
    assert_tables_hold_exactly(&client, &hub.endpoints(), &up).await;

    let metrics = client
        .get(hub.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let retries: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hubspoke_sb_retries "))
        .and_then(|n| n.parse().ok())
        .expect("sb_retries metric");
    assert!(retries > 0, "lost commands were retried:\n{metrics}");
}

/// SIGTERM stops `hubspoke up` cleanly and promptly, also after it has done some work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_hubspoke_up() {
    let mut hub = Hubspoke::up(&["--workers", "2"]);
    let client = reqwest::Client::new();
    create_all(&client, &hub.endpoints(), FLOWS).await;
    let status = hub.process.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "hubspoke up did not exit cleanly on SIGTERM: {status:?}"
    );
}

/// A link failed through the simulator's API reaches the topology as network events: the next
/// create is routed around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_goes_around_a_failed_link() {
    let hub = Hubspoke::up(&["--network", "ring:4"]);
    let client = reqwest::Client::new();
    let fail = hub.url(&format!(
        "/sim/links/{}/{}/fail",
        switch_id(1),
        switch_id(2)
    ));
    assert_eq!(client.post(fail).send().await.expect("fail").status(), 200);
    let flow = json!({
        "flow_id": "around",
        "source": {"switch_id": switch_id(1), "port_number": 10},
        "destination": {"switch_id": switch_id(2), "port_number": 10},
        "maximum_bandwidth": 1000,
    });
    let response = client
        .post(hub.url("/v2/flows"))
        .json(&flow)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let flow: Value = eventually(Duration::from_secs(30), "the flow UP", || async {
        let flow = get_json(&client, &hub.url("/v2/flows/around")).await;
        (flow["status"] == "UP").then_some(flow)
    })
    .await;
    let switches: Vec<&str> = flow["path"]
        .as_array()
        .expect("path")
        .iter()
        .filter_map(|node| node["switch_id"].as_str())
        .collect();
    let expected = [switch_id(1), switch_id(4), switch_id(3), switch_id(2)];
    assert_eq!(
        switches,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// Two links of grid:3x3 fail one after the other under 100 flows: the network view finds the
/// flows on each, and each is rerouted make-before-break. Every flow ends UP on a path that
/// avoids both links, the switches hold exactly the rules of the new paths (no rule of an old
/// path is left behind), and `/v2/links` shows the two links DOWN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_link_failures_reroute_exactly_the_flows_on_them() {
    const COUNT: usize = 100;
    let hub = Hubspoke::up(&[
        "--network",
        "grid:3x3",
        "--workers",
        "2",
        "--reroute-delay-ms",
        "200",
    ]);
    let client = reqwest::Client::new();
    let at = hub.endpoints();
    create_all(&client, &at, COUNT).await;
    let all_up_avoiding = |failed: Vec<(u64, u64)>| {
        let client = client.clone();
        let url = hub.url("/v2/flows");
        async move {
            eventually(
                Duration::from_secs(60),
                "all flows UP off the failed links",
                || async {
                    let flows = get_json(&client, &url).await;
                    let flows = flows.as_array().expect("list").clone();
                    let settled = flows.len() == COUNT
                        && flows.iter().all(|f| {
                            f["status"] == "UP" && failed.iter().all(|&(a, b)| !uses_link(f, a, b))
                        });
                    settled.then_some(flows)
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
        let fail = hub.url(&format!(
            "/sim/links/{}/{}/fail",
            switch_id(a),
            switch_id(b)
        ));
        assert_eq!(client.post(fail).send().await.expect("fail").status(), 200);
        failed.push((a, b));
        let moved: Vec<&Value> = flows.iter().filter(|f| uses_link(f, a, b)).collect();
        let after = all_up_avoiding(failed.clone()).await;
        assert_tables_hold_exactly(&client, &at, &after).await;
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

    let links = get_json(&client, &hub.url("/v2/links")).await;
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
