//! The read models (the query side of CQRS): flow records and history as the topology
//! publishes them on `flow.events`, and switches and links as it publishes them on `network`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use hubspoke_fsm::{
    Envelope, FlowEvent, FlowId, FlowRecord, HistoryEntry, Isl, LinkState, NetworkState, SwitchId,
    SwitchState,
};
use parking_lot::RwLock;

/// Where a removal left a flow id: records of that incarnation that arrive late are stale.
#[derive(Clone, Copy, Debug)]
struct Tombstone {
    removed_at_ms: u64,
    version: u64,
}

#[derive(Default)]
struct ViewState {
    flows: BTreeMap<FlowId, FlowRecord>,
    history: HashMap<FlowId, Vec<HistoryEntry>>,
    tombstones: HashMap<FlowId, Tombstone>,
    group_of: HashMap<FlowId, String>,
    members: HashMap<String, BTreeSet<FlowId>>,
    /// The members of its diversity group each flow's path shares an ISL with.
    shared: HashMap<FlowId, BTreeSet<FlowId>>,
}

/// A flow's diversity group as the read model knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diversity {
    /// The other members of its group.
    pub diverse_with: Vec<FlowId>,
    /// The members its path shares an ISL with (no diverse path was found).
    pub shares_path_with: Vec<FlowId>,
}

impl ViewState {
    fn set_group(&mut self, flow_id: &str, group: Option<&String>) {
        if let Some(old) = self.group_of.remove(flow_id) {
            if let Some(members) = self.members.get_mut(&old) {
                members.remove(flow_id);
                if members.is_empty() {
                    self.members.remove(&old);
                }
            }
        }
        if let Some(group) = group {
            self.group_of.insert(flow_id.to_string(), group.clone());
            self.members
                .entry(group.clone())
                .or_default()
                .insert(flow_id.to_string());
        }
    }

    fn set_shared(&mut self, flow_id: &str, with: &str, shared: bool) {
        let others = self.shared.entry(flow_id.to_string()).or_default();
        if shared {
            others.insert(with.to_string());
        } else {
            others.remove(with);
            if others.is_empty() {
                self.shared.remove(flow_id);
            }
        }
    }
}

/// Cheap to clone: every clone reads and writes the same model.
#[derive(Clone, Default)]
pub struct FlowView {
    state: Arc<RwLock<ViewState>>,
    applied: Arc<std::sync::atomic::AtomicU64>,
}

impl FlowView {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events the view has taken in since it was made.
    pub fn events_applied(&self) -> u64 {
        self.applied.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn apply_event(&self, event: &Envelope<FlowEvent>) {
        self.apply_payload(event);
        self.applied
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    fn apply_payload(&self, event: &Envelope<FlowEvent>) {
        match &event.payload {
            FlowEvent::Updated { flow } => self.apply_record(flow),
            FlowEvent::Removed { flow_id, version } => {
                self.apply_removed(flow_id, *version, event.created_at_ms)
            }
            FlowEvent::History { flow_id, entry } => {
                let mut state = self.state.write();
                let entries = state.history.entry(flow_id.clone()).or_default();
                // Kept in time order; entries of the same time in the order they came.
                let at = entries.partition_point(|e| e.timestamp_ms <= entry.timestamp_ms);
                entries.insert(at, entry.clone());
            }
            FlowEvent::DiverseGroup { flow_id, group } => {
                self.state.write().set_group(flow_id, group.as_ref())
            }
            FlowEvent::PathShared {
                flow_id,
                with,
                shared,
            } => self.state.write().set_shared(flow_id, with, *shared),
            // For the topology's deduplication, the removal debt, recovery and fencing; replies
            // reach the shim on their own topic, and the debt is the switch keeper's to show.
            FlowEvent::Answered { .. }
            | FlowEvent::EndpointSwapCommitted { .. }
            | FlowEvent::RemovalOwed { .. }
            | FlowEvent::ExcessOwed { .. }
            | FlowEvent::RemovalPaid { .. }
            | FlowEvent::GenerationStarted { .. } => {}
        }
    }

    /// Keeps the newest record. Records come from two topics (flow events and northbound
    /// replies), so they may arrive out of order: newest means the latest incarnation of the
    /// flow id (`created_ms`), then the highest `version`.
    pub fn apply_record(&self, record: &FlowRecord) {
        let mut state = self.state.write();
        let flow_id = record.flow_id();
        if let Some(tomb) = state.tombstones.get(flow_id) {
            // Created before the removal and no newer than it: the removed flow coming back.
            if record.created_ms <= tomb.removed_at_ms && record.version <= tomb.version {
                return;
            }
            state.tombstones.remove(flow_id);
        }
        let newer = state.flows.get(flow_id).is_none_or(|stored| {
            (record.created_ms, record.version) > (stored.created_ms, stored.version)
        });
        if newer {
            state.flows.insert(flow_id.to_string(), record.clone());
        }
    }

    /// Removes the flow if the removal is not older than the stored record. `removed_at_ms`
    /// tells a removal of an earlier incarnation from one of a flow created again since.
    pub fn apply_removed(&self, flow_id: &str, version: u64, removed_at_ms: u64) {
        let mut state = self.state.write();
        let removes = state
            .flows
            .get(flow_id)
            .is_some_and(|stored| stored.version <= version && stored.created_ms <= removed_at_ms);
        if removes {
            state.flows.remove(flow_id);
        }
        if removes || !state.flows.contains_key(flow_id) {
            state.tombstones.insert(
                flow_id.to_string(),
                Tombstone {
                    removed_at_ms,
                    version,
                },
            );
        }
    }

    pub fn get(&self, flow_id: &str) -> Option<FlowRecord> {
        self.state.read().flows.get(flow_id).cloned()
    }

    /// The flow's diversity group: its other members, and those its path shares an ISL with.
    pub fn diversity(&self, flow_id: &str) -> Diversity {
        let state = self.state.read();
        let diverse_with = state
            .group_of
            .get(flow_id)
            .and_then(|group| state.members.get(group))
            .into_iter()
            .flatten()
            .filter(|member| *member != flow_id)
            .cloned()
            .collect();
        let shares_path_with = state
            .shared
            .get(flow_id)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Diversity {
            diverse_with,
            shares_path_with,
        }
    }

    /// Every flow, by flow id.
    pub fn list(&self) -> Vec<FlowRecord> {
        self.state.read().flows.values().cloned().collect()
    }

    /// The flow's history in time order, removed flows included; None if the flow id was
    /// never seen.
    pub fn history(&self, flow_id: &str) -> Option<Vec<HistoryEntry>> {
        self.history_query(flow_id, &HistoryQuery::default())
    }

    /// The part of the flow's history the query asks for, in time order; None if the flow id
    /// was never seen.
    pub fn history_query(&self, flow_id: &str, query: &HistoryQuery) -> Option<Vec<HistoryEntry>> {
        let state = self.state.read();
        match state.history.get(flow_id) {
            Some(entries) => Some(query.select(entries).to_vec()),
            None if state.flows.contains_key(flow_id) || state.tombstones.contains_key(flow_id) => {
                Some(Vec::new())
            }
            None => None,
        }
    }
}

/// Which part of a flow's history to read, as `GET /v2/flows/{flow_id}/history` asks with
/// `time_from`, `time_to` and `max_count`. The default is the whole history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Entries at or after this time (`timestamp_ms`, ms since the epoch).
    pub time_from: Option<u64>,
    /// Entries at or before this time.
    pub time_to: Option<u64>,
    /// Of those, only the newest `max_count` (OpenKilda's semantics: the last N).
    pub max_count: Option<usize>,
}

impl HistoryQuery {
    /// The entries asked for, out of entries in time order; still in time order.
    pub fn select<'a>(&self, entries: &'a [HistoryEntry]) -> &'a [HistoryEntry] {
        let start = self
            .time_from
            .map_or(0, |from| entries.partition_point(|e| e.timestamp_ms < from));
        let end = self.time_to.map_or(entries.len(), |to| {
            entries.partition_point(|e| e.timestamp_ms <= to)
        });
        let in_time = entries.get(start..end).unwrap_or_default();
        match self.max_count {
            Some(count) => &in_time[in_time.len().saturating_sub(count)..],
            None => in_time,
        }
    }
}

/// Keyed like `NetworkState::key`, but by value, so lists sort by number, not by text.
#[derive(Default)]
struct NetworkViewState {
    switches: BTreeMap<SwitchId, SwitchState>,
    links: BTreeMap<Isl, LinkState>,
}

/// The network as the topology's network view publishes it on `network`: the last state per
/// switch and per directed link (each message is the newest state of its key). Cheap to clone.
#[derive(Clone, Default)]
pub struct NetworkView {
    state: Arc<RwLock<NetworkViewState>>,
}

impl NetworkView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply(&self, network_state: &NetworkState) {
        let mut state = self.state.write();
        match network_state {
            NetworkState::Switch(switch) => {
                state.switches.insert(switch.switch_id, switch.clone());
            }
            NetworkState::Link(link) => {
                state.links.insert(link.isl(), link.clone());
            }
        }
    }

    /// Every switch, by switch id.
    pub fn switches(&self) -> Vec<SwitchState> {
        self.state.read().switches.values().cloned().collect()
    }

    /// Every directed link, by source switch and port, then destination.
    pub fn links(&self) -> Vec<LinkState> {
        self.state.read().links.values().cloned().collect()
    }
}

/// Feeds `flow.events` into the view until the channel disconnects. Returns once the view
/// holds what was already queued: after a restart the log's flows wait there, and a client
/// must not find an existing flow missing.
pub fn spawn_view_updater(
    view: FlowView,
    receiver: Receiver<Envelope<FlowEvent>>,
) -> JoinHandle<()> {
    let backlog = receiver.len() as u64;
    let applying = view.clone();
    let updater = spawn_updater("flow-view", receiver, move |event| {
        applying.apply_event(&event)
    });
    while view.events_applied() < backlog && !updater.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    updater
}

/// Feeds the `network` topic into the view until the channel disconnects.
pub fn spawn_network_view_updater(
    view: NetworkView,
    receiver: Receiver<Envelope<NetworkState>>,
) -> JoinHandle<()> {
    spawn_updater("network-view", receiver, move |message| {
        view.apply(&message.payload)
    })
}

fn spawn_updater<T: Send + 'static>(
    name: &str,
    receiver: Receiver<T>,
    apply: impl FnMut(T) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || receiver.iter().for_each(apply))
        .expect("spawning a read model thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::{FlowEndpoint, FlowRequest, FlowStatus, LinkStatus, SwitchStatus};

    fn record(flow_id: &str, version: u64, created_ms: u64) -> FlowRecord {
        let request = FlowRequest {
            flow_id: flow_id.into(),
            source: FlowEndpoint {
                switch_id: SwitchId(1),
                port_number: 10,
                vlan_id: 0,
            },
            destination: FlowEndpoint {
                switch_id: SwitchId(3),
                port_number: 10,
                vlan_id: 0,
            },
            maximum_bandwidth: 1000,
            description: String::new(),
            ..Default::default()
        };
        let mut record = FlowRecord::new(request, created_ms);
        record.version = version;
        record
    }

    fn event(payload: FlowEvent, at_ms: u64) -> Envelope<FlowEvent> {
        Envelope::new("c", "f", at_ms, payload)
    }

    fn entry(event: &str) -> HistoryEntry {
        HistoryEntry {
            timestamp_ms: 1,
            operation: "create".into(),
            event: event.into(),
            from_state: "A".into(),
            to_state: "B".into(),
            details: String::new(),
            correlation_id: "c".into(),
        }
    }

    /// After a restart the log's flows are queued before the view starts: once the updater is
    /// running, the view already holds all of them.
    #[test]
    fn the_updater_starts_with_everything_already_queued_applied() {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let queued = 20_000;
        for n in 0..queued {
            let flow = record(&format!("f{n}"), 1, 10);
            let _ = sender.send(event(FlowEvent::Updated { flow }, 20));
        }
        let view = FlowView::new();
        let _updater = spawn_view_updater(view.clone(), receiver);
        assert_eq!(view.list().len(), queued);
        assert_eq!(view.events_applied(), queued as u64);
    }

    #[test]
    fn a_flow_shows_the_other_members_of_its_group_and_the_paths_it_shares() {
        let view = FlowView::new();
        let group = |flow_id: &str, group: Option<&str>| {
            event(
                FlowEvent::DiverseGroup {
                    flow_id: flow_id.into(),
                    group: group.map(str::to_string),
                },
                10,
            )
        };
        for flow_id in ["a", "b", "c"] {
            view.apply_event(&group(flow_id, Some("a")));
        }
        view.apply_event(&group("other", Some("x")));
        view.apply_event(&event(
            FlowEvent::PathShared {
                flow_id: "c".into(),
                with: "a".into(),
                shared: true,
            },
            20,
        ));
        let c = view.diversity("c");
        assert_eq!(c.diverse_with, vec!["a", "b"]);
        assert_eq!(c.shares_path_with, vec!["a"]);
        view.apply_event(&group("a", None));
        view.apply_event(&event(
            FlowEvent::PathShared {
                flow_id: "c".into(),
                with: "a".into(),
                shared: false,
            },
            30,
        ));
        assert_eq!(
            view.diversity("c"),
            Diversity {
                diverse_with: vec!["b".into()],
                shares_path_with: Vec::new(),
            }
        );
        assert_eq!(view.diversity("a"), Diversity::default());
    }

    #[test]
    fn the_highest_version_wins() {
        let view = FlowView::new();
        let mut up = record("f", 3, 10);
        up.status = FlowStatus::Up;
        view.apply_event(&event(FlowEvent::Updated { flow: up.clone() }, 20));
        view.apply_record(&record("f", 1, 10)); // a late northbound reply
        assert_eq!(view.get("f"), Some(up));
        view.apply_record(&record("f", 4, 10));
        assert_eq!(view.get("f").map(|r| r.version), Some(4));
        assert_eq!(view.list().len(), 1);
    }

    #[test]
    fn removal_sticks_against_late_copies_but_not_a_new_flow() {
        let view = FlowView::new();
        view.apply_record(&record("f", 2, 10));
        view.apply_event(&event(
            FlowEvent::Removed {
                flow_id: "f".into(),
                version: 1,
            },
            30,
        ));
        assert!(
            view.get("f").is_some(),
            "an older removal does not remove a newer record"
        );
        view.apply_event(&event(
            FlowEvent::Removed {
                flow_id: "f".into(),
                version: 3,
            },
            30,
        ));
        assert_eq!(view.get("f"), None);
        view.apply_record(&record("f", 3, 10)); // the delete's reply, after the removal
        assert_eq!(view.get("f"), None);
        view.apply_record(&record("f", 1, 40)); // created again
        assert_eq!(view.get("f").map(|r| r.created_ms), Some(40));
        // the old incarnation's removal arriving late leaves the new one alone
        view.apply_event(&event(
            FlowEvent::Removed {
                flow_id: "f".into(),
                version: 3,
            },
            30,
        ));
        assert!(view.get("f").is_some());
    }

    #[test]
    fn history_outlives_the_flow() {
        let view = FlowView::new();
        assert_eq!(view.history("f"), None);
        view.apply_record(&record("f", 1, 10));
        assert_eq!(view.history("f"), Some(vec![]));
        view.apply_event(&event(
            FlowEvent::History {
                flow_id: "f".into(),
                entry: entry("created"),
            },
            11,
        ));
        view.apply_event(&event(
            FlowEvent::History {
                flow_id: "f".into(),
                entry: entry("removed"),
            },
            12,
        ));
        view.apply_event(&event(
            FlowEvent::Removed {
                flow_id: "f".into(),
                version: 1,
            },
            12,
        ));
        let history = view.history("f").unwrap();
        assert_eq!(
            history.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
            ["created", "removed"]
        );
    }

    #[test]
    fn history_is_in_time_order_and_selected_by_time_and_count() {
        let view = FlowView::new();
        for (at, name) in [(300, "c"), (100, "a"), (200, "b1"), (400, "d"), (200, "b2")] {
            let mut entry = entry(name);
            entry.timestamp_ms = at;
            view.apply_event(&event(
                FlowEvent::History {
                    flow_id: "f".into(),
                    entry,
                },
                at,
            ));
        }
        let names = |query: HistoryQuery| -> Vec<String> {
            view.history_query("f", &query)
                .unwrap()
                .into_iter()
                .map(|e| e.event)
                .collect()
        };
        let query = |time_from, time_to, max_count| HistoryQuery {
            time_from,
            time_to,
            max_count,
        };
        assert_eq!(names(HistoryQuery::default()), ["a", "b1", "b2", "c", "d"]);
        assert_eq!(
            view.history("f").unwrap().len(),
            5,
            "history() is the whole of it"
        );
        assert_eq!(names(query(Some(200), None, None)), ["b1", "b2", "c", "d"]);
        assert_eq!(names(query(None, Some(200), None)), ["a", "b1", "b2"]);
        assert_eq!(names(query(Some(200), Some(200), None)), ["b1", "b2"]);
        assert_eq!(names(query(None, None, Some(2))), ["c", "d"]);
        assert_eq!(names(query(Some(100), Some(300), Some(2))), ["b2", "c"]);
        assert_eq!(names(query(None, None, Some(99))).len(), 5);
        assert!(names(query(Some(401), None, None)).is_empty());
        assert!(names(query(None, Some(99), None)).is_empty());
        assert!(names(query(Some(300), Some(200), None)).is_empty());
        assert_eq!(view.history_query("other", &HistoryQuery::default()), None);
    }

    #[test]
    fn the_updater_thread_applies_events() {
        let view = FlowView::new();
        let (sender, receiver) = crossbeam_channel::unbounded();
        let thread = spawn_view_updater(view.clone(), receiver);
        sender
            .send(event(
                FlowEvent::Updated {
                    flow: record("f", 1, 1),
                },
                1,
            ))
            .unwrap();
        drop(sender);
        thread.join().unwrap();
        assert!(view.get("f").is_some());
    }

    fn switch(n: u64, state: SwitchStatus) -> NetworkState {
        NetworkState::Switch(SwitchState {
            switch_id: SwitchId(n),
            ports: 48,
            port_numbers: Vec::new(),
            state,
        })
    }

    fn link(src: u64, src_port: u32, dst: u64, state: LinkStatus, available: u64) -> NetworkState {
        NetworkState::Link(LinkState {
            src_switch: SwitchId(src),
            src_port,
            dst_switch: SwitchId(dst),
            dst_port: 1,
            state,
            capacity: 10_000,
            max_bandwidth: 10_000,
            available_bandwidth: available,
            latency_ns: 1_000_000,
            cost: 700,
        })
    }

    #[test]
    fn the_network_view_keeps_the_last_state_per_switch_and_link_sorted_by_id() {
        let view = NetworkView::new();
        for state in [
            switch(2, SwitchStatus::Active),
            link(1, 10, 2, LinkStatus::Up, 10_000),
            link(1, 2, 3, LinkStatus::Up, 10_000),
            switch(1, SwitchStatus::Active),
            link(1, 10, 2, LinkStatus::Down, 4_000),
            switch(2, SwitchStatus::Inactive),
        ] {
            view.apply(&state);
        }
        let switches: Vec<_> = view
            .switches()
            .into_iter()
            .map(|s| (s.switch_id, s.state))
            .collect();
        assert_eq!(
            switches,
            [
                (SwitchId(1), SwitchStatus::Active),
                (SwitchId(2), SwitchStatus::Inactive)
            ]
        );
        let links: Vec<_> = view
            .links()
            .into_iter()
            .map(|l| (l.src_port, l.state, l.available_bandwidth))
            .collect();
        // port 2 before port 10: sorted by number, not by the key's text
        assert_eq!(
            links,
            [(2, LinkStatus::Up, 10_000), (10, LinkStatus::Down, 4_000)]
        );
    }

    #[test]
    fn the_network_updater_thread_applies_states() {
        let view = NetworkView::new();
        let (sender, receiver) = crossbeam_channel::unbounded();
        let thread = spawn_network_view_updater(view.clone(), receiver);
        let state = link(1, 1, 2, LinkStatus::Up, 10_000);
        sender
            .send(Envelope::new("c", state.key(), 1, state))
            .unwrap();
        drop(sender);
        thread.join().unwrap();
        assert_eq!(view.links().len(), 1);
        assert!(view.switches().is_empty());
    }
}
