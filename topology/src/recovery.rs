//! What a restarted topology learns from the flow log: every flow's newest record, the
//! operation that was running on it when the topology stopped, the answers already given
//! (so a request sent again with the same correlation id gets the same answer), and the
//! removal debt not yet paid.

use std::collections::{BTreeMap, HashMap};

use hubspoke_fsm::dataplane::RuleMatch;
use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{
    Envelope, FlowEvent, FlowId, FlowRecord, FlowStatus, NbResponse, RemovalDebt, Reservation,
    SbEvent, SwitchId,
};

use crate::allocator::ResourcePool;

/// A flow as the log left it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveredFlow {
    pub record: FlowRecord,
    /// The operation (its history name) that was in flight, if the flow is IN_PROGRESS.
    pub interrupted: Option<String>,
}

/// Owed rules a restarted topology found, and what they use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RecoveredDebt {
    /// A flow's, with the reservation its rules use (held again, quarantined). Boxed: a
    /// reservation is large next to a list of rules.
    Flow {
        flow_id: FlowId,
        debt: Box<RemovalDebt>,
    },
    /// Rules found on switches that no flow owns.
    Orphans { rules: Vec<FlowSegment> },
}

impl RecoveredDebt {
    pub fn restore_into(&self, pool: &mut ResourcePool) {
        match self {
            RecoveredDebt::Flow { flow_id, debt } => pool.owe(flow_id, (**debt).clone()),
            RecoveredDebt::Orphans { rules } => {
                for rule in rules {
                    pool.owe_orphan(rule.clone());
                }
            }
        }
    }
}

/// A rule as a strict removal names it.
type RuleKey = (SwitchId, RuleMatch, u64);

fn rule_key(rule: &FlowSegment) -> RuleKey {
    (rule.switch_id, rule.rule_match(), rule.cookie)
}

/// The debt as the log tells it: every owed rule not paid since.
#[derive(Default)]
struct DebtLedger {
    /// (flow id, or none for orphans) → owed rules by key.
    owed: BTreeMap<Option<FlowId>, BTreeMap<RuleKey, FlowSegment>>,
    /// The reservation behind each flow's owed cookie.
    reservations: BTreeMap<(FlowId, u64), Reservation>,
}

impl DebtLedger {
    fn owe(&mut self, flow_id: Option<FlowId>, rules: Vec<FlowSegment>) {
        let owed = self.owed.entry(flow_id).or_default();
        for rule in rules {
            owed.insert(rule_key(&rule), rule);
        }
    }

    fn pay(&mut self, flow_id: Option<FlowId>, rules: &[FlowSegment]) {
        if let Some(owed) = self.owed.get_mut(&flow_id) {
            for rule in rules {
                owed.remove(&rule_key(rule));
            }
        }
    }

    /// What is left, a flow's rules grouped by the reservation they use.
    fn outstanding(self) -> Vec<RecoveredDebt> {
        let mut debts = Vec::new();
        for (flow_id, owed) in self.owed {
            if owed.is_empty() {
                continue;
            }
            let rules: Vec<FlowSegment> = owed.into_values().collect();
            let Some(flow_id) = flow_id else {
                debts.push(RecoveredDebt::Orphans { rules });
                continue;
            };
            let mut by_cookie: BTreeMap<u64, Vec<FlowSegment>> = BTreeMap::new();
            for rule in rules {
                by_cookie.entry(rule.cookie_id()).or_default().push(rule);
            }
            for (cookie, rules) in by_cookie {
                if let Some(reservation) = self.reservations.get(&(flow_id.clone(), cookie)) {
                    debts.push(RecoveredDebt::Flow {
                        flow_id: flow_id.clone(),
                        debt: Box::new(RemovalDebt {
                            reservation: reservation.clone(),
                            rules,
                        }),
                    });
                }
            }
        }
        debts
    }
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
    /// The removal debt not yet paid.
    pub debts: Vec<RecoveredDebt>,
    /// The diversity group of each recovered flow in one, by flow id.
    pub groups: Vec<(FlowId, String)>,
    /// This start's topology generation: one past the newest the log has seen. Every
    /// process of a cluster reads the log before any of them writes (timely connects them
    /// only once all have started), so they agree on it.
    pub generation: u64,
}

impl Recovery {
    /// Replays the log: a newer record replaces an older one (by version), a removal forgets
    /// the flow.
    pub fn from_log(at_ms: u64, events: impl IntoIterator<Item = Envelope<FlowEvent>>) -> Self {
        let mut records: HashMap<String, FlowRecord> = HashMap::new();
        let mut last_operation: HashMap<String, String> = HashMap::new();
        let mut answers = HashMap::new();
        let mut ledger = DebtLedger::default();
        let mut groups: BTreeMap<FlowId, Option<String>> = BTreeMap::new();
        let mut newest_epoch = 0;
        for event in events {
            let Envelope {
                correlation_id,
                key,
                created_at_ms,
                epoch,
                payload,
                ..
            } = event;
            newest_epoch = newest_epoch.max(epoch);
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
                FlowEvent::RemovalOwed { flow_id, debt } => {
                    let cookie = debt.reservation.resources.cookie;
                    ledger
                        .reservations
                        .insert((flow_id.clone(), cookie), debt.reservation);
                    ledger.owe(Some(flow_id), debt.rules);
                }
                FlowEvent::ExcessOwed { rules } => ledger.owe(None, rules),
                FlowEvent::RemovalPaid { flow_id, rules } => ledger.pay(flow_id, &rules),
                FlowEvent::DiverseGroup { flow_id, group } => {
                    groups.insert(flow_id, group);
                }
                FlowEvent::PathShared { .. } => {}
                FlowEvent::GenerationStarted { epoch } => newest_epoch = newest_epoch.max(epoch),
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
        let groups = groups
            .into_iter()
            .filter(|(flow_id, _)| records_kept(&flows, flow_id))
            .filter_map(|(flow_id, group)| group.map(|group| (flow_id, group)))
            .collect();
        Recovery {
            at_ms,
            flows,
            network: Vec::new(),
            answers,
            debts: ledger.outstanding(),
            groups,
            generation: newest_epoch + 1,
        }
    }
}

/// Whether the log still holds a record of the flow (`flows` sorted by flow id).
fn records_kept(flows: &[RecoveredFlow], flow_id: &str) -> bool {
    flows
        .binary_search_by(|f| f.record.flow_id().cmp(flow_id))
        .is_ok()
}
