//! What a rule does to a packet's VLAN, both ways: the actions that take a packet from the
//! segment's `in_vlan` to its `out_vlan` (0: untagged), and the `out_vlan` a switch's action
//! list leaves a packet with. hubspoke's model has at most one (802.1Q) tag, so that is all
//! the actions may do; a list that does anything else cannot be read back as a segment.

use hubspoke_openflow::consts::OFPVID_PRESENT;
use hubspoke_openflow::{Action, Oxm};

use crate::rule::Unreadable;

/// The 802.1Q ethertype: the only tag hubspoke pushes.
pub const ETH_TYPE_8021Q: u16 = 0x8100;

/// The VLAN actions, before the output, as the simulator's rule changes the VLAN: push and set
/// where an untagged packet leaves tagged (ingress), pop where a tagged one leaves untagged
/// (egress to an untagged port), set where the tag changes (transit, or egress to a tagged
/// port), nothing where it stays as it came.
pub fn vlan_actions(in_vlan: u16, out_vlan: u16) -> Vec<Action> {
    match (in_vlan, out_vlan) {
        (0, 0) => vec![],
        (0, out) => vec![
            Action::PushVlan {
                ethertype: ETH_TYPE_8021Q,
            },
            Action::SetField(Oxm::vlan(out)),
        ],
        (_, 0) => vec![Action::PopVlan],
        (held, out) if held == out => vec![],
        (_, out) => vec![Action::SetField(Oxm::vlan(out))],
    }
}

/// Follows a packet that came in with `in_vlan` through `actions`: the port it leaves on and
/// its VLAN then. Exactly one output, last, is what hubspoke's rules do.
pub fn read_actions(in_vlan: u16, actions: &[Action]) -> Result<(u32, u16), Unreadable> {
    // None: untagged; Some(vid): tagged (vid 0 only after a push without a set).
    let mut tag = (in_vlan != 0).then_some(in_vlan);
    let Some((Action::Output { port, .. }, before)) = actions.split_last() else {
        return Err(Unreadable::Actions("they do not end in one output"));
    };
    for action in before {
        tag = match (action, tag) {
            (Action::PushVlan { ethertype }, None) if *ethertype == ETH_TYPE_8021Q => Some(0),
            (Action::PopVlan, Some(_)) => None,
            (Action::SetField(Oxm::VlanVid { value, mask: None }), Some(_))
                if value & OFPVID_PRESENT != 0 =>
            {
                Some(value & 0x0fff)
            }
            _ => return Err(Unreadable::Actions("a VLAN change hubspoke does not make")),
        };
    }
    match tag {
        Some(0) => Err(Unreadable::Actions("a tag pushed without an id")),
        tag => Ok((*port, tag.unwrap_or(0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(in_vlan: u16, out_vlan: u16) -> Result<(u32, u16), Unreadable> {
        let mut actions = vlan_actions(in_vlan, out_vlan);
        actions.push(Action::Output {
            port: 7,
            max_len: 0,
        });
        read_actions(in_vlan, &actions)
    }

    #[test]
    fn every_vlan_change_reads_back() {
        for (in_vlan, out_vlan) in [(0, 0), (0, 300), (300, 0), (300, 301), (300, 300)] {
            assert_eq!(
                through(in_vlan, out_vlan),
                Ok((7, out_vlan)),
                "{in_vlan}->{out_vlan}"
            );
        }
    }

    #[test]
    fn the_actions_are_the_simulators_vlan_changes() {
        let push = Action::PushVlan {
            ethertype: ETH_TYPE_8021Q,
        };
        assert_eq!(
            vlan_actions(0, 300),
            vec![push, Action::SetField(Oxm::vlan(300))]
        );
        assert_eq!(vlan_actions(300, 0), vec![Action::PopVlan]);
        assert_eq!(
            vlan_actions(300, 301),
            vec![Action::SetField(Oxm::vlan(301))]
        );
        assert_eq!(vlan_actions(0, 0), vec![]);
        assert_eq!(vlan_actions(300, 300), vec![]);
    }

    #[test]
    fn what_hubspoke_does_not_do_is_unreadable() {
        let out = Action::Output {
            port: 1,
            max_len: 0,
        };
        let push = Action::PushVlan {
            ethertype: ETH_TYPE_8021Q,
        };
        for (in_vlan, actions) in [
            (0, vec![]),
            (0, vec![out.clone(), out.clone()]),
            (0, vec![Action::PopVlan, out.clone()]),
            (300, vec![push.clone(), out.clone()]),
            (0, vec![push, out.clone()]),
            (0, vec![Action::SetField(Oxm::vlan(5)), out.clone()]),
            (
                0,
                vec![
                    Action::PushVlan { ethertype: 0x88a8 },
                    Action::SetField(Oxm::vlan(5)),
                    out,
                ],
            ),
        ] {
            assert!(read_actions(in_vlan, &actions).is_err(), "{actions:?}");
        }
    }
}
