use super::*;

fn pool(spec: &str) -> ResourcePool {
    let mut pool = ResourcePool::new();
    for event in Network::generate(spec).unwrap().unwrap().announcement() {
        pool.apply_network_event(&event);
    }
    pool
}

fn request(flow_id: &str, src: u64, dst: u64, port: u32, bandwidth: u64) -> FlowRequest {
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
        .reallocate(&bigger)
        .expect("the pinned path carries it");
    assert_eq!(moved.forward_path, held.forward_path);
    pool.release_pending("p");
    // Its ISL down: no other path for it.
    let isl = held.forward_path[0];
    pool.apply_network_event(&SbEvent::IslDown { isl });
    let down = pool.reallocate(&pinned).expect_err("pinned");
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
        pool.reallocate(&free).expect("around").forward_path.len(),
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
    let refused = pool.reallocate(&elsewhere).expect_err("pinned");
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
    pool.apply_network_event(&SbEvent::IslUp {
        isl: direct.forward_path[0],
        capacity: 1,
    });
    pool.apply_network_event(&SbEvent::IslUp {
        isl: direct.forward_path[0].reversed(),
        capacity: 1,
    });
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
    let moving = before.reallocate(&request("b", 1, 3, 11, 2000)).unwrap();
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
        },
        Reallocate {
            flow: usize,
            dst: u64,
            bandwidth: u64,
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
                bandwidth.clone()
            )
                .prop_map(|(flow, src, dst, bandwidth)| Step::Allocate {
                    flow,
                    src,
                    dst,
                    bandwidth
                }),
            (flow.clone(), switch, bandwidth).prop_map(|(flow, dst, bandwidth)| {
                Step::Reallocate {
                    flow,
                    dst,
                    bandwidth,
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
        for (isl, capacity) in pool.isls.iter().map(|(isl, a)| (isl, a.value)) {
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
                    Step::Allocate { flow, src, dst, bandwidth } => {
                        let r = flow_request(flow, src, dst, bandwidth);
                        if pool.allocate(&r).is_ok() {
                            requests.insert(flow, r);
                        }
                    }
                    Step::Reallocate { flow, dst, bandwidth } => {
                        if let Some(current) = requests.get(&flow) {
                            let r = flow_request(flow, current.source.switch_id.0, dst, bandwidth);
                            let _ = pool.reallocate(&r);
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
                                SbEvent::IslUp { isl, capacity: 10 * GBPS }
                            });
                        }
                    }
                }
                check(&pool);
            }
        }
    }
}
