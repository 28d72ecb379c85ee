//! Random and mutated request bodies, content types and path segments against the shim (with
//! a fake topology behind it): no panic, never a 500, and every 4xx is the contract's JSON
//! error body with a correlation id.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use hubspoke_fsm::ping::FlowPingResponse;
use hubspoke_fsm::{HistoryEntry, LinkState, SwitchId};
use hubspoke_mutations::{any_json_value, mutations};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use crate::paths_json::PathsJson;
use crate::routes::SwapEndpointsJson;
use crate::test_support::{answer, shim, Answer, Deletes};
use crate::FlowJson;

const CASES: u32 = 256;
/// Flows that exist before the fuzzing starts, so that updates, reroutes and reads of them get
/// past the topology's "not found".
const EXISTING: [&str; 3] = ["flow-1", "flow-2", "flow-3"];

struct Fuzzing {
    runtime: Runtime,
    router: Router,
}

/// A runtime and a shim whose topology already has the [`EXISTING`] flows.
fn fuzzing() -> Fuzzing {
    let fuzzing = Fuzzing {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        router: shim(Duration::from_secs(5), Deletes::Keep).router,
    };
    for flow_id in EXISTING {
        let created = fuzzing.send(Call {
            method: "POST",
            uri: "/v2/flows".into(),
            content_type: Some("application/json".into()),
            correlation_id: None,
            body: create_body(flow_id).to_string().into_bytes(),
        });
        assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    }
    fuzzing
}

#[derive(Clone, Debug)]
struct Call {
    method: &'static str,
    uri: String,
    content_type: Option<String>,
    correlation_id: Option<String>,
    body: Vec<u8>,
}

impl Fuzzing {
    fn send(&self, call: Call) -> Answer {
        let mut request = Request::builder().method(call.method).uri(&call.uri);
        if let Some(content_type) = &call.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(correlation_id) = &call.correlation_id {
            request = request.header("correlation_id", correlation_id);
        }
        let request = request.body(Body::from(call.body)).unwrap();
        self.runtime.block_on(answer(&self.router, request))
    }

    /// Sends every call `calls` generates and checks each answer: a flow (or the history)
    /// for a 2xx, the contract's error body for a 4xx, a 504 at worst, never anything else.
    fn run(&self, calls: impl Strategy<Value = Call>, ok_body: fn(&Value) -> bool) {
        let config = Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        };
        TestRunner::new(config)
            .run(&calls, |call| {
                // A URI no HTTP client can send does not reach the router.
                if call.uri.parse::<axum::http::Uri>().is_err() {
                    return Ok(());
                }
                let answer = self.send(call.clone());
                check(&call, &answer, ok_body)
            })
            .unwrap();
    }
}

fn check(call: &Call, answer: &Answer, ok_body: fn(&Value) -> bool) -> Result<(), TestCaseError> {
    let status = answer.status;
    let what = format!(
        "{} {} ({:?}) answered {status}: {}",
        call.method, call.uri, call.content_type, answer.text
    );
    let correlation_id = answer.correlation_id.as_deref().unwrap_or_default();
    prop_assert!(
        !correlation_id.is_empty(),
        "no correlation_id header: {what}"
    );
    if let Some(sent) = call
        .correlation_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 256)
    {
        prop_assert_eq!(correlation_id, sent, "the request's id is kept: {}", &what);
    }
    if status.is_success() {
        prop_assert!(ok_body(&answer.body), "not the expected body: {what}");
        return Ok(());
    }
    prop_assert!(
        status.is_client_error() || status == StatusCode::GATEWAY_TIMEOUT,
        "status not 2xx, 4xx or 504: {what}"
    );
    prop_assert_eq!(
        answer.content_type.as_deref(),
        Some("application/json"),
        "{}",
        &what
    );
    let body = answer.body.as_object();
    prop_assert!(
        body.is_some(),
        "the error body is not a JSON object: {what}"
    );
    let body = body.unwrap();
    for field in ["error_type", "error_message", "error_description"] {
        let text = body.get(field).and_then(Value::as_str).unwrap_or_default();
        prop_assert!(!text.trim().is_empty(), "{field} missing or empty: {what}");
    }
    prop_assert_eq!(
        body.get("correlation_id").and_then(Value::as_str),
        Some(correlation_id),
        "{}",
        &what
    );
    Ok(())
}

fn is_flow(body: &Value) -> bool {
    serde_json::from_value::<FlowJson>(body.clone()).is_ok()
}

fn is_flow_ping(body: &Value) -> bool {
    serde_json::from_value::<FlowPingResponse>(body.clone()).is_ok()
}

fn is_history(body: &Value) -> bool {
    serde_json::from_value::<Vec<HistoryEntry>>(body.clone()).is_ok()
}

fn is_links(body: &Value) -> bool {
    serde_json::from_value::<Vec<LinkState>>(body.clone()).is_ok()
}

fn is_swapped_endpoints(body: &Value) -> bool {
    serde_json::from_value::<SwapEndpointsJson>(body.clone()).is_ok()
}

fn is_paths(body: &Value) -> bool {
    serde_json::from_value::<PathsJson>(body.clone()).is_ok()
}

// ---------------------------------------------------------------------------------------------
// What to send

fn create_body(flow_id: &str) -> Value {
    json!({
        "flow_id": flow_id,
        "source": {"switch_id": SwitchId(1).to_string(), "port_number": 40, "vlan_id": 100},
        "destination": {"switch_id": SwitchId(9).to_string(), "port_number": 41, "vlan_id": 0},
        "maximum_bandwidth": 1000,
        "description": "fuzzed flow"
    })
}

/// Two flows exchanging destinations.
fn swap_endpoints_body(first: &str, second: &str) -> Value {
    let end = |switch: u64| json!({"switch_id": SwitchId(switch).to_string(), "port_number": 40});
    json!({
        "first_flow": {"flow_id": first, "source": end(1), "destination": end(9)},
        "second_flow": {"flow_id": second, "source": end(7), "destination": end(3)},
    })
}

/// The field names of an endpoint swap body.
const SWAP_FIELDS: &[&str] = &[
    "first_flow",
    "second_flow",
    "flow_id",
    "source",
    "destination",
    "switch_id",
    "port_number",
    "vlan_id",
];

/// Flow ids: existing ones, new valid ones, and ones that are not valid.
fn flow_id() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EXISTING.to_vec()).prop_map(String::from),
        "[A-Za-z0-9_.:-]{1,24}",
        "\\PC{0,12}",
        "[A-Za-z0-9_.:-]{129,140}",
    ]
}

/// String values a request uses, and near misses of them.
const WORDS: &[&str] = &[
    "00:00:00:00:00:00:00:01",
    "00:00:00:00:00:00:00:05",
    "00:00:00:00:00:00:00:63",
    "00:00:00:00:00:00:00:zz",
    "00:00:00:00:00:00:00:+1",
    "00:00:00:00:00:00:01",
    "flow-1",
    "flow-9",
    "bad id",
    "",
];

/// The field names of a create or update body.
const FIELDS: &[&str] = &[
    "flow_id",
    "source",
    "destination",
    "switch_id",
    "port_number",
    "vlan_id",
    "maximum_bandwidth",
    "description",
];

/// A valid create body (for `flow_id`, or without one), changed by a few JSON-level mutations and then a few
/// byte-level ones; or bytes of any kind.
fn body(flow_id: impl Strategy<Value = Option<String>>) -> impl Strategy<Value = Vec<u8>> {
    let mutated =
        (flow_id, mutations(WORDS, FIELDS, 0..4, 0..3)).prop_map(|(flow_id, mutations)| {
            let mut value = create_body(flow_id.as_deref().unwrap_or_default());
            if flow_id.is_none() {
                value.as_object_mut().unwrap().remove("flow_id");
            }
            mutations.apply(value)
        });
    mostly(mutated)
}

/// Mostly `mutated` bodies; otherwise bytes of any kind, or any JSON.
fn mostly(mutated: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => mutated,
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => any_json_value(WORDS).prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

/// Content types: none, right, wrong, and any text a header can hold.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        4 => prop::sample::select(vec![
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/json; charset=latin1",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "application/octet-stream",
            "application/problem+json",
            "",
            ";",
        ])
        .prop_map(|t| Some(t.to_string())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

/// The `correlation_id` header: none (a new one is made), or any text a header can hold,
/// blank or too long ones included (they are replaced too).
fn correlation_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        2 => "[A-Za-z0-9-]{1,40}".prop_map(Some),
        1 => "[ -~]{0,300}".prop_map(Some),
    ]
}

/// One path segment: a valid flow id, URL-safe text, arbitrary bytes percent-encoded, or
/// broken percent-encoding.
fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(EXISTING.to_vec()).prop_map(String::from),
        2 => "[A-Za-z0-9_.:-]{1,24}",
        2 => "[A-Za-z0-9._~:@!$&'()*+,;=-]{0,40}",
        2 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|bytes| {
            bytes.iter().map(|b| format!("%{b:02X}")).collect::<String>()
        }),
        1 => "[A-Za-z0-9]{0,4}%[0-9A-Za-z%]{0,2}[A-Za-z0-9]{0,4}",
        1 => Just(String::new()),
        1 => prop::sample::select(vec![".", "..", "%2E%2E", "%2F", "a%2Fb", "%00", "%C3%28"])
            .prop_map(String::from),
    ]
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn create_bodies_are_answered_or_explained() {
    let fuzzing = fuzzing();
    let calls = (
        body(flow_id().prop_map(Some)),
        content_type(),
        correlation_id(),
    )
        .prop_map(|(body, content_type, correlation_id)| Call {
            method: "POST",
            uri: "/v2/flows".into(),
            content_type,
            correlation_id,
            body,
        });
    fuzzing.run(calls, is_flow);
}

#[test]
fn endpoint_swap_bodies_are_answered_or_explained() {
    let fuzzing = fuzzing();
    let mutated = (
        flow_id(),
        flow_id(),
        mutations(WORDS, SWAP_FIELDS, 0..4, 0..3),
    )
        .prop_map(|(first, second, mutations)| {
            mutations.apply(swap_endpoints_body(&first, &second))
        });
    let calls = (mostly(mutated), content_type(), correlation_id()).prop_map(
        |(body, content_type, correlation_id)| Call {
            method: "POST",
            uri: "/v2/flows/swap-endpoint".into(),
            content_type,
            correlation_id,
            body,
        },
    );
    fuzzing.run(calls, is_swapped_endpoints);
}

#[test]
fn update_bodies_are_answered_or_explained() {
    let fuzzing = fuzzing();
    // the body names the path's flow, another one, or none
    let calls = (path_segment(), any::<Index>())
        .prop_flat_map(|(segment, choice)| {
            let decoded = String::from_utf8_lossy(&percent_decode(&segment)).into_owned();
            let in_body = match choice.index(3) {
                0 => Just(Some(decoded)).boxed(),
                1 => flow_id().prop_map(Some).boxed(),
                _ => Just(None).boxed(),
            };
            (
                Just(segment),
                body(in_body),
                content_type(),
                correlation_id(),
            )
        })
        .prop_map(|(segment, body, content_type, correlation_id)| Call {
            method: "PUT",
            uri: format!("/v2/flows/{segment}"),
            content_type,
            correlation_id,
            body,
        });
    fuzzing.run(calls, is_flow);
}

/// `method /v2/flows/{segment}{suffix}` with random segments, content types and bodies.
fn fuzz_flow_path(method: &'static str, suffix: &'static str, ok_body: fn(&Value) -> bool) {
    let calls = (
        path_segment(),
        content_type(),
        correlation_id(),
        prop::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(move |(segment, content_type, correlation_id, body)| Call {
            method,
            uri: format!("/v2/flows/{segment}{suffix}"),
            content_type,
            correlation_id,
            body,
        });
    fuzzing().run(calls, ok_body);
}

#[test]
fn flow_reads_are_answered_or_explained() {
    fuzz_flow_path("GET", "", is_flow);
}

#[test]
fn flow_deletes_are_answered_or_explained() {
    fuzz_flow_path("DELETE", "", is_flow);
}

#[test]
fn flow_reroutes_are_answered_or_explained() {
    fuzz_flow_path("POST", "/reroute", is_flow);
}

#[test]
fn flow_swaps_are_answered_or_explained() {
    fuzz_flow_path("PATCH", "/swap", is_flow);
}

#[test]
fn flow_histories_are_answered_or_explained() {
    fuzz_flow_path("GET", "/history", is_history);
}

#[test]
fn flow_pings_are_answered_or_explained() {
    fuzz_flow_path("POST", "/ping", is_flow_ping);
}

/// A switch of the fake topology's grid:3x3 (or one past it), a port number, or any segment.
fn link_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => (1..=10u64).prop_map(|n| SwitchId(n).to_string()),
        2 => (0..6u32).prop_map(|port| port.to_string()),
        1 => path_segment(),
    ]
}

/// A number as a JSON value: in range, negative, huge, or not a number.
fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0..20_000_000u64).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => Just(json!("700")),
        1 => Just(Value::Null),
    ]
}

#[test]
fn link_patches_are_answered_or_explained() {
    let patch = (
        prop::option::of(json_number()),
        prop::option::of(json_number()),
        prop::option::of("[a-z_]{1,12}"),
    )
        .prop_map(|(cost, max_bandwidth, extra)| {
            let mut body = serde_json::Map::new();
            for (name, value) in [("cost", cost), ("max_bandwidth", max_bandwidth)] {
                if let Some(value) = value {
                    body.insert(name.to_string(), value);
                }
            }
            if let Some(extra) = extra {
                body.insert(extra, json!(1));
            }
            serde_json::to_vec(&body).unwrap()
        });
    let body = prop_oneof![
        6 => patch,
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    let segments = (
        link_segment(),
        link_segment(),
        link_segment(),
        link_segment(),
    );
    let calls = (segments, body, content_type(), correlation_id()).prop_map(
        |((a, b, c, d), body, content_type, correlation_id)| Call {
            method: "PATCH",
            uri: format!("/v2/links/{a}/{b}/{c}/{d}"),
            content_type,
            correlation_id,
            body,
        },
    );
    fuzzing().run(calls, is_links);
}

#[test]
fn path_queries_are_answered_or_explained() {
    let value = prop_oneof![
        2 => (1..=10u64).prop_map(|n| SwitchId(n).to_string()),
        2 => prop::sample::select(vec!["COST", "LATENCY", "MAX_LATENCY", "COST_AND_AVAILABLE_BANDWIDTH", "cost"])
            .prop_map(String::from),
        2 => (0..200u64).prop_map(|n| n.to_string()),
        1 => path_segment(),
    ];
    let names = prop::sample::select(vec![
        "src_switch",
        "dst_switch",
        "path_computation_strategy",
        "max_latency",
        "max_latency_tier2",
        "max_path_count",
        "other",
    ]);
    let query = prop::collection::vec((names, value), 0..7).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    let calls = (query, correlation_id()).prop_map(|(query, correlation_id)| Call {
        method: "GET",
        uri: format!("/v2/network/paths?{query}"),
        content_type: None,
        correlation_id,
        body: Vec::new(),
    });
    fuzzing().run(calls, is_paths);
}

/// `%41` → `A`; anything that is not an escape stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Past axum's default body limit (2 MB): still the contract's error body.
#[test]
fn an_oversized_body_is_explained() {
    let fuzzing = fuzzing();
    let mut body = create_body("flow-big");
    body["description"] = Value::from("x".repeat(3 << 20));
    let call = Call {
        method: "POST",
        uri: "/v2/flows".into(),
        content_type: Some("application/json".into()),
        correlation_id: Some("corr-big".into()),
        body: body.to_string().into_bytes(),
    };
    let answer = fuzzing.send(call.clone());
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    check(&call, &answer, is_flow).unwrap();
}
