use hubspoke_fsm::{FlowEndpoint, FlowRequest, Isl, Resources, SbAction, SwitchId};

use super::*;
use crate::allocator::AllocationResult;
use hubspoke_speaker::{ReportOutcome, Requester, SpeakerReport};

fn request(flow_id: &str) -> FlowRequest {
    let endpoint = |n| FlowEndpoint {
        switch_id: SwitchId(n),
        port_number: 10,
        vlan_id: 0,
    };
    FlowRequest {
        flow_id: flow_id.into(),
        source: endpoint(1),
        destination: endpoint(2),
        maximum_bandwidth: 1000,
        description: String::new(),
        ..Default::default()
    }
}

fn resources() -> Resources {
    Resources {
        cookie: 7,
        transit_vlans: vec![2],
        forward_meter: Some(32),
        reverse_meter: Some(32),
        forward_path: vec![Isl {
            src_switch: SwitchId(1),
            src_port: 1,
            dst_switch: SwitchId(2),
            dst_port: 1,
        }],
        ..Default::default()
    }
}

fn hub() -> (Hub, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(
        Timeouts::default(),
        RerouteThrottle::default(),
        metrics.clone(),
    );
    (hub, metrics)
}

/// A hub that recovered flow `f1`, UP on its path, with nothing in flight.
fn hub_with_an_up_flow() -> (Hub, Arc<Metrics>) {
    let mut record = FlowRecord::new(request("f1"), 10);
    record.resources = Some(resources());
    record.status = FlowStatus::Up;
    hub_with(record)
}

/// A hub that recovered `record`, with nothing in flight.
fn hub_with(record: FlowRecord) -> (Hub, Arc<Metrics>) {
    let (mut hub, metrics) = hub();
    hub.restore(
        1000,
        [RecoveredFlow {
            record,
            interrupted: None,
        }],
        [],
        &mut Vec::new(),
    );
    (hub, metrics)
}

fn create(correlation_id: &str) -> Envelope<NbRequest> {
    Envelope::new(
        correlation_id,
        "f1",
        1000,
        NbRequest::CreateFlow {
            flow: request("f1"),
        },
    )
}

fn responses(out: &[HubOutput]) -> Vec<&Envelope<NbResponse>> {
    out.iter()
        .filter_map(|o| match o {
            HubOutput::Response(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn sent(out: &[HubOutput]) -> Vec<SbAction> {
    out.iter()
        .filter_map(|o| match o {
            HubOutput::Speaker(SpeakerRequest::Run { action, .. }) => Some(*action),
            _ => None,
        })
        .collect()
}

fn registered(out: &[HubOutput], timer: HubTimer) -> Option<u64> {
    registered_at(out, timer).map(|(generation, _)| generation)
}

#[test]
fn the_same_request_again_is_answered_the_same_and_runs_once() {
    let (mut hub, metrics) = hub();
    let mut out = Vec::new();
    hub.request(1000, create("c1"), &mut out);
    out.clear();
    hub.request(1001, create("c1"), &mut out);
    assert!(
        out.is_empty(),
        "still being worked on: the first answer will come"
    );
    hub.input(
        1002,
        HubInput::Allocation(AllocationResult {
            flow_id: "f1".into(),
            result: Ok(resources()),
        }),
        &mut out,
    );
    let first = responses(&out)[0].clone();
    assert!(
        out.iter().any(
            |o| matches!(o, HubOutput::Event(e) if matches!(e.payload, FlowEvent::Answered { .. }))
        ),
        "the answer is made durable"
    );
    out.clear();
    hub.request(1003, create("c1"), &mut out);
    assert_eq!(responses(&out), vec![&first]);
    assert!(sent(&out).is_empty());
    assert_eq!(metrics.requests_deduplicated.get(), 2);
    assert_eq!(metrics.operations_started.get(), 1);

    hub.request(1004, create("c2"), &mut out);
    let refused = responses(&out).last().map(|r| r.payload.clone());
    assert!(
        matches!(refused, Some(NbResponse::Error { error }) if error.status == 409),
        "a new request for the same flow is a conflict"
    );
}

#[test]
fn a_restart_resumes_what_was_in_flight_and_remembers_answers() {
    let (mut hub, metrics) = hub();
    let mut creating = FlowRecord::new(request("f1"), 10);
    creating.resources = Some(resources());
    let mut deleting = FlowRecord::new(request("f2"), 10);
    deleting.request.source.port_number = 11;
    deleting.resources = Some(resources());
    let answered = create("c1").reply(
        "f3",
        20,
        NbResponse::Flow {
            flow: FlowRecord::new(request("f3"), 20),
        },
    );
    let mut out = Vec::new();
    hub.restore(
        5000,
        [
            RecoveredFlow {
                record: creating,
                interrupted: Some("create".into()),
            },
            RecoveredFlow {
                record: deleting,
                interrupted: Some("delete".into()),
            },
        ],
        [answered.clone()],
        &mut out,
    );
    let actions = sent(&out);
    assert_eq!(
        actions.iter().filter(|a| **a == SbAction::Dump).count(),
        2,
        "the create is synced: its two switches validated first"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == SbAction::Remove).count(),
        4,
        "the delete runs again"
    );
    assert!(responses(&out).is_empty(), "nobody waits for these");
    assert_eq!(metrics.operations_recovered.get(), 2);
    out.clear();
    let again = Envelope::new(
        "c1",
        "f3",
        6000,
        NbRequest::CreateFlow {
            flow: request("f3"),
        },
    );
    hub.request(6000, again, &mut out);
    assert_eq!(responses(&out), vec![&answered]);
}

#[test]
fn an_operation_past_all_its_deadlines_is_remediated_by_a_sync() {
    let (mut hub, metrics) = hub();
    let mut record = FlowRecord::new(request("f1"), 10);
    record.resources = Some(resources());
    let mut out = Vec::new();
    hub.restore(
        5000,
        [RecoveredFlow {
            record,
            interrupted: None,
        }],
        [],
        &mut out,
    );
    let sync = Envelope::new(
        "s1",
        "f1",
        6000,
        NbRequest::SyncFlow {
            flow_id: "f1".into(),
        },
    );
    hub.request(6000, sync, &mut out);
    let watchdog = registered(&out, HubTimer::Watchdog).expect("a watchdog per operation");
    out.clear();
    hub.input(
        7000,
        HubInput::Timer {
            flow_id: "f1".into(),
            timer: HubTimer::Watchdog,
            generation: watchdog + 1,
        },
        &mut out,
    );
    assert!(out.is_empty(), "a stale watchdog changes nothing");
    hub.input(
        200_000,
        HubInput::Timer {
            flow_id: "f1".into(),
            timer: HubTimer::Watchdog,
            generation: watchdog,
        },
        &mut out,
    );
    assert_eq!(metrics.operations_remediated.get(), 1);
    assert!(out
        .iter()
        .any(|o| matches!(o, HubOutput::Speaker(SpeakerRequest::Abandon { .. }))));
    assert_eq!(
        sent(&out),
        vec![SbAction::Dump, SbAction::Dump],
        "a fresh sync validates the flow's switches"
    );
}

fn registered_at(out: &[HubOutput], timer: HubTimer) -> Option<(u64, u64)> {
    out.iter().find_map(|o| match o {
        HubOutput::Deadline(DeadlineRequest::Register {
            key: TimerKey::Hub { timer: t, .. },
            generation,
            at_ms,
        }) if *t == timer => Some((*generation, *at_ms)),
        _ => None,
    })
}

/// A flow whose path broke and whose reroute failed is not stranded DOWN until some link comes
/// up: it is retried, waiting longer after each failure in a row.
#[test]
fn a_failed_reroute_of_a_broken_path_is_retried_with_growing_waits() {
    let (mut hub, metrics) = hub_with_an_up_flow();
    let mut out = Vec::new();
    hub.input(
        2000,
        HubInput::PathAffected {
            flow_id: "f1".into(),
            protected: false,
            affected: true,
        },
        &mut out,
    );
    let mut due = registered_at(&out, HubTimer::Reroute).expect("a reroute is queued");
    let throttle = RerouteThrottle::default();
    let mut waits = Vec::new();
    for _ in 0..3 {
        out.clear();
        hub.input(
            due.1,
            HubInput::Timer {
                flow_id: "f1".into(),
                timer: HubTimer::Reroute,
                generation: due.0,
            },
            &mut out,
        );
        assert!(
            out.iter()
                .any(|o| matches!(o, HubOutput::Allocator(AllocatorRequest::Reallocate { .. }))),
            "the reroute asks for a new path: {out:?}"
        );
        out.clear();
        hub.input(
            due.1 + 1,
            HubInput::Allocation(AllocationResult {
                flow_id: "f1".into(),
                result: Err(ErrorBody::new(
                    503,
                    "no-path",
                    "No path",
                    "every path is down",
                )),
            }),
            &mut out,
        );
        let next = registered_at(&out, HubTimer::Reroute).expect("the failed reroute is retried");
        waits.push(next.1 - (due.1 + 1));
        due = next;
    }
    assert_eq!(
        waits,
        vec![
            throttle.max_delay_ms,
            2 * throttle.max_delay_ms,
            4 * throttle.max_delay_ms
        ]
    );
    assert_eq!(metrics.reroutes_started.get(), 3);
}

/// Every command the hub sent, answered as succeeded: `(switch, action)` of each.
fn succeed_all(hub: &mut Hub, now_ms: u64, out: &mut Vec<HubOutput>) -> Vec<(SwitchId, SbAction)> {
    let runs: Vec<(String, String, SwitchId, SbAction)> = out
        .iter()
        .filter_map(|o| match o {
            HubOutput::Speaker(SpeakerRequest::Run {
                correlation_id,
                command_id,
                segment,
                action,
                ..
            }) => Some((
                correlation_id.clone(),
                command_id.clone(),
                segment.switch_id,
                *action,
            )),
            _ => None,
        })
        .collect();
    out.clear();
    for (correlation_id, command_id, _, _) in &runs {
        let report = SpeakerReport {
            requester: Requester::Hub,
            flow_id: "f1".into(),
            correlation_id: correlation_id.clone(),
            command_id: command_id.clone(),
            outcome: ReportOutcome::Succeeded,
        };
        hub.input(now_ms, HubInput::Report(report), out);
    }
    runs.into_iter().map(|(_, _, s, a)| (s, a)).collect()
}

#[test]
fn switches_that_lost_a_busy_flows_rules_are_repaired_one_after_the_other() {
    let (mut hub, _) = hub_with_an_up_flow();
    let mut out = Vec::new();
    let repair = |switch| HubInput::Repair {
        flow_id: "f1".into(),
        switch_id: SwitchId(switch),
    };
    hub.input(2000, repair(1), &mut out);
    // Both switches connected again together: the keeper asks for the second one while the
    // repair of the first runs.
    hub.input(2001, repair(2), &mut out);
    let mut repaired = Vec::new();
    for now in 2002..2010 {
        repaired.extend(
            succeed_all(&mut hub, now, &mut out)
                .into_iter()
                .filter(|(_, action)| *action == SbAction::Install)
                .map(|(switch, _)| switch),
        );
    }
    repaired.dedup();
    assert_eq!(repaired, vec![SwitchId(1), SwitchId(2)]);
}

/// A hub that recovered flow `f1`, UP on 1 → 2, protected by 1 → 3 → 2.
fn hub_with_a_protected_flow() -> (Hub, Arc<Metrics>) {
    let mut record = FlowRecord::new(request("f1"), 10);
    record.request.allocate_protected_path = true;
    let isl = |src, src_port, dst, dst_port| Isl {
        src_switch: SwitchId(src),
        src_port,
        dst_switch: SwitchId(dst),
        dst_port,
    };
    record.resources = Some(Resources {
        protected: Some(Box::new(hubspoke_fsm::ProtectedPath {
            forward_path: vec![isl(1, 2, 3, 1), isl(3, 2, 2, 2)],
            transit_vlans: vec![2, 2],
        })),
        ..resources()
    });
    record.status = FlowStatus::Up;
    hub_with(record)
}

fn path_affected(protected: bool, affected: bool) -> HubInput {
    HubInput::PathAffected {
        flow_id: "f1".into(),
        protected,
        affected,
    }
}

fn saved_record(out: &[HubOutput]) -> Option<FlowRecord> {
    out.iter().rev().find_map(|o| match o {
        HubOutput::Event(e) => match &e.payload {
            FlowEvent::Updated { flow } => Some(flow.clone()),
            _ => None,
        },
        _ => None,
    })
}

#[test]
fn a_protected_flow_whose_primary_breaks_is_swapped_at_once_then_re_protected() {
    let (mut hub, metrics) = hub_with_a_protected_flow();
    let mut out = Vec::new();
    hub.input(2000, path_affected(false, true), &mut out);
    assert_eq!(
        registered(&out, HubTimer::Reroute),
        None,
        "no throttle delay"
    );
    assert!(
        !out.iter().any(|o| matches!(o, HubOutput::Allocator(_))),
        "no path search"
    );
    let installs = succeed_all(&mut hub, 2001, &mut out);
    assert_eq!(
        installs,
        vec![
            (SwitchId(1), SbAction::Install),
            (SwitchId(2), SbAction::Install)
        ],
        "one ingress install per endpoint switch"
    );
    let verifies = succeed_all(&mut hub, 2002, &mut out);
    assert!(verifies
        .iter()
        .all(|(_, action)| *action == SbAction::Verify));
    assert!(out
        .iter()
        .any(|o| matches!(o, HubOutput::Allocator(AllocatorRequest::Swap { .. }))));
    let record = saved_record(&out).unwrap();
    assert_eq!(record.status, FlowStatus::Up);
    assert_eq!(record.resources.as_ref().unwrap().forward_path.len(), 2);
    assert_eq!(metrics.swaps_started.get(), 1);

    // The new protected path is the broken old primary: a new one is found in the background.
    let (generation, at_ms) = registered_at(&out, HubTimer::Reroute).expect("re-protection");
    out.clear();
    hub.input(
        at_ms,
        HubInput::Timer {
            flow_id: "f1".into(),
            timer: HubTimer::Reroute,
            generation,
        },
        &mut out,
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, HubOutput::Allocator(AllocatorRequest::Reprotect { .. }))));
}

#[test]
fn a_swap_a_switch_refuses_falls_back_to_a_reroute() {
    let (mut hub, _) = hub_with_a_protected_flow();
    let mut out = Vec::new();
    hub.input(2000, path_affected(false, true), &mut out);
    let (correlation_id, command_id) = out
        .iter()
        .find_map(|o| match o {
            HubOutput::Speaker(SpeakerRequest::Run {
                correlation_id,
                command_id,
                ..
            }) => Some((correlation_id.clone(), command_id.clone())),
            _ => None,
        })
        .unwrap();
    out.clear();
    let refused = SpeakerReport {
        requester: Requester::Hub,
        flow_id: "f1".into(),
        correlation_id,
        command_id,
        outcome: ReportOutcome::Failed {
            reason: "BAD_COMMAND".into(),
        },
    };
    hub.input(2001, HubInput::Report(refused), &mut out);
    let restores = succeed_all(&mut hub, 2002, &mut out);
    assert!(restores
        .iter()
        .all(|(_, action)| *action == SbAction::Install));
    let record = saved_record(&out).unwrap();
    assert_eq!(record.status, FlowStatus::Up, "as it was, on its primary");
    assert!(
        registered(&out, HubTimer::Reroute).is_some(),
        "the broken primary is rerouted instead"
    );
}

#[test]
fn a_manual_swap_needs_a_protected_flow_with_a_protected_path() {
    let swap = |correlation_id: &str| {
        Envelope::new(
            correlation_id,
            "f1",
            2000,
            NbRequest::SwapFlow {
                flow_id: "f1".into(),
            },
        )
    };
    let refused = |hub: &mut Hub, correlation_id: &str| {
        let mut out = Vec::new();
        hub.request(2000, swap(correlation_id), &mut out);
        match responses(&out).first().map(|r| r.payload.clone()) {
            Some(NbResponse::Error { error }) => Some(error.status),
            _ => None,
        }
    };
    let (mut unprotected, _) = hub_with_an_up_flow();
    assert_eq!(refused(&mut unprotected, "s1"), Some(400));
    let (mut broken, _) = hub_with_a_protected_flow();
    broken.input(1500, path_affected(true, true), &mut Vec::new());
    assert_eq!(
        refused(&mut broken, "s4"),
        Some(409),
        "its protected path is down"
    );
    let (mut protected, _) = hub_with_a_protected_flow();
    let mut out = Vec::new();
    protected.request(2000, swap("s2"), &mut out);
    assert_eq!(refused(&mut protected, "s3"), Some(409), "busy swapping");
    succeed_all(&mut protected, 2001, &mut out);
    succeed_all(&mut protected, 2002, &mut out);
    assert!(matches!(
        responses(&out).first().map(|r| &r.payload),
        Some(NbResponse::Flow { .. })
    ));
}

fn joined(flow_id: &str) -> HubInput {
    let moved = |flow_id: &str| FlowEndpoints {
        flow_id: flow_id.into(),
        source: request(flow_id).source,
        destination: FlowEndpoint {
            port_number: 11,
            ..request(flow_id).destination
        },
    };
    HubInput::SwapJoined(Box::new(SwapJoined {
        endpoints: moved(flow_id),
        partner: moved("f0"),
        resources: resources(),
        correlation_id: "corr-swap".into(),
    }))
}

fn allocator_requests(out: &[HubOutput]) -> Vec<&AllocatorRequest> {
    out.iter()
        .filter_map(|o| match o {
            HubOutput::Allocator(request) => Some(request),
            _ => None,
        })
        .collect()
}

#[test]
fn a_busy_or_unknown_second_flow_lets_go_of_its_swap_reservation_and_says_it_failed() {
    let (mut hub, _) = hub_with_an_up_flow();
    let mut out = Vec::new();
    let sync = Envelope::new(
        "corr-sync",
        "f1",
        1001,
        NbRequest::SyncFlow {
            flow_id: "f1".into(),
        },
    );
    hub.request(1001, sync, &mut out);
    for (flow_id, status) in [("f1", 409), ("nope", 404)] {
        out.clear();
        hub.input(1002, joined(flow_id), &mut out);
        let requests = allocator_requests(&out);
        assert!(
            matches!(
                requests.as_slice(),
                [
                    AllocatorRequest::Release { .. },
                    AllocatorRequest::PairVote { pair, vote: PairVote::Failed(error), .. }
                ] if pair == "corr-swap" && error.status == status
            ),
            "{flow_id}: {requests:?}"
        );
    }
}

#[test]
fn an_idle_second_flow_starts_its_half_on_the_reservation_and_drops_words_of_other_swaps() {
    let (mut hub, _) = hub_with_an_up_flow();
    let mut out = Vec::new();
    hub.input(1001, joined("f1"), &mut out);
    let sent = out
        .iter()
        .filter(|o| matches!(o, HubOutput::Speaker(SpeakerRequest::Run { .. })))
        .count();
    assert!(sent > 0, "its new rules go out at once: {out:?}");
    assert!(
        allocator_requests(&out).is_empty(),
        "nothing more to reserve"
    );
    assert_eq!(
        hub.operation("f1").map(|op| op.correlation_id.as_str()),
        Some("corr-swap")
    );
    out.clear();
    let stale = HubInput::Pair {
        flow_id: "f1".into(),
        pair: "corr-older".into(),
        signal: PairSignal::Go,
    };
    hub.input(1002, stale, &mut out);
    assert!(out.is_empty(), "a word of another swap is dropped: {out:?}");
}
