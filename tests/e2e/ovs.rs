//! `scripts/ovs.sh` builds networks of real Open vSwitch bridges (userspace, dummy mode) for
//! the OpenFlow speaker's tests and for people. Its selftest runs against a real OVS (installed
//! with apt when missing): the shapes and port numbers of the simulator's specs, datapath ids,
//! a frame carried across three bridges with VLAN push / swap / pop, links and switches failing
//! and coming back as a controller sees them, idempotent start and stop, instances side by side.

use std::process::Command;

#[test]
fn the_ovs_script_builds_networks_that_carry_frames_and_fail_on_demand() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ovs-selftest.sh");
    let output = Command::new(script)
        .output()
        .expect("run scripts/ovs-selftest.sh");
    assert!(
        output.status.success(),
        "scripts/ovs-selftest.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
