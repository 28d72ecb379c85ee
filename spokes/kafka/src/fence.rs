//! Fencing a dead topology generation. A topology killed in the middle may still have
//! messages on their way to the broker, and they can land after its successor has read the
//! flow log and taken over. Every message a topology produces carries its generation
//! (`Envelope::epoch`), and a restarted topology marks the start of its own in every partition
//! of the flow log. Kafka keeps order per partition, so in a partition where a generation has
//! been seen, a message of an older one was produced by the dead generation and landed late:
//! it is dropped, with a warning. (Apache Kafka's transactional fencing would do this in the
//! broker, but tansu cannot commit a transaction.)

use std::collections::HashMap;

/// The newest generation seen per partition of one topic.
#[derive(Debug)]
pub struct Fence {
    topic: String,
    newest: HashMap<i32, u64>,
}

impl Fence {
    pub fn new(topic: &str) -> Self {
        Fence {
            topic: topic.to_string(),
            newest: HashMap::new(),
        }
    }

    /// Whether a message of generation `epoch` at `partition` is current. Messages no
    /// topology produced (epoch 0) always are.
    pub fn admit(&mut self, partition: i32, epoch: u64) -> bool {
        if epoch == 0 {
            return true;
        }
        let newest = self.newest.entry(partition).or_default();
        if epoch < *newest {
            tracing::warn!(
                topic = %self.topic,
                partition,
                epoch,
                newest = *newest,
                "dropped a late message from a dead topology generation"
            );
            return false;
        }
        *newest = epoch;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_older_than_its_partitions_newest_generation_is_dropped() {
        let mut fence = Fence::new("flow.events");
        assert!(fence.admit(0, 1));
        assert!(fence.admit(0, 2), "the successor's marker");
        assert!(!fence.admit(0, 1), "the dead generation, late");
        assert!(fence.admit(0, 2));
        assert!(fence.admit(1, 1), "another partition has its own order");
        assert!(fence.admit(0, 0), "not a topology's message");
    }
}
