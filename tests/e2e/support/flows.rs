//! The 50-flow scenario of the end-to-end tests, against any deployment (`Api` says where the
//! northbound API and the simulator's /sim/ API are), and the checks of switch tables and link
//! bandwidth that the other scenarios share.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use super::{eventually_explained, Api};

pub const FLOWS: usize = 50;
pub const SWITCHES: u64 = 9;
pub const BANDWIDTH: u64 = 10_000;

pub fn switch_id(n: u64) -> String {
    format!("00:00:00:00:00:00:00:{n:02x}")
}

/// Flow i goes from switch i%9+1 to (i*4+3)%9+1 (one-switch flows included), on port 20 with
/// a VLAN per flow so no two flows share an endpoint.
pub fn flow_body(i: usize) -> Value {
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
pub type Rule = (String, u64, String, u64, u64, u64, u64);

pub fn rule_from_switch(switch: &str, rule: &Value) -> Rule {
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

pub const FORWARD: u64 = 0x4000_0000_0000_0000;
pub const REVERSE: u64 = 0x2000_0000_0000_0000;

/// The rules a flow must have, from its REST representation: its path's ports, its endpoints,
/// and the cookie and each link's transit VLAN found on its forward rules.
pub fn expected_rules(flow: &Value, cookie_id: u64, link_vlans: &[u64]) -> Vec<Rule> {
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
        // Link i runs from path node i to node i + 1.
        let link_vlan = |link: usize| link_vlans.get(link).copied().unwrap_or(u64::MAX);
        let forward_in_vlan = if i == 0 { vlan(src) } else { link_vlan(i - 1) };
        let forward_out_vlan = if i == last { vlan(dst) } else { link_vlan(i) };
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
        let reverse_in_vlan = if i == last { vlan(dst) } else { link_vlan(i) };
        let reverse_out_vlan = if i == 0 { vlan(src) } else { link_vlan(i - 1) };
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

pub async fn all_rules(api: &Api) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for n in 1..=SWITCHES {
        let switch = switch_id(n);
        for rule in &api.rules(&switch).await {
            assert!(
                rules.insert(rule_from_switch(&switch, rule)),
                "duplicate rule on {switch}"
            );
        }
    }
    rules
}

/// Every rule on every switch belongs to one of `flows` and matches its path, and no rule of
/// those flows is missing.
pub async fn assert_tables_hold_exactly(api: &Api, flows: &[Value]) {
    if let Err(difference) = tables_hold_exactly(api, flows).await {
        panic!("switch tables must hold exactly the flows' rules: {difference}");
    }
}

/// [`assert_tables_hold_exactly`] once the removal debt is paid: rules whose removal was not
/// confirmed (lost commands) are owed, and the switch keeper removes them a little later.
pub async fn assert_tables_come_to_hold_exactly(api: &Api, flows: &[Value]) {
    eventually_explained(
        Duration::from_secs(60),
        "switch tables to hold exactly the flows' rules",
        || tables_hold_exactly(api, flows),
    )
    .await;
}

/// Whether the switches hold exactly the rules of `flows`; if not, the rules missing and
/// the ones no flow expects.
async fn tables_hold_exactly(api: &Api, flows: &[Value]) -> Result<(), String> {
    let actual = all_rules(api).await;
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
            .ok_or_else(|| format!("no ingress rule for {}", flow["flow_id"]))?;
        let cookie_id = ingress.1 & !FORWARD;
        let link_vlans = forward_link_vlans(&actual, flow, ingress.1);
        for rule in expected_rules(flow, cookie_id, &link_vlans) {
            assert!(
                expected.insert(rule.clone()),
                "two flows expect the same rule {rule:?}"
            );
        }
    }
    if actual == expected {
        return Ok(());
    }
    let missing: Vec<&Rule> = expected.difference(&actual).collect();
    let excess: Vec<&Rule> = actual.difference(&expected).collect();
    Err(format!("missing {missing:?}; no flow's {excess:?}"))
}

/// The VLAN of each link of the flow's path, as its forward rules tag packets leaving each
/// switch but the last (`expected_rules` then checks the next switch matches it).
fn forward_link_vlans(actual: &BTreeSet<Rule>, flow: &Value, forward_cookie: u64) -> Vec<u64> {
    let path = flow["path"].as_array().expect("path");
    path.iter()
        .take(path.len().saturating_sub(1))
        .map(|node| {
            let switch = node["switch_id"].as_str().expect("switch");
            let in_port = node["input_port"].as_u64();
            actual
                .iter()
                .find(|rule| {
                    rule.0 == switch && rule.1 == forward_cookie && Some(rule.3) == in_port
                })
                .map_or(u64::MAX, |rule| rule.6)
        })
        .collect()
}

/// Directed ISLs of grid:3x3: 12 links, both ways.
pub const GRID_ISLS: usize = 24;

/// Creates flows `0..count` concurrently; each is accepted IN_PROGRESS.
pub async fn create_all(api: &Api, count: usize) {
    api.wait_for_grid().await;
    let creates = (0..count).map(|i| {
        let api = api.clone();
        async move {
            let flow = api.create(&flow_body(i)).await;
            assert_eq!(flow["status"], "IN_PROGRESS");
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

/// Creates 50 flows on grid:3x3 and waits for all to be UP; checks that the switches hold
/// exactly their rules and that link bandwidth adds up; deletes them all and checks that the
/// switch tables are empty and every link has its whole bandwidth back.
pub async fn fifty_flows_up_exact_then_clean(api: &Api) {
    create_all(api, FLOWS).await;

    let up = |f: &Value| f["status"] == "UP";
    let flows = api
        .flows_when(FLOWS, Duration::from_secs(60), "all flows UP", up)
        .await;

    assert_tables_hold_exactly(api, &flows).await;

    links_add_up(api, &flows).await;

    for flow in &flows {
        api.delete(flow["flow_id"].as_str().expect("id")).await;
    }
    api.flows_when(0, Duration::from_secs(60), "all flows gone", |_| true)
        .await;

    assert!(
        all_rules(api).await.is_empty(),
        "switch tables must be empty"
    );
    let history = api.history("e2e-0").await;
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
    links_add_up(api, &[]).await;
}

/// Waits until `/v2/links` shows, on every ISL, the capacity less the bandwidth of the flows
/// whose path crosses it (the network view follows the flows a little later over Kafka).
pub async fn links_add_up(api: &Api, flows: &[Value]) {
    let mut used: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for flow in flows {
        let bandwidth = flow["maximum_bandwidth"].as_u64().expect("bandwidth");
        let path = flow["path"].as_array().expect("path");
        for hop in path.windows(2) {
            let end = |node: &Value, port: &str| {
                let switch = node["switch_id"].as_str().unwrap_or_default().to_string();
                (switch, node[port].as_u64().unwrap_or(0))
            };
            *used.entry(end(&hop[0], "output_port")).or_default() += bandwidth;
            *used.entry(end(&hop[1], "input_port")).or_default() += bandwidth;
        }
    }
    let mismatch = |links: &[Value]| {
        links.iter().find_map(|link| {
            let key = (
                link["src_switch"].as_str().unwrap_or_default().to_string(),
                link["src_port"].as_u64().unwrap_or(0),
            );
            let capacity = link["capacity"].as_u64().unwrap_or(0);
            let expected = capacity - used.get(&key).copied().unwrap_or(0);
            (link["available_bandwidth"].as_u64() != Some(expected))
                .then(|| format!("{link}: expected {expected} available"))
        })
    };
    eventually_explained(
        Duration::from_secs(30),
        "link bandwidth adding up",
        || async { mismatch(&api.links().await).map_or(Ok(()), Err) },
    )
    .await;
}
