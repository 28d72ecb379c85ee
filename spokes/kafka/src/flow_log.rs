//! `flow.events` as the durable flow log: an append is produced and waited for until the
//! broker has it (`acks=all`); reading back takes every partition from the beginning to its
//! end as it was when the read started.

use std::time::{Duration, Instant};

use hubspoke_fsm::{Envelope, FlowEvent};

use super::producer::KafkaProducer;
use super::read_to_end::{partitions_of, read_to_end};
use super::settings::{KafkaSettings, TopicName};
use hubspoke_bus::clock::now_ms;
use hubspoke_bus::flow_log::{FlowLog, FlowLogError};

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

impl KafkaFlowLog {
    /// Until the broker has acknowledged everything produced so far (it says so while it
    /// waits).
    fn wait_delivered(&self) {
        let started = Instant::now();
        while !self.producer.wait_delivered(DELIVERY_WAIT) {
            tracing::warn!(
                waited_ms = started.elapsed().as_millis() as u64,
                topic = %self.topic,
                "waiting for the broker to take the flow events"
            );
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
        self.wait_delivered();
        Ok(())
    }

    fn read_all(&self) -> Result<Vec<Envelope<FlowEvent>>, FlowLogError> {
        read_to_end(&self.settings, &self.topic)
            .map(|(events, _)| events)
            .map_err(|e| FlowLogError::Transport(Box::new(e)))
    }

    /// A `generation_started` in every partition, waited for: from there on a reader of any
    /// partition drops what an older generation still produces.
    fn begin_generation(&self, epoch: u64) -> Result<(), FlowLogError> {
        let partitions = partitions_of(&self.settings, &self.topic)
            .map_err(|e| FlowLogError::Transport(Box::new(e)))?;
        let mut marker = Envelope::new(
            format!("generation-{epoch}"),
            GENERATION_KEY,
            now_ms(),
            FlowEvent::GenerationStarted { epoch },
        );
        marker.epoch = epoch;
        let bytes = serde_json::to_vec(&marker)
            .map_err(|e| FlowLogError::Storage(format!("cannot encode a flow event: {e}")))?;
        for partition in partitions {
            self.producer.send_bytes_to(
                &self.topic,
                Some(partition),
                GENERATION_KEY,
                &marker.correlation_id,
                &bytes,
            );
        }
        self.wait_delivered();
        Ok(())
    }
}

/// The key of the generation markers.
const GENERATION_KEY: &str = "generation";
