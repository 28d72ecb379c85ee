//! The hub as a timely operator: requests, the feedback of allocations, speaker reports,
//! timers and path changes, "the network improved", and a restarted topology's flows come in,
//! each exchanged to the worker of its flow; the hub's outputs go out sorted by kind.

use std::sync::Arc;

use hubspoke_fsm::{Envelope, FlowEvent, NbRequest, NbResponse};
use hubspoke_speaker::SpeakerRequest;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::InputCapability;
use timely::dataflow::{Scope, StreamVec};

use super::{Hub, HubInput, HubOutput};
use crate::allocator::AllocatorRequest;
use crate::coordinator::Deadline;
use crate::dataflow::{route, ship, Settings, Time};
use crate::metrics::Metrics;
use crate::recovery::RecoveredFlow;
use crate::wire::Json;

pub struct HubStreams<'scope> {
    pub speaker: StreamVec<'scope, Time, SpeakerRequest>,
    pub allocator: StreamVec<'scope, Time, AllocatorRequest>,
    pub deadlines: StreamVec<'scope, Time, Deadline>,
    pub responses: StreamVec<'scope, Time, Envelope<NbResponse>>,
    pub events: StreamVec<'scope, Time, Envelope<FlowEvent>>,
}

/// Per-output buffers of the hub, filled from its outputs in one pass.
#[derive(Default)]
struct HubBuffers {
    speaker: Vec<SpeakerRequest>,
    allocator: Vec<AllocatorRequest>,
    deadlines: Vec<Deadline>,
    responses: Vec<Envelope<NbResponse>>,
    events: Vec<Envelope<FlowEvent>>,
}

impl HubBuffers {
    fn sort(&mut self, outputs: &mut Vec<HubOutput>) {
        for output in outputs.drain(..) {
            match output {
                HubOutput::Speaker(x) => self.speaker.push(x),
                HubOutput::Allocator(x) => self.allocator.push(x),
                HubOutput::Deadline(x) => self.deadlines.push(x),
                HubOutput::Response(x) => self.responses.push(x),
                HubOutput::Event(x) => self.events.push(x),
            }
        }
    }
}

/// What a restarted topology hands the hubs, each to the worker of its flow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Restored {
    Flow(RecoveredFlow),
    Answer(Envelope<NbResponse>),
}

impl Restored {
    fn flow_id(&self) -> &str {
        match self {
            Restored::Flow(flow) => flow.record.flow_id(),
            Restored::Answer(answer) => &answer.key,
        }
    }
}

pub struct HubInputs<'scope> {
    pub requests: StreamVec<'scope, Time, Json<Envelope<NbRequest>>>,
    pub feedback: StreamVec<'scope, Time, HubInput>,
    pub improved: StreamVec<'scope, Time, ()>,
    pub restored: StreamVec<'scope, Time, Json<Restored>>,
}

pub fn hub_operator<'scope>(
    scope: Scope<'scope, Time>,
    inputs: HubInputs<'scope>,
    settings: Settings,
    restored_at_ms: Time,
    metrics: Arc<Metrics>,
) -> HubStreams<'scope> {
    let HubInputs {
        requests,
        feedback,
        improved,
        restored,
    } = inputs;
    let mut builder = OperatorBuilder::new("Hub".to_owned(), scope);
    let mut restored = builder.new_input(
        restored,
        Exchange::new(|r: &Json<Restored>| route(r.0.flow_id())),
    );
    let mut requests = builder.new_input(
        requests,
        Exchange::new(|e: &Json<Envelope<NbRequest>>| route(&e.0.key)),
    );
    let mut feedback =
        builder.new_input(feedback, Exchange::new(|i: &HubInput| route(i.flow_id())));
    let mut improved = builder.new_input(improved, Pipeline);
    let (mut speaker_out, speaker) = builder.new_output();
    let (mut allocator_out, allocator) = builder.new_output();
    let (mut deadlines_out, deadlines) = builder.new_output();
    let (mut responses_out, responses) = builder.new_output();
    let (mut events_out, events) = builder.new_output();
    builder.build(move |_initial_capabilities| {
        let mut hub = Hub::new(settings.timeouts, settings.reroute, metrics);
        let mut outputs = Vec::new();
        let mut buffers = HubBuffers::default();
        move |_frontiers| {
            let mut flush = |capability: &InputCapability<Time>, outputs: &mut Vec<HubOutput>| {
                buffers.sort(outputs);
                ship(&mut speaker_out, capability, &mut buffers.speaker);
                ship(&mut allocator_out, capability, &mut buffers.allocator);
                ship(&mut deadlines_out, capability, &mut buffers.deadlines);
                ship(&mut responses_out, capability, &mut buffers.responses);
                ship(&mut events_out, capability, &mut buffers.events);
            };
            restored.for_each_stamp(|capability, data| {
                let (mut flows, mut answers) = (Vec::new(), Vec::new());
                for Json(item) in data.flat_map(|batch| batch.drain(..)) {
                    match item {
                        Restored::Flow(flow) => flows.push(flow),
                        Restored::Answer(answer) => answers.push(answer),
                    }
                }
                hub.restore(restored_at_ms, flows, answers, &mut outputs);
                flush(&capability, &mut outputs);
            });
            requests.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for Json(envelope) in data.flat_map(|batch| batch.drain(..)) {
                    hub.request(now, envelope, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            feedback.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for input in data.flat_map(|batch| batch.drain(..)) {
                    hub.input(now, input, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            // However many links came up at once, DOWN flows are queued once.
            improved.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                if data.flat_map(|batch| batch.drain(..)).count() > 0 {
                    hub.network_improved(now, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
        }
    });
    HubStreams {
        speaker,
        allocator,
        deadlines,
        responses,
        events,
    }
}
