use hubspoke_fsm::network::Network;
use hubspoke_fsm::{FlowEndpoint, FlowRecord, FlowRequest, FlowStatus, RemovalDebt, Resources};

use super::*;

fn pool() -> ResourcePool {
    let mut pool = ResourcePool::new();
    for event in Network::generate("linear:3")
        .unwrap()
        .unwrap()
        .announcement()
    {
        pool.apply_network_event(&event);
    }
    pool
}

fn request(flow_id: &str, port: u32) -> FlowRequest {
    let end = |switch| FlowEndpoint {
        switch_id: SwitchId(switch),
        port_number: port,
        vlan_id: 100,
    };
    FlowRequest {
        flow_id: flow_id.into(),
        source: end(1),
        destination: end(3),
        maximum_bandwidth: 1000,
        description: String::new(),
        ..Default::default()
    }
}

fn settings() -> KeeperSettings {
    KeeperSettings {
        debt_retry_ms: 1_000,
        debt_retry_cap_ms: 8_000,
        sweep_ms: 0,
        sweep_parallel: 2,
    }
}

fn commands(out: &[KeeperOutput]) -> Vec<(String, SbAction, FlowSegment)> {
    out.iter()
        .filter_map(|o| match o {
            KeeperOutput::Speaker(SpeakerRequest::Run {
                command_id,
                action,
                segment,
                ..
            }) => Some((command_id.clone(), *action, segment.clone())),
            _ => None,
        })
        .collect()
}

fn pay_debt_at(out: &[KeeperOutput], switch_id: SwitchId) -> Option<(u64, u64)> {
    out.iter().find_map(|o| match o {
        KeeperOutput::Deadline(DeadlineRequest::Register {
            key: TimerKey::Keeper(KeeperTimer::PayDebt(s)),
            generation,
            at_ms,
        }) if *s == switch_id => Some((*generation, *at_ms)),
        _ => None,
    })
}

/// Switch 2's debt retry `due` (generation, time) fires: the removals it sends.
fn pay_debt_due(
    keeper: &mut Keeper,
    pool: &ResourcePool,
    due: (u64, u64),
    out: &mut Vec<KeeperOutput>,
) -> Vec<(String, SbAction, FlowSegment)> {
    out.clear();
    let (generation, at_ms) = due;
    keeper.timer(
        at_ms,
        pool,
        KeeperTimer::PayDebt(SwitchId(2)),
        generation,
        out,
    );
    commands(out)
}

fn report(command_id: &str, outcome: ReportOutcome) -> SpeakerReport {
    SpeakerReport {
        requester: Requester::Keeper,
        flow_id: "switch/x".into(),
        correlation_id: "k".into(),
        command_id: command_id.into(),
        outcome,
    }
}

fn failed() -> ReportOutcome {
    ReportOutcome::Failed {
        reason: "SWITCH_UNAVAILABLE".into(),
    }
}

/// Flow "f" deleted with its transit rule on switch 2 not confirmed removed: the debt.
fn deleted_with_debt(pool: &mut ResourcePool) -> (Resources, FlowSegment) {
    let resources = pool.allocate(&request("f", 10)).unwrap();
    let transit = flow_segments(&request("f", 10), &resources)
        .into_iter()
        .find(|rule| rule.switch_id == SwitchId(2))
        .unwrap();
    pool.owe(
        "f",
        RemovalDebt {
            reservation: Reservation {
                request: request("f", 10),
                resources: resources.clone(),
            },
            rules: vec![transit.clone()],
        },
    );
    pool.free("f");
    (resources, transit)
}

#[test]
fn owed_rules_are_retried_with_growing_waits_until_they_are_gone() {
    let mut pool = pool();
    let (resources, transit) = deleted_with_debt(&mut pool);
    let mut keeper = Keeper::new(settings());
    let mut out = Vec::new();
    keeper.owed(0, SwitchId(2), &mut out);
    let mut due = pay_debt_at(&out, SwitchId(2)).expect("a retry is scheduled");
    assert!(
        (1_000..=1_500).contains(&due.1),
        "after the first wait: {due:?}"
    );
    let mut waits = Vec::new();
    for _ in 0..4 {
        let removal = pay_debt_due(&mut keeper, &pool, due, &mut out);
        assert_eq!(removal.len(), 1);
        assert_eq!((removal[0].1, &removal[0].2), (SbAction::Remove, &transit));
        out.clear();
        keeper.report(
            due.1 + 1,
            &mut pool,
            report(&removal[0].0, failed()),
            &mut out,
        );
        let next = pay_debt_at(&out, SwitchId(2)).expect("tried again");
        waits.push(next.1 - (due.1 + 1));
        due = next;
    }
    let doubled = |base: u64, wait: u64| (base..=base + base / 2).contains(&wait);
    assert!(doubled(2_000, waits[0]), "{waits:?}");
    assert!(doubled(4_000, waits[1]), "{waits:?}");
    assert!(doubled(8_000, waits[2]), "{waits:?}");
    assert!(doubled(8_000, waits[3]), "capped: {waits:?}");
    assert_eq!(pool.owed().len(), 1);
    assert!(
        pool.allocate(&request("g", 10)).is_err(),
        "the deleted flow's endpoint stays taken while its rule is owed"
    );

    let removal = pay_debt_due(&mut keeper, &pool, due, &mut out);
    out.clear();
    keeper.report(
        due.1 + 1,
        &mut pool,
        report(&removal[0].0, ReportOutcome::Succeeded),
        &mut out,
    );
    assert!(pool.owed().is_empty());
    assert!(
        out.iter().any(|o| matches!(o, KeeperOutput::Event(e) if matches!(e.payload, FlowEvent::RemovalPaid { .. }))),
        "the payment is made durable"
    );
    let again = pool
        .allocate(&request("g", 10))
        .expect("paid: everything is free again");
    assert_eq!(
        again.cookie, resources.cookie,
        "the quarantined cookie is given back"
    );
    assert_eq!(keeper.stats().debt_paid, 1);
}

#[test]
fn a_switch_coming_back_pays_its_debt_at_once() {
    let mut pool = pool();
    let (_, transit) = deleted_with_debt(&mut pool);
    let mut keeper = Keeper::new(settings());
    let mut out = Vec::new();
    keeper.owed(0, SwitchId(2), &mut out);
    out.clear();
    pool.apply_network_event(&SbEvent::SwitchRemoved {
        switch_id: SwitchId(2),
    });
    let back = pool.apply_network_event(&SbEvent::SwitchAdded {
        switch_id: SwitchId(2),
        ports: 48,
        port_numbers: Vec::new(),
    });
    assert_eq!(back, Some(SwitchId(2)));
    keeper.switch_back(&pool, SwitchId(2), &mut out);
    let sent = commands(&out);
    assert!(sent
        .iter()
        .any(|(_, a, s)| *a == SbAction::Remove && *s == transit));
    assert!(
        sent.iter().any(|(_, a, _)| *a == SbAction::Dump),
        "and the switch is synced"
    );
}

#[test]
fn a_switch_that_connects_again_or_holds_flows_is_synced_and_a_new_one_is_not() {
    let mut pool = pool();
    let added = |switch: u64| SbEvent::SwitchAdded {
        switch_id: SwitchId(switch),
        ports: 48,
        port_numbers: Vec::new(),
    };
    // Connected again without a removal in between: a restarted speaker.
    assert_eq!(pool.apply_network_event(&added(2)), Some(SwitchId(2)));
    // A topology restarted with its flows recovered has never seen the switches, but a
    // switch that holds a recovered flow's rules may have lost them meanwhile.
    let mut restarted = ResourcePool::new();
    let resources = pool.allocate(&request("f", 10)).expect("a path");
    let mut record = FlowRecord::new(request("f", 10), 0);
    record.resources = Some(resources);
    record.status = FlowStatus::Up;
    restarted.restore(&record);
    assert_eq!(restarted.apply_network_event(&added(1)), Some(SwitchId(1)));
    assert_eq!(
        restarted.apply_network_event(&added(7)),
        None,
        "a switch new to the topology, with no flow on it, has nothing to repair"
    );
}

#[test]
fn a_restarted_topology_syncs_the_switches_its_recovered_flows_are_on() {
    let resources = pool().allocate(&request("f", 10)).expect("a path");
    let mut record = FlowRecord::new(request("f", 10), 0);
    record.resources = Some(resources);
    record.status = FlowStatus::Up;
    let mut restarted = pool();
    restarted.restore(&record);
    let mut keeper = Keeper::new(settings());
    let mut out = Vec::new();
    keeper.start(0, &restarted, &mut out);
    let dumped: Vec<SwitchId> = commands(&out)
        .into_iter()
        .filter(|(_, action, _)| *action == SbAction::Dump)
        .map(|(_, _, query)| query.switch_id)
        .collect();
    assert_eq!(
        dumped,
        vec![SwitchId(1), SwitchId(2)],
        "two syncs at a time, the third queued"
    );
}

fn dumped(rules: Vec<FlowSegment>) -> ReportOutcome {
    ReportOutcome::Listed {
        rules,
        meters: Vec::new(),
    }
}

use hubspoke_fsm::SbEvent;

#[test]
fn a_sync_removes_excess_rules_and_asks_the_hubs_to_repair_missing_ones() {
    let mut pool = pool();
    let resources = pool.allocate(&request("f", 10)).unwrap();
    let on_2: Vec<FlowSegment> = flow_segments(&request("f", 10), &resources)
        .into_iter()
        .filter(|rule| rule.switch_id == SwitchId(2))
        .collect();
    let stray = FlowSegment {
        cookie: on_2[0].cookie + 500,
        in_vlan: 999,
        ..on_2[0].clone()
    };
    let mut keeper = Keeper::new(settings());
    let mut out = Vec::new();
    let sync = Envelope::new(
        "c1",
        SwitchId(2).to_string(),
        5,
        NbRequest::SyncSwitch {
            switch_id: SwitchId(2),
        },
    );
    keeper.request(5, &pool, sync, &mut out);
    let dump = commands(&out);
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].1, SbAction::Dump);
    out.clear();
    // The switch holds one of the flow's two rules there, and a stray.
    let held = vec![on_2[0].clone(), stray.clone()];
    keeper.report(6, &mut pool, report(&dump[0].0, dumped(held)), &mut out);
    assert!(out.iter().any(|o| matches!(
        o,
        KeeperOutput::Repair { flow_id, switch_id } if flow_id == "f" && *switch_id == SwitchId(2)
    )));
    let removals = commands(&out);
    assert_eq!(removals.len(), 1);
    assert_eq!((removals[0].1, &removals[0].2), (SbAction::Remove, &stray));
    assert_eq!(
        pool.owed().len(),
        1,
        "the stray is owed until confirmed gone"
    );
    let answer = out.iter().find_map(|o| match o {
        KeeperOutput::Response(r) => Some(r.payload.clone()),
        _ => None,
    });
    let Some(NbResponse::SwitchSync { sync }) = answer else {
        panic!("no sync answer: {out:?}");
    };
    assert_eq!(sync.flows_repaired, vec!["f".to_string()]);
    assert_eq!(sync.validation.rules.missing.len(), 1);
    assert_eq!(sync.excess_removed.len(), 1);
}

#[test]
fn a_switch_that_does_not_answer_is_explained_and_an_unknown_one_refused() {
    let pool = pool();
    let mut keeper = Keeper::new(settings());
    let mut out = Vec::new();
    let validate = |switch| {
        Envelope::new(
            "c",
            SwitchId(switch).to_string(),
            1,
            NbRequest::ValidateSwitch {
                switch_id: SwitchId(switch),
            },
        )
    };
    keeper.request(1, &pool, validate(9), &mut out);
    assert!(matches!(
        &out[..],
        [KeeperOutput::Response(r)] if matches!(&r.payload, NbResponse::Error { error } if error.status == 404)
    ));
    out.clear();
    let mut pool = pool;
    keeper.request(1, &pool, validate(1), &mut out);
    let dump = commands(&out);
    out.clear();
    keeper.report(2, &mut pool, report(&dump[0].0, failed()), &mut out);
    assert!(matches!(
        &out[..],
        [KeeperOutput::Response(r)] if matches!(&r.payload, NbResponse::Error { error } if error.status == 503)
    ));
}

#[test]
fn the_sweep_goes_through_the_switches_a_few_at_a_time() {
    let pool = pool();
    let mut keeper = Keeper::new(KeeperSettings {
        sweep_ms: 3_000,
        sweep_parallel: 1,
        ..settings()
    });
    let mut out = Vec::new();
    keeper.start(0, &pool, &mut out);
    let sweep = |out: &[KeeperOutput]| {
        out.iter().find_map(|o| match o {
            KeeperOutput::Deadline(DeadlineRequest::Register {
                key: TimerKey::Keeper(KeeperTimer::Sweep),
                generation,
                at_ms,
            }) => Some((*generation, *at_ms)),
            _ => None,
        })
    };
    let mut tick = sweep(&out).expect("the sweep is armed");
    assert_eq!(tick.1, 1_000, "three switches in three seconds");
    let mut dumped_switches = Vec::new();
    for _ in 0..2 {
        out.clear();
        keeper.timer(tick.1, &pool, KeeperTimer::Sweep, tick.0, &mut out);
        dumped_switches.extend(commands(&out).into_iter().map(|(_, _, s)| s.switch_id));
        tick = sweep(&out).expect("the next tick");
    }
    assert_eq!(
        dumped_switches,
        vec![SwitchId(1)],
        "one sync at a time: switch 2 waits for switch 1's"
    );
    assert_eq!(keeper.stats().sweeps, 2);
}

/// The probes among `out`: (command id, where it enters, where it must leave, timeout).
fn probes_sent(out: &[KeeperOutput]) -> Vec<(String, FlowSegment, FlowEndpoint, u64)> {
    out.iter()
        .filter_map(|o| match o {
            KeeperOutput::Speaker(SpeakerRequest::Ping {
                requester: Requester::Keeper,
                correlation_id,
                command_id,
                segment,
                exit,
                timeout_ms,
                ..
            }) if correlation_id == "corr-ping" => Some((
                command_id.clone(),
                segment.clone(),
                exit.clone(),
                *timeout_ms,
            )),
            _ => None,
        })
        .collect()
}

fn ping_request(flow_id: &str, timeout_ms: Option<u64>) -> Envelope<NbRequest> {
    Envelope::new(
        "corr-ping",
        flow_id,
        5,
        NbRequest::PingFlow {
            flow_id: flow_id.into(),
            timeout_ms,
        },
    )
}

fn answered(out: &[KeeperOutput]) -> Option<NbResponse> {
    out.iter().find_map(|o| match o {
        KeeperOutput::Response(r) if r.correlation_id == "corr-ping" => Some(r.payload.clone()),
        _ => None,
    })
}

#[test]
fn a_flow_ping_probes_each_ingress_and_answers_when_both_are_back() {
    let mut pool = pool();
    pool.allocate(&request("f", 10)).unwrap();
    let mut keeper = Keeper::new(settings());
    let mut out = Vec::new();
    keeper.request(5, &pool, ping_request("f", Some(300)), &mut out);
    let sent = probes_sent(&out);
    assert_eq!(sent.len(), 2, "{out:?}");
    let (forward, reverse) = (&sent[0], &sent[1]);
    assert_eq!(
        (forward.1.switch_id, forward.1.in_port, forward.1.in_vlan),
        (SwitchId(1), 10, 100),
        "the forward probe enters as a packet on the source port and VLAN"
    );
    assert_eq!(forward.2, request("f", 10).destination);
    assert_eq!(
        (reverse.1.switch_id, reverse.2.switch_id),
        (SwitchId(3), SwitchId(1))
    );
    assert!(sent.iter().all(|probe| probe.3 == 300));
    assert_eq!(answered(&out), None);

    out.clear();
    keeper.report(
        6,
        &mut pool,
        report(&forward.0, ReportOutcome::Pinged { latency_ns: 1234 }),
        &mut out,
    );
    assert_eq!(answered(&out), None, "the reverse probe is still out");
    let lost = ReportOutcome::PingLost {
        reason: "no rule matched it at switch 2".into(),
    };
    keeper.report(7, &mut pool, report(&reverse.0, lost), &mut out);
    let Some(NbResponse::FlowPing { ping }) = answered(&out) else {
        panic!("no ping answer: {out:?}");
    };
    assert_eq!(ping.flow_id, "f");
    assert_eq!(ping.forward, UniFlowPingOutput::arrived(1234));
    assert_eq!(
        ping.reverse,
        UniFlowPingOutput::failed("no rule matched it at switch 2")
    );
    assert_eq!(ping.error, None);
}

#[test]
fn a_ping_of_a_flow_without_a_path_is_refused_and_one_that_moved_is_flagged() {
    let mut pool = pool();
    let mut keeper = Keeper::new(settings());
    let mut out = Vec::new();
    keeper.request(5, &pool, ping_request("nope", None), &mut out);
    assert!(
        matches!(answered(&out), Some(NbResponse::Error { error }) if error.status == 409),
        "{out:?}"
    );
    assert!(probes_sent(&out).is_empty());

    out.clear();
    pool.allocate(&request("f", 10)).unwrap();
    keeper.request(5, &pool, ping_request("f", None), &mut out);
    let sent = probes_sent(&out);
    assert!(
        sent.iter().all(|probe| probe.3 == DEFAULT_PING_TIMEOUT_MS),
        "{sent:?}"
    );
    pool.free("f");
    out.clear();
    for (command_id, ..) in &sent {
        let failed = ReportOutcome::Failed {
            reason: "SWITCH_UNAVAILABLE".into(),
        };
        keeper.report(6, &mut pool, report(command_id, failed), &mut out);
    }
    let Some(NbResponse::FlowPing { ping }) = answered(&out) else {
        panic!("no ping answer: {out:?}");
    };
    assert!(!ping.forward.ping_success && !ping.reverse.ping_success);
    assert_eq!(ping.forward.error.as_deref(), Some("SWITCH_UNAVAILABLE"));
    assert!(
        ping.error
            .as_deref()
            .is_some_and(|e| e.contains("changed while it was pinged")),
        "{ping:?}"
    );
}
