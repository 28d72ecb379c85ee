//! Every message on the bus: one envelope, typed payloads, JSON with serde.

use serde::{Deserialize, Serialize};

use crate::network::FoundPath;
use crate::ping::FlowPingResponse;
use crate::segments::FlowSegment;
use crate::validation::{FlowValidation, SwitchSync, SwitchValidation};
use crate::{
    FlowEndpoint, FlowId, FlowPatch, FlowRecord, FlowRequest, HistoryEntry, Isl,
    PathComputationStrategy, RemovalDebt, SwitchId,
};

/// The envelope of every bus message. `key` is the flow id for everything about a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<P> {
    pub correlation_id: String,
    pub key: String,
    pub created_at_ms: u64,
    /// "Must be processed by": past it, a request is answered with an error, not processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The generation of the topology that sent it (0: not a topology's). Over Kafka a
    /// reader drops a message older than the newest generation it has seen in the message's
    /// partition: a dead topology's produce that lands late is not taken as current.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    pub payload: P,
}

fn is_zero(epoch: &u64) -> bool {
    *epoch == 0
}

impl<P> Envelope<P> {
    pub fn new(
        correlation_id: impl Into<String>,
        key: impl Into<String>,
        created_at_ms: u64,
        payload: P,
    ) -> Self {
        Envelope {
            correlation_id: correlation_id.into(),
            key: key.into(),
            created_at_ms,
            deadline_ms: None,
            epoch: 0,
            payload,
        }
    }

    /// A new envelope for a message caused by this one: same correlation id.
    pub fn reply<Q>(&self, key: impl Into<String>, created_at_ms: u64, payload: Q) -> Envelope<Q> {
        Envelope::new(self.correlation_id.clone(), key, created_at_ms, payload)
    }
}

/// `hubspoke.nb.requests`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NbRequest {
    CreateFlow {
        flow: FlowRequest,
    },
    /// Make-before-break change of bandwidth, endpoints or VLANs; `flow.flow_id` names the flow.
    UpdateFlow {
        flow: FlowRequest,
    },
    /// `PATCH /v2/flows/{id}`: the flow's request with the patch's fields in place, carried
    /// out as an update against the record the hub holds (so no concurrent change is undone).
    PatchFlow {
        flow_id: FlowId,
        patch: FlowPatch,
    },
    /// Move the flow onto the best path the network has now.
    RerouteFlow {
        flow_id: FlowId,
    },
    /// Install the flow's recorded rules again (and remove an interrupted move's).
    SyncFlow {
        flow_id: FlowId,
    },
    /// Move the flow's traffic onto its protected path (`PATCH /v2/flows/{id}/swap`).
    SwapFlow {
        flow_id: FlowId,
    },
    DeleteFlow {
        flow_id: FlowId,
    },
    /// `POST /v2/flows/swap-endpoint`: both flows move to the endpoints given, as one
    /// make-before-break operation, or neither does. Goes to the first flow's hub, which
    /// answers with [`NbResponse::EndpointsSwapped`].
    SwapEndpoints {
        first_flow: FlowEndpoints,
        second_flow: FlowEndpoints,
    },
    /// The flow's rules on every switch of its path against what it expects, and a packet
    /// traced each way. Answered by the switch keeper, not the flow's hub: it is a read.
    ValidateFlow {
        flow_id: FlowId,
    },
    /// A probe sent into the flow's ingress each way and caught where the flow leaves the
    /// network. Answered by the switch keeper, like a validation. `timeout_ms` bounds the wait
    /// for each direction's answer ([`crate::ping::DEFAULT_PING_TIMEOUT_MS`] when left out).
    PingFlow {
        flow_id: FlowId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// What the switch holds against what hubspoke expects there.
    ValidateSwitch {
        switch_id: SwitchId,
    },
    /// Validate the switch, then install its missing and misconfigured rules (each flow's
    /// hub does, for its flow) and remove its excess ones.
    SyncSwitch {
        switch_id: SwitchId,
    },
    /// Answered at once by the switch keeper: it shows the whole way through the topology
    /// moves (the northbound's readiness asks it).
    Ping,
    /// An operator's change of a link's cost or bandwidth, both directions (OpenKilda's
    /// `PATCH /v2/links/...`). Answered by the allocator with the link's two directions.
    PatchLink {
        isl: Isl,
        patch: LinkPatch,
    },
    /// Candidate paths between two switches (`GET /v2/network/paths`). Answered by the
    /// allocator, which has the network and what is reserved on it.
    FindPaths {
        query: PathsQuery,
    },
}

/// One flow's endpoints in `POST /v2/flows/swap-endpoint` (OpenKilda's `SwapFlowPayload`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEndpoints {
    pub flow_id: FlowId,
    pub source: FlowEndpoint,
    pub destination: FlowEndpoint,
}

impl FlowEndpoints {
    /// The endpoints `request` names.
    pub fn of(request: &FlowRequest) -> Self {
        FlowEndpoints {
            flow_id: request.flow_id.clone(),
            source: request.source.clone(),
            destination: request.destination.clone(),
        }
    }

    /// `request` moved to these endpoints.
    pub fn applied_to(&self, request: &FlowRequest) -> FlowRequest {
        FlowRequest {
            source: self.source.clone(),
            destination: self.destination.clone(),
            ..request.clone()
        }
    }
}

/// What `PATCH /v2/links/...` changes; what is left out stays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    #[serde(default)]
    pub cost: Option<u64>,
    /// kbps flows may reserve on the link, at most its capacity.
    #[serde(default)]
    pub max_bandwidth: Option<u64>,
}

impl LinkPatch {
    /// Checks what can be checked without the link.
    pub fn validate(&self) -> Result<(), String> {
        if self.cost.is_none() && self.max_bandwidth.is_none() {
            return Err("give cost, max_bandwidth or both".to_string());
        }
        Ok(())
    }
}

/// The question of `GET /v2/network/paths`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathsQuery {
    pub src_switch: SwitchId,
    pub dst_switch: SwitchId,
    pub path_computation_strategy: PathComputationStrategy,
    /// Milliseconds, for `MAX_LATENCY`.
    pub max_latency: Option<u64>,
    /// Milliseconds, for `MAX_LATENCY` when no path is within `max_latency`.
    pub max_latency_tier2: Option<u64>,
    pub max_path_count: usize,
}

impl NbRequest {
    /// The flow the request is about; `None` for a switch's.
    pub fn flow_id(&self) -> Option<&str> {
        match self {
            NbRequest::CreateFlow { flow } | NbRequest::UpdateFlow { flow } => Some(&flow.flow_id),
            NbRequest::RerouteFlow { flow_id }
            | NbRequest::SyncFlow { flow_id }
            | NbRequest::SwapFlow { flow_id }
            | NbRequest::DeleteFlow { flow_id }
            | NbRequest::ValidateFlow { flow_id }
            | NbRequest::PingFlow { flow_id, .. }
            | NbRequest::PatchFlow { flow_id, .. } => Some(flow_id),
            NbRequest::SwapEndpoints { first_flow, .. } => Some(&first_flow.flow_id),
            NbRequest::ValidateSwitch { .. }
            | NbRequest::SyncSwitch { .. }
            | NbRequest::Ping
            | NbRequest::PatchLink { .. }
            | NbRequest::FindPaths { .. } => None,
        }
    }

    /// The bus key: the flow id, or the switch id for a switch's request.
    pub fn key(&self) -> String {
        match self {
            NbRequest::ValidateSwitch { switch_id } | NbRequest::SyncSwitch { switch_id } => {
                switch_id.to_string()
            }
            NbRequest::Ping => "ping".to_string(),
            NbRequest::PatchLink { isl, .. } => format!("link/{}-{}", isl.src_switch, isl.src_port),
            NbRequest::FindPaths { query } => {
                format!("paths/{}-{}", query.src_switch, query.dst_switch)
            }
            flow => flow.flow_id().unwrap_or_default().to_string(),
        }
    }

    /// Whether worker 0 answers it: the switch keeper (validation, switch sync) or the
    /// allocator (links, paths), rather than the flow's hub (the operations on a flow).
    pub fn is_for_keeper(&self) -> bool {
        matches!(
            self,
            NbRequest::ValidateFlow { .. }
                | NbRequest::PingFlow { .. }
                | NbRequest::ValidateSwitch { .. }
                | NbRequest::SyncSwitch { .. }
                | NbRequest::Ping
                | NbRequest::PatchLink { .. }
                | NbRequest::FindPaths { .. }
        )
    }
}

/// The JSON error body of the REST contract, with the HTTP status it goes out with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub status: u16,
    pub error_type: String,
    pub error_message: String,
    pub error_description: String,
}

impl ErrorBody {
    pub fn new(
        status: u16,
        error_type: &str,
        error_message: impl Into<String>,
        error_description: impl Into<String>,
    ) -> Self {
        ErrorBody {
            status,
            error_type: error_type.to_string(),
            error_message: error_message.into(),
            error_description: error_description.into(),
        }
    }
}

/// `hubspoke.nb.responses`
// A flow record is most answers: boxing it would add an allocation to the common case to
// shrink the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NbResponse {
    Flow {
        flow: FlowRecord,
    },
    Error {
        error: ErrorBody,
    },
    FlowValidation {
        validation: Box<FlowValidation>,
    },
    SwitchValidation {
        validation: Box<SwitchValidation>,
    },
    SwitchSync {
        sync: Box<SwitchSync>,
    },
    FlowPing {
        ping: FlowPingResponse,
    },
    Pong,
    /// A patched link's two directions.
    Links {
        links: Vec<LinkState>,
    },
    /// Candidate paths, best first.
    Paths {
        paths: Vec<FoundPath>,
    },
    /// Both flows of a `swap-endpoint` carry their traffic between their new endpoints.
    EndpointsSwapped {
        first_flow: FlowEndpoints,
        second_flow: FlowEndpoints,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SbAction {
    Install,
    Remove,
    Verify,
    /// List the switch's rules of one flow (switch validation): see
    /// [`FlowSegment::dump_query`].
    Dump,
    /// Send a probe packet into the network as if it arrived at the segment's match (its
    /// switch, `in_port` and `in_vlan`: a flow direction's ingress rule), and catch it where
    /// it leaves: [`SbOutcome::Pinged`] if that is exactly [`SbCommand::ping_exit`],
    /// [`SbOutcome::PingLost`] otherwise.
    Ping,
}

impl SbAction {
    /// Whether the switch's tables stay as they are.
    pub fn is_read_only(self) -> bool {
        matches!(self, SbAction::Verify | SbAction::Dump | SbAction::Ping)
    }
}

/// `hubspoke.sb.commands`: one rule operation on one switch, identified by command id + attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbCommand {
    pub command_id: String,
    pub attempt: u32,
    pub action: SbAction,
    /// The rule acted on; for a ping, the ingress rule of the direction pinged, whose match
    /// is where the probe enters.
    pub segment: FlowSegment,
    /// For a ping: where the probe must leave the network (the direction's destination
    /// endpoint: switch, port, VLAN). `None` for every other action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_exit: Option<FlowEndpoint>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SbErrorCode {
    SwitchUnavailable,
    BadCommand,
    MissingRule,
    TableFull,
    Unknown,
}

impl std::fmt::Display for SbErrorCode {
    /// The wire name (`TABLE_FULL`), as people see it in logs and failure reasons.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SbErrorCode::SwitchUnavailable => "SWITCH_UNAVAILABLE",
            SbErrorCode::BadCommand => "BAD_COMMAND",
            SbErrorCode::MissingRule => "MISSING_RULE",
            SbErrorCode::TableFull => "TABLE_FULL",
            SbErrorCode::Unknown => "UNKNOWN",
        })
    }
}

impl SbErrorCode {
    /// Whether trying the same command again can help. A malformed command, a full table or a
    /// rule that verification did not find will not change by asking again.
    pub fn is_retryable(self) -> bool {
        matches!(self, SbErrorCode::SwitchUnavailable | SbErrorCode::Unknown)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SbOutcome {
    Success,
    /// The answer to a dump: the switch's rules that carry the asked cookie (every rule for
    /// cookie 0), and the meters they use (every meter for cookie 0).
    Rules {
        rules: Vec<FlowSegment>,
        #[serde(default)]
        meters: Vec<MeterEntry>,
    },
    Error {
        code: SbErrorCode,
        message: String,
    },
    /// A ping's probe left the network at its `ping_exit`, `latency_ns` after it was sent.
    Pinged {
        latency_ns: u64,
    },
    /// A ping's probe did not arrive at its `ping_exit`: it was dropped, looped, or left
    /// elsewhere (the reason says where).
    PingLost {
        reason: String,
    },
}

/// A meter as a switch holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MeterEntry {
    pub meter_id: u32,
    pub rate_kbps: u64,
}

impl Envelope<SbCommand> {
    /// A switch's answer to this command: keyed and correlated as the command.
    pub fn answered(&self, now_ms: u64, outcome: SbOutcome) -> Envelope<SbResponse> {
        let sent = &self.payload;
        let response = SbResponse {
            command_id: sent.command_id.clone(),
            attempt: sent.attempt,
            switch_id: sent.segment.switch_id,
            outcome,
        };
        self.reply(self.key.clone(), now_ms, response)
    }
}

/// `hubspoke.sb.responses`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbResponse {
    pub command_id: String,
    pub attempt: u32,
    pub switch_id: SwitchId,
    #[serde(flatten)]
    pub outcome: SbOutcome,
}

/// `hubspoke.sb.events`: what the switches report about the network. The simulator announces
/// its whole network at start, then every change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SbEvent {
    SwitchAdded {
        switch_id: SwitchId,
        /// Its highest port number.
        ports: u32,
        /// Its port numbers, when it does not have every one from 1 to `ports` (a real
        /// switch's may have gaps); empty when it does.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        port_numbers: Vec<u32>,
    },
    SwitchRemoved {
        switch_id: SwitchId,
    },
    /// One direction of a link can carry traffic (`capacity` in kbps), with its one-way
    /// latency and its cost (defaults when an older sender left them out).
    IslUp {
        isl: Isl,
        capacity: u64,
        #[serde(default = "crate::network::default_latency_ns")]
        latency_ns: u64,
        #[serde(default = "crate::network::default_cost")]
        cost: u64,
    },
    IslDown {
        isl: Isl,
    },
}

impl SbEvent {
    /// The bus key: the switch the event is about (the ISL's source).
    pub fn switch_id(&self) -> SwitchId {
        match self {
            SbEvent::SwitchAdded { switch_id, .. } | SbEvent::SwitchRemoved { switch_id } => {
                *switch_id
            }
            SbEvent::IslUp { isl, .. } | SbEvent::IslDown { isl } => isl.src_switch,
        }
    }
}

/// Whether a switch answers, as the network view shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SwitchStatus {
    Active,
    Inactive,
}

/// Whether a directed ISL can carry traffic, as the network view shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinkStatus {
    Up,
    Down,
}

/// A switch as the topology's network view sees it (`GET /v2/switches`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SwitchState {
    pub switch_id: SwitchId,
    /// Its highest port number.
    pub ports: u32,
    /// Its port numbers, when it does not have every one from 1 to `ports`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_numbers: Vec<u32>,
    pub state: SwitchStatus,
}

impl SwitchState {
    /// Its port numbers, in order.
    pub fn each_port(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self.port_numbers.as_slice() {
            [] => Box::new(1..=self.ports),
            numbers => Box::new(numbers.iter().copied()),
        }
    }
}

/// A directed ISL as the topology's network view sees it (`GET /v2/links`); bandwidths in kbps.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkState {
    pub src_switch: SwitchId,
    pub src_port: u32,
    pub dst_switch: SwitchId,
    pub dst_port: u32,
    pub state: LinkStatus,
    pub capacity: u64,
    /// What flows may reserve on it: its capacity, unless an operator lowered it.
    pub max_bandwidth: u64,
    /// What flow reservations leave of `max_bandwidth`.
    pub available_bandwidth: u64,
    /// One way, in nanoseconds.
    #[serde(default = "crate::network::default_latency_ns")]
    pub latency_ns: u64,
    #[serde(default = "crate::network::default_cost")]
    pub cost: u64,
}

impl LinkState {
    pub fn isl(&self) -> Isl {
        Isl {
            src_switch: self.src_switch,
            src_port: self.src_port,
            dst_switch: self.dst_switch,
            dst_port: self.dst_port,
        }
    }
}

/// The newest state of one switch or link, published by the topology's network view on the
/// `network` topic, keyed by [`NetworkState::key`] (a reader keeps the last one per key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetworkState {
    Switch(SwitchState),
    Link(LinkState),
}

impl NetworkState {
    pub fn key(&self) -> String {
        match self {
            NetworkState::Switch(s) => s.switch_id.to_string(),
            NetworkState::Link(l) => format!(
                "{}-{}-{}-{}",
                l.src_switch, l.src_port, l.dst_switch, l.dst_port
            ),
        }
    }
}

/// `hubspoke.flow.events`: the flow records and their history, as the hub changes them; the
/// flow log a restart rebuilds every flow from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FlowEvent {
    Updated {
        flow: FlowRecord,
    },
    Removed {
        flow_id: FlowId,
        version: u64,
    },
    History {
        flow_id: FlowId,
        entry: HistoryEntry,
    },
    /// The answer given to the request with the envelope's correlation id: a request sent
    /// again with that id is answered the same, also after a restart.
    Answered {
        response: NbResponse,
    },
    /// A flow's rules handed to the removal debt, with the reservation they use (keyed by
    /// the flow id).
    RemovalOwed {
        flow_id: FlowId,
        debt: RemovalDebt,
    },
    /// Rules in hubspoke's cookie space that no flow owns, found on a switch and handed to the
    /// removal debt (keyed by the switch id).
    ExcessOwed {
        rules: Vec<FlowSegment>,
    },
    /// Owed rules confirmed gone from their switch (keyed like the debt they pay).
    RemovalPaid {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow_id: Option<FlowId>,
        rules: Vec<FlowSegment>,
    },
    /// The flow's diversity group changed (none: it left its group, or was deleted). Written by
    /// the allocator, which keeps the groups; the newest one per flow is its membership.
    DiverseGroup {
        flow_id: FlowId,
        group: Option<String>,
    },
    /// From the network view: the flow's installed path shares an ISL with `with`, a member of
    /// its diversity group (`shared`), or no longer does. Derived, so not recovered.
    PathShared {
        flow_id: FlowId,
        with: FlowId,
        shared: bool,
    },
    /// Both flows of an endpoint swap carry their traffic on their new paths: the flow moves
    /// to the reservation with `cookie` (its record's target) even if the topology stops
    /// before its record says so (written by the allocator, which decides the swap, keyed by
    /// the flow id).
    EndpointSwapCommitted {
        flow_id: FlowId,
        cookie: u64,
    },
    /// A topology generation began (its envelope carries the same epoch). Over Kafka a
    /// restarted topology writes one into every partition of the flow log, so from there on
    /// its readers drop what the dead generation still produces.
    GenerationStarted {
        epoch: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::SegmentKind;
    use crate::{FlowEndpoint, FlowStatus};
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) -> String {
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value, "{json}");
        json
    }

    fn request() -> FlowRequest {
        FlowRequest {
            flow_id: "flow-1".into(),
            source: FlowEndpoint {
                switch_id: SwitchId(1),
                port_number: 10,
                vlan_id: 100,
            },
            destination: FlowEndpoint {
                switch_id: SwitchId(3),
                port_number: 11,
                vlan_id: 0,
            },
            maximum_bandwidth: 10_000,
            description: "a flow".into(),
            ..Default::default()
        }
    }

    fn segment() -> FlowSegment {
        FlowSegment {
            switch_id: SwitchId(2),
            kind: SegmentKind::Transit,
            cookie: 5,
            in_port: 1,
            in_vlan: 300,
            out_port: 2,
            out_vlan: 300,
            meter_id: None,
            bandwidth: 10_000,
        }
    }

    #[test]
    fn northbound_messages_round_trip() {
        let mut envelope = Envelope::new(
            "corr-1",
            "flow-1",
            42,
            NbRequest::CreateFlow { flow: request() },
        );
        envelope.deadline_ms = Some(100);
        let json = round_trip(envelope);
        assert!(json.contains(r#""type":"create_flow""#), "{json}");
        assert!(
            json.contains(r#""switch_id":"00:00:00:00:00:00:00:01""#),
            "{json}"
        );
        round_trip(Envelope::new(
            "c",
            "flow-1",
            1,
            NbRequest::DeleteFlow {
                flow_id: "flow-1".into(),
            },
        ));
        let record = FlowRecord::new(request(), 7);
        let json = round_trip(Envelope::new(
            "c",
            "flow-1",
            1,
            NbResponse::Flow { flow: record },
        ));
        assert!(json.contains(r#""status":"IN_PROGRESS""#), "{json}");
        round_trip(NbResponse::Error {
            error: ErrorBody::new(404, "not-found", "Switch not found", "no such switch"),
        });
        let ping = NbRequest::PingFlow {
            flow_id: "flow-1".into(),
            timeout_ms: Some(500),
        };
        assert!(ping.is_for_keeper());
        assert_eq!(ping.key(), "flow-1");
        let json = round_trip(ping);
        assert_eq!(
            json,
            r#"{"type":"ping_flow","flow_id":"flow-1","timeout_ms":500}"#
        );
        let without_timeout: NbRequest =
            serde_json::from_str(r#"{"type":"ping_flow","flow_id":"flow-1"}"#).unwrap();
        assert_eq!(
            without_timeout,
            NbRequest::PingFlow {
                flow_id: "flow-1".into(),
                timeout_ms: None
            }
        );
    }

    #[test]
    fn southbound_messages_round_trip() {
        for action in [SbAction::Install, SbAction::Remove, SbAction::Verify] {
            let json = round_trip(Envelope::new(
                "c",
                "flow-1",
                1,
                SbCommand {
                    command_id: "flow-1:1:1".into(),
                    attempt: 2,
                    action,
                    segment: segment(),
                    ping_exit: None,
                },
            ));
            assert!(!json.contains("ping_exit"), "{json}");
        }
        let ping = round_trip(SbCommand {
            command_id: "switch/1/7".into(),
            attempt: 1,
            action: SbAction::Ping,
            segment: segment(),
            ping_exit: Some(request().destination),
        });
        assert!(ping.contains(r#""action":"ping""#), "{ping}");
        assert!(
            ping.contains(r#""ping_exit":{"switch_id":"00:00:00:00:00:00:00:03","port_number":11,"vlan_id":0}"#),
            "{ping}"
        );
        assert!(SbAction::Ping.is_read_only());
        let pinged = round_trip(SbResponse {
            command_id: "x".into(),
            attempt: 1,
            switch_id: SwitchId(1),
            outcome: SbOutcome::Pinged { latency_ns: 1234 },
        });
        assert!(
            pinged.contains(r#""result":"pinged","latency_ns":1234"#),
            "{pinged}"
        );
        let lost = round_trip(SbResponse {
            command_id: "x".into(),
            attempt: 1,
            switch_id: SwitchId(1),
            outcome: SbOutcome::PingLost {
                reason: "no rule".into(),
            },
        });
        assert!(
            lost.contains(r#""result":"ping_lost","reason":"no rule""#),
            "{lost}"
        );
        let ok = round_trip(SbResponse {
            command_id: "x".into(),
            attempt: 1,
            switch_id: SwitchId(2),
            outcome: SbOutcome::Success,
        });
        assert!(ok.contains(r#""result":"success""#), "{ok}");
        let err = round_trip(SbResponse {
            command_id: "x".into(),
            attempt: 3,
            switch_id: SwitchId(2),
            outcome: SbOutcome::Error {
                code: SbErrorCode::TableFull,
                message: "full".into(),
            },
        });
        assert!(err.contains(r#""code":"TABLE_FULL""#), "{err}");
    }

    #[test]
    fn network_events_round_trip() {
        let isl = Isl {
            src_switch: SwitchId(1),
            src_port: 1,
            dst_switch: SwitchId(2),
            dst_port: 3,
        };
        for event in [
            SbEvent::SwitchAdded {
                switch_id: SwitchId(1),
                ports: 13,
                port_numbers: vec![1, 2, 10, 11, 12, 13],
            },
            SbEvent::SwitchRemoved {
                switch_id: SwitchId(1),
            },
            SbEvent::IslUp {
                isl,
                capacity: 10,
                latency_ns: 2_500_000,
                cost: 30,
            },
            SbEvent::IslDown { isl },
        ] {
            assert_eq!(event.switch_id(), SwitchId(1));
            round_trip(Envelope::new("c", event.switch_id().to_string(), 1, event));
        }
    }

    #[test]
    fn an_isl_up_without_latency_and_cost_has_the_defaults() {
        let old = r#"{"type":"isl_up","isl":{"src_switch":"00:00:00:00:00:00:00:01","src_port":1,"dst_switch":"00:00:00:00:00:00:00:02","dst_port":3},"capacity":10}"#;
        let parsed: SbEvent = serde_json::from_str(old).expect("an older isl_up parses");
        assert!(matches!(
            parsed,
            SbEvent::IslUp {
                latency_ns: crate::network::DEFAULT_LINK_LATENCY_NS,
                cost: crate::network::DEFAULT_ISL_COST,
                ..
            }
        ));
    }

    #[test]
    fn flow_events_round_trip() {
        let record = FlowRecord::new(request(), 7).changed(9, |r| r.status = FlowStatus::Down);
        round_trip(FlowEvent::Updated { flow: record });
        round_trip(FlowEvent::Removed {
            flow_id: "f".into(),
            version: 3,
        });
        round_trip(FlowEvent::History {
            flow_id: "f".into(),
            entry: HistoryEntry {
                timestamp_ms: 1,
                operation: "create".into(),
                event: "allocated".into(),
                from_state: "Validating".into(),
                to_state: "InstallingNonIngress".into(),
                details: String::new(),
                correlation_id: "c".into(),
            },
        });
        let json = round_trip(FlowEvent::DiverseGroup {
            flow_id: "f".into(),
            group: Some("g".into()),
        });
        assert!(json.contains(r#""type":"diverse_group""#), "{json}");
        round_trip(FlowEvent::PathShared {
            flow_id: "f".into(),
            with: "g".into(),
            shared: true,
        });
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"correlation_id":"c","key":"k","created_at_ms":1,"payload":{"type":"nope"}}"#,
        ] {
            assert!(serde_json::from_str::<Envelope<NbRequest>>(bad).is_err());
            assert!(serde_json::from_str::<Envelope<SbResponse>>(bad).is_err());
        }
    }

    #[test]
    fn error_codes_display_as_on_the_wire() {
        for code in [
            SbErrorCode::SwitchUnavailable,
            SbErrorCode::BadCommand,
            SbErrorCode::MissingRule,
            SbErrorCode::TableFull,
            SbErrorCode::Unknown,
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
        }
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(SbErrorCode::SwitchUnavailable.is_retryable());
        assert!(SbErrorCode::Unknown.is_retryable());
        assert!(!SbErrorCode::BadCommand.is_retryable());
        assert!(!SbErrorCode::TableFull.is_retryable());
        assert!(!SbErrorCode::MissingRule.is_retryable());
    }
}
