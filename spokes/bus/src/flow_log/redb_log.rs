//! The embedded flow log: one redb table of JSON events keyed by their position. Each append
//! is one write transaction, committed (fsynced) before it returns. Opening the log compacts
//! it: a flow's older records and finished operations' history past the retention go.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use hubspoke_fsm::{Envelope, FlowEvent};
use parking_lot::Mutex;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use super::{FlowLog, FlowLogError};
use crate::Publish;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("flow_events");

/// redb caches 1 GiB by default; the log is written at the end and read whole only at start,
/// so a small cache costs nothing and keeps a topology with 100,000 flows well under 1 GiB.
const CACHE_BYTES: usize = 32 << 20;
/// The flow log's file name inside a data directory.
pub const FLOW_LOG_FILE: &str = "flows.redb";

fn storage(error: impl std::fmt::Display) -> FlowLogError {
    FlowLogError::Storage(error.to_string())
}

pub struct RedbFlowLog {
    db: Database,
    next: Mutex<u64>,
    /// Where durable events go next (the read model): what opening kept, then what
    /// [`FlowLog::hand_on`] gets.
    then: Arc<dyn Publish<Envelope<FlowEvent>>>,
    /// How appends are committed: `Immediate` (fsynced) unless [`RedbFlowLog::without_fsync`].
    durability: Durability,
    /// What opening kept, for the first `read_all` (the restart's recovery), so a start
    /// decodes the log once instead of twice; dropped by the first append.
    opened: Mutex<Option<Vec<Envelope<FlowEvent>>>>,
}

impl RedbFlowLog {
    /// Opens (or creates) the log at `path`, dropping what the retention no longer keeps:
    /// superseded records, and history of flows with no operation running that is older than
    /// `retention_ms` before `now_ms` (everything of a removed flow, once that old). What it
    /// keeps goes to `then` first, so the read model starts from the log.
    pub fn open(
        path: &Path,
        retention_ms: u64,
        now_ms: u64,
        then: Arc<dyn Publish<Envelope<FlowEvent>>>,
    ) -> Result<Self, FlowLogError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(storage)?;
        let log = RedbFlowLog {
            db,
            next: Mutex::new(0),
            then,
            durability: Durability::Immediate,
            opened: Mutex::new(None),
        };
        let events = log.read_entries()?;
        let keep = retained(&events, now_ms.saturating_sub(retention_ms));
        let write = log.db.begin_write().map_err(storage)?;
        {
            let mut table = write.open_table(EVENTS).map_err(storage)?;
            for (position, _) in events.iter().filter(|(p, _)| !keep.contains(p)) {
                table.remove(position).map_err(storage)?;
            }
        }
        write.commit().map_err(storage)?;
        *log.next.lock() = events.last().map_or(0, |(p, _)| p + 1);
        let kept: Vec<Envelope<FlowEvent>> = events
            .into_iter()
            .filter(|(p, _)| keep.contains(p))
            .map(|(_, event)| event)
            .collect();
        for event in &kept {
            log.then.publish(event.clone());
        }
        *log.opened.lock() = Some(kept);
        Ok(log)
    }

    /// [`open`](Self::open) on the log's file ([`FLOW_LOG_FILE`]) in a data directory,
    /// creating the directory if missing: the embedded default's flow log.
    pub fn open_in(
        data_dir: &Path,
        retention_ms: u64,
        now_ms: u64,
        then: Arc<dyn Publish<Envelope<FlowEvent>>>,
    ) -> Result<Self, FlowLogError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| FlowLogError::Storage(format!("creating {}: {e}", data_dir.display())))?;
        Self::open(&data_dir.join(FLOW_LOG_FILE), retention_ms, now_ms, then)
    }

    /// Appends are committed without ever syncing the file (redb's `Durability::None`; its
    /// `Eventual` still fsyncs on Linux), so a crash may lose them. Not for a deployment: it
    /// is there for benchmarks to show what the fsync of each append costs.
    pub fn without_fsync(mut self) -> Self {
        self.durability = Durability::None;
        self
    }

    fn read_entries(&self) -> Result<Vec<(u64, Envelope<FlowEvent>)>, FlowLogError> {
        let read = self.db.begin_read().map_err(storage)?;
        let table = match read.open_table(EVENTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(storage(error)),
        };
        let mut entries = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (position, bytes) = entry.map_err(storage)?;
            let position = position.value();
            let event =
                serde_json::from_slice(bytes.value()).map_err(|e| FlowLogError::Corrupt {
                    position,
                    reason: e.to_string(),
                })?;
            entries.push((position, event));
        }
        Ok(entries)
    }
}

/// The positions compaction keeps: each live flow's newest record and diversity group; history
/// and other events newer than `cutoff_ms`, or of a flow whose operation is still running.
fn retained(events: &[(u64, Envelope<FlowEvent>)], cutoff_ms: u64) -> HashSet<u64> {
    let mut newest_record: HashMap<&str, u64> = HashMap::new();
    let mut newest_group: HashMap<&str, u64> = HashMap::new();
    let mut removed: HashSet<&str> = HashSet::new();
    let mut running: HashSet<&str> = HashSet::new();
    for (position, event) in events {
        match &event.payload {
            FlowEvent::Updated { flow } => {
                newest_record.insert(flow.flow_id(), *position);
                removed.remove(flow.flow_id());
                if flow.status == hubspoke_fsm::FlowStatus::InProgress {
                    running.insert(flow.flow_id());
                } else {
                    running.remove(flow.flow_id());
                }
            }
            FlowEvent::Removed { flow_id, .. } => {
                removed.insert(flow_id);
                running.remove(flow_id.as_str());
            }
            FlowEvent::DiverseGroup { flow_id, .. } => {
                newest_group.insert(flow_id, *position);
            }
            _ => {}
        }
    }
    events
        .iter()
        .filter(|(position, event)| {
            let flow_id = event.key.as_str();
            let recent = event.created_at_ms >= cutoff_ms || running.contains(flow_id);
            match &event.payload {
                FlowEvent::Updated { .. } if !removed.contains(flow_id) => {
                    newest_record.get(flow_id) == Some(position)
                }
                FlowEvent::DiverseGroup { .. } if !removed.contains(flow_id) => {
                    recent || newest_group.get(flow_id) == Some(position)
                }
                _ => recent,
            }
        })
        .map(|(position, _)| *position)
        .collect()
}

impl FlowLog for RedbFlowLog {
    fn append(&self, events: &[Envelope<FlowEvent>]) -> Result<(), FlowLogError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut next = self.next.lock();
        self.opened.lock().take();
        let mut write = self.db.begin_write().map_err(storage)?;
        write.set_durability(self.durability);
        {
            let mut table = write.open_table(EVENTS).map_err(storage)?;
            for (offset, event) in events.iter().enumerate() {
                let bytes = serde_json::to_vec(event).map_err(storage)?;
                table
                    .insert(*next + offset as u64, bytes.as_slice())
                    .map_err(storage)?;
            }
        }
        write.commit().map_err(storage)?;
        *next += events.len() as u64;
        Ok(())
    }

    fn hand_on(&self, events: Vec<Envelope<FlowEvent>>) {
        for event in events {
            self.then.publish(event);
        }
    }

    fn read_all(&self) -> Result<Vec<Envelope<FlowEvent>>, FlowLogError> {
        if let Some(kept) = self.opened.lock().take() {
            return Ok(kept);
        }
        Ok(self
            .read_entries()?
            .into_iter()
            .map(|(_, event)| event)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topic;
    use hubspoke_fsm::{FlowEndpoint, FlowRecord, FlowRequest, FlowStatus, HistoryEntry, SwitchId};

    fn record(flow_id: &str, status: FlowStatus, version: u64) -> FlowRecord {
        let endpoint = |n| FlowEndpoint {
            switch_id: SwitchId(n),
            port_number: 10,
            vlan_id: 0,
        };
        let mut record = FlowRecord::new(
            FlowRequest {
                flow_id: flow_id.into(),
                source: endpoint(1),
                destination: endpoint(2),
                maximum_bandwidth: 1,
                description: String::new(),
                ..Default::default()
            },
            0,
        );
        record.status = status;
        record.version = version;
        record
    }

    fn updated(at: u64, record: FlowRecord) -> Envelope<FlowEvent> {
        Envelope::new(
            "c",
            record.flow_id().to_string(),
            at,
            FlowEvent::Updated { flow: record },
        )
    }

    fn history(at: u64, flow_id: &str) -> Envelope<FlowEvent> {
        let entry = HistoryEntry {
            timestamp_ms: at,
            operation: "create".into(),
            event: "start".into(),
            from_state: "Received".into(),
            to_state: "Validating".into(),
            details: String::new(),
            correlation_id: "c".into(),
        };
        Envelope::new(
            "c",
            flow_id,
            at,
            FlowEvent::History {
                flow_id: flow_id.into(),
                entry,
            },
        )
    }

    #[test]
    fn appended_events_survive_reopening_and_reach_the_read_model() {
        let dir = std::env::temp_dir().join(format!("hubspoke-flowlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flows.redb");
        let _ = std::fs::remove_file(&path);
        let topic: Arc<Topic<Envelope<FlowEvent>>> = Arc::default();
        let seen = topic.receiver();
        let events = [
            history(10, "a"),
            updated(10, record("a", FlowStatus::InProgress, 1)),
            updated(20, record("a", FlowStatus::Up, 2)),
        ];
        {
            let log = RedbFlowLog::open(&path, u64::MAX, 30, topic.clone()).unwrap();
            log.append(&events[..2]).unwrap();
            log.append(&events[2..]).unwrap();
            log.hand_on(events.to_vec());
        }
        assert_eq!(seen.try_iter().count(), 3);
        let log = RedbFlowLog::open(&path, u64::MAX, 30, topic.clone()).unwrap();
        assert_eq!(
            seen.try_iter().count(),
            2,
            "what the log keeps goes to the read model when it opens"
        );
        let read = log.read_all().unwrap();
        assert_eq!(read.len(), 2, "the superseded record is compacted away");
        assert_eq!(read, vec![events[0].clone(), events[2].clone()]);
        log.append(&[history(40, "a")]).unwrap();
        assert_eq!(
            log.read_all().unwrap().len(),
            3,
            "appends go after what is there"
        );

        drop(log);
        let log = RedbFlowLog::open(&path, 5, 100, topic).unwrap();
        let read = log.read_all().unwrap();
        assert_eq!(
            read,
            vec![events[2].clone()],
            "history past the retention goes, the record stays"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_removed_flow_is_forgotten_after_the_retention() {
        let events: Vec<(u64, Envelope<FlowEvent>)> = vec![
            (0, updated(10, record("a", FlowStatus::Up, 1))),
            (
                1,
                Envelope::new(
                    "c",
                    "a",
                    20,
                    FlowEvent::Removed {
                        flow_id: "a".into(),
                        version: 2,
                    },
                ),
            ),
            (2, history(20, "a")),
            (3, updated(10, record("b", FlowStatus::InProgress, 1))),
            (4, history(10, "b")),
        ];
        assert_eq!(
            retained(&events, 15),
            HashSet::from([1, 2, 3, 4]),
            "a's record is superseded by its removal; b is running"
        );
        assert_eq!(retained(&events, 100), HashSet::from([3, 4]));
    }

    #[test]
    fn a_live_flows_newest_diversity_group_outlives_the_retention() {
        let group = |at: u64, flow_id: &str, group: Option<&str>| {
            Envelope::new(
                "c",
                flow_id,
                at,
                FlowEvent::DiverseGroup {
                    flow_id: flow_id.into(),
                    group: group.map(str::to_string),
                },
            )
        };
        let events: Vec<(u64, Envelope<FlowEvent>)> = vec![
            (0, updated(10, record("a", FlowStatus::Up, 1))),
            (1, group(10, "a", Some("g"))),
            (2, group(20, "a", Some("h"))),
            (3, group(20, "b", Some("h"))),
            (
                4,
                Envelope::new(
                    "c",
                    "b",
                    30,
                    FlowEvent::Removed {
                        flow_id: "b".into(),
                        version: 2,
                    },
                ),
            ),
        ];
        assert_eq!(
            retained(&events, 100),
            HashSet::from([0, 2]),
            "a's group stays; a removed flow's goes with it"
        );
    }
}
