//! The flow read model (the query side of CQRS): flow records and history as the topology
//! publishes them on `flow.events`, plus what the network view needs to show links.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use hubspoke_fsm::network::Network;
use hubspoke_fsm::{Envelope, FlowEvent, FlowId, FlowRecord, HistoryEntry, Isl, SwitchId};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinkState {
    Up,
    Down,
}

/// A directed ISL as `GET /v2/links` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub src_switch: SwitchId,
    pub src_port: u32,
    pub dst_switch: SwitchId,
    pub dst_port: u32,
    pub state: LinkState,
    /// kbps
    pub capacity: u64,
    pub max_bandwidth: u64,
    pub available_bandwidth: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchView {
    pub switch_id: SwitchId,
    pub ports: u32,
    pub state: String,
}

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
}

/// Cheap to clone: every clone reads and writes the same model.
#[derive(Clone, Default)]
pub struct FlowView {
    state: Arc<RwLock<ViewState>>,
}

impl FlowView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply_event(&self, event: &Envelope<FlowEvent>) {
        match &event.payload {
            FlowEvent::Updated { flow } => self.apply_record(flow),
            FlowEvent::Removed { flow_id, version } => {
                self.apply_removed(flow_id, *version, event.created_at_ms)
            }
            FlowEvent::History { flow_id, entry } => {
                self.state
                    .write()
                    .history
                    .entry(flow_id.clone())
                    .or_default()
                    .push(entry.clone());
            }
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

    /// Every flow, by flow id.
    pub fn list(&self) -> Vec<FlowRecord> {
        self.state.read().flows.values().cloned().collect()
    }

    /// The flow's history, removed flows included; None if the flow id was never seen.
    pub fn history(&self, flow_id: &str) -> Option<Vec<HistoryEntry>> {
        let state = self.state.read();
        match state.history.get(flow_id) {
            Some(entries) => Some(entries.clone()),
            None if state.flows.contains_key(flow_id) || state.tombstones.contains_key(flow_id) => {
                Some(Vec::new())
            }
            None => None,
        }
    }

    /// Every directed ISL with what the flows leave of its capacity. A flow reserves its
    /// bandwidth on both directions of every ISL of its path.
    pub fn links(&self, network: &Network) -> Vec<LinkView> {
        let mut used: HashMap<Isl, u64> = HashMap::new();
        for record in self.state.read().flows.values() {
            let Some(resources) = &record.resources else {
                continue;
            };
            let bandwidth = record.request.maximum_bandwidth;
            for isl in &resources.forward_path {
                for direction in [*isl, isl.reversed()] {
                    let total = used.entry(direction).or_default();
                    *total = total.saturating_add(bandwidth);
                }
            }
        }
        network
            .links()
            .iter()
            .map(|link| LinkView {
                src_switch: link.isl.src_switch,
                src_port: link.isl.src_port,
                dst_switch: link.isl.dst_switch,
                dst_port: link.isl.dst_port,
                state: LinkState::Up,
                capacity: link.capacity,
                max_bandwidth: link.capacity,
                available_bandwidth: link
                    .capacity
                    .saturating_sub(used.get(&link.isl).copied().unwrap_or(0)),
            })
            .collect()
    }

    pub fn switches(&self, network: &Network) -> Vec<SwitchView> {
        network
            .switches()
            .map(|s| SwitchView {
                switch_id: s.switch_id,
                ports: s.ports,
                state: "ACTIVE".to_string(),
            })
            .collect()
    }
}

/// Feeds `flow.events` into the view until the channel disconnects.
pub fn spawn_view_updater(
    view: FlowView,
    receiver: Receiver<Envelope<FlowEvent>>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("flow-view".into())
        .spawn(move || {
            for event in receiver.iter() {
                view.apply_event(&event);
            }
        })
        .expect("spawning the flow view thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::{FlowEndpoint, FlowRequest, FlowStatus, Resources};

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
    fn links_subtract_reserved_bandwidth_both_ways() {
        let network = Network::generate("linear:3").unwrap().unwrap();
        let view = FlowView::new();
        let path = network
            .shortest_path(SwitchId(1), SwitchId(3), 1, |_| Some(u64::MAX))
            .unwrap();
        let mut reserved = record("f", 1, 1);
        reserved.resources = Some(Resources {
            cookie: 1,
            transit_vlan: 2,
            forward_meter: None,
            reverse_meter: None,
            forward_path: path.clone(),
        });
        view.apply_record(&reserved);
        view.apply_record(&record("no-resources", 1, 1));
        let links = view.links(&network);
        assert_eq!(links.len(), 4);
        for link in &links {
            assert_eq!(link.available_bandwidth, link.capacity - 1000, "{link:?}");
            assert_eq!(link.state, LinkState::Up);
        }
        let switches = view.switches(&network);
        assert_eq!(switches.len(), 3);
        assert_eq!(switches[0].state, "ACTIVE");
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
}
