//! One switch's connection as a state machine: the handshake, keepalive, and the commands in
//! flight matched to the switch's answers by xid. Pure: frames and commands come in with the
//! time, frames to send and answers go out as [`Output`]s; the speaker owns the socket.
//!
//! - **Handshake**: HELLO and FEATURES_REQUEST at once; the features give the datapath id (the
//!   switch id), then a PORT_DESC gives the ports, then the [system rules](crate::probe) go
//!   in behind a barrier. Its reply makes the switch [`Output::Connected`]: commands before
//!   that are not this session's to take.
//! - **Commands**: each message of a command gets its own xid, all mapped to the command. An
//!   install or remove is answered by its barrier's reply, or by the first OFPT_ERROR for one
//!   of its messages; a verify or dump by its (multipart) replies. The one exception is a
//!   meter that already exists (a retried install of a metered ingress): it is modified to
//!   the rate wanted and the install goes on behind a second barrier.
//! - **Keepalive**: an ECHO_REQUEST when nothing was heard for an interval; the connection
//!   is closed when nothing was heard for three.
//!
//! Whatever a switch sends that this does not expect (an unknown xid, a port it never
//! reported) is an [`Output::Ignored`] with the reason, never a failure of anything else.

use std::collections::{BTreeMap, HashMap};

use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{Envelope, MeterEntry, SbAction, SbCommand, SbErrorCode, SbOutcome, SwitchId};
use hubspoke_openflow::consts::{
    OFPET_METER_MOD_FAILED, OFPMF_KBPS, OFPMMFC_METER_EXISTS, OFPM_ALL, OFPPC_PORT_DOWN,
    OFPPR_DELETE, OFPPS_LINK_DOWN, OFPP_MAX,
};
use hubspoke_openflow::{
    ErrorMessage, FlowStats, Frame, Message, MeterBand, MeterConfig, MultipartReply,
    MultipartReplyBody, MultipartRequest, MultipartRequestBody, PacketIn, Port,
};

use crate::{
    dump_request, dumped, error_outcome, install, meter_modify, probe, remove, verify_outcome,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// Silence after which the switch is asked for an ECHO_REPLY; three of them close it.
    pub echo_interval_ms: u64,
    /// A command the switch has not answered for this long is answered `UNKNOWN` (retried
    /// by the topology) and forgotten.
    pub command_timeout_ms: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            echo_interval_ms: 5_000,
            command_timeout_ms: 30_000,
        }
    }
}

impl SessionSettings {
    /// How often the session wants [`Session::tick`]: a quarter of its shortest period, and
    /// at least every half second. Ticked more rarely than its echo interval, a session would
    /// close a switch for silence without ever having asked it for an echo.
    pub fn tick_interval_ms(&self) -> u64 {
        (self.echo_interval_ms.min(self.command_timeout_ms) / 4).clamp(1, 500)
    }
}

/// A port as discovery needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortState {
    pub up: bool,
    /// kbps; 0 when the port reports none.
    pub speed_kbps: u32,
}

impl PortState {
    fn of(port: &Port) -> PortState {
        PortState {
            up: port.config & OFPPC_PORT_DOWN == 0 && port.state & OFPPS_LINK_DOWN == 0,
            speed_kbps: port.curr_speed,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send(Frame),
    /// The handshake is done: the switch takes commands from now on.
    Connected {
        switch_id: SwitchId,
        ports: BTreeMap<u32, PortState>,
    },
    /// A port was added, went up or down, or was deleted (`None`).
    PortChanged {
        port: u32,
        state: Option<PortState>,
    },
    /// The answer to a command.
    Answer {
        command: Box<Envelope<SbCommand>>,
        outcome: SbOutcome,
    },
    /// A packet the switch sent up, from one of its known ports.
    PacketIn {
        in_port: u32,
        data: Vec<u8>,
    },
    /// Something from the switch this session does not act on, and why (to log).
    Ignored(String),
    /// The connection cannot go on (to log); every command in flight has been answered.
    Close(String),
}

/// Where the handshake is; the switch's id once its features arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the features (datapath id).
    Features,
    /// Waiting for the port descriptions.
    Ports(SwitchId),
    /// Waiting for the system rules' barrier.
    SystemRules(SwitchId),
    Ready(SwitchId),
}

/// What a command waits for.
#[derive(Debug)]
enum Awaiting {
    /// The reply to this barrier; with the switch's first refusal of one of the command's
    /// messages, which the barrier's reply follows.
    Barrier {
        xid: u32,
        refusal: Option<ErrorMessage>,
    },
    Verify(Vec<FlowStats>),
    Dump {
        flows: Option<Vec<FlowStats>>,
        meters: Option<Vec<MeterConfig>>,
        /// Parts of multipart replies still coming in.
        partial_flows: Vec<FlowStats>,
        partial_meters: Vec<MeterConfig>,
    },
}

#[derive(Debug)]
struct InFlight {
    command: Envelope<SbCommand>,
    sent_ms: u64,
    /// Every xid sent for it.
    xids: Vec<u32>,
    awaiting: Awaiting,
}

#[derive(Debug)]
pub struct Session {
    settings: SessionSettings,
    phase: Phase,
    ports: BTreeMap<u32, PortState>,
    /// A port description reply still coming in.
    partial_ports: Vec<Port>,
    next_xid: u32,
    /// The system rules' barrier.
    handshake_barrier: u32,
    in_flight: HashMap<u64, InFlight>,
    /// Each xid sent for a command → the command's key in `in_flight`.
    xids: HashMap<u32, u64>,
    next_key: u64,
    last_heard_ms: u64,
    echo_sent_ms: Option<u64>,
}

impl Session {
    /// A new connection: the session and the frames that open it.
    pub fn start(settings: SessionSettings, now_ms: u64) -> (Session, Vec<Output>) {
        let mut session = Session {
            settings,
            phase: Phase::Features,
            ports: BTreeMap::new(),
            partial_ports: Vec::new(),
            next_xid: 1,
            handshake_barrier: 0,
            in_flight: HashMap::new(),
            xids: HashMap::new(),
            next_key: 0,
            last_heard_ms: now_ms,
            echo_sent_ms: None,
        };
        let out = vec![
            session.send(Message::Hello),
            session.send(Message::FeaturesRequest),
        ];
        (session, out)
    }

    /// The switch's id, once its features arrived.
    pub fn switch_id(&self) -> Option<SwitchId> {
        match self.phase {
            Phase::Features => None,
            Phase::Ports(id) | Phase::SystemRules(id) | Phase::Ready(id) => Some(id),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready(_))
    }

    /// The ports that are up now, and their speeds (kbps, 0 when they report none).
    pub fn ports_up(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.ports
            .iter()
            .filter(|(_, state)| state.up)
            .map(|(port, state)| (*port, state.speed_kbps))
    }

    /// Commands sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn send(&mut self, message: Message) -> Output {
        Output::Send(Frame::new(self.take_xid(), message))
    }

    fn take_xid(&mut self) -> u32 {
        let xid = self.next_xid;
        // 0 is left out: some switches use it for messages of their own.
        self.next_xid = self.next_xid.checked_add(1).unwrap_or(1);
        xid
    }

    /// A frame from the switch.
    pub fn receive(&mut self, now_ms: u64, frame: Frame) -> Vec<Output> {
        self.last_heard_ms = now_ms;
        self.echo_sent_ms = None;
        let xid = frame.xid;
        match frame.message {
            Message::Hello | Message::EchoReply(_) => vec![],
            Message::EchoRequest(data) => {
                vec![Output::Send(Frame::new(xid, Message::EchoReply(data)))]
            }
            Message::FeaturesReply(features) if self.phase == Phase::Features => {
                self.phase = Phase::Ports(SwitchId(features.datapath_id));
                vec![self.send(Message::MultipartRequest(MultipartRequest {
                    flags: 0,
                    body: MultipartRequestBody::PortDesc,
                }))]
            }
            Message::MultipartReply(reply) => self.multipart(xid, reply),
            Message::BarrierReply => self.barrier(xid),
            Message::Error(error) => self.error(xid, error),
            Message::PortStatus(status) => self.port_status(status.reason, &status.desc),
            Message::PacketIn(packet) => self.packet_in(packet),
            other => vec![Output::Ignored(format!(
                "unexpected {} (xid {xid}) in phase {:?}",
                type_name(&other),
                self.phase
            ))],
        }
    }

    fn multipart(&mut self, xid: u32, reply: MultipartReply) -> Vec<Output> {
        let more = reply.more();
        if let (Phase::Ports(switch_id), MultipartReplyBody::PortDesc(ports)) =
            (self.phase, &reply.body)
        {
            self.partial_ports.extend(ports.iter().cloned());
            if more {
                return vec![];
            }
            return self.ports_known(switch_id);
        }
        let Some(key) = self.xids.get(&xid).copied() else {
            return vec![Output::Ignored(format!(
                "a multipart reply to unknown xid {xid}"
            ))];
        };
        let Some(flight) = self.in_flight.get_mut(&key) else {
            return vec![];
        };
        match (&mut flight.awaiting, reply.body) {
            (Awaiting::Verify(stats), MultipartReplyBody::Flow(entries)) => {
                stats.extend(entries);
                if more {
                    return vec![];
                }
                let outcome = verify_outcome(&flight.command.payload.segment, stats);
                self.finish(key, outcome)
            }
            (
                Awaiting::Dump {
                    flows,
                    partial_flows,
                    ..
                },
                MultipartReplyBody::Flow(entries),
            ) => {
                partial_flows.extend(entries);
                if !more {
                    *flows = Some(std::mem::take(partial_flows));
                }
                self.dump_done(key)
            }
            (
                Awaiting::Dump {
                    meters,
                    partial_meters,
                    ..
                },
                MultipartReplyBody::MeterConfig(entries),
            ) => {
                partial_meters.extend(entries);
                if !more {
                    *meters = Some(std::mem::take(partial_meters));
                }
                self.dump_done(key)
            }
            (_, body) => {
                let outcome = SbOutcome::Error {
                    code: SbErrorCode::Unknown,
                    message: format!("the switch answered with an unexpected reply: {body:?}"),
                };
                self.finish(key, outcome)
            }
        }
    }

    fn ports_known(&mut self, switch_id: SwitchId) -> Vec<Output> {
        self.ports = std::mem::take(&mut self.partial_ports)
            .iter()
            .filter(|port| port.port_no <= OFPP_MAX)
            .map(|port| (port.port_no, PortState::of(port)))
            .collect();
        self.phase = Phase::SystemRules(switch_id);
        let mut out: Vec<Output> = probe::system_rules(switch_id)
            .into_iter()
            .map(|rule| self.send(rule))
            .collect();
        self.handshake_barrier = self.next_xid;
        out.push(self.send(Message::BarrierRequest));
        out
    }

    fn dump_done(&mut self, key: u64) -> Vec<Output> {
        let Some(flight) = self.in_flight.get(&key) else {
            return vec![];
        };
        let Awaiting::Dump {
            flows: Some(flows),
            meters: Some(meters),
            ..
        } = &flight.awaiting
        else {
            return vec![];
        };
        let meters: Vec<MeterEntry> = meters.iter().map(meter_entry).collect();
        let outcome = dumped(&flight.command.payload.segment, flows, &meters).into_outcome();
        self.finish(key, outcome)
    }

    fn barrier(&mut self, xid: u32) -> Vec<Output> {
        if let Phase::SystemRules(switch_id) = self.phase {
            if xid == self.handshake_barrier {
                self.phase = Phase::Ready(switch_id);
                return vec![Output::Connected {
                    switch_id,
                    ports: self.ports.clone(),
                }];
            }
        }
        let Some(key) = self.xids.get(&xid).copied() else {
            return vec![Output::Ignored(format!(
                "a barrier reply to unknown xid {xid}"
            ))];
        };
        match self.in_flight.get_mut(&key).map(|f| &mut f.awaiting) {
            Some(Awaiting::Barrier {
                xid: awaited,
                refusal,
            }) if *awaited == xid => {
                let outcome = refusal
                    .take()
                    .map_or(SbOutcome::Success, |e| error_outcome(&e));
                self.finish(key, outcome)
            }
            // The first barrier of an install that went on behind a second one.
            _ => vec![],
        }
    }

    fn error(&mut self, xid: u32, error: ErrorMessage) -> Vec<Output> {
        if !self.is_ready() {
            return vec![Output::Close(format!(
                "the switch refused the handshake ({:?}): OFPT_ERROR type {} code {}",
                self.phase, error.err_type, error.code
            ))];
        }
        let Some(key) = self.xids.get(&xid).copied() else {
            return vec![Output::Ignored(format!(
                "OFPT_ERROR type {} code {} for unknown xid {xid}",
                error.err_type, error.code
            ))];
        };
        if (error.err_type, error.code) == (OFPET_METER_MOD_FAILED, OFPMMFC_METER_EXISTS) {
            if let Some(out) = self.modify_existing_meter(key) {
                return out;
            }
        }
        match self.in_flight.get_mut(&key).map(|f| &mut f.awaiting) {
            Some(Awaiting::Barrier { refusal, .. }) => {
                refusal.get_or_insert(error);
                vec![]
            }
            _ => self.finish(key, error_outcome(&error)),
        }
    }

    /// An install's meter exists already (the install is a retry, or a repair of the rate):
    /// it is set to the rate wanted, and the install is answered by a barrier behind that.
    fn modify_existing_meter(&mut self, key: u64) -> Option<Vec<Output>> {
        let flight = self.in_flight.get(&key)?;
        if flight.command.payload.action != SbAction::Install {
            return None;
        }
        let modify = meter_modify(&flight.command.payload.segment).ok()??;
        let out = vec![
            self.send_for(key, Message::MeterMod(modify)),
            self.send_for(key, Message::BarrierRequest),
        ];
        self.await_last_barrier(key);
        Some(out)
    }

    fn send_for(&mut self, key: u64, message: Message) -> Output {
        let xid = self.take_xid();
        self.xids.insert(xid, key);
        if let Some(flight) = self.in_flight.get_mut(&key) {
            flight.xids.push(xid);
        }
        Output::Send(Frame::new(xid, message))
    }

    fn port_status(&mut self, reason: u8, port: &Port) -> Vec<Output> {
        if port.port_no > OFPP_MAX {
            return vec![];
        }
        let state = (reason != OFPPR_DELETE).then(|| PortState::of(port));
        let before = match state {
            Some(state) => self.ports.insert(port.port_no, state),
            None => self.ports.remove(&port.port_no),
        };
        if before.map(|p| (p.up, p.speed_kbps)) == state.map(|p| (p.up, p.speed_kbps)) {
            // OVS reports a change twice, config first, then state: the second may change
            // nothing more.
            return vec![];
        }
        if !self.is_ready() {
            return vec![];
        }
        vec![Output::PortChanged {
            port: port.port_no,
            state,
        }]
    }

    fn packet_in(&mut self, packet: PacketIn) -> Vec<Output> {
        let in_port = packet.matching.fields.iter().find_map(|field| match field {
            hubspoke_openflow::Oxm::InPort(port) => Some(*port),
            _ => None,
        });
        match in_port {
            Some(port) if self.ports.contains_key(&port) => vec![Output::PacketIn {
                in_port: port,
                data: packet.data,
            }],
            Some(port) => vec![Output::Ignored(format!(
                "a packet in from port {port}, which the switch never reported"
            ))],
            None => vec![Output::Ignored("a packet in without an in_port".into())],
        }
    }

    /// Sends a command to the switch. A command for another switch, or before the handshake
    /// is done, or one that cannot be put in OpenFlow, is answered at once.
    pub fn command(&mut self, now_ms: u64, command: Envelope<SbCommand>) -> Vec<Output> {
        let segment = &command.payload.segment;
        if self.phase != Phase::Ready(segment.switch_id) {
            return vec![answer(
                command,
                SbErrorCode::SwitchUnavailable,
                "the switch is not connected".into(),
            )];
        }
        let action = command.payload.action;
        // The barrier's xid is known once it is sent, below.
        let barrier = || Awaiting::Barrier {
            xid: 0,
            refusal: None,
        };
        let planned = match action {
            SbAction::Install => match self.unknown_port(segment) {
                Some(port) => Err((
                    SbErrorCode::BadCommand,
                    format!("port {port} does not exist on switch {}", segment.switch_id),
                )),
                None => install(segment)
                    .map(|messages| (messages, barrier()))
                    .map_err(|e| (e.code(), e.to_string())),
            },
            SbAction::Remove => remove(segment)
                .map(|messages| (messages, barrier()))
                .map_err(|e| (e.code(), e.to_string())),
            SbAction::Verify => Ok((
                vec![Message::MultipartRequest(crate::verify_request(segment))],
                Awaiting::Verify(Vec::new()),
            )),
            SbAction::Dump => Ok((
                vec![
                    Message::MultipartRequest(dump_request(segment)),
                    Message::MultipartRequest(MultipartRequest {
                        flags: 0,
                        body: MultipartRequestBody::MeterConfig { meter_id: OFPM_ALL },
                    }),
                ],
                Awaiting::Dump {
                    flows: None,
                    meters: None,
                    partial_flows: Vec::new(),
                    partial_meters: Vec::new(),
                },
            )),
            // Two switches take part in a ping: the speaker sends it (see `crate::pings`).
            SbAction::Ping => Err((
                SbErrorCode::BadCommand,
                "a ping is not one switch's command".into(),
            )),
        };
        let (messages, awaiting) = match planned {
            Ok(planned) => planned,
            Err((code, message)) => return vec![answer(command, code, message)],
        };
        let key = self.next_key;
        self.next_key += 1;
        self.in_flight.insert(
            key,
            InFlight {
                command,
                sent_ms: now_ms,
                xids: Vec::new(),
                awaiting,
            },
        );
        let out: Vec<Output> = messages
            .into_iter()
            .map(|message| self.send_for(key, message))
            .collect();
        self.await_last_barrier(key);
        out
    }

    /// An install or remove is answered by the reply to the last barrier sent for it.
    fn await_last_barrier(&mut self, key: u64) {
        if let Some(flight) = self.in_flight.get_mut(&key) {
            if let (Awaiting::Barrier { xid, .. }, Some(last)) =
                (&mut flight.awaiting, flight.xids.last())
            {
                *xid = *last;
            }
        }
    }

    fn unknown_port(&self, segment: &FlowSegment) -> Option<u32> {
        [segment.in_port, segment.out_port]
            .into_iter()
            .find(|port| !self.ports.contains_key(port))
    }

    fn finish(&mut self, key: u64, outcome: SbOutcome) -> Vec<Output> {
        let Some(flight) = self.in_flight.remove(&key) else {
            return vec![];
        };
        for xid in &flight.xids {
            self.xids.remove(xid);
        }
        vec![Output::Answer {
            command: Box::new(flight.command),
            outcome,
        }]
    }

    /// Time passes: keepalive, and commands the switch forgot.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Output> {
        let silent = now_ms.saturating_sub(self.last_heard_ms);
        if silent > 3 * self.settings.echo_interval_ms {
            return self.close(format!("nothing heard from the switch for {silent} ms"));
        }
        let mut out = Vec::new();
        if silent > self.settings.echo_interval_ms && self.echo_sent_ms.is_none() {
            self.echo_sent_ms = Some(now_ms);
            out.push(self.send(Message::EchoRequest(Vec::new())));
        }
        let timeout = self.settings.command_timeout_ms;
        let stale: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, flight)| now_ms.saturating_sub(flight.sent_ms) > timeout)
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            out.extend(self.finish(
                key,
                SbOutcome::Error {
                    code: SbErrorCode::Unknown,
                    message: format!("the switch did not answer within {timeout} ms"),
                },
            ));
        }
        out
    }

    /// The connection is closing: every command in flight is answered `SWITCH_UNAVAILABLE`.
    pub fn close(&mut self, reason: String) -> Vec<Output> {
        let keys: Vec<u64> = self.in_flight.keys().copied().collect();
        let mut out: Vec<Output> = keys
            .into_iter()
            .flat_map(|key| {
                self.finish(
                    key,
                    SbOutcome::Error {
                        code: SbErrorCode::SwitchUnavailable,
                        message: format!("the switch's connection closed: {reason}"),
                    },
                )
            })
            .collect();
        out.push(Output::Close(reason));
        out
    }
}

fn answer(command: Envelope<SbCommand>, code: SbErrorCode, message: String) -> Output {
    Output::Answer {
        command: Box::new(command),
        outcome: SbOutcome::Error { code, message },
    }
}

/// A meter's rate as the simulator lists it: kbps meters with a drop band. A meter in other
/// units is not one hubspoke made; it is listed without a rate.
fn meter_entry(meter: &MeterConfig) -> MeterEntry {
    let rate = meter.bands.iter().find_map(|band| match band {
        MeterBand::Drop { rate, .. } => Some(*rate),
        MeterBand::Unknown { .. } => None,
    });
    let rate_kbps = match (meter.flags & OFPMF_KBPS != 0, rate) {
        (true, Some(rate)) => u64::from(rate),
        _ => 0,
    };
    MeterEntry {
        meter_id: meter.meter_id,
        rate_kbps,
    }
}

fn type_name(message: &Message) -> String {
    format!("OFPT type {}", message.msg_type())
}
