//! Flow ping end to end (`POST /v2/flows/{id}/ping`) against a real `hubspoke up`: the
//! switch keeper sends a probe into each direction's ingress rule, and the simulator traces
//! it through the rules its switches hold.

use serde_json::{json, Value};

use crate::support::flows::{switch_id, FORWARD};
use crate::support::Hubspoke;

/// Both a probe's ways are judged alike: it arrived, without error, with a latency.
pub fn arrived(direction: &Value) -> bool {
    direction["ping_success"] == true
        && direction["error"].is_null()
        && direction["latency"].as_u64().is_some_and(|ns| ns > 0)
}

fn lost_because(direction: &Value, why: &str) -> bool {
    direction["ping_success"] == false
        && direction["latency"] == 0
        && direction["error"]
            .as_str()
            .is_some_and(|error| error.contains(why))
}

/// A flow UP answers its ping both ways with a latency. A rule of its forward direction lost
/// behind the controller's back loses the forward probe where the rule was (the reverse one
/// still arrives); a switch that drops every command leaves its direction's probe unanswered,
/// reported lost when its timeout is up; an unknown flow is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_is_pinged_both_ways_and_a_lost_rule_loses_its_direction() {
    // No sweep: it would put the lost rule back.
    let hub = Hubspoke::up(&["--network", "linear:3", "--switch-sweep-secs", "0"]);
    let api = hub.api();
    api.wait_for_network(3, 4).await;
    api.create_and_wait_up(&json!({
        "flow_id": "ping-me",
        "source": {"switch_id": switch_id(1), "port_number": 30, "vlan_id": 7},
        "destination": {"switch_id": switch_id(3), "port_number": 30, "vlan_id": 8},
        "maximum_bandwidth": 1000,
    }))
    .await;

    let (status, answer) = api.ping("ping-me", Value::Null).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["flow_id"], "ping-me", "{answer}");
    assert!(arrived(&answer["forward"]), "{answer}");
    assert!(arrived(&answer["reverse"]), "{answer}");
    assert!(answer["error"].is_null(), "{answer}");

    let transit = api
        .rules(&switch_id(2))
        .await
        .into_iter()
        .filter_map(|rule| rule["cookie"].as_u64())
        .find(|cookie| cookie & FORWARD != 0)
        .expect("the forward transit rule on switch 2");
    let url = api.sim(&format!("/sim/switches/{}/rules/{transit}", switch_id(2)));
    let removed = api.client.delete(url).send().await.expect("DELETE rule");
    assert_eq!(removed.status(), 200);
    let (status, answer) = api.ping("ping-me", json!({"timeout": 1000})).await;
    assert_eq!(status, 200, "{answer}");
    let where_lost = format!("no rule matched it at switch {}", switch_id(2));
    assert!(lost_because(&answer["forward"], &where_lost), "{answer}");
    assert!(arrived(&answer["reverse"]), "{answer}");

    api.put_faults(&json!({"switch_id": switch_id(3), "drop_rate": 1.0}))
        .await;
    let (status, answer) = api.ping("ping-me", json!({"timeout": 300})).await;
    assert_eq!(status, 200, "{answer}");
    let unanswered = format!("no answer from switch {} within 300 ms", switch_id(3));
    assert!(lost_because(&answer["reverse"], &unanswered), "{answer}");

    let (status, answer) = api.ping("no-such-flow", Value::Null).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error_type"], "not-found", "{answer}");
    assert!(answer["correlation_id"].is_string(), "{answer}");
}
