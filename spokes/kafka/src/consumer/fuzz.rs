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
use hubspoke_mutations::{any_json_value, mutations};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

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
        ..Default::default()
    }
}

fn flow_record(flow_id: &str) -> FlowRecord {
    let mut record = FlowRecord::new(flow_request(flow_id), 1_700_000_000_000);
    record.resources = Some(Resources {
        cookie: 17,
        transit_vlans: vec![2001, 2002],
        forward_meter: Some(33),
        reverse_meter: None,
        forward_path: vec![isl(1, 5, 2, 6), isl(2, 7, 3, 8)],
        protected: None,
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
                    ping_exit: None,
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
                port_numbers: Vec::new(),
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
        port_numbers: Vec::new(),
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

/// String values the messages use (so that a replacement is now and then still a valid
/// message) and near misses of them.
const WORDS: &[&str] = &[
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
];

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
        mutations(WORDS, &[], 0..4, 0..4),
        prop_oneof![
            6 => Just(KeyChoice::Example),
            1 => Just(KeyChoice::Missing),
            1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(KeyChoice::Other),
        ],
    )
        .prop_map(|(example, mutations, key)| {
            let bytes = mutations.apply(serde_json::from_slice(&example).unwrap());
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
        any_json_value(WORDS).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        any_json_value(WORDS).prop_map(|payload| {
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
