//! One switch's connection: its socket, its [`Session`], and its inbox (commands, the
//! discovery round's "send your probes", and "close").

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hubspoke_fsm::{Envelope, SbAction, SbCommand, SwitchId};
use hubspoke_of_speaker::probe::{self, Probe, Stamped};
use hubspoke_of_speaker::session::{Output, PortState, Session};
use hubspoke_openflow::{encode_into, Frame, FrameReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tracing::{info, warn, Instrument};

use crate::speaker::Shared;

pub(crate) enum ToSwitch {
    Command(Box<Envelope<SbCommand>>),
    /// Send a discovery probe out of every port that is up.
    Probe,
    Close(String),
}

/// Bytes for a switch that may wait unsent: a switch that lets more pile up does not read.
const MAX_UNSENT: usize = 16 * 1024 * 1024;

/// What a connection is doing, for the loop.
enum Next {
    Go,
    Close(String),
}

struct Connection {
    shared: Arc<Shared>,
    id: u64,
    session: Session,
    inbox: UnboundedSender<ToSwitch>,
    /// Frames to write, encoded, once the current input is handled.
    outgoing: Vec<u8>,
    /// Set once the switch finished its handshake and took commands here.
    registered: Option<SwitchId>,
}

pub(crate) async fn serve_connection(
    shared: Arc<Shared>,
    id: u64,
    peer: SocketAddr,
    socket: TcpStream,
    inbox: UnboundedSender<ToSwitch>,
    letters: UnboundedReceiver<ToSwitch>,
) {
    let span = tracing::info_span!("switch_connection", %peer, connection = id, switch = tracing::field::Empty);
    run(shared, id, socket, inbox, letters)
        .instrument(span)
        .await;
}

async fn run(
    shared: Arc<Shared>,
    id: u64,
    socket: TcpStream,
    inbox: UnboundedSender<ToSwitch>,
    mut letters: UnboundedReceiver<ToSwitch>,
) {
    // Commands are small and answered one by one: no waiting to fill a segment.
    let _ = socket.set_nodelay(true);
    let (session, opening) = Session::start(shared.config.session, shared.clock_ms());
    let mut connection = Connection {
        shared,
        id,
        session,
        inbox,
        outgoing: Vec::new(),
        registered: None,
    };
    let mut next = connection.act(opening);
    let mut reader = FrameReader::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut ticks = tokio::time::interval(Duration::from_millis(
        connection.shared.config.session.tick_interval_ms(),
    ));
    // Writing waits with reading, the inbox and the ticks: a switch that stops reading
    // must not stop its connection from noticing (its silence, its commands' timeouts).
    let (mut from_switch, mut to_switch) = socket.into_split();
    // A ring: what a write took goes from the front without moving the rest.
    let mut unsent: VecDeque<u8> = VecDeque::new();
    while let Next::Go = next {
        unsent.extend(connection.outgoing.drain(..));
        if unsent.len() > MAX_UNSENT {
            next = Next::Close(format!(
                "the switch does not read what it is sent ({} bytes wait)",
                unsent.len()
            ));
            break;
        }
        next = tokio::select! {
            written = to_switch.write(unsent.as_slices().0), if !unsent.is_empty() => match written {
                Ok(n) => {
                    unsent.drain(..n);
                    Next::Go
                }
                Err(e) => Next::Close(format!("writing to the switch failed: {e}")),
            },
            read = from_switch.read(&mut buffer) => match read {
                Ok(0) => Next::Close("the switch closed the connection".into()),
                Ok(n) => {
                    reader.push(&buffer[..n]);
                    connection.frames(&mut reader)
                }
                Err(e) => Next::Close(format!("reading from the switch failed: {e}")),
            },
            letter = letters.recv() => match letter {
                Some(letter) => connection.letter(letter),
                None => Next::Close("the speaker is stopping".into()),
            },
            _ = ticks.tick() => {
                let now = connection.shared.clock_ms();
                let out = connection.session.tick(now);
                connection.act(out)
            }
        };
    }
    let Next::Close(reason) = next else {
        return;
    };
    connection.close(reason, &mut letters);
    let _ = to_switch.shutdown().await;
}

impl Connection {
    /// Every whole frame read so far.
    fn frames(&mut self, reader: &mut FrameReader) -> Next {
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    let out = self.session.receive(self.shared.clock_ms(), frame);
                    if let Next::Close(reason) = self.act(out) {
                        return Next::Close(reason);
                    }
                }
                Ok(None) => return Next::Go,
                Err(e) if e.is_fatal() => {
                    return Next::Close(format!("the switch sent what is not OpenFlow 1.3: {e}"));
                }
                Err(e) => {
                    self.shared.metrics.messages_ignored.inc();
                    warn!(error = %e, "a message from the switch does not decode; skipped");
                }
            }
        }
    }

    fn letter(&mut self, letter: ToSwitch) -> Next {
        match letter {
            ToSwitch::Command(command) if command.payload.action == SbAction::Ping => {
                self.ping(*command);
                Next::Go
            }
            ToSwitch::Command(command) => {
                let out = self.session.command(self.shared.clock_ms(), *command);
                self.act(out)
            }
            ToSwitch::Probe => {
                self.send_probes();
                Next::Go
            }
            ToSwitch::Close(reason) => Next::Close(reason),
        }
    }

    /// Sends a flow's ping into this switch, its ingress; the exit switch's connection
    /// catches it.
    fn ping(&mut self, command: Envelope<SbCommand>) {
        if !self.session.is_ready() {
            self.shared
                .unavailable(&command, "its handshake is not done");
            return;
        }
        let now = self.shared.clock_ns();
        let sent = self
            .shared
            .pings
            .lock()
            .send(self.shared.instance, now, command);
        match sent {
            Ok(packet) => self.write(&Frame::new(0, packet)),
            Err(refused) => {
                let (command, outcome) = *refused;
                self.shared.answer(&command, outcome);
            }
        }
    }

    fn send_probes(&mut self) {
        let Some(switch_id) = self.registered else {
            return;
        };
        let ports: Vec<(u32, u32)> = self.session.ports_up().collect();
        for (port, speed_kbps) in ports {
            let stamped = Stamped {
                instance: self.shared.instance,
                probe: Probe::Discovery {
                    switch_id,
                    port,
                    speed_kbps,
                },
            };
            self.write(&Frame::new(0, probe::send_out(port, stamped.frame(0))));
        }
    }

    fn write(&mut self, frame: &Frame) {
        if let Err(e) = encode_into(frame, &mut self.outgoing) {
            // Only a bug makes a message too long for its length field.
            tracing::error!(error = %e, ?frame, "a message to the switch does not encode; not sent");
        }
    }

    /// Carries out what the session asks for.
    fn act(&mut self, outputs: Vec<Output>) -> Next {
        for output in outputs {
            match output {
                Output::Send(frame) => self.write(&frame),
                Output::Connected { switch_id, ports } => self.connected(switch_id, &ports),
                Output::PortChanged { port, state } => self.port_changed(port, state),
                Output::Answer { command, outcome } => self.shared.answer(&command, outcome),
                Output::PacketIn { in_port, data } => self.packet_in(in_port, &data),
                Output::Ignored(reason) => {
                    self.shared.metrics.messages_ignored.inc();
                    warn!(reason, "ignored what the switch sent");
                }
                Output::Close(reason) => return Next::Close(reason),
            }
        }
        Next::Go
    }

    fn connected(&mut self, switch_id: SwitchId, ports: &BTreeMap<u32, PortState>) {
        tracing::Span::current().record("switch", tracing::field::display(switch_id));
        info!(ports = ports.len(), "switch connected");
        self.shared.register(switch_id, self.id, self.inbox.clone());
        self.registered = Some(switch_id);
        let up = ports
            .iter()
            .filter(|(_, state)| state.up)
            .map(|(port, state)| (*port, state.speed_kbps))
            .collect();
        let numbers: Vec<u32> = ports.keys().copied().collect();
        let added = self
            .shared
            .discovery
            .lock()
            .switch_connected(switch_id, &numbers, up);
        self.shared.publish(vec![added], "switch connected");
        // Its links are found by the probes it sends now and its neighbours' next round.
        self.send_probes();
    }

    fn port_changed(&mut self, port: u32, state: Option<PortState>) {
        let Some(switch_id) = self.registered else {
            return;
        };
        info!(port, ?state, "port changed");
        let mut discovery = self.shared.discovery.lock();
        match state {
            Some(state) if state.up => {
                discovery.port_up(switch_id, port, state.speed_kbps);
            }
            _ => {
                let down = discovery.port_down(switch_id, port);
                drop(discovery);
                self.shared.publish(down, "port down");
            }
        }
    }

    fn packet_in(&mut self, in_port: u32, data: &[u8]) {
        let Some(switch_id) = self.registered else {
            return;
        };
        let Some(stamped) = Stamped::parse(data) else {
            tracing::debug!(
                in_port,
                len = data.len(),
                "a packet that is not a probe; dropped"
            );
            return;
        };
        if stamped.instance != self.shared.instance {
            return;
        }
        match stamped.probe {
            Probe::Discovery {
                switch_id: from,
                port,
                speed_kbps,
            } => {
                let now = self.shared.clock_ms();
                let up = self.shared.discovery.lock().probe_arrived(
                    now,
                    (from, port, speed_kbps),
                    (switch_id, in_port),
                );
                if let Some(up) = up {
                    self.shared.publish(vec![up], "probe arrived");
                }
            }
            Probe::Ping { id, .. } => {
                let now = self.shared.clock_ns();
                let caught = self.shared.pings.lock().caught(now, id, switch_id, in_port);
                match caught {
                    Some((command, outcome)) => self.shared.answer(&command, outcome),
                    None => tracing::debug!(in_port, id, "a ping answered already"),
                }
            }
        }
    }

    /// The connection ends: what was in flight and what waits in the inbox is answered
    /// `SWITCH_UNAVAILABLE`, and a switch that was connected here is gone with its ISLs.
    fn close(&mut self, reason: String, letters: &mut UnboundedReceiver<ToSwitch>) {
        self.shared.metrics.connections_closed.inc();
        let out = self.session.close(reason.clone());
        for output in out {
            if let Output::Answer { command, outcome } = output {
                self.shared.answer(&command, outcome);
            }
        }
        letters.close();
        while let Ok(letter) = letters.try_recv() {
            if let ToSwitch::Command(command) = letter {
                self.shared.unavailable(&command, &reason);
            }
        }
        match self.registered {
            Some(switch_id) if self.shared.unregister(switch_id, self.id) => {
                warn!(reason, "switch disconnected");
                let gone = self.shared.discovery.lock().switch_disconnected(switch_id);
                self.shared.publish(gone, "switch disconnected");
            }
            _ => info!(reason, "connection closed"),
        }
    }
}
