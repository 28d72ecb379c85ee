//! Reading envelopes from Kafka. Anything that is not a valid envelope goes to the errors
//! topic with the reason and the original bytes, and the consumer goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use hubspoke_fsm::Envelope;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::producer::KafkaProducer;
use super::settings::{KafkaError, KafkaSettings, TopicName};
use crate::bus::Publish;

/// What `hubspoke.errors` holds for a message that could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The message exactly as it was, base64.
    pub original_base64: String,
    /// The same bytes as text, when they are UTF-8, for people reading the topic.
    pub original_text: Option<String>,
}

impl DeadLetter {
    /// The dead letter as an envelope on the errors topic (keyed like the original).
    pub fn envelope(self, now_ms: u64) -> Envelope<DeadLetter> {
        let key = self.key.clone().unwrap_or_default();
        Envelope::new("", key, now_ms, self)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    Message(Envelope<T>),
    Rejected(DeadLetter),
}

/// Decodes one Kafka message into an envelope, or explains why it cannot be one.
pub fn decode<T: DeserializeOwned>(
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Decoded<T> {
    let bytes = payload.unwrap_or_default();
    let key_text = key.map(|k| String::from_utf8_lossy(k).into_owned());
    let reject = |reason: String| {
        Decoded::Rejected(DeadLetter {
            reason,
            topic: topic.to_string(),
            partition,
            offset,
            key: key_text.clone(),
            original_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            original_text: std::str::from_utf8(bytes).ok().map(str::to_string),
        })
    };
    if bytes.is_empty() {
        return reject("empty message".into());
    }
    match serde_json::from_slice::<Envelope<T>>(bytes) {
        Ok(envelope) if key_text.as_deref().is_some_and(|k| k != envelope.key) => reject(format!(
            "Kafka key {:?} differs from the envelope key {:?}",
            key_text.as_deref().unwrap_or_default(),
            envelope.key
        )),
        Ok(envelope) => Decoded::Message(envelope),
        Err(error) => reject(format!("not a valid {topic} envelope: {error}")),
    }
}

/// Decodes a consumed message; a rejected one is sent to the errors topic.
pub(crate) fn decode_or_dead_letter<T: DeserializeOwned>(
    message: &BorrowedMessage<'_>,
    producer: &KafkaProducer,
    errors_topic: &str,
    now_ms: u64,
) -> Option<Envelope<T>> {
    match decode(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        message.payload(),
    ) {
        Decoded::Message(envelope) => Some(envelope),
        Decoded::Rejected(letter) => {
            tracing::warn!(topic = %letter.topic, offset = letter.offset, reason = %letter.reason, "message sent to the errors topic");
            let envelope = letter.envelope(now_ms);
            match serde_json::to_vec(&envelope) {
                Ok(bytes) => producer.send_bytes(errors_topic, &envelope.key, "", &bytes),
                Err(error) => tracing::error!(%error, "could not encode a dead letter"),
            }
            None
        }
    }
}

/// A consumer thread; dropping the handle stops it.
pub struct ConsumerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long the consumer thread blocks in one poll: bounds how fast it notices a stop.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// Reads `topic` as a member of `group` and publishes every valid envelope to `sink` (for
/// example an in-process topic the rest of the process already reads). The offset of a
/// message is stored once `sink` has taken it.
pub fn spawn_consumer<T: DeserializeOwned + Send + 'static>(
    settings: &KafkaSettings,
    topic: TopicName,
    group: &str,
    sink: Arc<dyn Publish<Envelope<T>>>,
    producer: KafkaProducer,
    clock_ms: fn() -> u64,
) -> Result<ConsumerHandle, KafkaError> {
    let consumer: BaseConsumer = settings.consumer_config(group).create()?;
    let topic_name = settings.topic(topic);
    consumer.subscribe(&[&topic_name])?;
    let errors_topic = settings.topic(TopicName::Errors);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("consume {topic_name}"))
        .spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match consumer.poll(POLL_WAIT) {
                    Some(Ok(message)) => {
                        if let Some(envelope) = decode_or_dead_letter(&message, &producer, &errors_topic, clock_ms()) {
                            sink.publish(envelope);
                        }
                        if let Err(error) = consumer.store_offset_from_message(&message) {
                            tracing::warn!(topic = %topic_name, %error, "could not store an offset");
                        }
                    }
                    Some(Err(error)) => tracing::warn!(topic = %topic_name, %error, "consumer error"),
                    None => {}
                }
            }
        })
        .map_err(|source| KafkaError::ConsumerThread { topic: settings.topic(topic), source })?;
    Ok(ConsumerHandle {
        stop,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::NbRequest;

    #[test]
    fn valid_envelopes_decode() {
        let json = br#"{"correlation_id":"c","key":"f1","created_at_ms":1,"payload":{"type":"delete_flow","flow_id":"f1"}}"#;
        let decoded = decode::<NbRequest>("t", 0, 5, Some(b"f1"), Some(json));
        assert!(matches!(decoded, Decoded::Message(e) if e.key == "f1"));
    }

    #[test]
    fn garbage_is_explained_and_kept_whole() {
        let garbage = b"\xff\x00not json";
        let Decoded::Rejected(letter) = decode::<NbRequest>("t", 2, 7, Some(b"k"), Some(garbage))
        else {
            panic!("garbage must be rejected");
        };
        assert!(
            letter.reason.contains("not a valid t envelope"),
            "{}",
            letter.reason
        );
        assert_eq!(
            (letter.partition, letter.offset, letter.key.as_deref()),
            (2, 7, Some("k"))
        );
        let original = base64::engine::general_purpose::STANDARD
            .decode(&letter.original_base64)
            .unwrap();
        assert_eq!(original, garbage);
        assert_eq!(letter.original_text, None);
    }

    #[test]
    fn empty_and_mismatched_keys_are_rejected() {
        assert!(
            matches!(decode::<NbRequest>("t", 0, 0, None, None), Decoded::Rejected(l) if l.reason == "empty message")
        );
        let json = br#"{"correlation_id":"c","key":"f1","created_at_ms":1,"payload":{"type":"delete_flow","flow_id":"f1"}}"#;
        let decoded = decode::<NbRequest>("t", 0, 0, Some(b"other"), Some(json));
        assert!(matches!(decoded, Decoded::Rejected(l) if l.reason.contains("differs")));
    }
}
