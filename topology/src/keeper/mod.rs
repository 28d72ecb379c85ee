//! The switch keeper: the switches hold exactly what the flows say.
//!
//! - It pays the removal debt: rules whose removal a flow operation could not confirm (and
//!   excess rules found on switches) are removed again, with capped exponential back-off and
//!   jitter, for as long as it takes, and at once when their switch comes back. While a rule
//!   is owed, what it uses stays taken in the allocator (quarantine).
//! - It validates a switch (`GET /v2/switches/{id}/validate`) and a flow
//!   (`GET /v2/flows/{id}/validate`) against what the allocator's reservations expect, from a
//!   dump of the switches.
//! - It pings a flow (`POST /v2/flows/{id}/ping`): a probe into the ingress of each direction
//!   of the path the flow holds, caught (or not) where the flow leaves the network.
//! - It syncs a switch (`POST /v2/switches/{id}/sync`): excess rules are removed here (owed
//!   until confirmed gone); a flow whose rules are missing or differ is repaired by its own
//!   hub, the only one that installs a flow's rules, so a repair never races an operation on
//!   the flow.
//! - It sweeps: every switch is synced once per `sweep_ms`, staggered, a few at a time, and
//!   whenever a switch comes back.
//!
//! It lives with the allocator on worker 0: both read and change the same reservations, in
//! one place. Pure logic: time comes in as `now_ms`; commands, deadlines, answers and flow
//! events go out as [`KeeperOutput`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use hubspoke_fsm::dataplane::{trace, DataPlane, LinkEnd, PortVlan, RuleMatch};
use hubspoke_fsm::ping::{
    probes, FlowPingResponse, PingDirection, UniFlowPingOutput, DEFAULT_PING_TIMEOUT_MS,
    MAX_PING_TIMEOUT_MS,
};
use hubspoke_fsm::segments::{flow_segments, FlowSegment};
use hubspoke_fsm::validation::{
    validate_switch, DirectionCheck, FlowSwitchRules, FlowValidation, RuleEntry, SwitchSync,
};
use hubspoke_fsm::{
    stable_hash, Envelope, ErrorBody, FlowEvent, FlowId, HistoryEntry, MeterEntry, NbRequest,
    NbResponse, Reservation, SbAction, SwitchId,
};
use hubspoke_speaker::deadline::DeadlineRequest;
use hubspoke_speaker::{ReportOutcome, Requester, SpeakerReport, SpeakerRequest};
use serde::{Deserialize, Serialize};
use tracing::{debug, info_span};

use crate::allocator::ResourcePool;
use crate::coordinator::{Deadline, TimerKey};

/// How the keeper retries the removal debt and sweeps the switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperSettings {
    /// The wait before owed rules of a switch are tried again; it doubles with every failure
    /// in a row, up to `debt_retry_cap_ms`, plus up to half of it as jitter.
    pub debt_retry_ms: u64,
    pub debt_retry_cap_ms: u64,
    /// Every switch is validated and synced once per this period (0: never), staggered.
    pub sweep_ms: u64,
    /// How many switches are synced at once, at most.
    pub sweep_parallel: usize,
}

impl Default for KeeperSettings {
    fn default() -> Self {
        KeeperSettings {
            debt_retry_ms: 1_000,
            debt_retry_cap_ms: 30_000,
            sweep_ms: 300_000,
            sweep_parallel: 4,
        }
    }
}

/// The keeper's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeeperTimer {
    /// Time to try a switch's owed rules again.
    PayDebt(SwitchId),
    /// Time to sync the next switch of the sweep.
    Sweep,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeeperOutput {
    Speaker(SpeakerRequest),
    Deadline(Deadline),
    Response(Envelope<NbResponse>),
    Event(Envelope<FlowEvent>),
    /// Ask a flow's hub to install its rules on a switch again.
    Repair {
        flow_id: FlowId,
        switch_id: SwitchId,
    },
}

/// Counters a person wants on `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeeperStats {
    pub sweeps: u64,
    pub excess_removed: u64,
    pub missing_reinstalled: u64,
    pub debt_paid: u64,
}

/// Whom an inspection answers, and what it does with what the switches hold.
#[derive(Clone, Debug)]
enum Ask {
    ValidateSwitch(Reply),
    /// A sweep's sync answers nobody.
    SyncSwitch(Option<Reply>),
    ValidateFlow(Reply, FlowId),
}

#[derive(Clone, Debug)]
struct Reply {
    correlation_id: String,
    key: String,
}

/// What a switch holds, or why it could not say.
type Dumped = Result<(Vec<FlowSegment>, Vec<MeterEntry>), String>;

/// Dumps of switches being gathered for one question.
struct Inspection {
    ask: Ask,
    dumps: BTreeMap<SwitchId, Option<Dumped>>,
}

enum Purpose {
    Pay(FlowSegment),
    Dump {
        inspection: u64,
    },
    /// One direction's probe of a flow ping.
    Ping {
        ping: u64,
        direction: PingDirection,
    },
}

/// A flow ping waiting for its probes.
struct PingRound {
    reply: Reply,
    flow_id: FlowId,
    /// What the flow held when the probes were sent.
    pinged: Reservation,
    forward: Option<UniFlowPingOutput>,
    reverse: Option<UniFlowPingOutput>,
}

struct InFlight {
    switch_id: SwitchId,
    purpose: Purpose,
}

/// The retry schedule of one switch's debt.
#[derive(Default)]
struct DebtSchedule {
    /// Payment rounds in a row that left rules owed.
    failures: u32,
    /// The generation of the registered retry (0: none).
    generation: u64,
    /// Removals of this switch's debt in flight.
    paying: usize,
    /// Whether one of them failed.
    round_failed: bool,
}

#[derive(Default)]
pub struct Keeper {
    settings: KeeperSettings,
    next_id: u64,
    in_flight: HashMap<String, InFlight>,
    debt: HashMap<SwitchId, DebtSchedule>,
    inspections: HashMap<u64, Inspection>,
    pings: HashMap<u64, PingRound>,
    /// Switches waiting for a sync (they came back, or the sweep reached them).
    sync_queue: VecDeque<SwitchId>,
    syncing: HashSet<SwitchId>,
    /// Where the sweep goes next, in switch id order.
    sweep_cursor: usize,
    sweep_generation: u64,
    stats: KeeperStats,
}

/// The key the keeper's commands and answers travel under: it can be no flow id ('/' is not
/// allowed in one), and it routes a switch's commands to one speaker.
fn switch_key(switch_id: SwitchId) -> String {
    format!("switch/{switch_id}")
}

impl Keeper {
    pub fn new(settings: KeeperSettings) -> Self {
        Keeper {
            settings,
            ..Keeper::default()
        }
    }

    pub fn stats(&self) -> KeeperStats {
        self.stats
    }

    /// At start: the debt a restarted topology found is tried at once, the switches it knows
    /// that hold its flows are synced (their tables may have changed while it was down), and
    /// the sweep begins.
    pub fn start(&mut self, now_ms: u64, pool: &ResourcePool, out: &mut Vec<KeeperOutput>) {
        let owing: Vec<SwitchId> = pool.owed().switches().collect();
        for switch_id in owing {
            self.pay(pool, switch_id, out);
        }
        for switch_id in pool.switches_holding_flows() {
            self.queue_sync(switch_id, out);
        }
        self.arm_sweep(now_ms, pool, out);
    }

    /// Rules were added to the debt of `switch_id`: they are tried again after the back-off
    /// (the operation that owed them has just tried).
    pub fn owed(&mut self, now_ms: u64, switch_id: SwitchId, out: &mut Vec<KeeperOutput>) {
        let schedule = self.debt.entry(switch_id).or_default();
        if schedule.generation == 0 && schedule.paying == 0 {
            self.schedule_payment(now_ms, switch_id, out);
        }
    }

    /// A switch came back: its debt is tried at once, and it is synced.
    pub fn switch_back(
        &mut self,
        pool: &ResourcePool,
        switch_id: SwitchId,
        out: &mut Vec<KeeperOutput>,
    ) {
        if let Some(schedule) = self.debt.get_mut(&switch_id) {
            schedule.failures = 0;
        }
        self.pay(pool, switch_id, out);
        self.queue_sync(switch_id, out);
    }

    pub fn request(
        &mut self,
        now_ms: u64,
        pool: &ResourcePool,
        envelope: Envelope<NbRequest>,
        out: &mut Vec<KeeperOutput>,
    ) {
        let reply = Reply {
            correlation_id: envelope.correlation_id.clone(),
            key: envelope.key.clone(),
        };
        let (ask, switches) = match envelope.payload {
            NbRequest::Ping => {
                out.push(respond(&reply, now_ms, NbResponse::Pong));
                return;
            }
            NbRequest::ValidateSwitch { switch_id } => {
                (Ask::ValidateSwitch(reply), vec![switch_id])
            }
            NbRequest::SyncSwitch { switch_id } => (Ask::SyncSwitch(Some(reply)), vec![switch_id]),
            NbRequest::PingFlow {
                flow_id,
                timeout_ms,
            } => {
                self.ping_flow(now_ms, pool, reply, flow_id, timeout_ms, out);
                return;
            }
            NbRequest::ValidateFlow { flow_id } => {
                let (current, pending) = pool.reservations_of(&flow_id);
                let switches: BTreeSet<SwitchId> = current
                    .iter()
                    .chain(&pending)
                    .flat_map(|r| flow_segments(&r.request, &r.resources))
                    .map(|rule| rule.switch_id)
                    .collect();
                if current.is_none() {
                    out.push(respond(&reply, now_ms, no_path(&flow_id)));
                    return;
                }
                (
                    Ask::ValidateFlow(reply, flow_id),
                    switches.into_iter().collect(),
                )
            }
            other => {
                let error = ErrorBody::new(
                    400,
                    "bad-request",
                    "Not a validation",
                    format!("the switch keeper does not answer {other:?}"),
                );
                out.push(respond(&reply, now_ms, NbResponse::Error { error }));
                return;
            }
        };
        if let Some(unknown) = switches.iter().find(|s| !pool.knows_switch(**s)) {
            let error = ErrorBody::new(
                404,
                "not-found",
                "Switch not found",
                format!("switch {unknown} is not in the network"),
            );
            let reply = match &ask {
                Ask::ValidateSwitch(r) | Ask::ValidateFlow(r, _) | Ask::SyncSwitch(Some(r)) => r,
                Ask::SyncSwitch(None) => return,
            };
            out.push(respond(reply, now_ms, NbResponse::Error { error }));
            return;
        }
        self.inspect(ask, switches, out);
    }

    /// An answer to one of the keeper's commands.
    pub fn report(
        &mut self,
        now_ms: u64,
        pool: &mut ResourcePool,
        report: SpeakerReport,
        out: &mut Vec<KeeperOutput>,
    ) {
        let Some(InFlight { switch_id, purpose }) = self.in_flight.remove(&report.command_id)
        else {
            return;
        };
        match purpose {
            Purpose::Pay(rule) => {
                let schedule = self.debt.entry(switch_id).or_default();
                schedule.paying = schedule.paying.saturating_sub(1);
                match report.outcome {
                    ReportOutcome::Succeeded => {
                        if let Some(paid) = pool.paid(&rule) {
                            self.stats.debt_paid += 1;
                            out.extend(paid_events(now_ms, paid.flow_id, rule));
                        }
                    }
                    ReportOutcome::Failed { .. }
                    | ReportOutcome::Listed { .. }
                    | ReportOutcome::Pinged { .. }
                    | ReportOutcome::PingLost { .. } => {
                        schedule.round_failed = true;
                    }
                }
                self.after_payment(now_ms, pool, switch_id, out);
            }
            Purpose::Dump { inspection } => {
                let dumped = match report.outcome {
                    ReportOutcome::Listed { rules, meters } => Ok((rules, meters)),
                    ReportOutcome::Failed { reason } => Err(reason),
                    ReportOutcome::Succeeded
                    | ReportOutcome::Pinged { .. }
                    | ReportOutcome::PingLost { .. } => Err("the switch answered no rules".into()),
                };
                let Some(pending) = self.inspections.get_mut(&inspection) else {
                    return;
                };
                pending.dumps.insert(switch_id, Some(dumped));
                if pending.dumps.values().all(Option::is_some) {
                    if let Some(done) = self.inspections.remove(&inspection) {
                        self.conclude(now_ms, pool, done, out);
                    }
                }
            }
            Purpose::Ping { ping, direction } => {
                let answer = match report.outcome {
                    ReportOutcome::Pinged { latency_ns } => UniFlowPingOutput::arrived(latency_ns),
                    ReportOutcome::PingLost { reason } | ReportOutcome::Failed { reason } => {
                        UniFlowPingOutput::failed(reason)
                    }
                    ReportOutcome::Succeeded | ReportOutcome::Listed { .. } => {
                        UniFlowPingOutput::failed("the switch answered the ping without a result")
                    }
                };
                self.probe_answered(now_ms, pool, ping, direction, answer, out);
            }
        }
    }

    /// Sends a probe each way into the path the flow holds; the answer goes once both are
    /// back. The speaker answers each probe within `timeout_ms` (a lost one included).
    fn ping_flow(
        &mut self,
        now_ms: u64,
        pool: &ResourcePool,
        reply: Reply,
        flow_id: FlowId,
        timeout_ms: Option<u64>,
        out: &mut Vec<KeeperOutput>,
    ) {
        let _span =
            info_span!("keeper", flow_id = %flow_id, correlation_id = %reply.correlation_id)
                .entered();
        let Some(current) = pool.reservations_of(&flow_id).0 else {
            out.push(respond(&reply, now_ms, no_path(&flow_id)));
            return;
        };
        let timeout_ms = timeout_ms
            .unwrap_or(DEFAULT_PING_TIMEOUT_MS)
            .clamp(1, MAX_PING_TIMEOUT_MS);
        self.next_id += 1;
        let ping = self.next_id;
        for probe in probes(&current.request, &current.resources) {
            debug!(direction = ?probe.direction, switch_id = %probe.ingress.switch_id, timeout_ms,
                "flow ping: probe sent");
            let purpose = Purpose::Ping {
                ping,
                direction: probe.direction,
            };
            let (key, command_id) = self.track(probe.ingress.switch_id, purpose);
            out.push(KeeperOutput::Speaker(SpeakerRequest::Ping {
                requester: Requester::Keeper,
                flow_id: key,
                correlation_id: reply.correlation_id.clone(),
                command_id,
                segment: probe.ingress,
                exit: probe.exit,
                timeout_ms,
            }));
        }
        let round = PingRound {
            reply,
            flow_id,
            pinged: current.clone(),
            forward: None,
            reverse: None,
        };
        self.pings.insert(ping, round);
    }

    /// One probe of a flow ping came back: with both, the ping is answered.
    fn probe_answered(
        &mut self,
        now_ms: u64,
        pool: &ResourcePool,
        ping: u64,
        direction: PingDirection,
        answer: UniFlowPingOutput,
        out: &mut Vec<KeeperOutput>,
    ) {
        let Some(round) = self.pings.get_mut(&ping) else {
            return;
        };
        let _span = info_span!("keeper", flow_id = %round.flow_id, correlation_id = %round.reply.correlation_id)
            .entered();
        debug!(?direction, ?answer, "flow ping: probe answered");
        let slot = match direction {
            PingDirection::Forward => &mut round.forward,
            PingDirection::Reverse => &mut round.reverse,
        };
        *slot = Some(answer);
        if round.forward.is_none() || round.reverse.is_none() {
            return;
        }
        let Some(PingRound {
            reply,
            flow_id,
            pinged,
            forward: Some(forward),
            reverse: Some(reverse),
        }) = self.pings.remove(&ping)
        else {
            return;
        };
        let error = (pool.reservations_of(&flow_id).0 != Some(&pinged)).then(|| {
            format!(
                "flow {flow_id} changed while it was pinged (moved, updated or removed): the \
                 results are of the path it had when the probes were sent"
            )
        });
        let ping = FlowPingResponse {
            flow_id,
            forward,
            reverse,
            error,
        };
        out.push(respond(&reply, now_ms, NbResponse::FlowPing { ping }));
    }

    pub fn timer(
        &mut self,
        now_ms: u64,
        pool: &ResourcePool,
        timer: KeeperTimer,
        generation: u64,
        out: &mut Vec<KeeperOutput>,
    ) {
        match timer {
            KeeperTimer::PayDebt(switch_id) => {
                let current = self.debt.get(&switch_id).map(|s| s.generation);
                if current == Some(generation) {
                    self.pay(pool, switch_id, out);
                }
            }
            KeeperTimer::Sweep if generation == self.sweep_generation => {
                if let Some(next) = pool.nth_switch(self.sweep_cursor) {
                    self.sweep_cursor += 1;
                    self.stats.sweeps += 1;
                    self.queue_sync(next, out);
                }
                self.arm_sweep(now_ms, pool, out);
            }
            KeeperTimer::Sweep => {}
        }
    }

    /// Sends a removal for every owed rule of the switch not already being removed.
    fn pay(&mut self, pool: &ResourcePool, switch_id: SwitchId, out: &mut Vec<KeeperOutput>) {
        let rules: Vec<FlowSegment> = pool.owed().on(switch_id).map(|o| o.rule.clone()).collect();
        let schedule = self.debt.entry(switch_id).or_default();
        if schedule.paying > 0 || rules.is_empty() {
            return;
        }
        if schedule.generation != 0 {
            out.push(KeeperOutput::Deadline(DeadlineRequest::Cancel {
                key: TimerKey::Keeper(KeeperTimer::PayDebt(switch_id)),
                generation: schedule.generation,
            }));
            schedule.generation = 0;
        }
        schedule.paying = rules.len();
        schedule.round_failed = false;
        for rule in rules {
            self.send(
                switch_id,
                SbAction::Remove,
                rule.clone(),
                Purpose::Pay(rule),
                out,
            );
        }
    }

    /// A removal of the switch's debt was answered: once the round is over, what is still
    /// owed is tried again after the back-off.
    fn after_payment(
        &mut self,
        now_ms: u64,
        pool: &ResourcePool,
        switch_id: SwitchId,
        out: &mut Vec<KeeperOutput>,
    ) {
        let Some(schedule) = self.debt.get_mut(&switch_id) else {
            return;
        };
        if schedule.paying > 0 {
            return;
        }
        if pool.owed().on(switch_id).next().is_none() {
            self.debt.remove(&switch_id);
            return;
        }
        if schedule.round_failed {
            schedule.failures = schedule.failures.saturating_add(1);
        }
        self.schedule_payment(now_ms, switch_id, out);
    }

    fn schedule_payment(&mut self, now_ms: u64, switch_id: SwitchId, out: &mut Vec<KeeperOutput>) {
        self.next_id += 1;
        let schedule = self.debt.entry(switch_id).or_default();
        let doubled = self
            .settings
            .debt_retry_ms
            .saturating_mul(1 << schedule.failures.min(16))
            .min(
                self.settings
                    .debt_retry_cap_ms
                    .max(self.settings.debt_retry_ms),
            );
        let jitter = stable_hash(&[&switch_id.0.to_le_bytes(), &schedule.failures.to_le_bytes()])
            % (doubled / 2 + 1);
        schedule.generation = self.next_id;
        out.push(KeeperOutput::Deadline(DeadlineRequest::Register {
            key: TimerKey::Keeper(KeeperTimer::PayDebt(switch_id)),
            generation: self.next_id,
            at_ms: now_ms + doubled + jitter,
        }));
    }

    /// The sweep's next tick: one switch per `sweep_ms / switches`.
    fn arm_sweep(&mut self, now_ms: u64, pool: &ResourcePool, out: &mut Vec<KeeperOutput>) {
        if self.settings.sweep_ms == 0 {
            return;
        }
        let switches = pool.switch_count().max(1) as u64;
        self.next_id += 1;
        self.sweep_generation = self.next_id;
        out.push(KeeperOutput::Deadline(DeadlineRequest::Register {
            key: TimerKey::Keeper(KeeperTimer::Sweep),
            generation: self.next_id,
            at_ms: now_ms + (self.settings.sweep_ms / switches).max(1),
        }));
    }

    fn queue_sync(&mut self, switch_id: SwitchId, out: &mut Vec<KeeperOutput>) {
        if !self.syncing.contains(&switch_id) && !self.sync_queue.contains(&switch_id) {
            self.sync_queue.push_back(switch_id);
        }
        self.start_syncs(out);
    }

    /// Starts queued syncs while fewer than `sweep_parallel` run: a thousand switches coming
    /// back at once are not dumped at once.
    fn start_syncs(&mut self, out: &mut Vec<KeeperOutput>) {
        while self.syncing.len() < self.settings.sweep_parallel.max(1) {
            let Some(switch_id) = self.sync_queue.pop_front() else {
                return;
            };
            self.syncing.insert(switch_id);
            self.inspect(Ask::SyncSwitch(None), vec![switch_id], out);
        }
    }

    /// Dumps every rule of `switches`, to answer `ask` once they all answered.
    fn inspect(&mut self, ask: Ask, switches: Vec<SwitchId>, out: &mut Vec<KeeperOutput>) {
        self.next_id += 1;
        let inspection = self.next_id;
        self.inspections.insert(
            inspection,
            Inspection {
                ask,
                dumps: switches.iter().map(|&s| (s, None)).collect(),
            },
        );
        for switch_id in switches {
            self.send(
                switch_id,
                SbAction::Dump,
                FlowSegment::dump_query(switch_id, 0),
                Purpose::Dump { inspection },
                out,
            );
        }
    }

    /// A command about to be sent to `switch_id`, for `purpose`: its key and its id.
    fn track(&mut self, switch_id: SwitchId, purpose: Purpose) -> (String, String) {
        self.next_id += 1;
        let key = switch_key(switch_id);
        let command_id = format!("{key}/{}", self.next_id);
        self.in_flight
            .insert(command_id.clone(), InFlight { switch_id, purpose });
        (key, command_id)
    }

    fn send(
        &mut self,
        switch_id: SwitchId,
        action: SbAction,
        segment: FlowSegment,
        purpose: Purpose,
        out: &mut Vec<KeeperOutput>,
    ) {
        let (key, command_id) = self.track(switch_id, purpose);
        out.push(KeeperOutput::Speaker(SpeakerRequest::Run {
            requester: Requester::Keeper,
            flow_id: key.clone(),
            correlation_id: key,
            command_id,
            action,
            segment,
        }));
    }

    /// Every switch of an inspection answered.
    fn conclude(
        &mut self,
        now_ms: u64,
        pool: &mut ResourcePool,
        inspection: Inspection,
        out: &mut Vec<KeeperOutput>,
    ) {
        let Inspection { ask, dumps } = inspection;
        if let Ask::SyncSwitch(_) = &ask {
            for switch_id in dumps.keys() {
                self.syncing.remove(switch_id);
            }
        }
        let mut held: BTreeMap<SwitchId, (Vec<FlowSegment>, Vec<MeterEntry>)> = BTreeMap::new();
        let mut silent = Vec::new();
        for (switch_id, dumped) in dumps {
            match dumped {
                Some(Ok(dump)) => {
                    held.insert(switch_id, dump);
                }
                Some(Err(reason)) => silent.push(format!("switch {switch_id}: {reason}")),
                None => silent.push(format!("switch {switch_id} did not answer")),
            }
        }
        if !silent.is_empty() {
            if let Ask::ValidateSwitch(reply)
            | Ask::ValidateFlow(reply, _)
            | Ask::SyncSwitch(Some(reply)) = &ask
            {
                let error = ErrorBody::new(
                    503,
                    "switch-unavailable",
                    "Switch is not available",
                    silent.join("; "),
                );
                out.push(respond(reply, now_ms, NbResponse::Error { error }));
            }
            self.start_syncs(out);
            return;
        }
        match ask {
            Ask::ValidateSwitch(reply) => {
                let Some((switch_id, (rules, meters))) = held.into_iter().next() else {
                    return;
                };
                let validation =
                    validate_switch(switch_id, &pool.expectation(switch_id), &rules, &meters);
                let response = NbResponse::SwitchValidation {
                    validation: Box::new(validation),
                };
                out.push(respond(&reply, now_ms, response));
            }
            Ask::SyncSwitch(reply) => {
                let Some((switch_id, (rules, meters))) = held.into_iter().next() else {
                    return;
                };
                let sync = self.sync(now_ms, pool, switch_id, &rules, &meters, out);
                if let Some(reply) = reply {
                    let response = NbResponse::SwitchSync {
                        sync: Box::new(sync),
                    };
                    out.push(respond(&reply, now_ms, response));
                }
                self.start_syncs(out);
            }
            Ask::ValidateFlow(reply, flow_id) => {
                let response = match validate_flow(pool, &flow_id, &held) {
                    Some(validation) => NbResponse::FlowValidation {
                        validation: Box::new(validation),
                    },
                    None => no_path(&flow_id),
                };
                out.push(respond(&reply, now_ms, response));
            }
        }
    }

    /// Excess rules are owed and removed now; a flow with rules missing or different there is
    /// repaired by its hub.
    fn sync(
        &mut self,
        now_ms: u64,
        pool: &mut ResourcePool,
        switch_id: SwitchId,
        rules: &[FlowSegment],
        meters: &[MeterEntry],
        out: &mut Vec<KeeperOutput>,
    ) -> SwitchSync {
        let validation = validate_switch(switch_id, &pool.expectation(switch_id), rules, meters);
        let excess: Vec<&FlowSegment> = rules
            .iter()
            .filter(|rule| {
                let entry = RuleEntry::new(rule, None);
                validation.rules.excess.contains(&entry)
            })
            .collect();
        let mut newly_owed = Vec::new();
        for rule in &excess {
            if pool.owe_orphan((*rule).clone()) {
                newly_owed.push((*rule).clone());
            }
        }
        if !newly_owed.is_empty() {
            self.stats.excess_removed += newly_owed.len() as u64;
            out.push(KeeperOutput::Event(Envelope::new(
                format!("keeper:{switch_id}"),
                switch_id.to_string(),
                now_ms,
                FlowEvent::ExcessOwed { rules: newly_owed },
            )));
        }
        if !validation.rules.pending_removal.is_empty() || !excess.is_empty() {
            self.pay(pool, switch_id, out);
        }
        let repairs: BTreeSet<FlowId> = validation
            .rules
            .missing
            .iter()
            .chain(validation.rules.misconfigured.iter().map(|m| &m.expected))
            .filter_map(|entry| entry.flow_id.clone())
            .collect();
        self.stats.missing_reinstalled +=
            (validation.rules.missing.len() + validation.rules.misconfigured.len()) as u64;
        for flow_id in &repairs {
            out.push(KeeperOutput::Repair {
                flow_id: flow_id.clone(),
                switch_id,
            });
        }
        SwitchSync {
            excess_removed: validation.rules.excess.clone(),
            flows_repaired: repairs.into_iter().collect(),
            validation,
        }
    }
}

/// 409: the flow holds no reserved path (it is DOWN without one, or gone), so it has no rules
/// to validate or ping.
fn no_path(flow_id: &str) -> NbResponse {
    let error = ErrorBody::new(
        409,
        "no-path",
        "Flow has no path",
        format!("flow {flow_id} holds no reserved path, or does not exist"),
    );
    NbResponse::Error { error }
}

fn respond(reply: &Reply, now_ms: u64, response: NbResponse) -> KeeperOutput {
    KeeperOutput::Response(Envelope::new(
        reply.correlation_id.clone(),
        reply.key.clone(),
        now_ms,
        response,
    ))
}

/// A paid rule, made durable; a flow's debt also goes to its history.
fn paid_events(now_ms: u64, flow_id: Option<FlowId>, rule: FlowSegment) -> Vec<KeeperOutput> {
    let key = flow_id
        .clone()
        .unwrap_or_else(|| rule.switch_id.to_string());
    let correlation_id = format!("keeper:{}", rule.switch_id);
    let mut events = Vec::new();
    if let Some(flow_id) = &flow_id {
        let entry = HistoryEntry {
            timestamp_ms: now_ms,
            operation: "removal-debt".into(),
            event: "rule_removed".into(),
            from_state: "Owed".into(),
            to_state: "Paid".into(),
            details: format!(
                "rule {:#x} confirmed removed from switch {}",
                rule.cookie, rule.switch_id
            ),
            correlation_id: correlation_id.clone(),
        };
        events.push(KeeperOutput::Event(Envelope::new(
            correlation_id.clone(),
            flow_id.clone(),
            now_ms,
            FlowEvent::History {
                flow_id: flow_id.clone(),
                entry,
            },
        )));
    }
    events.push(KeeperOutput::Event(Envelope::new(
        correlation_id,
        key,
        now_ms,
        FlowEvent::RemovalPaid {
            flow_id,
            rules: vec![rule],
        },
    )));
    events
}

/// A flow's rules on its switches against what they hold, and a packet traced each way
/// through what they hold; `None` when the flow holds no path any more.
fn validate_flow(
    pool: &ResourcePool,
    flow_id: &str,
    held: &BTreeMap<SwitchId, (Vec<FlowSegment>, Vec<MeterEntry>)>,
) -> Option<FlowValidation> {
    let (current, pending) = pool.reservations_of(flow_id);
    let current = current?;
    let expected = flow_segments(&current.request, &current.resources);
    let cookie_ids: BTreeSet<u64> = std::iter::once(current.resources.cookie)
        .chain(pending.map(|p| p.resources.cookie))
        .collect();
    let switches = held
        .iter()
        .map(|(switch_id, (rules, _))| {
            FlowSwitchRules::new(*switch_id, flow_id, &expected, &cookie_ids, rules)
        })
        .collect();
    let tables = HeldTables { held, pool };
    let source = PortVlan::from(&current.request.source);
    let destination = PortVlan::from(&current.request.destination);
    let forward = DirectionCheck::new(source, destination, trace(&tables, source));
    let reverse = DirectionCheck::new(destination, source, trace(&tables, destination));
    Some(FlowValidation::new(
        flow_id.to_string(),
        switches,
        forward,
        reverse,
    ))
}

/// What the dumped switches hold, over the links the allocator knows.
struct HeldTables<'a> {
    held: &'a BTreeMap<SwitchId, (Vec<FlowSegment>, Vec<MeterEntry>)>,
    pool: &'a ResourcePool,
}

impl DataPlane for HeldTables<'_> {
    fn matching(&self, switch_id: SwitchId, rule: RuleMatch) -> Option<Vec<&FlowSegment>> {
        let (rules, _) = self.held.get(&switch_id)?;
        Some(rules.iter().filter(|r| r.rule_match() == rule).collect())
    }

    fn link(&self, switch_id: SwitchId, port: u32) -> Option<LinkEnd> {
        self.pool.link_end(switch_id, port)
    }
}

#[cfg(test)]
mod tests;
