//! The removal debt as the allocator keeps it: rules that must leave the switches, by switch.
//! A rule is known by its switch, match and cookie: what a strict removal names.

use std::collections::{BTreeMap, HashMap};

use hubspoke_fsm::dataplane::RuleMatch;
use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{FlowId, SwitchId};

/// An owed rule, and the flow it was one of (none for a rule found on a switch that no flow
/// owns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owed {
    pub rule: FlowSegment,
    pub flow_id: Option<FlowId>,
}

#[derive(Debug, Default)]
pub struct OwedRules {
    by_switch: BTreeMap<SwitchId, BTreeMap<(RuleMatch, u64), Owed>>,
    /// How many owed rules carry each cookie id: what they use stays taken while there are.
    by_cookie: HashMap<u64, usize>,
    count: usize,
}

impl OwedRules {
    /// Adds a rule to the debt; false if it was owed already.
    pub fn add(&mut self, rule: FlowSegment, flow_id: Option<FlowId>) -> bool {
        let key = (rule.rule_match(), rule.cookie);
        let cookie_id = rule.cookie_id();
        let switch = self.by_switch.entry(rule.switch_id).or_default();
        if switch.contains_key(&key) {
            return false;
        }
        switch.insert(key, Owed { rule, flow_id });
        *self.by_cookie.entry(cookie_id).or_default() += 1;
        self.count += 1;
        true
    }

    /// The rule is confirmed gone: it leaves the debt.
    pub fn pay(&mut self, rule: &FlowSegment) -> Option<Owed> {
        let switch = self.by_switch.get_mut(&rule.switch_id)?;
        let paid = switch.remove(&(rule.rule_match(), rule.cookie))?;
        if switch.is_empty() {
            self.by_switch.remove(&rule.switch_id);
        }
        let cookie_id = rule.cookie_id();
        if let Some(left) = self.by_cookie.get_mut(&cookie_id) {
            *left -= 1;
            if *left == 0 {
                self.by_cookie.remove(&cookie_id);
            }
        }
        self.count -= 1;
        Some(paid)
    }

    pub fn on(&self, switch_id: SwitchId) -> impl Iterator<Item = &Owed> {
        self.by_switch
            .get(&switch_id)
            .into_iter()
            .flat_map(|s| s.values())
    }

    pub fn switches(&self) -> impl Iterator<Item = SwitchId> + '_ {
        self.by_switch.keys().copied()
    }

    /// Whether some owed rule carries this cookie id.
    pub fn owes_cookie(&self, cookie_id: u64) -> bool {
        self.by_cookie.contains_key(&cookie_id)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::segments::SegmentKind;

    fn rule(switch: u64, cookie: u64, in_vlan: u16) -> FlowSegment {
        FlowSegment {
            switch_id: SwitchId(switch),
            kind: SegmentKind::Transit,
            cookie,
            in_port: 1,
            in_vlan,
            out_port: 2,
            out_vlan: in_vlan,
            meter_id: None,
            bandwidth: 0,
        }
    }

    #[test]
    fn a_cookie_is_owed_until_its_last_rule_is_paid() {
        let mut owed = OwedRules::default();
        assert!(owed.add(rule(1, 7, 10), Some("f".into())));
        assert!(!owed.add(rule(1, 7, 10), Some("f".into())), "owed once");
        assert!(owed.add(rule(2, 7, 11), Some("f".into())));
        assert_eq!((owed.len(), owed.owes_cookie(7)), (2, true));
        assert!(owed.pay(&rule(1, 7, 10)).is_some());
        assert!(owed.pay(&rule(1, 7, 10)).is_none(), "paid once");
        assert!(owed.owes_cookie(7), "switch 2 still holds one");
        owed.pay(&rule(2, 7, 11));
        assert!(!owed.owes_cookie(7));
        assert!(owed.is_empty());
        assert_eq!(owed.switches().count(), 0);
    }
}
