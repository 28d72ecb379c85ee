//! Remove: the messages that take a segment's rule off a switch, as the simulator's remove
//! does: the entry at the segment's match goes only if it carries the segment's cookie (a
//! rule another install put there since stays), then the segment's meter. Removing what is
//! not there succeeds, so a remove can be sent again.
//!
//! The flow entry goes first: OVS deletes a meter's flow entries with it, and in between the
//! entry would forward unmetered. A meter id is the flow direction's own until its rules are
//! removed, so no other entry uses it. A BARRIER_REQUEST ends the list, as for an install.

use hubspoke_fsm::segments::FlowSegment;
use hubspoke_openflow::{FlowMod, FlowModCommand, Message, MeterMod, MeterModCommand};

use crate::rule::{rule_of, OpenFlowRule, TranslateError, PRIORITY};

/// The messages of a remove, in order: FLOW_MOD delete_strict (by match, priority and the
/// whole cookie, any output), METER_MOD delete (metered segments), BARRIER_REQUEST.
pub fn remove(segment: &FlowSegment) -> Result<Vec<Message>, TranslateError> {
    let rule = rule_of(segment)?;
    // FlowMod's default out_port and out_group are OFPP_ANY and OFPG_ANY: no output filter.
    let flow = FlowMod {
        cookie: rule.cookie,
        cookie_mask: u64::MAX,
        table_id: 0,
        command: FlowModCommand::DeleteStrict,
        priority: PRIORITY,
        matching: rule.matching(),
        ..FlowMod::default()
    };
    let meter = rule.meter_id.map(|meter_id| {
        Message::MeterMod(MeterMod {
            command: MeterModCommand::Delete,
            flags: 0,
            meter_id,
            bands: vec![],
        })
    });
    Ok([Message::FlowMod(flow)]
        .into_iter()
        .chain(meter)
        .chain([Message::BarrierRequest])
        .collect())
}
