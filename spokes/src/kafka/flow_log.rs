//! `flow.events` as the durable flow log: an append is produced and waited for until the
//! broker has it (`acks=all`); reading back takes every partition from the beginning to its
//! end as it was when the read started.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hubspoke_fsm::{Envelope, FlowEvent};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::{decode, Decoded};
use super::producer::KafkaProducer;
use super::settings::{KafkaSettings, TopicName};
use crate::flow_log::{FlowLog, FlowLogError};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one wait for the broker lasts before it is logged and retried.
const DELIVERY_WAIT: Duration = Duration::from_secs(1);

pub struct KafkaFlowLog {
    settings: KafkaSettings,
    producer: KafkaProducer,
    topic: String,
}

impl KafkaFlowLog {
    pub fn new(settings: &KafkaSettings, producer: KafkaProducer) -> Self {
        KafkaFlowLog {
            settings: settings.clone(),
            producer,
            topic: settings.topic(TopicName::FlowEvents),
        }
    }
}

impl FlowLog for KafkaFlowLog {
    /// Blocks until the broker has acknowledged everything produced so far: while it is
    /// unreachable, nothing that depends on these events leaves the topology.
    fn append(&self, events: &[Envelope<FlowEvent>]) -> Result<(), FlowLogError> {
        for event in events {
            let bytes = serde_json::to_vec(event)
                .map_err(|e| FlowLogError::Storage(format!("cannot encode a flow event: {e}")))?;
            self.producer
                .send_bytes(&self.topic, &event.key, &event.correlation_id, &bytes);
        }
        let started = Instant::now();
        while !self.producer.wait_delivered(DELIVERY_WAIT) {
            tracing::warn!(
                waited_ms = started.elapsed().as_millis() as u64,
                topic = %self.topic,
                "waiting for the broker to take the flow events"
            );
        }
        Ok(())
    }

    fn read_all(&self) -> Result<Vec<Envelope<FlowEvent>>, FlowLogError> {
        let reader: BaseConsumer = self
            .settings
            .consumer_config("hubspoke-flow-log-reader")
            .create()
            .map_err(crate::kafka::KafkaError::from)?;
        let metadata = reader
            .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
            .map_err(crate::kafka::KafkaError::from)?;
        let mut assignment = TopicPartitionList::new();
        let mut ends: HashMap<i32, i64> = HashMap::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = reader
                .fetch_watermarks(&self.topic, partition.id(), METADATA_TIMEOUT)
                .map_err(crate::kafka::KafkaError::from)?;
            if high > low {
                ends.insert(partition.id(), high);
                assignment
                    .add_partition_offset(&self.topic, partition.id(), Offset::Beginning)
                    .map_err(crate::kafka::KafkaError::from)?;
            }
        }
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        reader
            .assign(&assignment)
            .map_err(crate::kafka::KafkaError::from)?;
        let mut events = Vec::new();
        while !ends.is_empty() {
            let Some(result) = reader.poll(DELIVERY_WAIT) else {
                continue;
            };
            let message = result.map_err(crate::kafka::KafkaError::from)?;
            let (partition, offset) = (message.partition(), message.offset());
            match decode::<FlowEvent>(
                &self.topic,
                partition,
                offset,
                message.key(),
                message.payload(),
            ) {
                Decoded::Message(event) => events.push(event),
                Decoded::Rejected(letter) => {
                    tracing::warn!(reason = %letter.reason, partition, offset, "skipping an unreadable flow event")
                }
            }
            if ends.get(&partition).is_some_and(|end| offset + 1 >= *end) {
                ends.remove(&partition);
            }
        }
        Ok(events)
    }
}
