use hubspoke_fsm::segments::SegmentKind;
use hubspoke_fsm::{FlowEndpoint, SbErrorCode, SwitchId};

use super::*;

fn segment() -> FlowSegment {
    FlowSegment {
        switch_id: SwitchId(2),
        kind: SegmentKind::Transit,
        cookie: 9,
        in_port: 1,
        in_vlan: 5,
        out_port: 2,
        out_vlan: 5,
        meter_id: None,
        bandwidth: 10,
    }
}

fn run(command_id: &str) -> SpeakerRequest {
    SpeakerRequest::Run {
        requester: Requester::Hub,
        flow_id: "f1".into(),
        correlation_id: "c1".into(),
        command_id: command_id.into(),
        action: SbAction::Install,
        segment: segment(),
    }
}

fn response(command_id: &str, attempt: u32, outcome: SbOutcome) -> SbResponse {
    SbResponse {
        command_id: command_id.into(),
        attempt,
        switch_id: SwitchId(2),
        outcome,
    }
}

fn error(code: SbErrorCode) -> SbOutcome {
    SbOutcome::Error {
        code,
        message: "boom".into(),
    }
}

fn commands(out: &[SpeakerOutput]) -> Vec<(String, u32)> {
    out.iter()
        .filter_map(|o| match o {
            SpeakerOutput::Command(e) => Some((e.payload.command_id.clone(), e.payload.attempt)),
            _ => None,
        })
        .collect()
}

fn registered(out: &[SpeakerOutput]) -> Option<(u64, u64)> {
    out.iter().find_map(|o| match o {
        SpeakerOutput::Deadline(DeadlineRequest::Register {
            generation, at_ms, ..
        }) => Some((*generation, *at_ms)),
        _ => None,
    })
}

fn report(out: &[SpeakerOutput]) -> Option<ReportOutcome> {
    out.iter().find_map(|o| match o {
        SpeakerOutput::Report(r) => Some(r.outcome.clone()),
        _ => None,
    })
}

#[test]
fn a_command_is_sent_with_a_response_deadline_and_reported_on_success() {
    let mut worker = SpeakerWorker::new(RetryPolicy::default());
    let mut out = Vec::new();
    worker.request(1000, run("c:1"), &mut out);
    assert_eq!(commands(&out), vec![("c:1".to_string(), 1)]);
    let SpeakerOutput::Command(envelope) = &out[0] else {
        panic!("command first")
    };
    assert_eq!(
        (envelope.key.as_str(), envelope.correlation_id.as_str()),
        ("f1", "c1")
    );
    assert_eq!(registered(&out), Some((1, 3000)));

    out.clear();
    worker.response(1010, &response("c:1", 1, SbOutcome::Success), &mut out);
    assert_eq!(report(&out), Some(ReportOutcome::Succeeded));
    assert!(out.iter().any(|o| matches!(
        o,
        SpeakerOutput::Deadline(DeadlineRequest::Cancel { generation: 1, .. })
    )));
    assert_eq!(worker.pending_count(), 0);
}

#[test]
fn duplicate_late_and_wrong_attempt_responses_are_dropped_and_counted() {
    let mut worker = SpeakerWorker::new(RetryPolicy::default());
    let mut out = Vec::new();
    worker.request(0, run("c:1"), &mut out);
    worker.response(1, &response("c:1", 2, SbOutcome::Success), &mut out);
    worker.response(1, &response("unknown", 1, SbOutcome::Success), &mut out);
    assert_eq!(report(&out), None);
    worker.response(2, &response("c:1", 1, SbOutcome::Success), &mut out);
    worker.response(3, &response("c:1", 1, SbOutcome::Success), &mut out);
    assert_eq!(worker.stats().responses_dropped, 3);
    let reports = out
        .iter()
        .filter(|o| matches!(o, SpeakerOutput::Report(_)))
        .count();
    assert_eq!(reports, 1, "reported once");
}

#[test]
fn retryable_errors_back_off_and_retry_up_to_the_budget() {
    let mut worker = SpeakerWorker::new(RetryPolicy::default());
    let mut out = Vec::new();
    worker.request(0, run("c:1"), &mut out);
    for attempt in 1..=3u32 {
        out.clear();
        let now = u64::from(attempt) * 10_000;
        worker.response(
            now,
            &response("c:1", attempt, error(SbErrorCode::SwitchUnavailable)),
            &mut out,
        );
        if attempt == 3 {
            match report(&out) {
                Some(ReportOutcome::Failed { reason }) => {
                    assert!(reason.contains("SWITCH_UNAVAILABLE"), "{reason}");
                    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
                }
                other => panic!("expected failure, got {other:?}"),
            }
            break;
        }
        assert_eq!(report(&out), None);
        let (generation, at_ms) = registered(&out).expect("a back-off timer");
        assert!(at_ms > now && at_ms <= now + 2_000);
        out.clear();
        let key = timer_key("f1", "c:1");
        worker.timeout(at_ms, &key, generation, &mut out);
        assert_eq!(commands(&out), vec![("c:1".to_string(), attempt + 1)]);
    }
    assert_eq!(worker.stats().retries, 2);
    assert_eq!(worker.stats().commands_failed, 1);
}

#[test]
fn permanent_errors_give_up_at_once() {
    for code in [
        SbErrorCode::BadCommand,
        SbErrorCode::TableFull,
        SbErrorCode::MissingRule,
    ] {
        let mut worker = SpeakerWorker::new(RetryPolicy::default());
        let mut out = Vec::new();
        worker.request(0, run("c:1"), &mut out);
        out.clear();
        worker.response(1, &response("c:1", 1, error(code)), &mut out);
        assert!(
            matches!(report(&out), Some(ReportOutcome::Failed { .. })),
            "{code:?}"
        );
        assert_eq!(registered(&out), None);
    }
}

#[test]
fn a_missing_response_times_out_into_a_retry_and_stale_timers_are_ignored() {
    let mut worker = SpeakerWorker::new(RetryPolicy::default());
    let mut out = Vec::new();
    worker.request(0, run("c:1"), &mut out);
    let (first_generation, at_ms) = registered(&out).unwrap();
    out.clear();
    let key = timer_key("f1", "c:1");
    worker.timeout(at_ms, &key, first_generation, &mut out);
    let (backoff_generation, backoff_at) = registered(&out).unwrap();
    out.clear();
    worker.timeout(backoff_at, &key, first_generation, &mut out);
    assert!(out.is_empty(), "an older generation changes nothing");
    worker.timeout(backoff_at, &key, backoff_generation, &mut out);
    assert_eq!(commands(&out), vec![("c:1".to_string(), 2)]);
    out.clear();
    // the first attempt's answer arrives late: it no longer counts
    worker.response(
        backoff_at + 1,
        &response("c:1", 1, SbOutcome::Success),
        &mut out,
    );
    assert_eq!(report(&out), None);
    worker.response(
        backoff_at + 2,
        &response("c:1", 2, SbOutcome::Success),
        &mut out,
    );
    assert_eq!(report(&out), Some(ReportOutcome::Succeeded));
}

#[test]
fn abandoning_a_flow_cancels_its_commands() {
    let mut worker = SpeakerWorker::new(RetryPolicy::default());
    let mut out = Vec::new();
    worker.request(0, run("c:1"), &mut out);
    worker.request(0, run("c:2"), &mut out);
    out.clear();
    worker.request(
        1,
        SpeakerRequest::Abandon {
            flow_id: "f1".into(),
        },
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(worker.pending_count(), 0);
    worker.response(2, &response("c:1", 1, SbOutcome::Success), &mut out);
    assert_eq!(report(&out), None);
    assert_eq!(worker.stats().responses_dropped, 1);
}

#[test]
fn a_repeated_request_for_a_pending_command_is_not_sent_twice() {
    let mut worker = SpeakerWorker::new(RetryPolicy::default());
    let mut out = Vec::new();
    worker.request(0, run("c:1"), &mut out);
    worker.request(0, run("c:1"), &mut out);
    assert_eq!(commands(&out).len(), 1);
}

fn ping(command_id: &str) -> SpeakerRequest {
    SpeakerRequest::Ping {
        requester: Requester::Keeper,
        flow_id: "switch/2".into(),
        correlation_id: "c1".into(),
        command_id: command_id.into(),
        segment: segment(),
        exit: FlowEndpoint {
            switch_id: SwitchId(3),
            port_number: 7,
            vlan_id: 70,
        },
        timeout_ms: 500,
    }
}

#[test]
fn a_ping_carries_its_exit_waits_its_own_timeout_and_its_answer_is_final() {
    for (outcome, reported) in [
        (
            SbOutcome::Pinged { latency_ns: 42 },
            ReportOutcome::Pinged { latency_ns: 42 },
        ),
        (
            SbOutcome::PingLost {
                reason: "no rule".into(),
            },
            ReportOutcome::PingLost {
                reason: "no rule".into(),
            },
        ),
    ] {
        let mut worker = SpeakerWorker::new(RetryPolicy::default());
        let mut out = Vec::new();
        worker.request(1000, ping("p:1"), &mut out);
        let Some(SpeakerOutput::Command(envelope)) = out.first() else {
            panic!("the probe is sent first: {out:?}")
        };
        assert_eq!(envelope.payload.action, SbAction::Ping);
        assert_eq!(envelope.payload.segment, segment());
        assert_eq!(
            envelope.payload.ping_exit.as_ref().map(|e| e.port_number),
            Some(7)
        );
        assert_eq!(
            registered(&out),
            Some((1, 1500)),
            "the ping's timeout, not the policy's"
        );
        out.clear();
        worker.response(1010, &response("p:1", 1, outcome), &mut out);
        assert_eq!(report(&out), Some(reported));
        assert_eq!(registered(&out), None, "not retried");
        assert_eq!(worker.pending_count(), 0);
    }
}

#[test]
fn an_unanswered_ping_is_lost_and_a_failed_one_not_retried() {
    let mut worker = SpeakerWorker::new(RetryPolicy::default());
    let mut out = Vec::new();
    worker.request(0, ping("p:1"), &mut out);
    let (generation, at_ms) = registered(&out).unwrap();
    out.clear();
    worker.timeout(at_ms, &timer_key("switch/2", "p:1"), generation, &mut out);
    match report(&out) {
        Some(ReportOutcome::PingLost { reason }) => {
            assert!(reason.contains("within 500 ms"), "{reason}")
        }
        other => panic!("expected a lost ping, got {other:?}"),
    }
    assert!(commands(&out).is_empty(), "no second probe");
    assert_eq!(worker.pending_count(), 0);

    out.clear();
    worker.request(0, ping("p:2"), &mut out);
    out.clear();
    worker.response(
        1,
        &response("p:2", 1, error(SbErrorCode::SwitchUnavailable)),
        &mut out,
    );
    assert!(
        matches!(report(&out), Some(ReportOutcome::Failed { ref reason }) if reason.contains("SWITCH_UNAVAILABLE")),
        "{out:?}"
    );
    assert_eq!(registered(&out), None, "a ping is not retried");
    assert_eq!(worker.stats().retries, 0);
}

#[test]
fn backoff_grows_is_capped_and_is_the_same_every_time() {
    let policy = RetryPolicy::default();
    let first = policy.backoff_ms("x", 1);
    assert!((100..=150).contains(&first), "{first}");
    let second = policy.backoff_ms("x", 2);
    assert!((200..=300).contains(&second), "{second}");
    assert!(policy.backoff_ms("x", 30) <= 3_000);
    assert_eq!(policy.backoff_ms("x", 2), second);
}
