//! The switch's flow statistics (every part of a multipart reply, as OVS reports them) read
//! back as the simulator would answer a verify or a dump.
//!
//! A switch keeps less than a segment: no kind, and a bandwidth only in a metered rule's
//! meter. A dumped segment's kind is therefore a guess from what the rule does (meter or push:
//! ingress; pop: egress; else transit), and an unmetered one's bandwidth is 0. What a
//! validation shows of a rule ([`RuleEntry`]: cookie, ports, VLANs, meter) reads back exactly.
//!
//! [`RuleEntry`]: hubspoke_fsm::validation::RuleEntry

use std::collections::BTreeSet;

use hubspoke_fsm::segments::{FlowSegment, SegmentKind};
use hubspoke_fsm::{MeterEntry, SbErrorCode, SbOutcome, SwitchId};
use hubspoke_openflow::FlowStats;

use hubspoke_fsm::segments::HeldRule;

use crate::rule::{read_rule, rule_of, Unreadable, PRIORITY};

/// What a dump found: the rules and meters as the simulator lists them, and the entries that
/// are not the shape of any segment (left out of the answer; the speaker logs them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dumped {
    pub rules: Vec<FlowSegment>,
    pub meters: Vec<MeterEntry>,
    pub unreadable: Vec<(u64, Unreadable)>,
}

impl Dumped {
    pub fn into_outcome(self) -> SbOutcome {
        SbOutcome::Rules {
            rules: self.rules,
            meters: self.meters,
        }
    }
}

/// A verify's answer: success when the entry at the segment's match and priority is the
/// segment's rule, `MISSING_RULE` otherwise. `stats` is the reply to
/// [`verify_request`](crate::verify_request): the entries with the segment's cookie.
pub fn verify_outcome(segment: &FlowSegment, stats: &[FlowStats]) -> SbOutcome {
    let expected = match rule_of(segment) {
        Ok(rule) => rule,
        Err(e) => return error(e.code(), e.to_string()),
    };
    let at_match = stats
        .iter()
        .filter(|entry| entry.priority == PRIORITY)
        .filter_map(|entry| read_rule(entry).ok())
        .filter(|rule| (rule.in_port, rule.in_vlan) == (expected.in_port, expected.in_vlan))
        .find(|rule| rule.cookie == expected.cookie);
    match at_match {
        Some(rule) if rule == expected => SbOutcome::Success,
        Some(rule) => error(
            SbErrorCode::MissingRule,
            format!(
                "the rule matching in_port {} vlan {} is {rule:?}, not the expected {expected:?}",
                segment.in_port, segment.in_vlan
            ),
        ),
        None => error(
            SbErrorCode::MissingRule,
            format!(
                "no rule with cookie {:#x} matches in_port {} vlan {}",
                segment.cookie, segment.in_port, segment.in_vlan
            ),
        ),
    }
}

/// A dump's answer to `query` ([`FlowSegment::dump_query`]): the entries of the reply to
/// [`dump_request`](crate::dump_request) as segments, foreign ones included (validation tells
/// them apart by cookie), ordered by match as the simulator lists them; and of `meters` (the
/// switch's meters and their drop rates, in kbps), those the rules use, or all for cookie 0.
pub fn dumped(query: &FlowSegment, stats: &[FlowStats], meters: &[MeterEntry]) -> Dumped {
    let mut rules = Vec::new();
    let mut unreadable = Vec::new();
    for entry in stats {
        match read_rule(entry) {
            Ok(rule) => rules.push(segment(query.switch_id, rule, meters)),
            Err(why) => unreadable.push((entry.cookie, why)),
        }
    }
    rules.retain(|rule| query.cookie == 0 || rule.cookie_id() == query.cookie);
    rules.sort_by_key(|rule| (rule.in_port, rule.in_vlan, rule.cookie));
    let used: BTreeSet<u32> = rules.iter().filter_map(|rule| rule.meter_id).collect();
    let meters = meters
        .iter()
        .filter(|meter| query.cookie == 0 || used.contains(&meter.meter_id))
        .copied()
        .collect();
    Dumped {
        rules,
        meters,
        unreadable,
    }
}

/// The segment a rule reads as on `switch_id`; see the module's note on kind and bandwidth.
fn segment(switch_id: SwitchId, rule: HeldRule, meters: &[MeterEntry]) -> FlowSegment {
    let kind = match (rule.meter_id, rule.in_vlan, rule.out_vlan) {
        (Some(_), _, _) => SegmentKind::Ingress,
        (None, 0, out) if out != 0 => SegmentKind::Ingress,
        (None, held, 0) if held != 0 => SegmentKind::Egress,
        _ => SegmentKind::Transit,
    };
    let bandwidth = rule
        .meter_id
        .and_then(|id| meters.iter().find(|meter| meter.meter_id == id))
        .map_or(0, |meter| meter.rate_kbps);
    FlowSegment {
        switch_id,
        kind,
        cookie: rule.cookie,
        in_port: rule.in_port,
        in_vlan: rule.in_vlan,
        out_port: rule.out_port,
        out_vlan: rule.out_vlan,
        meter_id: rule.meter_id,
        bandwidth,
    }
}

fn error(code: SbErrorCode, message: String) -> SbOutcome {
    SbOutcome::Error { code, message }
}
