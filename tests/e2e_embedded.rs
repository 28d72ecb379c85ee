//! End to end over REST against a real `hubspoke up` process (embedded default, in-process
//! bus): 50 flows on grid:3x3 are created and all come UP with exactly their rules on every
//! switch of their path; then all are deleted and the switches and links are clean again.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, get_json, Hubspoke};

const FLOWS: usize = 50;
const SWITCHES: u64 = 9;
const BANDWIDTH: u64 = 10_000;

fn switch_id(n: u64) -> String {
    format!("00:00:00:00:00:00:00:{n:02x}")
}

/// Flow i goes from switch i%9+1 to (i*4+3)%9+1 (one-switch flows included), on port 20 with
/// a VLAN per flow so no two flows share an endpoint.
fn flow_body(i: usize) -> Value {
    let src = i as u64 % SWITCHES + 1;
    let dst = (i as u64 * 4 + 3) % SWITCHES + 1;
    json!({
        "flow_id": format!("e2e-{i}"),
        "source": {"switch_id": switch_id(src), "port_number": 20, "vlan_id": 100 + i},
        "destination": {"switch_id": switch_id(dst), "port_number": 21, "vlan_id": 1000 + i},
        "maximum_bandwidth": BANDWIDTH,
        "description": "end-to-end test flow",
    })
}

/// A rule as the test compares it: (switch, cookie, kind, in_port, in_vlan, out_port, out_vlan).
type Rule = (String, u64, String, u64, u64, u64, u64);

fn rule_from_switch(switch: &str, rule: &Value) -> Rule {
    (
        switch.to_string(),
        rule["cookie"].as_u64().expect("cookie"),
        rule["kind"].as_str().expect("kind").to_string(),
        rule["match"]["in_port"].as_u64().expect("in_port"),
        rule["match"]["in_vlan"].as_u64().expect("in_vlan"),
        rule["actions"]["out_port"].as_u64().expect("out_port"),
        rule["actions"]["out_vlan"].as_u64().expect("out_vlan"),
    )
}

const FORWARD: u64 = 0x4000_0000_0000_0000;
const REVERSE: u64 = 0x2000_0000_0000_0000;

/// The rules a flow must have, from its REST representation: its path's ports, its endpoints,
/// and the cookie and transit VLAN found on its ingress rule.
fn expected_rules(flow: &Value, cookie_id: u64, transit_vlan: u64) -> Vec<Rule> {
    let path = flow["path"].as_array().expect("path");
    let (src, dst) = (&flow["source"], &flow["destination"]);
    let port = |v: &Value| v["port_number"].as_u64().expect("port");
    let vlan = |v: &Value| v["vlan_id"].as_u64().expect("vlan");
    let node = |i: usize| {
        let n = &path[i];
        (
            n["switch_id"].as_str().expect("switch").to_string(),
            n["input_port"].as_u64().expect("in"),
            n["output_port"].as_u64().expect("out"),
        )
    };
    let mut rules = Vec::new();
    if path.len() == 1 {
        let (switch, _, _) = node(0);
        rules.push((
            switch.clone(),
            FORWARD | cookie_id,
            "one_switch".into(),
            port(src),
            vlan(src),
            port(dst),
            vlan(dst),
        ));
        rules.push((
            switch,
            REVERSE | cookie_id,
            "one_switch".into(),
            port(dst),
            vlan(dst),
            port(src),
            vlan(src),
        ));
        return rules;
    }
    let last = path.len() - 1;
    for i in 0..=last {
        let (switch, input, output) = node(i);
        let forward_in_vlan = if i == 0 { vlan(src) } else { transit_vlan };
        let forward_out_vlan = if i == last { vlan(dst) } else { transit_vlan };
        let kind = |first: bool, end: bool| {
            if first {
                "ingress"
            } else if end {
                "egress"
            } else {
                "transit"
            }
        };
        rules.push((
            switch.clone(),
            FORWARD | cookie_id,
            kind(i == 0, i == last).into(),
            input,
            forward_in_vlan,
            output,
            forward_out_vlan,
        ));
        let reverse_in_vlan = if i == last { vlan(dst) } else { transit_vlan };
        let reverse_out_vlan = if i == 0 { vlan(src) } else { transit_vlan };
        rules.push((
            switch,
            REVERSE | cookie_id,
            kind(i == last, i == 0).into(),
            output,
            reverse_in_vlan,
            input,
            reverse_out_vlan,
        ));
    }
    rules
}

async fn all_rules(client: &reqwest::Client, hub: &Hubspoke) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for n in 1..=SWITCHES {
        let switch = switch_id(n);
        let table = get_json(client, &hub.url(&format!("/sim/switches/{switch}/rules"))).await;
        for rule in table.as_array().expect("rule list") {
            assert!(
                rules.insert(rule_from_switch(&switch, rule)),
                "duplicate rule on {switch}"
            );
        }
    }
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_flows_come_up_with_exact_rules_and_leave_nothing_behind() {
    let hub = Hubspoke::up(&["--network", "grid:3x3", "--workers", "2"]);
    let client = reqwest::Client::new();

    create_all(&client, &hub).await;

    let flows: Vec<Value> = eventually(Duration::from_secs(60), "all flows UP", || async {
        let flows = get_json(&client, &hub.url("/v2/flows")).await;
        let flows = flows.as_array().expect("list").clone();
        let up = flows.iter().filter(|f| f["status"] == "UP").count();
        (flows.len() == FLOWS && up == FLOWS).then_some(flows)
    })
    .await;

    assert_tables_hold_exactly(&client, &hub, &flows).await;

    // Bandwidth in use on each ISL is the sum of the flows whose path crosses it.
    let links = get_json(&client, &hub.url("/v2/links")).await;
    let mut used: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for flow in &flows {
        let path = flow["path"].as_array().expect("path");
        for hop in path.windows(2) {
            let out = (
                hop[0]["switch_id"].as_str().unwrap_or_default().to_string(),
                hop[0]["output_port"].as_u64().unwrap_or(0),
            );
            let back = (
                hop[1]["switch_id"].as_str().unwrap_or_default().to_string(),
                hop[1]["input_port"].as_u64().unwrap_or(0),
            );
            *used.entry(out).or_default() += BANDWIDTH;
            *used.entry(back).or_default() += BANDWIDTH;
        }
    }
    for link in links.as_array().expect("links") {
        let key = (
            link["src_switch"].as_str().unwrap_or_default().to_string(),
            link["src_port"].as_u64().unwrap_or(0),
        );
        let expected_available =
            link["capacity"].as_u64().unwrap_or(0) - used.get(&key).copied().unwrap_or(0);
        assert_eq!(
            link["available_bandwidth"].as_u64(),
            Some(expected_available),
            "{link}"
        );
    }

    for flow in &flows {
        let id = flow["flow_id"].as_str().expect("id");
        let response = client
            .delete(hub.url(&format!("/v2/flows/{id}")))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status(), 200, "delete {id}");
    }
    eventually(Duration::from_secs(60), "all flows gone", || async {
        let flows = get_json(&client, &hub.url("/v2/flows")).await;
        flows.as_array().is_some_and(|f| f.is_empty()).then_some(())
    })
    .await;

    assert!(
        all_rules(&client, &hub).await.is_empty(),
        "switch tables must be empty"
    );
    let history = get_json(&client, &hub.url("/v2/flows/e2e-0/history")).await;
    let last = history
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["operation"].as_str(), last["to_state"].as_str()),
        (Some("delete"), Some("Deleted")),
        "{history}"
    );
    let links = get_json(&client, &hub.url("/v2/links")).await;
    for link in links.as_array().expect("links") {
        assert_eq!(
            link["available_bandwidth"], link["capacity"],
            "all bandwidth free again: {link}"
        );
    }
}

/// Every rule on every switch belongs to one of `flows` and matches its path, and no rule of
/// those flows is missing.
async fn assert_tables_hold_exactly(client: &reqwest::Client, hub: &Hubspoke, flows: &[Value]) {
    let actual = all_rules(client, hub).await;
    let mut expected = BTreeSet::new();
    for flow in flows {
        let source = &flow["source"];
        let source_switch = source["switch_id"].as_str().expect("switch");
        let ingress = actual
            .iter()
            .find(|(switch, cookie, kind, in_port, in_vlan, ..)| {
                switch == source_switch
                    && cookie & FORWARD != 0
                    && (kind == "ingress" || kind == "one_switch")
                    && Some(*in_port) == source["port_number"].as_u64()
                    && Some(*in_vlan) == source["vlan_id"].as_u64()
            })
            .unwrap_or_else(|| panic!("no ingress rule for {}", flow["flow_id"]));
        let cookie_id = ingress.1 & !FORWARD;
        let transit_vlan = ingress.6;
        for rule in expected_rules(flow, cookie_id, transit_vlan) {
            assert!(
                expected.insert(rule.clone()),
                "two flows expect the same rule {rule:?}"
            );
        }
    }
    assert_eq!(
        actual, expected,
        "switch tables must hold exactly the flows' rules"
    );
}

/// Creates the FLOWS flows concurrently; each is accepted IN_PROGRESS.
async fn create_all(client: &reqwest::Client, hub: &Hubspoke) {
    let creates = (0..FLOWS).map(|i| {
        let client = client.clone();
        let url = hub.url("/v2/flows");
        async move {
            let response = client
                .post(url)
                .json(&flow_body(i))
                .send()
                .await
                .expect("POST");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON");
            assert_eq!(status, 200, "create e2e-{i}: {body}");
            assert_eq!(body["status"], "IN_PROGRESS");
        }
    });
    futures_join_all(creates).await;
}

/// Runs the futures concurrently on the test's runtime.
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for handle in handles {
        handle.await.expect("task");
    }
}

/// Lost commands are retried, and a switch that stops answering makes the flows that need it
/// roll back: every flow ends UP or DOWN (none stays IN_PROGRESS), the UP ones avoid the failed
/// switch and own exactly the rules on the switches, the DOWN ones own none and no bandwidth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_commands_are_retried_and_a_failed_switch_rolls_flows_back() {
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
    let response = client
        .post(hub.url(&format!("/sim/switches/{failed}/fail")))
        .send()
        .await
        .expect("fail switch");
    assert_eq!(response.status(), 200);

    create_all(&client, &hub).await;
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
    assert_tables_hold_exactly(&client, &hub, &up).await;

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
