//! Reroutes the network asks for: a flow whose path uses a down link, a DOWN flow once a link
//! comes up, and a DOWN flow whose last operation failed. They wait for the network to settle
//! (every new trigger for a flow pushes its reroute back by `delay_ms`, up to `max_delay_ms`
//! after the first), so a flapping link costs nothing and a failure becomes one batch.
//!
//! A protected flow whose primary breaks while its protected path is whole does not wait: it
//! is swapped onto the protected path at once (no path search, only its ingress rules
//! change), and a new protected path is then found in the background (a re-protection,
//! throttled like a reroute). A swap that fails falls back to a reroute.

use hubspoke_fsm::reroute::RerouteKind;
use hubspoke_fsm::FlowStatus;
use hubspoke_speaker::deadline::DeadlineRequest;
use serde::{Deserialize, Serialize};

use super::{hub_timer, Hub, HubOutput};
use crate::coordinator::HubTimer;

/// How long network-triggered reroutes wait for the network to settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerouteThrottle {
    /// A flow is rerouted once no new trigger came for it for this long.
    pub delay_ms: u64,
    /// ... but no later than this after its first trigger.
    pub max_delay_ms: u64,
}

impl Default for RerouteThrottle {
    fn default() -> Self {
        RerouteThrottle {
            delay_ms: 500,
            max_delay_ms: 5_000,
        }
    }
}

/// A DOWN flow (its path broke, a switch refused or timed out, no path yet) is retried after
/// `max_delay_ms` doubled per failure in a row, up to this many doublings.
const RETRY_DOUBLINGS: u32 = 4;

/// What the network asks of one flow.
#[derive(Default)]
pub(super) struct RerouteState {
    /// The network view says the flow's installed path uses a down link.
    path_down: bool,
    /// ... and its protected path one.
    protected_down: bool,
    queued: Option<QueuedReroute>,
    /// Operations that left the flow DOWN in a row: the next retry waits longer.
    failures_in_a_row: u32,
}

impl RerouteState {
    pub(super) fn path_is_down(&self) -> bool {
        self.path_down
    }

    pub(super) fn protected_is_down(&self) -> bool {
        self.protected_down
    }

    /// The flow's traffic moved onto its protected path: what the view said of each path is
    /// now true of the other (until the view says more).
    pub(super) fn paths_swapped(&mut self) {
        std::mem::swap(&mut self.path_down, &mut self.protected_down);
    }

    /// A deleted flow's queued reroute goes with it.
    pub(super) fn cancel(self, flow_id: &str, out: &mut Vec<HubOutput>) {
        if let Some(queued) = self.queued {
            out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
                key: hub_timer(flow_id, HubTimer::Reroute),
                generation: queued.generation,
            }));
        }
    }
}

/// A network-triggered reroute waiting for the network to settle.
struct QueuedReroute {
    kind: RerouteKind,
    first_ms: u64,
    generation: u64,
}

impl Hub {
    /// A link came up or a switch came back: every DOWN or DEGRADED flow gets another
    /// chance, and so does every UP flow without the protected path it asks for.
    pub fn network_improved(&mut self, now_ms: u64, out: &mut Vec<HubOutput>) {
        let retried: Vec<(String, RerouteKind)> = self
            .flows
            .iter()
            .filter_map(|(flow_id, slot)| {
                let kind = if slot.wants_better() {
                    RerouteKind::Retry
                } else if slot.is_up() && slot.wants_protection() {
                    RerouteKind::Reprotect
                } else {
                    return None;
                };
                Some((flow_id.clone(), kind))
            })
            .collect();
        for (flow_id, kind) in retried {
            self.queue_reroute(now_ms, &flow_id, kind, out);
        }
    }

    /// A flow was deleted: the DEGRADED flows try for the bandwidth it held.
    pub(super) fn bandwidth_freed(&mut self, now_ms: u64, out: &mut Vec<HubOutput>) {
        let degraded: Vec<String> = self.degraded.iter().cloned().collect();
        for flow_id in degraded {
            self.queue_reroute(now_ms, &flow_id, RerouteKind::Retry, out);
        }
    }

    /// The network view says one of the flow's installed paths uses a down link, or no longer
    /// does. A broken protected path is replaced in the background; a broken primary is
    /// swapped away from at once when it can be, else rerouted.
    pub(super) fn path_affected(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        protected: bool,
        affected: bool,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        if protected {
            slot.reroute.protected_down = affected;
            if affected && slot.is_up() {
                self.queue_reroute(now_ms, flow_id, RerouteKind::Reprotect, out);
            }
            return;
        }
        slot.reroute.path_down = affected;
        let queued_for_path = slot
            .reroute
            .queued
            .as_ref()
            .is_some_and(|q| q.kind == RerouteKind::PathDown);
        if affected {
            if !self.swap_now(now_ms, flow_id, out) {
                self.queue_reroute(now_ms, flow_id, RerouteKind::PathDown, out);
            }
        } else if queued_for_path {
            self.unqueue_reroute(flow_id, out);
        }
    }

    /// Swaps an idle flow whose primary broke onto its protected path, if that is whole;
    /// false if it cannot be swapped.
    fn swap_now(&mut self, now_ms: u64, flow_id: &str, out: &mut Vec<HubOutput>) -> bool {
        let Some(slot) = self.flows.get(flow_id) else {
            return false;
        };
        let swappable = slot.operation.is_none()
            && !slot.reroute.protected_down
            && slot.record.as_ref().is_some_and(|r| {
                r.request.allocate_protected_path
                    && r.resources.as_ref().is_some_and(|r| r.protected.is_some())
            });
        let Some(record) = slot.record.clone().filter(|_| swappable) else {
            return false;
        };
        self.unqueue_reroute(flow_id, out);
        self.metrics.swaps_started.inc();
        let machine = self.swap_machine(record, format!("{flow_id}:{now_ms}"));
        let correlation_id = format!("swap:{flow_id}:{now_ms}");
        self.start(now_ms, flow_id, machine, correlation_id, false, out);
        true
    }

    /// Starts a queued reroute if it is still wanted; a busy flow waits another round.
    pub(super) fn reroute_due(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        generation: u64,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        if slot.reroute.queued.as_ref().map(|q| q.generation) != Some(generation) {
            return;
        }
        if slot.operation.is_some() {
            let kind = slot
                .reroute
                .queued
                .as_ref()
                .map_or(RerouteKind::Retry, |q| q.kind.clone());
            slot.reroute.queued = None;
            self.queue_reroute(now_ms, flow_id, kind, out);
            return;
        }
        let Some(queued) = slot.reroute.queued.take() else {
            return;
        };
        let wanted = match queued.kind {
            RerouteKind::PathDown => slot.reroute.path_down,
            RerouteKind::Reprotect => slot.is_up() && slot.wants_protection(),
            _ => slot.wants_better(),
        };
        let Some(record) = slot.record.clone().filter(|_| wanted) else {
            return;
        };
        let prefix = format!("{flow_id}:{now_ms}");
        // A DOWN flow whose path is whole keeps it: its rules are installed again.
        let keeps_path = queued.kind == RerouteKind::Retry
            && record.status == FlowStatus::Down
            && record.resources.is_some()
            && !slot.reroute.path_down;
        let (machine, operation) = if keeps_path {
            (self.sync_machine(record, prefix), "sync")
        } else {
            self.metrics.reroutes_started.inc();
            (self.reroute_machine(record, queued.kind, prefix), "reroute")
        };
        let correlation_id = format!("{operation}:{flow_id}:{now_ms}");
        self.start(now_ms, flow_id, machine, correlation_id, false, out);
    }

    /// After an operation on a flow that still exists finished: a path that broke while it
    /// ran is rerouted, and a flow left DOWN is tried again later, waiting longer after each
    /// failure in a row (nothing else would try again until the network improves, so a
    /// switch that refused or timed out under load must not strand the flow).
    /// A protected flow whose primary broke while the operation ran is swapped at once,
    /// unless the operation was a swap (`was_swap`): one that failed falls back to a reroute,
    /// and one that succeeded is re-protected. A re-protection that found nothing waits for
    /// the network to improve.
    pub(super) fn after_operation(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        was_swap: bool,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        if slot.is_up() {
            slot.reroute.failures_in_a_row = 0;
            if slot.reroute.path_down && !was_swap && self.swap_now(now_ms, flow_id, out) {
                return;
            }
            let Some(slot) = self.flows.get_mut(flow_id) else {
                return;
            };
            if slot.reroute.path_down && slot.reroute.queued.is_none() {
                self.queue_reroute(now_ms, flow_id, RerouteKind::PathDown, out);
            } else if was_swap && slot.wants_protection() && slot.reroute.queued.is_none() {
                self.queue_reroute(now_ms, flow_id, RerouteKind::Reprotect, out);
            }
        } else if slot.reroute.queued.is_none() && slot.wants_better() {
            let doublings = slot.reroute.failures_in_a_row.min(RETRY_DOUBLINGS);
            let delay_ms = self.throttle.max_delay_ms.max(1) << doublings;
            slot.reroute.failures_in_a_row += 1;
            self.queue_reroute_in(now_ms, flow_id, RerouteKind::Retry, delay_ms, out);
        }
    }

    /// Schedules a network-triggered reroute, or pushes a scheduled one back.
    fn queue_reroute(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        kind: RerouteKind,
        out: &mut Vec<HubOutput>,
    ) {
        self.queue_reroute_in(now_ms, flow_id, kind, self.throttle.delay_ms, out);
    }

    /// Schedules a reroute `delay_ms` from now (at the latest `max_delay_ms` after the first
    /// trigger, unless the delay itself is longer).
    fn queue_reroute_in(
        &mut self,
        now_ms: u64,
        flow_id: &str,
        kind: RerouteKind,
        delay_ms: u64,
        out: &mut Vec<HubOutput>,
    ) {
        let Some(slot) = self.flows.get_mut(flow_id) else {
            return;
        };
        self.next_generation += 1;
        let first_ms = slot.reroute.queued.as_ref().map_or(now_ms, |q| q.first_ms);
        // A re-protection moves the flow only if its primary cannot carry it: it never
        // replaces a reroute already queued.
        let kind = match (&slot.reroute.queued, kind) {
            (Some(queued), RerouteKind::Reprotect) => queued.kind.clone(),
            (_, kind) => kind,
        };
        let latest_ms = first_ms + self.throttle.max_delay_ms.max(delay_ms);
        let at_ms = (now_ms + delay_ms).min(latest_ms);
        slot.reroute.queued = Some(QueuedReroute {
            kind,
            first_ms,
            generation: self.next_generation,
        });
        out.push(HubOutput::Deadline(DeadlineRequest::Register {
            key: hub_timer(flow_id, HubTimer::Reroute),
            generation: self.next_generation,
            at_ms: at_ms.max(now_ms + 1),
        }));
    }

    fn unqueue_reroute(&mut self, flow_id: &str, out: &mut Vec<HubOutput>) {
        let Some(queued) = self
            .flows
            .get_mut(flow_id)
            .and_then(|s| s.reroute.queued.take())
        else {
            return;
        };
        out.push(HubOutput::Deadline(DeadlineRequest::Cancel {
            key: hub_timer(flow_id, HubTimer::Reroute),
            generation: queued.generation,
        }));
    }
}
