//! `hubspoke tail TOPIC…`: prints messages as they arrive (topic, partition, offset, key,
//! headers, JSON payload), so a person can watch the traffic while flows are created.

use std::time::Duration;

use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use super::kafka_args::KafkaArgs;
use super::serve::shutdown_requested;

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topics: full names, or short ones like `nb.requests` (the prefix is added).
    #[arg(required = true)]
    topics: Vec<String>,
    /// Start from the oldest message instead of only new ones.
    #[arg(long)]
    from_beginning: bool,
}

pub fn tail(args: TailArgs) -> anyhow::Result<()> {
    let (settings, _producer) = args.kafka.connect()?;
    let topics: Vec<String> = args
        .topics
        .iter()
        .map(|t| {
            if t.starts_with(&format!("{}.", settings.topic_prefix)) {
                t.clone()
            } else {
                format!("{}.{t}", settings.topic_prefix)
            }
        })
        .collect();
    let mut config = settings.consumer_config(&format!("hubspoke-tail-{}", uuid::Uuid::new_v4()));
    config.set(
        "auto.offset.reset",
        if args.from_beginning {
            "earliest"
        } else {
            "latest"
        },
    );
    let consumer: BaseConsumer = config.create()?;
    consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
    eprintln!("tailing {} (Ctrl-C to stop)", topics.join(", "));
    let stop = shutdown_requested()?;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let key = message
                    .key()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let headers: Vec<String> = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|header| {
                                let value = header
                                    .value
                                    .map(String::from_utf8_lossy)
                                    .unwrap_or_default();
                                format!("{}={value}", header.key)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let payload = message
                    .payload()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                println!(
                    "{} [{}] @{} key={key} {} {payload}",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    headers.join(" ")
                );
            }
            Some(Err(error)) => eprintln!("consumer error: {error}"),
            None => {}
        }
    }
    Ok(())
}
