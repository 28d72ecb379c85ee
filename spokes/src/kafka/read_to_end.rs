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
use super::settings::{KafkaError, KafkaSettings};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_WAIT: Duration = Duration::from_secs(1);

/// Where each partition ended when the topic was read: where to go on reading from.
pub type EndOffsets = HashMap<i32, i64>;

/// Every message of `topic`, in order per partition, and where each partition ended. A
/// message that cannot be read is logged and skipped.
pub fn read_to_end<T: DeserializeOwned>(
    settings: &KafkaSettings,
    topic: &str,
) -> Result<(Vec<Envelope<T>>, EndOffsets), KafkaError> {
    let reader: BaseConsumer = settings.consumer_config("hubspoke-log-reader").create()?;
    let metadata = reader.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = EndOffsets::new();
    let mut unread = EndOffsets::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = reader.fetch_watermarks(topic, partition.id(), METADATA_TIMEOUT)?;
        ends.insert(partition.id(), high);
        if high > low {
            unread.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
    }
    let mut messages = Vec::new();
    if unread.is_empty() {
        return Ok((messages, ends));
    }
    reader.assign(&assignment)?;
    while !unread.is_empty() {
        let Some(result) = reader.poll(POLL_WAIT) else {
            continue;
        };
        let message = result?;
        let (partition, offset) = (message.partition(), message.offset());
        match decode::<T>(topic, partition, offset, message.key(), message.payload()) {
            Decoded::Message(envelope) => messages.push(envelope),
            Decoded::Rejected(letter) => {
                tracing::warn!(reason = %letter.reason, %topic, partition, offset, "skipping an unreadable message")
            }
        }
        if unread.get(&partition).is_some_and(|end| offset + 1 >= *end) {
            unread.remove(&partition);
        }
    }
    Ok((messages, ends))
}
