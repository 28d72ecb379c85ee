//! What the shim's tests share: the shim started as in production, in front of a fake
//! topology that answers `nb.requests` on a thread.

use hubspoke_rest::Readiness;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use crossbeam_channel::{Receiver, Sender};
use hubspoke_bus::Publish;
use hubspoke_fsm::dataplane::{PortVlan, Trace, TraceEnd};
use hubspoke_fsm::network::{Network, PathWeight};
use hubspoke_fsm::ping::{FlowPingResponse, UniFlowPingOutput};
use hubspoke_fsm::validation::{
    DirectionCheck, FlowValidation, MeterValidation, RuleValidation, SwitchSync, SwitchValidation,
};
use hubspoke_fsm::{
    Envelope, ErrorBody, FlowEndpoint, FlowRecord, FlowRequest, FlowStatus, Isl, LinkState,
    LinkStatus, NbRequest, NbResponse, Resources, SwitchId,
};

use serde_json::Value;
use tower::ServiceExt;

use crate::{nb_router, NbState, Northbound};

/// Publishes onto a plain channel, so the threads of a test end when the test drops it.
pub struct ChannelPublish<T>(pub Sender<T>);

impl<T: Send> Publish<T> for ChannelPublish<T> {
    fn publish(&self, message: T) {
        let _ = self.0.send(message);
    }
}

pub struct Shim {
    pub router: Router,
    pub state: NbState,
    /// Every request the fake topology received.
    pub seen: Receiver<Envelope<NbRequest>>,
}

/// What a delete does to the fake topology's flows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Deletes {
    Forget,
    /// The flow stays, so that a fuzz test's flows exist for every case.
    Keep,
}

/// The topology's part, played simply: create answers with the flow (or 409 if it exists, 404
/// for a switch not in the network), update, reroute and delete with the flow (or 404 for an
/// unknown one); a few flow ids misbehave on purpose.
fn fake_topology(
    network: Arc<Network>,
    deletes: Deletes,
    requests: Receiver<Envelope<NbRequest>>,
    replies: Sender<Envelope<NbResponse>>,
    seen: Sender<Envelope<NbRequest>>,
) {
    let mut flows: std::collections::HashMap<String, FlowRecord> = Default::default();
    for request in requests.iter() {
        let _ = seen.send(request.clone());
        let reply = |payload| request.reply(request.key.clone(), 1, payload);
        let error = |status, error_type: &str, message: &str| NbResponse::Error {
            error: ErrorBody::new(status, error_type, message, "from the fake topology"),
        };
        let payload = match &request.payload {
            NbRequest::CreateFlow { flow } if flow.flow_id.starts_with("silent") => continue,
            NbRequest::CreateFlow { flow } if flow.flow_id == "odd-status" => {
                error(200, "weird", "not an error status")
            }
            NbRequest::CreateFlow { flow } | NbRequest::UpdateFlow { flow }
                if [&flow.source, &flow.destination]
                    .iter()
                    .any(|end| network.switch(end.switch_id).is_none()) =>
            {
                error(404, "not-found", "Switch not found")
            }
            NbRequest::CreateFlow { flow } if flow.flow_id.starts_with("slow") => {
                // Answers late, as a busy topology would.
                std::thread::sleep(Duration::from_millis(200));
                let record = FlowRecord::new(flow.clone(), 1_700_000_000_000);
                NbResponse::Flow { flow: record }
            }
            NbRequest::CreateFlow { flow } if flows.contains_key(&flow.flow_id) => {
                error(409, "already-exists", "Flow already exists")
            }
            NbRequest::CreateFlow { flow } => {
                let mut record = FlowRecord::new(flow.clone(), 1_700_000_000_000);
                record.resources = Some(resources(&network, flow, &[]));
                flows.insert(flow.flow_id.clone(), record.clone());
                if flow.flow_id.starts_with("noisy") {
                    // a reply nobody waits for, then the real one twice: the extras are dropped
                    let _ = replies.send(
                        request
                            .reply(
                                "x",
                                1,
                                NbResponse::Flow {
                                    flow: record.clone(),
                                },
                            )
                            .tap_correlation("nobody"),
                    );
                    let _ = replies.send(reply(NbResponse::Flow {
                        flow: record.clone(),
                    }));
                }
                NbResponse::Flow { flow: record }
            }
            NbRequest::PatchFlow { flow_id, patch } => match flows.get_mut(flow_id) {
                Some(record) => {
                    *record = record.changed(1_700_000_001_000, |r| {
                        r.request = patch.applied_to(&r.request);
                    });
                    NbResponse::Flow {
                        flow: record.clone(),
                    }
                }
                None => error(404, "not-found", "Flow not found"),
            },
            NbRequest::UpdateFlow { flow } => match flows.get_mut(&flow.flow_id) {
                Some(record) => {
                    *record = record.changed(1_700_000_001_000, |r| {
                        r.request = flow.clone();
                        r.resources = Some(resources(&network, flow, &[]));
                    });
                    NbResponse::Flow {
                        flow: record.clone(),
                    }
                }
                None => error(404, "not-found", "Flow not found"),
            },
            NbRequest::RerouteFlow { flow_id } => match flows.get_mut(flow_id) {
                Some(record) => {
                    // the "best current path" here: one that shares no ISL with the old one
                    let old = record
                        .resources
                        .as_ref()
                        .map(|r| r.forward_path.clone())
                        .unwrap_or_default();
                    *record = record.changed(1_700_000_002_000, |r| {
                        r.resources = Some(resources(&network, &r.request, &old));
                    });
                    NbResponse::Flow {
                        flow: record.clone(),
                    }
                }
                None => error(404, "not-found", "Flow not found"),
            },
            NbRequest::SwapFlow { flow_id } => match flows.get(flow_id) {
                Some(record) if !record.request.allocate_protected_path => {
                    error(400, "no-protection", "The flow is not protected")
                }
                Some(record) => match record.resources.as_ref().and_then(|r| r.swapped()) {
                    Some(swapped) => NbResponse::Flow {
                        flow: record.changed(1_700_000_004_000, |r| r.resources = Some(swapped)),
                    },
                    None => error(409, "no-protected-path", "The flow has no protected path"),
                },
                None => error(404, "not-found", "Flow not found"),
            },
            NbRequest::SwapEndpoints {
                first_flow,
                second_flow,
            } => {
                let both = [first_flow, second_flow]
                    .iter()
                    .all(|f| flows.contains_key(&f.flow_id));
                if both {
                    NbResponse::EndpointsSwapped {
                        first_flow: first_flow.clone(),
                        second_flow: second_flow.clone(),
                    }
                } else {
                    error(404, "not-found", "Flow not found")
                }
            }
            NbRequest::SyncFlow { flow_id } => match flows.get(flow_id) {
                Some(record) => NbResponse::Flow {
                    flow: record.changed(1_700_000_003_000, |r| r.status = FlowStatus::InProgress),
                },
                None => error(404, "not-found", "Flow not found"),
            },
            NbRequest::ValidateSwitch { switch_id } | NbRequest::SyncSwitch { switch_id }
                if network.switch(*switch_id).is_none() =>
            {
                error(404, "not-found", "Switch not found")
            }
            NbRequest::ValidateSwitch { switch_id } => NbResponse::SwitchValidation {
                validation: Box::new(proper(*switch_id)),
            },
            NbRequest::SyncSwitch { switch_id } => NbResponse::SwitchSync {
                sync: Box::new(SwitchSync {
                    validation: proper(*switch_id),
                    flows_repaired: Vec::new(),
                    excess_removed: Vec::new(),
                }),
            },
            NbRequest::ValidateFlow { flow_id } => match flows.get(flow_id) {
                Some(record) => NbResponse::FlowValidation {
                    validation: Box::new(delivered_both_ways(record)),
                },
                None => error(409, "no-path", "Flow has no path"),
            },
            NbRequest::PingFlow { flow_id, .. } => match flows.get(flow_id) {
                Some(_) => NbResponse::FlowPing {
                    ping: FlowPingResponse {
                        flow_id: flow_id.clone(),
                        forward: UniFlowPingOutput::arrived(1_000),
                        reverse: UniFlowPingOutput::arrived(2_000),
                        error: None,
                    },
                },
                None => error(409, "no-path", "Flow has no path"),
            },
            NbRequest::Ping => NbResponse::Pong,
            NbRequest::PatchLink { isl, patch } => {
                let patched = |isl: Isl| {
                    let link = network.links().iter().find(|l| l.isl == isl)?;
                    let max_bandwidth = patch.max_bandwidth.unwrap_or(link.capacity);
                    Some(LinkState {
                        src_switch: isl.src_switch,
                        src_port: isl.src_port,
                        dst_switch: isl.dst_switch,
                        dst_port: isl.dst_port,
                        state: LinkStatus::Up,
                        capacity: link.capacity,
                        max_bandwidth,
                        available_bandwidth: max_bandwidth,
                        latency_ns: link.latency_ns,
                        cost: patch.cost.unwrap_or(link.cost),
                    })
                };
                match [*isl, isl.reversed()].map(patched) {
                    [Some(there), Some(back)] => NbResponse::Links {
                        links: vec![there, back],
                    },
                    _ => error(404, "not-found", "Link not found"),
                }
            }
            NbRequest::FindPaths { query }
                if [query.src_switch, query.dst_switch]
                    .iter()
                    .any(|s| network.switch(*s).is_none()) =>
            {
                error(404, "not-found", "Switch not found")
            }
            NbRequest::FindPaths { query } => NbResponse::Paths {
                paths: network.best_paths(
                    query.src_switch,
                    query.dst_switch,
                    0,
                    PathWeight::Latency,
                    query.max_path_count,
                    |_| Some(u64::MAX),
                ),
            },
            NbRequest::DeleteFlow { flow_id } => match flows.get(flow_id).cloned() {
                Some(record) => NbResponse::Flow {
                    flow: record.changed(1_700_000_000_500, |r| r.status = FlowStatus::InProgress),
                },
                None => error(404, "not-found", "Flow not found"),
            },
        };
        if deletes == Deletes::Forget {
            if let NbRequest::DeleteFlow { flow_id } = &request.payload {
                flows.remove(flow_id);
            }
        }
        let _ = replies.send(reply(payload));
    }
}

/// A switch holding exactly what is expected (nothing, here).
fn proper(switch_id: SwitchId) -> SwitchValidation {
    SwitchValidation {
        switch_id,
        rules: RuleValidation::default(),
        meters: MeterValidation::default(),
    }
}

/// The flow's packets, as a switch that holds its rules would deliver them.
fn delivered_both_ways(record: &FlowRecord) -> FlowValidation {
    let end = |e: &FlowEndpoint| PortVlan {
        switch_id: e.switch_id,
        port: e.port_number,
        vlan: e.vlan_id,
    };
    let (from, to) = (
        end(&record.request.source),
        end(&record.request.destination),
    );
    let check = |from: PortVlan, to: PortVlan| {
        let trace = Trace {
            hops: Vec::new(),
            end: TraceEnd::Delivered(to),
        };
        DirectionCheck::new(from, to, trace)
    };
    FlowValidation::new(
        record.flow_id().to_string(),
        Vec::new(),
        check(from, to),
        check(to, from),
    )
}

/// Resources on the fewest-hop path that uses none of `avoid`.
fn resources(network: &Network, flow: &FlowRequest, avoid: &[Isl]) -> Resources {
    let path = network
        .shortest_path(
            flow.source.switch_id,
            flow.destination.switch_id,
            1,
            |isl| (!avoid.contains(isl)).then_some(u64::MAX),
        )
        .unwrap_or_default();
    Resources {
        cookie: 1,
        transit_vlans: vec![2; path.len()],
        forward_meter: None,
        reverse_meter: None,
        forward_path: path,
        ..Default::default()
    }
}

trait TapCorrelation {
    fn tap_correlation(self, id: &str) -> Self;
}

impl<P> TapCorrelation for Envelope<P> {
    fn tap_correlation(mut self, id: &str) -> Self {
        self.correlation_id = id.to_string();
        self
    }
}

/// The shim as `hubspoke up` and `hubspoke nb` start it, in front of the fake topology on a
/// 3x3 grid.
pub fn shim(request_timeout: Duration, deletes: Deletes) -> Shim {
    let network = Arc::new(Network::generate("grid:3x3").unwrap().unwrap());
    let (request_tx, request_rx) = crossbeam_channel::unbounded();
    let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
    let (seen_tx, seen) = crossbeam_channel::unbounded();
    std::thread::spawn(move || fake_topology(network, deletes, request_rx, reply_tx, seen_tx));
    // Nothing feeds the read models from the bus here: tests apply events to them directly.
    let (_, flow_events) = crossbeam_channel::unbounded();
    let (_, network_states) = crossbeam_channel::unbounded();
    let state = Northbound {
        requests: Arc::new(ChannelPublish(request_tx)),
        responses: reply_rx,
        flow_events,
        network_states,
        request_timeout,
        metrics: Arc::new(|| "hubspoke_flows_total 3\n".to_string()),
        readiness: Readiness::new(),
    }
    .start();
    Shim {
        router: nb_router(state.clone()),
        state,
        seen,
    }
}

/// What the shim answered, read for checking.
pub struct Answer {
    pub status: StatusCode,
    pub correlation_id: Option<String>,
    pub content_type: Option<String>,
    /// `Null` when the body is not JSON.
    pub body: Value,
    pub text: String,
}

/// Sends `request` through `router` and reads the answer.
pub async fn answer(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    // In a block: a reference to the response must not live across the await below.
    let (status, correlation_id, content_type) = {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        (
            response.status(),
            header("correlation_id"),
            header("content-type"),
        )
    };
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        correlation_id,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
