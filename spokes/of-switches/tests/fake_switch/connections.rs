//! Connections that end: a switch that sends garbage, goes away, falls silent, or connects
//! again. Each costs that switch's connection and its commands in flight, nothing else.

use std::time::{Duration, Instant};

use hubspoke_fsm::SbErrorCode;
use hubspoke_openflow::Message;

use crate::support::{install, ports, segment, Harness, Read, WAIT};

/// Switch 1 sends `garbage` with a command in flight; switch 2 is not disturbed.
fn garbage_costs_that_switch_only(garbage: &[u8]) {
    let h = Harness::start();
    let mut bad = h.connect(1, &ports(&[1, 2]));
    let mut good = h.connect(2, &ports(&[1, 2]));
    let in_flight = h.install_in_flight(&mut bad, "in-flight");

    bad.send_raw(garbage);
    bad.expect_closed(WAIT);
    let message = h.expect_error(&in_flight, SbErrorCode::SwitchUnavailable);
    assert!(message.contains("not OpenFlow 1.3"), "{message}");
    h.expect_removed(1);
    let after = install("after", segment(1, 1, 2));
    h.send(&after);
    h.expect_error(&after, SbErrorCode::SwitchUnavailable);

    h.install_succeeds(&mut good, &install("good", segment(2, 1, 2)));
    h.no_event();
    let metrics = h.metrics();
    assert_eq!(metrics.switches_connected.get(), 1);
    assert_eq!(metrics.connections_closed.get(), 1);
    // The install on the bad switch and the good one's were handed over; the one after the
    // close found no switch.
    assert_eq!(metrics.commands.get(), 2);
    assert_eq!(metrics.commands_unavailable.get(), 2);
    let text = metrics.render();
    assert!(
        text.contains("hubspoke_openflow_switches_connected 1\n"),
        "{text}"
    );
}

#[test]
fn an_openflow_1_0_message_costs_that_switch_only() {
    // A FLOW_MOD header of version 1.
    garbage_costs_that_switch_only(&[1, 14, 0, 8, 0, 0, 0, 9]);
}

#[test]
fn a_length_below_the_header_costs_that_switch_only() {
    // An ECHO_REQUEST of length 4, and bytes after it that cannot be split into messages.
    garbage_costs_that_switch_only(&[4, 2, 0, 4, 0, 0, 0, 9, 0xff, 0xff]);
}

#[test]
fn a_switch_gone_in_the_middle_of_a_command_fails_it_and_is_removed() {
    let h = Harness::start();
    let mut switch = h.connect(1, &ports(&[1, 2]));
    let in_flight = h.install_in_flight(&mut switch, "in-flight");
    drop(switch);
    h.expect_error(&in_flight, SbErrorCode::SwitchUnavailable);
    h.expect_removed(1);
    h.no_answer();
}

#[test]
fn a_silent_switch_is_closed_after_three_echo_intervals() {
    const ECHO_MS: u64 = 100;
    let h = Harness::with(|config| config.session.echo_interval_ms = ECHO_MS);
    let start = Instant::now();
    let mut silent = h.connect(1, &ports(&[1, 2]));
    silent.answers_echo = false;
    let mut answering = h.connect(2, &ports(&[1, 2]));

    // Both are read in turns; the answering one answers its echoes as it is read.
    let slice = Duration::from_millis(5);
    let mut echo_requested = None;
    let closed = loop {
        match silent.read(slice) {
            Read::Frame(frame) if matches!(frame.message, Message::EchoRequest(_)) => {
                echo_requested.get_or_insert(start.elapsed());
            }
            Read::Closed => break start.elapsed(),
            Read::Frame(_) | Read::Quiet => {}
        }
        assert!(
            !matches!(answering.read(slice), Read::Closed),
            "the switch that answers its echoes was closed"
        );
        assert!(
            start.elapsed() < WAIT,
            "the silent switch is still connected"
        );
    };
    let echo = Duration::from_millis(ECHO_MS);
    let echo_requested = echo_requested.expect("an echo request before the connection closed");
    assert!(echo_requested > echo, "{echo_requested:?}");
    assert!(
        closed > 3 * echo && closed < 3 * echo + Duration::from_millis(300),
        "closed after {closed:?}"
    );
    h.expect_removed(1);

    // The other, answering, outlives many intervals of silence of its own.
    while start.elapsed() < 6 * echo {
        assert!(!matches!(answering.read(slice), Read::Closed));
    }
    h.install_succeeds(&mut answering, &install("alive", segment(2, 1, 2)));
    h.no_event();
}

#[test]
fn a_second_connection_of_a_switch_replaces_the_first() {
    let h = Harness::start();
    let mut first = h.connect(1, &ports(&[1, 2]));
    let in_flight = h.install_in_flight(&mut first, "in-flight");

    // Its switch_added, with the ports it has now.
    let mut second = h.connect(1, &ports(&[1, 2, 3]));
    first.expect_closed(WAIT);
    h.expect_error(&in_flight, SbErrorCode::SwitchUnavailable);
    // The switch is connected still: no switch_removed for the connection replaced.
    h.no_event();
    h.install_succeeds(&mut second, &install("after", segment(1, 2, 3)));
    h.no_event();
}

/// A switch that stops reading while tens of megabytes of commands are sent to it (and is
/// not silent long enough for its echo to be due): its connection does not wait on it
/// forever. It is closed, and every command is answered.
#[test]
fn a_switch_that_stops_reading_is_closed_and_its_commands_answered() {
    const COMMANDS: usize = 400_000;
    let h = Harness::start();
    let deaf = h.connect(1, &ports(&[1, 2]));
    // About 45 MB: more than the socket buffers on both ends and the speaker's limit hold.
    for n in 0..COMMANDS {
        h.send(&install(&format!("flood-{n}"), segment(1, 1, 2)));
    }
    let start = Instant::now();
    let mut answered = 0;
    while answered < COMMANDS {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{answered} of {COMMANDS} commands answered: the connection is stuck writing"
        );
        answered += h.unavailable_until_quiet(Duration::from_millis(100));
    }
    h.expect_removed(1);
    drop(deaf);
}
