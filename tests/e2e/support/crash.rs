//! Crash scenarios, against any deployment: many creates in flight when a part dies.

use std::time::Duration;

use serde_json::{json, Value};

use super::flows::{assert_tables_hold_exactly, flow_body};
use super::{eventually, Api};

const CRASH_FLOWS: usize = 500;

/// How long the flows may take to settle after a crash.
const SETTLE: Duration = Duration::from_secs(180);

/// When to pull the plug for `seed`, once the creates are flowing.
pub fn crash_after(seed: u64) -> Duration {
    Duration::from_millis(seed.wrapping_mul(7919) % 250)
}

/// With every switch answering after 2 ms (so that operations are in flight for a while),
/// sends `CRASH_FLOWS` creates at once without waiting for their answers (the process taking
/// them may die), waits until they are under way (the first flows are known), then for
/// `crash_after(seed)`: the moment to pull the plug. The creates go on in the returned set.
pub async fn creates_in_flight(api: &Api, seed: u64) -> tokio::task::JoinSet<()> {
    let faults = json!({"latency_ms": 2, "error_rate": 0.0, "drop_rate": 0.0});
    api.put_faults(&faults).await;
    api.wait_for_grid().await;
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..CRASH_FLOWS {
        let request = api.client.post(api.nb("/v2/flows")).json(&flow_body(i));
        creates.spawn(async move {
            let _ = request.send().await;
        });
    }
    eventually(
        Duration::from_secs(30),
        "the first flows accepted",
        || async { (api.flows().await.len() >= 20).then_some(()) },
    )
    .await;
    tokio::time::sleep(crash_after(seed)).await;
    creates
}

/// Waits until no flow is IN_PROGRESS; then every DOWN flow says why and holds no path, and
/// the switches hold exactly the rules of the UP flows: nothing stuck, nothing orphaned.
pub async fn settles_with_exact_tables(api: &Api) -> Vec<Value> {
    // The worst legitimate case after a restart: waiting for the group's partitions, then a
    // sync whose switches do not answer runs into its listing and install deadlines (30 s
    // each) before the flow goes DOWN.
    let deadline = std::time::Instant::now() + SETTLE;
    let flows = loop {
        let flows = api.flows().await;
        let stuck: Vec<&Value> = flows
            .iter()
            .filter(|f| f["status"] != "UP" && f["status"] != "DOWN")
            .collect();
        // Empty: the restarted read model has not caught up with the log yet (the crash
        // came after the first flows were accepted).
        if stuck.is_empty() && !flows.is_empty() {
            break flows;
        }
        if std::time::Instant::now() > deadline {
            assert!(!stuck.is_empty(), "no flow at all after {SETTLE:?}");
            let id = stuck[0]["flow_id"].as_str().unwrap_or_default();
            let history = api.history(id).await;
            panic!(
                "{} flows still not UP or DOWN after {SETTLE:?}, e.g. {}\nits history: {history}",
                stuck.len(),
                stuck[0]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (up, down): (Vec<Value>, Vec<Value>) =
        flows.iter().cloned().partition(|f| f["status"] == "UP");
    for flow in &down {
        assert!(
            flow["status_info"].as_str().is_some_and(|s| !s.is_empty()),
            "a DOWN flow says why: {flow}"
        );
        assert!(
            flow["path"].as_array().is_none_or(|p| p.is_empty()),
            "a DOWN flow here holds no path: {flow}"
        );
    }
    assert_tables_hold_exactly(api, &up).await;
    flows
}
