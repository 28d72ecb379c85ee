//! The topology's input from Kafka: one consumer per timely worker, all in one group, so the
//! partitions of the inbound topics are shared out among every worker of every process. The
//! timely source polls it without blocking; librdkafka's "queue became non-empty" callback
//! wakes the source, so nothing spins while the topics are quiet.

use std::time::Duration;

use hubspoke_fsm::{NbRequest, SbResponse};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use super::consumer::decode_or_dead_letter;
use super::producer::KafkaProducer;
use super::settings::{KafkaError, KafkaSettings, TopicName};
use crate::bus::{Inbound, InboundSource, Waker};

/// The consumer group of the topology's workers.
pub const TOPOLOGY_GROUP: &str = "hubspoke-topology";

/// Polling now and then keeps an idle consumer in its group (librdkafka's
/// `max.poll.interval.ms` is 5 minutes by default).
const KEEPALIVE: Duration = Duration::from_secs(30);

pub struct KafkaInbound {
    consumer: BaseConsumer,
    producer: KafkaProducer,
    nb_requests: String,
    errors: String,
    clock_ms: fn() -> u64,
}

impl KafkaInbound {
    pub fn new(
        settings: &KafkaSettings,
        producer: KafkaProducer,
        clock_ms: fn() -> u64,
    ) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = settings.consumer_config(TOPOLOGY_GROUP).create()?;
        let nb_requests = settings.topic(TopicName::NbRequests);
        consumer.subscribe(&[&nb_requests, &settings.topic(TopicName::SbResponses)])?;
        Ok(KafkaInbound {
            consumer,
            producer,
            nb_requests,
            errors: settings.topic(TopicName::Errors),
            clock_ms,
        })
    }
}

impl InboundSource for KafkaInbound {
    fn set_waker(&mut self, waker: Waker) {
        self.consumer.set_nonempty_callback(move || waker());
    }

    fn poll(&mut self, max: usize, out: &mut dyn FnMut(Inbound)) -> usize {
        let mut taken = 0;
        while taken < max {
            let Some(result) = self.consumer.poll(Duration::ZERO) else {
                break;
            };
            let message = match result {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "topology consumer error");
                    continue;
                }
            };
            let now = (self.clock_ms)();
            let inbound = if message.topic() == self.nb_requests {
                decode_or_dead_letter::<NbRequest>(&message, &self.producer, &self.errors, now)
                    .map(Inbound::NbRequest)
            } else {
                decode_or_dead_letter::<SbResponse>(&message, &self.producer, &self.errors, now)
                    .map(Inbound::SbResponse)
            };
            if let Some(inbound) = inbound {
                out(inbound);
                taken += 1;
            }
            if let Err(error) = self.consumer.store_offset_from_message(&message) {
                tracing::warn!(%error, "could not store an offset");
            }
        }
        taken
    }

    fn keepalive(&self) -> Option<Duration> {
        Some(KEEPALIVE)
    }
}
