//! The Kafka transport: the same topics and envelope as the in-process bus, as JSON a person
//! can read, keyed by flow id (a flow's messages stay in order on one partition), with the
//! correlation id also as a header. Producers are idempotent with `acks=all`.

mod consumer;
mod fence;
mod flow_log;
mod inbound;
mod producer;
mod read_to_end;
mod settings;

pub use consumer::{
    assign_every_partition, decode, spawn_consumer, ConsumerHandle, DeadLetter, Decoded,
    Membership, StartAt,
};
pub use flow_log::KafkaFlowLog;
pub use inbound::{KafkaInbound, WorkerSeat, TOPOLOGY_GROUP};
pub use producer::{KafkaProducer, KafkaPublisher};
pub use read_to_end::{read_to_end, EndOffsets};
pub use settings::{ensure_topics, wait_for_broker, KafkaError, KafkaSettings, TopicName};

/// The Kafka header that carries the correlation id.
pub const CORRELATION_HEADER: &str = "correlation_id";
