use super::*;
use hubspoke_fsm::ping::{probes, Probe};
use hubspoke_fsm::segments::{flow_segments, SegmentKind, FORWARD_COOKIE_FLAG};
use hubspoke_fsm::{FlowEndpoint, FlowRequest, Resources};

fn fabric() -> SwitchFabric {
    SwitchFabric::with_table_capacity(&Network::generate("linear:3").unwrap().unwrap(), 3)
}

fn segment(switch: u64, cookie: u64, meter_id: Option<u32>) -> FlowSegment {
    FlowSegment {
        switch_id: SwitchId(switch),
        kind: SegmentKind::Ingress,
        cookie,
        in_port: 10,
        // One match per cookie: a rule with the same match would replace it.
        in_vlan: cookie as u16,
        out_port: 1,
        out_vlan: 300,
        meter_id,
        bandwidth: 5000,
    }
}

fn command(action: SbAction, segment: FlowSegment) -> SbCommand {
    SbCommand {
        command_id: "c".into(),
        attempt: 1,
        action,
        segment,
        ping_exit: None,
    }
}

fn code(outcome: SbOutcome) -> Option<SbErrorCode> {
    match outcome {
        SbOutcome::Success
        | SbOutcome::Rules { .. }
        | SbOutcome::Pinged { .. }
        | SbOutcome::PingLost { .. } => None,
        SbOutcome::Error { code, .. } => Some(code),
    }
}

#[test]
fn a_dump_lists_every_rule_of_the_switch() {
    let mut fabric = fabric();
    let (a, b) = (segment(1, 7, Some(32)), segment(1, 8, None));
    for rule in [&a, &b] {
        fabric.apply(&command(SbAction::Install, rule.clone()));
    }
    let dump = |cookie_id| {
        command(
            SbAction::Dump,
            FlowSegment::dump_query(a.switch_id, cookie_id),
        )
    };
    assert_eq!(
        fabric.apply(&dump(0)),
        SbOutcome::Rules {
            rules: vec![a.clone(), b],
            meters: vec![MeterEntry {
                meter_id: 32,
                rate_kbps: 5000
            }]
        }
    );
    assert_eq!(
        fabric.apply(&dump(a.cookie_id())),
        SbOutcome::Rules {
            rules: vec![a],
            meters: vec![MeterEntry {
                meter_id: 32,
                rate_kbps: 5000
            }]
        },
        "one flow's rules"
    );
}

#[test]
fn install_verify_remove_round_trip() {
    let mut fabric = fabric();
    let rule = segment(1, 7, Some(32));
    assert_eq!(
        fabric.apply(&command(SbAction::Install, rule.clone())),
        SbOutcome::Success
    );
    assert_eq!(
        fabric.apply(&command(SbAction::Install, rule.clone())),
        SbOutcome::Success,
        "idempotent"
    );
    assert_eq!(fabric.rules(SwitchId(1)), Some(vec![rule.clone()]));
    assert_eq!(
        fabric.meters(SwitchId(1)),
        Some(BTreeMap::from([(32, 5000)]))
    );
    assert_eq!(
        fabric.apply(&command(SbAction::Verify, rule.clone())),
        SbOutcome::Success
    );
    assert_eq!(
        fabric.apply(&command(SbAction::Remove, rule.clone())),
        SbOutcome::Success
    );
    assert_eq!(fabric.rules(SwitchId(1)), Some(vec![]));
    assert_eq!(fabric.meters(SwitchId(1)), Some(BTreeMap::new()));
    assert_eq!(
        fabric.apply(&command(SbAction::Remove, rule.clone())),
        SbOutcome::Success,
        "idempotent"
    );
    assert_eq!(
        code(fabric.apply(&command(SbAction::Verify, rule))),
        Some(SbErrorCode::MissingRule)
    );
}

#[test]
fn verify_compares_the_whole_rule() {
    let mut fabric = fabric();
    fabric.apply(&command(SbAction::Install, segment(1, 7, None)));
    let mut other = segment(1, 7, None);
    other.out_vlan = 301;
    assert_eq!(
        code(fabric.apply(&command(SbAction::Verify, other))),
        Some(SbErrorCode::MissingRule)
    );
}

#[test]
fn bad_commands_are_refused() {
    let mut fabric = fabric();
    assert_eq!(
        code(fabric.apply(&command(SbAction::Install, segment(99, 1, None)))),
        Some(SbErrorCode::BadCommand)
    );
    assert_eq!(
        code(fabric.apply(&command(SbAction::Verify, segment(99, 1, None)))),
        Some(SbErrorCode::BadCommand)
    );
    let mut bad_port = segment(1, 1, None);
    bad_port.out_port = 49;
    assert_eq!(
        code(fabric.apply(&command(SbAction::Install, bad_port))),
        Some(SbErrorCode::BadCommand)
    );
    let mut zero_port = segment(1, 1, None);
    zero_port.in_port = 0;
    assert_eq!(
        code(fabric.apply(&command(SbAction::Install, zero_port))),
        Some(SbErrorCode::BadCommand)
    );
    assert_eq!(fabric.rules(SwitchId(1)), Some(vec![]));
}

#[test]
fn a_full_table_takes_no_new_rule_but_replaces() {
    let mut fabric = fabric();
    for cookie in 1..=3 {
        assert_eq!(
            fabric.apply(&command(SbAction::Install, segment(2, cookie, None))),
            SbOutcome::Success
        );
    }
    assert_eq!(
        code(fabric.apply(&command(SbAction::Install, segment(2, 4, None)))),
        Some(SbErrorCode::TableFull)
    );
    let mut replacement = segment(2, 3, None);
    replacement.out_vlan = 5;
    assert_eq!(
        fabric.apply(&command(SbAction::Install, replacement.clone())),
        SbOutcome::Success
    );
    assert_eq!(fabric.rules(SwitchId(2)).unwrap()[2], replacement);
}

#[test]
fn a_replaced_rule_releases_its_old_meter() {
    let mut fabric = fabric();
    fabric.apply(&command(SbAction::Install, segment(1, 7, Some(32))));
    fabric.apply(&command(SbAction::Install, segment(1, 7, Some(33))));
    assert_eq!(
        fabric.meters(SwitchId(1)),
        Some(BTreeMap::from([(33, 5000)]))
    );
}

#[test]
fn a_failed_switch_answers_unavailable_until_restored() {
    let mut fabric = fabric();
    fabric.fail_switch(SwitchId(1)).unwrap();
    assert_eq!(fabric.is_available(SwitchId(1)), Some(false));
    for action in [SbAction::Install, SbAction::Remove, SbAction::Verify] {
        assert_eq!(
            code(fabric.apply(&command(action, segment(1, 7, None)))),
            Some(SbErrorCode::SwitchUnavailable)
        );
    }
    fabric.restore_switch(SwitchId(1)).unwrap();
    assert_eq!(
        fabric.apply(&command(SbAction::Install, segment(1, 7, None))),
        SbOutcome::Success
    );
    assert!(matches!(
        fabric.fail_switch(SwitchId(42)),
        Err(FabricError::UnknownSwitch(SwitchId(42)))
    ));
}

#[test]
fn links_fail_in_both_directions() {
    let mut fabric = fabric();
    let isls = fabric.fail_link(SwitchId(2), SwitchId(1)).unwrap();
    assert_eq!(isls.len(), 2);
    assert!(isls.iter().all(|isl| !fabric.is_link_up(isl)));
    assert!(fabric.is_link_up(&isls[0].reversed()) == fabric.is_link_up(&isls[0]));
    fabric.restore_link(SwitchId(1), SwitchId(2)).unwrap();
    assert!(isls.iter().all(|isl| fabric.is_link_up(isl)));
    assert!(matches!(
        fabric.fail_link(SwitchId(1), SwitchId(3)),
        Err(FabricError::UnknownLink(SwitchId(1), SwitchId(3)))
    ));
    assert!(matches!(
        fabric.fail_link(SwitchId(1), SwitchId(9)),
        Err(FabricError::UnknownSwitch(SwitchId(9)))
    ));
}

#[test]
fn faults_are_set_globally_or_per_switch() {
    let mut fabric = fabric();
    let slow = Faults {
        latency_ms: 50,
        ..Faults::default()
    };
    fabric.set_faults(Some(SwitchId(2)), slow).unwrap();
    assert_eq!(fabric.faults().for_switch(SwitchId(2)), slow);
    assert_eq!(fabric.faults().for_switch(SwitchId(1)), Faults::default());
    fabric
        .set_faults(
            None,
            Faults {
                latency_ms: 1,
                ..Faults::default()
            },
        )
        .unwrap();
    assert_eq!(fabric.faults().for_switch(SwitchId(2)).latency_ms, 1);
    assert!(fabric.set_faults(Some(SwitchId(9)), slow).is_err());
}

#[test]
fn an_install_with_the_match_of_a_rule_replaces_it_as_openflow_does() {
    let mut fabric = fabric();
    let first = segment(1, 7, Some(32));
    let mut second = segment(1, 8, None);
    second.in_vlan = first.in_vlan;
    fabric.apply(&command(SbAction::Install, first.clone()));
    fabric.apply(&command(SbAction::Install, second.clone()));
    assert_eq!(
        fabric.rules(SwitchId(1)),
        Some(vec![second.clone()]),
        "one rule per match"
    );
    assert_eq!(
        fabric.meters(SwitchId(1)),
        Some(BTreeMap::new()),
        "the replaced rule's meter went with it"
    );
    assert_eq!(
        fabric.apply(&command(SbAction::Remove, first)),
        SbOutcome::Success
    );
    assert_eq!(
        fabric.rules(SwitchId(1)),
        Some(vec![second]),
        "removing the replaced rule by its cookie leaves the rule that replaced it"
    );
}

#[test]
fn a_traced_packet_follows_the_rules_across_links() {
    let network = Network::generate("linear:3").unwrap().unwrap();
    let mut fabric = SwitchFabric::new(&network);
    let isl = |from: u64, to: u64| {
        network
            .links()
            .iter()
            .map(|l| l.isl)
            .find(|i| i.src_switch == SwitchId(from) && i.dst_switch == SwitchId(to))
            .unwrap()
    };
    let (a, b) = (isl(1, 2), isl(2, 3));
    let rule = |switch, in_port, in_vlan, out_port, out_vlan| FlowSegment {
        switch_id: SwitchId(switch),
        kind: SegmentKind::Transit,
        cookie: switch,
        in_port,
        in_vlan,
        out_port,
        out_vlan,
        meter_id: None,
        bandwidth: 0,
    };
    for segment in [
        rule(1, 10, 100, a.src_port, 7),
        rule(2, a.dst_port, 7, b.src_port, 8),
        rule(3, b.dst_port, 8, 11, 0),
    ] {
        fabric.apply(&command(SbAction::Install, segment));
    }
    let start = PortVlan {
        switch_id: SwitchId(1),
        port: 10,
        vlan: 100,
    };
    let delivered = fabric.trace(start);
    assert_eq!(delivered.hops.len(), 3);
    assert!(delivered.delivered_at(&PortVlan {
        switch_id: SwitchId(3),
        port: 11,
        vlan: 0
    }));
    fabric.fail_link(SwitchId(2), SwitchId(3)).unwrap();
    assert!(matches!(
        fabric.trace(start).end,
        hubspoke_fsm::dataplane::TraceEnd::LinkDown { .. }
    ));
}

/// Flow "p" from port 10 VLAN 100 of switch 1 to port 11 VLAN 200 of switch 3 of linear:3,
/// its rules installed; its two probes, forward first.
fn pinged_flow(fabric: &mut SwitchFabric) -> (Vec<FlowSegment>, Vec<Probe>) {
    let network = Network::generate("linear:3").unwrap().unwrap();
    let path = network
        .shortest_path(SwitchId(1), SwitchId(3), 0, |_| Some(u64::MAX))
        .unwrap();
    let end = |switch, port_number, vlan_id| FlowEndpoint {
        switch_id: SwitchId(switch),
        port_number,
        vlan_id,
    };
    let request = FlowRequest {
        flow_id: "p".into(),
        source: end(1, 10, 100),
        destination: end(3, 11, 200),
        maximum_bandwidth: 0,
        description: String::new(),
        ..Default::default()
    };
    let resources = Resources {
        cookie: 5,
        transit_vlans: vec![300, 301],
        forward_meter: None,
        reverse_meter: None,
        forward_path: path,
        protected: None,
    };
    let rules = flow_segments(&request, &resources);
    for rule in &rules {
        assert_eq!(
            fabric.apply(&command(SbAction::Install, rule.clone())),
            SbOutcome::Success
        );
    }
    (rules, probes(&request, &resources))
}

fn ping(probe: &Probe) -> SbCommand {
    SbCommand {
        ping_exit: Some(probe.exit.clone()),
        ..command(SbAction::Ping, probe.ingress.clone())
    }
}

fn lost_reason(outcome: SbOutcome) -> String {
    match outcome {
        SbOutcome::PingLost { reason } => reason,
        other => panic!("expected a lost ping, got {other:?}"),
    }
}

#[test]
fn a_probe_through_a_flows_rules_arrives_both_ways() {
    let mut fabric = SwitchFabric::new(&Network::generate("linear:3").unwrap().unwrap());
    let (_, probes) = pinged_flow(&mut fabric);
    for probe in &probes {
        let outcome = fabric.apply(&ping(probe));
        assert!(
            matches!(outcome, SbOutcome::Pinged { latency_ns } if latency_ns > 0),
            "{:?}: {outcome:?}",
            probe.direction
        );
    }
    let mut wrong_exit = ping(&probes[0]);
    if let Some(exit) = wrong_exit.ping_exit.as_mut() {
        exit.vlan_id = 201;
    }
    let reason = lost_reason(fabric.apply(&wrong_exit));
    assert!(
        reason.contains("it left at switch 00:00:00:00:00:00:00:03 port 11 vlan 200, not at"),
        "{reason}"
    );
}

#[test]
fn a_probe_is_lost_where_a_rule_was_removed_by_hand() {
    let mut fabric = SwitchFabric::new(&Network::generate("linear:3").unwrap().unwrap());
    let (rules, probes) = pinged_flow(&mut fabric);
    let forward_transit = rules
        .iter()
        .find(|r| r.kind == SegmentKind::Transit && r.cookie & FORWARD_COOKIE_FLAG != 0)
        .unwrap();
    fabric.apply(&command(SbAction::Remove, forward_transit.clone()));
    let reason = lost_reason(fabric.apply(&ping(&probes[0])));
    assert!(
        reason.contains("sent in at switch 00:00:00:00:00:00:00:01 port 10 vlan 100"),
        "{reason}"
    );
    assert!(
        reason.contains("no rule matched it at switch 00:00:00:00:00:00:00:02"),
        "{reason}"
    );
    assert!(
        matches!(fabric.apply(&ping(&probes[1])), SbOutcome::Pinged { .. }),
        "the reverse direction still arrives"
    );
}

#[test]
fn a_probe_needs_a_live_path_and_switches_that_answer() {
    let mut fabric = SwitchFabric::new(&Network::generate("linear:3").unwrap().unwrap());
    let (_, probes) = pinged_flow(&mut fabric);
    fabric.fail_link(SwitchId(2), SwitchId(3)).unwrap();
    let reason = lost_reason(fabric.apply(&ping(&probes[0])));
    assert!(reason.contains("link that is down"), "{reason}");
    fabric.restore_link(SwitchId(2), SwitchId(3)).unwrap();

    fabric.fail_switch(SwitchId(1)).unwrap();
    assert_eq!(
        code(fabric.apply(&ping(&probes[0]))),
        Some(SbErrorCode::SwitchUnavailable),
        "a switch that does not answer cannot send the probe"
    );
    let reason = lost_reason(fabric.apply(&ping(&probes[1])));
    assert!(
        reason.contains("does not answer its controller to report it"),
        "{reason}"
    );

    let without_exit = command(SbAction::Ping, probes[1].ingress.clone());
    assert_eq!(
        code(fabric.apply(&without_exit)),
        Some(SbErrorCode::BadCommand)
    );
}
