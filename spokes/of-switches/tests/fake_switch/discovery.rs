//! Discovery through fake switches whose wire the test plays: a probe one switch is told to
//! send out of a port is handed to the other as a PACKET_IN from the port at the far end.

use std::collections::BTreeSet;

use hubspoke_fsm::network::{DEFAULT_ISL_COST, DEFAULT_LINK_LATENCY_NS};
use hubspoke_fsm::{Isl, SbEvent, SwitchId};
use hubspoke_of_speaker::probe::{Probe, Stamped, DISCOVERY_COOKIE};
use hubspoke_openflow::consts::{OFPPR_MODIFY, OFPPS_LINK_DOWN, OFPR_ACTION, OFP_NO_BUFFER};
use hubspoke_openflow::{Match, Message, Oxm, PacketIn, PortStatus};

use crate::support::{port, ports, FakeSwitch, Harness};

const CAPACITY_KBPS: u64 = 4_000_000;

/// `frame` arrives at `switch` on `in_port`, sent up by its discovery rule.
fn arrives(switch: &mut FakeSwitch, in_port: u32, frame: Vec<u8>) {
    let packet = PacketIn {
        buffer_id: OFP_NO_BUFFER,
        total_len: u16::try_from(frame.len()).expect("a short frame"),
        reason: OFPR_ACTION,
        table_id: 0,
        cookie: DISCOVERY_COOKIE,
        matching: Match::new(vec![Oxm::InPort(in_port)]),
        data: frame,
    };
    switch.send(0, Message::PacketIn(packet));
}

/// The wire from `from`'s port to `to`'s carries `from`'s next probe out of that port: the
/// directed ISL it proves.
fn carry(from: &mut FakeSwitch, out_port: u32, to: &mut FakeSwitch, in_port: u32) -> Isl {
    let probe = from.probe_out_of(out_port);
    arrives(to, in_port, probe);
    Isl {
        src_switch: SwitchId(from.dpid),
        src_port: out_port,
        dst_switch: SwitchId(to.dpid),
        dst_port: in_port,
    }
}

fn up(isl: Isl) -> SbEvent {
    SbEvent::IslUp {
        isl,
        capacity: CAPACITY_KBPS,
        latency_ns: DEFAULT_LINK_LATENCY_NS,
        cost: DEFAULT_ISL_COST,
    }
}

#[test]
fn probes_across_a_wire_bring_the_isl_up_and_a_port_down_takes_it_down() {
    let h = Harness::with(|config| config.discovery.default_capacity_kbps = CAPACITY_KBPS);
    // The wire: port 2 of switch 1 to port 3 of switch 2. No port reports a speed.
    let mut a = h.connect(1, &ports(&[1, 2]));
    let mut b = h.connect(2, &ports(&[3, 4]));

    // Another speaker's probe (a predecessor's, still in flight) proves nothing.
    let foreign = Stamped {
        instance: 0,
        probe: Probe::Discovery {
            switch_id: SwitchId(1),
            port: 1,
            speed_kbps: 0,
        },
    };
    arrives(&mut b, 4, foreign.frame(0));

    let forward = carry(&mut a, 2, &mut b, 3);
    assert_eq!(h.event(), up(forward));
    let reverse = carry(&mut b, 3, &mut a, 2);
    assert_eq!(h.event(), up(reverse));

    // The link of port 3 goes down: both directions are down.
    let mut down = port(3);
    down.state = OFPPS_LINK_DOWN;
    b.send(
        0,
        Message::PortStatus(PortStatus {
            reason: OFPPR_MODIFY,
            desc: down,
        }),
    );
    let gone: BTreeSet<Isl> = [h.event(), h.event()]
        .into_iter()
        .map(|event| match event {
            SbEvent::IslDown { isl } => isl,
            other => panic!("an isl_down expected: {other:?}"),
        })
        .collect();
    assert_eq!(gone, BTreeSet::from([forward, reverse]));
    h.no_event();
}
