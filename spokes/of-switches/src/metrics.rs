//! What the speaker counts, for `/metrics` (`hubspoke_openflow_*`).

use hubspoke_bus::metrics::{render, Counter, Gauge};
use hubspoke_fsm::{SbErrorCode, SbEvent, SbOutcome};

#[derive(Debug, Default)]
pub struct SpeakerMetrics {
    pub switches_connected: Gauge,
    pub connections_closed: Counter,
    pub commands: Counter,
    pub commands_refused: Counter,
    pub commands_unavailable: Counter,
    pub pings_lost: Counter,
    pub messages_ignored: Counter,
    pub isl_changes: Counter,
}

impl SpeakerMetrics {
    /// Counts an answer by what it says.
    pub(crate) fn answered(&self, outcome: &SbOutcome) {
        match outcome {
            SbOutcome::Error {
                code: SbErrorCode::SwitchUnavailable,
                ..
            } => self.commands_unavailable.inc(),
            SbOutcome::Error { .. } => self.commands_refused.inc(),
            SbOutcome::PingLost { .. } => self.pings_lost.inc(),
            SbOutcome::Success | SbOutcome::Rules { .. } | SbOutcome::Pinged { .. } => {}
        }
    }

    pub(crate) fn published(&self, event: &SbEvent) {
        if matches!(event, SbEvent::IslUp { .. } | SbEvent::IslDown { .. }) {
            self.isl_changes.inc();
        }
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        let counters = [
            ("connections_closed", "Switch connections closed, whatever the reason (logged).", &self.connections_closed),
            ("commands", "Southbound commands handed to a connected switch.", &self.commands),
            ("commands_refused", "Commands a switch refused (OFPT_ERROR) or the speaker could not translate.", &self.commands_refused),
            ("commands_unavailable", "Commands answered SWITCH_UNAVAILABLE: the switch was not connected, or its connection closed.", &self.commands_unavailable),
            ("pings_lost", "Flow pings whose probe did not reach the exit switch.", &self.pings_lost),
            ("messages_ignored", "Messages from switches the speaker ignored (unknown xid, unknown port, undecodable; logged).", &self.messages_ignored),
            ("isl_changes", "ISLs that came up or went down, as discovery reported them.", &self.isl_changes),
        ];
        render(
            &mut text,
            "openflow_switches_connected",
            "Switches connected to the speaker now, their handshake done.",
            "gauge",
            self.switches_connected.get(),
        );
        for (name, help, counter) in counters {
            render(
                &mut text,
                &format!("openflow_{name}"),
                help,
                "counter",
                counter.get(),
            );
        }
        text
    }
}
