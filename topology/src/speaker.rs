//! The speaker worker (`hubspoke-speaker`, pure logic) as a timely operator: the hub's
//! requests, the switches' responses and its own timers come in exchanged by flow id;
//! southbound commands, reports to the hub and deadlines for the coordinator go out.

use std::sync::Arc;

use hubspoke_fsm::{Envelope, SbCommand, SbResponse};
use hubspoke_speaker::deadline::{CommandTimer, Timeout};
use hubspoke_speaker::{
    RetryPolicy, SpeakerOutput, SpeakerReport, SpeakerRequest, SpeakerStats, SpeakerWorker,
};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::InputCapability;
use timely::dataflow::{Scope, StreamVec};

use crate::coordinator::{Deadline, TimerKey};
use crate::dataflow::{route, ship, Time};
use crate::metrics::Metrics;
use crate::wire::Json;

pub struct SpeakerStreams<'scope> {
    pub commands: StreamVec<'scope, Time, Envelope<SbCommand>>,
    pub reports: StreamVec<'scope, Time, SpeakerReport>,
    pub deadlines: StreamVec<'scope, Time, Deadline>,
}

pub fn speaker_operator<'scope>(
    scope: Scope<'scope, Time>,
    requests: StreamVec<'scope, Time, SpeakerRequest>,
    responses: StreamVec<'scope, Time, Json<Envelope<SbResponse>>>,
    timeouts: StreamVec<'scope, Time, Timeout<CommandTimer>>,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
) -> SpeakerStreams<'scope> {
    let mut builder = OperatorBuilder::new("Speaker".to_owned(), scope);
    let mut requests = builder.new_input(
        requests,
        Exchange::new(|r: &SpeakerRequest| route(r.flow_id())),
    );
    let mut responses = builder.new_input(
        responses,
        Exchange::new(|e: &Json<Envelope<SbResponse>>| route(&e.0.key)),
    );
    let mut timeouts = builder.new_input(
        timeouts,
        Exchange::new(|t: &Timeout<CommandTimer>| route(&t.key.flow_id)),
    );
    let (mut commands_out, commands) = builder.new_output();
    let (mut reports_out, reports) = builder.new_output();
    let (mut deadlines_out, deadlines) = builder.new_output();
    builder.build(move |_initial_capabilities| {
        let mut worker = SpeakerWorker::new(policy);
        let mut reported = SpeakerStats::default();
        let mut outputs = Vec::new();
        let (mut commands_buf, mut reports_buf, mut deadlines_buf) =
            (Vec::new(), Vec::new(), Vec::new());
        move |_frontiers| {
            let mut flush = |capability: &InputCapability<Time>,
                             outputs: &mut Vec<SpeakerOutput>| {
                for output in outputs.drain(..) {
                    match output {
                        SpeakerOutput::Command(c) => commands_buf.push(c),
                        SpeakerOutput::Report(r) => reports_buf.push(r),
                        SpeakerOutput::Deadline(d) => {
                            deadlines_buf.push(d.map_key(TimerKey::Command))
                        }
                    }
                }
                ship(&mut commands_out, capability, &mut commands_buf);
                ship(&mut reports_out, capability, &mut reports_buf);
                ship(&mut deadlines_out, capability, &mut deadlines_buf);
            };
            requests.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for request in data.flat_map(|batch| batch.drain(..)) {
                    worker.request(now, request, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            responses.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for Json(envelope) in data.flat_map(|batch| batch.drain(..)) {
                    worker.response(now, &envelope.payload, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            timeouts.for_each_stamp(|capability, data| {
                let Some(&now) = capability.least() else {
                    return;
                };
                for timeout in data.flat_map(|batch| batch.drain(..)) {
                    worker.timeout(now, &timeout.key, timeout.generation, &mut outputs);
                }
                flush(&capability, &mut outputs);
            });
            let stats = worker.stats();
            metrics
                .sb_commands_sent
                .add(stats.commands_sent - reported.commands_sent);
            metrics.sb_retries.add(stats.retries - reported.retries);
            metrics
                .sb_commands_failed
                .add(stats.commands_failed - reported.commands_failed);
            metrics
                .sb_responses_dropped
                .add(stats.responses_dropped - reported.responses_dropped);
            reported = stats;
        }
    });
    SpeakerStreams {
        commands,
        reports,
        deadlines,
    }
}
