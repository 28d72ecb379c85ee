//! The coordinator owns every deadline. Registrations and cancellations come in as data; a
//! deadline is a capability held at its time, and fires when the input frontier passes it
//! (logical time, so replay fires the same timeouts). A re-registered key replaces the old
//! deadline, and a stale generation can neither cancel nor fire for a newer one.

use std::collections::{BTreeMap, HashMap};

use hubspoke_speaker::deadline::{DeadlineRequest, Timeout, TimerKey};

#[derive(Debug, Default)]
pub struct DeadlineTable {
    by_time: BTreeMap<u64, HashMap<TimerKey, u64>>,
    by_key: HashMap<TimerKey, (u64, u64)>,
}

impl DeadlineTable {
    /// Applies a request; a registration in the past is moved to `now_ms`. Returns the time
    /// of a registration this request added, and a time it left with no deadlines (whose
    /// capability the operator can drop).
    pub fn apply(&mut self, now_ms: u64, request: DeadlineRequest) -> (Option<u64>, Option<u64>) {
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
    pub fn take_due(&mut self, at_ms: u64) -> Vec<Timeout> {
        let keys = self.by_time.remove(&at_ms).unwrap_or_default();
        let mut due: Vec<Timeout> = keys
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

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_speaker::deadline::TimerOwner;

    fn key(name: &str) -> TimerKey {
        TimerKey {
            owner: TimerOwner::Speaker,
            flow_id: "f".into(),
            name: name.into(),
        }
    }

    fn register(name: &str, generation: u64, at_ms: u64) -> DeadlineRequest {
        DeadlineRequest::Register {
            key: key(name),
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
            due.iter().map(|t| t.key.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!(table.len(), 1);
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
