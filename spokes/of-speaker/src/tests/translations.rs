//! The fields that matter of each message, per kind.

use hubspoke_fsm::segments::SegmentKind::*;
use hubspoke_fsm::SbErrorCode;
use hubspoke_openflow::consts::*;
use hubspoke_openflow::{
    encode, Action, FlowModCommand, Frame, Instruction, Match, Message, MeterBand, MeterModCommand,
    MultipartRequestBody, Oxm,
};

use super::{every_kind, flow_mods, segment};
use crate::{dump_request, install, remove, verify_request, TranslateError, PRIORITY};

fn apply_actions(instructions: &[Instruction]) -> Vec<Action> {
    instructions
        .iter()
        .find_map(|i| match i {
            Instruction::ApplyActions(actions) => Some(actions.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn output(port: u32) -> Action {
    Action::Output { port, max_len: 0 }
}

#[test]
fn a_metered_ingress_adds_its_meter_then_its_rule_then_a_barrier() {
    let ingress = segment(Ingress, 0, 300, Some(32));
    let messages = install(&ingress).unwrap();
    let [Message::MeterMod(meter), Message::FlowMod(flow), Message::BarrierRequest] =
        messages.as_slice()
    else {
        panic!("{messages:?}");
    };
    assert_eq!(meter.command, MeterModCommand::Add);
    assert_eq!(meter.meter_id, 32);
    assert_eq!(
        meter.flags & (OFPMF_KBPS | OFPMF_BURST),
        OFPMF_KBPS | OFPMF_BURST
    );
    assert_eq!(
        meter.bands,
        vec![MeterBand::Drop {
            rate: 10_000,
            burst_size: 10_000
        }]
    );
    assert_eq!(flow.command, FlowModCommand::Add);
    assert_eq!(
        (flow.cookie, flow.priority, flow.table_id),
        (ingress.cookie, PRIORITY, 0)
    );
    assert_eq!(
        flow.matching,
        Match::new(vec![Oxm::InPort(10), Oxm::no_vlan()])
    );
    assert_eq!(flow.instructions[0], Instruction::Meter(32));
    assert_eq!(
        apply_actions(&flow.instructions),
        vec![
            Action::PushVlan { ethertype: 0x8100 },
            Action::SetField(Oxm::vlan(300)),
            output(11)
        ]
    );
}

#[test]
fn each_kind_does_to_the_vlan_what_the_simulator_does() {
    for (segment, actions) in [
        // a tagged customer port: the customer's tag is swapped for the ISL's
        (
            segment(Ingress, 100, 300, None),
            vec![Action::SetField(Oxm::vlan(300)), output(11)],
        ),
        (
            segment(Transit, 300, 301, None),
            vec![Action::SetField(Oxm::vlan(301)), output(11)],
        ),
        (
            segment(Egress, 301, 0, None),
            vec![Action::PopVlan, output(11)],
        ),
        (
            segment(Egress, 301, 20, None),
            vec![Action::SetField(Oxm::vlan(20)), output(11)],
        ),
        (segment(OneSwitch, 0, 0, None), vec![output(11)]),
    ] {
        let messages = install(&segment).unwrap();
        let flows = flow_mods(&messages);
        assert_eq!(flows.len(), 1, "{messages:?}");
        assert_eq!(flows[0].instructions.len(), 1, "no meter: {segment:?}");
        assert_eq!(
            apply_actions(&flows[0].instructions),
            actions,
            "{segment:?}"
        );
        let vlan = match segment.in_vlan {
            0 => Oxm::no_vlan(),
            vid => Oxm::vlan(vid),
        };
        assert_eq!(flows[0].matching, Match::new(vec![Oxm::InPort(10), vlan]));
    }
}

#[test]
fn every_message_encodes() {
    for segment in every_kind() {
        let messages = install(&segment)
            .unwrap()
            .into_iter()
            .chain(remove(&segment).unwrap())
            .chain([
                Message::MultipartRequest(verify_request(&segment)),
                Message::MultipartRequest(dump_request(&segment)),
            ]);
        for (xid, message) in (1..).zip(messages) {
            encode(&Frame::new(xid, message)).unwrap();
        }
    }
}

#[test]
fn remove_deletes_strictly_by_match_priority_and_cookie_then_the_meter() {
    let ingress = segment(Ingress, 0, 300, Some(32));
    let messages = remove(&ingress).unwrap();
    let [Message::FlowMod(flow), Message::MeterMod(meter), Message::BarrierRequest] =
        messages.as_slice()
    else {
        panic!("{messages:?}");
    };
    assert_eq!(flow.command, FlowModCommand::DeleteStrict);
    assert_eq!((flow.cookie, flow.cookie_mask), (ingress.cookie, u64::MAX));
    assert_eq!(
        (flow.priority, flow.out_port, flow.out_group),
        (PRIORITY, OFPP_ANY, OFPG_ANY)
    );
    assert_eq!(
        flow.matching,
        Match::new(vec![Oxm::InPort(10), Oxm::no_vlan()])
    );
    assert_eq!(
        (meter.command, meter.meter_id),
        (MeterModCommand::Delete, 32)
    );
    let transit = remove(&segment(Transit, 300, 301, None)).unwrap();
    assert_eq!(transit.len(), 2, "no meter to delete: {transit:?}");
}

#[test]
fn stats_requests_select_by_cookie() {
    let transit = segment(Transit, 300, 301, None);
    let request = |body| match body {
        MultipartRequestBody::Flow(request) => request,
        other => panic!("{other:?}"),
    };
    let verify = request(verify_request(&transit).body);
    assert_eq!(
        (verify.cookie, verify.cookie_mask),
        (transit.cookie, u64::MAX)
    );
    assert_eq!(
        (verify.table_id, verify.out_port, verify.out_group),
        (OFPTT_ALL, OFPP_ANY, OFPG_ANY)
    );
    assert_eq!(verify.matching, Match::default());
    let query = hubspoke_fsm::segments::FlowSegment::dump_query(transit.switch_id, 7);
    let dump = request(dump_request(&query).body);
    assert_eq!(
        (dump.cookie, dump.cookie_mask),
        (7, !(0x6000_0000_0000_0000))
    );
    for direction in [0x4000_0000_0000_0007u64, 0x2000_0000_0000_0007] {
        assert_eq!(
            direction & dump.cookie_mask,
            dump.cookie,
            "{direction:#x} is dumped"
        );
    }
    let everything = hubspoke_fsm::segments::FlowSegment::dump_query(transit.switch_id, 0);
    assert_eq!(request(dump_request(&everything).body).cookie_mask, 0);
}

#[test]
fn what_a_switch_cannot_hold_is_a_bad_command_before_it_is_sent() {
    let mut bad = segment(Ingress, 0, 300, Some(32));
    bad.out_vlan = 4095;
    assert!(matches!(
        install(&bad),
        Err(TranslateError::Vlan {
            name: "out_vlan",
            ..
        })
    ));
    bad = segment(Ingress, 0, 300, Some(32));
    bad.bandwidth = u64::from(u32::MAX) + 1;
    assert!(matches!(install(&bad), Err(TranslateError::Rate(_))));
    bad = segment(Transit, 300, 301, None);
    bad.in_port = 0;
    let error = remove(&bad).unwrap_err();
    assert_eq!(error.code(), SbErrorCode::BadCommand);
    bad = segment(Ingress, 0, 300, Some(OFPM_MAX + 1));
    assert!(matches!(install(&bad), Err(TranslateError::Meter(_))));
}
