//! Commands on a connected switch: what goes on the wire, and how the switch's answers (a
//! barrier reply, an error, an answer to nothing sent) become the command's answer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hubspoke_fsm::{SbErrorCode, SbOutcome};
use hubspoke_openflow::consts::{OFPET_FLOW_MOD_FAILED, OFPFMFC_TABLE_FULL, OFPP_LOCAL};
use hubspoke_openflow::{encode, ErrorMessage, Frame, Message, MultipartReply, MultipartReplyBody};

use crate::support::{install, port, ports, segment, Harness};

/// The switch's refusal of `refused` (its data: the start of the refused message).
fn table_full(refused: &Frame) -> Message {
    let bytes = encode(refused).expect("the refused message encodes");
    Message::Error(ErrorMessage {
        err_type: OFPET_FLOW_MOD_FAILED,
        code: OFPFMFC_TABLE_FULL,
        data: bytes[..bytes.len().min(64)].to_vec(),
    })
}

#[test]
fn a_switch_connects_and_its_commands_are_answered_by_barrier_or_error() {
    let h = Harness::start();
    // Ports with a gap, and the bridge's LOCAL port, which is no switch port: the highest is 5.
    let mut with_local = ports(&[1, 2, 5]);
    with_local.push(port(OFPP_LOCAL));
    let mut switch = h.connect(1, &with_local);

    let first = install("first", segment(1, 1, 2));
    let frames = h.send_install(&mut switch, &first);
    assert!(matches!(frames[0].message, Message::MeterMod(_)));
    assert!(matches!(frames[1].message, Message::FlowMod(_)));
    let xids: BTreeSet<u32> = frames.iter().map(|f| f.xid).collect();
    assert_eq!(xids.len(), 3, "one xid a message: {frames:?}");
    // Only the barrier's reply answers it.
    h.no_answer();
    switch.send(frames[2].xid, Message::BarrierReply);
    h.expect_answer(&first, &SbOutcome::Success);

    // A refused FLOW_MOD: the answer waits for the barrier behind it, and is the refusal.
    let second = install("second", segment(1, 2, 5));
    let frames = h.send_install(&mut switch, &second);
    switch.send(frames[1].xid, table_full(&frames[1]));
    switch.send(frames[2].xid, Message::BarrierReply);
    let message = h.expect_error(&second, SbErrorCode::TableFull);
    assert!(message.contains("OFPT_ERROR"), "{message}");
    h.no_answer();
    h.no_event();
}

#[test]
fn a_command_to_a_switch_not_connected_is_answered_at_once() {
    let h = Harness::start();
    let _other = h.connect(1, &ports(&[1, 2]));
    let command = install("nowhere", segment(2, 1, 2));
    let sent = Instant::now();
    h.send(&command);
    let message = h.expect_error(&command, SbErrorCode::SwitchUnavailable);
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "{:?}",
        sent.elapsed()
    );
    assert!(message.contains("not connected"), "{message}");
}

#[test]
fn answers_to_nothing_sent_change_nothing() {
    let h = Harness::start();
    let mut switch = h.connect(1, &ports(&[1, 2]));
    let done = install("done", segment(1, 1, 2));
    let frames = h.send_install(&mut switch, &done);
    switch.send(frames[2].xid, Message::BarrierReply);
    h.expect_answer(&done, &SbOutcome::Success);

    // A late refusal of a command answered already, and replies to xids never sent.
    switch.send(frames[1].xid, table_full(&frames[1]));
    switch.send(frames[2].xid, Message::BarrierReply);
    switch.send(0x7777_0000, Message::BarrierReply);
    switch.send(0x7777_0001, table_full(&frames[1]));
    switch.send(
        0x7777_0002,
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Flow(vec![]),
        }),
    );
    // The connection stays, and the next command is answered as its own barrier says: the
    // stray refusal above does not make it TABLE_FULL.
    h.install_succeeds(&mut switch, &install("next", segment(1, 2, 1)));
    h.no_answer();
    h.no_event();
}

#[test]
fn an_install_on_a_port_the_switch_never_reported_is_refused_and_not_sent() {
    let h = Harness::start();
    let mut switch = h.connect(1, &ports(&[1, 2]));
    for (id, in_port, out_port, unknown) in [("bad-in", 7, 2, 7), ("bad-out", 1, 9, 9)] {
        let command = install(id, segment(1, in_port, out_port));
        h.send(&command);
        let message = h.expect_error(&command, SbErrorCode::BadCommand);
        assert!(message.contains(&format!("port {unknown} ")), "{message}");
    }
    // The switch's next messages are the next command's: nothing went out for those two.
    h.install_succeeds(&mut switch, &install("good", segment(1, 1, 2)));
}
