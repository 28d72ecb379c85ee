//! Topology replay: a log of timestamped bus messages (clock ticks included) runs through a
//! fresh topology on logical time, and what comes out is a log of the same form. The same
//! input always gives the same output, timeouts included: that is what replay tests rely on.
//!
//! A line is `{"time": MS, "topic": "nb.requests" | "sb.responses" | "sb.events" | "tick", "message": …}` in,
//! and `{"time": MS, "topic": "sb.commands" | "nb.responses" | "flow.events" | "network", "message": …}` out.
//! Blank lines and lines starting with `#` are comments. The network is announced at time 0,
//! as the switches would announce themselves.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use hubspoke_fsm::network::Network;
use hubspoke_fsm::{
    Envelope, FlowEvent, NbRequest, NbResponse, NetworkState, SbCommand, SbEvent, SbResponse,
};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::input::Handle as InputHandle;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::StreamVec;

use crate::dataflow::{build, Inbound, Settings, Time};
use crate::metrics::Metrics;
use crate::recovery::Recovery;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub time: Time,
    #[serde(flatten)]
    pub entry: LogEntry,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "topic", content = "message")]
pub enum LogEntry {
    #[serde(rename = "nb.requests")]
    NbRequest(Envelope<NbRequest>),
    #[serde(rename = "sb.responses")]
    SbResponse(Envelope<SbResponse>),
    #[serde(rename = "sb.events")]
    SbEvent(Envelope<SbEvent>),
    /// The clock reached `time`: deadlines before it fire.
    #[serde(rename = "tick")]
    Tick,
    #[serde(rename = "sb.commands")]
    SbCommand(Envelope<SbCommand>),
    #[serde(rename = "nb.responses")]
    NbResponse(Envelope<NbResponse>),
    #[serde(rename = "flow.events")]
    FlowEvent(Envelope<FlowEvent>),
    #[serde(rename = "network")]
    NetworkState(Envelope<NetworkState>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

/// Parses an input log: only inbound topics and ticks, in time order.
pub fn parse_input(text: &str) -> Result<Vec<LogLine>, ReplayError> {
    let mut lines = Vec::new();
    let mut last_time = 0;
    for (index, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let bad = |reason: String| ReplayError::BadLine {
            line: index + 1,
            reason,
        };
        let line: LogLine = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        if !matches!(
            line.entry,
            LogEntry::NbRequest(_)
                | LogEntry::SbResponse(_)
                | LogEntry::SbEvent(_)
                | LogEntry::Tick
        ) {
            return Err(bad(
                "only nb.requests, sb.responses, sb.events and tick lines can be replayed".into(),
            ));
        }
        if line.time < last_time {
            return Err(bad(format!(
                "time {} goes back from {last_time}",
                line.time
            )));
        }
        last_time = line.time;
        lines.push(line);
    }
    Ok(lines)
}

/// Runs `input` through a one-worker topology until the clock passes its last line, and
/// returns the output sorted by time, then by content (order inside a timestamp is free).
pub fn replay(input: &[LogLine], settings: Settings, network: &Network) -> Vec<LogLine> {
    let announcement: Vec<LogLine> = network
        .announcement()
        .into_iter()
        .map(|event| LogLine {
            time: 0,
            entry: LogEntry::SbEvent(Envelope::new(
                "announcement",
                event.switch_id().to_string(),
                0,
                event,
            )),
        })
        .collect();
    let input = [announcement, input.to_vec()].concat();
    timely::execute_directly(move |worker| {
        let captured: Rc<RefCell<Vec<LogLine>>> = Rc::default();
        let probe = ProbeHandle::new();
        let mut source = worker.dataflow::<Time, _, _>(|scope| {
            let (source, inbound) = scope.new_input::<Vec<Inbound>>();
            let out = build(
                scope,
                inbound,
                settings,
                Arc::new(Metrics::default()),
                &Recovery::default(),
            );
            capture(
                out.sb_commands,
                &probe,
                &captured,
                logged(LogEntry::SbCommand),
            );
            capture(
                out.nb_responses,
                &probe,
                &captured,
                logged(LogEntry::NbResponse),
            );
            capture(
                out.flow_events,
                &probe,
                &captured,
                logged(LogEntry::FlowEvent),
            );
            capture(
                out.network_states,
                &probe,
                &captured,
                logged(LogEntry::NetworkState),
            );
            source
        });
        let end = input.last().map_or(0, |line| line.time) + 1;
        let mut run_until =
            |source: &mut InputHandle<Time, CapacityContainerBuilder<Vec<Inbound>>>, time: Time| {
                // Everything before `time` happens before input at `time` enters, as in a live run.
                source.advance_to(time);
                while probe.less_than(&time) {
                    worker.step();
                }
            };
        for line in input {
            if line.time > *source.time() {
                run_until(&mut source, line.time);
            }
            match line.entry {
                LogEntry::NbRequest(envelope) => source.send(Inbound::NbRequest(envelope)),
                LogEntry::SbResponse(envelope) => source.send(Inbound::SbResponse(envelope)),
                LogEntry::SbEvent(envelope) => source.send(Inbound::SbEvent(envelope)),
                _ => {}
            }
        }
        run_until(&mut source, end);
        // The recording ends here. Timers that arm themselves again (the keeper's sweep)
        // would keep a draining dataflow going forever.
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
        let mut output = captured.take();
        output.sort_by_cached_key(|line| {
            (
                line.time,
                serde_json::to_string(&line.entry).unwrap_or_default(),
            )
        });
        output
    })
}

/// Collects every record of `stream`, stamped with its time by `stamp`, into `into`, and
/// attaches `probe` so the caller knows when a time is complete. Shared by the replay runner
/// and the tests that drive the graph themselves.
pub fn capture<D: Clone + 'static, T: 'static>(
    stream: StreamVec<'_, Time, D>,
    probe: &ProbeHandle<Time>,
    into: &Rc<RefCell<Vec<T>>>,
    stamp: impl Fn(Time, D) -> T + 'static,
) {
    let into = into.clone();
    stream
        .probe_with(probe)
        .sink(Pipeline, "Capture", move |(input, _frontier)| {
            input.for_each_stamp(|capability, data| {
                let Some(&time) = capability.least() else {
                    return;
                };
                into.borrow_mut().extend(
                    data.flat_map(|batch| batch.drain(..))
                        .map(|d| stamp(time, d)),
                );
            });
        });
}

fn logged<D>(wrap: fn(D) -> LogEntry) -> impl Fn(Time, D) -> LogLine {
    move |time, d| LogLine {
        time,
        entry: wrap(d),
    }
}

/// One JSON line per entry: the form golden files are kept in.
pub fn to_json_lines(lines: &[LogLine]) -> String {
    lines
        .iter()
        .filter_map(|line| serde_json::to_string(line).ok())
        .map(|json| json + "\n")
        .collect()
}
