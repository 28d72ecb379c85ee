//! Install: the messages that put a segment's rule on a switch, as the simulator's install
//! does: the meter first (a flow entry naming a missing meter is refused, OFPT_ERROR type 12
//! code 2), then the flow entry, which replaces any entry with the same match (OFPFC_ADD at
//! the one [`PRIORITY`]).
//!
//! A BARRIER_REQUEST ends the list. The switch answers it only once it has processed every
//! message before it, so its reply is the command's success, and an OFPT_ERROR with the xid
//! of one of the command's messages, before it, is its failure. Without it, success would be
//! silence, which a slow switch and a lost message also give.

use hubspoke_fsm::segments::FlowSegment;
use hubspoke_openflow::consts::{OFPMF_BURST, OFPMF_KBPS, OFPMF_STATS};
use hubspoke_openflow::{FlowMod, FlowModCommand, Message, MeterBand, MeterMod, MeterModCommand};

use crate::rule::{rule_of, OpenFlowRule, TranslateError, PRIORITY};

/// The messages of an install, in order: METER_MOD add (metered segments), FLOW_MOD add,
/// BARRIER_REQUEST.
pub fn install(segment: &FlowSegment) -> Result<Vec<Message>, TranslateError> {
    let rule = rule_of(segment)?;
    let meter = match rule.meter_id {
        Some(meter_id) => Some(Message::MeterMod(meter_mod(
            MeterModCommand::Add,
            meter_id,
            segment.bandwidth,
        )?)),
        None => None,
    };
    let flow = FlowMod {
        cookie: rule.cookie,
        table_id: 0,
        command: FlowModCommand::Add,
        priority: PRIORITY,
        matching: rule.matching(),
        instructions: rule.instructions(),
        ..FlowMod::default()
    };
    Ok(meter
        .into_iter()
        .chain([Message::FlowMod(flow), Message::BarrierRequest])
        .collect())
}

/// The METER_MOD that sets a metered segment's existing meter to its rate: what an install
/// does instead when its meter add is refused because the meter exists (a retry, a repair).
/// `None` for a segment without a meter.
pub fn meter_modify(segment: &FlowSegment) -> Result<Option<MeterMod>, TranslateError> {
    let rule = rule_of(segment)?;
    rule.meter_id
        .map(|meter_id| meter_mod(MeterModCommand::Modify, meter_id, segment.bandwidth))
        .transpose()
}

/// A meter that drops what goes over `kbps`. The burst is one second's worth at the rate
/// (`kbps` kilobits): what OVS allows when none is given, close to OpenKilda's 1.05 s, and
/// enough for TCP to reach the rate instead of sawing under it; set explicitly (OFPMF_BURST)
/// so that no switch's default decides. Statistics on, for a later look at drops.
fn meter_mod(
    command: MeterModCommand,
    meter_id: u32,
    kbps: u64,
) -> Result<MeterMod, TranslateError> {
    let rate = u32::try_from(kbps).map_err(|_| TranslateError::Rate(kbps))?;
    Ok(MeterMod {
        command,
        flags: OFPMF_KBPS | OFPMF_BURST | OFPMF_STATS,
        meter_id,
        bands: vec![MeterBand::Drop {
            rate,
            burst_size: rate,
        }],
    })
}
