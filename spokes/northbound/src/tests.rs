//! The shim end to end against a fake topology that answers `nb.requests` on a thread.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use hubspoke_fsm::{
    Envelope, FlowRecord, LinkState, LinkStatus, NbRequest, NetworkState, SwitchId, SwitchState,
    SwitchStatus,
};
use serde_json::{json, Value};

use std::sync::Arc;

use crate::test_support::{answer, shim, Answer, ChannelPublish, Deletes, Shim};
use crate::view::spawn_network_view_updater;

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    correlation_id: Option<&str>,
    body: &str,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(id) = correlation_id {
        request = request.header("correlation_id", id);
    }
    answer(router, request.body(Body::from(body.to_string())).unwrap()).await
}

fn flow_body(flow_id: &str, src: u64, src_port: u32, dst: u64, dst_port: u32) -> String {
    json!({
        "flow_id": flow_id,
        "source": {"switch_id": SwitchId(src).to_string(), "port_number": src_port, "vlan_id": 100},
        "destination": {"switch_id": SwitchId(dst).to_string(), "port_number": dst_port},
        "maximum_bandwidth": 1000,
        "description": "test flow"
    })
    .to_string()
}

fn same_endpoints() -> String {
    let end = json!({"switch_id": SwitchId(1).to_string(), "port_number": 40, "vlan_id": 5});
    json!({"flow_id": "f", "source": end, "destination": end, "maximum_bandwidth": 0}).to_string()
}

fn assert_error(answer: &Answer, status: StatusCode, correlation_id: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    for field in ["error_type", "error_message", "error_description"] {
        assert!(
            answer.body[field].is_string(),
            "{field} missing: {}",
            answer.text
        );
    }
    assert_eq!(
        answer.body["correlation_id"], correlation_id,
        "{}",
        answer.text
    );
    assert_eq!(answer.correlation_id.as_deref(), Some(correlation_id));
}

#[tokio::test]
async fn a_flow_is_created_read_and_deleted() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let created = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("corr-create"),
        &flow_body("flow-1", 1, 40, 9, 41),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.correlation_id.as_deref(), Some("corr-create"));
    let flow = &created.body;
    assert_eq!(
        (flow["flow_id"].as_str(), flow["status"].as_str()),
        (Some("flow-1"), Some("IN_PROGRESS"))
    );
    assert_eq!(flow["source"]["vlan_id"], 100);
    assert_eq!(flow["destination"]["vlan_id"], 0);
    assert_eq!(flow["created"], "2023-11-14T22:13:20.000Z");
    let path = flow["path"].as_array().unwrap();
    assert_eq!(
        path.len(),
        5,
        "corner to corner of a 3x3 grid: {}",
        created.text
    );
    assert_eq!(
        (
            path[0]["switch_id"].as_str(),
            path[0]["input_port"].as_u64()
        ),
        (Some("00:00:00:00:00:00:00:01"), Some(40))
    );
    assert_eq!(
        (
            path[4]["switch_id"].as_str(),
            path[4]["output_port"].as_u64()
        ),
        (Some("00:00:00:00:00:00:00:09"), Some(41))
    );

    // what went on the bus
    let sent = shim.seen.try_recv().unwrap();
    assert_eq!(
        (sent.correlation_id.as_str(), sent.key.as_str()),
        ("corr-create", "flow-1")
    );
    assert_eq!(sent.deadline_ms, Some(sent.created_at_ms + 5000));
    assert!(matches!(sent.payload, NbRequest::CreateFlow { .. }));

    // the answer's record is in the read model at once
    let read = call(&shim.router, "GET", "/v2/flows/flow-1", None, "").await;
    assert_eq!((read.status, &read.body), (StatusCode::OK, flow));
    let listed = call(&shim.router, "GET", "/v2/flows", None, "").await;
    assert_eq!(listed.body, json!([flow]));
    let history = call(&shim.router, "GET", "/v2/flows/flow-1/history", None, "").await;
    assert_eq!((history.status, history.body), (StatusCode::OK, json!([])));

    let deleted = call(
        &shim.router,
        "DELETE",
        "/v2/flows/flow-1",
        Some("corr-delete"),
        "",
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["last_updated"], "2023-11-14T22:13:20.500Z");
    let sent = shim.seen.try_recv().unwrap();
    assert_eq!(
        sent.payload,
        NbRequest::DeleteFlow {
            flow_id: "flow-1".into()
        }
    );
    let again = call(
        &shim.router,
        "DELETE",
        "/v2/flows/flow-1",
        Some("corr-again"),
        "",
    )
    .await;
    assert_error(&again, StatusCode::NOT_FOUND, "corr-again");
    assert!(shim.state.pending.is_empty());
}

#[tokio::test]
async fn the_topology_errors_pass_through_with_their_status() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let first = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("c1"),
        &flow_body("dup", 1, 40, 2, 40),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("c2"),
        &flow_body("dup", 1, 41, 2, 41),
    )
    .await;
    assert_error(&second, StatusCode::CONFLICT, "c2");
    assert_eq!(second.body["error_type"], "already-exists");
    let odd = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("c3"),
        &flow_body("odd-status", 1, 40, 2, 40),
    )
    .await;
    assert_error(&odd, StatusCode::INTERNAL_SERVER_ERROR, "c3");
    // switches and ports are the topology's to judge: the shim does not know the network
    let unknown_switch = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("c4"),
        &flow_body("f", 1, 40, 77, 40),
    )
    .await;
    assert_error(&unknown_switch, StatusCode::NOT_FOUND, "c4");
    assert_eq!(unknown_switch.body["error_message"], "Switch not found");
    assert_eq!(
        shim.seen.try_iter().count(),
        4,
        "every create reached the bus"
    );
}

async fn create(shim: &Shim, flow_id: &str, dst: u64) -> Value {
    let created = call(
        &shim.router,
        "POST",
        "/v2/flows",
        None,
        &flow_body(flow_id, 1, 40, dst, 41),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    shim.seen.try_recv().unwrap();
    created.body
}

#[tokio::test]
async fn a_flow_is_updated_with_or_without_its_id_in_the_body() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    create(&shim, "flow-u", 9).await;
    let mut body: Value = serde_json::from_str(&flow_body("flow-u", 1, 40, 5, 42)).unwrap();
    body["maximum_bandwidth"] = json!(2000);
    body.as_object_mut().unwrap().remove("flow_id");
    let updated = call(
        &shim.router,
        "PUT",
        "/v2/flows/flow-u",
        Some("corr-update"),
        &body.to_string(),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.correlation_id.as_deref(), Some("corr-update"));
    let flow = &updated.body;
    assert_eq!(
        (flow["flow_id"].as_str(), flow["maximum_bandwidth"].as_u64()),
        (Some("flow-u"), Some(2000))
    );
    assert_eq!(flow["last_updated"], "2023-11-14T22:13:21.000Z");
    let path = flow["path"].as_array().unwrap();
    assert_eq!(
        path.len(),
        3,
        "1 to the centre of the grid: {}",
        updated.text
    );
    assert_eq!(path[2]["output_port"], 42);
    let sent = shim.seen.try_recv().unwrap();
    assert_eq!(
        (sent.correlation_id.as_str(), sent.key.as_str()),
        ("corr-update", "flow-u")
    );
    let NbRequest::UpdateFlow { flow: request } = sent.payload else {
        panic!("not an update: {sent:?}");
    };
    assert_eq!(
        (request.flow_id.as_str(), request.maximum_bandwidth),
        ("flow-u", 2000)
    );
    let read = call(&shim.router, "GET", "/v2/flows/flow-u", None, "").await;
    assert_eq!(&read.body, flow);

    // the same id in the body is fine too
    let again = call(
        &shim.router,
        "PUT",
        "/v2/flows/flow-u",
        None,
        &flow_body("flow-u", 1, 40, 9, 41),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["path"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn flow_options_that_exclude_each_other_are_400_before_anything_is_published() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let mut both: Value = serde_json::from_str(&flow_body("flow-b", 1, 40, 2, 40)).unwrap();
    both["ignore_bandwidth"] = json!(true);
    both["strict_bandwidth"] = json!(true);
    let refused = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("corr-both"),
        &both.to_string(),
    )
    .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "corr-both");
    assert!(
        refused.text.contains("cannot both be set"),
        "{}",
        refused.text
    );
    assert!(
        shim.seen.try_recv().is_err(),
        "nothing reached the topology"
    );
}

#[tokio::test]
async fn a_patch_changes_only_the_fields_it_gives_and_refuses_unknown_ones() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let created = call(
        &shim.router,
        "POST",
        "/v2/flows",
        None,
        &flow_body("flow-p", 1, 40, 2, 40),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let patched = call(
        &shim.router,
        "PATCH",
        "/v2/flows/flow-p",
        None,
        r#"{"description": "renamed", "destination": {"vlan_id": 300}}"#,
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["description"], "renamed");
    assert_eq!(patched.body["destination"]["vlan_id"], 300);
    assert_eq!(patched.body["destination"]["port_number"], 40);
    assert_eq!(patched.body["maximum_bandwidth"], 1000);
    let unknown = call(
        &shim.router,
        "PATCH",
        "/v2/flows/flow-p",
        Some("corr-unknown"),
        r#"{"periodic_pings": true}"#,
    )
    .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "corr-unknown");
    let missing = call(
        &shim.router,
        "PATCH",
        "/v2/flows/nobody",
        Some("corr-missing"),
        r#"{"description": "x"}"#,
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "corr-missing");
}

#[tokio::test]
async fn an_update_names_the_flow_of_its_path_and_an_existing_one() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let mismatched = call(
        &shim.router,
        "PUT",
        "/v2/flows/flow-a",
        Some("corr-mismatch"),
        &flow_body("flow-b", 1, 40, 2, 40),
    )
    .await;
    assert_error(&mismatched, StatusCode::BAD_REQUEST, "corr-mismatch");
    assert!(
        mismatched.body["error_description"]
            .as_str()
            .unwrap()
            .contains("flow-b"),
        "{}",
        mismatched.text
    );
    assert!(shim.seen.try_recv().is_err(), "nothing was published");

    let unknown = call(
        &shim.router,
        "PUT",
        "/v2/flows/flow-a",
        Some("corr-unknown"),
        &flow_body("flow-a", 1, 40, 2, 40),
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "corr-unknown");
    assert_eq!(unknown.body["error_message"], "Flow not found");
    assert!(matches!(
        shim.seen.try_recv().unwrap().payload,
        NbRequest::UpdateFlow { .. }
    ));
}

#[tokio::test]
async fn a_flow_is_rerouted_onto_a_new_path() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let created = create(&shim, "flow-r", 9).await;
    let rerouted = call(
        &shim.router,
        "POST",
        "/v2/flows/flow-r/reroute",
        Some("corr-reroute"),
        "",
    )
    .await;
    assert_eq!(rerouted.status, StatusCode::OK, "{}", rerouted.text);
    let path = &rerouted.body["path"];
    assert_eq!(path.as_array().map(Vec::len), Some(5), "{}", rerouted.text);
    assert_ne!(path, &created["path"]);
    assert_eq!(
        shim.seen.try_recv().unwrap().payload,
        NbRequest::RerouteFlow {
            flow_id: "flow-r".into()
        }
    );
    let read = call(&shim.router, "GET", "/v2/flows/flow-r", None, "").await;
    assert_eq!(&read.body["path"], path);

    let unknown = call(
        &shim.router,
        "POST",
        "/v2/flows/nope/reroute",
        Some("corr-nope"),
        "",
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "corr-nope");
}

#[tokio::test]
async fn a_swap_is_asked_of_the_topology_and_its_refusals_are_explained() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    create(&shim, "flow-w", 9).await;
    let swap = |flow_id: &str, correlation_id: &'static str| {
        let uri = format!("/v2/flows/{flow_id}/swap");
        let router = shim.router.clone();
        async move { call(&router, "PATCH", &uri, Some(correlation_id), "").await }
    };
    let unprotected = swap("flow-w", "corr-swap").await;
    assert_error(&unprotected, StatusCode::BAD_REQUEST, "corr-swap");
    assert_eq!(
        shim.seen.try_recv().unwrap().payload,
        NbRequest::SwapFlow {
            flow_id: "flow-w".into()
        }
    );
    let unknown = swap("nope", "corr-nope").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "corr-nope");
    let post = call(&shim.router, "POST", "/v2/flows/flow-w/swap", None, "").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn an_endpoint_swap_names_two_flows_and_is_answered_with_both() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    create(&shim, "flow-a", 9).await;
    create(&shim, "flow-b", 9).await;
    let end = |switch: u64, port: u32| json!({"switch_id": format!("00:00:00:00:00:00:00:{switch:02x}"), "port_number": port, "vlan_id": 0});
    let body = |first: &str, second: &str| {
        json!({
            "first_flow": {"flow_id": first, "source": end(1, 10), "destination": end(3, 11)},
            "second_flow": {"flow_id": second, "source": end(1, 12), "destination": end(3, 13)},
        })
        .to_string()
    };
    let uri = "/v2/flows/swap-endpoint";
    let swapped = call(
        &shim.router,
        "POST",
        uri,
        Some("corr-se"),
        &body("flow-a", "flow-b"),
    )
    .await;
    assert_eq!(swapped.status, StatusCode::OK, "{}", swapped.text);
    assert_eq!(swapped.body["first_flow"]["flow_id"], "flow-a");
    assert_eq!(
        swapped.body["second_flow"]["destination"]["port_number"],
        13
    );
    let asked = shim.seen.try_recv().unwrap();
    assert_eq!(asked.key, "flow-a", "the first flow's hub runs the swap");
    assert!(matches!(asked.payload, NbRequest::SwapEndpoints { .. }));

    let same = call(
        &shim.router,
        "POST",
        uri,
        Some("corr-same"),
        &body("flow-a", "flow-a"),
    )
    .await;
    assert_error(&same, StatusCode::BAD_REQUEST, "corr-same");
    let unknown = call(
        &shim.router,
        "POST",
        uri,
        Some("corr-nope"),
        &body("flow-a", "nope"),
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "corr-nope");
    let extra = json!({"first_flow": {"flow_id": "flow-a"}, "second_flow": {}, "third_flow": {}});
    let bad = call(
        &shim.router,
        "POST",
        uri,
        Some("corr-bad"),
        &extra.to_string(),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "corr-bad");
}

#[tokio::test]
async fn a_flow_is_synced_and_an_unknown_one_is_404() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    create(&shim, "flow-s", 9).await;
    let synced = call(
        &shim.router,
        "POST",
        "/v2/flows/flow-s/sync",
        Some("corr-sync"),
        "",
    )
    .await;
    assert_eq!(synced.status, StatusCode::OK, "{}", synced.text);
    assert_eq!(synced.body["status"], "IN_PROGRESS");
    assert_eq!(
        shim.seen.try_recv().unwrap().payload,
        NbRequest::SyncFlow {
            flow_id: "flow-s".into()
        }
    );
    let unknown = call(
        &shim.router,
        "POST",
        "/v2/flows/nope/sync",
        Some("corr-x"),
        "",
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "corr-x");
}

/// The ping requests that reached the fake topology: their timeouts.
fn pings_seen(shim: &Shim) -> Vec<Option<u64>> {
    shim.seen
        .try_iter()
        .filter_map(|request| match request.payload {
            NbRequest::PingFlow { timeout_ms, .. } => Some(timeout_ms),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_flow_is_pinged_with_or_without_a_timeout_and_bad_pings_are_explained() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    create(&shim, "flow-p", 9).await;
    let ping = |body: &'static str| {
        call(
            &shim.router,
            "POST",
            "/v2/flows/flow-p/ping",
            Some("corr-ping"),
            body,
        )
    };
    let pinged = ping("").await;
    assert_eq!(pinged.status, StatusCode::OK, "{}", pinged.text);
    assert_eq!(
        pinged.body,
        json!({
            "flow_id": "flow-p",
            "forward": {"ping_success": true, "error": null, "latency": 1000},
            "reverse": {"ping_success": true, "error": null, "latency": 2000},
            "error": null
        })
    );
    assert_eq!(
        pings_seen(&shim),
        vec![Some(2_000)],
        "the default timeout is sent"
    );
    for (body, timeout) in [(r#"{"timeout": 300}"#, Some(300)), ("{}", Some(2_000))] {
        let answer = call(&shim.router, "POST", "/v2/flows/flow-p/ping", None, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.text);
        assert_eq!(pings_seen(&shim), vec![timeout], "{body}");
    }
    for body in [
        r#"{"timeout": 0}"#,
        r#"{"timeout": 2501}"#,
        r#"{"timeout": -1}"#,
        r#"{"timeout": "fast"}"#,
        r#"{"tmeout": 300}"#,
        "{not json",
    ] {
        let answer = ping(body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "corr-ping");
    }
    let unknown = call(
        &shim.router,
        "POST",
        "/v2/flows/nope/ping",
        Some("corr-nope"),
        "",
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "corr-nope");
    assert!(pings_seen(&shim).is_empty(), "nothing more was published");
}

#[tokio::test]
async fn requests_the_shim_can_judge_alone_never_reach_the_bus() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let cases: Vec<(&str, &str, String, StatusCode)> = vec![
        (
            "POST",
            "/v2/flows",
            "{not json".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v2/flows",
            r#"{"flow_id": "f"}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v2/flows",
            flow_body("bad id!", 1, 40, 2, 40),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v2/flows",
            same_endpoints(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v2/flows",
            flow_body("f", 1, 40, 2, 0),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v2/flows",
            flow_body("f", 1, 40, 2, 40).replace("00:00:00:00:00:00:00:02", "nope"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "DELETE",
            "/v2/flows/bad%20id",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/v2/flows/f",
            r#"{"flow_id": "f"}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/v2/flows/f",
            same_endpoints(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/v2/flows/bad%20id",
            flow_body("bad id", 1, 40, 2, 40),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/v2/flows/f",
            r#"{"flow_id": 5}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v2/flows/bad%20id/reroute",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v2/flows/unknown",
            String::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/v2/flows/unknown/history",
            String::new(),
            StatusCode::NOT_FOUND,
        ),
        ("GET", "/v2/nothing", String::new(), StatusCode::NOT_FOUND),
        (
            "PATCH",
            "/v2/flows",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, uri, body, status) in cases {
        let answer = call(&shim.router, method, uri, Some("corr-bad"), &body).await;
        assert_error(&answer, status, "corr-bad");
    }
    assert!(shim.seen.try_recv().is_err(), "nothing was published");
    // the messages say what is wrong
    let vlan = call(
        &shim.router,
        "POST",
        "/v2/flows",
        None,
        &flow_body("f", 1, 40, 2, 40).replace("100", "5000"),
    )
    .await;
    assert!(
        vlan.body["error_description"]
            .as_str()
            .unwrap()
            .contains("vlan_id"),
        "{}",
        vlan.text
    );
    let missing = call(
        &shim.router,
        "POST",
        "/v2/flows",
        None,
        r#"{"flow_id": "f"}"#,
    )
    .await;
    assert!(
        missing.body["error_description"]
            .as_str()
            .unwrap()
            .contains("missing field"),
        "{}",
        missing.text
    );
}

#[tokio::test]
async fn an_unanswered_request_times_out_with_504_and_leaves_nothing_behind() {
    let shim = shim(Duration::from_millis(200), Deletes::Forget);
    let started = std::time::Instant::now();
    let answer = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("corr-slow"),
        &flow_body("silent-1", 1, 40, 2, 40),
    )
    .await;
    assert_error(&answer, StatusCode::GATEWAY_TIMEOUT, "corr-slow");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(shim.state.pending.is_empty());
}

#[tokio::test]
async fn a_different_request_under_a_correlation_id_in_flight_is_a_conflict() {
    let shim = shim(Duration::from_millis(300), Deletes::Forget);
    let router = shim.router.clone();
    let slow = tokio::spawn(async move {
        call(
            &router,
            "POST",
            "/v2/flows",
            Some("same"),
            &flow_body("silent-2", 1, 40, 2, 40),
        )
        .await
    });
    while shim.state.pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = call(
        &shim.router,
        "POST",
        "/v2/flows",
        Some("same"),
        &flow_body("other", 1, 40, 2, 40),
    )
    .await;
    assert_error(&second, StatusCode::CONFLICT, "same");
    assert_eq!(second.body["error_type"], "correlation-id-conflict");
    assert_eq!(slow.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
}

/// A client that sends its request again after its own timeout, while the first is still
/// being worked on, gets the first one's answer; the request is not sent twice.
#[tokio::test]
async fn the_same_request_sent_again_while_in_flight_gets_the_same_answer() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let body = flow_body("slow-1", 1, 40, 2, 40);
    let router = shim.router.clone();
    let first_body = body.clone();
    let first = tokio::spawn(async move {
        call(&router, "POST", "/v2/flows", Some("retry"), &first_body).await
    });
    while shim.state.pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let again = call(&shim.router, "POST", "/v2/flows", Some("retry"), &body).await;
    let first = first.await.unwrap();
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!((first.status, &first.body), (again.status, &again.body));
    assert_eq!(shim.seen.try_iter().count(), 1, "sent to the topology once");
}

#[tokio::test]
async fn concurrent_requests_get_their_own_answers() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let mut tasks = Vec::new();
    for n in 0..20u32 {
        let router = shim.router.clone();
        let flow_id = if n % 3 == 0 {
            format!("noisy-{n}")
        } else {
            format!("flow-{n}")
        };
        tasks.push(tokio::spawn(async move {
            let answer = call(
                &router,
                "POST",
                "/v2/flows",
                None,
                &flow_body(&flow_id, 1, 10 + n, 5, 10 + n),
            )
            .await;
            (flow_id, answer)
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        let (flow_id, answer) = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.body["flow_id"], flow_id.as_str());
        // a generated correlation id, a fresh one per request
        let id = answer.correlation_id.unwrap();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert!(ids.insert(id));
    }
    assert_eq!(
        call(&shim.router, "GET", "/v2/flows", None, "")
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(20)
    );
}

fn link(src_port: u32, state: LinkStatus, available_bandwidth: u64) -> NetworkState {
    NetworkState::Link(LinkState {
        src_switch: SwitchId(1),
        src_port,
        dst_switch: SwitchId(2),
        dst_port: src_port,
        state,
        capacity: 10_000,
        max_bandwidth: 10_000,
        available_bandwidth,
        latency_ns: 1_000_000,
        cost: 700,
    })
}

#[tokio::test]
async fn the_network_health_and_metrics_are_served() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let (sender, receiver) = crossbeam_channel::unbounded();
    let updater = spawn_network_view_updater(shim.state.network_view.clone(), receiver);
    for state in [
        NetworkState::Switch(SwitchState {
            switch_id: SwitchId(2),
            ports: 48,
            port_numbers: Vec::new(),
            state: SwitchStatus::Inactive,
        }),
        link(3, LinkStatus::Up, 10_000),
        link(1, LinkStatus::Up, 10_000),
        link(1, LinkStatus::Down, 7_000), // the newer state of the same link
    ] {
        sender
            .send(Envelope::new("c", state.key(), 1, state))
            .unwrap();
    }
    drop(sender);
    updater.join().unwrap();
    let switches = call(&shim.router, "GET", "/v2/switches", None, "").await;
    assert_eq!(
        switches.body,
        json!([{"switch_id": "00:00:00:00:00:00:00:02", "ports": 48, "state": "INACTIVE"}])
    );
    let links = call(&shim.router, "GET", "/v2/links", None, "").await;
    assert_eq!(
        links.body,
        json!([
            {
                "src_switch": "00:00:00:00:00:00:00:01", "src_port": 1,
                "dst_switch": "00:00:00:00:00:00:00:02", "dst_port": 1,
                "state": "DOWN", "capacity": 10_000, "max_bandwidth": 10_000,
                "available_bandwidth": 7_000, "latency_ns": 1_000_000, "cost": 700
            },
            {
                "src_switch": "00:00:00:00:00:00:00:01", "src_port": 3,
                "dst_switch": "00:00:00:00:00:00:00:02", "dst_port": 3,
                "state": "UP", "capacity": 10_000, "max_bandwidth": 10_000,
                "available_bandwidth": 10_000, "latency_ns": 1_000_000, "cost": 700
            }
        ])
    );
    let health = call(&shim.router, "GET", "/health", None, "").await;
    assert_eq!(
        (health.status, health.body),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let ready = call(&shim.router, "GET", "/ready", None, "").await;
    assert_eq!(
        (ready.status, ready.body),
        (StatusCode::OK, json!({"ready": true, "waiting_for": []}))
    );
    let metrics = call(&shim.router, "GET", "/metrics", None, "").await;
    assert_eq!(
        metrics.content_type.as_deref(),
        Some("text/plain; version=0.0.4")
    );
    assert_eq!(metrics.text, "hubspoke_flows_total 3\n");
}

/// A history with entries at 100, 200, 200, 300 and 400 ms, published out of order.
fn history_shim() -> Shim {
    use hubspoke_fsm::{FlowEvent, HistoryEntry};
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    for (at, event) in [(300, "c"), (100, "a"), (200, "b1"), (400, "d"), (200, "b2")] {
        let entry = HistoryEntry {
            timestamp_ms: at,
            operation: "create".into(),
            event: event.into(),
            from_state: "A".into(),
            to_state: "B".into(),
            details: String::new(),
            correlation_id: "c".into(),
        };
        shim.state.view.apply_event(&Envelope::new(
            "c",
            "flow-h",
            at,
            FlowEvent::History {
                flow_id: "flow-h".into(),
                entry,
            },
        ));
    }
    shim
}

#[tokio::test]
async fn history_is_bounded_by_time_and_count() {
    let shim = history_shim();
    let cases: [(&str, &[&str]); 11] = [
        ("", &["a", "b1", "b2", "c", "d"]),
        ("?time_from=200", &["b1", "b2", "c", "d"]),
        ("?time_to=200", &["a", "b1", "b2"]),
        ("?time_from=200&time_to=200", &["b1", "b2"]),
        ("?time_from=150&time_to=350", &["b1", "b2", "c"]),
        ("?max_count=2", &["c", "d"]),
        ("?time_from=100&time_to=300&max_count=2", &["b2", "c"]),
        ("?max_count=50", &["a", "b1", "b2", "c", "d"]),
        ("?time_from=401", &[]),
        ("?time_to=0&max_count=1", &[]),
        ("?other=1&time_from=400", &["d"]),
    ];
    for (query, expected) in cases {
        let uri = format!("/v2/flows/flow-h/history{query}");
        let answer = call(&shim.router, "GET", &uri, None, "").await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
        let events: Vec<&str> = answer
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, expected, "{uri}");
    }
    // the entries are whole, with their times
    let answer = call(
        &shim.router,
        "GET",
        "/v2/flows/flow-h/history?max_count=1",
        None,
        "",
    )
    .await;
    assert_eq!(answer.body[0]["timestamp_ms"], 400);
    assert_eq!(answer.body[0]["to_state"], "B");
    // a known flow without history is an empty list, whatever the bounds
    shim.state.view.apply_record(&FlowRecord::new(
        serde_json::from_str(&flow_body("quiet", 1, 40, 2, 40)).unwrap(),
        1,
    ));
    let quiet = call(
        &shim.router,
        "GET",
        "/v2/flows/quiet/history?time_from=1&max_count=3",
        None,
        "",
    )
    .await;
    assert_eq!((quiet.status, quiet.body), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn bad_history_parameters_are_400_and_unknown_flows_404() {
    let shim = history_shim();
    for query in [
        "time_from=abc",
        "time_to=-1",
        "time_from=1.5",
        "time_from=",
        "time_to=99999999999999999999999",
        "max_count=0",
        "max_count=-3",
        "max_count=two",
        "time_from=300&time_to=200",
        "time_from=1&time_from=2",
    ] {
        let uri = format!("/v2/flows/flow-h/history?{query}");
        let answer = call(&shim.router, "GET", &uri, Some("corr-history"), "").await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "corr-history");
        assert_eq!(answer.body["error_type"], "bad-request", "{uri}");
    }
    let answer = call(
        &shim.router,
        "GET",
        "/v2/flows/flow-h/history?time_from=300&time_to=200",
        Some("corr-history"),
        "",
    )
    .await;
    let description = answer.body["error_description"].as_str().unwrap();
    assert!(
        description.contains("time_from") && description.contains("time_to"),
        "{description}"
    );
    let answer = call(
        &shim.router,
        "GET",
        "/v2/flows/flow-h/history?max_count=x",
        None,
        "",
    )
    .await;
    assert!(
        answer.body["error_description"]
            .as_str()
            .unwrap()
            .contains("max_count"),
        "{}",
        answer.text
    );
    let unknown = call(
        &shim.router,
        "GET",
        "/v2/flows/unknown/history?time_from=1&time_to=2&max_count=3",
        Some("corr-history"),
        "",
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "corr-history");
}

/// A topology that takes requests but answers none: the shim is alive, not ready.
#[tokio::test]
async fn the_shim_is_not_ready_while_no_topology_answers() {
    let (request_tx, _requests_nobody_reads) = crossbeam_channel::unbounded();
    let (_, responses) = crossbeam_channel::unbounded();
    let (_, flow_events) = crossbeam_channel::unbounded();
    let (_, network_states) = crossbeam_channel::unbounded();
    let router = crate::Northbound {
        requests: Arc::new(ChannelPublish(request_tx)),
        responses,
        flow_events,
        network_states,
        request_timeout: Duration::from_secs(5),
        metrics: Arc::new(String::new),
        readiness: hubspoke_rest::Readiness::new(),
    }
    .router();
    let health = call(&router, "GET", "/health", None, "").await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = call(&router, "GET", "/ready", None, "").await;
    assert_eq!(
        (ready.status, ready.body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "waiting_for": ["topology answering"]})
        )
    );
}

#[tokio::test]
async fn a_link_is_patched_both_ways_and_bad_patches_are_refused() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let (one, two) = (SwitchId(1).to_string(), SwitchId(2).to_string());
    // grid:3x3: port 1 of switch 1 leads to port 1 of switch 2.
    let uri = format!("/v2/links/{one}/1/{two}/1");
    let patched = call(
        &shim.router,
        "PATCH",
        &uri,
        None,
        r#"{"cost": 50, "max_bandwidth": 4000}"#,
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let links = patched.body.as_array().expect("both directions");
    assert_eq!(links.len(), 2);
    assert_eq!(
        (&links[0]["src_switch"], &links[1]["src_switch"]),
        (&json!(one), &json!(two))
    );
    assert!(links
        .iter()
        .all(|l| l["cost"] == 50 && l["max_bandwidth"] == 4000 && l["latency_ns"].is_u64()));
    let sent = shim
        .seen
        .try_recv()
        .expect("the patch went to the topology");
    assert!(
        matches!(sent.payload, NbRequest::PatchLink { .. }),
        "{sent:?}"
    );

    let refused = [
        (format!("/v2/links/{one}/1/{two}/1"), "{}", "give cost"),
        (
            format!("/v2/links/{one}/1/{two}/1"),
            r#"{"cost": -1}"#,
            "-1",
        ),
        (
            format!("/v2/links/{one}/1/{two}/1"),
            r#"{"latency": 5}"#,
            "unknown field",
        ),
        (
            format!("/v2/links/{one}/0/{two}/1"),
            r#"{"cost": 1}"#,
            "src_port",
        ),
        (
            format!("/v2/links/{one}/1/nope/1"),
            r#"{"cost": 1}"#,
            "nope",
        ),
    ];
    for (uri, body, why) in refused {
        let answer = call(&shim.router, "PATCH", &uri, Some("corr-link"), body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "corr-link");
        assert!(answer.text.contains(why), "{uri} {body}: {}", answer.text);
    }
    assert!(shim.seen.try_recv().is_err(), "the shim judged those alone");
    let unknown = format!("/v2/links/{one}/7/{two}/7");
    let answer = call(
        &shim.router,
        "PATCH",
        &unknown,
        Some("corr-none"),
        r#"{"cost": 1}"#,
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "corr-none");
}

#[tokio::test]
async fn network_paths_are_listed_in_openkilda_shape_and_bad_queries_refused() {
    let shim = shim(Duration::from_secs(5), Deletes::Forget);
    let (one, nine) = (SwitchId(1).to_string(), SwitchId(9).to_string());
    let uri = format!(
        "/v2/network/paths?src_switch={one}&dst_switch={nine}&path_computation_strategy=LATENCY&max_path_count=3"
    );
    let answer = call(&shim.router, "GET", &uri, None, "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let paths = answer.body["paths"].as_array().expect("paths");
    assert_eq!(paths.len(), 3);
    let latency = |p: &Value| p["latency_ns"].as_u64().expect("latency_ns");
    assert!(
        paths.windows(2).all(|w| latency(&w[0]) <= latency(&w[1])),
        "best first"
    );
    for path in paths {
        assert_eq!(path["latency"], path["latency_ns"]);
        assert_eq!(path["latency_ms"].as_u64(), Some(latency(path) / 1_000_000));
        assert!(path["bandwidth"].is_u64() && path["cost"].is_u64());
        let nodes = path["nodes"].as_array().expect("nodes");
        assert_eq!(
            nodes.len(),
            5,
            "a corner-to-corner path of grid:3x3 is 4 hops"
        );
        assert_eq!(nodes[0]["switch_id"], json!(one));
        assert!(nodes[0].get("input_port").is_none() && nodes[0]["output_port"].is_u64());
        assert_eq!(nodes[4]["switch_id"], json!(nine));
        assert!(nodes[4]["input_port"].is_u64() && nodes[4].get("output_port").is_none());
        assert!(nodes[1..4]
            .iter()
            .all(|n| n["input_port"].is_u64() && n["output_port"].is_u64()));
    }
    match shim.seen.try_recv().expect("asked the topology").payload {
        NbRequest::FindPaths { query } => {
            assert_eq!(query.max_path_count, 3);
            assert_eq!(query.max_latency, None);
        }
        other => panic!("{other:?}"),
    }

    let bad = [
        format!("/v2/network/paths?dst_switch={nine}"),
        format!("/v2/network/paths?src_switch={one}&dst_switch=nope"),
        format!("/v2/network/paths?src_switch={one}&dst_switch={nine}&path_computation_strategy=FASTEST"),
        format!("/v2/network/paths?src_switch={one}&dst_switch={nine}&path_computation_strategy=MAX_LATENCY"),
        format!("/v2/network/paths?src_switch={one}&dst_switch={nine}&max_latency=soon"),
        format!("/v2/network/paths?src_switch={one}&dst_switch={nine}&max_path_count=0"),
    ];
    for uri in bad {
        let answer = call(&shim.router, "GET", &uri, Some("corr-paths"), "").await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "corr-paths");
    }
    assert!(shim.seen.try_recv().is_err(), "the shim judged those alone");
    let unknown = format!(
        "/v2/network/paths?src_switch={one}&dst_switch={}",
        SwitchId(99)
    );
    let answer = call(&shim.router, "GET", &unknown, Some("corr-99"), "").await;
    assert_error(&answer, StatusCode::NOT_FOUND, "corr-99");
}
