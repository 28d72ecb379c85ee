//! Ids handed out lowest free first (cookies, transit VLANs, meters), so they are reused and
//! a restart can take exactly the ones its records hold.
//!
//! After a crash two records can hold the same id. Over Kafka each process of a cluster writes
//! its own flows' records: a delete's release can take effect (and the id go to a new flow)
//! while the record saying the flow is gone dies with its process. The interrupted delete runs
//! again after the restart and gives the id back; the id stays taken until its last holder
//! gives it back.

use std::collections::{BTreeSet, HashMap};

/// Lowest-free-first id pool over `first..=last`.
#[derive(Debug)]
pub struct IdPool {
    next: u64,
    last: u64,
    freed: BTreeSet<u64>,
    /// Ids a restart found held by more than one record: how many holders beyond the first.
    shared: HashMap<u64, u32>,
}

impl IdPool {
    pub fn new(first: u64, last: u64) -> Self {
        IdPool {
            next: first,
            last,
            freed: BTreeSet::new(),
            shared: HashMap::new(),
        }
    }

    pub fn take(&mut self) -> Option<u64> {
        if let Some(id) = self.freed.pop_first() {
            return Some(id);
        }
        (self.next <= self.last).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    pub fn give_back(&mut self, id: u64) {
        if let Some(others) = self.shared.get_mut(&id) {
            *others -= 1;
            if *others == 0 {
                self.shared.remove(&id);
            }
            return;
        }
        self.freed.insert(id);
    }

    /// Marks `id` as taken, as a restart finds it in a flow's record; once more if another
    /// record already holds it.
    pub fn reserve(&mut self, id: u64) {
        if id >= self.next {
            self.freed.extend(self.next..id);
            self.next = id + 1;
        } else if !self.freed.remove(&id) {
            tracing::warn!(
                id,
                "two records hold the same id; it stays taken until both let go"
            );
            *self.shared.entry(id).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_handed_out_lowest_free_first() {
        let mut pool = IdPool::new(1, 3);
        assert_eq!((pool.take(), pool.take()), (Some(1), Some(2)));
        pool.give_back(1);
        assert_eq!(
            (pool.take(), pool.take(), pool.take()),
            (Some(1), Some(3), None)
        );
    }

    /// Found by the cluster crash test: a delete's release took effect, a new flow got the
    /// transit VLAN, the record of the deleted flow's removal died with its process. After the
    /// restart both records hold the VLAN; the delete runs again and gives it back, and it went
    /// to a third flow while the second still used it.
    #[test]
    fn an_id_two_records_hold_is_free_only_once_both_give_it_back() {
        let mut pool = IdPool::new(1, 10);
        pool.reserve(3);
        pool.reserve(3);
        pool.give_back(3);
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(4), "3 is still held");
        pool.give_back(3);
        assert_eq!(pool.take(), Some(3));
    }
}
