use super::*;
use hubspoke_fsm::segments::SegmentKind;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubspoke-fabric-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join(crate::SWITCH_STORE_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn network(spec: &str) -> Network {
    Network::generate(spec).unwrap().unwrap()
}

fn install(fabric: &mut SwitchFabric, switch: u64, cookie: u64, meter_id: Option<u32>) {
    let segment = FlowSegment {
        switch_id: SwitchId(switch),
        kind: SegmentKind::Transit,
        cookie,
        in_port: 1,
        // One match per cookie: a rule with the same match would replace it.
        in_vlan: cookie as u16,
        out_port: 2,
        out_vlan: 100,
        meter_id,
        bandwidth: 1000 + cookie,
    };
    let command = SbCommand {
        command_id: format!("install-{switch}-{cookie}"),
        attempt: 1,
        action: SbAction::Install,
        segment,
        ping_exit: None,
    };
    assert_eq!(fabric.apply(&command), SbOutcome::Success);
}

fn remove(fabric: &mut SwitchFabric, switch: u64, cookie: u64) {
    let mut segment = fabric
        .rules(SwitchId(switch))
        .unwrap()
        .into_iter()
        .find(|r| r.cookie == cookie)
        .unwrap();
    segment.out_vlan = 7; // a remove names the cookie; the rest need not match
    let command = SbCommand {
        command_id: format!("remove-{switch}-{cookie}"),
        attempt: 1,
        action: SbAction::Remove,
        segment,
        ping_exit: None,
    };
    assert_eq!(fabric.apply(&command), SbOutcome::Success);
}

/// Everything a restart must keep, switch by switch.
type Snapshot = Vec<(
    SwitchId,
    Option<Vec<FlowSegment>>,
    Option<BTreeMap<u32, u64>>,
    Option<bool>,
)>;

fn snapshot(fabric: &SwitchFabric, switches: u64) -> Snapshot {
    (1..=switches)
        .map(SwitchId)
        .map(|s| (s, fabric.rules(s), fabric.meters(s), fabric.is_available(s)))
        .collect()
}

fn sorted(mut events: Vec<SbEvent>) -> Vec<String> {
    let mut texts: Vec<String> = events.drain(..).map(|e| format!("{e:?}")).collect();
    texts.sort();
    texts
}

#[test]
fn a_reopened_store_has_the_same_rules_meters_and_failures() {
    let dir = TempDir::new();
    let network = network("linear:3");
    let (before, announced, isls) = {
        let mut fabric = SwitchFabric::open(&network, dir.file()).unwrap();
        assert_eq!(fabric.store_path(), Some(dir.file().as_path()));
        install(&mut fabric, 1, 0x4000_0000_0000_0001, Some(32));
        install(&mut fabric, 1, 2, None);
        install(&mut fabric, 2, 3, Some(33));
        install(&mut fabric, 2, 4, Some(34));
        install(&mut fabric, 3, 5, Some(35));
        remove(&mut fabric, 2, 4);
        // a replaced rule's meter goes, in the store too
        install(&mut fabric, 3, 5, Some(36));
        let (isls, _) = fabric
            .change(|f| f.fail_link(SwitchId(2), SwitchId(1)))
            .unwrap();
        fabric.fail_switch(SwitchId(3)).unwrap();
        fabric.fail_switch(SwitchId(2)).unwrap();
        fabric.restore_switch(SwitchId(2)).unwrap();
        (snapshot(&fabric, 3), fabric.announce(), isls)
    };
    assert_eq!(
        before[1].2,
        Some(BTreeMap::from([(33, 1003)])),
        "meter 34 went with its rule"
    );
    assert_eq!(before[2].2, Some(BTreeMap::from([(36, 1005)])));

    let mut reopened = SwitchFabric::open(&network, dir.file()).unwrap();
    assert_eq!(snapshot(&reopened, 3), before);
    assert_eq!(reopened.is_available(SwitchId(3)), Some(false));
    assert!(isls.iter().all(|isl| !reopened.is_link_up(isl)));
    assert_eq!(sorted(reopened.announce()), sorted(announced));

    // and what changes after the restart is kept as well
    reopened.restore_link(SwitchId(1), SwitchId(2)).unwrap();
    reopened.restore_switch(SwitchId(3)).unwrap();
    remove(&mut reopened, 1, 0x4000_0000_0000_0001);
    let after = snapshot(&reopened, 3);
    drop(reopened);
    let again = SwitchFabric::open(&network, dir.file()).unwrap();
    assert_eq!(snapshot(&again, 3), after);
    assert!(isls.iter().all(|isl| again.is_link_up(isl)));
    assert_eq!(again.meters(SwitchId(1)), Some(BTreeMap::new()));
    assert_eq!(again.rules(SwitchId(1)).map(|r| r.len()), Some(1));
}

#[test]
fn a_new_file_is_an_empty_network_with_everything_up() {
    let dir = TempDir::new();
    let network = network("ring:3");
    let fabric = SwitchFabric::open(&network, dir.file()).unwrap();
    assert!(dir.file().exists());
    assert_eq!(
        sorted(fabric.announce()),
        sorted(SwitchFabric::new(&network).announce())
    );
    assert_eq!(fabric.rules(SwitchId(1)), Some(vec![]));
}

#[test]
fn a_data_directory_is_created_and_holds_the_store_file_only() {
    let dir = TempDir::new();
    let data = dir.0.join("data/nested");
    let network = network("linear:2");
    {
        let mut fabric = SwitchFabric::open_in(&network, &data).unwrap();
        install(&mut fabric, 2, 9, None);
    }
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(files, [crate::SWITCH_STORE_FILE]);
    let reopened = SwitchFabric::open_in(&network, &data).unwrap();
    assert_eq!(reopened.rules(SwitchId(2)).map(|r| r.len()), Some(1));
    std::fs::write(dir.0.join("a-file"), "").unwrap();
    assert!(matches!(
        SwitchFabric::open_in(&network, dir.0.join("a-file")),
        Err(FabricError::DataDir { .. })
    ));
}

#[test]
fn the_file_is_used_by_one_fabric_at_a_time() {
    let dir = TempDir::new();
    let network = network("linear:2");
    let _first = SwitchFabric::open(&network, dir.file()).unwrap();
    let second = SwitchFabric::open(&network, dir.file());
    assert!(matches!(second, Err(FabricError::Store(_))), "{second:?}");
    let missing = SwitchFabric::open(&network, dir.0.join("no/such/dir/switches.redb"));
    assert!(matches!(missing, Err(FabricError::Store(_))), "{missing:?}");
}

#[test]
fn state_of_another_network_is_ignored() {
    let dir = TempDir::new();
    {
        let mut fabric = SwitchFabric::open(&network("linear:3"), dir.file()).unwrap();
        install(&mut fabric, 1, 1, Some(32));
        install(&mut fabric, 3, 2, Some(33));
        fabric.fail_link(SwitchId(2), SwitchId(3)).unwrap();
        fabric.fail_switch(SwitchId(3)).unwrap();
    }
    let smaller = SwitchFabric::open(&network("linear:2"), dir.file()).unwrap();
    assert_eq!(smaller.rules(SwitchId(1)).map(|r| r.len()), Some(1));
    assert_eq!(smaller.rules(SwitchId(3)), None);
    assert!(!sorted(smaller.announce()).is_empty());
    drop(smaller);
    // nothing was lost: the bigger network finds it all again
    let bigger = SwitchFabric::open(&network("linear:3"), dir.file()).unwrap();
    assert_eq!(bigger.rules(SwitchId(3)).map(|r| r.len()), Some(1));
    assert_eq!(bigger.is_available(SwitchId(3)), Some(false));
}

#[test]
fn a_reset_footprint_undoes_a_command() {
    let mut fabric = SwitchFabric::new(&network("linear:2"));
    install(&mut fabric, 1, 7, Some(32));
    install(&mut fabric, 1, 8, Some(40));
    let switch = fabric.switches.get_mut(&SwitchId(1)).unwrap();
    let original = (switch.rules.clone(), switch.meters.clone());
    let by_cookie = |cookie: u64| {
        switch
            .rules
            .values()
            .find(|r| r.cookie == cookie)
            .cloned()
            .unwrap()
    };
    let (seven, eight) = (by_cookie(7), by_cookie(8));
    let mut replacement = seven;
    replacement.meter_id = Some(33);
    for (action, segment) in [
        (SbAction::Install, replacement.clone()),
        (SbAction::Remove, replacement),
        (SbAction::Remove, eight),
    ] {
        let before = switch.footprint(&segment);
        let command = SbCommand {
            command_id: "c".into(),
            attempt: 1,
            action,
            segment,
            ping_exit: None,
        };
        assert_eq!(switch.act(&command, 10), SbOutcome::Success);
        let after = switch.footprint_like(&before);
        assert!(!before.changes_to(&after, SwitchId(1)).is_empty());
        assert_ne!((&switch.rules, &switch.meters), (&original.0, &original.1));
        switch.reset(before);
        assert_eq!((&switch.rules, &switch.meters), (&original.0, &original.1));
    }
}
