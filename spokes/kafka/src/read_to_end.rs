//! Reading a whole topic as it stands: every partition from the beginning to the end it had
//! when the read started. For the logs a restart rebuilds from (the flows, the network).

use std::collections::HashMap;
use std::time::Duration;

use hubspoke_fsm::Envelope;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;

use super::consumer::{decode, Decoded};
use super::fence::Fence;
use super::settings::{KafkaError, KafkaSettings};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_WAIT: Duration = Duration::from_secs(1);
/// How long the topic must stay quiet past its reported ends for the read to be over.
const QUIET: Duration = Duration::from_millis(500);

/// Where each partition ended when the topic was read: where to go on reading from.
pub type EndOffsets = HashMap<i32, i64>;

/// The partitions `topic` has.
pub fn partitions_of(settings: &KafkaSettings, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let reader: BaseConsumer = settings.consumer_config("hubspoke-log-reader").create()?;
    partition_ids(&reader, topic)
}

fn partition_ids(reader: &BaseConsumer, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let metadata = reader.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| p.id())
        .collect())
}

/// Every message of `topic`, in order per partition, and where each partition ended. A
/// message that cannot be read is logged and skipped.
///
/// The watermarks are only a first guess of the ends: tansu can report one behind what it
/// already serves, and a read that stopped there would miss flows or links that exist. So
/// once they are reached the read goes on until the topic has been quiet for a while.
pub fn read_to_end<T: DeserializeOwned>(
    settings: &KafkaSettings,
    topic: &str,
) -> Result<(Vec<Envelope<T>>, EndOffsets), KafkaError> {
    let reader: BaseConsumer = settings.consumer_config("hubspoke-log-reader").create()?;
    let partitions = partition_ids(&reader, topic)?;
    let mut assignment = TopicPartitionList::new();
    // Where each partition's next unread message is, and where the broker says it ends.
    let mut next = EndOffsets::new();
    let mut reported = EndOffsets::new();
    for &partition in &partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        let (_, high) = reader.fetch_watermarks(topic, partition, METADATA_TIMEOUT)?;
        next.insert(partition, 0);
        reported.insert(partition, high);
    }
    reader.assign(&assignment)?;
    let mut messages = Vec::new();
    let mut fence = Fence::new(topic);
    let reported_ends_reached = |next: &EndOffsets| {
        reported
            .iter()
            .all(|(p, end)| next.get(p).is_some_and(|n| n >= end))
    };
    loop {
        let wait = if reported_ends_reached(&next) {
            QUIET
        } else {
            POLL_WAIT
        };
        match reader.poll(wait) {
            Some(result) => {
                let message = result?;
                let (partition, offset) = (message.partition(), message.offset());
                match decode::<T>(topic, partition, offset, message.key(), message.payload()) {
                    Decoded::Message(envelope) => {
                        if fence.admit(partition, envelope.epoch) {
                            messages.push(envelope);
                        }
                    }
                    Decoded::Rejected(letter) => {
                        tracing::warn!(reason = %letter.reason, %topic, partition, offset, "skipping an unreadable message")
                    }
                }
                next.insert(partition, offset + 1);
            }
            None if reported_ends_reached(&next) => break,
            None => {}
        }
    }
    Ok((messages, next))
}
