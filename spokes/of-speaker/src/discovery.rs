//! Which ISLs are up, as real controllers find out: every switch sends a probe out of each of
//! its ports every interval, and a probe caught by a neighbour proves the link in that
//! direction. A directed ISL is up from its first probe until a port at either end goes
//! down, either switch goes away, or its probes stop coming for the timeout.
//!
//! Pure: time comes in as milliseconds, and what changed comes back as the `sb.events` the
//! simulator would publish for it.

use std::collections::BTreeMap;

use hubspoke_fsm::network::{DEFAULT_ISL_COST, DEFAULT_LINK_LATENCY_NS};
use hubspoke_fsm::{Isl, SbEvent, SwitchId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// A link whose probes have not arrived for this long is down.
    pub timeout_ms: u64,
    /// The capacity of a link whose ports report no speed (Open vSwitch's dummy, patch and
    /// internal ports), in kbps.
    pub default_capacity_kbps: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    last_ms: u64,
    capacity: u64,
}

#[derive(Debug)]
pub struct Discovery {
    settings: DiscoverySettings,
    /// Directed ISLs up now.
    up: BTreeMap<Isl, Seen>,
    /// Switches connected now, and their ports' speeds (kbps, 0 when unknown).
    switches: BTreeMap<SwitchId, BTreeMap<u32, u32>>,
}

impl Discovery {
    pub fn new(settings: DiscoverySettings) -> Discovery {
        Discovery {
            settings,
            up: BTreeMap::new(),
            switches: BTreeMap::new(),
        }
    }

    /// A switch connected with `ports` (every one, up or not, in order) and those of them
    /// that are up (number → speed in kbps). Its `switch_added` gives its highest port
    /// number, and its port numbers when there are gaps below it.
    pub fn switch_connected(
        &mut self,
        switch_id: SwitchId,
        ports: &[u32],
        up: BTreeMap<u32, u32>,
    ) -> SbEvent {
        self.switches.insert(switch_id, up);
        let highest = ports.last().copied().unwrap_or(0);
        let port_numbers = if ports.iter().copied().eq(1..=highest) {
            Vec::new()
        } else {
            ports.to_vec()
        };
        SbEvent::SwitchAdded {
            switch_id,
            ports: highest,
            port_numbers,
        }
    }

    /// A switch's connection closed: it is gone, with every ISL at either end.
    pub fn switch_disconnected(&mut self, switch_id: SwitchId) -> Vec<SbEvent> {
        self.switches.remove(&switch_id);
        let mut events = vec![SbEvent::SwitchRemoved { switch_id }];
        events.extend(
            self.take_down(|isl, _| isl.src_switch == switch_id || isl.dst_switch == switch_id),
        );
        events
    }

    /// A port went down (administratively or its link), or was deleted: it is not probed,
    /// and the ISLs through it, both ways, are down.
    pub fn port_down(&mut self, switch_id: SwitchId, port: u32) -> Vec<SbEvent> {
        if let Some(ports) = self.switches.get_mut(&switch_id) {
            ports.remove(&port);
        }
        self.take_down(|isl, _| {
            (isl.src_switch, isl.src_port) == (switch_id, port)
                || (isl.dst_switch, isl.dst_port) == (switch_id, port)
        })
    }

    /// A port came up, was added, or its speed changed: it is probed, and its probes carry
    /// its speed.
    pub fn port_up(&mut self, switch_id: SwitchId, port: u32, speed_kbps: u32) {
        if let Some(ports) = self.switches.get_mut(&switch_id) {
            ports.insert(port, speed_kbps);
        }
    }

    /// A probe sent out of `from` arrived at `to`'s port: that direction is up. Returns the
    /// `isl_up` when it was not up before or its capacity changed.
    pub fn probe_arrived(
        &mut self,
        now_ms: u64,
        from: (SwitchId, u32, u32),
        to: (SwitchId, u32),
    ) -> Option<SbEvent> {
        let (src_switch, src_port, src_speed) = from;
        let (dst_switch, dst_port) = to;
        // A probe from a switch that is gone, or at one that is, is one in flight at the
        // change: the next round decides.
        let dst_speed = *self.switches.get(&dst_switch)?.get(&dst_port)?;
        self.switches.get(&src_switch)?;
        let isl = Isl {
            src_switch,
            src_port,
            dst_switch,
            dst_port,
        };
        // The slower end's speed; an end that reports none does not count.
        let capacity = [src_speed, dst_speed]
            .into_iter()
            .filter(|&speed| speed != 0)
            .min()
            .map_or(self.settings.default_capacity_kbps, u64::from);
        let previous = self.up.insert(
            isl,
            Seen {
                last_ms: now_ms,
                capacity,
            },
        );
        (previous.map(|seen| seen.capacity) != Some(capacity)).then_some(SbEvent::IslUp {
            isl,
            capacity,
            latency_ns: DEFAULT_LINK_LATENCY_NS,
            cost: DEFAULT_ISL_COST,
        })
    }

    /// The ISLs whose probes stopped.
    pub fn tick(&mut self, now_ms: u64) -> Vec<SbEvent> {
        let timeout = self.settings.timeout_ms;
        self.take_down(|_, seen| now_ms.saturating_sub(seen.last_ms) > timeout)
    }

    /// The connected switches and their ports: where the next round of probes goes.
    pub fn ports(&self) -> impl Iterator<Item = (SwitchId, &BTreeMap<u32, u32>)> {
        self.switches.iter().map(|(id, ports)| (*id, ports))
    }

    /// Whether a directed ISL is up now.
    pub fn is_up(&self, isl: &Isl) -> bool {
        self.up.contains_key(isl)
    }

    fn take_down(&mut self, going: impl Fn(&Isl, &Seen) -> bool) -> Vec<SbEvent> {
        let down: Vec<Isl> = self
            .up
            .iter()
            .filter(|(isl, seen)| going(isl, seen))
            .map(|(isl, _)| *isl)
            .collect();
        down.into_iter()
            .map(|isl| {
                self.up.remove(&isl);
                SbEvent::IslDown { isl }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SwitchId = SwitchId(1);
    const B: SwitchId = SwitchId(2);

    fn discovery() -> Discovery {
        let mut discovery = Discovery::new(DiscoverySettings {
            timeout_ms: 3_000,
            default_capacity_kbps: 10_000_000,
        });
        let added = discovery.switch_connected(A, &[1, 10], [(1, 0), (10, 0)].into());
        assert_eq!(
            added,
            SbEvent::SwitchAdded {
                switch_id: A,
                ports: 10,
                port_numbers: vec![1, 10],
            }
        );
        let added = discovery.switch_connected(B, &[1], [(1, 1_000_000)].into());
        assert!(
            matches!(added, SbEvent::SwitchAdded { ports: 1, ref port_numbers, .. } if port_numbers.is_empty())
        );
        discovery
    }

    fn isl(src: SwitchId, dst: SwitchId) -> Isl {
        Isl {
            src_switch: src,
            src_port: 1,
            dst_switch: dst,
            dst_port: 1,
        }
    }

    #[test]
    fn a_probe_brings_one_direction_up_once_with_the_slower_ends_speed() {
        let mut d = discovery();
        assert_eq!(
            d.probe_arrived(0, (A, 1, 0), (B, 1)),
            Some(SbEvent::IslUp {
                isl: isl(A, B),
                capacity: 1_000_000,
                latency_ns: DEFAULT_LINK_LATENCY_NS,
                cost: DEFAULT_ISL_COST,
            })
        );
        assert_eq!(d.probe_arrived(500, (A, 1, 0), (B, 1)), None);
        assert!(!d.is_up(&isl(B, A)));
        // Neither end reports a speed: the configured default.
        assert_eq!(
            d.probe_arrived(0, (B, 1, 0), (A, 1)),
            Some(SbEvent::IslUp {
                isl: isl(B, A),
                capacity: 10_000_000,
                latency_ns: DEFAULT_LINK_LATENCY_NS,
                cost: DEFAULT_ISL_COST,
            })
        );
    }

    #[test]
    fn links_go_down_with_their_port_their_switch_or_their_probes() {
        let mut d = discovery();
        d.probe_arrived(0, (A, 1, 0), (B, 1));
        d.probe_arrived(0, (B, 1, 0), (A, 1));
        let down = d.port_down(A, 1);
        assert_eq!(down.len(), 2, "both directions: {down:?}");
        // A probe at a port that is down does not count, until it is up again.
        assert_eq!(d.probe_arrived(10, (B, 1, 0), (A, 1)), None);
        d.port_up(A, 1, 0);
        assert!(d.probe_arrived(20, (B, 1, 0), (A, 1)).is_some());

        let gone = d.switch_disconnected(B);
        assert_eq!(
            gone,
            vec![
                SbEvent::SwitchRemoved { switch_id: B },
                SbEvent::IslDown { isl: isl(B, A) }
            ]
        );
        assert_eq!(d.probe_arrived(30, (A, 1, 0), (B, 1)), None);

        let mut d = discovery();
        d.probe_arrived(0, (A, 1, 0), (B, 1));
        assert!(d.tick(3_000).is_empty());
        assert_eq!(d.tick(3_001), vec![SbEvent::IslDown { isl: isl(A, B) }]);
    }
}
