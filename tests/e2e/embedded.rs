//! End to end over REST against a real `hubspoke up` process (embedded default, in-process
//! bus).

use std::time::Duration;

use crate::support::flows::{self, assert_tables_hold_exactly, create_all, switch_id, FLOWS};
use crate::support::reroute::{two_busiest_links_fail, update_then_reroute};
use crate::support::{eventually, get_json, Hubspoke};
use serde_json::{json, Value};

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

/// Two links of grid:3x3 fail one after the other under 100 flows (see
/// `support::reroute::two_busiest_links_fail`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_link_failures_reroute_exactly_the_flows_on_them() {
    let hub = Hubspoke::up(&[
        "--network",
        "grid:3x3",
        "--workers",
        "2",
        "--reroute-delay-ms",
        "200",
    ]);
    two_busiest_links_fail(&reqwest::Client::new(), &hub.endpoints(), 100).await;
}

/// Update and manual reroute, make-before-break (see `support::reroute::update_then_reroute`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_and_a_reroute_move_a_flow_make_before_break() {
    let hub = Hubspoke::up(&["--network", "grid:3x3"]);
    update_then_reroute(&reqwest::Client::new(), &hub.endpoints()).await;
}

/// A request sent again with the same correlation id (a client retrying after a lost answer)
/// is answered the same and runs once, also after a restart; a new request for the same flow
/// is a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_again_is_answered_the_same_even_after_a_restart() {
    let mut first = Hubspoke::up(&["--network", "grid:3x3"]);
    let client = reqwest::Client::new();
    flows::wait_for_the_network(&client, &first.endpoints(), 9, flows::GRID_ISLS).await;
    let send = |base: String, correlation_id: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{base}/v2/flows"))
                .header("correlation_id", correlation_id)
                .json(&flows::flow_body(0))
                .send()
                .await
                .expect("POST");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let answer = send(first.base.clone(), "retry-me").await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(send(first.base.clone(), "retry-me").await, answer);
    first.process.kill();
    let second = Hubspoke::up_in(first.data.clone(), &["--network", "grid:3x3"]);
    assert_eq!(send(second.base.clone(), "retry-me").await, answer);
    let conflict = send(second.base.clone(), "another").await;
    assert_eq!(conflict.0, 409, "{}", conflict.1);
    let history = get_json(&client, &second.url("/v2/flows/e2e-0/history")).await;
    let creates = history
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["operation"] == "create" && e["event"] == "start")
        .count();
    assert_eq!(creates, 1, "the create ran once: {history}");
}

/// A switch loses one of a flow's rules and another forwards one elsewhere, behind the
/// controller's back: `POST /v2/flows/{id}/sync` validates the flow's switches, removes the
/// rule that differs, installs what is missing, and the tables match the flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_repairs_a_lost_and_a_tampered_rule() {
    let hub = Hubspoke::up(&["--network", "grid:3x3"]);
    let client = reqwest::Client::new();
    let at = hub.endpoints();
    flows::wait_for_the_network(&client, &at, 9, flows::GRID_ISLS).await;
    let body = json!({
        "flow_id": "repair-me",
        "source": {"switch_id": switch_id(1), "port_number": 30, "vlan_id": 7},
        "destination": {"switch_id": switch_id(3), "port_number": 30, "vlan_id": 8},
        "maximum_bandwidth": 1000,
    });
    let response = client
        .post(hub.url("/v2/flows"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let up = |url: String| {
        let client = client.clone();
        async move {
            eventually(Duration::from_secs(30), "the flow UP", || async {
                let flow = get_json(&client, &url).await;
                (flow["status"] == "UP").then_some(flow)
            })
            .await
        }
    };
    let flow = up(hub.url("/v2/flows/repair-me")).await;
    let rules = |switch: u64| {
        let client = client.clone();
        let url = hub.url(&format!("/sim/switches/{}/rules", switch_id(switch)));
        async move { get_json(&client, &url).await }
    };
    let cookie = |table: Value| table[0]["cookie"].as_u64().expect("a rule");
    let tampered = cookie(rules(2).await);
    let url = hub.url(&format!("/sim/switches/{}/rules/{tampered}", switch_id(2)));
    let response = client
        .patch(url)
        .json(&json!({"out_port": 40}))
        .send()
        .await;
    assert_eq!(response.expect("PATCH").status(), 200);
    let lost = cookie(rules(3).await);
    let url = hub.url(&format!("/sim/switches/{}/rules/{lost}", switch_id(3)));
    assert_eq!(
        client.delete(url).send().await.expect("DELETE").status(),
        200
    );

    let sync = client
        .post(hub.url("/v2/flows/repair-me/sync"))
        .send()
        .await;
    assert_eq!(sync.expect("POST sync").status(), 200);
    eventually(Duration::from_secs(30), "the sync done", || async {
        let history = get_json(&client, &hub.url("/v2/flows/repair-me/history")).await;
        let done = history.as_array().is_some_and(|h| {
            h.iter()
                .any(|e| e["operation"] == "sync" && e["to_state"] == "Up")
        });
        done.then_some(())
    })
    .await;
    let history = get_json(&client, &hub.url("/v2/flows/repair-me/history")).await;
    assert!(
        history
            .as_array()
            .is_some_and(|h| h.iter().any(|e| e["details"]
                .as_str()
                .is_some_and(|d| d.contains("1 stray rule")))),
        "{history}"
    );
    let repaired = up(hub.url("/v2/flows/repair-me")).await;
    assert_eq!(repaired["path"], flow["path"]);
    flows::assert_tables_hold_exactly(&client, &at, &[repaired]).await;
}
