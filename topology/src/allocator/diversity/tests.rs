use std::collections::BTreeSet;

use hubspoke_fsm::network::{DEFAULT_ISL_COST, DEFAULT_LINK_LATENCY_NS};
use hubspoke_fsm::{
    Envelope, FlowEvent, FlowRecord, FlowRequest, Isl, Reallocation, SbEvent, SwitchId,
};

use super::*;
use crate::allocator::tests::{pool, request};
use crate::allocator::{reserved_isls, ResourcePool};
use crate::recovery::Recovery;

/// A best-effort flow from port `port` to port `port + 1` (so it may be a one-switch flow),
/// in `partner`'s diversity group.
fn member(flow_id: &str, src: u64, dst: u64, port: u32, partner: Option<&str>) -> FlowRequest {
    let mut request = FlowRequest {
        diverse_flow_id: partner.map(str::to_string),
        ..request(flow_id, src, dst, port, 0)
    };
    request.destination.port_number = port + 1;
    request
}

/// The switches a path goes through, from its source.
fn switches_on(path: &[Isl]) -> Vec<u64> {
    path.first()
        .map(|first| first.src_switch.0)
        .into_iter()
        .chain(path.iter().map(|isl| isl.dst_switch.0))
        .collect()
}

fn links_of(path: &[Isl]) -> BTreeSet<Isl> {
    path.iter().map(|isl| (*isl).min(isl.reversed())).collect()
}

fn current_path(pool: &ResourcePool, flow_id: &str) -> Vec<Isl> {
    let (current, _) = pool.reservations_of(flow_id);
    current.expect("held").resources.forward_path.clone()
}

#[test]
fn a_flow_joins_its_partners_group_or_forms_one_named_after_it() {
    let mut groups = DiversityGroups::default();
    let group = groups.group_for("b");
    assert_eq!(group, "b");
    groups.set("b", Some(group.clone()));
    groups.set("a", Some(group.clone()));
    assert_eq!(groups.group_for("a"), "b");
    groups.set("b", None);
    assert_eq!(groups.members("b").collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(
        groups.group_for("b"),
        "b#2",
        "a new flow b forms a group of its own"
    );
    let changes = groups.set("a", None);
    assert_eq!(
        changes,
        vec![MembershipChange {
            flow_id: "a".into(),
            group: "b".into(),
            joined: false
        }]
    );
    assert_eq!(groups.members("b").count(), 0);
    assert!(groups.set("a", None).is_empty());
}

// grid:3x3 numbers its switches row by row:  1 2 3 / 4 5 6 / 7 8 9.

#[test]
fn a_diverse_path_keeps_off_the_other_members_switches_first() {
    let mut pool = pool("grid:3x3");
    pool.allocate(&member("a", 5, 8, 40, None)).expect("a path");
    let b = pool
        .allocate(&member("b", 4, 6, 40, Some("a")))
        .expect("a path");
    assert_eq!(
        switches_on(&b.forward_path),
        vec![4, 1, 2, 3, 6],
        "around switch 5, which a uses, although 4-5-6 shares no ISL with a"
    );
}

#[test]
fn a_diverse_path_shares_a_switch_when_only_that_keeps_its_isls_apart() {
    let mut pool = pool("grid:3x3");
    pool.allocate(&member("a", 4, 6, 40, None)).expect("a path");
    let b = pool
        .allocate(&member("b", 2, 8, 40, Some("a")))
        .expect("a path");
    assert_eq!(switches_on(&b.forward_path), vec![2, 5, 8]);
    assert!(links_of(&b.forward_path).is_disjoint(&links_of(&current_path(&pool, "a"))));
}

#[test]
fn without_a_diverse_path_a_member_still_gets_the_best_one() {
    let mut pool = pool("ring:4");
    let a = pool.allocate(&member("a", 1, 3, 40, None)).expect("a path");
    let b = pool
        .allocate(&member("b", 1, 3, 42, Some("a")))
        .expect("a path");
    assert!(links_of(&a.forward_path).is_disjoint(&links_of(&b.forward_path)));
    let c = pool
        .allocate(&member("c", 1, 3, 44, Some("b")))
        .expect("a shared path rather than none");
    assert_eq!(c.forward_path.len(), 2);
    for flow_id in ["a", "b", "c"] {
        assert_eq!(pool.group_of(flow_id).map(String::as_str), Some("a"));
    }
    assert_eq!(
        pool.take_group_changes(),
        ["a", "b", "c"].map(|f| (f.to_string(), Some("a".to_string())))
    );
}

#[test]
fn a_partner_must_exist_and_span_switches() {
    let mut pool = pool("ring:4");
    pool.allocate(&member("a", 1, 3, 40, None)).expect("a path");
    pool.allocate(&member("one", 2, 2, 40, None))
        .expect("one switch");
    let missing = pool
        .allocate(&member("b", 1, 3, 42, Some("nope")))
        .expect_err("no such flow");
    assert_eq!(
        (missing.status, missing.error_type.as_str()),
        (404, "not-found")
    );
    for (flow_id, src, dst, partner) in [("c", 2, 2, "a"), ("d", 1, 3, "one")] {
        let refused = pool
            .allocate(&member(flow_id, src, dst, 44, Some(partner)))
            .expect_err("one-switch");
        assert_eq!(refused.status, 400, "{}", refused.error_message);
    }
    assert!(pool.take_group_changes().is_empty());
}

#[test]
fn a_members_deletion_leaves_the_others_a_group_and_an_update_can_leave_it() {
    let mut pool = pool("ring:4");
    pool.allocate(&member("a", 1, 3, 40, None)).expect("a path");
    pool.allocate(&member("b", 1, 3, 42, Some("a")))
        .expect("a path");
    pool.allocate(&member("c", 2, 4, 40, Some("b")))
        .expect("a path");
    pool.take_group_changes();

    pool.free("b");
    assert_eq!(pool.take_group_changes(), vec![("b".to_string(), None)]);
    assert_eq!(pool.group_of("a"), pool.group_of("c"));
    assert!(pool.group_of("a").is_some());

    // a names nobody (c joined it): updated, it stays; c stops naming a partner: it leaves.
    pool.reallocate(&member("a", 1, 3, 40, None), Reallocation::Requested)
        .expect("a path");
    pool.commit("a");
    pool.reallocate(&member("c", 2, 4, 40, None), Reallocation::Requested)
        .expect("a path");
    assert!(pool.group_of("c").is_some(), "not before the move commits");
    pool.commit("c");
    assert_eq!(pool.take_group_changes(), vec![("c".to_string(), None)]);
    assert!(pool.group_of("a").is_some() && pool.group_of("c").is_none());
}

#[test]
fn a_member_whose_partner_is_gone_is_still_rerouted_in_its_group() {
    let mut pool = pool("ring:4");
    pool.allocate(&member("a", 1, 3, 40, None)).expect("a path");
    let b = member("b", 1, 3, 42, Some("a"));
    pool.allocate(&b).expect("a path");
    pool.allocate(&member("c", 1, 3, 44, Some("b")))
        .expect("a path");
    pool.free("a");
    let moved = pool
        .reallocate(&b, Reallocation::Repair)
        .expect("the partner is not asked for again");
    pool.commit("b");
    assert!(links_of(&moved.forward_path).is_disjoint(&links_of(&current_path(&pool, "c"))));
    assert_eq!(pool.group_of("b"), pool.group_of("c"));
    assert!(pool.group_of("b").is_some());
}

#[test]
fn a_reroute_off_a_failed_link_stays_diverse() {
    let mut pool = pool("grid:3x3");
    let a = pool.allocate(&member("a", 1, 3, 40, None)).expect("a path");
    pool.allocate(&member("b", 1, 3, 42, Some("a")))
        .expect("a path");
    assert_eq!(switches_on(&current_path(&pool, "b")), vec![1, 4, 5, 6, 3]);
    let failed = current_path(&pool, "b")[2];
    for isl in [failed, failed.reversed()] {
        pool.apply_network_event(&SbEvent::IslDown { isl });
    }
    pool.reallocate(&member("b", 1, 3, 42, Some("a")), Reallocation::Repair)
        .expect("a path");
    pool.commit("b");
    let moved = current_path(&pool, "b");
    assert_eq!(switches_on(&moved), vec![1, 4, 5, 8, 9, 6, 3]);
    assert!(links_of(&moved).is_disjoint(&links_of(&a.forward_path)));
}

#[test]
fn groups_come_back_from_the_flow_log() {
    let event = |flow_id: &str, payload: FlowEvent| Envelope::new("c", flow_id, 1, payload);
    let updated = |flow_id: &str| {
        event(
            flow_id,
            FlowEvent::Updated {
                flow: FlowRecord::new(member(flow_id, 1, 3, 40, None), 1),
            },
        )
    };
    let group = |flow_id: &str, group: Option<&str>| {
        event(
            flow_id,
            FlowEvent::DiverseGroup {
                flow_id: flow_id.into(),
                group: group.map(str::to_string),
            },
        )
    };
    let recovery = Recovery::from_log(
        5,
        [
            updated("a"),
            updated("b"),
            updated("c"),
            updated("gone"),
            group("a", Some("a")),
            group("b", Some("a")),
            group("c", Some("a")),
            group("gone", Some("a")),
            group("c", None),
            event(
                "gone",
                FlowEvent::Removed {
                    flow_id: "gone".into(),
                    version: 1,
                },
            ),
        ],
    );
    assert_eq!(
        recovery.groups,
        vec![("a".into(), "a".into()), ("b".into(), "a".into())]
    );
    let mut pool = pool("ring:4");
    for (flow_id, group) in &recovery.groups {
        pool.restore_group(flow_id, group.clone());
    }
    assert_eq!(pool.group_of("b").map(String::as_str), Some("a"));
    assert!(
        pool.take_group_changes().is_empty(),
        "what the log says is not written again"
    );
}

mod kept_diverse {
    //! Over random small networks and groups: whenever a path avoiding every ISL of the
    //! group exists, the member allocated gets one.
    use super::*;
    use proptest::prelude::*;

    /// Switches 1 to `switches`, a link for each pair `links` picks; on switch a the link to
    /// switch b is port b.
    fn random_pool(switches: u64, links: &[bool]) -> ResourcePool {
        let mut pool = ResourcePool::new();
        for switch_id in 1..=switches {
            pool.apply_network_event(&SbEvent::SwitchAdded {
                switch_id: SwitchId(switch_id),
                ports: 48,
                port_numbers: Vec::new(),
            });
        }
        let pairs = (1..=switches).flat_map(|a| (a + 1..=switches).map(move |b| (a, b)));
        for ((a, b), _) in pairs.zip(links).filter(|(_, linked)| **linked) {
            let isl = Isl {
                src_switch: SwitchId(a),
                src_port: b as u32,
                dst_switch: SwitchId(b),
                dst_port: a as u32,
            };
            for isl in [isl, isl.reversed()] {
                pool.apply_network_event(&SbEvent::IslUp {
                    isl,
                    capacity: 1_000,
                    latency_ns: DEFAULT_LINK_LATENCY_NS,
                    cost: DEFAULT_ISL_COST,
                });
            }
        }
        pool
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn diversity_kept_whenever_a_diverse_path_exists(
            switches in 3..=7u64,
            links in prop::collection::vec(any::<bool>(), 21),
            flows in prop::collection::vec((1..=7u64, 1..=7u64), 2..=5),
        ) {
            let mut pool = random_pool(switches, &links);
            let mut group_isls: BTreeSet<Isl> = BTreeSet::new();
            let mut members = 0;
            for (n, (src, dst)) in flows.into_iter().enumerate() {
                let (src, dst) = (src.min(switches), dst.min(switches));
                if src == dst {
                    continue;
                }
                let partner = (members > 0).then_some("f0");
                let flow_id = if members == 0 { "f0".to_string() } else { format!("f{n}") };
                let request = member(&flow_id, src, dst, 20 + 2 * n as u32, partner);
                let diverse_exists = pool
                    .network
                    .shortest_path(SwitchId(src), SwitchId(dst), 0, |isl| {
                        (!group_isls.contains(isl)).then_some(u64::MAX)
                    })
                    .is_some();
                match pool.allocate(&request) {
                    Ok(resources) => {
                        let isls: BTreeSet<Isl> = reserved_isls(&resources).collect();
                        if diverse_exists {
                            prop_assert!(isls.is_disjoint(&group_isls), "{flow_id} shares {isls:?}");
                        }
                        group_isls.extend(isls);
                        members += 1;
                    }
                    Err(error) => {
                        prop_assert!(!diverse_exists, "{flow_id}: {}", error.error_message);
                        prop_assert_eq!(error.status, 503);
                    }
                }
            }
        }
    }
}
