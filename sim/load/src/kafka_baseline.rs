//! What the transport alone allows: a bare request/response round trip through the broker
//! (produce → an echo consumes and produces → consume), one at a time, with the producer and
//! consumer settings the hubspoke processes use. End-to-end latencies are reported as a ratio
//! to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hubspoke_kafka::{
    assign_every_partition, wait_for_broker, KafkaError, KafkaProducer, KafkaSettings, StartAt,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Message;

use super::stats::Latencies;
use super::Progress;

/// Round trips before the measured ones: connections, metadata and the first fetches.
pub const WARMUP_ROUND_TRIPS: usize = 20;
/// How long a consumer waits in one poll: bounds how fast the echo notices a stop.
const POLL_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("Kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("could not create the round-trip topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("round trip {sample} got no reply within {waited:?}")]
    NoReply { sample: usize, waited: Duration },
    #[error("could not start the echo thread: {0}")]
    EchoThread(std::io::Error),
}

/// Dedicated one-partition topics for one run, removed afterwards.
struct RoundTripTopics {
    requests: String,
    replies: String,
}

impl RoundTripTopics {
    fn new(run_prefix: &str) -> Self {
        RoundTripTopics {
            requests: format!("{run_prefix}.round-trip.requests"),
            replies: format!("{run_prefix}.round-trip.replies"),
        }
    }

    fn create(&self, admin: &AdminClient<DefaultClientContext>) -> Result<(), BaselineError> {
        let topics = [&self.requests, &self.replies]
            .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(1)));
        let results =
            futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))?;
        for result in results {
            if let Err((topic, code)) = result {
                return Err(BaselineError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
        Ok(())
    }

    fn delete(&self, admin: &AdminClient<DefaultClientContext>) {
        let names = [self.requests.as_str(), self.replies.as_str()];
        match futures::executor::block_on(admin.delete_topics(&names, &AdminOptions::new())) {
            Ok(results) => {
                for (topic, code) in results.into_iter().filter_map(Result::err) {
                    tracing::warn!(%topic, %code, "could not delete a round-trip topic");
                }
            }
            Err(error) => tracing::warn!(%error, "could not delete the round-trip topics"),
        }
    }
}

/// Consumes requests and produces each back as a reply with the same key, until dropped.
struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(settings: &KafkaSettings, topics: &RoundTripTopics) -> Result<Echo, BaselineError> {
        let consumer = assign_every_partition(settings, &topics.requests, StartAt::Beginning)?;
        let producer = KafkaProducer::new(settings)?;
        let replies = topics.replies.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("round-trip echo".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    match consumer.poll(POLL_WAIT) {
                        Some(Ok(message)) => {
                            let key = message.key().map(String::from_utf8_lossy);
                            let key = key.as_deref().unwrap_or_default();
                            let payload = message.payload().unwrap_or_default();
                            producer.send_bytes(&replies, key, key, payload);
                        }
                        Some(Err(error)) => tracing::warn!(%error, "round-trip echo"),
                        None => {}
                    }
                }
            })
            .map_err(BaselineError::EchoThread)?;
        Ok(Echo {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Measures `samples` round trips (after [`WARMUP_ROUND_TRIPS`]) on topics of their own,
/// named after the run; each waits up to `timeout` for its reply. Blocking.
pub fn measure_round_trips(
    settings: &KafkaSettings,
    run_prefix: &str,
    samples: usize,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<Latencies, BaselineError> {
    wait_for_broker(settings, timeout)?;
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let topics = RoundTripTopics::new(run_prefix);
    topics.create(&admin)?;
    let measured = round_trips(settings, &topics, samples, timeout, progress);
    topics.delete(&admin);
    measured
}

fn round_trips(
    settings: &KafkaSettings,
    topics: &RoundTripTopics,
    samples: usize,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<Latencies, BaselineError> {
    let _echo = Echo::start(settings, topics)?;
    let replies = assign_every_partition(settings, &topics.replies, StartAt::Beginning)?;
    let producer = KafkaProducer::new(settings)?;
    let total = WARMUP_ROUND_TRIPS + samples;
    progress.stage(
        "kafka round trips",
        u64::try_from(total).unwrap_or(u64::MAX),
    );
    let mut latencies = Latencies::default();
    for sample in 0..total {
        let key = sample.to_string();
        let sent = Instant::now();
        producer.send_bytes(&topics.requests, &key, &key, key.as_bytes());
        loop {
            let waited = sent.elapsed();
            if waited >= timeout {
                return Err(BaselineError::NoReply { sample, waited });
            }
            match replies.poll(POLL_WAIT.min(timeout - waited)) {
                Some(Ok(message)) if message.key() == Some(key.as_bytes()) => break,
                Some(Err(error)) => tracing::warn!(%error, "round-trip replies"),
                _ => {}
            }
        }
        if sample >= WARMUP_ROUND_TRIPS {
            latencies.record(sent.elapsed());
        }
        progress.advance();
    }
    Ok(latencies)
}
