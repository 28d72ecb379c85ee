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
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::fence::Fence;
use super::producer::KafkaProducer;
use super::settings::{KafkaError, KafkaSettings, TopicName};
use hubspoke_bus::clock::now_ms;
use hubspoke_bus::Publish;

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
        Err(error) => reject(one_line(&format!("not a valid {topic} envelope: {error}"))),
    }
}

/// The text with its control characters escaped (`\n`, `\u{7f}`). serde quotes an unknown
/// variant or field name as it is, so without this a message could put a line break into the
/// reason and forge log lines.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
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

/// How a consumer gets its partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership<'a> {
    /// As one member of a consumer group, which shares the partitions out among its members
    /// and remembers how far they read (simulator instances sharing the switch commands).
    Group(&'a str),
    /// Every partition, from its beginning: a read model that needs the whole topic.
    EveryPartitionFromStart,
    /// Every partition, from what arrives after it started: the answers to this process's
    /// own requests.
    EveryPartitionFromNow,
}

/// How long a consumer waits for the topic's partitions at start.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads `topic` and publishes every valid envelope to `sink` (for example an in-process topic
/// the rest of the process already reads), but what a dead topology generation produced late
/// (see [`Fence`]). The offset of a message is stored once `sink` has taken it.
///
/// A consumer that reads every partition assigns them itself instead of joining a group:
/// tansu took over 10 s to let a new group's first member in, and until then the first
/// request sent through a freshly started `nb` went unanswered.
pub fn spawn_consumer<T: DeserializeOwned + Send + 'static>(
    settings: &KafkaSettings,
    topic: TopicName,
    membership: Membership<'_>,
    sink: Arc<dyn Publish<Envelope<T>>>,
    producer: KafkaProducer,
) -> Result<ConsumerHandle, KafkaError> {
    let topic_name = settings.topic(topic);
    let consumer: BaseConsumer = match membership {
        Membership::Group(group) => {
            let consumer: BaseConsumer = settings.consumer_config(group).create()?;
            consumer.subscribe(&[&topic_name])?;
            consumer
        }
        Membership::EveryPartitionFromStart => {
            assign_every_partition(settings, &topic_name, StartAt::Beginning)?
        }
        Membership::EveryPartitionFromNow => {
            assign_every_partition(settings, &topic_name, StartAt::Now)?
        }
    };
    let errors_topic = settings.topic(TopicName::Errors);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("consume {topic_name}"))
        .spawn(move || {
            let mut fence = Fence::new(&topic_name);
            while !thread_stop.load(Ordering::Relaxed) {
                match consumer.poll(POLL_WAIT) {
                    Some(Ok(message)) => {
                        if let Some(envelope) = decode_or_dead_letter(&message, &producer, &errors_topic, now_ms()) {
                            if fence.admit(message.partition(), envelope.epoch) {
                                sink.publish(envelope);
                            }
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

/// Where a consumer of every partition starts.
pub enum StartAt {
    Beginning,
    Now,
}

/// A consumer of every partition of `topic`, each read from `from`; outside any group, so it
/// commits nothing and no rebalance delays its first message.
pub fn assign_every_partition(
    settings: &KafkaSettings,
    topic: &str,
    from: StartAt,
) -> Result<BaseConsumer, KafkaError> {
    let mut config = settings.consumer_config(&format!("{topic}-reader"));
    config.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let start = match from {
            StartAt::Beginning => Offset::Beginning,
            // Resolved now, not on the first fetch: a message produced in between (the answer
            // to a request sent at once) must not be skipped. A watermark that lags only
            // brings an old message or two.
            StartAt::Now => Offset::Offset(
                consumer
                    .fetch_watermarks(topic, partition.id(), METADATA_TIMEOUT)?
                    .1,
            ),
        };
        assignment.add_partition_offset(topic, partition.id(), start)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

#[cfg(test)]
mod fuzz;

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

    /// The reason an envelope of `T` is rejected for.
    fn reason<T: DeserializeOwned + std::fmt::Debug>(key: &str, bytes: &[u8]) -> String {
        match decode::<T>("t", 0, 0, Some(key.as_bytes()), Some(bytes)) {
            Decoded::Rejected(letter) => letter.reason,
            Decoded::Message(envelope) => panic!("{envelope:?} must be rejected"),
        }
    }

    /// Found by the fuzz tests: serde names an unknown variant as it is, control characters
    /// and all; the reason (a log line) shows them escaped.
    #[test]
    fn control_characters_in_a_reason_are_escaped() {
        use hubspoke_fsm::{FlowEvent, SbCommand, SbEvent};
        let tab = r#"{"correlation_id":"corr-7f3a","created_at_ms":1700000000000,"deadline_ms":1700000010000,"key":"flow-1","payload":{"entry":{"correlation_id":"corr-7f3a","details":"path 1 → 2 → 3","event":"allocated","from_state":"Validating","operation":"create","timestamp_ms":1700000000100,"to_state":"InstallingNonIngress"},"flow_id":"flow-1","type":"his\tory"}}"#.as_bytes();
        let delete = b"{\"correlation_id\":\"corr-7f3a\",\"created_at_ms\":1700000000000,\"deadline_ms\":1700000010000,\"key\":\"00:00:00:00:00:00:00:01\",\"payload\":{\"ports\":48,\"switch_id\":\"00:00:00:00:00:00:00:01\",\"type\":\"\x7fswitch_added\"}}";
        let quote_flipped = b"{\"correlation_id\":\"corr-7f3a\",\"created_at_ms\":1700000000000,\"deadline_ms\":1700000010000,\"key\":\"flow-1\",\"payload\":{\"action\":\"install\x7f,\"attempt\":2,\"command_id\":\"flow-1:3:2\",\"segment\":{\"bandwidth\":10000,\"cookie\":4611686018427387921,\"in_port\":10,\"in_vlan\":100,\"kind\":\"ingress\",\"meter_id\":33,\"out_port\":5,\"out_vlan\":2001,\"switch_id\":\"00:00:00:00:00:00:00:02\"}}}";
        let newline = br#"{"correlation_id":"c","key":"f1","created_at_ms":1,"payload":{"type":"x\nERROR forged line","flow_id":"f1"}}"#;
        for (reason, escaped) in [
            (
                reason::<FlowEvent>("flow-1", tab),
                r"unknown variant `his\tory`",
            ),
            (
                reason::<SbEvent>("00:00:00:00:00:00:00:01", delete),
                r"unknown variant `\u{7f}switch_added`",
            ),
            (
                reason::<SbCommand>("flow-1", quote_flipped),
                r"unknown variant `install\u{7f},`",
            ),
            (
                reason::<NbRequest>("f1", newline),
                r"unknown variant `x\nERROR forged line`",
            ),
        ] {
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
            assert!(
                reason.starts_with("not a valid t envelope: ") && reason.contains(escaped),
                "{reason:?}"
            );
        }
    }
}
