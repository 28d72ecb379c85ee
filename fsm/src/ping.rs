//! Flow ping (`POST /v2/flows/{id}/ping`, OpenKilda's flow ping): a probe packet sent into a
//! flow's ingress in each direction, as if it arrived on that direction's source port with
//! its VLAN, and caught where the flow leaves the network. Here: what is pinged and what the
//! answer says. The switch keeper sends the probes ([`crate::SbAction::Ping`]); a switch
//! (the simulator, or a real one through its speaker) sends and catches them.

use serde::{Deserialize, Serialize};

use crate::segments::{flow_segments, FlowSegment, FORWARD_COOKIE_FLAG};
use crate::{FlowEndpoint, FlowId, FlowRequest, Resources};

/// How long each direction's probe is waited for when the request does not say.
pub const DEFAULT_PING_TIMEOUT_MS: u64 = 2_000;
/// The longest wait a ping may ask for.
pub const MAX_PING_TIMEOUT_MS: u64 = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingDirection {
    /// From the flow's source endpoint to its destination.
    Forward,
    Reverse,
}

/// One direction's probe: it enters at the match of the direction's ingress rule and must
/// leave at `exit`, the direction's destination endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub direction: PingDirection,
    pub ingress: FlowSegment,
    pub exit: FlowEndpoint,
}

/// The flow's probes, forward first: one per direction.
pub fn probes(request: &FlowRequest, resources: &Resources) -> Vec<Probe> {
    flow_segments(request, resources)
        .into_iter()
        .filter(|segment| segment.kind.is_ingress())
        .map(|ingress| {
            let (direction, exit) = if ingress.cookie & FORWARD_COOKIE_FLAG != 0 {
                (PingDirection::Forward, request.destination.clone())
            } else {
                (PingDirection::Reverse, request.source.clone())
            };
            Probe {
                direction,
                ingress,
                exit,
            }
        })
        .collect()
}

/// One direction's result (OpenKilda's `UniFlowPingOutput`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniFlowPingOutput {
    /// The probe left the network exactly where the flow does.
    pub ping_success: bool,
    /// Why it did not: where it was lost, or why it could not be sent.
    pub error: Option<String>,
    /// Nanoseconds from sending the probe to catching it; 0 when it was not caught.
    pub latency: u64,
}

impl UniFlowPingOutput {
    pub fn arrived(latency_ns: u64) -> Self {
        UniFlowPingOutput {
            ping_success: true,
            error: None,
            latency: latency_ns,
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        UniFlowPingOutput {
            ping_success: false,
            error: Some(error.into()),
            latency: 0,
        }
    }
}

/// The answer to `POST /v2/flows/{id}/ping` (OpenKilda's `FlowPingResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowPingResponse {
    pub flow_id: FlowId,
    pub forward: UniFlowPingOutput,
    pub reverse: UniFlowPingOutput,
    /// Set when the flow changed while it was pinged (moved, updated or removed): the
    /// results are then of the path it had when the probes were sent.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::SegmentKind;
    use crate::test_support::{request, resources};
    use crate::SwitchId;

    #[test]
    fn each_direction_is_probed_from_its_ingress_to_its_far_end() {
        let flow = request(1, 3);
        let probes = probes(&flow, &resources(3));
        let directions: Vec<PingDirection> = probes.iter().map(|p| p.direction).collect();
        assert_eq!(
            directions,
            vec![PingDirection::Forward, PingDirection::Reverse]
        );
        let (forward, reverse) = (&probes[0], &probes[1]);
        assert_eq!(forward.ingress.kind, SegmentKind::Ingress);
        assert_eq!(
            (
                forward.ingress.switch_id,
                forward.ingress.in_port,
                forward.ingress.in_vlan
            ),
            (SwitchId(1), 40, 10),
            "the probe enters as a packet on the source port with the source VLAN"
        );
        assert_eq!(forward.exit, flow.destination);
        assert_eq!(
            (
                reverse.ingress.switch_id,
                reverse.ingress.in_port,
                reverse.ingress.in_vlan
            ),
            (SwitchId(3), 41, 20)
        );
        assert_eq!(reverse.exit, flow.source);
    }

    #[test]
    fn a_one_switch_flow_is_probed_both_ways_on_its_switch() {
        let flow = request(1, 1);
        let probes = probes(&flow, &resources(1));
        assert_eq!(probes.len(), 2);
        assert!(probes
            .iter()
            .all(|p| p.ingress.kind == SegmentKind::OneSwitch));
        assert_eq!(probes[0].ingress.in_port, 40);
        assert_eq!(probes[0].exit, flow.destination);
        assert_eq!(probes[1].ingress.in_port, 41);
        assert_eq!(probes[1].exit, flow.source);
    }

    #[test]
    fn the_answer_has_openkildas_field_names() {
        let answer = FlowPingResponse {
            flow_id: "f1".into(),
            forward: UniFlowPingOutput::arrived(12_345),
            reverse: UniFlowPingOutput::failed("lost"),
            error: None,
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({
                "flow_id": "f1",
                "forward": {"ping_success": true, "error": null, "latency": 12345},
                "reverse": {"ping_success": false, "error": "lost", "latency": 0},
                "error": null
            })
        );
    }
}
