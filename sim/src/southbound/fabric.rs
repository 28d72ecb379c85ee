//! The simulated switches' state: rule tables, meters, switch and link availability. Pure:
//! the simulator thread and the control API both drive it under one lock.

use std::collections::{BTreeMap, BTreeSet};

use hubspoke_fsm::network::Network;
use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{Isl, SbAction, SbCommand, SbErrorCode, SbEvent, SbOutcome, SwitchId, MAX_VLAN};

use super::faults::{FaultPlan, Faults};

/// Rules one simulated switch holds at most.
pub const DEFAULT_TABLE_CAPACITY: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FabricError {
    #[error("switch {0} is not in the network")]
    UnknownSwitch(SwitchId),
    #[error("no link between switches {0} and {1}")]
    UnknownLink(SwitchId, SwitchId),
}

#[derive(Clone, Debug)]
struct SwitchState {
    ports: u32,
    available: bool,
    rules: BTreeMap<u64, FlowSegment>,
    /// meter id → kbps
    meters: BTreeMap<u32, u64>,
}

/// Which switches answer and which ISLs can carry traffic.
#[derive(Default)]
struct NetworkState {
    switches: BTreeSet<SwitchId>,
    isls: BTreeSet<Isl>,
}

#[derive(Clone, Debug)]
pub struct SwitchFabric {
    switches: BTreeMap<SwitchId, SwitchState>,
    /// Every directed ISL of the network.
    isls: Vec<Isl>,
    /// kbps per directed ISL.
    capacity: BTreeMap<Isl, u64>,
    down: BTreeSet<Isl>,
    table_capacity: usize,
    faults: FaultPlan,
}

fn error(code: SbErrorCode, message: impl Into<String>) -> SbOutcome {
    SbOutcome::Error {
        code,
        message: message.into(),
    }
}

impl SwitchFabric {
    pub fn new(network: &Network) -> Self {
        Self::with_table_capacity(network, DEFAULT_TABLE_CAPACITY)
    }

    pub fn with_table_capacity(network: &Network, table_capacity: usize) -> Self {
        let switches = network
            .switches()
            .map(|s| {
                let state = SwitchState {
                    ports: s.ports,
                    available: true,
                    rules: BTreeMap::new(),
                    meters: BTreeMap::new(),
                };
                (s.switch_id, state)
            })
            .collect();
        SwitchFabric {
            switches,
            isls: network.links().iter().map(|l| l.isl).collect(),
            capacity: network
                .links()
                .iter()
                .map(|l| (l.isl, l.capacity))
                .collect(),
            down: BTreeSet::new(),
            table_capacity,
            faults: FaultPlan::default(),
        }
    }

    /// What the switch does with a command that reached it.
    pub fn apply(&mut self, command: &SbCommand) -> SbOutcome {
        let segment = &command.segment;
        let Some(switch) = self.switches.get_mut(&segment.switch_id) else {
            return error(
                SbErrorCode::BadCommand,
                format!("switch {} is not in the network", segment.switch_id),
            );
        };
        if !switch.available {
            return error(
                SbErrorCode::SwitchUnavailable,
                format!("switch {} is not answering", segment.switch_id),
            );
        }
        match command.action {
            SbAction::Install => switch.install(segment, self.table_capacity),
            SbAction::Remove => {
                switch.remove(segment);
                SbOutcome::Success
            }
            SbAction::Verify => match switch.rules.get(&segment.cookie) {
                Some(rule) if rule == segment => SbOutcome::Success,
                Some(_) => error(
                    SbErrorCode::MissingRule,
                    format!("rule {:#x} differs from the expected one", segment.cookie),
                ),
                None => error(
                    SbErrorCode::MissingRule,
                    format!("no rule {:#x}", segment.cookie),
                ),
            },
        }
    }

    pub fn rules(&self, switch_id: SwitchId) -> Option<Vec<FlowSegment>> {
        self.switches
            .get(&switch_id)
            .map(|s| s.rules.values().cloned().collect())
    }

    /// meter id → kbps
    pub fn meters(&self, switch_id: SwitchId) -> Option<BTreeMap<u32, u64>> {
        self.switches.get(&switch_id).map(|s| s.meters.clone())
    }

    pub fn is_available(&self, switch_id: SwitchId) -> Option<bool> {
        self.switches.get(&switch_id).map(|s| s.available)
    }

    /// The switch stops acting on commands; its rules stay (a switch that lost its controller
    /// connection keeps forwarding).
    pub fn fail_switch(&mut self, switch_id: SwitchId) -> Result<(), FabricError> {
        self.set_available(switch_id, false)
    }

    pub fn restore_switch(&mut self, switch_id: SwitchId) -> Result<(), FabricError> {
        self.set_available(switch_id, true)
    }

    fn set_available(&mut self, switch_id: SwitchId, available: bool) -> Result<(), FabricError> {
        let switch = self
            .switches
            .get_mut(&switch_id)
            .ok_or(FabricError::UnknownSwitch(switch_id))?;
        switch.available = available;
        Ok(())
    }

    /// Takes every link between the two switches down, both directions. Returns those ISLs.
    pub fn fail_link(&mut self, a: SwitchId, b: SwitchId) -> Result<Vec<Isl>, FabricError> {
        let isls = self.isls_between(a, b)?;
        self.down.extend(isls.iter().copied());
        Ok(isls)
    }

    pub fn restore_link(&mut self, a: SwitchId, b: SwitchId) -> Result<Vec<Isl>, FabricError> {
        let isls = self.isls_between(a, b)?;
        for isl in &isls {
            self.down.remove(isl);
        }
        Ok(isls)
    }

    fn isls_between(&self, a: SwitchId, b: SwitchId) -> Result<Vec<Isl>, FabricError> {
        for switch in [a, b] {
            if !self.switches.contains_key(&switch) {
                return Err(FabricError::UnknownSwitch(switch));
            }
        }
        let isls: Vec<Isl> = self
            .isls
            .iter()
            .filter(|i| {
                (i.src_switch, i.dst_switch) == (a, b) || (i.src_switch, i.dst_switch) == (b, a)
            })
            .copied()
            .collect();
        if isls.is_empty() {
            return Err(FabricError::UnknownLink(a, b));
        }
        Ok(isls)
    }

    /// The whole network as events, as a switch layer announces it at start: every switch that
    /// answers and every ISL that can carry traffic.
    pub fn announce(&self) -> Vec<SbEvent> {
        self.events_since(&NetworkState::default())
    }

    /// Runs a change (failing or restoring a switch or a link) and returns what it did with the
    /// network events it caused: an ISL is up when it is not failed and both its switches
    /// answer, so failing a switch also takes its ISLs down, and restoring it brings back those
    /// whose link and far switch are up.
    pub fn change<T>(
        &mut self,
        change: impl FnOnce(&mut Self) -> Result<T, FabricError>,
    ) -> Result<(T, Vec<SbEvent>), FabricError> {
        let before = self.network_state();
        let result = change(self)?;
        Ok((result, self.events_since(&before)))
    }

    fn network_state(&self) -> NetworkState {
        let switches: BTreeSet<SwitchId> = self
            .switches
            .iter()
            .filter(|(_, s)| s.available)
            .map(|(id, _)| *id)
            .collect();
        let isls = self
            .isls
            .iter()
            .filter(|isl| {
                !self.down.contains(isl)
                    && switches.contains(&isl.src_switch)
                    && switches.contains(&isl.dst_switch)
            })
            .copied()
            .collect();
        NetworkState { switches, isls }
    }

    fn events_since(&self, before: &NetworkState) -> Vec<SbEvent> {
        let after = self.network_state();
        let mut events = Vec::new();
        for switch_id in after.switches.difference(&before.switches) {
            let ports = self.switches.get(switch_id).map_or(0, |s| s.ports);
            events.push(SbEvent::SwitchAdded {
                switch_id: *switch_id,
                ports,
            });
        }
        for isl in after.isls.difference(&before.isls) {
            let capacity = self.capacity.get(isl).copied().unwrap_or(0);
            events.push(SbEvent::IslUp {
                isl: *isl,
                capacity,
            });
        }
        for isl in before.isls.difference(&after.isls) {
            events.push(SbEvent::IslDown { isl: *isl });
        }
        for switch_id in before.switches.difference(&after.switches) {
            events.push(SbEvent::SwitchRemoved {
                switch_id: *switch_id,
            });
        }
        events
    }

    pub fn is_link_up(&self, isl: &Isl) -> bool {
        !self.down.contains(isl)
    }

    pub fn has_switch(&self, switch_id: SwitchId) -> bool {
        self.switches.contains_key(&switch_id)
    }

    pub fn faults(&self) -> &FaultPlan {
        &self.faults
    }

    /// Sets the faults of one switch, or the default of all when `switch_id` is None (which
    /// also clears the per-switch overrides, so "every switch" means every switch).
    pub fn set_faults(
        &mut self,
        switch_id: Option<SwitchId>,
        faults: Faults,
    ) -> Result<(), FabricError> {
        match switch_id {
            Some(id) if !self.switches.contains_key(&id) => {
                return Err(FabricError::UnknownSwitch(id))
            }
            Some(id) => {
                self.faults.per_switch.insert(id, faults);
            }
            None => {
                self.faults.default = faults;
                self.faults.per_switch.clear();
            }
        }
        Ok(())
    }
}

impl SwitchState {
    fn install(&mut self, segment: &FlowSegment, capacity: usize) -> SbOutcome {
        for (name, port) in [("in_port", segment.in_port), ("out_port", segment.out_port)] {
            if port == 0 || port > self.ports {
                return error(
                    SbErrorCode::BadCommand,
                    format!(
                        "{name} {port} is not a port of switch {} (1..={})",
                        segment.switch_id, self.ports
                    ),
                );
            }
        }
        for (name, vlan) in [("in_vlan", segment.in_vlan), ("out_vlan", segment.out_vlan)] {
            if vlan > MAX_VLAN {
                return error(
                    SbErrorCode::BadCommand,
                    format!("{name} {vlan} is not a VLAN id"),
                );
            }
        }
        if self.rules.len() >= capacity && !self.rules.contains_key(&segment.cookie) {
            return error(
                SbErrorCode::TableFull,
                format!(
                    "switch {} holds {capacity} rules already",
                    segment.switch_id
                ),
            );
        }
        if let Some(old) = self.rules.insert(segment.cookie, segment.clone()) {
            // A replaced rule's meter goes with it unless the new rule keeps it.
            if old.meter_id != segment.meter_id {
                self.release_meter(old.meter_id);
            }
        }
        if let Some(meter_id) = segment.meter_id {
            self.meters.insert(meter_id, segment.bandwidth);
        }
        SbOutcome::Success
    }

    fn remove(&mut self, segment: &FlowSegment) {
        let removed = self.rules.remove(&segment.cookie);
        self.release_meter(removed.and_then(|r| r.meter_id));
        // Removing twice must clean up the meter too, e.g. after a partial earlier attempt.
        self.release_meter(segment.meter_id);
    }

    /// Drops a meter no rule uses any more.
    fn release_meter(&mut self, meter_id: Option<u32>) {
        let Some(meter_id) = meter_id else { return };
        if !self.rules.values().any(|r| r.meter_id == Some(meter_id)) {
            self.meters.remove(&meter_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::segments::SegmentKind;

    fn fabric() -> SwitchFabric {
        SwitchFabric::with_table_capacity(&Network::generate("linear:3").unwrap().unwrap(), 3)
    }

    fn segment(switch: u64, cookie: u64, meter_id: Option<u32>) -> FlowSegment {
        FlowSegment {
            switch_id: SwitchId(switch),
            kind: SegmentKind::Ingress,
            cookie,
            in_port: 10,
            in_vlan: 100,
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
        }
    }

    fn code(outcome: SbOutcome) -> Option<SbErrorCode> {
        match outcome {
            SbOutcome::Success => None,
            SbOutcome::Error { code, .. } => Some(code),
        }
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
        assert_eq!(
            fabric.fail_switch(SwitchId(42)),
            Err(FabricError::UnknownSwitch(SwitchId(42)))
        );
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
        assert_eq!(
            fabric.fail_link(SwitchId(1), SwitchId(3)),
            Err(FabricError::UnknownLink(SwitchId(1), SwitchId(3)))
        );
        assert_eq!(
            fabric.fail_link(SwitchId(1), SwitchId(9)),
            Err(FabricError::UnknownSwitch(SwitchId(9)))
        );
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
}

#[cfg(test)]
mod network_event_tests {
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
            ports: 48
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
}
