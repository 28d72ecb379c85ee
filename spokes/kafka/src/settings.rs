//! Broker address, topic names and the client settings that matter for latency.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("Kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("no Kafka broker answered at {brokers} within {waited:?}")]
    BrokerUnreachable { brokers: String, waited: Duration },
    #[error("could not create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("could not start the consumer thread of {topic}: {source}")]
    ConsumerThread {
        topic: String,
        source: std::io::Error,
    },
}

/// The bus topics (see ARCHITECTURE.md); their names are `{prefix}.{suffix}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicName {
    NbRequests,
    NbResponses,
    SbCommands,
    SbResponses,
    SbEvents,
    FlowEvents,
    NetworkStates,
    Errors,
}

impl TopicName {
    pub const ALL: [TopicName; 8] = [
        TopicName::NbRequests,
        TopicName::NbResponses,
        TopicName::SbCommands,
        TopicName::SbResponses,
        TopicName::SbEvents,
        TopicName::FlowEvents,
        TopicName::NetworkStates,
        TopicName::Errors,
    ];

    /// The logs a restart reads from the beginning (the network's changelog, the flow log):
    /// time-based retention would forget the network and the flows.
    pub fn is_kept_forever(self) -> bool {
        matches!(self, TopicName::SbEvents | TopicName::FlowEvents)
    }

    fn suffix(self) -> &'static str {
        match self {
            TopicName::NbRequests => "nb.requests",
            TopicName::NbResponses => "nb.responses",
            TopicName::SbCommands => "sb.commands",
            TopicName::SbResponses => "sb.responses",
            TopicName::SbEvents => "sb.events",
            TopicName::FlowEvents => "flow.events",
            TopicName::NetworkStates => "network",
            TopicName::Errors => "errors",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `HOST:PORT[,HOST:PORT…]`
    pub brokers: String,
    pub topic_prefix: String,
    /// Partitions of the topics this process creates when they are missing.
    pub partitions: i32,
    /// How long the broker may hold a fetch waiting for data. tansu answers a fetch only when
    /// this expires, so it is the floor of every hop's latency: keep it small.
    pub fetch_wait_max_ms: u32,
    /// How long the producer waits to batch messages.
    pub linger_ms: u32,
    /// Any other librdkafka setting, `name=value`, applied last.
    pub overrides: Vec<(String, String)>,
    /// Static membership of the topology group: each worker's consumer joins as
    /// `PREFIX-pPROCESS-wWORKER`, so a restarted process gets its partitions back without
    /// waiting for its old session to expire (where the broker supports it; tansu holds every
    /// static join for 3 s and needs sessions of 10 s or more, so it gains nothing there).
    pub group_instance_prefix: Option<String>,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            topic_prefix: "hubspoke".into(),
            partitions: 4,
            fetch_wait_max_ms: 1,
            linger_ms: 1,
            overrides: Vec::new(),
            group_instance_prefix: None,
        }
    }

    pub fn topic(&self, name: TopicName) -> String {
        format!("{}.{}", self.topic_prefix, name.suffix())
    }

    /// The settings every client shares.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config
    }

    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger_ms.to_string());
        self.apply_overrides(&mut config);
        config
    }

    /// A consumer of `group` that stores offsets only when told to (after handling) and
    /// commits the stored ones in the background.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A member that died (SIGKILL) holds its partitions until this expires: short, so
            // a restarted topology gets them back in seconds. Apache Kafka's minimum is 6 s;
            // tansu takes shorter ones but holds every joining follower for 3 s, and at 3.5 s
            // or less a two-member group never settles.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "2000")
            .set("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string())
            .set("fetch.min.bytes", "1");
        self.apply_overrides(&mut config);
        config
    }

    /// [`consumer_config`](Self::consumer_config) of `group` for the worker `worker` of
    /// process `process`: a static member when `group_instance_prefix` is set.
    pub fn member_config(&self, group: &str, process: usize, worker: usize) -> ClientConfig {
        let mut config = self.consumer_config(group);
        if let Some(prefix) = &self.group_instance_prefix {
            config.set(
                "group.instance.id",
                format!("{prefix}-p{process}-w{worker}"),
            );
        }
        config
    }

    fn apply_overrides(&self, config: &mut ClientConfig) {
        for (name, value) in &self.overrides {
            config.set(name, value);
        }
    }
}

/// Waits until a broker answers a metadata request, saying so every few seconds.
pub fn wait_for_broker(settings: &KafkaSettings, limit: Duration) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = settings.client_config().create()?;
    let start = Instant::now();
    let mut last_notice = Instant::now();
    loop {
        if consumer
            .fetch_metadata(None, Duration::from_secs(2))
            .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() >= limit {
            return Err(KafkaError::BrokerUnreachable {
                brokers: settings.brokers.clone(),
                waited: limit,
            });
        }
        if last_notice.elapsed() >= Duration::from_secs(5) {
            tracing::warn!(brokers = %settings.brokers, waited = ?start.elapsed(), "waiting for the Kafka broker");
            last_notice = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates every bus topic that does not exist yet (the broker may not auto-create).
pub fn ensure_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let names: Vec<(String, bool)> = TopicName::ALL
        .iter()
        .map(|&t| (settings.topic(t), t.is_kept_forever()))
        .collect();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|(name, forever)| {
            let topic = NewTopic::new(name, settings.partitions, TopicReplication::Fixed(1));
            if *forever {
                topic.set("retention.ms", "-1")
            } else {
                topic
            }
        })
        .collect();
    let results = futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_is_a_static_member_of_its_own_only_when_asked() {
        let dynamic = KafkaSettings::new("k:9092");
        assert_eq!(
            dynamic.member_config("g", 1, 0).get("group.instance.id"),
            None
        );
        let fixed = KafkaSettings {
            group_instance_prefix: Some("topology".into()),
            ..KafkaSettings::new("k:9092")
        };
        assert_eq!(
            fixed.member_config("g", 1, 0).get("group.instance.id"),
            Some("topology-p1-w0")
        );
        assert_eq!(
            fixed.member_config("g", 1, 1).get("group.instance.id"),
            Some("topology-p1-w1")
        );
    }
}
