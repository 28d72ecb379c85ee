//! Switches hold exactly what the flows say, judged by packets. Under heavy faults (a fifth
//! of the commands lost, more refused) a few hundred creates, deletes and reroutes run at
//! once; once the faults are gone, the flows they left DOWN are retried until every flow is
//! UP, and once the switch keeper has been round, a packet entering at every flow's source
//! endpoint leaves at its destination endpoint with the right VLAN,
//! both ways; every rule on every switch carries one of those packets (so no other rule could
//! catch one); and every link's bandwidth is what the UP flows crossing it take. Then a
//! hundred new flows, checked the same way.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use serde_json::{json, Value};

use super::api::leaves_at;
use super::flows::{links_add_up, switch_id};
use super::{eventually_explained, Api};

/// `grid:4x4`: 16 switches, 24 links.
pub const NETWORK: &str = "grid:4x4";
pub const SWITCHES: u64 = 16;
pub const ISLS: usize = 48;

/// The flags that make lost commands cost little (but leave a loaded simulator time to
/// answer), DOWN flows be retried within seconds and the sweep go round every two seconds.
pub const TOPOLOGY_FLAGS: [&str; 10] = [
    "--command-timeout-ms",
    "500",
    "--command-attempts",
    "3",
    "--operation-timeout-ms",
    "20000",
    "--switch-sweep-secs",
    "2",
    "--reroute-max-delay-ms",
    "1000",
];

/// Flow `i`: between two switches of the grid chosen by `i`, on endpoints of its own.
pub fn flow_body(i: usize) -> Value {
    let src = i as u64 % SWITCHES + 1;
    let dst = (i as u64 * 7 + 5) % SWITCHES + 1;
    json!({
        "flow_id": format!("exact-{i}"),
        "source": {"switch_id": switch_id(src), "port_number": 20 + (i % 8), "vlan_id": 100 + i},
        "destination": {"switch_id": switch_id(dst), "port_number": 30 + (i % 8), "vlan_id": 2000 + i},
        "maximum_bandwidth": 1_000,
        "description": "exactness test flow",
    })
}

/// The faults of the churn: a fifth of the commands lost, 15% refused.
pub fn heavy_faults() -> Value {
    json!({"drop_rate": 0.2, "error_rate": 0.15})
}

/// Sends `request` and returns its status, whatever it is (refusals and a process gone in the
/// middle are part of the churn).
async fn attempt(request: reqwest::RequestBuilder) -> Option<u16> {
    request.send().await.ok().map(|r| r.status().as_u16())
}

/// Creates flows `range` at once, under whatever faults are set; refusals are part of it.
pub async fn fire_creates(api: Api, range: Range<usize>) {
    let creates: Vec<_> = range
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                attempt(api.client.post(api.nb("/v2/flows")).json(&flow_body(i))).await
            })
        })
        .collect();
    for create in creates {
        create.await.expect("create task");
    }
}

/// Deletes every fourth flow of `range` and reroutes the next fourth, at once.
pub async fn fire_changes(api: &Api, range: Range<usize>) {
    let changes: Vec<_> = range
        .filter(|i| i % 4 < 2)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                let id = format!("exact-{i}");
                let request = if i % 4 == 0 {
                    api.client.delete(api.nb(&format!("/v2/flows/{id}")))
                } else {
                    api.client.post(api.nb(&format!("/v2/flows/{id}/reroute")))
                };
                attempt(request).await
            })
        })
        .collect();
    for change in changes {
        change.await.expect("change task");
    }
}

/// Waits until every flow is UP: once the faults are gone, the flows they left DOWN are
/// retried until they are.
async fn all_up(api: &Api, limit: Duration) {
    eventually_explained(limit, "every flow UP", || async {
        let flows = api.flows().await;
        match flows.iter().find(|f| f["status"] != "UP") {
            None => Ok(()),
            Some(flow) => Err(format!(
                "{} of {} not UP, e.g. {flow}",
                flows.iter().filter(|f| f["status"] != "UP").count(),
                flows.len()
            )),
        }
    })
    .await;
}

/// The states an operation ends in, as the flow history names them (every machine's
/// `is_finished`).
const OPERATION_ENDS: [&str; 9] = [
    "Up",
    "Down",
    "Rejected",
    "Deleted",
    "Repaired",
    "Failed",
    "Unchanged",
    "Swapped",
    "Refused",
];

/// Waits until every flow has been seen UP or DOWN since the call, or its history shows an
/// operation ended since: the operations the churn started have ended. Under faults, those
/// left DOWN are retried, and a DOWN flow whose rules the keeper finds missing is synced at
/// its next sweep, so there may never be a moment when no flow is busy, nor a poll that
/// catches a given flow between two operations.
pub async fn each_settled_once(api: &Api, limit: Duration) {
    // Histories are read for the flows still unseen after a while, and not at every poll:
    // reading hundreds of them ten times a second would load the system under test.
    const HISTORIES_AFTER: Duration = Duration::from_secs(10);
    const HISTORIES_EVERY: Duration = Duration::from_secs(5);
    let start = std::time::Instant::now();
    let since_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut histories_read = start;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    loop {
        let flows = api.flows().await;
        let read_histories =
            start.elapsed() >= HISTORIES_AFTER && histories_read.elapsed() >= HISTORIES_EVERY;
        if read_histories {
            histories_read = std::time::Instant::now();
        }
        let mut busy = None;
        for flow in &flows {
            let id = flow["flow_id"].as_str().expect("flow_id").to_string();
            if seen.contains(&id) {
                continue;
            }
            let settled = flow["status"] != "IN_PROGRESS"
                || (read_histories && ended_since(api, &id, since_ms).await);
            if settled {
                seen.insert(id);
            } else {
                busy = Some(flow.clone());
            }
        }
        let Some(busy) = busy else {
            return;
        };
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for every flow's operation to end, e.g. {busy}\nits history: {}",
            api.history(busy["flow_id"].as_str().unwrap_or_default()).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the flow's history shows an operation ended at or after `since_ms`.
async fn ended_since(api: &Api, flow_id: &str, since_ms: u64) -> bool {
    let history = api.history(flow_id).await;
    history.as_array().is_some_and(|entries| {
        entries.iter().any(|entry| {
            entry["timestamp_ms"]
                .as_u64()
                .is_some_and(|t| t >= since_ms)
                && entry["to_state"]
                    .as_str()
                    .is_some_and(|state| OPERATION_ENDS.contains(&state))
        })
    })
}

/// Waits until no flow has an operation running.
async fn settled(api: &Api, limit: Duration) -> Vec<Value> {
    eventually_explained(limit, "every flow UP or DOWN", || async {
        let flows = api.flows().await;
        let busy: Vec<&Value> = flows
            .iter()
            .filter(|f| f["status"] == "IN_PROGRESS")
            .collect();
        if busy.is_empty() {
            Ok(flows)
        } else {
            Err(format!("{} busy, e.g. {}", busy.len(), busy[0]))
        }
    })
    .await
}

/// Waits until each of switches 1..=`switches` validates as holding exactly what hubspoke
/// expects there, with nothing owed: the keeper's sweep has repaired what was missing and
/// the removal debt is paid.
pub async fn switches_validate(api: &Api, switches: u64, limit: Duration) {
    eventually_explained(limit, "every switch validated proper", || async {
        for n in 1..=switches {
            let url = api.nb(&format!("/v2/switches/{}/validate", switch_id(n)));
            let Ok(response) = api.client.get(&url).send().await else {
                return Err(format!("GET {url} failed"));
            };
            let report: Value = response.json().await.unwrap_or_default();
            let rules = &report["rules"];
            let off = ["missing", "misconfigured", "excess", "pending_removal"]
                .into_iter()
                .find(|kind| rules[kind].as_array().is_none_or(|list| !list.is_empty()));
            if let Some(kind) = off {
                return Err(format!("switch {n}: {kind}: {report}"));
            }
        }
        Ok(())
    })
    .await;
}

/// A rule as a packet meets it: (switch, cookie, in_port, in_vlan).
type Met = (String, u64, u64, u64);

/// The data plane is exactly what the UP flows say: each UP flow's packets go from its source
/// endpoint to its destination endpoint, both ways; every rule on every switch is met by one
/// of those packets; every link's available bandwidth is its capacity less the UP flows
/// crossing it. Returns the UP flows.
pub async fn assert_data_plane_exact(api: &Api) -> Vec<Value> {
    let flows = settled(api, Duration::from_secs(60)).await;
    let up: Vec<Value> = flows
        .iter()
        .filter(|f| f["status"] == "UP")
        .cloned()
        .collect();
    let mut met: BTreeSet<Met> = BTreeSet::new();
    for flow in &up {
        for (from, to) in [
            (&flow["source"], &flow["destination"]),
            (&flow["destination"], &flow["source"]),
        ] {
            let trace = api.trace(from).await;
            assert!(
                leaves_at(&trace, to),
                "flow {}: a packet from {from} must leave at {to}; it went: {trace}\n\
                 flows whose path enters a switch where a rule of another cookie took it: {:?}",
                flow["flow_id"],
                crossing_where_taken(&flows, &trace)
            );
            for hop in trace["hops"].as_array().expect("hops") {
                met.insert((
                    hop["switch_id"].as_str().expect("switch").to_string(),
                    hop["cookie"].as_u64().expect("cookie"),
                    hop["in_port"].as_u64().expect("in_port"),
                    hop["in_vlan"].as_u64().expect("in_vlan"),
                ));
            }
        }
    }
    let mut held: BTreeSet<Met> = BTreeSet::new();
    for n in 1..=SWITCHES {
        let switch = switch_id(n);
        for rule in api.rules(&switch).await {
            held.insert((
                switch.clone(),
                rule["cookie"].as_u64().expect("cookie"),
                rule["match"]["in_port"].as_u64().expect("in_port"),
                rule["match"]["in_vlan"].as_u64().expect("in_vlan"),
            ));
        }
    }
    let stale: Vec<&Met> = held.difference(&met).collect();
    assert!(
        stale.is_empty(),
        "rules no UP flow's packet meets (left behind): {stale:?}; their flows: {:?}",
        owners(&flows, &stale)
    );
    links_add_up(api, &up).await;
    up
}

/// The flows whose path enters a switch at a port where a trace met a rule of another cookie
/// than its first: who else uses that (port, VLAN), to explain a failure.
fn crossing_where_taken(flows: &[Value], trace: &Value) -> Vec<String> {
    let hops = trace["hops"].as_array().cloned().unwrap_or_default();
    let first_cookie = hops.first().map(|h| h["cookie"].clone());
    let taken: Vec<&Value> = hops
        .iter()
        .filter(|h| Some(&h["cookie"]) != first_cookie.as_ref())
        .collect();
    flows
        .iter()
        .filter(|f| {
            f["path"].as_array().is_some_and(|path| {
                path.iter().any(|node| {
                    taken.iter().any(|hop| {
                        node["switch_id"] == hop["switch_id"]
                            && node["input_port"] == hop["in_port"]
                    })
                })
            })
        })
        .map(|f| {
            format!(
                "{} {} {} path {}",
                f["flow_id"], f["status"], f["status_info"], f["path"]
            )
        })
        .collect()
}

/// The records of the flows whose endpoints the `stale` rules match, to explain a failure.
fn owners(flows: &[Value], stale: &[&Met]) -> Vec<String> {
    let at_endpoint = |endpoint: &Value| {
        stale.iter().any(|(switch, _, port, vlan)| {
            endpoint["switch_id"] == switch.as_str()
                && endpoint["port_number"] == *port
                && endpoint["vlan_id"] == *vlan
        })
    };
    flows
        .iter()
        .filter(|f| at_endpoint(&f["source"]) || at_endpoint(&f["destination"]))
        .map(|f| format!("{} {} {}", f["flow_id"], f["status"], f["status_info"]))
        .collect()
}

/// How many flows the churn creates.
pub const CHURN: Range<usize> = 0..240;

/// The whole scenario against a deployment whose switches are the simulator.
pub async fn churn_then_exact(api: &Api) {
    api.wait_for_network(SWITCHES as usize, ISLS).await;
    api.put_faults(&heavy_faults()).await;
    fire_creates(api.clone(), CHURN).await;
    each_settled_once(api, Duration::from_secs(120)).await;
    fire_changes(api, CHURN).await;
    each_settled_once(api, Duration::from_secs(120)).await;
    clear_and_check(api).await;
}

/// The faults clear; once the DOWN flows are retried and the keeper has been round, the
/// data plane must be exact; then a hundred new flows, the same.
pub async fn clear_and_check(api: &Api) {
    api.put_faults(&json!({})).await;
    all_up(api, Duration::from_secs(120)).await;
    switches_validate(api, SWITCHES, Duration::from_secs(120)).await;
    let up = assert_data_plane_exact(api).await;
    assert!(up.len() >= CHURN.len() / 2, "{} UP", up.len());
    let fresh: Vec<Value> = (1000..1100).map(flow_body).collect();
    for body in &fresh {
        api.create(body).await;
    }
    settled(api, Duration::from_secs(60)).await;
    for body in &fresh {
        let id = body["flow_id"].as_str().expect("id");
        api.flow_when(id, "a new flow UP", |f| f["status"] == "UP")
            .await;
    }
    assert_data_plane_exact(api).await;
}
