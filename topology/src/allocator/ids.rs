//! Ids handed out lowest free first (cookies, transit VLANs, meters), so they are reused and
//! a restart can take exactly the ones its records hold.

use std::collections::BTreeSet;

/// Lowest-free-first id pool over `first..=last`.
#[derive(Debug)]
pub struct IdPool {
    next: u64,
    last: u64,
    freed: BTreeSet<u64>,
}

impl IdPool {
    pub fn new(first: u64, last: u64) -> Self {
        IdPool {
            next: first,
            last,
            freed: BTreeSet::new(),
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
        self.freed.insert(id);
    }

    /// Marks `id` as taken, as a restart finds it in a flow's record.
    pub fn reserve(&mut self, id: u64) {
        if id >= self.next {
            self.freed.extend(self.next..id);
            self.next = id + 1;
        } else {
            self.freed.remove(&id);
        }
    }
}
