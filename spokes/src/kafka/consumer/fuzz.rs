//! Random and mutated bytes for every envelope the consumers decode: [`decode`] never panics,
//! every rejection is a dead letter that says what was wrong and keeps the bytes whole, and
//! whatever still decodes survives encode → decode unchanged.
//!
//! The consumers reach `decode` through `decode_or_dead_letter`, which needs a broker; the
//! tests take the same path without one: decode, then encode the dead letter's envelope as it
//! would go to the errors topic.

use std::fmt::Debug;

use base64::Engine;
use hubspoke_fsm::segments::{FlowSegment, SegmentKind};
use hubspoke_fsm::{
    Envelope, ErrorBody, FlowEndpoint, FlowEvent, FlowRecord, FlowRequest, FlowStatus,
    HistoryEntry, Isl, LinkState, LinkStatus, NbRequest, NbResponse, NetworkState, Resources,
    SbAction, SbCommand, SbErrorCode, SbEvent, SbOutcome, SbResponse, SwitchId, SwitchState,
    SwitchStatus,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{decode, DeadLetter, Decoded};

const CASES: u32 = 256;
const PARTITION: i32 = 3;
const OFFSET: i64 = 42;

// ---------------------------------------------------------------------------------------------
// The checks

/// Decodes `bytes` as a message of `topic` and checks whatever comes out.
fn check<T>(topic: &str, key: Option<&[u8]>, bytes: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    match decode::<T>(topic, PARTITION, OFFSET, key, Some(bytes)) {
        Decoded::Message(envelope) => {
            if let Some(key) = key {
                assert_eq!(
                    envelope.key.as_bytes(),
                    key,
                    "a kept message has the Kafka key"
                );
            }
            let encoded = serde_json::to_vec(&envelope).expect("a decoded envelope encodes");
            let again = decode::<T>(
                topic,
                PARTITION,
                OFFSET,
                Some(envelope.key.as_bytes()),
                Some(&encoded),
            );
            assert_eq!(
                again,
                Decoded::Message(envelope),
                "decode → encode → decode changed the message; input {:?}, encoded {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&encoded)
            );
        }
        Decoded::Rejected(letter) => check_dead_letter(&letter, topic, key, bytes),
    }
}

/// A rejection says what was wrong in words a person can read (and a log line can hold), and
/// keeps where the message was and its bytes exactly.
fn check_dead_letter(letter: &DeadLetter, topic: &str, key: Option<&[u8]>, bytes: &[u8]) {
    let reason = &letter.reason;
    assert!(!reason.trim().is_empty(), "empty reason for {bytes:?}");
    assert!(
        !reason.chars().any(char::is_control),
        "the reason has control characters (a forged log line): {reason:?}"
    );
    let serde_message = reason.strip_prefix(&format!("not a valid {topic} envelope: "));
    let explained = if bytes.is_empty() {
        reason == "empty message"
    } else if let Some(message) = serde_message {
        !message.trim().is_empty()
    } else {
        reason.starts_with("Kafka key ") && reason.contains("differs from the envelope key")
    };
    assert!(explained, "unexplained rejection of {bytes:?}: {reason:?}");

    assert_eq!(
        (letter.topic.as_str(), letter.partition, letter.offset),
        (topic, PARTITION, OFFSET)
    );
    let key_text = key.map(|k| String::from_utf8_lossy(k).into_owned());
    assert_eq!(letter.key, key_text);
    let original = base64::engine::general_purpose::STANDARD
        .decode(&letter.original_base64)
        .expect("the original is valid base64");
    assert_eq!(original, bytes, "the dead letter keeps the bytes whole");
    assert_eq!(
        letter.original_text.as_deref(),
        std::str::from_utf8(bytes).ok()
    );

    // What decode_or_dead_letter sends to the errors topic, read back as a consumer of it would.
    let envelope = letter.clone().envelope(7);
    let encoded = serde_json::to_vec(&envelope).expect("a dead letter encodes");
    assert_eq!(
        decode::<DeadLetter>(
            "hubspoke.errors",
            0,
            0,
            Some(envelope.key.as_bytes()),
            Some(&encoded)
        ),
        Decoded::Message(envelope)
    );
}

// ---------------------------------------------------------------------------------------------
// Realistic messages, one or more per payload type

fn switch(n: u64) -> SwitchId {
    SwitchId(n)
}

fn isl(src: u64, src_port: u32, dst: u64, dst_port: u32) -> Isl {
    Isl {
        src_switch: switch(src),
        src_port,
        dst_switch: switch(dst),
        dst_port,
    }
}

fn flow_request(flow_id: &str) -> FlowRequest {
    FlowRequest {
        flow_id: flow_id.into(),
        source: FlowEndpoint {
            switch_id: switch(1),
            port_number: 10,
            vlan_id: 100,
        },
        destination: FlowEndpoint {
            switch_id: switch(3),
            port_number: 11,
            vlan_id: 0,
        },
        maximum_bandwidth: 10_000,
        description: "customer A to B".into(),
    }
}

fn flow_record(flow_id: &str) -> FlowRecord {
    let mut record = FlowRecord::new(flow_request(flow_id), 1_700_000_000_000);
    record.resources = Some(Resources {
        cookie: 17,
        transit_vlan: 2001,
        forward_meter: Some(33),
        reverse_meter: None,
        forward_path: vec![isl(1, 5, 2, 6), isl(2, 7, 3, 8)],
    });
    record.changed(1_700_000_000_250, |r| {
        r.status = FlowStatus::Degraded;
        r.status_info = Some("one ISL is down".into());
    })
}

fn segment() -> FlowSegment {
    FlowSegment {
        switch_id: switch(2),
        kind: SegmentKind::Ingress,
        cookie: 0x4000_0000_0000_0011,
        in_port: 10,
        in_vlan: 100,
        out_port: 5,
        out_vlan: 2001,
        meter_id: Some(33),
        bandwidth: 10_000,
    }
}

fn envelope<P: Serialize>(key: &str, payload: P) -> Vec<u8> {
    let mut envelope = Envelope::new("corr-7f3a", key, 1_700_000_000_000, payload);
    envelope.deadline_ms = Some(1_700_000_010_000);
    serde_json::to_vec(&envelope).unwrap()
}

fn nb_requests() -> Vec<Vec<u8>> {
    vec![
        envelope(
            "flow-1",
            NbRequest::CreateFlow {
                flow: flow_request("flow-1"),
            },
        ),
        envelope(
            "flow-1",
            NbRequest::UpdateFlow {
                flow: flow_request("flow-1"),
            },
        ),
        envelope(
            "flow-1",
            NbRequest::RerouteFlow {
                flow_id: "flow-1".into(),
            },
        ),
        envelope(
            "flow-1",
            NbRequest::SyncFlow {
                flow_id: "flow-1".into(),
            },
        ),
        envelope(
            "flow-1",
            NbRequest::DeleteFlow {
                flow_id: "flow-1".into(),
            },
        ),
    ]
}

fn sb_commands() -> Vec<Vec<u8>> {
    [SbAction::Install, SbAction::Remove, SbAction::Verify]
        .into_iter()
        .map(|action| {
            envelope(
                "flow-1",
                SbCommand {
                    command_id: "flow-1:3:2".into(),
                    attempt: 2,
                    action,
                    segment: segment(),
                },
            )
        })
        .collect()
}

fn sb_responses() -> Vec<Vec<u8>> {
    let response = |outcome| SbResponse {
        command_id: "flow-1:3:2".into(),
        attempt: 2,
        switch_id: switch(2),
        outcome,
    };
    vec![
        envelope("flow-1", response(SbOutcome::Success)),
        envelope(
            "flow-1",
            response(SbOutcome::Error {
                code: SbErrorCode::TableFull,
                message: "flow table 0 is full".into(),
            }),
        ),
    ]
}

fn sb_events() -> Vec<Vec<u8>> {
    let key = switch(1).to_string();
    vec![
        envelope(
            &key,
            SbEvent::SwitchAdded {
                switch_id: switch(1),
                ports: 48,
            },
        ),
        envelope(
            &key,
            SbEvent::SwitchRemoved {
                switch_id: switch(1),
            },
        ),
        envelope(
            &key,
            SbEvent::IslUp {
                isl: isl(1, 5, 2, 6),
                capacity: 10_000_000,
            },
        ),
        envelope(
            &key,
            SbEvent::IslDown {
                isl: isl(1, 5, 2, 6),
            },
        ),
    ]
}

fn flow_events() -> Vec<Vec<u8>> {
    vec![
        envelope(
            "flow-1",
            FlowEvent::Updated {
                flow: flow_record("flow-1"),
            },
        ),
        envelope(
            "flow-1",
            FlowEvent::Removed {
                flow_id: "flow-1".into(),
                version: 4,
            },
        ),
        envelope(
            "flow-1",
            FlowEvent::History {
                flow_id: "flow-1".into(),
                entry: HistoryEntry {
                    timestamp_ms: 1_700_000_000_100,
                    operation: "create".into(),
                    event: "allocated".into(),
                    from_state: "Validating".into(),
                    to_state: "InstallingNonIngress".into(),
                    details: "path 1 → 2 → 3".into(),
                    correlation_id: "corr-7f3a".into(),
                },
            },
        ),
        envelope(
            "flow-1",
            FlowEvent::Answered {
                response: NbResponse::Flow {
                    flow: flow_record("flow-1"),
                },
            },
        ),
    ]
}

fn nb_responses() -> Vec<Vec<u8>> {
    vec![
        envelope(
            "flow-1",
            NbResponse::Flow {
                flow: flow_record("flow-1"),
            },
        ),
        envelope(
            "flow-1",
            NbResponse::Error {
                error: ErrorBody::new(
                    404,
                    "not-found",
                    "Switch not found",
                    "switch 00:00:00:00:00:00:00:09 is not in the network",
                ),
            },
        ),
    ]
}

fn network_states() -> Vec<Vec<u8>> {
    let switch_state = NetworkState::Switch(SwitchState {
        switch_id: switch(2),
        ports: 48,
        state: SwitchStatus::Active,
    });
    let link_state = NetworkState::Link(LinkState {
        src_switch: switch(1),
        src_port: 5,
        dst_switch: switch(2),
        dst_port: 6,
        state: LinkStatus::Up,
        capacity: 10_000_000,
        max_bandwidth: 10_000_000,
        available_bandwidth: 9_990_000,
    });
    vec![
        envelope(&switch_state.key(), switch_state),
        envelope(&link_state.key(), link_state),
    ]
}

fn dead_letters() -> Vec<Vec<u8>> {
    let letter = DeadLetter {
        reason: "not a valid hubspoke.nb.requests envelope: EOF while parsing".into(),
        topic: "hubspoke.nb.requests".into(),
        partition: 1,
        offset: 99,
        key: Some("flow-1".into()),
        original_base64: base64::engine::general_purpose::STANDARD.encode(b"{\"corr"),
        original_text: Some("{\"corr".into()),
    };
    vec![serde_json::to_vec(&letter.envelope(1_700_000_000_000)).unwrap()]
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// A JSON value of any type, with the strings the messages use (so that a replacement is now
/// and then still a valid message) and strings that are not.
fn any_json_value() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "create_flow",
        "update_flow",
        "reroute_flow",
        "sync_flow",
        "delete_flow",
        "install",
        "remove",
        "verify",
        "success",
        "error",
        "TABLE_FULL",
        "BAD_COMMAND",
        "switch_added",
        "isl_up",
        "updated",
        "removed",
        "history",
        "answered",
        "switch",
        "link",
        "UP",
        "DOWN",
        "ACTIVE",
        "IN_PROGRESS",
        "ingress",
        "one_switch",
        "flow",
        "00:00:00:00:00:00:00:01",
        "00:00:00:00:00:00:00:zz",
        "00:00:00:00:00:00:00:+1",
        "flow-1",
        "",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        words.prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z_]{0,12}\\PC{0,3}".prop_map(Value::from),
        // a near miss with a control character in it
        "[a-z_]{0,8}[\\x00-\\x1f\\x7f][a-z_]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Clone, Debug)]
enum JsonMutation {
    /// The node becomes another value, usually of another type.
    Replace(Index, Value),
    /// A field of the object at the node goes missing.
    Drop(Index, Index),
    /// The object at the node gains a field (maybe one it already has, overwritten).
    Add(Index, String, Value),
}

#[derive(Clone, Debug)]
enum ByteMutation {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    /// The same bytes twice: a duplicated key, a duplicated value, two documents.
    Duplicate(Index, Index),
}

fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        3 => (any::<Index>(), any_json_value()).prop_map(|(at, v)| JsonMutation::Replace(at, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, f)| JsonMutation::Drop(at, f)),
        1 => (any::<Index>(), "[a-z_]{1,16}", any_json_value())
            .prop_map(|(at, k, v)| JsonMutation::Add(at, k, v)),
    ]
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| ByteMutation::Flip(at, mask)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, b)| ByteMutation::Insert(at, b)),
        any::<Index>().prop_map(ByteMutation::Delete),
        any::<Index>().prop_map(ByteMutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| ByteMutation::Duplicate(a, b)),
    ]
}

/// JSON pointers to every node of `value`, the root first.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            out.push(at.clone());
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            out.push(at.clone());
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

fn mutate_json(value: &mut Value, mutation: &JsonMutation) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    let node = |at: &Index| all[at.index(all.len())].clone();
    match mutation {
        JsonMutation::Replace(at, replacement) => {
            if let Some(target) = value.pointer_mut(&node(at)) {
                *target = replacement.clone();
            }
        }
        JsonMutation::Drop(at, field) => {
            if let Some(Value::Object(map)) = value.pointer_mut(&node(at)) {
                if !map.is_empty() {
                    let key = map.keys().nth(field.index(map.len())).unwrap().clone();
                    map.remove(&key);
                }
            }
        }
        JsonMutation::Add(at, key, added) => {
            if let Some(Value::Object(map)) = value.pointer_mut(&node(at)) {
                map.insert(key.clone(), added.clone());
            }
        }
    }
}

fn mutate_bytes(bytes: &mut Vec<u8>, mutation: &ByteMutation) {
    let len = bytes.len();
    match mutation {
        ByteMutation::Flip(at, mask) if len > 0 => bytes[at.index(len)] ^= mask,
        ByteMutation::Insert(at, byte) => bytes.insert(at.index(len + 1), *byte),
        ByteMutation::Delete(at) if len > 0 => {
            bytes.remove(at.index(len));
        }
        ByteMutation::Truncate(at) => bytes.truncate(at.index(len + 1)),
        ByteMutation::Duplicate(a, b) if len > 0 => {
            let (a, b) = (a.index(len), b.index(len));
            let (start, end) = (a.min(b), a.max(b) + 1);
            let copy = bytes[start..end].to_vec();
            bytes.splice(end..end, copy);
        }
        _ => {}
    }
}

/// The key of an example envelope.
fn key_of(example: &[u8]) -> Vec<u8> {
    let value: Value = serde_json::from_slice(example).unwrap();
    value["key"].as_str().unwrap().as_bytes().to_vec()
}

/// A valid example, changed by a few JSON-level mutations and then a few byte-level ones,
/// with the Kafka key it went out with: mostly the example's, sometimes none or another.
fn mutated(examples: Vec<Vec<u8>>) -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    (
        prop::sample::select(examples),
        prop::collection::vec(json_mutation(), 0..4),
        prop::collection::vec(byte_mutation(), 0..4),
        prop_oneof![
            6 => Just(KeyChoice::Example),
            1 => Just(KeyChoice::Missing),
            1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(KeyChoice::Other),
        ],
    )
        .prop_map(|(example, json_mutations, byte_mutations, key)| {
            let mut value: Value = serde_json::from_slice(&example).unwrap();
            for mutation in &json_mutations {
                mutate_json(&mut value, mutation);
            }
            let mut bytes = serde_json::to_vec(&value).unwrap();
            for mutation in &byte_mutations {
                mutate_bytes(&mut bytes, mutation);
            }
            let key = match key {
                KeyChoice::Example => Some(key_of(&example)),
                KeyChoice::Missing => None,
                KeyChoice::Other(other) => Some(other),
            };
            (bytes, key)
        })
}

#[derive(Clone, Debug)]
enum KeyChoice {
    Example,
    Missing,
    Other(Vec<u8>),
}

/// Anything at all, and text that looks like JSON.
fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        "[{}\\[\\]\":,.0-9a-z_ \\\\-]{0,200}".prop_map(String::into_bytes),
        any_json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        any_json_value().prop_map(|payload| {
            serde_json::to_vec(&json!({
                "correlation_id": "c", "key": "k", "created_at_ms": 1, "payload": payload
            }))
            .unwrap()
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// One pair of properties per envelope type

macro_rules! fuzz_envelope {
    ($name:ident, $payload:ty, $topic:literal, $examples:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn the_examples_decode() {
                for example in $examples {
                    let key = key_of(&example);
                    assert!(matches!(
                        decode::<$payload>($topic, 0, 0, Some(&key), Some(&example)),
                        Decoded::Message(_)
                    ));
                }
            }

            proptest! {
                #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

                #[test]
                fn arbitrary_bytes_are_explained(
                    bytes in arbitrary_bytes(),
                    key in prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
                ) {
                    check::<$payload>($topic, key.as_deref(), &bytes);
                }

                #[test]
                fn mutated_messages_are_explained_or_round_trip(
                    (bytes, key) in mutated($examples),
                ) {
                    check::<$payload>($topic, key.as_deref(), &bytes);
                }
            }
        }
    };
}

fuzz_envelope!(nb_request, NbRequest, "hubspoke.nb.requests", nb_requests());
fuzz_envelope!(sb_command, SbCommand, "hubspoke.sb.commands", sb_commands());
fuzz_envelope!(
    sb_response,
    SbResponse,
    "hubspoke.sb.responses",
    sb_responses()
);
fuzz_envelope!(sb_event, SbEvent, "hubspoke.sb.events", sb_events());
fuzz_envelope!(flow_event, FlowEvent, "hubspoke.flow.events", flow_events());
fuzz_envelope!(
    nb_response,
    NbResponse,
    "hubspoke.nb.responses",
    nb_responses()
);
fuzz_envelope!(
    network_state,
    NetworkState,
    "hubspoke.network",
    network_states()
);
fuzz_envelope!(dead_letter, DeadLetter, "hubspoke.errors", dead_letters());
