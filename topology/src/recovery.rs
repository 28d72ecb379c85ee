//! What a restarted topology learns from the flow log: every flow's newest record, the
//! operation that was running on it when the topology stopped, the answers already given
//! (so a request sent again with the same correlation id gets the same answer), and the
//! removal debt not yet paid.

use std::collections::{BTreeMap, HashMap};

use hubspoke_fsm::dataplane::RuleMatch;
use hubspoke_fsm::segments::{flow_segments, FlowSegment};
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
        let mut swaps_committed: HashMap<FlowId, u64> = HashMap::new();
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
                FlowEvent::EndpointSwapCommitted { flow_id, cookie } => {
                    swaps_committed.insert(flow_id, cookie);
                }
                FlowEvent::PathShared { .. } => {}
                FlowEvent::GenerationStarted { epoch } => newest_epoch = newest_epoch.max(epoch),
            }
        }
        let mut debts = Vec::new();
        let mut flows: Vec<RecoveredFlow> = records
            .into_values()
            .map(|mut record| {
                let committed = swaps_committed.get(record.flow_id()).copied();
                debts.extend(finish_committed_swap(&mut record, committed));
                record
            })
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
            debts: ledger.outstanding().into_iter().chain(debts).collect(),
            groups,
            generation: newest_epoch + 1,
        }
    }
}

/// A flow stopped in an endpoint swap the allocator committed (its target is the reservation
/// with the `committed` cookie) moves to its target, as its other half may have already: its
/// new rules are in place, and its old ones are owed.
fn finish_committed_swap(record: &mut FlowRecord, committed: Option<u64>) -> Option<RecoveredDebt> {
    let moving = record.status == FlowStatus::InProgress && record.resources.is_some();
    let target = record.target.as_deref()?;
    if !moving || Some(target.resources.cookie) != committed {
        return None;
    }
    let Reservation { request, resources } = *record.target.take()?;
    let old_request = std::mem::replace(&mut record.request, request);
    let old_resources = record.resources.replace(resources)?;
    let rules = flow_segments(&old_request, &old_resources);
    Some(RecoveredDebt::Flow {
        flow_id: record.flow_id().to_string(),
        debt: Box::new(RemovalDebt {
            reservation: Reservation {
                request: old_request,
                resources: old_resources,
            },
            rules,
        }),
    })
}

/// Whether the log still holds a record of the flow (`flows` sorted by flow id).
fn records_kept(flows: &[RecoveredFlow], flow_id: &str) -> bool {
    flows
        .binary_search_by(|f| f.record.flow_id().cmp(flow_id))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::{FlowEndpoint, FlowRequest, Isl, Resources};

    fn request(flow_id: &str, dst: u64) -> FlowRequest {
        let end = |switch| FlowEndpoint {
            switch_id: SwitchId(switch),
            port_number: 10,
            vlan_id: 0,
        };
        FlowRequest {
            flow_id: flow_id.into(),
            source: end(1),
            destination: end(dst),
            ..Default::default()
        }
    }

    fn resources(cookie: u64, dst: u64) -> Resources {
        Resources {
            cookie,
            transit_vlans: vec![2],
            forward_path: vec![Isl {
                src_switch: SwitchId(1),
                src_port: 1,
                dst_switch: SwitchId(dst),
                dst_port: 1,
            }],
            ..Default::default()
        }
    }

    /// A flow saved in the middle of an endpoint swap: on 1 → 2 (cookie 1), moving to 1 → 3
    /// (cookie 2).
    fn swapping(flow_id: &str) -> FlowRecord {
        let mut record = FlowRecord::new(request(flow_id, 2), 1);
        record.status = FlowStatus::InProgress;
        record.resources = Some(resources(1, 2));
        record.target = Some(Box::new(Reservation {
            request: request(flow_id, 3),
            resources: resources(2, 3),
        }));
        record
    }

    fn log(committed: Option<u64>) -> Recovery {
        let mut events = vec![Envelope::new(
            "c",
            "a",
            1,
            FlowEvent::Updated {
                flow: swapping("a"),
            },
        )];
        if let Some(cookie) = committed {
            let event = FlowEvent::EndpointSwapCommitted {
                flow_id: "a".into(),
                cookie,
            };
            events.push(Envelope::new("c", "a", 2, event));
        }
        Recovery::from_log(10, events)
    }

    #[test]
    fn a_committed_endpoint_swap_is_finished_and_its_old_rules_owed() {
        let recovery = log(Some(2));
        let record = &recovery.flows[0].record;
        assert_eq!(record.request, request("a", 3));
        assert_eq!(record.resources, Some(resources(2, 3)));
        assert_eq!(record.target, None);
        assert!(
            recovery.flows[0].interrupted.is_some(),
            "synced on its new path"
        );
        let [RecoveredDebt::Flow { flow_id, debt }] = recovery.debts.as_slice() else {
            panic!("the old rules are owed: {:?}", recovery.debts);
        };
        assert_eq!(flow_id, "a");
        assert_eq!(debt.reservation.resources, resources(1, 2));
        assert_eq!(
            debt.rules,
            flow_segments(&request("a", 2), &resources(1, 2))
        );
    }

    #[test]
    fn an_endpoint_swap_not_committed_or_of_another_move_is_left_to_the_sync() {
        for committed in [None, Some(7)] {
            let recovery = log(committed);
            assert_eq!(recovery.flows[0].record, swapping("a"), "{committed:?}");
            assert!(recovery.debts.is_empty());
        }
    }
}
