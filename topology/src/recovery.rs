//! What a restarted topology learns from the flow log: every flow's newest record, the
//! operation that was running on it when the topology stopped, and the answers already given
//! (so a request sent again with the same correlation id gets the same answer).

use std::collections::HashMap;

use hubspoke_fsm::{Envelope, FlowEvent, FlowRecord, FlowStatus, NbResponse, SbEvent};

/// A flow as the log left it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveredFlow {
    pub record: FlowRecord,
    /// The operation (its history name) that was in flight, if the flow is IN_PROGRESS.
    pub interrupted: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// When the topology restarted: the restored operations' deadlines count from here.
    pub at_ms: u64,
    pub flows: Vec<RecoveredFlow>,
    /// The network as far as it is known at the start, in the order it was announced.
    pub network: Vec<SbEvent>,
    /// The newest answer per correlation id.
    pub answers: HashMap<String, Envelope<NbResponse>>,
}

impl Recovery {
    /// Replays the log: a newer record replaces an older one (by version), a removal forgets
    /// the flow.
    pub fn from_log(at_ms: u64, events: impl IntoIterator<Item = Envelope<FlowEvent>>) -> Self {
        let mut records: HashMap<String, FlowRecord> = HashMap::new();
        let mut last_operation: HashMap<String, String> = HashMap::new();
        let mut answers = HashMap::new();
        for event in events {
            let Envelope {
                correlation_id,
                key,
                created_at_ms,
                payload,
                ..
            } = event;
            match payload {
                FlowEvent::Updated { flow } => {
                    let newer = records
                        .get(flow.flow_id())
                        .is_none_or(|known| known.version < flow.version);
                    if newer {
                        records.insert(flow.flow_id().to_string(), flow);
                    }
                }
                FlowEvent::Removed { flow_id, version } => {
                    if records.get(&flow_id).is_some_and(|r| r.version <= version) {
                        records.remove(&flow_id);
                    }
                }
                FlowEvent::History { flow_id, entry } => {
                    last_operation.insert(flow_id, entry.operation);
                }
                FlowEvent::Answered { response } => {
                    let answer =
                        Envelope::new(correlation_id.clone(), key, created_at_ms, response);
                    answers.insert(correlation_id, answer);
                }
            }
        }
        let mut flows: Vec<RecoveredFlow> = records
            .into_values()
            .map(|record| RecoveredFlow {
                interrupted: (record.status == FlowStatus::InProgress).then(|| {
                    last_operation
                        .get(record.flow_id())
                        .cloned()
                        .unwrap_or_default()
                }),
                record,
            })
            .collect();
        flows.sort_by(|a, b| a.record.flow_id().cmp(b.record.flow_id()));
        Recovery {
            at_ms,
            flows,
            network: Vec::new(),
            answers,
        }
    }
}
