//! The simulated switches' state: rule tables, meters, switch and link availability. The
//! simulator thread and the control API both drive it under one lock. In memory, or durable:
//! opened on a file ([`SwitchFabric::open`]), it writes every change through to the
//! [switch store](super::store) before it answers, and finds it all again after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hubspoke_fsm::network::Network;
use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{Isl, SbAction, SbCommand, SbErrorCode, SbEvent, SbOutcome, SwitchId, MAX_VLAN};

use super::faults::{FaultPlan, Faults};
use super::store::{Change, StoreError, Stored, SwitchStore, SWITCH_STORE_FILE};

/// Rules one simulated switch holds at most.
pub const DEFAULT_TABLE_CAPACITY: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    #[error("switch {0} is not in the network")]
    UnknownSwitch(SwitchId),
    #[error("no link between switches {0} and {1}")]
    UnknownLink(SwitchId, SwitchId),
    /// The switch store could not be opened, read or written; a change that could not be
    /// written is not made.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("creating the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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

#[derive(Debug)]
pub struct SwitchFabric {
    switches: BTreeMap<SwitchId, SwitchState>,
    /// Every directed ISL of the network.
    isls: Vec<Isl>,
    /// kbps per directed ISL.
    capacity: BTreeMap<Isl, u64>,
    down: BTreeSet<Isl>,
    table_capacity: usize,
    faults: FaultPlan,
    /// Where changes are written through; None for a fabric in memory only.
    store: Option<SwitchStore>,
}

/// What one command may change on its switch (the rule under its cookie, and the meters of
/// that rule and of the command's segment) with the values they have.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    cookie: u64,
    rule: Option<FlowSegment>,
    meters: Vec<(u32, Option<u64>)>,
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
            store: None,
        }
    }

    /// A durable fabric: opens the switch store at `path` (creating the file if missing) and
    /// loads what it holds: rules, meters, failed switches and failed links. Every change is
    /// then written to it before the fabric answers.
    pub fn open(network: &Network, path: impl AsRef<Path>) -> Result<Self, FabricError> {
        Self::open_with_table_capacity(network, path, DEFAULT_TABLE_CAPACITY)
    }

    /// [`open`](Self::open) on the store file ([`SWITCH_STORE_FILE`]) of a data directory,
    /// creating the directory if missing.
    pub fn open_in(network: &Network, data_dir: impl AsRef<Path>) -> Result<Self, FabricError> {
        let data_dir = data_dir.as_ref();
        std::fs::create_dir_all(data_dir).map_err(|source| FabricError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Self::open(network, data_dir.join(SWITCH_STORE_FILE))
    }

    pub fn open_with_table_capacity(
        network: &Network,
        path: impl AsRef<Path>,
        table_capacity: usize,
    ) -> Result<Self, FabricError> {
        let store = SwitchStore::open(path.as_ref())?;
        let stored = store.load()?;
        let mut fabric = Self::with_table_capacity(network, table_capacity);
        fabric.load(stored, path.as_ref());
        fabric.store = Some(store);
        Ok(fabric)
    }

    /// Takes what the store holds. State of a switch or link that is not in this network (the
    /// store was written with another `--network`) is left in the file and not used.
    fn load(&mut self, stored: Stored, path: &Path) {
        let mut foreign = 0usize;
        for rule in stored.rules {
            match self.switches.get_mut(&rule.switch_id) {
                Some(switch) => {
                    switch.rules.insert(rule.cookie, rule);
                }
                None => foreign += 1,
            }
        }
        for (switch_id, meter_id, rate) in stored.meters {
            match self.switches.get_mut(&switch_id) {
                Some(switch) => {
                    switch.meters.insert(meter_id, rate);
                }
                None => foreign += 1,
            }
        }
        for switch_id in stored.failed_switches {
            match self.switches.get_mut(&switch_id) {
                Some(switch) => switch.available = false,
                None => foreign += 1,
            }
        }
        for isl in stored.failed_links {
            if self.isls.contains(&isl) {
                self.down.insert(isl);
            } else {
                foreign += 1;
            }
        }
        if foreign > 0 {
            tracing::warn!(path = %path.display(), entries = foreign,
                "the switch store holds rules, meters or failures of switches or links that are not in this network; they are ignored");
        }
    }

    /// The switch store's file, for a durable fabric.
    pub fn store_path(&self) -> Option<&Path> {
        self.store.as_ref().map(SwitchStore::path)
    }

    /// What the switch does with a command that reached it. A durable fabric has written the
    /// change when this returns; if it could not, the change is not made and the answer is an
    /// `UNKNOWN` error (the sender may retry).
    pub fn apply(&mut self, command: &SbCommand) -> SbOutcome {
        self.apply_all([command])
            .pop()
            .expect("one outcome per command")
    }

    /// Applies the commands in order and answers each, as [`apply`](Self::apply) does, but a
    /// durable fabric writes all their changes in one transaction (one sync for the batch).
    /// If that write fails, none of the changes is made and every command of the batch is
    /// answered with an `UNKNOWN` error.
    pub fn apply_all<'a>(
        &mut self,
        commands: impl IntoIterator<Item = &'a SbCommand>,
    ) -> Vec<SbOutcome> {
        let mut outcomes = Vec::new();
        let mut undo: Vec<(SwitchId, Footprint)> = Vec::new();
        let mut changes = Vec::new();
        for command in commands {
            let segment = &command.segment;
            let Some(switch) = self.switches.get_mut(&segment.switch_id) else {
                outcomes.push(error(
                    SbErrorCode::BadCommand,
                    format!("switch {} is not in the network", segment.switch_id),
                ));
                continue;
            };
            if !switch.available {
                outcomes.push(error(
                    SbErrorCode::SwitchUnavailable,
                    format!("switch {} is not answering", segment.switch_id),
                ));
                continue;
            }
            if self.store.is_none() || command.action.is_read_only() {
                outcomes.push(switch.act(command, self.table_capacity));
                continue;
            }
            let before = switch.footprint(segment);
            outcomes.push(switch.act(command, self.table_capacity));
            let after = switch.footprint_like(&before);
            let changed = before.changes_to(&after, segment.switch_id);
            if !changed.is_empty() {
                changes.extend(changed);
                undo.push((segment.switch_id, before));
            }
        }
        let Some(store) = &self.store else {
            return outcomes;
        };
        if let Err(e) = store.write(&changes) {
            // Back to the state before the batch, newest change first.
            for (switch_id, before) in undo.into_iter().rev() {
                if let Some(switch) = self.switches.get_mut(&switch_id) {
                    switch.reset(before);
                }
            }
            tracing::error!(error = %e, commands = outcomes.len(),
                "the simulated switches could not keep their changes");
            let message = format!("the switch could not keep the change: {e}");
            return outcomes
                .iter()
                .map(|_| error(SbErrorCode::Unknown, message.clone()))
                .collect();
        }
        outcomes
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
        if switch.available != available {
            if let Some(store) = &self.store {
                store.write(&[Change::SwitchFailed {
                    switch_id,
                    failed: !available,
                }])?;
            }
            switch.available = available;
        }
        Ok(())
    }

    /// Takes every link between the two switches down, both directions. Returns those ISLs.
    pub fn fail_link(&mut self, a: SwitchId, b: SwitchId) -> Result<Vec<Isl>, FabricError> {
        let isls = self.isls_between(a, b)?;
        self.set_links_failed(&isls, true)?;
        Ok(isls)
    }

    pub fn restore_link(&mut self, a: SwitchId, b: SwitchId) -> Result<Vec<Isl>, FabricError> {
        let isls = self.isls_between(a, b)?;
        self.set_links_failed(&isls, false)?;
        Ok(isls)
    }

    /// Writes first, then changes the memory: a failed write changes nothing.
    fn set_links_failed(&mut self, isls: &[Isl], failed: bool) -> Result<(), FabricError> {
        let changed: Vec<Isl> = isls
            .iter()
            .filter(|isl| self.down.contains(isl) != failed)
            .copied()
            .collect();
        if let Some(store) = &self.store {
            let changes: Vec<Change> = changed
                .iter()
                .map(|isl| Change::LinkFailed { isl: *isl, failed })
                .collect();
            store.write(&changes)?;
        }
        for isl in changed {
            if failed {
                self.down.insert(isl);
            } else {
                self.down.remove(&isl);
            }
        }
        Ok(())
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

impl Footprint {
    /// The writes that take the store from `self` to `after` (the same keys, later).
    fn changes_to(&self, after: &Footprint, switch_id: SwitchId) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.rule != after.rule {
            changes.push(Change::Rule {
                switch_id,
                cookie: after.cookie,
                rule: after.rule.clone(),
            });
        }
        for ((meter_id, rate), (_, rate_after)) in self.meters.iter().zip(&after.meters) {
            if rate != rate_after {
                changes.push(Change::Meter {
                    switch_id,
                    meter_id: *meter_id,
                    rate_kbps: *rate_after,
                });
            }
        }
        changes
    }
}

impl SwitchState {
    fn act(&mut self, command: &SbCommand, table_capacity: usize) -> SbOutcome {
        let segment = &command.segment;
        match command.action {
            SbAction::Install => self.install(segment, table_capacity),
            SbAction::Remove => {
                self.remove(segment);
                SbOutcome::Success
            }
            SbAction::Dump => SbOutcome::Rules {
                rules: self
                    .rules
                    .values()
                    .filter(|rule| segment.cookie == 0 || rule.cookie_id() == segment.cookie)
                    .cloned()
                    .collect(),
            },
            SbAction::Verify => match self.rules.get(&segment.cookie) {
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

    /// Everything a command with this segment may change: installing replaces the rule under
    /// its cookie and may release the old rule's meter; removing may release that meter and
    /// the segment's.
    fn footprint(&self, segment: &FlowSegment) -> Footprint {
        let rule = self.rules.get(&segment.cookie).cloned();
        let mut meter_ids: Vec<u32> = rule
            .as_ref()
            .and_then(|r| r.meter_id)
            .into_iter()
            .chain(segment.meter_id)
            .collect();
        meter_ids.sort_unstable();
        meter_ids.dedup();
        self.footprint_of(segment.cookie, rule, meter_ids)
    }

    /// The same keys as `before`, as they are now.
    fn footprint_like(&self, before: &Footprint) -> Footprint {
        let rule = self.rules.get(&before.cookie).cloned();
        self.footprint_of(before.cookie, rule, before.meters.iter().map(|(id, _)| *id))
    }

    fn footprint_of(
        &self,
        cookie: u64,
        rule: Option<FlowSegment>,
        meter_ids: impl IntoIterator<Item = u32>,
    ) -> Footprint {
        let meters = meter_ids
            .into_iter()
            .map(|id| (id, self.meters.get(&id).copied()))
            .collect();
        Footprint {
            cookie,
            rule,
            meters,
        }
    }

    /// Puts the keys back as `before` had them.
    fn reset(&mut self, before: Footprint) {
        match before.rule {
            Some(rule) => self.rules.insert(before.cookie, rule),
            None => self.rules.remove(&before.cookie),
        };
        for (meter_id, rate) in before.meters {
            match rate {
                Some(rate) => self.meters.insert(meter_id, rate),
                None => self.meters.remove(&meter_id),
            };
        }
    }

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
            SbOutcome::Success | SbOutcome::Rules { .. } => None,
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
                rules: vec![a.clone(), b]
            }
        );
        assert_eq!(
            fabric.apply(&dump(a.cookie_id())),
            SbOutcome::Rules { rules: vec![a] },
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

#[cfg(test)]
mod store_tests {
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
            in_vlan: 100,
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
        let mut replacement = switch.rules[&7].clone();
        replacement.meter_id = Some(33);
        for (action, segment) in [
            (SbAction::Install, replacement.clone()),
            (SbAction::Remove, replacement),
            (SbAction::Remove, switch.rules[&8].clone()),
        ] {
            let before = switch.footprint(&segment);
            let command = SbCommand {
                command_id: "c".into(),
                attempt: 1,
                action,
                segment,
            };
            assert_eq!(switch.act(&command, 10), SbOutcome::Success);
            let after = switch.footprint_like(&before);
            assert!(!before.changes_to(&after, SwitchId(1)).is_empty());
            assert_ne!((&switch.rules, &switch.meters), (&original.0, &original.1));
            switch.reset(before);
            assert_eq!((&switch.rules, &switch.meters), (&original.0, &original.1));
        }
    }
}
