//! The topology's input from Kafka: one consumer per timely worker, all in one group, so the
//! partitions of the inbound topics are shared out among every worker of every process. The
//! timely source polls it without blocking; librdkafka's "queue became non-empty" callback
//! wakes the source, so nothing spins while the topics are quiet.
//!
//! At-least-once: the offset of a message is stored (and then committed in the background)
//! only once the topology has handled it, i.e. the outputs of its logical time have all been
//! handed to the producer and the producer has nothing left in flight. A crash before that
//! means the message is read again.
//!
//! `sb.events` is different: it is the network's changelog. A starting topology reads all of
//! it first (the allocator starts with that network, so no request meets an unknown switch),
//! then one worker (the first of the cluster) goes on reading it from there, outside the
//! group and without committing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::decode_or_dead_letter;
use super::producer::KafkaProducer;
use super::read_to_end::EndOffsets;
use super::settings::{KafkaError, KafkaSettings, TopicName};
use hubspoke_bus::clock::now_ms;
use hubspoke_bus::{Inbound, InboundSource, Waker};

/// The consumer group of the topology's workers.
pub const TOPOLOGY_GROUP: &str = "hubspoke-topology";

/// How long the network reader waits for `sb.events`' partition list at start.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling now and then keeps an idle consumer in its group (librdkafka's
/// `max.poll.interval.ms` is 5 minutes by default).
const KEEPALIVE: Duration = Duration::from_secs(30);

const NB_REQUESTS: usize = 0;

/// A message taken but not yet known to be handled.
struct Taken {
    time: u64,
    topic: usize,
    partition: i32,
    offset: i64,
}

/// Which worker of the cluster a consumer serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerSeat {
    pub process: usize,
    pub worker: usize,
}

/// Keeps count of the partitions the group has assigned to one consumer: readiness asks it.
#[derive(Default)]
pub struct GroupContext {
    assigned: Arc<AtomicUsize>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let count = match rebalance {
            Rebalance::Assign(partitions) => partitions.count(),
            Rebalance::Revoke(_) => 0,
            Rebalance::Error(error) => {
                tracing::warn!(%error, "consumer group rebalance failed");
                return;
            }
        };
        self.assigned.store(count, Ordering::Relaxed);
    }
}

pub struct KafkaInbound {
    consumer: BaseConsumer<GroupContext>,
    /// The group's topics, in the order of `NB_REQUESTS`, `SB_RESPONSES`; `Taken::topic`
    /// indexes here.
    topics: [String; 2],
    /// Reads `sb.events` from the beginning, on one worker only.
    network: Option<BaseConsumer>,
    unhandled: VecDeque<Taken>,
    producer: KafkaProducer,
    errors: String,
}

impl KafkaInbound {
    /// The consumer of the worker at `seat`. The first worker of the cluster also reads
    /// `sb.events`, from `network_from` on: where the snapshot the topology started with
    /// ended (see [`super::read_to_end`]).
    pub fn new(
        settings: &KafkaSettings,
        producer: KafkaProducer,
        seat: WorkerSeat,
        network_from: &EndOffsets,
    ) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<GroupContext> = settings
            .member_config(TOPOLOGY_GROUP, seat.process, seat.worker)
            .create_with_context(GroupContext::default())?;
        let reads_network = seat.process == 0 && seat.worker == 0;
        let topics = [TopicName::NbRequests, TopicName::SbResponses].map(|t| settings.topic(t));
        consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
        let network = if reads_network {
            Some(network_reader(settings, network_from)?)
        } else {
            None
        };
        Ok(KafkaInbound {
            consumer,
            topics,
            network,
            unhandled: VecDeque::new(),
            producer,
            errors: settings.topic(TopicName::Errors),
        })
    }
}

/// A consumer assigned every partition of `sb.events` from `from` (the beginning where it
/// does not say). It never stores offsets, so its group (which it never joins) commits
/// nothing.
fn network_reader(settings: &KafkaSettings, from: &EndOffsets) -> Result<BaseConsumer, KafkaError> {
    let reader: BaseConsumer = settings
        .consumer_config(&format!("{TOPOLOGY_GROUP}-network"))
        .create()?;
    let topic = settings.topic(TopicName::SbEvents);
    let metadata = reader.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let offset = from
            .get(&partition.id())
            .map_or(Offset::Beginning, |&end| Offset::Offset(end));
        assignment.add_partition_offset(&topic, partition.id(), offset)?;
    }
    reader.assign(&assignment)?;
    Ok(reader)
}

impl KafkaInbound {
    /// How many partitions the group has assigned to this consumer now (it changes with
    /// rebalances).
    pub fn assigned_partitions(&self) -> Arc<AtomicUsize> {
        self.consumer.context().assigned.clone()
    }

    /// Waits, up to `limit`, until the group has shared out every partition of the inbound
    /// topics among `inbounds` (this process's workers; in a cluster, at least one partition
    /// each); false if it has not. After a crash the dead members hold their partitions
    /// until their session expires: a restarted topology waits for that before it re-sends
    /// what was in flight, or it would not hear the switches answer. A message that arrives
    /// meanwhile is put back, to be read again when the topology runs.
    pub fn wait_for_partitions(
        inbounds: &[&KafkaInbound],
        whole_group: bool,
        limit: Duration,
    ) -> bool {
        let Some(first) = inbounds.first() else {
            return true;
        };
        let expected = if whole_group {
            first.partition_count()
        } else {
            inbounds.len()
        };
        let start = std::time::Instant::now();
        let slice = Duration::from_millis(50);
        while start.elapsed() < limit {
            let assigned: usize = inbounds
                .iter()
                .map(|inbound| inbound.consumer.assignment().map_or(0, |a| a.count()))
                .sum();
            if assigned >= expected.max(1) {
                return true;
            }
            for inbound in inbounds {
                inbound.put_back(inbound.consumer.poll(slice));
            }
        }
        false
    }

    /// How many partitions the group's topics have.
    fn partition_count(&self) -> usize {
        self.topics
            .iter()
            .filter_map(|topic| {
                self.consumer
                    .fetch_metadata(Some(topic), METADATA_TIMEOUT)
                    .ok()
            })
            .map(|m| {
                m.topics()
                    .iter()
                    .map(|t| t.partitions().len())
                    .sum::<usize>()
            })
            .sum()
    }

    fn put_back(&self, polled: Option<rdkafka::error::KafkaResult<BorrowedMessage<'_>>>) {
        let Some(Ok(message)) = polled else {
            return;
        };
        let (topic, partition, offset) = (
            message.topic().to_string(),
            message.partition(),
            message.offset(),
        );
        drop(message);
        if let Err(error) =
            self.consumer
                .seek(&topic, partition, Offset::Offset(offset), METADATA_TIMEOUT)
        {
            tracing::warn!(%topic, partition, offset, %error, "could not put a message back");
        }
    }

    /// Network events first: a request in the same batch then sees the network they leave.
    fn poll_network(&mut self, max: usize, out: &mut dyn FnMut(Inbound)) -> usize {
        let Some(reader) = &self.network else {
            return 0;
        };
        let mut taken = 0;
        while taken < max {
            let Some(result) = reader.poll(Duration::ZERO) else {
                break;
            };
            let Some(message) = received(result) else {
                continue;
            };
            let now = now_ms();
            if let Some(event) = decode_or_dead_letter(&message, &self.producer, &self.errors, now)
            {
                out(Inbound::SbEvent(event));
                taken += 1;
            }
        }
        taken
    }
}

fn received(
    result: rdkafka::error::KafkaResult<BorrowedMessage<'_>>,
) -> Option<BorrowedMessage<'_>> {
    result
        .map_err(|error| tracing::warn!(%error, "topology consumer error"))
        .ok()
}

impl InboundSource for KafkaInbound {
    fn set_waker(&mut self, waker: Waker) {
        if let Some(reader) = &mut self.network {
            let waker = waker.clone();
            reader.set_nonempty_callback(move || waker());
        }
        self.consumer.set_nonempty_callback(move || waker());
    }

    fn poll(&mut self, time: u64, max: usize, out: &mut dyn FnMut(Inbound)) -> usize {
        let mut taken = self.poll_network(max, out);
        while taken < max {
            let Some(result) = self.consumer.poll(Duration::ZERO) else {
                break;
            };
            let Some(message) = received(result) else {
                continue;
            };
            let now = now_ms();
            let Some(topic) = self.topics.iter().position(|t| t == message.topic()) else {
                continue;
            };
            self.unhandled.push_back(Taken {
                time,
                topic,
                partition: message.partition(),
                offset: message.offset(),
            });
            let (producer, errors) = (&self.producer, &self.errors);
            let inbound = if topic == NB_REQUESTS {
                decode_or_dead_letter(&message, producer, errors, now).map(Inbound::NbRequest)
            } else {
                decode_or_dead_letter(&message, producer, errors, now).map(Inbound::SbResponse)
            };
            if let Some(inbound) = inbound {
                out(inbound);
                taken += 1;
            }
        }
        taken
    }

    fn handled_before(&mut self, time: u64) {
        // Outputs handed to the producer may still be in flight: wait until none is.
        if self.producer.in_flight() > 0 {
            return;
        }
        while self
            .unhandled
            .front()
            .is_some_and(|taken| taken.time < time)
        {
            let Some(taken) = self.unhandled.pop_front() else {
                break;
            };
            let topic = &self.topics[taken.topic];
            if let Err(error) = self
                .consumer
                .store_offset(topic, taken.partition, taken.offset)
            {
                // A partition revoked by a rebalance refuses offsets: its new owner reads these
                // messages again, which at-least-once allows.
                tracing::debug!(%topic, partition = taken.partition, %error, "offset not stored");
            }
        }
    }

    fn has_unhandled(&self) -> bool {
        !self.unhandled.is_empty()
    }

    fn keepalive(&self) -> Option<Duration> {
        Some(KEEPALIVE)
    }
}
