//! The endpoint swap scenario of the end-to-end tests, against any deployment whose switches
//! are the simulator: two flows on `grid:3x3` exchange their destinations as one operation,
//! then a swap that a switch refuses leaves both as they were. Packets are traced both ways.
//! `swap-a` and `swap-b` run on different hubs of a two-worker topology.

use std::time::Duration;

use serde_json::{json, Value};

use super::flows::{assert_tables_come_to_hold_exactly, switch_id};
use super::Api;

pub const NETWORK: &str = "grid:3x3";

fn end(switch: u64, vlan: u64) -> Value {
    json!({"switch_id": switch_id(switch), "port_number": 20, "vlan_id": vlan})
}

fn flow(flow_id: &str, source: Value, destination: Value) -> Value {
    json!({
        "flow_id": flow_id,
        "source": source,
        "destination": destination,
        "maximum_bandwidth": 1000,
    })
}

/// `a` from switch 1 to `a_to`, `b` from switch 7 to `b_to`.
fn swap(a_to: &Value, b_to: &Value) -> Value {
    json!({
        "first_flow": {"flow_id": "swap-a", "source": end(1, 100), "destination": a_to},
        "second_flow": {"flow_id": "swap-b", "source": end(7, 300), "destination": b_to},
    })
}

/// Every flow is UP with the destination `expected` names, and carries packets both ways;
/// the switches hold exactly the flows' rules.
async fn all_up_at(api: &Api, expected: &[(&str, &Value)]) {
    let flows = api
        .flows_when(3, Duration::from_secs(60), "every flow UP", |f| {
            f["status"] == "UP"
        })
        .await;
    for (flow_id, destination) in expected {
        let flow = flows
            .iter()
            .find(|f| f["flow_id"] == *flow_id)
            .expect("the flow");
        assert_eq!(&flow["destination"], *destination, "{flow}");
        api.assert_delivered_both_ways(flow).await;
    }
    assert_tables_come_to_hold_exactly(api, &flows).await;
}

pub async fn two_flows_exchange_destinations_or_neither_does(api: &Api) {
    api.wait_for_grid().await;
    let (to_3, to_9) = (end(3, 200), end(9, 400));
    for body in [
        flow("swap-a", end(1, 100), to_3.clone()),
        flow("swap-b", end(7, 300), to_9.clone()),
        flow("swap-c", end(4, 500), end(6, 600)),
    ] {
        api.create_and_wait_up(&body).await;
    }

    let (status, answer) = api.swap_endpoints(&swap(&to_9, &to_3)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["first_flow"]["destination"], to_9);
    assert_eq!(answer["second_flow"]["destination"], to_3);
    all_up_at(api, &[("swap-a", &to_9), ("swap-b", &to_3)]).await;
    for flow_id in ["swap-a", "swap-b"] {
        let history = api.history(flow_id).await;
        let swapped = history
            .as_array()
            .is_some_and(|h| h.iter().any(|e| e["to_state"] == "AwaitingCommit"));
        assert!(swapped, "{flow_id} ran its half of the swap: {history}");
    }

    // Switch 3 refuses everything: swap-a cannot get back there, so swap-b does not move
    // either.
    let refuse = |rate: f64| json!({"switch_id": switch_id(3), "error_rate": rate, "error_code": "TABLE_FULL"});
    api.put_faults(&refuse(1.0)).await;
    let (status, answer) = api.swap_endpoints(&swap(&to_3, &to_9)).await;
    assert_eq!(
        (status, answer["error_type"].as_str()),
        (500, Some("swap-endpoints-failed")),
        "{answer}"
    );
    api.put_faults(&refuse(0.0)).await;
    all_up_at(api, &[("swap-a", &to_9), ("swap-b", &to_3)]).await;
}
