//! One switch's session, driven as a switch would: the handshake, commands answered by
//! barrier, error, or multipart replies, keepalive, and what a broken switch sends.

use std::collections::BTreeMap;

use hubspoke_fsm::segments::SegmentKind;
use hubspoke_fsm::{Envelope, SbAction, SbCommand, SbErrorCode, SbOutcome, SwitchId};
use hubspoke_openflow::consts::*;
use hubspoke_openflow::{
    ErrorMessage, FlowStats, Frame, FrameReader, Match, Message, MeterBand, MeterConfig,
    MultipartReply, MultipartReplyBody, MultipartRequestBody, Oxm, PacketIn, Port, PortName,
    PortStatus, SwitchFeatures,
};
use proptest::prelude::*;

use super::segment;
use crate::session::{Output, PortState, Session, SessionSettings};
use crate::OpenFlowRule;

const SWITCH: SwitchId = SwitchId(2);

fn port(port_no: u32, speed: u32) -> Port {
    Port {
        port_no,
        name: PortName::new(&format!("s2-p{port_no}")),
        state: OFPPS_LIVE,
        curr_speed: speed,
        ..Port::default()
    }
}

fn sent(out: &[Output]) -> Vec<Frame> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn answers(out: &[Output]) -> Vec<SbOutcome> {
    out.iter()
        .filter_map(|o| match o {
            Output::Answer { outcome, .. } => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

/// A session through its handshake with ports 10, 11 (and the bridge's LOCAL port).
fn connected() -> Session {
    let (mut session, out) = Session::start(SessionSettings::default(), 0);
    let opening: Vec<Message> = sent(&out).into_iter().map(|f| f.message).collect();
    assert_eq!(opening, vec![Message::Hello, Message::FeaturesRequest]);
    assert!(session
        .receive(1, Frame::new(100, Message::Hello))
        .is_empty());
    let features = SwitchFeatures {
        datapath_id: SWITCH.0,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0,
    };
    let out = session.receive(1, Frame::new(2, Message::FeaturesReply(features)));
    let [ports_request] = sent(&out).try_into().expect("one request");
    assert!(matches!(
        ports_request.message,
        Message::MultipartRequest(ref r) if r.body == MultipartRequestBody::PortDesc
    ));
    let reply = |flags, ports| {
        Frame::new(
            ports_request.xid,
            Message::MultipartReply(MultipartReply {
                flags,
                body: MultipartReplyBody::PortDesc(ports),
            }),
        )
    };
    assert!(session
        .receive(2, reply(OFPMPF_REPLY_MORE, vec![port(10, 0)]))
        .is_empty());
    let out = session.receive(2, reply(0, vec![port(11, 1_000_000), port(OFPP_LOCAL, 0)]));
    let rules = sent(&out);
    assert_eq!(rules.len(), 3, "two system rules and a barrier: {rules:?}");
    assert!(
        !session.is_ready(),
        "ready only once the system rules are in"
    );
    let barrier = rules[2].xid;
    let out = session.receive(3, Frame::new(barrier, Message::BarrierReply));
    let expected: BTreeMap<u32, PortState> = [
        (
            10,
            PortState {
                up: true,
                speed_kbps: 0,
            },
        ),
        (
            11,
            PortState {
                up: true,
                speed_kbps: 1_000_000,
            },
        ),
    ]
    .into();
    assert_eq!(
        out,
        vec![Output::Connected {
            switch_id: SWITCH,
            ports: expected
        }]
    );
    session
}

fn command(action: SbAction, meter: Option<u32>) -> Envelope<SbCommand> {
    Envelope::new(
        "corr",
        "flow-1",
        0,
        SbCommand {
            command_id: format!("flow-1:{action:?}"),
            attempt: 1,
            action,
            segment: segment(SegmentKind::Ingress, 0, 300, meter),
            ping_exit: None,
        },
    )
}

fn error(err_type: u16, code: u16) -> Message {
    Message::Error(ErrorMessage {
        err_type,
        code,
        data: vec![],
    })
}

#[test]
fn an_install_is_answered_by_its_barrier() {
    let mut session = connected();
    let out = session.command(10, command(SbAction::Install, Some(32)));
    let frames = sent(&out);
    let kinds: Vec<u8> = frames.iter().map(|f| f.message.msg_type()).collect();
    assert_eq!(
        kinds,
        vec![OFPT_METER_MOD, OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST]
    );
    assert_eq!(session.in_flight(), 1);
    let out = session.receive(11, Frame::new(frames[2].xid, Message::BarrierReply));
    assert_eq!(answers(&out), vec![SbOutcome::Success]);
    assert_eq!(session.in_flight(), 0);
}

#[test]
fn a_refusal_answers_with_its_code_when_the_barrier_comes_back() {
    let mut session = connected();
    let frames = sent(&session.command(10, command(SbAction::Install, Some(32))));
    let refused = Frame::new(
        frames[0].xid,
        error(OFPET_METER_MOD_FAILED, OFPMMFC_OUT_OF_METERS),
    );
    assert!(session.receive(11, refused).is_empty());
    let out = session.receive(12, Frame::new(frames[2].xid, Message::BarrierReply));
    let [SbOutcome::Error { code, .. }] = answers(&out)[..] else {
        panic!("a refusal is one error: {out:?}");
    };
    assert_eq!(code, SbErrorCode::TableFull);
}

#[test]
fn a_meter_that_exists_is_modified_and_the_install_goes_on() {
    let mut session = connected();
    let frames = sent(&session.command(10, command(SbAction::Install, Some(32))));
    let exists = Frame::new(
        frames[0].xid,
        error(OFPET_METER_MOD_FAILED, OFPMMFC_METER_EXISTS),
    );
    let again = sent(&session.receive(11, exists));
    assert!(matches!(
        &again[0].message,
        Message::MeterMod(m) if m.command == hubspoke_openflow::MeterModCommand::Modify
            && m.meter_id == 32
    ));
    assert_eq!(again[1].message, Message::BarrierRequest);
    // The first barrier answers nothing now; the second one answers the install.
    let first = session.receive(12, Frame::new(frames[2].xid, Message::BarrierReply));
    assert!(first.is_empty(), "{first:?}");
    let out = session.receive(13, Frame::new(again[1].xid, Message::BarrierReply));
    assert_eq!(answers(&out), vec![SbOutcome::Success]);
}

#[test]
fn a_verify_joins_the_parts_of_its_reply() {
    let mut session = connected();
    let verify = command(SbAction::Verify, None);
    let frames = sent(&session.command(10, verify.clone()));
    let rule = crate::rule_of(&verify.payload.segment).unwrap();
    let stats = FlowStats {
        table_id: 0,
        duration_sec: 0,
        duration_nsec: 0,
        priority: crate::PRIORITY,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        cookie: rule.cookie,
        packet_count: 0,
        byte_count: 0,
        matching: rule.matching(),
        instructions: rule.instructions(),
    };
    let part = |flags, entries| {
        Frame::new(
            frames[0].xid,
            Message::MultipartReply(MultipartReply {
                flags,
                body: MultipartReplyBody::Flow(entries),
            }),
        )
    };
    assert!(session
        .receive(11, part(OFPMPF_REPLY_MORE, vec![]))
        .is_empty());
    let out = session.receive(12, part(0, vec![stats]));
    assert_eq!(answers(&out), vec![SbOutcome::Success]);
}

#[test]
fn a_dump_waits_for_the_flows_and_the_meters() {
    let mut session = connected();
    let query = Envelope::new(
        "corr",
        "switch",
        0,
        SbCommand {
            command_id: "dump".into(),
            attempt: 1,
            action: SbAction::Dump,
            segment: hubspoke_fsm::segments::FlowSegment::dump_query(SWITCH, 0),
            ping_exit: None,
        },
    );
    let frames = sent(&session.command(10, query));
    assert_eq!(frames.len(), 2);
    let meters = Frame::new(
        frames[1].xid,
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::MeterConfig(vec![MeterConfig {
                flags: OFPMF_KBPS,
                meter_id: 5,
                bands: vec![MeterBand::Drop {
                    rate: 700,
                    burst_size: 700,
                }],
            }]),
        }),
    );
    assert!(session.receive(11, meters).is_empty());
    let flows = Frame::new(
        frames[0].xid,
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Flow(vec![]),
        }),
    );
    let out = session.receive(12, flows);
    assert_eq!(
        answers(&out),
        vec![SbOutcome::Rules {
            rules: vec![],
            meters: vec![hubspoke_fsm::MeterEntry {
                meter_id: 5,
                rate_kbps: 700
            }]
        }]
    );
}

#[test]
fn a_port_the_switch_does_not_have_is_a_bad_command_and_nothing_is_sent() {
    let mut session = connected();
    let mut install = command(SbAction::Install, None);
    install.payload.segment.out_port = 99;
    let out = session.command(10, install);
    assert!(sent(&out).is_empty());
    let [SbOutcome::Error { code, message }] = &answers(&out)[..] else {
        panic!("one error: {out:?}");
    };
    assert_eq!(*code, SbErrorCode::BadCommand);
    assert!(message.contains("port 99"), "{message}");
}

#[test]
fn commands_for_another_switch_or_before_the_handshake_are_unavailable() {
    let (mut session, _) = Session::start(SessionSettings::default(), 0);
    let out = session.command(0, command(SbAction::Install, None));
    assert!(matches!(
        answers(&out)[..],
        [SbOutcome::Error {
            code: SbErrorCode::SwitchUnavailable,
            ..
        }]
    ));
    let mut session = connected();
    let mut elsewhere = command(SbAction::Remove, None);
    elsewhere.payload.segment.switch_id = SwitchId(3);
    assert!(sent(&session.command(0, elsewhere)).is_empty());
}

#[test]
fn closing_answers_everything_in_flight_as_unavailable() {
    let mut session = connected();
    session.command(10, command(SbAction::Install, None));
    session.command(10, command(SbAction::Verify, None));
    let out = session.close("reset by peer".into());
    let codes: Vec<SbErrorCode> = answers(&out)
        .into_iter()
        .filter_map(|a| match a {
            SbOutcome::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![SbErrorCode::SwitchUnavailable; 2]);
    assert!(matches!(out.last(), Some(Output::Close(_))));
}

#[test]
fn a_silent_switch_is_asked_then_closed_and_a_forgotten_command_times_out() {
    let settings = SessionSettings {
        echo_interval_ms: 100,
        command_timeout_ms: 250,
    };
    let (mut session, _) = Session::start(settings, 0);
    assert!(session.tick(50).is_empty());
    let echo = sent(&session.tick(150));
    assert!(matches!(
        echo[..],
        [Frame {
            message: Message::EchoRequest(_),
            ..
        }]
    ));
    assert!(session.tick(200).is_empty(), "one echo per silence");
    assert!(matches!(session.tick(301).last(), Some(Output::Close(_))));

    let mut session = connected();
    session.command(10, command(SbAction::Verify, None));
    // The switch keeps answering echoes, but never this command.
    session.receive(29_000, Frame::new(9, Message::EchoReply(vec![])));
    let out = session.tick(30_011);
    assert!(matches!(
        answers(&out)[..],
        [SbOutcome::Error {
            code: SbErrorCode::Unknown,
            ..
        }]
    ));
}

#[test]
fn ticked_as_it_asks_a_silent_switch_is_asked_for_an_echo_before_it_is_closed() {
    for echo_interval_ms in [1, 3, 100, 1_000, 5_000, 60_000] {
        let settings = SessionSettings {
            echo_interval_ms,
            ..SessionSettings::default()
        };
        let every = settings.tick_interval_ms();
        assert!((1..=500).contains(&every), "{every}");
        let (mut session, _) = Session::start(settings, 0);
        let mut asked = false;
        let closed_at = (1..)
            .map(|n| n * every)
            .find(|&now| {
                let out = session.tick(now);
                asked |= !sent(&out).is_empty();
                matches!(out.last(), Some(Output::Close(_)))
            })
            .expect("closed at last");
        assert!(asked, "interval {echo_interval_ms}: closed unasked");
        assert!(
            closed_at <= 3 * echo_interval_ms + every,
            "interval {echo_interval_ms}: closed at {closed_at}"
        );
    }
}

#[test]
fn a_port_change_reported_twice_is_one_change() {
    let mut session = connected();
    let mut down = port(10, 0);
    down.config = OFPPC_PORT_DOWN;
    let status = |desc: Port| {
        Frame::new(
            0,
            Message::PortStatus(PortStatus {
                reason: OFPPR_MODIFY,
                desc,
            }),
        )
    };
    let out = session.receive(1, status(down.clone()));
    assert_eq!(
        out,
        vec![Output::PortChanged {
            port: 10,
            state: Some(PortState {
                up: false,
                speed_kbps: 0
            })
        }]
    );
    down.state = OFPPS_LINK_DOWN;
    assert!(session.receive(2, status(down)).is_empty());
}

#[test]
fn what_a_broken_switch_sends_is_ignored_with_a_reason() {
    let mut session = connected();
    let unknown_xid = session.receive(1, Frame::new(777, Message::BarrierReply));
    assert!(matches!(unknown_xid[..], [Output::Ignored(_)]));
    let unknown_error = session.receive(1, Frame::new(778, error(OFPET_BAD_REQUEST, 1)));
    assert!(matches!(unknown_error[..], [Output::Ignored(_)]));
    let packet = |port| {
        Frame::new(
            0,
            Message::PacketIn(PacketIn {
                buffer_id: OFP_NO_BUFFER,
                total_len: 3,
                reason: 1,
                table_id: 0,
                cookie: 0,
                matching: Match::new(vec![Oxm::InPort(port)]),
                data: vec![1, 2, 3],
            }),
        )
    };
    assert!(matches!(
        session.receive(1, packet(42))[..],
        [Output::Ignored(_)]
    ));
    assert_eq!(
        session.receive(1, packet(10)),
        vec![Output::PacketIn {
            in_port: 10,
            data: vec![1, 2, 3]
        }]
    );
}

proptest! {
    /// Whatever bytes a switch sends, in whatever pieces, and whatever commands are in flight,
    /// the session never panics, and every command is answered once it closes.
    #[test]
    fn garbage_from_a_switch_never_panics_and_loses_no_command(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16),
        xids in proptest::collection::vec(0u32..16, 0..16),
    ) {
        let mut session = connected();
        let mut reader = FrameReader::new();
        let mut answered = 0;
        let mut commands = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            if i % 3 == 0 {
                commands += 1;
                answered += answers(&session.command(10, command(SbAction::Install, Some(32)))).len();
            }
            let mut bytes = chunk.clone();
            // A header that is an OpenFlow 1.3 message with one of the xids in flight, now and then.
            if let Some(&xid) = xids.get(i) {
                let mut header = vec![4, [OFPT_BARRIER_REPLY, OFPT_ERROR, OFPT_MULTIPART_REPLY][i % 3], 0, 8];
                header.extend_from_slice(&xid.to_be_bytes());
                bytes.splice(0..0, header);
            }
            reader.push(&bytes);
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        answered += answers(&session.receive(i as u64, frame)).len();
                    }
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => break,
                    Err(_) => {}
                }
            }
        }
        answered += answers(&session.close("test over".into())).len();
        prop_assert_eq!(answered, commands);
    }
}
