//! The coordinator owns every deadline. Registrations and cancellations come in as data; a
//! deadline is a capability held at its time, and fires when the input frontier passes it
//! (logical time, so replay fires the same timeouts). A re-registered key replaces the old
//! deadline, and a stale generation can neither cancel nor fire for a newer one.
//!
//! [`DeadlineTable`] is the logic, [`coordinator_operator`] the timely operator around it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hubspoke_speaker::deadline::{CommandTimer, DeadlineRequest, Timeout};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::dataflow::{route, Time};
use crate::keeper::KeeperTimer;
use crate::metrics::Metrics;

/// The hub's timers of one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HubTimer {
    /// The running operation's deadline (re-armed by each step that needs a new one).
    Operation,
    /// A network-triggered reroute's settle time.
    Reroute,
    /// Catches an operation that outlived every deadline it can arm.
    Watchdog,
}

/// Every deadline the coordinator holds, by owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKey {
    Hub { flow_id: String, timer: HubTimer },
    Command(CommandTimer),
    Keeper(KeeperTimer),
}

impl TimerKey {
    /// The worker a deadline is kept on: its flow's (timeouts go back to the flow's hub or
    /// speaker), or worker 0, where the keeper lives.
    pub fn worker(&self) -> u64 {
        match self {
            TimerKey::Hub { flow_id, .. } => route(flow_id),
            TimerKey::Command(timer) => route(&timer.flow_id),
            TimerKey::Keeper(_) => 0,
        }
    }
}

pub type Deadline = DeadlineRequest<TimerKey>;

#[derive(Debug, Default)]
pub struct DeadlineTable {
    by_time: BTreeMap<u64, HashMap<TimerKey, u64>>,
    by_key: HashMap<TimerKey, (u64, u64)>,
}

impl DeadlineTable {
    /// Applies a request; a registration in the past is moved to `now_ms`. Returns the time
    /// of a registration this request added, and a time it left with no deadlines (whose
    /// capability the operator can drop).
    pub fn apply(&mut self, now_ms: u64, request: Deadline) -> (Option<u64>, Option<u64>) {
        match request {
            DeadlineRequest::Register {
                key,
                generation,
                at_ms,
            } => {
                let at_ms = at_ms.max(now_ms);
                let emptied = self.remove(&key);
                self.by_time
                    .entry(at_ms)
                    .or_default()
                    .insert(key.clone(), generation);
                self.by_key.insert(key, (generation, at_ms));
                (Some(at_ms), emptied.filter(|&t| t != at_ms))
            }
            DeadlineRequest::Cancel { key, generation } => {
                if self
                    .by_key
                    .get(&key)
                    .is_some_and(|&(current, _)| current == generation)
                {
                    (None, self.remove(&key))
                } else {
                    (None, None)
                }
            }
        }
    }

    /// Returns the deadline's time if no other deadline is left at it.
    fn remove(&mut self, key: &TimerKey) -> Option<u64> {
        let (_, at_ms) = self.by_key.remove(key)?;
        let keys = self.by_time.get_mut(&at_ms)?;
        keys.remove(key);
        keys.is_empty().then(|| {
            self.by_time.remove(&at_ms);
            at_ms
        })
    }

    /// Removes and returns the deadlines at exactly `at_ms`.
    pub fn take_due(&mut self, at_ms: u64) -> Vec<Timeout<TimerKey>> {
        let keys = self.by_time.remove(&at_ms).unwrap_or_default();
        let mut due: Vec<Timeout<TimerKey>> = keys
            .into_iter()
            .map(|(key, generation)| {
                self.by_key.remove(&key);
                Timeout { key, generation }
            })
            .collect();
        due.sort_by(|a, b| a.key.cmp(&b.key));
        due
    }

    pub fn has_deadlines_at(&self, at_ms: u64) -> bool {
        self.by_time.contains_key(&at_ms)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The coordinator operator: applies deadline registrations and cancellations (exchanged by
/// flow id) to a [`DeadlineTable`], holds one capability per pending deadline time, and emits
/// the [`Timeout`]s of a time once the input frontier has passed it. Public so that
/// benchmarks can drive the real operator in a dataflow of their own.
pub fn coordinator_operator<'scope>(
    requests: StreamVec<'scope, Time, Deadline>,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Time, Timeout<TimerKey>> {
    let pact = Exchange::new(|d: &Deadline| d.key().worker());
    let worker = requests.scope().index();
    requests.unary_frontier(pact, "Coordinator", move |_capability, _info| {
        let mut table = DeadlineTable::default();
        let mut held: BTreeMap<Time, Capability<Time>> = BTreeMap::new();
        let mut counted = 0;
        move |(input, frontier), output| {
            input.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for request in data.flat_map(|batch| batch.drain(..)) {
                    let (added, emptied) = table.apply(now, request);
                    if let Some(at) = added {
                        held.entry(at).or_insert_with(|| capability.delayed(&at, 0));
                    }
                    if let Some(at) = emptied {
                        held.remove(&at);
                    }
                }
            });
            while let Some(entry) = held.first_entry() {
                if frontier.frontier().less_equal(entry.key()) {
                    break;
                }
                let (at, capability) = entry.remove_entry();
                let due = table.take_due(at);
                metrics.deadlines_fired.add(due.len() as u64);
                output.session(&capability).give_iterator(due.into_iter());
            }
            metrics.deadlines_pending.add(table.len() as i64 - counted);
            counted = table.len() as i64;
            metrics
                .next_deadline
                .set(worker, held.first_key_value().map(|(at, _)| *at));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(command_id: &str) -> TimerKey {
        TimerKey::Command(CommandTimer {
            flow_id: "f".into(),
            command_id: command_id.into(),
        })
    }

    fn register(command_id: &str, generation: u64, at_ms: u64) -> Deadline {
        DeadlineRequest::Register {
            key: key(command_id),
            generation,
            at_ms,
        }
    }

    #[test]
    fn registered_deadlines_come_due_at_their_time() {
        let mut table = DeadlineTable::default();
        table.apply(0, register("a", 1, 10));
        table.apply(0, register("b", 1, 10));
        table.apply(0, register("c", 1, 20));
        assert!(table.take_due(5).is_empty());
        let due = table.take_due(10);
        assert_eq!(
            due.into_iter().map(|t| t.key).collect::<Vec<_>>(),
            vec![key("a"), key("b")]
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_flows_hub_timers_come_due_before_its_command_timers_in_a_fixed_order() {
        let mut table = DeadlineTable::default();
        let hub = |timer| TimerKey::Hub {
            flow_id: "f".into(),
            timer,
        };
        for (generation, key) in [
            key("c:1"),
            hub(HubTimer::Watchdog),
            hub(HubTimer::Operation),
            hub(HubTimer::Reroute),
        ]
        .into_iter()
        .enumerate()
        {
            table.apply(
                0,
                DeadlineRequest::Register {
                    key,
                    generation: generation as u64,
                    at_ms: 10,
                },
            );
        }
        let due: Vec<TimerKey> = table.take_due(10).into_iter().map(|t| t.key).collect();
        assert_eq!(
            due,
            vec![
                hub(HubTimer::Operation),
                hub(HubTimer::Reroute),
                hub(HubTimer::Watchdog),
                key("c:1")
            ]
        );
    }

    #[test]
    fn re_registering_replaces_and_stale_cancels_are_ignored() {
        let mut table = DeadlineTable::default();
        table.apply(0, register("a", 1, 10));
        assert_eq!(table.apply(0, register("a", 2, 30)), (Some(30), Some(10)));
        assert!(!table.has_deadlines_at(10), "the old deadline is gone");
        table.apply(
            0,
            DeadlineRequest::Cancel {
                key: key("a"),
                generation: 1,
            },
        );
        assert_eq!(
            table.len(),
            1,
            "a stale cancel does not remove the new deadline"
        );
        assert_eq!(
            table.take_due(30),
            vec![Timeout {
                key: key("a"),
                generation: 2
            }]
        );
    }

    #[test]
    fn cancel_removes_and_past_deadlines_move_to_now() {
        let mut table = DeadlineTable::default();
        table.apply(0, register("a", 1, 10));
        assert_eq!(
            table.apply(
                0,
                DeadlineRequest::Cancel {
                    key: key("a"),
                    generation: 1
                }
            ),
            (None, Some(10))
        );
        assert!(table.is_empty());
        table.apply(50, register("b", 1, 10));
        assert!(table.has_deadlines_at(50));
    }
}
