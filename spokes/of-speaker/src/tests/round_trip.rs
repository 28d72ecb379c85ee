//! What we install, reported back by OVS, reads as the segment: the fields a validation shows
//! exactly, over the wire and back.

use hubspoke_fsm::segments::{FlowSegment, SegmentKind, COOKIE_ID_LIMIT, FORWARD_COOKIE_FLAG};
use hubspoke_fsm::validation::{validate_switch, Expectation, RuleEntry};
use hubspoke_fsm::{MeterEntry, SbErrorCode, SbOutcome, SwitchId, MAX_VLAN};
use hubspoke_openflow::consts::{OFPM_MAX, OFPP_MAX, OFPVID_NONE};
use hubspoke_openflow::{
    decode, encode, FlowStats, Frame, Message, MultipartReply, MultipartReplyBody, Oxm,
};
use proptest::prelude::*;

use super::{as_ovs_reports, every_kind, flow_mods, segment};
use crate::{dumped, install, verify_outcome, Unreadable};

/// The switch's report of what `install` sent, through the codec as a switch's bytes.
fn reported(segment: &FlowSegment) -> Vec<FlowStats> {
    let messages = install(segment).unwrap();
    let stats = flow_mods(&messages)
        .into_iter()
        .map(as_ovs_reports)
        .collect();
    let reply = Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::Flow(stats),
    });
    let bytes = encode(&Frame::new(9, reply)).unwrap();
    match decode(&bytes).unwrap().message {
        Message::MultipartReply(MultipartReply {
            body: MultipartReplyBody::Flow(stats),
            ..
        }) => stats,
        other => panic!("{other:?}"),
    }
}

fn meters_of(segment: &FlowSegment) -> Vec<MeterEntry> {
    segment
        .meter_id
        .map(|meter_id| MeterEntry {
            meter_id,
            rate_kbps: segment.bandwidth,
        })
        .into_iter()
        .collect()
}

/// Verified, and dumped as the same rule entry and meter.
fn reads_back(segment: &FlowSegment) {
    let stats = reported(segment);
    assert_eq!(
        verify_outcome(segment, &stats),
        SbOutcome::Success,
        "{segment:?}"
    );
    let query = FlowSegment::dump_query(segment.switch_id, segment.cookie_id());
    let dump = dumped(&query, &stats, &meters_of(segment));
    assert!(dump.unreadable.is_empty(), "{dump:?}");
    let entries: Vec<RuleEntry> = dump.rules.iter().map(|r| RuleEntry::new(r, None)).collect();
    assert_eq!(entries, vec![RuleEntry::new(segment, None)]);
    assert_eq!(dump.meters, meters_of(segment));
}

#[test]
fn every_kind_reads_back() {
    for segment in every_kind() {
        reads_back(&segment);
    }
}

/// Every kind, dumped back from the switch, is proper to the switch validation: it judges a
/// rule on what a switch keeps (match, cookie, actions, meter), not on the segment's kind or
/// bandwidth, which a switch does not know.
#[test]
fn every_kind_dumped_back_is_proper_to_the_validation() {
    for expected in every_kind() {
        let dump = dumped(
            &FlowSegment::dump_query(expected.switch_id, 0),
            &reported(&expected),
            &meters_of(&expected),
        );
        let expectation = Expectation {
            required: vec![(expected.clone(), "flow-1".into())],
            ..Expectation::default()
        };
        let report = validate_switch(expected.switch_id, &expectation, &dump.rules, &dump.meters);
        assert!(report.is_proper(), "{expected:?}: {report:?}");
    }
}

#[test]
fn a_masked_no_vlan_reads_as_untagged() {
    let egress = segment(SegmentKind::OneSwitch, 0, 0, None);
    let mut stats = reported(&egress);
    stats[0].matching.fields[1] = Oxm::VlanVid {
        value: OFPVID_NONE,
        mask: Some(0x1fff),
    };
    assert_eq!(verify_outcome(&egress, &stats), SbOutcome::Success);
}

#[test]
fn a_changed_or_missing_rule_fails_verification() {
    let transit = segment(SegmentKind::Transit, 300, 301, None);
    let mut changed = transit.clone();
    changed.out_port = 12;
    let missing = |outcome| {
        matches!(
            outcome,
            SbOutcome::Error {
                code: SbErrorCode::MissingRule,
                ..
            }
        )
    };
    assert!(missing(verify_outcome(&transit, &reported(&changed))));
    assert!(missing(verify_outcome(&transit, &[])));
}

#[test]
fn foreign_and_unreadable_entries_are_told_apart() {
    let mut foreign = segment(SegmentKind::Transit, 300, 301, None);
    foreign.cookie = 0x1234;
    let ours = segment(SegmentKind::Egress, 301, 0, None);
    let mut stats = reported(&foreign);
    stats.extend(reported(&ours));
    let mut odd = reported(&ours).remove(0);
    odd.matching.fields.truncate(1);
    stats.push(odd);
    let everything = dumped(&FlowSegment::dump_query(SwitchId(2), 0), &stats, &[]);
    assert_eq!(
        everything.rules.len(),
        2,
        "foreign rules are listed: validation names them"
    );
    assert!(!everything.rules[0].is_hubspoke_cookie());
    assert_eq!(
        everything.unreadable,
        vec![(ours.cookie, Unreadable::Match)]
    );
    let of_flow = dumped(&FlowSegment::dump_query(SwitchId(2), 7), &stats, &[]);
    assert_eq!(of_flow.rules.len(), 1);
    assert_eq!(of_flow.rules[0].cookie, ours.cookie);
}

fn any_segment() -> impl Strategy<Value = FlowSegment> {
    let kinds = prop_oneof![
        Just(SegmentKind::Ingress),
        Just(SegmentKind::Transit),
        Just(SegmentKind::Egress),
        Just(SegmentKind::OneSwitch),
    ];
    (
        kinds,
        1..COOKIE_ID_LIMIT,
        (1..=OFPP_MAX, 0..=MAX_VLAN, 1..=OFPP_MAX, 0..=MAX_VLAN),
        proptest::option::of(1..=OFPM_MAX),
        1..=u64::from(u32::MAX),
    )
        .prop_map(
            |(kind, id, (in_port, in_vlan, out_port, out_vlan), meter_id, bandwidth)| FlowSegment {
                switch_id: SwitchId(5),
                kind,
                cookie: FORWARD_COOKIE_FLAG | id,
                in_port,
                in_vlan,
                out_port,
                out_vlan,
                meter_id,
                bandwidth,
            },
        )
}

proptest! {
    #[test]
    fn any_valid_segment_reads_back(segment in any_segment()) {
        reads_back(&segment);
    }
}
