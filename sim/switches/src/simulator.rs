//! The simulator thread: takes commands off the bus, lets each one "arrive" at its switch
//! after the injected latency, applies it to the fabric and publishes the answer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hubspoke_bus::{publish_network_events, InProcessBus, NetworkEvents, Publish};
use hubspoke_fsm::{Envelope, SbCommand, SbErrorCode, SbOutcome, SbResponse};
use parking_lot::Mutex;

use super::fabric::SwitchFabric;
use super::faults::FaultDecision;
use hubspoke_bus::clock::now_ms;

/// A command waiting for its arrival time. Ordered by (due, seq): seq keeps commands with the
/// same arrival time in the order they were sent.
struct Due {
    due: Instant,
    seq: u64,
    injected: Option<SbErrorCode>,
    command: Envelope<SbCommand>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// At most this many queued commands are taken at once (and so written in one transaction).
const MAX_BATCH: usize = 256;

pub struct Simulator;

/// Stops the simulator thread when stopped or dropped.
pub struct SimulatorHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SimulatorHandle {
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the sender disconnects the stop channel, which wakes the thread.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("southbound simulator thread panicked");
            }
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Simulator {
    /// The simulator on the in-process bus, as the embedded default runs it: it answers
    /// `sb.commands` on `sb.responses`, and the switches have announced themselves (and their
    /// links) on `sb.events` when this returns.
    pub fn on_bus(fabric: Arc<Mutex<SwitchFabric>>, bus: &InProcessBus) -> SimulatorHandle {
        let handle = Self::spawn(
            fabric.clone(),
            bus.sb_commands.receiver(),
            bus.sb_responses.clone(),
        );
        let network_events: NetworkEvents = bus.sb_events.clone();
        let announcement = fabric.lock().announce();
        publish_network_events(&network_events, announcement, "start");
        handle
    }

    pub fn spawn(
        fabric: Arc<Mutex<SwitchFabric>>,
        commands: Receiver<Envelope<SbCommand>>,
        responses: Arc<dyn Publish<Envelope<SbResponse>>>,
    ) -> SimulatorHandle {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("sb-simulator".into())
            .spawn(move || run(&fabric, &commands, &stopped, responses.as_ref()))
            .expect("spawning the simulator thread");
        SimulatorHandle {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

fn run(
    fabric: &Mutex<SwitchFabric>,
    commands: &Receiver<Envelope<SbCommand>>,
    stopped: &Receiver<()>,
    responses: &dyn Publish<Envelope<SbResponse>>,
) {
    let mut waiting: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        // Wake for a new command, a stop, or the next arrival: never a sleep per message.
        let timer = match waiting.peek() {
            Some(Reverse(next)) => crossbeam_channel::at(next.due),
            None => crossbeam_channel::never(),
        };
        crossbeam_channel::select! {
            recv(commands) -> message => match message {
                Ok(command) => {
                    // Whatever queued up meanwhile comes along, so that commands arriving
                    // together are applied (and, on a durable fabric, written) together.
                    let queued = commands.try_iter().take(MAX_BATCH - 1);
                    for command in std::iter::once(command).chain(queued) {
                        seq += 1;
                        if let Some(due) = admit(fabric, command, seq) {
                            waiting.push(Reverse(due));
                        }
                    }
                }
                Err(_) => return,
            },
            recv(stopped) -> _ => return,
            recv(timer) -> _ => {}
        }
        let now = Instant::now();
        let mut arrived = Vec::new();
        while waiting.peek().is_some_and(|Reverse(next)| next.due <= now) {
            let Some(Reverse(next)) = waiting.pop() else {
                break;
            };
            arrived.push(next);
        }
        for response in execute(fabric, arrived) {
            responses.publish(response);
        }
    }
}

/// Rolls the command's fate; None if it is lost on the way.
fn admit(fabric: &Mutex<SwitchFabric>, command: Envelope<SbCommand>, seq: u64) -> Option<Due> {
    let decision = fabric.lock().faults().decide(&command.payload);
    let (latency_ms, injected) = match decision {
        FaultDecision::Drop => {
            tracing::debug!(correlation_id = %command.correlation_id, command_id = %command.payload.command_id,
                attempt = command.payload.attempt, "simulator drops the command");
            return None;
        }
        FaultDecision::Deliver { latency_ms } => (latency_ms, None),
        FaultDecision::Fail { latency_ms, code } => (latency_ms, Some(code)),
    };
    let due = Instant::now() + Duration::from_millis(latency_ms);
    Some(Due {
        due,
        seq,
        injected,
        command,
    })
}

/// Applies the commands that arrived, in order, and answers them. The fabric acts on them in
/// one batch: a durable fabric has written their changes (in one transaction) before any
/// answer goes out.
fn execute(fabric: &Mutex<SwitchFabric>, arrived: Vec<Due>) -> Vec<Envelope<SbResponse>> {
    if arrived.is_empty() {
        return Vec::new();
    }
    let reaching = arrived
        .iter()
        .filter(|due| due.injected.is_none())
        .map(|due| &due.command.payload);
    let mut outcomes = fabric.lock().apply_all(reaching).into_iter();
    arrived
        .into_iter()
        .map(|due| {
            let outcome = match due.injected {
                Some(code) => SbOutcome::Error {
                    code,
                    message: "injected fault".into(),
                },
                None => outcomes.next().expect("one outcome per command"),
            };
            answer(due.command, outcome)
        })
        .collect()
}

fn answer(command: Envelope<SbCommand>, outcome: SbOutcome) -> Envelope<SbResponse> {
    let sent = &command.payload;
    tracing::debug!(correlation_id = %command.correlation_id, command_id = %sent.command_id,
        attempt = sent.attempt, ?outcome, "simulator answers");
    command.answered(now_ms(), outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Faults;
    use hubspoke_bus::Topic;
    use hubspoke_fsm::network::Network;
    use hubspoke_fsm::segments::{FlowSegment, SegmentKind};
    use hubspoke_fsm::{SbAction, SwitchId};

    fn command(id: &str, action: SbAction) -> Envelope<SbCommand> {
        let segment = FlowSegment {
            switch_id: SwitchId(1),
            kind: SegmentKind::OneSwitch,
            cookie: 9,
            in_port: 10,
            in_vlan: 0,
            out_port: 11,
            out_vlan: 0,
            meter_id: Some(40),
            bandwidth: 100,
        };
        Envelope::new(
            "corr-1",
            "flow-1",
            1,
            SbCommand {
                command_id: id.into(),
                attempt: 1,
                action,
                segment,
                ping_exit: None,
            },
        )
    }

    struct Setup {
        fabric: Arc<Mutex<SwitchFabric>>,
        commands: Arc<Topic<Envelope<SbCommand>>>,
        responses: Arc<Topic<Envelope<SbResponse>>>,
        handle: SimulatorHandle,
    }

    fn setup(faults: Faults) -> Setup {
        let mut fabric = SwitchFabric::new(&Network::generate("linear:2").unwrap().unwrap());
        fabric.set_faults(None, faults).unwrap();
        let fabric = Arc::new(Mutex::new(fabric));
        let commands = Arc::new(Topic::default());
        let responses: Arc<Topic<Envelope<SbResponse>>> = Arc::new(Topic::default());
        let handle = Simulator::spawn(fabric.clone(), commands.receiver(), responses.clone());
        Setup {
            fabric,
            commands,
            responses,
            handle,
        }
    }

    #[test]
    fn commands_are_applied_and_answered_after_the_latency() {
        let Setup {
            fabric,
            commands,
            responses,
            handle,
        } = setup(Faults {
            latency_ms: 300,
            ..Faults::default()
        });
        let started = Instant::now();
        commands.publish(command("install", SbAction::Install));
        commands.publish(command("verify", SbAction::Verify));
        let first = responses
            .receiver()
            .recv_timeout(Duration::from_secs(5))
            .expect("a response");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            (first.correlation_id.as_str(), first.key.as_str()),
            ("corr-1", "flow-1")
        );
        assert_eq!(first.payload.command_id, "install");
        assert_eq!(
            (first.payload.attempt, first.payload.switch_id),
            (1, SwitchId(1))
        );
        assert_eq!(first.payload.outcome, SbOutcome::Success);
        let second = responses
            .receiver()
            .recv_timeout(Duration::from_secs(5))
            .expect("a response");
        assert_eq!(
            (second.payload.command_id.as_str(), second.payload.outcome),
            ("verify", SbOutcome::Success)
        );
        // both waited concurrently, not one after the other
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(fabric.lock().rules(SwitchId(1)).map(|r| r.len()), Some(1));
        handle.stop();
    }

    #[test]
    fn injected_errors_do_not_act_and_drops_do_not_answer() {
        let failing = Faults {
            error_rate: 1.0,
            error_code: SbErrorCode::Unknown,
            ..Faults::default()
        };
        let Setup {
            fabric,
            commands,
            responses,
            handle: _handle,
        } = setup(failing);
        commands.publish(command("install", SbAction::Install));
        let answer = responses
            .receiver()
            .recv_timeout(Duration::from_secs(5))
            .expect("a response");
        assert!(matches!(
            answer.payload.outcome,
            SbOutcome::Error {
                code: SbErrorCode::Unknown,
                ..
            }
        ));
        assert_eq!(fabric.lock().rules(SwitchId(1)), Some(vec![]));

        fabric
            .lock()
            .set_faults(
                None,
                Faults {
                    drop_rate: 1.0,
                    ..Faults::default()
                },
            )
            .unwrap();
        commands.publish(command("install-2", SbAction::Install));
        assert!(responses
            .receiver()
            .recv_timeout(Duration::from_millis(200))
            .is_err());
        assert_eq!(fabric.lock().rules(SwitchId(1)), Some(vec![]));
    }

    #[test]
    fn a_durable_fabric_keeps_what_it_answered() {
        let dir = std::env::temp_dir().join(format!("hubspoke-simulator-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(crate::SWITCH_STORE_FILE);
        let network = Network::generate("linear:2").unwrap().unwrap();
        let fabric = Arc::new(Mutex::new(SwitchFabric::open(&network, &file).unwrap()));
        let commands: Arc<Topic<Envelope<SbCommand>>> = Arc::new(Topic::default());
        let responses: Arc<Topic<Envelope<SbResponse>>> = Arc::new(Topic::default());
        let answers = responses.receiver();
        let handle = Simulator::spawn(fabric.clone(), commands.receiver(), responses.clone());
        for cookie in 0..300u64 {
            let mut install = command(&format!("install-{cookie}"), SbAction::Install);
            install.payload.segment.cookie = cookie;
            // One match per rule: a rule with the same match would replace it.
            install.payload.segment.in_vlan = 1 + cookie as u16;
            install.payload.segment.meter_id = Some(100 + cookie as u32);
            commands.publish(install);
        }
        for _ in 0..300 {
            let answer = answers.recv_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(answer.payload.outcome, SbOutcome::Success);
        }
        handle.stop();
        drop(fabric);
        let reopened = SwitchFabric::open(&network, &file).unwrap();
        assert_eq!(reopened.rules(SwitchId(1)).map(|r| r.len()), Some(300));
        assert_eq!(reopened.meters(SwitchId(1)).map(|m| m.len()), Some(300));
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_thread_stops_on_drop() {
        let Setup {
            commands,
            responses,
            handle,
            ..
        } = setup(Faults {
            latency_ms: 10_000,
            ..Faults::default()
        });
        commands.publish(command("slow", SbAction::Install));
        let started = Instant::now();
        drop(handle);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(responses.receiver().try_recv().is_err());
    }
}
