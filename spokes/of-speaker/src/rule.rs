//! A segment as an OpenFlow switch holds it: a flow entry with the segment's cookie, matching
//! its in_port and VLAN exactly, metering if it has a meter, then changing the VLAN and
//! sending the packet out. Every translation goes through [`rule_of`] and [`OpenFlowRule`], and
//! every dump comes back through [`read_rule`], so install, remove, verify and dump agree on
//! what a segment looks like on the wire.
//!
//! A switch keeps less than a segment says: not its kind, and a bandwidth only through its
//! meter. [`HeldRule`] (fsm's, what validation compares) is what it keeps.

use hubspoke_fsm::segments::{FlowSegment, HeldRule};
use hubspoke_fsm::{SbErrorCode, MAX_VLAN};
use hubspoke_openflow::consts::{OFPM_MAX, OFPP_MAX, OFPVID_NONE, OFPVID_PRESENT};
use hubspoke_openflow::{Action, FlowStats, Instruction, Match, Oxm};

use crate::vlan::{read_actions, vlan_actions};

/// The priority of every hubspoke rule. One priority, as in the simulator, so that an add
/// whose match equals a rule's replaces it (OFPFC_ADD on identical match and priority), and
/// a strict delete finds it. The spec's default, halfway: an operator's rules can go above
/// or below.
pub const PRIORITY: u16 = hubspoke_openflow::consts::OFP_DEFAULT_PRIORITY;

/// A segment that cannot be a flow entry: the switch would refuse it, or worse, the encoding
/// would silently change it (a VLAN id is 12 bits on the wire).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("{name} {port} is not a switch port (1..={OFPP_MAX})")]
    Port { name: &'static str, port: u32 },
    #[error("{name} {vlan} is not a VLAN id (0..={MAX_VLAN}, 0 for untagged)")]
    Vlan { name: &'static str, vlan: u16 },
    #[error("meter {0} is not a meter id (1..={OFPM_MAX})")]
    Meter(u32),
    #[error("{0} kbps does not fit a meter band's 32-bit rate")]
    Rate(u64),
}

impl TranslateError {
    /// A command no switch could carry out: asking again will not help.
    pub fn code(&self) -> SbErrorCode {
        SbErrorCode::BadCommand
    }
}

/// A flow entry that is not the shape of a hubspoke rule, so no segment says what it does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("it is in table {0}: packets arrive in table 0 and hubspoke sends none further")]
    Table(u8),
    #[error("its match is not exactly an in_port and a VLAN")]
    Match,
    #[error("its instructions are not a meter and one apply_actions")]
    Instructions,
    #[error("its actions cannot be read: {0}")]
    Actions(&'static str),
}

/// The segment's rule, if a switch can hold it as it is.
pub fn rule_of(segment: &FlowSegment) -> Result<HeldRule, TranslateError> {
    for (name, port) in [("in_port", segment.in_port), ("out_port", segment.out_port)] {
        if port == 0 || port > OFPP_MAX {
            return Err(TranslateError::Port { name, port });
        }
    }
    for (name, vlan) in [("in_vlan", segment.in_vlan), ("out_vlan", segment.out_vlan)] {
        if vlan > MAX_VLAN {
            return Err(TranslateError::Vlan { name, vlan });
        }
    }
    if let Some(meter_id) = segment.meter_id.filter(|&m| m == 0 || m > OFPM_MAX) {
        return Err(TranslateError::Meter(meter_id));
    }
    Ok(segment.held())
}

/// A held rule as OpenFlow says it.
pub trait OpenFlowRule {
    fn matching(&self) -> Match;
    fn instructions(&self) -> Vec<Instruction>;
}

impl OpenFlowRule for HeldRule {
    /// in_port and vlan_vid, both exact; an untagged in_vlan matches OVS's "no VLAN"
    /// (`OFPVID_NONE`), so that a tagged packet never takes an untagged endpoint's rule.
    /// In (class, field) order, as [`Match::normalized`] puts a switch's report.
    fn matching(&self) -> Match {
        let vlan = match self.in_vlan {
            0 => Oxm::no_vlan(),
            vid => Oxm::vlan(vid),
        };
        Match::new(vec![Oxm::InPort(self.in_port), vlan])
    }

    /// The meter first, where there is one, then the VLAN change and the output: the order
    /// the spec runs them in, and the order OVS reports them.
    fn instructions(&self) -> Vec<Instruction> {
        let mut actions = vlan_actions(self.in_vlan, self.out_vlan);
        actions.push(Action::Output {
            port: self.out_port,
            max_len: 0,
        });
        self.meter_id
            .map(Instruction::Meter)
            .into_iter()
            .chain([Instruction::ApplyActions(actions)])
            .collect()
    }
}

/// The rule a switch reports, read back, at any priority, with the match normalised as OVS
/// reports it.
pub fn read_rule(stats: &FlowStats) -> Result<HeldRule, Unreadable> {
    if stats.table_id != 0 {
        return Err(Unreadable::Table(stats.table_id));
    }
    let (in_port, in_vlan) = match stats.matching.normalized().fields.as_slice() {
        [Oxm::InPort(port), Oxm::VlanVid { value, mask: None }] => {
            match (*value, value & OFPVID_PRESENT) {
                (OFPVID_NONE, _) => (*port, 0),
                (value, OFPVID_PRESENT) if value & 0x0fff != 0 => (*port, value & 0x0fff),
                _ => return Err(Unreadable::Match),
            }
        }
        _ => return Err(Unreadable::Match),
    };
    let (meter_id, actions) = match stats.instructions.as_slice() {
        [Instruction::ApplyActions(actions)] => (None, actions),
        [Instruction::Meter(meter), Instruction::ApplyActions(actions)]
        | [Instruction::ApplyActions(actions), Instruction::Meter(meter)] => {
            (Some(*meter), actions)
        }
        _ => return Err(Unreadable::Instructions),
    };
    let (out_port, out_vlan) = read_actions(in_vlan, actions)?;
    Ok(HeldRule {
        cookie: stats.cookie,
        in_port,
        in_vlan,
        out_port,
        out_vlan,
        meter_id,
    })
}
