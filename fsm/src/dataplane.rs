//! The data plane as an OpenFlow 1.3 switch sees it, reduced to what hubspoke's rules use: a
//! rule matches a packet by the port it came in on and its VLAN (0: untagged), exactly; an
//! install whose match equals a rule's replaces that rule (OFPFC_ADD), whatever its cookie.
//!
//! [`trace`] follows one packet through rule tables and across inter-switch links, the way
//! the tests and the flow validation judge a flow: a flow is right when a packet entering at
//! its source endpoint leaves at its destination endpoint with the right VLAN, both ways, and
//! no other rule could catch it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::segments::FlowSegment;
use crate::{FlowEndpoint, SwitchId};

/// What a rule matches: the port a packet came in on and its VLAN (0: untagged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleMatch {
    pub in_port: u32,
    pub in_vlan: u16,
}

impl FlowSegment {
    pub fn rule_match(&self) -> RuleMatch {
        RuleMatch {
            in_port: self.in_port,
            in_vlan: self.in_vlan,
        }
    }
}

/// A packet on a port of a switch: arriving there (the start of a trace), or leaving there
/// (its end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortVlan {
    pub switch_id: SwitchId,
    pub port: u32,
    /// 0: untagged.
    pub vlan: u16,
}

impl From<&FlowEndpoint> for PortVlan {
    fn from(endpoint: &FlowEndpoint) -> Self {
        PortVlan {
            switch_id: endpoint.switch_id,
            port: endpoint.port_number,
            vlan: endpoint.vlan_id,
        }
    }
}

impl std::fmt::Display for PortVlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "switch {} port {} vlan {}",
            self.switch_id, self.port, self.vlan
        )
    }
}

/// One rule a traced packet went through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub switch_id: SwitchId,
    pub in_port: u32,
    pub in_vlan: u16,
    pub cookie: u64,
    pub out_port: u32,
    pub out_vlan: u16,
}

/// Where a traced packet ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TraceEnd {
    /// It left the network on a port that is not an inter-switch link.
    Delivered(PortVlan),
    /// No rule matched it here: the switch dropped it.
    NoRule(PortVlan),
    /// More than one rule matched it here: which one wins is up to the switch.
    Ambiguous { at: PortVlan, cookies: Vec<u64> },
    /// It came back to a port and VLAN it had already been through.
    Loop(PortVlan),
    /// It was sent over an inter-switch link that is down.
    LinkDown { from: PortVlan },
    /// It reached a switch whose rules the trace was not given.
    Unknown(PortVlan),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub hops: Vec<Hop>,
    pub end: TraceEnd,
}

impl Trace {
    /// Whether the packet left the network exactly at `at`.
    pub fn delivered_at(&self, at: &PortVlan) -> bool {
        self.end == TraceEnd::Delivered(*at)
    }

    /// Why the packet did not leave the network exactly at `exit`, in words; `None` when it
    /// did.
    pub fn missed(&self, exit: &PortVlan) -> Option<String> {
        Some(match &self.end {
            TraceEnd::Delivered(at) if at == exit => return None,
            TraceEnd::Delivered(at) => format!("it left at {at}, not at {exit}"),
            TraceEnd::NoRule(at) => format!("no rule matched it at {at}: dropped there"),
            TraceEnd::Ambiguous { at, cookies } => {
                let cookies: Vec<String> = cookies.iter().map(|c| format!("{c:#x}")).collect();
                format!("rules {} all matched it at {at}", cookies.join(", "))
            }
            TraceEnd::Loop(at) => format!("it looped: it came back to {at}"),
            TraceEnd::LinkDown { from } => {
                format!("it was sent over a link that is down, from {from}")
            }
            TraceEnd::Unknown(at) => format!("it reached {at}, whose rules are unknown"),
        })
    }
}

/// Where a port leads: the far end of the inter-switch link on it, and whether the link is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEnd {
    pub switch_id: SwitchId,
    pub port: u32,
    pub up: bool,
}

/// What a trace needs to know of the network.
pub trait DataPlane {
    /// The rules of `switch_id` that match a packet on `in_port` with `vlan`; `None` when the
    /// switch's rules are unknown.
    fn matching(&self, switch_id: SwitchId, rule: RuleMatch) -> Option<Vec<&FlowSegment>>;
    /// The link on a port, if it is an inter-switch link.
    fn link(&self, switch_id: SwitchId, port: u32) -> Option<LinkEnd>;
}

/// Follows a packet that arrives at `start` until it leaves the network or stops.
pub fn trace(network: &impl DataPlane, start: PortVlan) -> Trace {
    let mut hops = Vec::new();
    let mut seen = BTreeSet::new();
    let mut at = start;
    loop {
        if !seen.insert(at) {
            return Trace {
                hops,
                end: TraceEnd::Loop(at),
            };
        }
        let rule_match = RuleMatch {
            in_port: at.port,
            in_vlan: at.vlan,
        };
        let Some(rules) = network.matching(at.switch_id, rule_match) else {
            return Trace {
                hops,
                end: TraceEnd::Unknown(at),
            };
        };
        let rule = match rules.as_slice() {
            [] => {
                return Trace {
                    hops,
                    end: TraceEnd::NoRule(at),
                }
            }
            [rule] => *rule,
            several => {
                let cookies = several.iter().map(|r| r.cookie).collect();
                return Trace {
                    hops,
                    end: TraceEnd::Ambiguous { at, cookies },
                };
            }
        };
        hops.push(Hop {
            switch_id: at.switch_id,
            in_port: at.port,
            in_vlan: at.vlan,
            cookie: rule.cookie,
            out_port: rule.out_port,
            out_vlan: rule.out_vlan,
        });
        let leaving = PortVlan {
            switch_id: at.switch_id,
            port: rule.out_port,
            vlan: rule.out_vlan,
        };
        match network.link(at.switch_id, rule.out_port) {
            None => {
                return Trace {
                    hops,
                    end: TraceEnd::Delivered(leaving),
                }
            }
            Some(link) if !link.up => {
                return Trace {
                    hops,
                    end: TraceEnd::LinkDown { from: leaving },
                }
            }
            Some(link) => {
                at = PortVlan {
                    switch_id: link.switch_id,
                    port: link.port,
                    vlan: rule.out_vlan,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::{flow_segments, SegmentKind};
    use crate::test_support::{request, resources, Tables};

    fn endpoints() -> (PortVlan, PortVlan) {
        let flow = request(1, 3);
        ((&flow.source).into(), (&flow.destination).into())
    }

    #[test]
    fn a_flows_rules_carry_a_packet_both_ways_with_its_vlans() {
        let rules = flow_segments(&request(1, 3), &resources(3));
        let tables = Tables::new("linear:3", rules);
        let (source, destination) = endpoints();
        let forward = trace(&tables, source);
        assert!(forward.delivered_at(&destination), "{forward:?}");
        assert_eq!(forward.missed(&destination), None);
        let elsewhere = forward.missed(&source).unwrap_or_default();
        assert!(
            elsewhere.contains(&format!("left at {destination}, not at {source}")),
            "{elsewhere}"
        );
        assert_eq!(forward.hops.len(), 3, "ingress, transit, egress");
        let back = trace(&tables, destination);
        assert!(back.delivered_at(&source), "{back:?}");
    }

    #[test]
    fn a_trace_says_why_a_packet_stopped() {
        let rules = flow_segments(&request(1, 3), &resources(3));
        let (source, _) = endpoints();
        let without_transit: Vec<FlowSegment> = rules
            .iter()
            .filter(|r| r.kind != SegmentKind::Transit)
            .cloned()
            .collect();
        let stopped = trace(&Tables::new("linear:3", without_transit), source);
        assert!(matches!(stopped.end, TraceEnd::NoRule(at) if at.switch_id == SwitchId(2)));
        let why = stopped.missed(&source).unwrap_or_default();
        assert!(
            why.starts_with("no rule matched it at switch 00:00:00:00:00:00:00:02 port"),
            "{why}"
        );

        let mut doubled = rules.clone();
        let mut stale = rules[1].clone();
        stale.cookie += 1000;
        stale.out_port = 7;
        doubled.push(stale);
        let ambiguous = trace(&Tables::new("linear:3", doubled), source);
        assert!(
            matches!(ambiguous.end, TraceEnd::Ambiguous { ref cookies, .. } if cookies.len() == 2)
        );

        let mut tables = Tables::new("linear:3", rules.clone());
        tables.down.insert((SwitchId(1), rules[0].out_port));
        let cut = trace(&tables, source);
        assert!(matches!(cut.end, TraceEnd::LinkDown { .. }), "{cut:?}");
        assert!(cut
            .missed(&source)
            .is_some_and(|why| why.contains("link that is down")));

        // Switch 2 sends the packet back where it came from, and switch 1 sends it on again.
        let (to_2, from_1) = (rules[0].out_port, rules[1].in_port);
        let hop = |switch, in_port, out_port| FlowSegment {
            switch_id: SwitchId(switch),
            in_port,
            in_vlan: 5,
            out_port,
            out_vlan: 5,
            ..rules[0].clone()
        };
        let mut looping = vec![rules[0].clone(), hop(2, from_1, from_1), hop(1, to_2, to_2)];
        looping[0].out_vlan = 5;
        let round = trace(&Tables::new("linear:3", looping), source);
        assert!(matches!(round.end, TraceEnd::Loop(_)), "{round:?}");
        assert!(round
            .missed(&source)
            .is_some_and(|why| why.starts_with("it looped")));
    }
}
