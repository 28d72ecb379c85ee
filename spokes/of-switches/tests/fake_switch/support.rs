//! The harness: a speaker on a free port with the in-process bus around it, and fake switches
//! that connect to it over TCP and speak OpenFlow 1.3 as the test scripts them.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use hubspoke_bus::{InProcessBus, Publish};
use hubspoke_fsm::segments::{FlowSegment, SegmentKind, FORWARD_COOKIE_FLAG};
use hubspoke_fsm::{
    Envelope, SbAction, SbCommand, SbErrorCode, SbEvent, SbOutcome, SbResponse, SwitchId,
};
use hubspoke_of_switches::{OpenFlowSpeaker, SpeakerConfig};
use hubspoke_openflow::consts::{OFPMPF_REPLY_MORE, OFPPS_LIVE, OFPP_MAX};
use hubspoke_openflow::{
    encode, Action, Frame, FrameReader, Message, MultipartReply, MultipartReplyBody,
    MultipartRequestBody, Port, PortName, SwitchFeatures,
};

/// How long anything the test expects may take to come. Only a failing test waits this long.
pub const WAIT: Duration = Duration::from_secs(1);

/// A speaker listening on a free port of 127.0.0.1, fed and observed through the bus.
pub struct Harness {
    bus: Arc<InProcessBus>,
    /// Taken on drop.
    speaker: Option<OpenFlowSpeaker>,
    responses: Receiver<Envelope<SbResponse>>,
    events: Receiver<Envelope<SbEvent>>,
}

impl Harness {
    pub fn start() -> Harness {
        Harness::with(|_| {})
    }

    /// A speaker whose settings `tweak` changes. Unless changed, echoes are not due within a
    /// test, and the discovery round runs once, at start, before any switch connects: a switch
    /// sends probes only when it connects.
    pub fn with(tweak: impl FnOnce(&mut SpeakerConfig)) -> Harness {
        let mut config = SpeakerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            discovery_interval: Duration::from_secs(3_600),
            ..SpeakerConfig::default()
        };
        tweak(&mut config);
        let bus = InProcessBus::new();
        let speaker = OpenFlowSpeaker::start(
            config,
            bus.sb_commands.receiver(),
            bus.sb_responses.clone(),
            bus.sb_events.clone(),
        )
        .expect("the speaker starts");
        Harness {
            responses: bus.sb_responses.receiver(),
            events: bus.sb_events.receiver(),
            bus,
            speaker: Some(speaker),
        }
    }

    /// A fake switch through its handshake, once the speaker has published its
    /// `switch_added` with its highest port number and, when they have gaps, its port
    /// numbers (reserved ports, as LOCAL, are none).
    pub fn connect(&self, dpid: u64, ports: &[Port]) -> FakeSwitch {
        let speaker = self.speaker.as_ref().expect("the speaker runs");
        let switch = FakeSwitch::connect(speaker.local_addr(), dpid, ports);
        let mut numbers: Vec<u32> = ports
            .iter()
            .map(|p| p.port_no)
            .filter(|&n| n <= OFPP_MAX)
            .collect();
        numbers.sort_unstable();
        let highest = numbers.last().copied().unwrap_or(0);
        let port_numbers = if numbers.iter().copied().eq(1..=highest) {
            Vec::new()
        } else {
            numbers
        };
        assert_eq!(
            self.event(),
            SbEvent::SwitchAdded {
                switch_id: SwitchId(dpid),
                ports: highest,
                port_numbers,
            }
        );
        switch
    }

    pub fn metrics(&self) -> std::sync::Arc<hubspoke_of_switches::SpeakerMetrics> {
        self.speaker.as_ref().expect("the speaker runs").metrics()
    }

    pub fn send(&self, command: &Envelope<SbCommand>) {
        self.bus.sb_commands.publish(command.clone());
    }

    /// Sends an install to `switch`, which gets its messages (those of the pure translation,
    /// in order): returns them, unanswered.
    pub fn send_install(
        &self,
        switch: &mut FakeSwitch,
        command: &Envelope<SbCommand>,
    ) -> Vec<Frame> {
        self.send(command);
        let frames = switch.command_frames();
        let messages: Vec<&Message> = frames.iter().map(|f| &f.message).collect();
        let expected =
            hubspoke_of_speaker::install(&command.payload.segment).expect("the segment translates");
        assert_eq!(messages, expected.iter().collect::<Vec<_>>());
        frames
    }

    /// An install on ports 1 and 2 of `switch`, sent to it and not answered yet.
    pub fn install_in_flight(&self, switch: &mut FakeSwitch, id: &str) -> Envelope<SbCommand> {
        let command = install(id, segment(switch.dpid, 1, 2));
        self.send_install(switch, &command);
        command
    }

    /// An install that `switch` carries out: its barrier answered, it succeeds.
    pub fn install_succeeds(&self, switch: &mut FakeSwitch, command: &Envelope<SbCommand>) {
        let frames = self.send_install(switch, command);
        let barrier = frames.last().expect("a barrier").xid;
        switch.send(barrier, Message::BarrierReply);
        self.expect_answer(command, &SbOutcome::Success);
    }

    /// The next answer on `sb.responses`, which must be `command`'s (its id, attempt and
    /// switch): its outcome.
    pub fn answer_to(&self, command: &Envelope<SbCommand>) -> SbOutcome {
        let response = self
            .responses
            .recv_timeout(WAIT)
            .expect("an answer on sb.responses")
            .payload;
        let sent = &command.payload;
        assert_eq!(
            (&response.command_id, response.attempt, response.switch_id),
            (&sent.command_id, sent.attempt, sent.segment.switch_id),
            "the answer to another command: {response:?}"
        );
        response.outcome
    }

    pub fn expect_answer(&self, command: &Envelope<SbCommand>, outcome: &SbOutcome) {
        assert_eq!(&self.answer_to(command), outcome);
    }

    /// The next answer is `command`'s, an error with `code`: its message.
    pub fn expect_error(&self, command: &Envelope<SbCommand>, code: SbErrorCode) -> String {
        match self.answer_to(command) {
            SbOutcome::Error { code: got, message } if got == code => message,
            other => panic!("{code} expected, got {other:?}"),
        }
    }

    /// How many answers come before none has for `quiet`; each must be
    /// `SWITCH_UNAVAILABLE`.
    pub fn unavailable_until_quiet(&self, quiet: Duration) -> usize {
        let mut count = 0;
        while let Ok(response) = self.responses.recv_timeout(quiet) {
            assert!(
                matches!(
                    response.payload.outcome,
                    SbOutcome::Error {
                        code: SbErrorCode::SwitchUnavailable,
                        ..
                    }
                ),
                "{response:?}"
            );
            count += 1;
        }
        count
    }

    /// Nothing was answered (so far).
    pub fn no_answer(&self) {
        let stray: Vec<SbResponse> = self.responses.try_iter().map(|e| e.payload).collect();
        assert!(stray.is_empty(), "unexpected answers: {stray:?}");
    }

    /// The next event on `sb.events`.
    pub fn event(&self) -> SbEvent {
        self.events
            .recv_timeout(WAIT)
            .expect("an event on sb.events")
            .payload
    }

    /// The next event is the `switch_removed` of `dpid`.
    pub fn expect_removed(&self, dpid: u64) {
        assert_eq!(
            self.event(),
            SbEvent::SwitchRemoved {
                switch_id: SwitchId(dpid)
            }
        );
    }

    /// No event was published (so far).
    pub fn no_event(&self) {
        let stray: Vec<SbEvent> = self.events.try_iter().map(|e| e.payload).collect();
        assert!(stray.is_empty(), "unexpected events: {stray:?}");
    }
}

impl Drop for Harness {
    /// Stops the speaker, unless the test failed: then it is left to the end of the process,
    /// so that a speaker wedged by the failure cannot hang the test instead of failing it.
    fn drop(&mut self) {
        if let Some(speaker) = self.speaker.take() {
            if std::thread::panicking() {
                std::mem::forget(speaker);
            }
        }
    }
}

/// A switch port that is up, with no speed (as Open vSwitch's dummy ports).
pub fn port(port_no: u32) -> Port {
    Port {
        port_no,
        name: PortName::new(&format!("p{port_no}")),
        state: OFPPS_LIVE,
        ..Port::default()
    }
}

pub fn ports(numbers: &[u32]) -> Vec<Port> {
    numbers.iter().copied().map(port).collect()
}

/// A metered ingress rule from `in_port` to `out_port` of switch `dpid`.
pub fn segment(dpid: u64, in_port: u32, out_port: u32) -> FlowSegment {
    FlowSegment {
        switch_id: SwitchId(dpid),
        kind: SegmentKind::Ingress,
        cookie: FORWARD_COOKIE_FLAG | 7,
        in_port,
        in_vlan: 100,
        out_port,
        out_vlan: 300,
        meter_id: Some(32),
        bandwidth: 10_000,
    }
}

/// An install of `segment`, as the topology's second attempt.
pub fn install(id: &str, segment: FlowSegment) -> Envelope<SbCommand> {
    Envelope::new(
        format!("corr-{id}"),
        "flow-1",
        0,
        SbCommand {
            command_id: id.to_string(),
            attempt: 2,
            action: SbAction::Install,
            segment,
            ping_exit: None,
        },
    )
}

/// What a read from the speaker gave.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    /// The speaker closed the connection (end of stream, or reset).
    Closed,
    /// Nothing within the wait.
    Quiet,
}

/// One switch, scripted by the test: a blocking socket to the speaker.
pub struct FakeSwitch {
    pub dpid: u64,
    stream: TcpStream,
    reader: FrameReader,
    /// Whether it answers the speaker's ECHO_REQUESTs (while the test reads from it).
    pub answers_echo: bool,
}

impl FakeSwitch {
    /// Connects and goes through the handshake: HELLO, FEATURES_REPLY with `dpid`, the
    /// PORT_DESC reply (in two parts when there are two ports or more), and the system rules'
    /// barrier.
    pub fn connect(speaker: SocketAddr, dpid: u64, ports: &[Port]) -> FakeSwitch {
        let stream = TcpStream::connect(speaker).expect("the fake switch connects");
        stream.set_nodelay(true).expect("no delay");
        let mut switch = FakeSwitch {
            dpid,
            stream,
            reader: FrameReader::new(),
            answers_echo: true,
        };
        switch.send(1, Message::Hello);
        assert_eq!(switch.next().message, Message::Hello);
        let features = switch.next();
        assert_eq!(features.message, Message::FeaturesRequest);
        switch.send(
            features.xid,
            Message::FeaturesReply(SwitchFeatures {
                datapath_id: dpid,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0,
            }),
        );
        let request = switch.next();
        assert!(
            matches!(&request.message, Message::MultipartRequest(r) if r.body == MultipartRequestBody::PortDesc),
            "a port description request: {request:?}"
        );
        let (first, rest) = ports.split_at(ports.len() / 2);
        for (flags, part) in [(OFPMPF_REPLY_MORE, first), (0, rest)] {
            if flags == OFPMPF_REPLY_MORE && part.is_empty() {
                continue;
            }
            switch.send(
                request.xid,
                Message::MultipartReply(MultipartReply {
                    flags,
                    body: MultipartReplyBody::PortDesc(part.to_vec()),
                }),
            );
        }
        let rules = switch.command_frames();
        let flow_mods = rules
            .iter()
            .filter(|f| matches!(f.message, Message::FlowMod(_)))
            .count();
        assert_eq!((flow_mods, rules.len()), (2, 3), "{rules:?}");
        let barrier = rules.last().expect("a barrier").xid;
        switch.send(barrier, Message::BarrierReply);
        switch
    }

    pub fn send(&mut self, xid: u32, message: Message) {
        let bytes = encode(&Frame::new(xid, message)).expect("the fake's message encodes");
        self.send_raw(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("the fake switch writes");
    }

    /// The next message from the speaker within `wait`, ECHO_REQUESTs answered and skipped
    /// when the switch answers them.
    pub fn read(&mut self, wait: Duration) -> Read {
        let until = Instant::now() + wait;
        let mut buffer = [0u8; 4096];
        loop {
            let frame = self
                .reader
                .next_frame()
                .expect("the speaker sends OpenFlow 1.3");
            if let Some(frame) = frame {
                match frame.message {
                    Message::EchoRequest(data) if self.answers_echo => {
                        self.send(frame.xid, Message::EchoReply(data));
                        continue;
                    }
                    message => return Read::Frame(Frame::new(frame.xid, message)),
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Read::Quiet;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("a read timeout");
            match self.stream.read(&mut buffer) {
                Ok(0) => return Read::Closed,
                Ok(n) => self.reader.push(&buffer[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Read::Quiet
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Read::Closed,
            }
        }
    }

    /// The next message that is not a discovery probe (PACKET_OUT).
    pub fn next(&mut self) -> Frame {
        loop {
            match self.read(WAIT) {
                Read::Frame(frame) if matches!(frame.message, Message::PacketOut(_)) => {}
                Read::Frame(frame) => return frame,
                other => panic!("switch {}: a message expected, got {other:?}", self.dpid),
            }
        }
    }

    /// A command's messages: the next ones up to and with its BARRIER_REQUEST.
    pub fn command_frames(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next();
            let last = frame.message == Message::BarrierRequest;
            frames.push(frame);
            if last {
                return frames;
            }
        }
    }

    /// The next discovery probe sent out of `port`: its Ethernet frame.
    pub fn probe_out_of(&mut self, port: u32) -> Vec<u8> {
        loop {
            match self.read(WAIT) {
                Read::Frame(Frame {
                    message: Message::PacketOut(packet),
                    ..
                }) if packet.actions == [Action::Output { port, max_len: 0 }] => {
                    return packet.data
                }
                Read::Frame(_) => {}
                other => panic!("switch {}: a probe expected, got {other:?}", self.dpid),
            }
        }
    }

    /// Waits for the speaker to close the connection; returns what it sent before.
    pub fn expect_closed(&mut self, within: Duration) -> Vec<Frame> {
        let until = Instant::now() + within;
        let mut before = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.read(left) {
                Read::Frame(frame) => before.push(frame),
                Read::Closed => return before,
                Read::Quiet => panic!(
                    "switch {}: still connected after {within:?}; it was sent {before:?}",
                    self.dpid
                ),
            }
        }
    }
}
