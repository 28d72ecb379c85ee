//! Publishing envelopes to Kafka without blocking: a threaded producer polls for delivery
//! reports in the background; a failed delivery is logged with its key, and every report
//! wakes whoever waits for deliveries.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use hubspoke_fsm::Envelope;
use parking_lot::{Condvar, Mutex};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::Serialize;

use super::settings::{KafkaError, KafkaSettings};
use super::CORRELATION_HEADER;
use hubspoke_bus::Publish;

/// Longest a waiter sleeps between looks at the in-flight count: librdkafka counts a message
/// delivered just after its report, so a wake-up can come a moment early.
const DELIVERY_RECHECK: Duration = Duration::from_millis(1);

/// Logs failed deliveries and wakes `wait_delivered` on every report. (rdkafka's own `flush`
/// polls for reports itself, 100 ms at a time, while the threaded producer's thread takes
/// them: every flow-log append then took 100 ms.)
#[derive(Default)]
pub struct DeliveryReports {
    reported: Mutex<()>,
    wake: Condvar,
}

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            let key = message
                .key()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            tracing::error!(topic = message.topic(), %key, %error, "a message was not delivered");
        }
        let _reported = self.reported.lock();
        self.wake.notify_all();
    }
}

/// One producer per process, shared by every topic's publisher.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: Arc<ThreadedProducer<DeliveryReports>>,
}

impl KafkaProducer {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let producer: ThreadedProducer<DeliveryReports> = settings
            .producer_config()
            .create_with_context(DeliveryReports::default())?;
        Ok(KafkaProducer {
            producer: Arc::new(producer),
        })
    }

    /// Sends raw bytes; waits (polling) only while librdkafka's queue is full.
    pub fn send_bytes(&self, topic: &str, key: &str, correlation_id: &str, payload: &[u8]) {
        self.send_bytes_to(topic, None, key, correlation_id, payload);
    }

    /// [`send_bytes`](Self::send_bytes) to `partition`, or where the key hashes to.
    pub fn send_bytes_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        correlation_id: &str,
        payload: &[u8],
    ) {
        let headers = OwnedHeaders::new().insert(Header {
            key: CORRELATION_HEADER,
            value: Some(correlation_id),
        });
        let mut record = BaseRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    returned,
                )) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => {
                    tracing::error!(%topic, %key, %correlation_id, %error, "could not produce a message");
                    return;
                }
            }
        }
    }

    /// Messages produced and not yet acknowledged by the broker.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to `timeout` for everything sent so far to be acknowledged; false if some
    /// of it still is not.
    pub fn wait_delivered(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let reports = self.producer.context();
        let mut reported = reports.reported.lock();
        while self.producer.in_flight_count() > 0 {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            reports
                .wake
                .wait_for(&mut reported, DELIVERY_RECHECK.min(deadline - now));
        }
        true
    }

    /// Waits until everything sent so far is delivered, e.g. before exiting.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(%error, "not every message was delivered before shutdown");
        }
    }

    pub fn publisher<T>(&self, topic: String) -> KafkaPublisher<T> {
        KafkaPublisher {
            producer: self.clone(),
            topic,
            payload: PhantomData,
        }
    }
}

/// A topic as a [`Publish`] target.
pub struct KafkaPublisher<T> {
    producer: KafkaProducer,
    topic: String,
    payload: PhantomData<fn(T)>,
}

impl<T: Serialize> Publish<Envelope<T>> for KafkaPublisher<T> {
    fn publish(&self, message: Envelope<T>) {
        match serde_json::to_vec(&message) {
            Ok(bytes) => {
                self.producer
                    .send_bytes(&self.topic, &message.key, &message.correlation_id, &bytes)
            }
            Err(error) => {
                tracing::error!(topic = %self.topic, key = %message.key, %error, "could not encode a message")
            }
        }
    }
}
