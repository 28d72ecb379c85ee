//! The speaker: its threads, the switches connected now, and the discovery round.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hubspoke_bus::clock::now_ms;
use hubspoke_bus::{publish_network_events, NetworkEvents, Publish};
use hubspoke_fsm::{Envelope, SbCommand, SbErrorCode, SbEvent, SbOutcome, SbResponse, SwitchId};
use hubspoke_of_speaker::discovery::{Discovery, DiscoverySettings};
use hubspoke_of_speaker::pings::Pings;
use hubspoke_of_speaker::session::SessionSettings;
use parking_lot::Mutex;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tracing::{info, warn};

use crate::connection::{serve_connection, ToSwitch};
use crate::metrics::SpeakerMetrics;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Where switches connect.
    pub listen: SocketAddr,
    pub session: SessionSettings,
    /// How often every port of every switch sends a discovery probe.
    pub discovery_interval: Duration,
    pub discovery: DiscoverySettings,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6653)),
            session: SessionSettings::default(),
            discovery_interval: Duration::from_secs(1),
            // Three rounds missed, and a little more: one late probe is not a failure.
            discovery: DiscoverySettings {
                timeout_ms: 3_500,
                default_capacity_kbps: hubspoke_fsm::network::DEFAULT_LINK_CAPACITY_KBPS,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("listening for switches on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the speaker's threads: {0}")]
    Start(#[source] std::io::Error),
}

/// A switch connected now: which connection, and its inbox.
struct Link {
    connection: u64,
    inbox: UnboundedSender<ToSwitch>,
}

/// What the connections, the hand-over and the discovery round share.
pub(crate) struct Shared {
    pub(crate) config: SpeakerConfig,
    /// Tells this speaker's probes from a predecessor's still in flight.
    pub(crate) instance: u64,
    started: Instant,
    responses: Arc<dyn Publish<Envelope<SbResponse>>>,
    events: NetworkEvents,
    switches: Mutex<HashMap<SwitchId, Link>>,
    pub(crate) discovery: Mutex<Discovery>,
    pub(crate) pings: Mutex<Pings>,
    pub(crate) metrics: Arc<SpeakerMetrics>,
}

/// A ping not caught by then is answered lost (the topology gave up on it already: a ping
/// waits at most a minute there).
const PING_EXPIRY_NS: u64 = 60_000_000_000;

impl Shared {
    /// Milliseconds since the speaker started: the sessions' and discovery's clock.
    pub(crate) fn clock_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds since the speaker started: the pings' clock.
    pub(crate) fn clock_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn answer(&self, command: &Envelope<SbCommand>, outcome: SbOutcome) {
        let sent = &command.payload;
        tracing::debug!(correlation_id = %command.correlation_id, command_id = %sent.command_id,
            attempt = sent.attempt, switch = %sent.segment.switch_id, ?outcome, "speaker answers");
        self.metrics.answered(&outcome);
        self.responses.publish(command.answered(now_ms(), outcome));
    }

    pub(crate) fn unavailable(&self, command: &Envelope<SbCommand>, why: &str) {
        let outcome = SbOutcome::Error {
            code: SbErrorCode::SwitchUnavailable,
            message: format!("switch {}: {why}", command.payload.segment.switch_id),
        };
        self.answer(command, outcome);
    }

    pub(crate) fn publish(&self, events: Vec<SbEvent>, why: &str) {
        for event in &events {
            info!(?event, why, "network event");
            self.metrics.published(event);
        }
        publish_network_events(&self.events, events, why);
    }

    /// The switch finished its handshake on `connection`: it takes commands there from now
    /// on. An older connection of the same switch is told to close.
    pub(crate) fn register(
        &self,
        switch_id: SwitchId,
        connection: u64,
        inbox: UnboundedSender<ToSwitch>,
    ) {
        let old = self
            .switches
            .lock()
            .insert(switch_id, Link { connection, inbox });
        match old {
            Some(old) => {
                let _ = old.inbox.send(ToSwitch::Close(
                    "the switch connected again on another connection".into(),
                ));
            }
            None => self.metrics.switches_connected.add(1),
        }
    }

    /// The connection ended; whether it was the switch's current one (a replaced connection
    /// ending changes nothing).
    pub(crate) fn unregister(&self, switch_id: SwitchId, connection: u64) -> bool {
        let mut switches = self.switches.lock();
        match switches.get(&switch_id) {
            Some(link) if link.connection == connection => {
                switches.remove(&switch_id);
                self.metrics.switches_connected.add(-1);
                true
            }
            _ => false,
        }
    }

    fn send_to(&self, switch_id: SwitchId, message: ToSwitch) -> Result<(), ToSwitch> {
        match self.switches.lock().get(&switch_id) {
            Some(link) => link.inbox.send(message).map_err(|e| e.0),
            None => Err(message),
        }
    }
}

/// The running speaker. Dropping it closes every switch's connection and stops its threads.
pub struct OpenFlowSpeaker {
    local_addr: SocketAddr,
    metrics: Arc<SpeakerMetrics>,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl OpenFlowSpeaker {
    /// Listens for switches on `config.listen` (a port of 0 picks a free one: see
    /// [`local_addr`](Self::local_addr)) and serves `commands` until stopped.
    pub fn start(
        config: SpeakerConfig,
        commands: Receiver<Envelope<SbCommand>>,
        responses: Arc<dyn Publish<Envelope<SbResponse>>>,
        events: NetworkEvents,
    ) -> Result<OpenFlowSpeaker, SpeakerError> {
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| SpeakerError::Listen {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(SpeakerError::Start)?;
        listener
            .set_nonblocking(true)
            .map_err(SpeakerError::Start)?;
        let metrics = Arc::new(SpeakerMetrics::default());
        let shared = Arc::new(Shared {
            config,
            instance: instance_id(),
            started: Instant::now(),
            responses,
            events,
            switches: Mutex::new(HashMap::new()),
            discovery: Mutex::new(Discovery::new(config.discovery)),
            pings: Mutex::new(Pings::default()),
            metrics: metrics.clone(),
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SpeakerError::Start)?;
        let io = {
            let shared = shared.clone();
            let stopped = stopped.clone();
            std::thread::Builder::new()
                .name("of-speaker".into())
                .spawn(move || runtime.block_on(serve(shared, listener, stopped)))
                .map_err(SpeakerError::Start)?
        };
        let hand_over = std::thread::Builder::new()
            .name("of-speaker-commands".into())
            .spawn(move || hand_over(&shared, &commands, &stopped))
            .map_err(SpeakerError::Start)?;
        info!(%local_addr, "OpenFlow speaker listening for switches");
        Ok(OpenFlowSpeaker {
            local_addr,
            metrics,
            stop: Some(stop),
            threads: vec![io, hand_over],
        })
    }

    /// Where switches connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics(&self) -> Arc<SpeakerMetrics> {
        self.metrics.clone()
    }

    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        // Dropping the sender disconnects the stop channel, which wakes both threads.
        self.stop.take();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("an OpenFlow speaker thread panicked");
            }
        }
    }
}

impl Drop for OpenFlowSpeaker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Not a secret, just different from the last run's: the wall clock and the process id.
fn instance_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Each command to its switch's connection, or answered at once when there is none.
fn hand_over(shared: &Shared, commands: &Receiver<Envelope<SbCommand>>, stopped: &Receiver<()>) {
    loop {
        crossbeam_channel::select! {
            recv(commands) -> command => match command {
                Ok(command) => {
                    let switch_id = command.payload.segment.switch_id;
                    match shared.send_to(switch_id, ToSwitch::Command(Box::new(command))) {
                        Ok(()) => shared.metrics.commands.inc(),
                        Err(ToSwitch::Command(command)) => {
                            shared.unavailable(&command, "not connected to the speaker");
                        }
                        Err(_) => {}
                    }
                }
                Err(_) => return,
            },
            recv(stopped) -> _ => return,
        }
    }
}

/// The listener and the discovery round, until the speaker stops.
async fn serve(shared: Arc<Shared>, listener: std::net::TcpListener, stopped: Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "the speaker cannot listen");
            return;
        }
    };
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The stop channel is crossbeam's: a blocking thread waits on it for the runtime.
    std::thread::spawn(move || {
        let _ = stopped.recv();
        let _ = stop_tx.send(());
    });
    let mut round = tokio::time::interval(shared.config.discovery_interval);
    round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_connection = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    next_connection += 1;
                    let (inbox, letters) = unbounded_channel();
                    tokio::spawn(serve_connection(shared.clone(), next_connection, peer, socket, inbox, letters));
                }
                Err(e) => warn!(error = %e, "accepting a switch's connection failed"),
            },
            _ = round.tick() => discovery_round(&shared),
            _ = &mut stop_rx => break,
        }
    }
    info!("OpenFlow speaker stopping: closing every switch's connection");
}

/// ISLs whose probes stopped go down; every connected switch sends the next probes; pings
/// long lost are answered.
fn discovery_round(shared: &Shared) {
    let lost = shared
        .pings
        .lock()
        .expire(shared.clock_ns(), PING_EXPIRY_NS);
    for (command, outcome) in lost {
        shared.answer(&command, outcome);
    }
    let stale = shared.discovery.lock().tick(shared.clock_ms());
    if !stale.is_empty() {
        warn!(
            count = stale.len(),
            "ISLs down: their probes stopped arriving"
        );
        shared.publish(stale, "discovery");
    }
    let switches: Vec<UnboundedSender<ToSwitch>> = shared
        .switches
        .lock()
        .values()
        .map(|link| link.inbox.clone())
        .collect();
    for inbox in switches {
        let _ = inbox.send(ToSwitch::Probe);
    }
}
