//! Switch and flow validation, after OpenKilda's: what a switch holds against what hubspoke
//! expects there. Pure: the keeper gathers the dumps and the expectations, this judges them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dataplane::{PortVlan, RuleMatch, Trace};
use crate::segments::FlowSegment;
use crate::{FlowId, MeterEntry, SwitchId};

/// A rule as a validation shows it. The cookie is also in hex: JSON readers that use doubles
/// lose the high bits (the direction flag) of the number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleEntry {
    pub cookie: u64,
    pub cookie_hex: String,
    pub in_port: u32,
    pub in_vlan: u16,
    pub out_port: u32,
    pub out_vlan: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<u32>,
    /// The flow the rule belongs to, where hubspoke knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<FlowId>,
}

impl RuleEntry {
    pub fn new(rule: &FlowSegment, flow_id: Option<&str>) -> Self {
        RuleEntry {
            cookie: rule.cookie,
            cookie_hex: format!("{:#018x}", rule.cookie),
            in_port: rule.in_port,
            in_vlan: rule.in_vlan,
            out_port: rule.out_port,
            out_vlan: rule.out_vlan,
            meter_id: rule.meter_id,
            flow_id: flow_id.map(str::to_string),
        }
    }
}

/// A rule on the switch that is not the one expected at its match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Misconfigured {
    pub expected: RuleEntry,
    pub actual: RuleEntry,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleValidation {
    /// Expected, and not on the switch.
    pub missing: Vec<RuleEntry>,
    /// At an expected rule's match with its cookie, but different (ports, VLANs, meter).
    pub misconfigured: Vec<Misconfigured>,
    /// Exactly as expected.
    pub proper: Vec<RuleEntry>,
    /// In hubspoke's cookie space, but no flow expects it and it is not owed.
    pub excess: Vec<RuleEntry>,
    /// Owed: handed to the removal debt, still on the switch.
    pub pending_removal: Vec<RuleEntry>,
    /// Of a flow being moved: may or may not be there yet.
    pub moving: Vec<RuleEntry>,
    /// Not in hubspoke's cookie space: somebody else's, left alone.
    pub foreign: Vec<RuleEntry>,
}

/// A meter as a validation shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MeterCheck {
    pub meter_id: u32,
    pub rate_kbps: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<FlowId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterValidation {
    pub missing: Vec<MeterCheck>,
    /// (expected, actual): the same meter id with another rate.
    pub misconfigured: Vec<(MeterCheck, MeterCheck)>,
    pub proper: Vec<MeterCheck>,
    pub excess: Vec<MeterCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchValidation {
    pub switch_id: SwitchId,
    pub rules: RuleValidation,
    pub meters: MeterValidation,
}

impl SwitchValidation {
    /// Nothing missing, misconfigured or excess (owed rules are on their way out).
    pub fn is_proper(&self) -> bool {
        let (rules, meters) = (&self.rules, &self.meters);
        rules.missing.is_empty()
            && rules.misconfigured.is_empty()
            && rules.excess.is_empty()
            && meters.missing.is_empty()
            && meters.misconfigured.is_empty()
            && meters.excess.is_empty()
    }
}

/// What hubspoke expects on one switch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectation {
    /// Must be there: the rules of the flows' current reservations.
    pub required: Vec<(FlowSegment, FlowId)>,
    /// May be there: the rules of the reservations flows are being moved to.
    pub allowed: Vec<(FlowSegment, FlowId)>,
    /// Must go: the removal debt on this switch.
    pub owed: Vec<(FlowSegment, Option<FlowId>)>,
}

/// Judges what a switch holds (`rules`, `meters`) against what hubspoke expects there.
pub fn validate_switch(
    switch_id: SwitchId,
    expectation: &Expectation,
    rules: &[FlowSegment],
    meters: &[MeterEntry],
) -> SwitchValidation {
    let by_match =
        |list: &[(FlowSegment, FlowId)]| -> BTreeMap<RuleMatch, Vec<(FlowSegment, FlowId)>> {
            let mut map: BTreeMap<RuleMatch, Vec<(FlowSegment, FlowId)>> = BTreeMap::new();
            for (rule, flow_id) in list {
                map.entry(rule.rule_match())
                    .or_default()
                    .push((rule.clone(), flow_id.clone()));
            }
            map
        };
    let required = by_match(&expectation.required);
    let allowed = by_match(&expectation.allowed);
    let mut report = RuleValidation::default();
    let mut present: BTreeSet<(RuleMatch, u64)> = BTreeSet::new();
    // A move's rule at a required rule's match is the swap, not a missing rule.
    let mut swapped: BTreeSet<(RuleMatch, FlowId)> = BTreeSet::new();
    for rule in rules {
        let at = rule.rule_match();
        present.insert((at, rule.cookie));
        if !rule.is_hubspoke_cookie() {
            report.foreign.push(RuleEntry::new(rule, None));
            continue;
        }
        let expected_here = required.get(&at).into_iter().flatten();
        if let Some((expected, flow_id)) = expected_here.clone().find(|(e, _)| e.is_held_as(rule)) {
            report.proper.push(RuleEntry::new(expected, Some(flow_id)));
            continue;
        }
        if let Some((expected, flow_id)) =
            expected_here.clone().find(|(e, _)| e.cookie == rule.cookie)
        {
            report.misconfigured.push(Misconfigured {
                expected: RuleEntry::new(expected, Some(flow_id)),
                actual: RuleEntry::new(rule, Some(flow_id)),
            });
            continue;
        }
        if let Some((_, flow_id)) = allowed
            .get(&at)
            .into_iter()
            .flatten()
            .find(|(e, _)| e.is_held_as(rule))
        {
            report.moving.push(RuleEntry::new(rule, Some(flow_id)));
            swapped.insert((at, flow_id.clone()));
            continue;
        }
        if let Some((_, flow_id)) = expectation
            .owed
            .iter()
            .find(|(owed, _)| owed.rule_match() == at && owed.cookie == rule.cookie)
        {
            report
                .pending_removal
                .push(RuleEntry::new(rule, flow_id.as_deref()));
            continue;
        }
        report.excess.push(RuleEntry::new(rule, None));
    }
    for (at, expected) in &required {
        for (rule, flow_id) in expected {
            let there = present
                .iter()
                .any(|(m, cookie)| m == at && *cookie == rule.cookie);
            if !there && !swapped.contains(&(*at, flow_id.clone())) {
                report.missing.push(RuleEntry::new(rule, Some(flow_id)));
            }
        }
    }
    SwitchValidation {
        switch_id,
        rules: report,
        meters: validate_meters(expectation, meters),
    }
}

fn validate_meters(expectation: &Expectation, meters: &[MeterEntry]) -> MeterValidation {
    let mut expected: BTreeMap<u32, MeterCheck> = BTreeMap::new();
    for (rule, flow_id) in expectation.required.iter().chain(&expectation.allowed) {
        if let Some(meter_id) = rule.meter_id {
            expected.insert(
                meter_id,
                MeterCheck {
                    meter_id,
                    rate_kbps: rule.bandwidth,
                    flow_id: Some(flow_id.clone()),
                },
            );
        }
    }
    let owed: BTreeSet<u32> = expectation
        .owed
        .iter()
        .filter_map(|(rule, _)| rule.meter_id)
        .collect();
    let mut report = MeterValidation::default();
    for meter in meters {
        let actual = MeterCheck {
            meter_id: meter.meter_id,
            rate_kbps: meter.rate_kbps,
            flow_id: None,
        };
        match expected.remove(&meter.meter_id) {
            Some(want) if want.rate_kbps == meter.rate_kbps => report.proper.push(want),
            Some(want) => report.misconfigured.push((want, actual)),
            None if owed.contains(&meter.meter_id) => {}
            None => report.excess.push(actual),
        }
    }
    report.missing.extend(expected.into_values());
    report
}

/// One direction of a flow, followed through what the switches hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionCheck {
    pub from: PortVlan,
    pub to: PortVlan,
    pub trace: Trace,
    /// The packet left exactly at `to`.
    pub delivered: bool,
}

impl DirectionCheck {
    pub fn new(from: PortVlan, to: PortVlan, trace: Trace) -> Self {
        DirectionCheck {
            delivered: trace.delivered_at(&to),
            from,
            to,
            trace,
        }
    }
}

/// One switch of a flow: the flow's rules expected there against the ones it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSwitchRules {
    pub switch_id: SwitchId,
    pub expected: Vec<RuleEntry>,
    /// The switch's rules that carry one of the flow's cookies.
    pub actual: Vec<RuleEntry>,
    pub missing: Vec<RuleEntry>,
    pub excess: Vec<RuleEntry>,
}

impl FlowSwitchRules {
    /// `rules` is what the switch holds, all of it; the flow's are picked by `cookie_ids`.
    pub fn new(
        switch_id: SwitchId,
        flow_id: &str,
        expected: &[FlowSegment],
        cookie_ids: &BTreeSet<u64>,
        rules: &[FlowSegment],
    ) -> Self {
        let expected: Vec<&FlowSegment> = expected
            .iter()
            .filter(|r| r.switch_id == switch_id)
            .collect();
        let actual: Vec<&FlowSegment> = rules
            .iter()
            .filter(|r| cookie_ids.contains(&r.cookie_id()))
            .collect();
        let entry = |rule: &&FlowSegment| RuleEntry::new(rule, Some(flow_id));
        FlowSwitchRules {
            switch_id,
            missing: expected
                .iter()
                .filter(|e| !actual.iter().any(|a| e.is_held_as(a)))
                .map(entry)
                .collect(),
            excess: actual
                .iter()
                .filter(|a| !expected.iter().any(|e| e.is_held_as(a)))
                .map(entry)
                .collect(),
            expected: expected.iter().map(entry).collect(),
            actual: actual.iter().map(entry).collect(),
        }
    }
}

/// `GET /v2/flows/{id}/validate`: the flow's rules on every switch of its path (and of a move
/// in progress), and a packet traced each way through what the switches hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowValidation {
    pub flow_id: FlowId,
    pub switches: Vec<FlowSwitchRules>,
    pub forward: DirectionCheck,
    pub reverse: DirectionCheck,
    /// Every expected rule in place, none of the flow's rules where none is expected, and a
    /// packet delivered both ways.
    pub as_expected: bool,
}

impl FlowValidation {
    pub fn new(
        flow_id: FlowId,
        switches: Vec<FlowSwitchRules>,
        forward: DirectionCheck,
        reverse: DirectionCheck,
    ) -> Self {
        let rules_ok = switches
            .iter()
            .all(|s| s.missing.is_empty() && s.excess.is_empty());
        FlowValidation {
            as_expected: rules_ok && forward.delivered && reverse.delivered,
            flow_id,
            switches,
            forward,
            reverse,
        }
    }
}

/// `POST /v2/switches/{id}/sync`: what the switch held, and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchSync {
    pub validation: SwitchValidation,
    /// Flows whose missing or misconfigured rules their hub installs again.
    pub flows_repaired: Vec<FlowId>,
    /// Excess rules handed to the removal debt (removed now, retried until they are gone).
    pub excess_removed: Vec<RuleEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::{flow_segments, SegmentKind};
    use crate::test_support::{request, resources};

    fn flow_rules_on(switch: u64) -> Vec<FlowSegment> {
        flow_segments(&request(1, 3), &resources(3))
            .into_iter()
            .filter(|r| r.switch_id == SwitchId(switch))
            .collect()
    }

    fn expecting(rules: &[FlowSegment]) -> Expectation {
        Expectation {
            required: rules.iter().map(|r| (r.clone(), "f1".into())).collect(),
            ..Expectation::default()
        }
    }

    fn meters_of(rules: &[FlowSegment]) -> Vec<MeterEntry> {
        rules
            .iter()
            .filter_map(|r| {
                r.meter_id.map(|meter_id| MeterEntry {
                    meter_id,
                    rate_kbps: r.bandwidth,
                })
            })
            .collect()
    }

    #[test]
    fn a_switch_holding_exactly_its_rules_is_proper() {
        let rules = flow_rules_on(1);
        let report = validate_switch(SwitchId(1), &expecting(&rules), &rules, &meters_of(&rules));
        assert!(report.is_proper(), "{report:?}");
        assert_eq!(report.rules.proper.len(), 2);
        assert_eq!(report.meters.proper.len(), 1);
    }

    /// A real switch lists what it holds: match, cookie, actions, meter. It knows nothing of a
    /// segment's kind or bandwidth, and its rules are proper all the same.
    #[test]
    fn a_rule_listed_without_kind_or_bandwidth_is_proper() {
        let rules = flow_rules_on(1);
        let as_a_switch_lists_them: Vec<FlowSegment> = rules
            .iter()
            .map(|r| FlowSegment {
                kind: SegmentKind::Transit,
                bandwidth: 0,
                ..r.clone()
            })
            .collect();
        let report = validate_switch(
            SwitchId(1),
            &expecting(&rules),
            &as_a_switch_lists_them,
            &meters_of(&rules),
        );
        assert!(report.is_proper(), "{report:?}");
        let flow = FlowSwitchRules::new(
            SwitchId(1),
            "f1",
            &rules,
            &rules.iter().map(FlowSegment::cookie_id).collect(),
            &as_a_switch_lists_them,
        );
        assert!(
            flow.missing.is_empty() && flow.excess.is_empty(),
            "{flow:?}"
        );
    }

    #[test]
    fn each_kind_of_difference_is_told_apart() {
        let rules = flow_rules_on(1);
        let (ingress, egress) = (rules[0].clone(), rules[1].clone());
        let tampered = FlowSegment {
            out_port: 7,
            ..ingress.clone()
        };
        let excess = FlowSegment {
            in_vlan: 77,
            cookie: ingress.cookie + 100,
            ..ingress.clone()
        };
        let owed = FlowSegment {
            in_vlan: 78,
            cookie: ingress.cookie + 200,
            ..ingress.clone()
        };
        let foreign = FlowSegment {
            in_vlan: 79,
            cookie: 42,
            kind: SegmentKind::Transit,
            ..ingress.clone()
        };
        let held = [tampered, excess.clone(), owed.clone(), foreign];
        let mut expectation = expecting(&rules);
        expectation.owed.push((owed, Some("gone".into())));
        let report = validate_switch(SwitchId(1), &expectation, &held, &[]);
        let rules = &report.rules;
        assert_eq!(rules.misconfigured.len(), 1);
        assert_eq!(rules.misconfigured[0].actual.out_port, 7);
        assert_eq!(rules.missing, vec![RuleEntry::new(&egress, Some("f1"))]);
        assert_eq!(rules.excess, vec![RuleEntry::new(&excess, None)]);
        assert_eq!(rules.pending_removal.len(), 1);
        assert_eq!(rules.foreign.len(), 1, "not in hubspoke's cookie space");
        assert_eq!(report.meters.missing.len(), 1, "the ingress meter is gone");
        assert!(!report.is_proper());
    }

    #[test]
    fn a_moves_rule_in_place_of_the_old_one_is_the_swap_not_a_missing_rule() {
        let rules = flow_rules_on(1);
        let new_ingress = FlowSegment {
            cookie: rules[0].cookie + 5,
            out_vlan: 9,
            ..rules[0].clone()
        };
        let mut expectation = expecting(&rules);
        expectation.allowed.push((new_ingress.clone(), "f1".into()));
        let held = [new_ingress, rules[1].clone()];
        let report = validate_switch(SwitchId(1), &expectation, &held, &meters_of(&rules));
        assert!(report.is_proper(), "{report:?}");
        assert_eq!(report.rules.moving.len(), 1);
    }
}
