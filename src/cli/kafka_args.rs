//! Flags of the Kafka processes, and connecting to the broker.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hubspoke_kafka::{ensure_topics, wait_for_broker, KafkaProducer, KafkaSettings};
use tracing::info;

#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT…].
    #[arg(long)]
    pub kafka: String,
    /// Topic names are PREFIX.nb.requests, PREFIX.sb.commands, …
    #[arg(long, default_value = "hubspoke")]
    pub topic_prefix: String,
    /// Partitions of the topics created when missing.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Longest time the broker may hold a fetch. tansu answers fetches only when it expires.
    #[arg(long, default_value_t = 1)]
    pub fetch_wait_max_ms: u32,
    /// How long the producer waits to batch messages.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u32,
    /// Any librdkafka client setting, NAME=VALUE; repeatable.
    #[arg(long = "kafka-option", value_parser = parse_option)]
    pub options: Vec<(String, String)>,
    /// How long to wait for the broker at start.
    #[arg(long, default_value_t = 120)]
    pub broker_wait_secs: u64,
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    Ok((name.trim().to_string(), value.trim().to_string()))
}

impl KafkaArgs {
    pub fn settings(&self) -> KafkaSettings {
        KafkaSettings {
            topic_prefix: self.topic_prefix.clone(),
            partitions: self.partitions,
            fetch_wait_max_ms: self.fetch_wait_max_ms,
            linger_ms: self.linger_ms,
            overrides: self.options.clone(),
            ..KafkaSettings::new(&self.kafka)
        }
    }

    /// Waits for the broker (saying so), creates missing topics, and makes the producer.
    pub fn connect(&self) -> anyhow::Result<(KafkaSettings, KafkaProducer)> {
        let settings = self.settings();
        info!(brokers = %settings.brokers, "waiting for the Kafka broker");
        wait_for_broker(&settings, Duration::from_secs(self.broker_wait_secs))?;
        ensure_topics(&settings).context("creating the topics")?;
        let producer = KafkaProducer::new(&settings)?;
        info!(brokers = %settings.brokers, prefix = %settings.topic_prefix, "connected to Kafka");
        Ok((settings, producer))
    }
}
