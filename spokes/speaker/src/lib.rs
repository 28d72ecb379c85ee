//! The speaker worker, the spoke that talks to switches: it turns hub requests into southbound
//! commands, keeps them pending, matches responses by command id *and* attempt, retries with
//! back-off, and reports success or failure to the hub. A ping is one probe: it is never
//! retried, and one not answered within its own timeout is reported lost. Pure logic: time
//! comes in as `now_ms`, and commands, reports and deadlines go out through [`SpeakerOutput`].

pub mod deadline;

use std::collections::{BTreeSet, HashMap};

use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{
    stable_hash, Envelope, FlowEndpoint, MeterEntry, SbAction, SbCommand, SbOutcome, SbResponse,
};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::deadline::{CommandTimer, DeadlineRequest};

/// When to give up, and how long to wait between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// How long an attempt waits for its response.
    pub response_timeout_ms: u64,
    /// Back-off before attempt n+1 is `base × 2^(n-1)`, capped, plus up to half of it as jitter.
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            response_timeout_ms: 2_000,
            backoff_base_ms: 100,
            backoff_cap_ms: 2_000,
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempt` failed. The jitter comes from the command id, not from a
    /// random source, so a replay waits exactly as long.
    pub fn backoff_ms(&self, command_id: &str, attempt: u32) -> u64 {
        let exponent = attempt.saturating_sub(1).min(32);
        let delay = self
            .backoff_base_ms
            .saturating_mul(1 << exponent)
            .min(self.backoff_cap_ms);
        let jitter_range = delay / 2 + 1;
        delay + stable_hash(&[command_id.as_bytes(), &attempt.to_le_bytes()]) % jitter_range
    }
}

/// Who asked for a command, so its report goes back there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Requester {
    /// A flow's hub: the command is a step of an operation on the flow.
    Hub,
    /// The switch keeper: paying the removal debt, validating and syncing switches.
    Keeper,
}

/// The hub or the keeper asks the speaker to run one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpeakerRequest {
    Run {
        requester: Requester,
        /// Routes the command and its answer: the flow id, or the keeper's key of a switch.
        flow_id: String,
        correlation_id: String,
        command_id: String,
        action: SbAction,
        segment: FlowSegment,
    },
    /// Send a probe into the network at `segment`'s match (a flow direction's ingress rule)
    /// and have it caught where it must leave (`exit`): one attempt, reported
    /// [`ReportOutcome::PingLost`] if not answered within `timeout_ms`.
    Ping {
        requester: Requester,
        flow_id: String,
        correlation_id: String,
        command_id: String,
        segment: FlowSegment,
        exit: FlowEndpoint,
        timeout_ms: u64,
    },
    /// Forget every pending command of the flow (the operation moved on: rollback or deadline).
    Abandon { flow_id: String },
}

impl SpeakerRequest {
    pub fn flow_id(&self) -> &str {
        match self {
            SpeakerRequest::Run { flow_id, .. }
            | SpeakerRequest::Ping { flow_id, .. }
            | SpeakerRequest::Abandon { flow_id } => flow_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportOutcome {
    Succeeded,
    /// A dump's answer.
    Listed {
        rules: Vec<FlowSegment>,
        meters: Vec<MeterEntry>,
    },
    Failed {
        reason: String,
    },
    /// A ping's probe arrived where it had to leave.
    Pinged {
        latency_ns: u64,
    },
    /// A ping's probe did not arrive there, or no answer came in time.
    PingLost {
        reason: String,
    },
}

/// The speaker's answer about one command, to whoever asked for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerReport {
    pub requester: Requester,
    pub flow_id: String,
    pub correlation_id: String,
    pub command_id: String,
    pub outcome: ReportOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpeakerOutput {
    Command(Envelope<SbCommand>),
    Report(SpeakerReport),
    Deadline(DeadlineRequest<CommandTimer>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingResponse,
    BackingOff,
}

#[derive(Debug)]
struct Pending {
    requester: Requester,
    flow_id: String,
    correlation_id: String,
    action: SbAction,
    segment: FlowSegment,
    /// A ping's exit; `None` for every other command.
    ping_exit: Option<FlowEndpoint>,
    /// How long each attempt waits for its answer.
    response_timeout_ms: u64,
    attempt: u32,
    /// The generation of the deadline now registered for this command.
    generation: u64,
    phase: Phase,
}

/// Counters a person wants on `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpeakerStats {
    pub commands_sent: u64,
    pub retries: u64,
    /// Responses for a command or attempt no longer pending: late, duplicated or abandoned.
    pub responses_dropped: u64,
    pub commands_failed: u64,
}

#[derive(Debug, Default)]
pub struct SpeakerWorker {
    policy: RetryPolicy,
    pending: HashMap<String, Pending>,
    by_flow: HashMap<String, BTreeSet<String>>,
    next_generation: u64,
    stats: SpeakerStats,
}

impl SpeakerWorker {
    pub fn new(policy: RetryPolicy) -> Self {
        SpeakerWorker {
            policy,
            ..Default::default()
        }
    }

    pub fn stats(&self) -> SpeakerStats {
        self.stats
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn request(&mut self, now_ms: u64, request: SpeakerRequest, out: &mut Vec<SpeakerOutput>) {
        match request {
            SpeakerRequest::Run {
                requester,
                flow_id,
                correlation_id,
                command_id,
                action,
                segment,
            } => {
                let pending = Pending {
                    requester,
                    flow_id,
                    correlation_id,
                    action,
                    segment,
                    ping_exit: None,
                    response_timeout_ms: self.policy.response_timeout_ms,
                    attempt: 1,
                    generation: 0,
                    phase: Phase::AwaitingResponse,
                };
                self.start(now_ms, command_id, pending, out);
            }
            SpeakerRequest::Ping {
                requester,
                flow_id,
                correlation_id,
                command_id,
                segment,
                exit,
                timeout_ms,
            } => {
                let pending = Pending {
                    requester,
                    flow_id,
                    correlation_id,
                    action: SbAction::Ping,
                    segment,
                    ping_exit: Some(exit),
                    response_timeout_ms: timeout_ms,
                    attempt: 1,
                    generation: 0,
                    phase: Phase::AwaitingResponse,
                };
                self.start(now_ms, command_id, pending, out);
            }
            SpeakerRequest::Abandon { flow_id } => {
                for command_id in self.by_flow.remove(&flow_id).unwrap_or_default() {
                    if let Some(pending) = self.pending.remove(&command_id) {
                        out.push(SpeakerOutput::Deadline(DeadlineRequest::Cancel {
                            key: timer_key(&pending.flow_id, &command_id),
                            generation: pending.generation,
                        }));
                    }
                }
            }
        }
    }

    /// Sends the first attempt of a new command; one already pending is not sent twice.
    fn start(
        &mut self,
        now_ms: u64,
        command_id: String,
        pending: Pending,
        out: &mut Vec<SpeakerOutput>,
    ) {
        if self.pending.contains_key(&command_id) {
            debug!(flow_id = %pending.flow_id, correlation_id = %pending.correlation_id, %command_id,
                "command already pending, not sent twice");
            return;
        }
        self.by_flow
            .entry(pending.flow_id.clone())
            .or_default()
            .insert(command_id.clone());
        self.pending.insert(command_id.clone(), pending);
        self.send_attempt(now_ms, &command_id, out);
    }

    pub fn response(&mut self, now_ms: u64, response: &SbResponse, out: &mut Vec<SpeakerOutput>) {
        let matches = self.pending.get(&response.command_id).is_some_and(|p| {
            p.phase == Phase::AwaitingResponse
                && p.attempt == response.attempt
                && p.segment.switch_id == response.switch_id
        });
        if !matches {
            self.stats.responses_dropped += 1;
            debug!(command_id = %response.command_id, attempt = response.attempt, "late or duplicate response dropped");
            return;
        }
        let command_id = response.command_id.as_str();
        let Some(pending) = self.pending.get(command_id) else {
            return;
        };
        out.push(SpeakerOutput::Deadline(DeadlineRequest::Cancel {
            key: timer_key(&pending.flow_id, command_id),
            generation: pending.generation,
        }));
        let is_ping = pending.action == SbAction::Ping;
        match &response.outcome {
            SbOutcome::Success => self.finish(command_id, ReportOutcome::Succeeded, out),
            SbOutcome::Pinged { latency_ns } => {
                let pinged = ReportOutcome::Pinged {
                    latency_ns: *latency_ns,
                };
                self.finish(command_id, pinged, out)
            }
            SbOutcome::PingLost { reason } => {
                let lost = ReportOutcome::PingLost {
                    reason: reason.clone(),
                };
                self.finish(command_id, lost, out)
            }
            SbOutcome::Rules { rules, meters } => {
                let listed = ReportOutcome::Listed {
                    rules: rules.clone(),
                    meters: meters.clone(),
                };
                self.finish(command_id, listed, out)
            }
            SbOutcome::Error { code, message } => {
                let failure = format!(
                    "{code} from switch {} on attempt {}: {message}",
                    response.switch_id, response.attempt
                );
                // A ping is one probe, answered within its caller's timeout: not retried.
                if code.is_retryable() && !is_ping {
                    self.retry_or_fail(now_ms, command_id, failure, out);
                } else {
                    self.fail(command_id, failure, out);
                }
            }
        }
    }

    /// A speaker deadline passed: a response that never came, or the end of a back-off.
    pub fn timeout(
        &mut self,
        now_ms: u64,
        timer: &CommandTimer,
        generation: u64,
        out: &mut Vec<SpeakerOutput>,
    ) {
        let command_id = timer.command_id.as_str();
        let Some(pending) = self.pending.get_mut(command_id) else {
            return;
        };
        if pending.generation != generation {
            return;
        }
        match pending.phase {
            Phase::AwaitingResponse if pending.action == SbAction::Ping => {
                let reason = format!(
                    "no answer from switch {} within {} ms",
                    pending.segment.switch_id, pending.response_timeout_ms
                );
                debug!(flow_id = %pending.flow_id, correlation_id = %pending.correlation_id,
                    %command_id, %reason, "ping lost");
                self.finish(command_id, ReportOutcome::PingLost { reason }, out);
            }
            Phase::AwaitingResponse => {
                let failure = format!(
                    "no response from switch {} to attempt {}",
                    pending.segment.switch_id, pending.attempt
                );
                self.retry_or_fail(now_ms, command_id, failure, out);
            }
            Phase::BackingOff => {
                pending.attempt += 1;
                pending.phase = Phase::AwaitingResponse;
                self.stats.retries += 1;
                self.send_attempt(now_ms, command_id, out);
            }
        }
    }

    fn retry_or_fail(
        &mut self,
        now_ms: u64,
        command_id: &str,
        failure: String,
        out: &mut Vec<SpeakerOutput>,
    ) {
        let Some(pending) = self.pending.get_mut(command_id) else {
            return;
        };
        if pending.attempt >= self.policy.max_attempts {
            let reason = format!("{failure} (gave up after {} attempts)", pending.attempt);
            self.fail(command_id, reason, out);
            return;
        }
        debug!(flow_id = %pending.flow_id, correlation_id = %pending.correlation_id, %command_id, %failure, "will retry");
        self.next_generation += 1;
        pending.generation = self.next_generation;
        pending.phase = Phase::BackingOff;
        let at_ms = now_ms + self.policy.backoff_ms(command_id, pending.attempt);
        out.push(SpeakerOutput::Deadline(DeadlineRequest::Register {
            key: timer_key(&pending.flow_id, command_id),
            generation: pending.generation,
            at_ms,
        }));
    }

    fn send_attempt(&mut self, now_ms: u64, command_id: &str, out: &mut Vec<SpeakerOutput>) {
        let Some(pending) = self.pending.get_mut(command_id) else {
            return;
        };
        self.next_generation += 1;
        pending.generation = self.next_generation;
        self.stats.commands_sent += 1;
        let command = SbCommand {
            command_id: command_id.to_string(),
            attempt: pending.attempt,
            action: pending.action,
            segment: pending.segment.clone(),
            ping_exit: pending.ping_exit.clone(),
        };
        out.push(SpeakerOutput::Command(Envelope::new(
            pending.correlation_id.clone(),
            pending.flow_id.clone(),
            now_ms,
            command,
        )));
        out.push(SpeakerOutput::Deadline(DeadlineRequest::Register {
            key: timer_key(&pending.flow_id, command_id),
            generation: pending.generation,
            at_ms: now_ms.saturating_add(pending.response_timeout_ms),
        }));
    }

    fn fail(&mut self, command_id: &str, reason: String, out: &mut Vec<SpeakerOutput>) {
        self.stats.commands_failed += 1;
        self.finish(command_id, ReportOutcome::Failed { reason }, out);
    }

    fn finish(&mut self, command_id: &str, outcome: ReportOutcome, out: &mut Vec<SpeakerOutput>) {
        let Some(pending) = self.pending.remove(command_id) else {
            return;
        };
        if let Some(commands) = self.by_flow.get_mut(&pending.flow_id) {
            commands.remove(command_id);
            if commands.is_empty() {
                self.by_flow.remove(&pending.flow_id);
            }
        }
        out.push(SpeakerOutput::Report(SpeakerReport {
            requester: pending.requester,
            flow_id: pending.flow_id,
            correlation_id: pending.correlation_id,
            command_id: command_id.to_string(),
            outcome,
        }));
    }
}

fn timer_key(flow_id: &str, command_id: &str) -> CommandTimer {
    CommandTimer {
        flow_id: flow_id.to_string(),
        command_id: command_id.to_string(),
    }
}

#[cfg(test)]
mod tests;
