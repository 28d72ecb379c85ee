//! `scripts/ovs.sh` builds networks of real Open vSwitch bridges (userspace, dummy mode) for
//! the OpenFlow speaker's tests and for people. Its selftest runs against a real OVS (installed
//! with apt when missing): the shapes and port numbers of the simulator's specs, datapath ids,
//! a frame carried across three bridges with VLAN push / swap / pop, links and switches failing
//! and coming back as a controller sees them, idempotent start and stop, instances side by side.
//! The harness the speaker's tests drive OVS with (`support::ovs`) is proven here too, with
//! rules installed by hand and real frames.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::ovs::{Link, Ovs};
use crate::support::{free_port, script};

#[test]
fn the_ovs_script_builds_networks_that_carry_frames_and_fail_on_demand() {
    let output = Command::new(script("ovs-selftest.sh"))
        .output()
        .expect("run scripts/ovs-selftest.sh");
    assert!(
        output.status.success(),
        "scripts/ovs-selftest.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A two-way path s1 → s2 → s3 of grid:3x3 installed by hand, as the speaker would: forward
/// untagged at s1-p10 to VLAN 42 at s3-p10 (push 100, swap to 200, swap to 42), back from VLAN
/// 42 at s3-p10 to untagged at s1-p10 (swap to 300, swap to 400, pop). Cookies carry
/// hubspoke's direction flags; s1 also gets a system rule.
const RULES: [(u64, &str); 7] = [
    (1, "cookie=0x4000000000000007,in_port=10,vlan_tci=0x0000/0x1fff,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:1"),
    (2, "cookie=0x4000000000000007,in_port=1,dl_vlan=100,actions=set_field:4296->vlan_vid,output:2"),
    (3, "cookie=0x4000000000000007,in_port=1,dl_vlan=200,actions=set_field:4138->vlan_vid,output:10"),
    (3, "cookie=0x2000000000000007,in_port=10,dl_vlan=42,actions=set_field:4396->vlan_vid,output:1"),
    (2, "cookie=0x2000000000000007,in_port=2,dl_vlan=300,actions=set_field:4496->vlan_vid,output:1"),
    (1, "cookie=0x2000000000000007,in_port=1,dl_vlan=400,actions=pop_vlan,output:10"),
    (1, "cookie=0x8000000000000001,priority=0,actions=drop"),
];

#[test]
fn the_ovs_harness_sees_frames_follow_rules_and_stop_at_deleted_rules_and_failed_links() {
    // Nothing listens there: the bridges (fail_mode=secure) forward only by the rules below.
    let nobody: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let ovs = Ovs::start("grid:3x3", nobody);
    assert_eq!(ovs.edge_ports(5), [10, 11, 12, 13]);
    let links = ovs.links();
    assert_eq!(links.len(), 12);
    let link = |a, port_a, b, port_b| Link {
        a,
        port_a,
        b,
        port_b,
    };
    assert_eq!(
        links[..3],
        [link(1, 1, 2, 1), link(1, 2, 4, 1), link(2, 2, 3, 1)]
    );

    let (forward, back) = ((1, 10, 0), (3, 10, 42));
    ovs.expect_not_delivered(forward, (3, 10)).unwrap(); // no rules yet
    for (switch, rule) in RULES {
        ovs.ofctl(&["add-flow", &format!("s{switch}"), rule]);
    }
    assert_eq!(ovs.dump_flows(1).len(), 3);
    assert_eq!(ovs.hubspoke_rules(1).len(), 2, "{:?}", ovs.dump_flows(1));
    assert!(ovs.dump_meters(1).is_empty());
    ovs.ofctl(&["add-meter", "s1", "meter=5,kbps,band=type=drop,rate=1000"]);
    assert_eq!(
        ovs.dump_meters(1),
        ["meter=5 kbps bands=type=drop rate=1000"]
    );

    for (from, to) in [(forward, back), (back, forward)] {
        let took = ovs.expect_delivered(from, to).unwrap();
        println!("{from:?} -> {to:?}: {took:?}");
    }
    // The VLAN on each ISL; a wrong VLAN fails at once, saying where the probe went.
    ovs.expect_delivered(forward, (1, 1, 100)).unwrap();
    ovs.expect_delivered(forward, (2, 2, 200)).unwrap();
    ovs.expect_delivered(back, (2, 1, 400)).unwrap();
    let wrong = ovs.expect_delivered(forward, (3, 10, 7)).unwrap_err().0;
    assert!(
        wrong.contains("as probe") && wrong.contains("vlan 42"),
        "{wrong}"
    );
    assert!(
        wrong.contains("s2-p2 as probe"),
        "says where else it went: {wrong}"
    );
    let untagged = ovs.expect_delivered(back, (1, 10, 7)).unwrap_err().0;
    assert!(untagged.contains("untagged"), "{untagged}");
    ovs.expect_not_delivered(forward, (3, 11)).unwrap();
    assert!(ovs.expect_not_delivered(forward, (3, 10)).is_err());

    // A deleted rule cuts its direction only.
    ovs.ofctl(&["del-flows", "s2", "--strict", "in_port=1,dl_vlan=100"]);
    assert_eq!(ovs.hubspoke_rules(2).len(), 1);
    ovs.expect_not_delivered(forward, (3, 10)).unwrap();
    ovs.expect_delivered(back, forward).unwrap();

    // A failed link cuts frames; restored, it carries them again.
    ovs.fail_link(3, 2);
    ovs.expect_not_delivered(back, (1, 10)).unwrap();
    ovs.restore_link(2, 3);
    ovs.expect_delivered(back, forward).unwrap();

    // A failed switch comes back empty; its captures go on.
    ovs.capture(2, 1);
    ovs.fail_switch(2);
    ovs.expect_not_delivered(back, (1, 10)).unwrap();
    ovs.restore_switch(2);
    assert!(ovs.dump_flows(2).is_empty());
    ovs.ofctl(&["add-flow", "s2", RULES[4].1]);
    ovs.expect_delivered(back, (2, 1, 400)).unwrap();

    // The controller turns up late: `reconnect` has all 9 switches connect at once.
    let controller = TcpListener::bind(nobody).expect("the controller's port");
    ovs.reconnect();
    controller.set_nonblocking(true).unwrap();
    let (mut connected, start) = (0, Instant::now());
    while connected < 9 && start.elapsed() < Duration::from_secs(3) {
        match controller.accept() {
            Ok(_) => connected += 1,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert_eq!(connected, 9, "switches connected within 3 s of reconnect");
}
