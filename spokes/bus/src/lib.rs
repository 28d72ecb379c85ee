//! The transport contract and the in-process bus.
//!
//! - [`Publish`] and [`InboundSource`]: what the topology and the other parts need of a
//!   transport; `hubspoke-kafka` implements them over Kafka, this crate in process.
//! - [`InProcessBus`]: one typed topic per bus topic (see `ARCHITECTURE.md`), many
//!   publishers, competing consumers (like one Kafka consumer group), and a wake-up hook so a
//!   timely source is activated when a message arrives instead of polling.
//! - [`clock`]: the wall clock every envelope is stamped with.
//! - [`metrics`]: counters and gauges, rendered for `/metrics`.
//! - [`flow_log`]: the durable log of flow events, with group commit and its embedded (redb)
//!   implementation.

pub mod clock;
pub mod flow_log;
pub mod metrics;

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use hubspoke_fsm::{
    Envelope, FlowEvent, NbRequest, NbResponse, NetworkState, SbCommand, SbEvent, SbResponse,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Called after every publish on a topic.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Something a message can be published to: an in-process [`Topic`], or a Kafka producer.
pub trait Publish<T>: Send + Sync {
    fn publish(&self, message: T);
}

/// Where a southbound (the simulator, the OpenFlow speaker) reports the network: `sb.events`.
pub type NetworkEvents = Arc<dyn Publish<Envelope<SbEvent>>>;

/// Publishes network events, keyed by the switch they are about.
pub fn publish_network_events(to: &NetworkEvents, events: Vec<SbEvent>, correlation_id: &str) {
    for event in events {
        to.publish(Envelope::new(
            correlation_id,
            event.switch_id().to_string(),
            clock::now_ms(),
            event,
        ));
    }
}

/// One topic: an unbounded channel plus the wakers of its consumers.
pub struct Topic<T> {
    sender: Sender<T>,
    receiver: Receiver<T>,
    wakers: Mutex<Vec<Waker>>,
}

impl<T> Default for Topic<T> {
    fn default() -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded();
        Topic {
            sender,
            receiver,
            wakers: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Send> Topic<T> {
    /// A consumer's end. Consumers of one topic compete: each message goes to one of them.
    pub fn receiver(&self) -> Receiver<T> {
        self.receiver.clone()
    }

    /// Runs `waker` after every publish, e.g. to activate the timely operator that reads here.
    pub fn on_publish(&self, waker: Waker) {
        self.wakers.lock().push(waker);
    }
}

impl<T: Send> Publish<T> for Topic<T> {
    fn publish(&self, message: T) {
        // The topic holds a receiver itself, so the channel never disconnects.
        let _ = self.sender.send(message);
        for waker in self.wakers.lock().iter() {
            waker();
        }
    }
}

/// What the topology reads from the bus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inbound {
    NbRequest(Envelope<NbRequest>),
    SbResponse(Envelope<SbResponse>),
    SbEvent(Envelope<SbEvent>),
}

/// Where one timely worker reads its input: each worker has its own, so with Kafka each is a
/// consumer of one group and the partitions are shared out among all workers of all processes.
pub trait InboundSource {
    /// Arranges for `waker` to run (from any thread) whenever new input may be waiting.
    fn set_waker(&mut self, waker: Waker);
    /// Hands up to `max` waiting messages to `out`, to be stamped with logical `time`;
    /// returns how many.
    fn poll(&mut self, time: u64, max: usize, out: &mut dyn FnMut(Inbound)) -> usize;
    /// Everything taken at a time before `time` has been handled: what it caused has left the
    /// topology. A durable source may now commit it (at-least-once: never earlier).
    fn handled_before(&mut self, time: u64) {
        let _ = time;
    }
    /// Whether something taken is not yet known to be handled (the source then keeps
    /// checking, so it is committed without waiting for more input).
    fn has_unhandled(&self) -> bool {
        false
    }
    /// How long the source may stay unpolled while idle (Kafka consumers must poll now and
    /// then to stay in their group); `None`: forever.
    fn keepalive(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The topology's input from the in-process bus. Workers share the channels.
pub struct ChannelInbound {
    bus: Arc<InProcessBus>,
    nb_requests: Receiver<Envelope<NbRequest>>,
    sb_responses: Receiver<Envelope<SbResponse>>,
    sb_events: Receiver<Envelope<SbEvent>>,
}

impl ChannelInbound {
    pub fn new(bus: Arc<InProcessBus>) -> Self {
        ChannelInbound {
            nb_requests: bus.nb_requests.receiver(),
            sb_responses: bus.sb_responses.receiver(),
            sb_events: bus.sb_events.receiver(),
            bus,
        }
    }
}

impl InboundSource for ChannelInbound {
    fn set_waker(&mut self, waker: Waker) {
        self.bus.nb_requests.on_publish(waker.clone());
        self.bus.sb_responses.on_publish(waker.clone());
        self.bus.sb_events.on_publish(waker);
    }

    fn poll(&mut self, _time: u64, max: usize, out: &mut dyn FnMut(Inbound)) -> usize {
        // Network events first: a request in the same batch then sees the network they leave.
        let events = self.sb_events.try_iter().take(max).map(Inbound::SbEvent);
        let requests = self
            .nb_requests
            .try_iter()
            .take(max)
            .map(Inbound::NbRequest);
        let responses = self
            .sb_responses
            .try_iter()
            .take(max)
            .map(Inbound::SbResponse);
        let mut taken = 0;
        for message in events.chain(requests).chain(responses).take(max) {
            out(message);
            taken += 1;
        }
        taken
    }
}

/// Every bus topic, in process.
#[derive(Default)]
pub struct InProcessBus {
    pub nb_requests: Arc<Topic<Envelope<NbRequest>>>,
    pub nb_responses: Arc<Topic<Envelope<NbResponse>>>,
    pub sb_commands: Arc<Topic<Envelope<SbCommand>>>,
    pub sb_responses: Arc<Topic<Envelope<SbResponse>>>,
    pub sb_events: Arc<Topic<Envelope<SbEvent>>>,
    pub flow_events: Arc<Topic<Envelope<FlowEvent>>>,
    pub network_states: Arc<Topic<Envelope<NetworkState>>>,
}

impl InProcessBus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn publish_delivers_once_and_wakes_consumers() {
        let topic: Topic<u32> = Topic::default();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = woken.clone();
        topic.on_publish(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        let (a, b) = (topic.receiver(), topic.receiver());
        topic.publish(1);
        topic.publish(2);
        let mut got: Vec<u32> = a.try_iter().chain(b.try_iter()).collect();
        got.sort();
        assert_eq!(got, vec![1, 2]);
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }
}
