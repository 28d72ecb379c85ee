//! The speaker's own packets: discovery probes, sent out of every port to find the ISLs, and
//! flow pings, sent into a flow's ingress to see it come out at the far end. Both are
//! Ethernet frames of the local experimental EtherType 0x88b5 that a switch sends back to the
//! controller by one of two system rules the speaker installs on every switch at connect:
//!
//! - **discovery**: frames to [`DISCOVERY_MAC`] (a multicast address of hubspoke's own) go to
//!   the controller, so the neighbour at the far end of a port reports its probe;
//! - **ping**: frames to the switch's own [`ping_mac`] go to the controller, so a ping is
//!   caught by the flow's exit switch, having crossed every switch before it by the flow's
//!   rules (those match in_port and VLAN only, so they forward a ping like any packet).
//!
//! Both rules sit above every flow rule ([`SYSTEM_PRIORITY`]) and carry cookies outside the
//! flow cookie space ([`DISCOVERY_COOKIE`], [`PING_COOKIE`]): a validation never counts them as
//! a flow's, and a sync never removes them.

use hubspoke_fsm::SwitchId;
use hubspoke_openflow::consts::{OFPCML_NO_BUFFER, OFPP_CONTROLLER, OFPP_TABLE, OFP_NO_BUFFER};
use hubspoke_openflow::PacketOut;
use hubspoke_openflow::{Action, FlowMod, FlowModCommand, Instruction, Match, Message, Oxm};

use crate::vlan::ETH_TYPE_8021Q;

/// IEEE 802 local experimental EtherType 1: no switch or host gives it a meaning of its own.
pub const PROBE_ETH_TYPE: u16 = 0x88b5;
/// Where discovery probes go: locally administered, multicast.
pub const DISCOVERY_MAC: [u8; 6] = [0x03, 0x68, 0x75, 0x62, 0x00, 0x01];
/// Above every flow rule ([`crate::PRIORITY`]).
pub const SYSTEM_PRIORITY: u16 = 0xfe00;
/// OpenKilda's system cookies have the top bit set: outside hubspoke's flow cookie space.
pub const DISCOVERY_COOKIE: u64 = 0x8000_0000_0000_0001;
pub const PING_COOKIE: u64 = 0x8000_0000_0000_0002;

const MAGIC: &[u8; 8] = b"hubspoke";
const KIND_DISCOVERY: u8 = 1;
const KIND_PING: u8 = 2;
/// Magic, kind, instance, switch, port, speed, id.
const PAYLOAD_LEN: usize = 8 + 1 + 8 + 8 + 4 + 4 + 8;

/// The switch's own ping address: locally administered unicast, with the datapath id's low
/// 40 bits (datapath ids that differ only above them share an address, and a ping between
/// them would be caught early: not a case on any network hubspoke builds).
pub fn ping_mac(switch_id: SwitchId) -> [u8; 6] {
    let id = switch_id.0.to_be_bytes();
    [0x0a, id[3], id[4], id[5], id[6], id[7]]
}

/// What a probe says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Sent out of `port` of `switch`, whose speed (kbps, 0 when it reports none) it carries
    /// so that the receiver knows both ends.
    Discovery {
        switch_id: SwitchId,
        port: u32,
        speed_kbps: u32,
    },
    /// Ping `id`, sent into a flow at `switch`'s `port`.
    Ping {
        switch_id: SwitchId,
        port: u32,
        id: u64,
    },
}

/// A probe from this speaker instance; another instance's (a predecessor's, still in flight)
/// is not this one's to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamped {
    pub instance: u64,
    pub probe: Probe,
}

impl Stamped {
    /// The Ethernet frame, tagged with `vlan` unless it is 0.
    pub fn frame(&self, vlan: u16) -> Vec<u8> {
        let (dst, kind, switch_id, port, speed, id) = match self.probe {
            Probe::Discovery {
                switch_id,
                port,
                speed_kbps,
            } => (
                DISCOVERY_MAC,
                KIND_DISCOVERY,
                switch_id,
                port,
                speed_kbps,
                0,
            ),
            Probe::Ping {
                switch_id,
                port,
                id,
            } => ([0; 6], KIND_PING, switch_id, port, 0, id),
        };
        let mut frame = Vec::with_capacity(18 + PAYLOAD_LEN);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&source_mac(switch_id));
        if vlan != 0 {
            frame.extend_from_slice(&ETH_TYPE_8021Q.to_be_bytes());
            frame.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
        }
        frame.extend_from_slice(&PROBE_ETH_TYPE.to_be_bytes());
        frame.extend_from_slice(MAGIC);
        frame.push(kind);
        frame.extend_from_slice(&self.instance.to_be_bytes());
        frame.extend_from_slice(&switch_id.0.to_be_bytes());
        frame.extend_from_slice(&port.to_be_bytes());
        frame.extend_from_slice(&speed.to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame
    }

    /// A ping's frame, addressed to the exit switch's [`ping_mac`].
    pub fn ping_frame(&self, exit: SwitchId, vlan: u16) -> Vec<u8> {
        let mut frame = self.frame(vlan);
        frame[..6].copy_from_slice(&ping_mac(exit));
        frame
    }

    /// The probe in a frame a switch sent up, `None` for any other frame (anything may reach
    /// the controller: a host can send to the probe addresses too).
    pub fn parse(frame: &[u8]) -> Option<Stamped> {
        let mut at = 12;
        let mut eth_type = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        // A ping is caught at its exit switch still tagged with its last ISL's VLAN.
        while eth_type == ETH_TYPE_8021Q || eth_type == 0x88a8 {
            at += 4;
            eth_type = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        }
        if eth_type != PROBE_ETH_TYPE {
            return None;
        }
        let payload = frame.get(at + 2..at + 2 + PAYLOAD_LEN)?;
        let (magic, rest) = payload.split_at(8);
        if magic != MAGIC {
            return None;
        }
        let kind = rest[0];
        let instance = u64::from_be_bytes(rest[1..9].try_into().ok()?);
        let switch_id = SwitchId(u64::from_be_bytes(rest[9..17].try_into().ok()?));
        let port = u32::from_be_bytes(rest[17..21].try_into().ok()?);
        let speed_kbps = u32::from_be_bytes(rest[21..25].try_into().ok()?);
        let id = u64::from_be_bytes(rest[25..33].try_into().ok()?);
        let probe = match kind {
            KIND_DISCOVERY => Probe::Discovery {
                switch_id,
                port,
                speed_kbps,
            },
            KIND_PING => Probe::Ping {
                switch_id,
                port,
                id,
            },
            _ => return None,
        };
        Some(Stamped { instance, probe })
    }
}

/// Locally administered unicast, from the sending switch's id: a probe's source address never
/// looks like a host's.
fn source_mac(switch_id: SwitchId) -> [u8; 6] {
    let mut mac = ping_mac(switch_id);
    mac[0] = 0x0e;
    mac
}

/// The two system rules a switch gets at connect: see the module's note.
pub fn system_rules(switch_id: SwitchId) -> Vec<Message> {
    [
        (DISCOVERY_COOKIE, DISCOVERY_MAC),
        (PING_COOKIE, ping_mac(switch_id)),
    ]
    .into_iter()
    .map(|(cookie, mac)| {
        Message::FlowMod(FlowMod {
            cookie,
            table_id: 0,
            command: FlowModCommand::Add,
            priority: SYSTEM_PRIORITY,
            matching: Match::new(vec![
                Oxm::EthDst {
                    addr: mac,
                    mask: None,
                },
                Oxm::EthType(PROBE_ETH_TYPE),
            ]),
            instructions: vec![Instruction::ApplyActions(vec![Action::Output {
                port: OFPP_CONTROLLER,
                max_len: OFPCML_NO_BUFFER,
            }])],
            ..FlowMod::default()
        })
    })
    .collect()
}

/// A discovery probe sent out of `port`.
pub fn send_out(port: u32, frame: Vec<u8>) -> Message {
    Message::PacketOut(PacketOut {
        buffer_id: OFP_NO_BUFFER,
        in_port: OFPP_CONTROLLER,
        actions: vec![Action::Output { port, max_len: 0 }],
        data: frame,
    })
}

/// A ping, entering the pipeline as if it had arrived on `in_port`: the flow's ingress rule
/// takes it from there.
pub fn send_in(in_port: u32, frame: Vec<u8>) -> Message {
    Message::PacketOut(PacketOut {
        buffer_id: OFP_NO_BUFFER,
        in_port,
        actions: vec![Action::Output {
            port: OFPP_TABLE,
            max_len: 0,
        }],
        data: frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_read_back_tagged_or_not() {
        let discovery = Stamped {
            instance: 7,
            probe: Probe::Discovery {
                switch_id: SwitchId(0x1_0000_0005),
                port: 3,
                speed_kbps: 10_000_000,
            },
        };
        assert_eq!(Stamped::parse(&discovery.frame(0)), Some(discovery));
        let frame = discovery.frame(0);
        assert_eq!(&frame[..6], &DISCOVERY_MAC);
        let ping = Stamped {
            instance: 7,
            probe: Probe::Ping {
                switch_id: SwitchId(1),
                port: 10,
                id: u64::MAX,
            },
        };
        let frame = ping.ping_frame(SwitchId(9), 300);
        assert_eq!(&frame[..6], &ping_mac(SwitchId(9)));
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x01, 0x2c]);
        assert_eq!(Stamped::parse(&frame), Some(ping));
    }

    #[test]
    fn other_frames_are_not_probes() {
        let probe = Stamped {
            instance: 1,
            probe: Probe::Ping {
                switch_id: SwitchId(1),
                port: 1,
                id: 1,
            },
        };
        let frame = probe.frame(100);
        for cut in 0..frame.len() {
            assert_eq!(Stamped::parse(&frame[..cut]), None, "cut at {cut}");
        }
        let mut wrong_magic = frame.clone();
        wrong_magic[20] ^= 1;
        assert_eq!(Stamped::parse(&wrong_magic), None);
        let mut ipv4 = frame;
        ipv4[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(Stamped::parse(&ipv4), None);
    }

    #[test]
    fn system_rules_sit_above_flows_outside_the_flow_cookie_space() {
        let rules = system_rules(SwitchId(4));
        assert_eq!(rules.len(), 2);
        for rule in rules {
            let Message::FlowMod(flow_mod) = rule else {
                panic!("a system rule is a FLOW_MOD");
            };
            assert!(flow_mod.priority > crate::PRIORITY);
            assert!(!hubspoke_fsm::segments::is_hubspoke_cookie(flow_mod.cookie));
        }
    }
}
