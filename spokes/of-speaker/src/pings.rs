//! Flow pings on OpenFlow switches: a probe goes into the flow's ingress switch as if it had
//! arrived on the flow's source port with the source VLAN (PACKET_OUT to the pipeline), the
//! flow's rules carry it, and the exit switch's [ping rule](crate::probe) sends it up when it
//! arrives there, before that switch's egress rule. The time between the two is the ping's
//! latency, which includes the two control-channel legs.
//!
//! What a ping proves: the ingress and transit rules of the direction carry the packet to the
//! exit switch (addressed to it, no other switch catches it). The egress rule's own actions
//! are a switch validation's to check. A one-switch flow cannot be pinged this way (its one
//! switch would catch the probe before the flow's rule), as in OpenKilda.
//!
//! Pure: the speaker sends the frame and passes what it catches here with the time.

use std::collections::HashMap;

use hubspoke_fsm::{Envelope, FlowEndpoint, SbCommand, SbErrorCode, SbOutcome, SwitchId};

use hubspoke_openflow::Message;

use crate::probe::{send_in, Probe, Stamped};

struct InFlight {
    command: Envelope<SbCommand>,
    exit: FlowEndpoint,
    sent_ns: u64,
}

/// The pings sent and not caught yet, across every switch.
#[derive(Default)]
pub struct Pings {
    next_id: u64,
    in_flight: HashMap<u64, InFlight>,
}

/// A ping's answer.
pub type Answered = (Envelope<SbCommand>, SbOutcome);

impl Pings {
    /// The PACKET_OUT that sends the ping into its ingress switch, or the command's answer
    /// at once when it cannot be pinged.
    pub fn send(
        &mut self,
        instance: u64,
        now_ns: u64,
        command: Envelope<SbCommand>,
    ) -> Result<Message, Box<Answered>> {
        let segment = &command.payload.segment;
        let refuse = |command: Envelope<SbCommand>, message: String| {
            let outcome = SbOutcome::Error {
                code: SbErrorCode::BadCommand,
                message,
            };
            Box::new((command, outcome))
        };
        let Some(exit) = command.payload.ping_exit.clone() else {
            return Err(refuse(
                command,
                "a ping without the place it must leave".into(),
            ));
        };
        if exit.switch_id == segment.switch_id {
            return Err(refuse(
                command,
                "a one-switch flow cannot be pinged on an OpenFlow switch: the switch would \
                 catch the probe before the flow's rule"
                    .into(),
            ));
        }
        self.next_id += 1;
        let id = self.next_id;
        let probe = Stamped {
            instance,
            probe: Probe::Ping {
                switch_id: segment.switch_id,
                port: segment.in_port,
                id,
            },
        };
        let packet = send_in(
            segment.in_port,
            probe.ping_frame(exit.switch_id, segment.in_vlan),
        );
        self.in_flight.insert(
            id,
            InFlight {
                command,
                exit,
                sent_ns: now_ns,
            },
        );
        Ok(packet)
    }

    /// Ping `id` was caught by `switch` on `in_port`; its answer, unless it is no ping in
    /// flight (answered already, or not this speaker's).
    pub fn caught(
        &mut self,
        now_ns: u64,
        id: u64,
        switch_id: SwitchId,
        in_port: u32,
    ) -> Option<Answered> {
        let ping = self.in_flight.remove(&id)?;
        let outcome = if switch_id == ping.exit.switch_id {
            SbOutcome::Pinged {
                latency_ns: now_ns.saturating_sub(ping.sent_ns),
            }
        } else {
            SbOutcome::PingLost {
                reason: format!(
                    "the probe reached switch {switch_id} port {in_port}, not the exit switch {}",
                    ping.exit.switch_id
                ),
            }
        };
        Some((ping.command, outcome))
    }

    /// Pings not caught for `timeout_ns`: lost.
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64) -> Vec<Answered> {
        let lost: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, ping)| now_ns.saturating_sub(ping.sent_ns) > timeout_ns)
            .map(|(id, _)| *id)
            .collect();
        lost.into_iter()
            .filter_map(|id| self.in_flight.remove(&id))
            .map(|ping| {
                let reason = format!(
                    "the probe did not reach switch {} within {} ms",
                    ping.exit.switch_id,
                    timeout_ns / 1_000_000
                );
                (ping.command, SbOutcome::PingLost { reason })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use hubspoke_fsm::segments::{FlowSegment, SegmentKind};
    use hubspoke_fsm::{SbAction, SbCommand};
    use hubspoke_openflow::consts::OFPP_TABLE;
    use hubspoke_openflow::Action;

    use super::*;
    use crate::probe::ping_mac;

    fn ping(exit_switch: u64) -> Envelope<SbCommand> {
        Envelope::new(
            "corr",
            "switch/1",
            0,
            SbCommand {
                command_id: "ping-1".into(),
                attempt: 1,
                action: SbAction::Ping,
                segment: FlowSegment {
                    switch_id: SwitchId(1),
                    kind: SegmentKind::Ingress,
                    cookie: 0x4000_0000_0000_0007,
                    in_port: 10,
                    in_vlan: 100,
                    out_port: 1,
                    out_vlan: 2,
                    meter_id: None,
                    bandwidth: 0,
                },
                ping_exit: Some(FlowEndpoint {
                    switch_id: SwitchId(exit_switch),
                    port_number: 11,
                    vlan_id: 200,
                }),
            },
        )
    }

    #[test]
    fn a_ping_enters_at_the_source_port_and_is_timed_to_its_exit() {
        let mut pings = Pings::default();
        let Ok(Message::PacketOut(out)) = pings.send(7, 1_000, ping(3)) else {
            panic!("a PACKET_OUT");
        };
        assert_eq!(out.in_port, 10);
        assert!(matches!(
            out.actions[..],
            [Action::Output {
                port: OFPP_TABLE,
                ..
            }]
        ));
        assert_eq!(&out.data[..6], &ping_mac(SwitchId(3)));
        let Some(Stamped {
            instance: 7,
            probe: Probe::Ping { id, .. },
        }) = Stamped::parse(&out.data)
        else {
            panic!("the frame is a ping");
        };
        let (command, outcome) = pings
            .caught(251_000, id, SwitchId(3), 2)
            .expect("in flight");
        assert_eq!(command.payload.command_id, "ping-1");
        assert_eq!(
            outcome,
            SbOutcome::Pinged {
                latency_ns: 250_000
            }
        );
        assert!(
            pings.caught(252_000, id, SwitchId(3), 2).is_none(),
            "answered once"
        );
    }

    #[test]
    fn a_ping_caught_elsewhere_or_never_is_lost() {
        let mut pings = Pings::default();
        assert!(pings.send(7, 0, ping(3)).is_ok());
        let caught = pings.caught(10, 1, SwitchId(5), 4).expect("in flight");
        assert!(matches!(caught.1, SbOutcome::PingLost { .. }));
        assert!(pings.send(7, 0, ping(3)).is_ok());
        assert!(pings.expire(1_000, 1_000).is_empty());
        let lost = pings.expire(1_001, 1_000);
        assert!(matches!(lost[..], [(_, SbOutcome::PingLost { .. })]));
    }

    #[test]
    fn one_switch_flows_and_pings_without_an_exit_are_refused() {
        let mut pings = Pings::default();
        let refused = pings.send(7, 0, ping(1)).expect_err("one switch");
        assert!(matches!(
            refused.1,
            SbOutcome::Error {
                code: SbErrorCode::BadCommand,
                ..
            }
        ));
        let mut no_exit = ping(3);
        no_exit.payload.ping_exit = None;
        assert!(pings.send(7, 0, no_exit).is_err());
    }
}
