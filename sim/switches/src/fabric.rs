//! The simulated switches' state: rule tables, meters, switch and link availability. The
//! simulator thread and the control API both drive it under one lock. In memory, or durable:
//! opened on a file ([`SwitchFabric::open`]), it writes every change through to the
//! [switch store](super::store) before it answers, and finds it all again after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hubspoke_fsm::dataplane::{trace, DataPlane, LinkEnd, PortVlan, RuleMatch, Trace};
use hubspoke_fsm::network::{Link, Network};
use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{
    Isl, MeterEntry, SbAction, SbCommand, SbErrorCode, SbEvent, SbOutcome, SwitchId, MAX_VLAN,
};

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

/// One simulated switch: whether it answers, its rule table and its meters. The table is
/// keyed by match, as an OpenFlow table is (every rule has the same priority): an install
/// whose match equals a rule's replaces it, whatever its cookie.
#[derive(Clone, Debug)]
struct SimSwitch {
    ports: u32,
    available: bool,
    rules: BTreeMap<RuleMatch, FlowSegment>,
    /// meter id → kbps
    meters: BTreeMap<u32, u64>,
}

/// Which switches answer and which ISLs can carry traffic.
#[derive(Default)]
struct Reachable {
    switches: BTreeSet<SwitchId>,
    isls: BTreeSet<Isl>,
}

#[derive(Debug)]
pub struct SwitchFabric {
    switches: BTreeMap<SwitchId, SimSwitch>,
    /// Every directed ISL of the network.
    isls: Vec<Isl>,
    /// Each directed ISL's capacity, latency and cost, as the network describes it.
    links: BTreeMap<Isl, Link>,
    down: BTreeSet<Isl>,
    table_capacity: usize,
    faults: FaultPlan,
    /// Where changes are written through; None for a fabric in memory only.
    store: Option<SwitchStore>,
}

/// What one command may change on its switch (the rule at its match, and the meters of that
/// rule and of the command's segment) with the values they have.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    rule_match: RuleMatch,
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
                let state = SimSwitch {
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
            links: network.links().iter().map(|l| (l.isl, l.clone())).collect(),
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
                    switch.rules.insert(rule.rule_match(), rule);
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
            if command.action == SbAction::Ping {
                outcomes.push(self.ping(command));
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
        self.events_since(&Reachable::default())
    }

    /// Runs a change (failing or restoring a switch or a link) and returns what it did with the
    /// network events it caused: an ISL is up when it is not failed and both its switches
    /// answer, so failing a switch also takes its ISLs down, and restoring it brings back those
    /// whose link and far switch are up.
    pub fn change<T>(
        &mut self,
        change: impl FnOnce(&mut Self) -> Result<T, FabricError>,
    ) -> Result<(T, Vec<SbEvent>), FabricError> {
        let before = self.reachable();
        let result = change(self)?;
        Ok((result, self.events_since(&before)))
    }

    fn reachable(&self) -> Reachable {
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
        Reachable { switches, isls }
    }

    fn events_since(&self, before: &Reachable) -> Vec<SbEvent> {
        let after = self.reachable();
        let mut events = Vec::new();
        for switch_id in after.switches.difference(&before.switches) {
            let ports = self.switches.get(switch_id).map_or(0, |s| s.ports);
            events.push(SbEvent::SwitchAdded {
                switch_id: *switch_id,
                ports,
                port_numbers: Vec::new(),
            });
        }
        for isl in after.isls.difference(&before.isls) {
            let link = self
                .links
                .get(isl)
                .cloned()
                .unwrap_or_else(|| Link::new(*isl, 0));
            events.push(SbEvent::IslUp {
                isl: *isl,
                capacity: link.capacity,
                latency_ns: link.latency_ns,
                cost: link.cost,
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

    /// Follows a packet that arrives on a port of a switch through the rule tables and across
    /// the links, as the switches would forward it.
    pub fn trace(&self, start: PortVlan) -> Trace {
        trace(self, start)
    }

    /// A ping: the probe enters at the segment's match (as if it arrived on that port with
    /// that VLAN) and is traced through the tables; `Pinged` when it leaves exactly at the
    /// command's `ping_exit` and that switch answers its controller (it reports the probe),
    /// `PingLost` with the reason otherwise. The latency is the measured time of the trace:
    /// the simulated data plane's own time. The injected latency delays the answer, as it
    /// does every command's, but is the control channel's, not the data plane's.
    fn ping(&self, command: &SbCommand) -> SbOutcome {
        let Some(exit) = &command.ping_exit else {
            return error(
                SbErrorCode::BadCommand,
                "a ping must say where its probe leaves the network (ping_exit)",
            );
        };
        let segment = &command.segment;
        let start = PortVlan {
            switch_id: segment.switch_id,
            port: segment.in_port,
            vlan: segment.in_vlan,
        };
        let exit = PortVlan::from(exit);
        let sent = Instant::now();
        let trace = self.trace(start);
        let latency_ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(reason) = trace.missed(&exit) {
            return SbOutcome::PingLost {
                reason: format!("the probe sent in at {start} was lost: {reason}"),
            };
        }
        if self.is_available(exit.switch_id) != Some(true) {
            return SbOutcome::PingLost {
                reason: format!(
                    "the probe left at {exit}, but switch {} does not answer its controller to report it",
                    exit.switch_id
                ),
            };
        }
        SbOutcome::Pinged { latency_ns }
    }

    pub fn is_link_up(&self, isl: &Isl) -> bool {
        !self.down.contains(isl)
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

/// A switch that does not answer its controller still forwards with the rules it holds; a
/// failed link carries nothing.
impl DataPlane for SwitchFabric {
    fn matching(&self, switch_id: SwitchId, rule: RuleMatch) -> Option<Vec<&FlowSegment>> {
        let switch = self.switches.get(&switch_id)?;
        Some(switch.rules.get(&rule).into_iter().collect())
    }

    fn link(&self, switch_id: SwitchId, port: u32) -> Option<LinkEnd> {
        let isl = self
            .isls
            .iter()
            .find(|isl| isl.src_switch == switch_id && isl.src_port == port)?;
        Some(LinkEnd {
            switch_id: isl.dst_switch,
            port: isl.dst_port,
            up: !self.down.contains(isl),
        })
    }
}

impl Footprint {
    /// The writes that take the store from `self` to `after` (the same keys, later).
    fn changes_to(&self, after: &Footprint, switch_id: SwitchId) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.rule != after.rule {
            changes.push(Change::Rule {
                switch_id,
                rule_match: after.rule_match,
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

impl SimSwitch {
    fn act(&mut self, command: &SbCommand, table_capacity: usize) -> SbOutcome {
        let segment = &command.segment;
        match command.action {
            SbAction::Install => self.install(segment, table_capacity),
            SbAction::Remove => {
                self.remove(segment);
                SbOutcome::Success
            }
            SbAction::Dump => {
                let rules: Vec<FlowSegment> = self
                    .rules
                    .values()
                    .filter(|rule| segment.cookie == 0 || rule.cookie_id() == segment.cookie)
                    .cloned()
                    .collect();
                let meter_ids: BTreeSet<u32> = rules.iter().filter_map(|r| r.meter_id).collect();
                let meters = self
                    .meters
                    .iter()
                    .filter(|(id, _)| segment.cookie == 0 || meter_ids.contains(id))
                    .map(|(&meter_id, &rate_kbps)| MeterEntry {
                        meter_id,
                        rate_kbps,
                    })
                    .collect();
                SbOutcome::Rules { rules, meters }
            }
            // The fabric answers a ping: it traces across switches (`SwitchFabric::ping`).
            SbAction::Ping => error(
                SbErrorCode::BadCommand,
                "a ping is traced through the whole fabric, not one switch",
            ),
            SbAction::Verify => match self.rules.get(&segment.rule_match()) {
                Some(rule) if rule == segment => SbOutcome::Success,
                Some(rule) => error(
                    SbErrorCode::MissingRule,
                    format!(
                        "the rule matching in_port {} vlan {} is {:#x}, not the expected {:#x}",
                        segment.in_port, segment.in_vlan, rule.cookie, segment.cookie
                    ),
                ),
                None => error(
                    SbErrorCode::MissingRule,
                    format!(
                        "no rule matches in_port {} vlan {}",
                        segment.in_port, segment.in_vlan
                    ),
                ),
            },
        }
    }

    /// Everything a command with this segment may change: installing replaces the rule at
    /// its match and may release the old rule's meter; removing may release that meter and
    /// the segment's.
    fn footprint(&self, segment: &FlowSegment) -> Footprint {
        let rule = self.rules.get(&segment.rule_match()).cloned();
        let mut meter_ids: Vec<u32> = rule
            .as_ref()
            .and_then(|r| r.meter_id)
            .into_iter()
            .chain(segment.meter_id)
            .collect();
        meter_ids.sort_unstable();
        meter_ids.dedup();
        self.footprint_of(segment.rule_match(), rule, meter_ids)
    }

    /// The same keys as `before`, as they are now.
    fn footprint_like(&self, before: &Footprint) -> Footprint {
        let rule = self.rules.get(&before.rule_match).cloned();
        self.footprint_of(
            before.rule_match,
            rule,
            before.meters.iter().map(|(id, _)| *id),
        )
    }

    fn footprint_of(
        &self,
        rule_match: RuleMatch,
        rule: Option<FlowSegment>,
        meter_ids: impl IntoIterator<Item = u32>,
    ) -> Footprint {
        let meters = meter_ids
            .into_iter()
            .map(|id| (id, self.meters.get(&id).copied()))
            .collect();
        Footprint {
            rule_match,
            rule,
            meters,
        }
    }

    /// Puts the keys back as `before` had them.
    fn reset(&mut self, before: Footprint) {
        match before.rule {
            Some(rule) => self.rules.insert(before.rule_match, rule),
            None => self.rules.remove(&before.rule_match),
        };
        for (meter_id, rate) in before.meters {
            match rate {
                Some(rate) => self.meters.insert(meter_id, rate),
                None => self.meters.remove(&meter_id),
            };
        }
    }

    /// OFPFC_ADD: the rule replaces whatever rule has the same match.
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
        let rule_match = segment.rule_match();
        if self.rules.len() >= capacity && !self.rules.contains_key(&rule_match) {
            return error(
                SbErrorCode::TableFull,
                format!(
                    "switch {} holds {capacity} rules already",
                    segment.switch_id
                ),
            );
        }
        if let Some(old) = self.rules.insert(rule_match, segment.clone()) {
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

    /// OFPFC_DELETE_STRICT with the cookie: the rule at the segment's match goes only if it
    /// carries the segment's cookie; a rule another install put there since stays.
    fn remove(&mut self, segment: &FlowSegment) {
        let rule_match = segment.rule_match();
        if self
            .rules
            .get(&rule_match)
            .is_some_and(|rule| rule.cookie == segment.cookie)
        {
            let removed = self.rules.remove(&rule_match);
            self.release_meter(removed.and_then(|r| r.meter_id));
        }
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
mod network_event_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
