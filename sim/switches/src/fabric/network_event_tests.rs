use super::*;

fn ring() -> SwitchFabric {
    SwitchFabric::new(&Network::generate("ring:3").unwrap().unwrap())
}

fn count(events: &[SbEvent]) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for event in events {
        match event {
            SbEvent::SwitchAdded { .. } => counts.0 += 1,
            SbEvent::SwitchRemoved { .. } => counts.1 += 1,
            SbEvent::IslUp { .. } => counts.2 += 1,
            SbEvent::IslDown { .. } => counts.3 += 1,
        }
    }
    counts
}

#[test]
fn the_announcement_is_the_whole_network() {
    let events = ring().announce();
    assert_eq!(count(&events), (3, 0, 6, 0));
    assert!(events.contains(&SbEvent::SwitchAdded {
        switch_id: SwitchId(1),
        ports: 48,
        port_numbers: Vec::new(),
    }));
    assert!(events
        .iter()
        .all(|e| !matches!(e, SbEvent::IslUp { capacity, .. } if *capacity != 10_000_000)));
}

#[test]
fn a_failed_link_goes_down_both_ways_and_comes_back() {
    let mut fabric = ring();
    let (_, events) = fabric
        .change(|f| f.fail_link(SwitchId(1), SwitchId(2)))
        .unwrap();
    assert_eq!(count(&events), (0, 0, 0, 2));
    let (_, again) = fabric
        .change(|f| f.fail_link(SwitchId(2), SwitchId(1)))
        .unwrap();
    assert!(again.is_empty(), "no change, no event");
    let (_, events) = fabric
        .change(|f| f.restore_link(SwitchId(1), SwitchId(2)))
        .unwrap();
    assert_eq!(count(&events), (0, 0, 2, 0));
}

#[test]
fn a_failed_switch_takes_its_isls_with_it() {
    let mut fabric = ring();
    fabric
        .change(|f| f.fail_link(SwitchId(1), SwitchId(2)))
        .unwrap();
    let (_, events) = fabric.change(|f| f.fail_switch(SwitchId(1))).unwrap();
    assert_eq!(
        count(&events),
        (0, 1, 0, 2),
        "only the 1-3 link was still up"
    );
    let (_, events) = fabric.change(|f| f.restore_switch(SwitchId(1))).unwrap();
    assert_eq!(
        count(&events),
        (1, 0, 2, 0),
        "the failed 1-2 link stays down"
    );
    assert!(fabric.change(|f| f.fail_switch(SwitchId(9))).is_err());
}
