//! `flow.events` as the durable flow log: an append is produced and waited for until the
//! broker has it (`acks=all`); reading back takes every partition from the beginning to its
//! end as it was when the read started.

use std::time::{Duration, Instant};

use hubspoke_fsm::{Envelope, FlowEvent};

use super::producer::KafkaProducer;
use super::read_to_end::read_to_end;
use super::settings::{KafkaSettings, TopicName};
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
        read_to_end(&self.settings, &self.topic)
            .map(|(events, _)| events)
            .map_err(|e| FlowLogError::Transport(Box::new(e)))
    }
}
