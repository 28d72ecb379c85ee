use super::*;
use hubspoke_fsm::network::{
    FoundPath, Link, SwitchInfo, DEFAULT_ISL_COST, DEFAULT_LINK_LATENCY_NS,
};
use hubspoke_fsm::{PathComputationStrategy, PathsQuery};

pub(super) fn pool(spec: &str) -> ResourcePool {
    let mut pool = ResourcePool::new();
    for event in Network::generate(spec).unwrap().unwrap().announcement() {
        pool.apply_network_event(&event);
    }
    pool
}

pub(super) fn request(flow_id: &str, src: u64, dst: u64, port: u32, bandwidth: u64) -> FlowRequest {
    FlowRequest {
        flow_id: flow_id.into(),
        source: FlowEndpoint {
            switch_id: SwitchId(src),
            port_number: port,
            vlan_id: 0,
        },
        destination: FlowEndpoint {
            switch_id: SwitchId(dst),
            port_number: port,
            vlan_id: 0,
        },
        maximum_bandwidth: bandwidth,
        description: String::new(),
        ..Default::default()
    }
}

#[test]
fn allocation_reserves_both_directions_and_free_gives_everything_back() {
    let mut pool = pool("linear:3");
    let resources = pool.allocate(&request("a", 1, 3, 10, 4_000_000)).unwrap();
    assert_eq!(resources.forward_path.len(), 2);
    assert_eq!(
        (
            resources.cookie,
            resources.transit_vlans.clone(),
            resources.forward_meter
        ),
        (1, vec![2, 2], Some(32))
    );
    for isl in reserved_isls(&resources) {
        assert_eq!(pool.available(&isl), 6_000_000);
    }
    pool.free("a");
    pool.free("a");
    for isl in reserved_isls(&resources) {
        assert_eq!(pool.available(&isl), 10_000_000);
    }
    let again = pool.allocate(&request("b", 1, 3, 10, 1)).unwrap();
    assert_eq!(
        (
            again.cookie,
            again.transit_vlans.clone(),
            again.forward_meter
        ),
        (1, vec![2, 2], Some(32)),
        "ids are reused"
    );
}

#[test]
fn without_a_path_with_its_bandwidth_a_flow_settles_for_what_its_options_allow() {
    let mut pool = pool("linear:2");
    let isl = pool.network.links()[0].isl;
    pool.allocate(&request("big", 1, 2, 10, 8_000_000))
        .expect("room");
    let short = pool
        .allocate(&request("short", 1, 2, 11, 4_000_000))
        .expect_err("2 Gbps left");
    assert_eq!((short.status, short.error_type.as_str()), (503, "no-path"));
    // ignore_bandwidth: the path without the bandwidth, UP, reserving nothing.
    let ignoring = FlowRequest {
        ignore_bandwidth: true,
        ..request("ignoring", 1, 2, 12, 4_000_000)
    };
    let resources = pool.allocate(&ignoring).expect("bandwidth ignored");
    assert!(resources.without_bandwidth && resources.degraded.is_none());
    assert!(
        resources.forward_meter.is_some(),
        "still metered to its bandwidth"
    );
    assert_eq!(pool.available(&isl), 2_000_000);
    // Where there is room, an ignore_bandwidth flow reserves like any other.
    let fits = FlowRequest {
        ignore_bandwidth: true,
        ..request("fits", 1, 2, 13, 1_000_000)
    };
    assert!(!pool.allocate(&fits).expect("room").without_bandwidth);
    assert_eq!(pool.available(&isl), 1_000_000);
    // A flow that grows: a client's request fails, a repair is DEGRADED, a strict one fails,
    // and an upgrade settles for nothing short.
    pool.allocate(&request("grows", 1, 2, 14, 1_000))
        .expect("room");
    let grown = request("grows", 1, 2, 14, 4_000_000);
    for (kind, strict, settles) in [
        (Reallocation::Requested, false, false),
        (Reallocation::Repair, true, false),
        (Reallocation::Upgrade, false, false),
        (Reallocation::Repair, false, true),
    ] {
        let wanted = FlowRequest {
            strict_bandwidth: strict,
            ..grown.clone()
        };
        let result = pool.reallocate(&wanted, kind);
        assert_eq!(result.is_ok(), settles, "{kind:?}, strict {strict}");
        if let Ok(resources) = result {
            assert!(resources.without_bandwidth);
            assert!(resources
                .degraded
                .expect("degraded")
                .contains("4000000 kbps"));
        }
    }
    assert_eq!(
        pool.available(&isl),
        999_000,
        "only the flow's current reservation counts"
    );
    pool.commit("grows");
    assert_eq!(pool.available(&isl), 1_000_000);
}

#[test]
fn a_pinned_flow_keeps_its_path_or_gets_none() {
    let mut pool = pool("ring:4");
    let pinned = FlowRequest {
        pinned: true,
        ..request("p", 1, 2, 10, 1000)
    };
    let held = pool.allocate(&pinned).expect("a path");
    pool.commit("p");
    // A bigger bandwidth on the same path: still that path.
    let bigger = FlowRequest {
        maximum_bandwidth: 2000,
        ..pinned.clone()
    };
    let moved = pool
        .reallocate(&bigger, Reallocation::Requested)
        .expect("the pinned path carries it");
    assert_eq!(moved.forward_path, held.forward_path);
    pool.release_pending("p");
    // Its ISL down: no other path for it.
    let isl = held.forward_path[0];
    pool.apply_network_event(&SbEvent::IslDown { isl });
    let down = pool
        .reallocate(&pinned, Reallocation::Repair)
        .expect_err("pinned");
    assert_eq!(
        (down.status, down.error_type.as_str()),
        (503, "pinned-path-unavailable")
    );
    // Unpinned, it goes around.
    let free = FlowRequest {
        pinned: false,
        ..pinned.clone()
    };
    assert_eq!(
        pool.reallocate(&free, Reallocation::Repair)
            .expect("around")
            .forward_path
            .len(),
        3
    );
    pool.release_pending("p");
    // Pinned to a path that does not join other switches: refused, not moved.
    let elsewhere = FlowRequest {
        destination: FlowEndpoint {
            switch_id: SwitchId(3),
            ..pinned.destination.clone()
        },
        ..pinned
    };
    let refused = pool
        .reallocate(&elsewhere, Reallocation::Requested)
        .expect_err("pinned");
    assert_eq!(
        (refused.status, refused.error_type.as_str()),
        (400, "flow-pinned")
    );
}

#[test]
fn transit_vlans_run_out_per_link_not_network_wide() {
    let mut pool = pool("linear:3");
    let per_link = usize::from(MAX_VLAN) - 1;
    for (src, dst) in [(1, 2), (2, 3)] {
        for n in 0..per_link {
            let mut flow = request(&format!("f{src}-{n}"), src, dst, 10 * src as u32, 0);
            flow.source.vlan_id = 1 + n as u16;
            flow.destination.vlan_id = 1 + n as u16;
            pool.allocate(&flow)
                .expect("every link has VLANs of its own");
        }
    }
    let error = pool.allocate(&request("more", 1, 2, 11, 0)).unwrap_err();
    assert_eq!(error.error_type, "resources-exhausted", "{error:?}");
    pool.free("f1-0");
    let again = pool.allocate(&request("more", 1, 2, 11, 0)).unwrap();
    assert_eq!(again.transit_vlans, vec![2], "the freed VLAN is reused");
}

#[test]
fn bandwidth_is_never_over_committed() {
    let mut pool = pool("linear:2");
    pool.allocate(&request("a", 1, 2, 10, 6_000_000)).unwrap();
    let error = pool
        .allocate(&request("b", 1, 2, 11, 6_000_000))
        .unwrap_err();
    assert_eq!((error.status, error.error_type.as_str()), (503, "no-path"));
    pool.allocate(&request("c", 1, 2, 12, 4_000_000)).unwrap();
}

#[test]
fn bad_endpoints_are_refused_with_the_right_status() {
    let mut pool = pool("linear:2");
    assert_eq!(
        pool.allocate(&request("a", 1, 7, 10, 1))
            .unwrap_err()
            .status,
        404
    );
    assert_eq!(
        pool.allocate(&request("a", 1, 2, 1, 1)).unwrap_err().status,
        400,
        "ISL port"
    );
    assert_eq!(
        pool.allocate(&request("a", 1, 2, 99, 1))
            .unwrap_err()
            .status,
        400,
        "no such port"
    );
    pool.allocate(&request("a", 1, 2, 10, 1)).unwrap();
    assert_eq!(
        pool.allocate(&request("b", 1, 2, 10, 1))
            .unwrap_err()
            .status,
        409,
        "endpoint in use"
    );
    assert_eq!(
        pool.allocate(&request("a", 1, 2, 20, 1))
            .unwrap_err()
            .status,
        409,
        "flow holds resources"
    );
}

#[test]
fn one_switch_and_best_effort_flows() {
    let mut pool = pool("linear:2");
    let one_switch = pool
        .allocate(&request("a", 1, 1, 10, 5).clone())
        .unwrap_err();
    assert_eq!(one_switch.status, 400, "same endpoint twice");
    let mut flow = request("a", 1, 1, 10, 5);
    flow.destination.port_number = 11;
    let resources = pool.allocate(&flow).unwrap();
    assert!(resources.forward_path.is_empty());
    assert_eq!(
        (resources.forward_meter, resources.reverse_meter),
        (Some(32), Some(33))
    );
    let best_effort = pool.allocate(&request("b", 1, 2, 12, 0)).unwrap();
    assert_eq!(best_effort.forward_meter, None);
}

#[test]
fn paths_avoid_what_the_switches_report_down() {
    let mut pool = pool("ring:4");
    let direct = pool.allocate(&request("a", 1, 2, 10, 0)).unwrap();
    assert_eq!(direct.forward_path.len(), 1);
    for isl in [direct.forward_path[0], direct.forward_path[0].reversed()] {
        pool.apply_network_event(&SbEvent::IslDown { isl });
    }
    let around = pool.allocate(&request("b", 1, 2, 11, 0)).unwrap();
    assert_eq!(
        around.forward_path.len(),
        3,
        "best-effort flows avoid a down link too"
    );
    pool.apply_network_event(&SbEvent::SwitchRemoved {
        switch_id: SwitchId(4),
    });
    assert_eq!(
        pool.allocate(&request("c", 1, 2, 12, 0))
            .unwrap_err()
            .status,
        503,
        "no path left"
    );
    assert_eq!(
        pool.allocate(&request("d", 4, 2, 13, 0))
            .unwrap_err()
            .error_type,
        "switch-unavailable"
    );
    for isl in [direct.forward_path[0], direct.forward_path[0].reversed()] {
        pool.apply_network_event(&SbEvent::IslUp {
            isl,
            capacity: 1,
            latency_ns: DEFAULT_LINK_LATENCY_NS,
            cost: DEFAULT_ISL_COST,
        });
    }
    assert_eq!(
        pool.allocate(&request("e", 1, 2, 14, 0))
            .unwrap()
            .forward_path
            .len(),
        1
    );
}

#[test]
fn a_restart_takes_back_exactly_what_the_records_hold() {
    let mut before = pool("linear:3");
    let a = before.allocate(&request("a", 1, 3, 10, 1000)).unwrap();
    let b = before.allocate(&request("b", 1, 3, 11, 1000)).unwrap();
    let moving = before
        .reallocate(&request("b", 1, 3, 11, 2000), Reallocation::Requested)
        .unwrap();
    let record = |flow_id: &str, resources: &Resources, bandwidth: u64| {
        let mut record = FlowRecord::new(request(flow_id, 1, 3, 10, bandwidth), 0);
        record.request.source.port_number = if flow_id == "a" { 10 } else { 11 };
        record.request.destination.port_number = record.request.source.port_number;
        record.resources = Some(resources.clone());
        record
    };
    let mut b_record = record("b", &b, 1000);
    b_record.target = Some(Box::new(hubspoke_fsm::Reservation {
        request: request("b", 1, 3, 11, 2000),
        resources: moving.clone(),
    }));

    let mut after = pool("linear:3");
    after.restore(&record("a", &a, 1000));
    after.restore(&b_record);
    for isl in reserved_isls(&a) {
        assert_eq!(after.available(&isl), before.available(&isl), "{isl:?}");
    }
    let next = after.allocate(&request("c", 1, 3, 12, 1)).unwrap();
    let taken = [a.cookie, b.cookie, moving.cookie];
    assert!(
        !taken.contains(&next.cookie),
        "no cookie is handed out twice"
    );
    for (link, vlan) in next.transit_vlans.iter().enumerate() {
        let held = [&a, &b, &moving].map(|r| r.transit_vlans.get(link));
        assert!(
            !held.contains(&Some(vlan)),
            "no VLAN is handed out twice on a link"
        );
    }
    assert_eq!(
        after
            .allocate(&request("d", 1, 3, 11, 1))
            .unwrap_err()
            .status,
        409,
        "a restored flow keeps its endpoints"
    );
    after.release_pending("b");
    let freed = after.allocate(&request("e", 1, 3, 13, 1)).unwrap();
    assert_eq!(
        freed.cookie, moving.cookie,
        "the released target's cookie is free again"
    );
}

fn protected(flow_id: &str, src: u64, dst: u64, port: u32, bandwidth: u64) -> FlowRequest {
    FlowRequest {
        allocate_protected_path: true,
        ..request(flow_id, src, dst, port, bandwidth)
    }
}

fn protected_isls(resources: &Resources) -> Vec<Isl> {
    resources
        .protected
        .iter()
        .flat_map(|p| &p.forward_path)
        .flat_map(|isl| [*isl, isl.reversed()])
        .collect()
}

#[test]
fn a_protected_flow_reserves_a_second_path_apart_from_its_primary() {
    let mut pool = pool("ring:4");
    let resources = pool.allocate(&protected("a", 1, 2, 10, 4_000_000)).unwrap();
    let protected_path = resources
        .protected
        .clone()
        .expect("a ring has a second way");
    assert_eq!(resources.forward_path.len(), 1);
    assert_eq!(protected_path.forward_path.len(), 3, "1 -> 4 -> 3 -> 2");
    assert_eq!(protected_path.transit_vlans, vec![2, 2, 2]);
    for isl in reserved_isls(&resources) {
        assert_eq!(
            pool.available(&isl),
            6_000_000,
            "{isl:?}: both paths reserve it"
        );
    }
    // Its transit switches must hold the protected path's rules.
    let on_switch_4 = pool.expectation(SwitchId(4));
    assert_eq!(on_switch_4.required.len(), 2, "its transit rule each way");

    pool.free("a");
    for isl in reserved_isls(&resources) {
        assert_eq!(pool.available(&isl), 10_000_000);
    }
    let again = pool.allocate(&protected("b", 1, 2, 10, 1)).unwrap();
    assert_eq!(
        again.protected, resources.protected,
        "its VLANs are free again"
    );
}

#[test]
fn without_a_second_way_a_protected_flow_gets_its_primary_alone() {
    let mut pool = pool("linear:3");
    let resources = pool.allocate(&protected("a", 1, 3, 10, 1)).unwrap();
    assert_eq!(
        (resources.forward_path.len(), resources.protected),
        (2, None)
    );
    let mut ring = self::pool("ring:4");
    ring.allocate(&request("big", 1, 4, 11, 9_000_000)).unwrap();
    let thin = ring.allocate(&protected("a", 1, 2, 10, 2_000_000)).unwrap();
    assert_eq!(thin.protected, None, "the way round lacks the bandwidth");
}

#[test]
fn a_swap_exchanges_the_paths_and_keeps_what_is_held() {
    let mut pool = pool("ring:4");
    let before = pool.allocate(&protected("a", 1, 2, 10, 1_000)).unwrap();
    let available: Vec<u64> = reserved_isls(&before).map(|i| pool.available(&i)).collect();
    pool.take_view_changes();
    pool.swap("a");
    let (current, _) = pool.reservations_of("a");
    let after = current.unwrap().resources.clone();
    assert_eq!(Some(after.clone()), before.swapped());
    let still: Vec<u64> = reserved_isls(&before).map(|i| pool.available(&i)).collect();
    assert_eq!(still, available);
    let changes = pool.take_view_changes();
    let moved = |protected: bool, diff: isize| {
        changes
            .iter()
            .filter(|c| matches!(c, ViewChange::Path { protected: p, diff: d, .. } if *p == protected && *d == diff))
            .count()
    };
    assert_eq!(
        (moved(false, -1), moved(true, 1)),
        (2, 2),
        "the old primary's link, each way"
    );
    assert_eq!((moved(true, -1), moved(false, 1)), (6, 6));
}

#[test]
fn a_reprotection_keeps_the_primary_while_it_carries_the_flow() {
    let mut pool = pool("grid:3x3");
    let request = protected("a", 1, 9, 10, 1_000);
    let first = pool.allocate(&request).unwrap();
    let old_protected = first.protected.clone().unwrap();
    let broken = old_protected.forward_path[1];
    for isl in [broken, broken.reversed()] {
        pool.apply_network_event(&SbEvent::IslDown { isl });
    }
    let next = pool.reprotect(&request).unwrap();
    assert_eq!(next.forward_path, first.forward_path, "the primary stays");
    let new_protected = next.protected.clone().expect("the grid has another way");
    assert!(!new_protected.forward_path.contains(&broken));
    assert!(protected_isls(&next)
        .iter()
        .all(|isl| !first.forward_path.contains(isl)));
    pool.commit("a");
    let broken_primary = first.forward_path[0];
    for isl in [broken_primary, broken_primary.reversed()] {
        pool.apply_network_event(&SbEvent::IslDown { isl });
    }
    let moved = pool.reprotect(&request).unwrap();
    assert!(
        !moved.forward_path.contains(&broken_primary),
        "a primary that cannot carry the flow is searched anew"
    );
}

#[test]
fn a_restart_takes_back_a_protected_paths_vlans() {
    let mut before = pool("ring:4");
    let a = before.allocate(&protected("a", 1, 2, 10, 1000)).unwrap();
    let mut record = FlowRecord::new(protected("a", 1, 2, 10, 1000), 0);
    record.resources = Some(a.clone());
    let mut after = pool("ring:4");
    after.restore(&record);
    for isl in reserved_isls(&a) {
        assert_eq!(after.available(&isl), before.available(&isl), "{isl:?}");
    }
    let next = after.allocate(&protected("b", 1, 2, 11, 1)).unwrap();
    let held = |r: &Resources| -> Vec<(Isl, u16)> {
        path_vlans(r).map(|(isl, vlan)| (*isl, *vlan)).collect()
    };
    assert!(
        held(&next).iter().all(|v| !held(&a).contains(v)),
        "no VLAN twice on a link"
    );
}

mod over_commit {
    //! Whatever order the requests of concurrent creates, reroutes, updates, swaps and
    //! re-protections reach the allocator in (it serialises them), no ISL is ever promised
    //! more than its capacity, no id is held twice, and a protected path shares no ISL with
    //! its primary. Odd flows ask for a protected path.
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Allocate {
            flow: usize,
            src: u64,
            dst: u64,
            bandwidth: u64,
            ignore_bandwidth: bool,
        },
        Reallocate {
            flow: usize,
            dst: u64,
            bandwidth: u64,
            kind: Reallocation,
            strict_bandwidth: bool,
        },
        Reprotect {
            flow: usize,
        },
        Swap {
            flow: usize,
        },
        Commit {
            flow: usize,
        },
        Release {
            flow: usize,
        },
        Free {
            flow: usize,
        },
        Fail {
            link: usize,
        },
        Restore {
            link: usize,
        },
    }

    const FLOWS: usize = 8;
    const GBPS: u64 = 1_000_000;

    fn step() -> impl Strategy<Value = Step> {
        let flow = 0..FLOWS;
        let switch = 1..=9u64;
        let bandwidth = (0..=7u64).prop_map(|g| g * GBPS);
        prop_oneof![
            (
                flow.clone(),
                switch.clone(),
                switch.clone(),
                bandwidth.clone(),
                any::<bool>()
            )
                .prop_map(|(flow, src, dst, bandwidth, ignore_bandwidth)| {
                    Step::Allocate {
                        flow,
                        src,
                        dst,
                        bandwidth,
                        ignore_bandwidth,
                    }
                }),
            (
                flow.clone(),
                switch,
                bandwidth,
                prop_oneof![
                    Just(Reallocation::Requested),
                    Just(Reallocation::Repair),
                    Just(Reallocation::Upgrade)
                ],
                any::<bool>()
            )
                .prop_map(|(flow, dst, bandwidth, kind, strict_bandwidth)| {
                    Step::Reallocate {
                        flow,
                        dst,
                        bandwidth,
                        kind,
                        strict_bandwidth,
                    }
                }),
            flow.clone().prop_map(|flow| Step::Reprotect { flow }),
            flow.clone().prop_map(|flow| Step::Swap { flow }),
            flow.clone().prop_map(|flow| Step::Commit { flow }),
            flow.clone().prop_map(|flow| Step::Release { flow }),
            flow.prop_map(|flow| Step::Free { flow }),
            (0..12usize).prop_map(|link| Step::Fail { link }),
            (0..12usize).prop_map(|link| Step::Restore { link }),
        ]
    }

    fn flow_request(flow: usize, src: u64, dst: u64, bandwidth: u64) -> FlowRequest {
        let mut r = request(&format!("f{flow}"), src, dst, 10 + flow as u32, bandwidth);
        r.destination.port_number = 30 + flow as u32;
        r.allocate_protected_path = flow % 2 == 1 && src != dst;
        r
    }

    fn check(pool: &ResourcePool) {
        let mut demand: HashMap<Isl, u64> = HashMap::new();
        let mut cookies = BTreeSet::new();
        let mut vlans = BTreeSet::new();
        let mut meters = BTreeSet::new();
        for holding in pool.holdings.values() {
            let mut isls = BTreeSet::new();
            for reservation in [&holding.current, &holding.pending].into_iter().flatten() {
                let (request, resources) = (&reservation.request, &reservation.resources);
                assert!(cookies.insert(resources.cookie), "cookie held twice");
                for (isl, vlan) in path_vlans(resources) {
                    let link = (*isl).min(isl.reversed());
                    assert!(vlans.insert((link, *vlan)), "VLAN held twice on a link");
                }
                if let Some(protected) = &resources.protected {
                    assert!(request.allocate_protected_path);
                    let primary: BTreeSet<Isl> = resources
                        .forward_path
                        .iter()
                        .flat_map(|isl| [*isl, isl.reversed()])
                        .collect();
                    assert!(
                        protected
                            .forward_path
                            .iter()
                            .all(|isl| !primary.contains(isl)),
                        "the protected path shares an ISL with the primary"
                    );
                }
                for (switch, meter) in [
                    (request.source.switch_id, resources.forward_meter),
                    (request.destination.switch_id, resources.reverse_meter),
                ] {
                    if let Some(meter) = meter {
                        assert!(meters.insert((switch, meter)), "meter held twice");
                    }
                }
                isls.extend(reserved_isls(resources));
            }
            for isl in isls {
                *demand.entry(isl).or_default() += holding.bandwidth_on(&isl);
            }
        }
        for (isl, capacity) in pool.isls.iter().map(|(isl, a)| (isl, a.value.capacity)) {
            let demanded = demand.get(isl).copied().unwrap_or(0);
            assert!(demanded <= capacity, "{isl:?}: {demanded} > {capacity}");
            assert_eq!(
                pool.used_bandwidth.get(isl).copied().unwrap_or(0),
                demanded,
                "the running total drifted on {isl:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn bandwidth_is_never_over_committed(steps in prop::collection::vec(step(), 1..120)) {
            let mut pool = pool("grid:3x3");
            let links: Vec<Isl> = pool.network.links().iter().map(|l| l.isl).filter(|i| i.src_switch < i.dst_switch).collect();
            let mut requests: HashMap<usize, FlowRequest> = HashMap::new();
            for step in steps {
                match step {
                    Step::Allocate { flow, src, dst, bandwidth, ignore_bandwidth } => {
                        let r = FlowRequest {
                            ignore_bandwidth,
                            ..flow_request(flow, src, dst, bandwidth)
                        };
                        if pool.allocate(&r).is_ok() {
                            requests.insert(flow, r);
                        }
                    }
                    Step::Reallocate { flow, dst, bandwidth, kind, strict_bandwidth } => {
                        if let Some(current) = requests.get(&flow) {
                            let r = FlowRequest {
                                ignore_bandwidth: current.ignore_bandwidth,
                                strict_bandwidth: strict_bandwidth && !current.ignore_bandwidth,
                                ..flow_request(flow, current.source.switch_id.0, dst, bandwidth)
                            };
                            let _ = pool.reallocate(&r, kind);
                        }
                    }
                    Step::Reprotect { flow } => {
                        if let Some(current) = requests.get(&flow) {
                            let _ = pool.reprotect(current);
                        }
                    }
                    Step::Swap { flow } => pool.swap(&format!("f{flow}")),
                    Step::Commit { flow } => pool.commit(&format!("f{flow}")),
                    Step::Release { flow } => pool.release_pending(&format!("f{flow}")),
                    Step::Free { flow } => {
                        pool.free(&format!("f{flow}"));
                        requests.remove(&flow);
                    }
                    Step::Fail { link } | Step::Restore { link } => {
                        let isl = links[link % links.len()];
                        for isl in [isl, isl.reversed()] {
                            pool.apply_network_event(&if matches!(step, Step::Fail { .. }) {
                                SbEvent::IslDown { isl }
                            } else {
                                SbEvent::IslUp {
                                    isl,
                                    capacity: 10 * GBPS,
                                    latency_ns: DEFAULT_LINK_LATENCY_NS,
                                    cost: DEFAULT_ISL_COST,
                                }
                            });
                        }
                    }
                }
                check(&pool);
            }
        }
    }
}

const MS: u64 = 1_000_000;
const GBPS: u64 = 1_000_000;

/// Switch 1 to switch 4 by four two-hop routes, through switch 2, 3, 5 or 6 (in port order
/// on switch 1), each hop with this cost and latency: via 2: 10, 5 ms (cheapest, slowest);
/// via 3: 50, 1 ms (fastest, dearest); via 5: 10, 3 ms; via 6: 30, 1.25 ms. 1 Gbit/s each.
fn four_routes() -> ResourcePool {
    let switches = (1..=6)
        .map(|n| SwitchInfo {
            switch_id: SwitchId(n),
            ports: 20,
            port_numbers: Vec::new(),
        })
        .collect();
    let mut links = Vec::new();
    for (port, (via, cost, latency_ns)) in (1..).zip([
        (2, 10, 5 * MS),
        (3, 50, MS),
        (5, 10, 3 * MS),
        (6, 30, 5 * MS / 4),
    ]) {
        for (src, src_port, dst, dst_port) in [(1, port, via, 1), (via, 2, 4, port)] {
            let isl = Isl {
                src_switch: SwitchId(src),
                src_port,
                dst_switch: SwitchId(dst),
                dst_port,
            };
            links.push(Link {
                latency_ns,
                cost,
                ..Link::new(isl, GBPS)
            });
        }
    }
    let mut pool = ResourcePool::new();
    for event in Network::new(switches, links).unwrap().announcement() {
        pool.apply_network_event(&event);
    }
    pool
}

fn routed(strategy: PathComputationStrategy, flow_id: &str, port: u32) -> FlowRequest {
    FlowRequest {
        path_computation_strategy: strategy,
        ..request(flow_id, 1, 4, port, 1000)
    }
}

fn via(resources: &Resources) -> u64 {
    resources.forward_path[0].dst_switch.0
}

fn max_latency(tier1: u64, tier2: Option<u64>) -> FlowRequest {
    FlowRequest {
        max_latency: Some(tier1),
        max_latency_tier2: tier2,
        ..routed(PathComputationStrategy::MaxLatency, "m", 14)
    }
}

#[test]
fn each_strategy_takes_its_path() {
    let mut pool = four_routes();
    let cost = pool.allocate(&routed(PathComputationStrategy::Cost, "c", 10));
    let latency = pool.allocate(&routed(PathComputationStrategy::Latency, "l", 11));
    assert_eq!(
        (via(&cost.unwrap()), via(&latency.unwrap())),
        (2, 3),
        "COST the cheapest, LATENCY the fastest"
    );
    // Via 2 and via 5 cost the same; "c" took some of via 2.
    let cheap = pool.allocate(&routed(PathComputationStrategy::Cost, "c2", 12));
    let roomy = pool.allocate(&routed(
        PathComputationStrategy::CostAndAvailableBandwidth,
        "b",
        13,
    ));
    assert_eq!(
        (via(&cheap.unwrap()), via(&roomy.unwrap())),
        (2, 5),
        "COST_AND_AVAILABLE_BANDWIDTH: of the cheapest, the one with the most bandwidth left"
    );
    let bounded = pool.allocate(&FlowRequest {
        flow_id: "m".into(),
        ..max_latency(3, None)
    });
    assert_eq!(
        via(&bounded.unwrap()),
        6,
        "MAX_LATENCY: the cheapest within 3 ms"
    );
}

#[test]
fn max_latency_falls_back_to_tier_2_degraded_or_finds_no_path() {
    let allocated = |request: FlowRequest| four_routes().allocate(&request);
    let tier1 = allocated(max_latency(6, Some(8))).unwrap();
    assert_eq!((via(&tier1), tier1.degraded), (5, None));
    let tier2 = allocated(max_latency(1, Some(3))).unwrap();
    assert_eq!(via(&tier2), 6, "the cheapest within tier 2");
    assert_eq!(
        tier2.degraded.as_deref(),
        Some(
            "no path within max_latency 1 ms: on a path of 2.500 ms, within max_latency_tier2 3 ms"
        )
    );
    // A DEGRADED flow's upgrade settles for nothing short; a repair takes tier 2.
    let mut pool = four_routes();
    pool.allocate(&max_latency(1, Some(3))).expect("tier 2");
    pool.commit("m");
    let upgrade = pool
        .reallocate(&max_latency(1, Some(3)), Reallocation::Upgrade)
        .unwrap_err();
    assert_eq!(
        (upgrade.status, upgrade.error_type.as_str()),
        (503, "no-better-path")
    );
    let repair = pool.reallocate(&max_latency(1, Some(3)), Reallocation::Repair);
    assert!(repair.expect("tier 2 again").degraded.is_some());
    for neither in [max_latency(1, Some(1)), max_latency(1, None)] {
        let refused = allocated(neither).unwrap_err();
        assert_eq!(
            (refused.status, refused.error_type.as_str()),
            (503, "no-path")
        );
        assert!(
            refused
                .error_description
                .contains("within a latency of 1 ms"),
            "{refused:?}"
        );
    }
}

#[test]
fn a_patched_link_steers_new_paths_both_ways_and_keeps_its_patch_when_it_comes_back() {
    let mut pool = four_routes();
    let first_hop_via_2 = pool
        .allocate(&routed(PathComputationStrategy::Cost, "a", 10))
        .unwrap()
        .forward_path[0];
    let states = pool
        .patch_link(
            first_hop_via_2.reversed(),
            &LinkPatch {
                cost: Some(1_000),
                max_bandwidth: Some(500),
            },
        )
        .expect("a known link");
    assert_eq!(states.len(), 2, "both directions");
    assert!(states
        .iter()
        .all(|s| (s.cost, s.max_bandwidth, s.available_bandwidth) == (1_000, 500, 0)));
    // "a" keeps what it reserved (1000 kbps, above the new max): nothing new goes there.
    assert_eq!(pool.available(&first_hop_via_2), 0);
    let after = pool.allocate(&FlowRequest {
        maximum_bandwidth: 0,
        ..routed(PathComputationStrategy::Cost, "b", 11)
    });
    assert_eq!(via(&after.unwrap()), 5, "the dearer link is avoided");
    for isl in [first_hop_via_2, first_hop_via_2.reversed()] {
        pool.apply_network_event(&SbEvent::IslDown { isl });
        pool.apply_network_event(&SbEvent::IslUp {
            isl,
            capacity: GBPS,
            latency_ns: 5 * MS,
            cost: 10,
        });
    }
    pool.free("a");
    assert_eq!(
        pool.available(&first_hop_via_2),
        500,
        "the patch outlives the link going down"
    );
    let changes = pool.take_view_changes();
    let shown = changes.iter().rev().find_map(|c| match c {
        ViewChange::Link { isl, props, .. } if *isl == first_hop_via_2 => Some(*props),
        _ => None,
    });
    assert_eq!(shown.map(|p| (p.cost, p.max_bandwidth)), Some((1_000, 500)));
}

#[test]
fn a_bad_link_patch_is_refused() {
    let mut pool = four_routes();
    let link = pool.network.links()[0].isl;
    let refused = |pool: &mut ResourcePool, isl: Isl, patch: LinkPatch| {
        let error = pool.patch_link(isl, &patch).unwrap_err();
        (error.status, error.error_description)
    };
    let (status, why) = refused(&mut pool, link, LinkPatch::default());
    assert_eq!(status, 400, "{why}");
    let too_much = LinkPatch {
        max_bandwidth: Some(GBPS + 1),
        cost: None,
    };
    let (status, why) = refused(&mut pool, link, too_much);
    assert_eq!(status, 400);
    assert!(why.contains("above the link's capacity"), "{why}");
    let unknown = Isl {
        src_port: 19,
        ..link
    };
    let cost = LinkPatch {
        cost: Some(1),
        max_bandwidth: None,
    };
    assert_eq!(refused(&mut pool, unknown, cost).0, 404);
}

#[test]
fn candidate_paths_come_best_first_by_the_strategy() {
    let mut pool = four_routes();
    let query = |strategy, max_latency, max_path_count| PathsQuery {
        src_switch: SwitchId(1),
        dst_switch: SwitchId(4),
        path_computation_strategy: strategy,
        max_latency,
        max_latency_tier2: None,
        max_path_count,
    };
    let vias = |paths: Vec<FoundPath>| -> Vec<u64> {
        paths.iter().map(|p| p.isls[0].dst_switch.0).collect()
    };
    let by_latency = pool.find_paths(&query(PathComputationStrategy::Latency, None, 10));
    assert_eq!(vias(by_latency.unwrap()), vec![3, 6, 5, 2]);
    let by_cost = pool.find_paths(&query(PathComputationStrategy::Cost, None, 3));
    assert_eq!(vias(by_cost.unwrap()), vec![2, 5, 6]);
    let within = pool.find_paths(&query(PathComputationStrategy::MaxLatency, Some(3), 10));
    assert_eq!(
        vias(within.unwrap()),
        vec![6, 3],
        "within 3 ms, cheapest first"
    );
    pool.allocate(&FlowRequest {
        maximum_bandwidth: GBPS - 10,
        ..routed(PathComputationStrategy::Cost, "a", 10)
    })
    .unwrap();
    let paths = pool
        .find_paths(&query(PathComputationStrategy::Cost, None, 1))
        .unwrap();
    assert_eq!(
        paths[0].available_bandwidth, 10,
        "what is left of the narrowest ISL"
    );
    let unknown = PathsQuery {
        dst_switch: SwitchId(99),
        ..query(PathComputationStrategy::Cost, None, 1)
    };
    assert_eq!(pool.find_paths(&unknown).unwrap_err().status, 404);
}

#[test]
fn an_endpoint_swap_reserves_both_or_neither_and_each_may_take_the_others_endpoints() {
    let mut pool = pool("grid:3x3");
    let a = request("a", 1, 3, 10, 1_000);
    let b = request("b", 7, 9, 10, 1_000);
    pool.allocate(&a).unwrap();
    pool.allocate(&b).unwrap();
    // a goes 1 → 9, b goes 7 → 3: the destinations change hands.
    let a_moved = FlowRequest {
        destination: b.destination.clone(),
        ..a.clone()
    };
    let b_moved = FlowEndpoints {
        destination: a.destination.clone(),
        ..FlowEndpoints::of(&b)
    };
    let refused = pool
        .reallocate(&a_moved, Reallocation::Requested)
        .unwrap_err();
    assert_eq!(refused.status, 409, "alone, a may not take b's endpoint");

    let (for_a, for_b) = pool.reserve_endpoint_swap(&a_moved, &b_moved).unwrap();
    assert_eq!(
        for_a.forward_path.last().map(|i| i.dst_switch),
        Some(SwitchId(9))
    );
    assert_eq!(
        for_b.forward_path.last().map(|i| i.dst_switch),
        Some(SwitchId(3))
    );
    let c = request("c", 2, 3, 10, 1_000);
    let taken = pool.allocate(&c).unwrap_err();
    assert_eq!(
        taken.status, 409,
        "a third flow may take neither: {taken:?}"
    );
    let busy = pool.reserve_endpoint_swap(&a_moved, &b_moved).unwrap_err();
    assert_eq!(busy.status, 409, "both are moving already");

    pool.commit("a");
    pool.commit("b");
    assert_eq!(
        pool.reservations_of("a").0.map(|r| &r.request),
        Some(&a_moved)
    );
    let c_there = request("c", 9, 3, 10, 1_000);
    assert_eq!(pool.allocate(&c_there).unwrap_err().status, 409);
    pool.free("b");
    pool.allocate(&c)
        .expect("b let go of 3:10 when it was deleted");
    assert_eq!(
        pool.allocate(&request("d", 2, 9, 10, 1))
            .unwrap_err()
            .status,
        409,
        "a holds 9:10 after the swap"
    );
}

#[test]
fn an_endpoint_swap_that_fails_for_either_flow_leaves_both_as_they_were() {
    let mut pool = pool("grid:3x3");
    let a = request("a", 1, 3, 10, 1_000);
    let b = request("b", 7, 9, 10, 1_000);
    pool.allocate(&a).unwrap();
    pool.allocate(&b).unwrap();
    pool.allocate(&request("c", 4, 6, 10, 1_000)).unwrap();
    let available_before: Vec<u64> = pool
        .network
        .links()
        .iter()
        .map(|l| pool.available(&l.isl))
        .collect();
    let a_moved = FlowRequest {
        destination: b.destination.clone(),
        ..a.clone()
    };
    // b would take c's endpoint: refused, and a's reservation goes back too.
    let b_onto_c = FlowEndpoints {
        destination: request("c", 4, 6, 10, 0).destination,
        ..FlowEndpoints::of(&b)
    };
    let refused = pool.reserve_endpoint_swap(&a_moved, &b_onto_c).unwrap_err();
    assert_eq!(refused.status, 409);
    assert!(
        refused.error_description.starts_with("flow b: "),
        "{refused:?}"
    );
    assert_eq!(
        pool.reservations_of("a").1,
        None,
        "a's pending reservation went back"
    );
    let available_after: Vec<u64> = pool
        .network
        .links()
        .iter()
        .map(|l| pool.available(&l.isl))
        .collect();
    assert_eq!(available_after, available_before);
    let missing = FlowEndpoints {
        flow_id: "nope".into(),
        ..FlowEndpoints::of(&b)
    };
    assert_eq!(
        pool.reserve_endpoint_swap(&a_moved, &missing)
            .unwrap_err()
            .status,
        409
    );

    // Both released (an abort): each flow still holds its own endpoints, nobody else may.
    let b_moved = FlowEndpoints {
        destination: a.destination.clone(),
        ..FlowEndpoints::of(&b)
    };
    pool.reserve_endpoint_swap(&a_moved, &b_moved).unwrap();
    pool.release_pending("a");
    pool.release_pending("b");
    for (src, dst) in [(2, 3), (8, 9)] {
        assert_eq!(
            pool.allocate(&request("d", src, dst, 10, 1))
                .unwrap_err()
                .status,
            409,
            "{dst}:10 is still held"
        );
    }
    pool.free("a");
    pool.allocate(&request("d", 2, 3, 10, 1))
        .expect("a let go of 3:10");
}
