//! The switch network: generated shapes or a JSON description, and path search over it.

mod paths;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use paths::{FoundPath, PathWeight, MAX_LATENCY_CANDIDATES};

use crate::{stable_hash, Isl, SbEvent, SwitchId};

/// 10 Gbit/s, in kbps: the capacity of a generated link.
pub const DEFAULT_LINK_CAPACITY_KBPS: u64 = 10_000_000;
/// The cost of an ISL nobody priced: OpenKilda's default ISL cost.
pub const DEFAULT_ISL_COST: u64 = 700;
/// The latency of an ISL nobody measured: 1 ms.
pub const DEFAULT_LINK_LATENCY_NS: u64 = 1_000_000;
/// Ports a generated switch has; ISLs take the lowest numbers.
pub const DEFAULT_SWITCH_PORTS: u32 = 48;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchInfo {
    pub switch_id: SwitchId,
    /// Its highest port number.
    pub ports: u32,
    /// Its port numbers, in order, when it does not have every one from 1 to `ports`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_numbers: Vec<u32>,
}

impl SwitchInfo {
    pub fn has_port(&self, port: u32) -> bool {
        match self.port_numbers.as_slice() {
            [] => (1..=self.ports).contains(&port),
            numbers => numbers.binary_search(&port).is_ok(),
        }
    }
}

/// A directed ISL with its capacity, latency and cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(flatten)]
    pub isl: Isl,
    /// kbps
    pub capacity: u64,
    /// One way, in nanoseconds.
    #[serde(default = "default_latency_ns")]
    pub latency_ns: u64,
    /// What using it costs a path (the `COST` strategy sums these).
    #[serde(default = "default_cost")]
    pub cost: u64,
}

pub fn default_latency_ns() -> u64 {
    DEFAULT_LINK_LATENCY_NS
}

pub fn default_cost() -> u64 {
    DEFAULT_ISL_COST
}

impl Link {
    /// A link with the default latency and cost.
    pub fn new(isl: Isl, capacity: u64) -> Link {
        Link {
            isl,
            capacity,
            latency_ns: DEFAULT_LINK_LATENCY_NS,
            cost: DEFAULT_ISL_COST,
        }
    }
}

/// The latency of a generated link: 0.5 to 5 ms in steps of 0.5 ms, spread by a hash of its
/// switches so that the lowest-latency path is not always the fewest-hop one.
fn generated_latency_ns(a: u64, b: u64) -> u64 {
    let spread = stable_hash(&[&a.to_be_bytes(), &b.to_be_bytes()]) % 10;
    (spread + 1) * 500_000
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetworkError {
    #[error(
        "unknown network spec {0:?}: expected grid:RxC, mesh:N, ring:N, linear:N or a JSON file"
    )]
    UnknownSpec(String),
    #[error("invalid network spec {spec:?}: {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("invalid network description: {0}")]
    InvalidJson(String),
}

/// Switches and directed ISLs. Each physical link is two ISLs, one per direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    switches: BTreeMap<SwitchId, SwitchInfo>,
    links: Vec<Link>,
    isl_ports: HashMap<SwitchId, BTreeSet<u32>>,
    /// Each switch at an end of an ISL, numbered densely so that a search keeps its state
    /// in vectors.
    nodes: HashMap<SwitchId, usize>,
    /// Outgoing ISL indices (into `links`) per node, in port order for deterministic search.
    outgoing: Vec<Vec<usize>>,
    /// The node each ISL (by index into `links`) leads to.
    link_to: Vec<usize>,
}

/// The JSON form of a network: switches and bidirectional links.
#[derive(Debug, Deserialize, Serialize)]
struct NetworkJson {
    switches: Vec<SwitchInfo>,
    links: Vec<Link>,
}

impl Network {
    /// Parses `grid:RxC`, `mesh:N`, `ring:N` or `linear:N`. Returns `Ok(None)` if the spec is
    /// none of these (the caller may then treat it as a file name).
    pub fn generate(spec: &str) -> Result<Option<Network>, NetworkError> {
        let Some((kind, size)) = spec.split_once(':') else {
            return Ok(None);
        };
        let invalid = |reason: &str| NetworkError::InvalidSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let count = |text: &str| -> Result<u64, NetworkError> {
            match text.parse::<u64>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(invalid("sizes must be whole numbers from 1 to 1000")),
            }
        };
        let pairs: Vec<(u64, u64)> = match kind {
            "grid" => {
                let (rows, cols) = size
                    .split_once('x')
                    .ok_or_else(|| invalid("expected grid:RxC"))?;
                let (rows, cols) = (count(rows)?, count(cols)?);
                let id = |r: u64, c: u64| r * cols + c + 1;
                let mut pairs = Vec::new();
                for r in 0..rows {
                    for c in 0..cols {
                        if c + 1 < cols {
                            pairs.push((id(r, c), id(r, c + 1)));
                        }
                        if r + 1 < rows {
                            pairs.push((id(r, c), id(r + 1, c)));
                        }
                    }
                }
                return Self::from_pairs(rows * cols, &pairs)
                    .map(Some)
                    .map_err(|e| invalid(&e));
            }
            "mesh" => {
                let n = count(size)?;
                (1..=n)
                    .flat_map(|a| (a + 1..=n).map(move |b| (a, b)))
                    .collect()
            }
            "ring" => {
                let n = count(size)?;
                if n < 3 {
                    return Err(invalid("a ring needs at least 3 switches"));
                }
                (1..=n).map(|a| (a, a % n + 1)).collect()
            }
            "linear" => {
                let n = count(size)?;
                (1..n).map(|a| (a, a + 1)).collect()
            }
            _ => return Err(NetworkError::UnknownSpec(spec.to_string())),
        };
        let switches = match kind {
            "mesh" | "ring" | "linear" => count(size)?,
            _ => unreachable!("grid returned above, unknown kinds rejected"),
        };
        Self::from_pairs(switches, &pairs)
            .map(Some)
            .map_err(|e| invalid(&e))
    }

    /// Switches `1..=count`, a link per pair, ports numbered in order of appearance; every
    /// link has the default capacity and cost and a latency of [`generated_latency_ns`].
    fn from_pairs(count: u64, pairs: &[(u64, u64)]) -> Result<Network, String> {
        let mut next_port: HashMap<u64, u32> = HashMap::new();
        let mut take_port = |switch: u64| -> Result<u32, String> {
            let port = next_port.entry(switch).or_insert(1);
            if *port > DEFAULT_SWITCH_PORTS {
                return Err(format!(
                    "switch {switch} would need more than {DEFAULT_SWITCH_PORTS} ISL ports"
                ));
            }
            *port += 1;
            Ok(*port - 1)
        };
        let mut links = Vec::new();
        for &(a, b) in pairs {
            let isl = Isl {
                src_switch: SwitchId(a),
                src_port: take_port(a)?,
                dst_switch: SwitchId(b),
                dst_port: take_port(b)?,
            };
            links.push(Link {
                latency_ns: generated_latency_ns(a, b),
                ..Link::new(isl, DEFAULT_LINK_CAPACITY_KBPS)
            });
        }
        let switches = (1..=count)
            .map(|n| SwitchInfo {
                switch_id: SwitchId(n),
                ports: DEFAULT_SWITCH_PORTS,
                port_numbers: Vec::new(),
            })
            .collect();
        Network::new(switches, links).map_err(|e| e.to_string())
    }

    /// Reads the JSON form: `{"switches": [{"switch_id", "ports"}], "links": [{"src_switch",
    /// "src_port", "dst_switch", "dst_port", "capacity", "latency_ns", "cost"}]}` (latency and
    /// cost may be left out: 1 ms and 700); each link is used in both directions.
    pub fn from_json(text: &str) -> Result<Network, NetworkError> {
        let parsed: NetworkJson =
            serde_json::from_str(text).map_err(|e| NetworkError::InvalidJson(e.to_string()))?;
        Network::new(parsed.switches, parsed.links)
    }

    /// Builds a network from switches and bidirectional links, checking that they fit together.
    pub fn new(
        switches: Vec<SwitchInfo>,
        bidirectional: Vec<Link>,
    ) -> Result<Network, NetworkError> {
        let invalid = |reason: String| NetworkError::InvalidJson(reason);
        let mut network = Network::default();
        for switch in switches {
            if network
                .switches
                .insert(switch.switch_id, switch.clone())
                .is_some()
            {
                return Err(invalid(format!(
                    "switch {} is listed twice",
                    switch.switch_id
                )));
            }
        }
        for link in bidirectional {
            for isl in [link.isl, link.isl.reversed()] {
                let link = Link {
                    isl,
                    ..link.clone()
                };
                let switch = network.switches.get(&isl.src_switch).ok_or_else(|| {
                    invalid(format!("link uses unknown switch {}", isl.src_switch))
                })?;
                if !switch.has_port(isl.src_port) {
                    return Err(invalid(format!(
                        "switch {} has no port {}",
                        isl.src_switch, isl.src_port
                    )));
                }
                if isl.src_switch == isl.dst_switch {
                    return Err(invalid(format!("link loops on switch {}", isl.src_switch)));
                }
                if !network
                    .isl_ports
                    .entry(isl.src_switch)
                    .or_default()
                    .insert(isl.src_port)
                {
                    return Err(invalid(format!(
                        "port {} of switch {} has two links",
                        isl.src_port, isl.src_switch
                    )));
                }
                let (from, to) = (network.node(isl.src_switch), network.node(isl.dst_switch));
                network.outgoing[from].push(network.links.len());
                network.link_to.push(to);
                network.links.push(link);
            }
        }
        Ok(network)
    }

    /// Learns a switch, or its new ports, from what the switches announce (`port_numbers`
    /// empty: 1 to `ports`).
    pub fn add_switch(&mut self, switch_id: SwitchId, ports: u32, port_numbers: &[u32]) {
        let mut port_numbers = port_numbers.to_vec();
        port_numbers.sort_unstable();
        port_numbers.dedup();
        self.switches.insert(
            switch_id,
            SwitchInfo {
                switch_id,
                ports,
                port_numbers,
            },
        );
    }

    /// Learns a directed ISL, or its new capacity, latency and cost, from what the switches
    /// announce (or an operator's patch). Unlike [`Network::new`] it trusts the announcement:
    /// the far switch may be announced later.
    pub fn add_isl(&mut self, link: Link) {
        let isl = link.isl;
        let (from, to) = (self.node(isl.src_switch), self.node(isl.dst_switch));
        let outgoing = &mut self.outgoing[from];
        if let Some(&index) = outgoing.iter().find(|&&i| self.links[i].isl == isl) {
            self.links[index] = link;
            return;
        }
        let at = outgoing.partition_point(|&i| self.links[i].isl.src_port < isl.src_port);
        outgoing.insert(at, self.links.len());
        self.link_to.push(to);
        self.links.push(link);
        self.isl_ports
            .entry(isl.src_switch)
            .or_default()
            .insert(isl.src_port);
    }

    /// The node number of a switch, new ones numbered in order of appearance.
    fn node(&mut self, switch_id: SwitchId) -> usize {
        let next = self.nodes.len();
        let node = *self.nodes.entry(switch_id).or_insert(next);
        if node == next {
            self.outgoing.push(Vec::new());
        }
        node
    }

    /// The events a switch fabric with all of this network up would announce.
    pub fn announcement(&self) -> Vec<SbEvent> {
        let switches = self.switches().map(|s| SbEvent::SwitchAdded {
            switch_id: s.switch_id,
            ports: s.ports,
            port_numbers: s.port_numbers.clone(),
        });
        let isls = self.links.iter().map(|l| SbEvent::IslUp {
            isl: l.isl,
            capacity: l.capacity,
            latency_ns: l.latency_ns,
            cost: l.cost,
        });
        switches.chain(isls).collect()
    }

    pub fn switches(&self) -> impl Iterator<Item = &SwitchInfo> {
        self.switches.values()
    }

    pub fn switch(&self, switch_id: SwitchId) -> Option<&SwitchInfo> {
        self.switches.get(&switch_id)
    }

    /// Every directed ISL.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn is_isl_port(&self, switch_id: SwitchId, port: u32) -> bool {
        self.isl_ports
            .get(&switch_id)
            .is_some_and(|ports| ports.contains(&port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlimited(_: &Isl) -> Option<u64> {
        Some(u64::MAX)
    }

    #[test]
    fn grid_3x3_has_12_links_in_both_directions() {
        let network = Network::generate("grid:3x3").unwrap().unwrap();
        assert_eq!(network.switches().count(), 9);
        assert_eq!(network.links().len(), 24);
        let corner_to_corner = network
            .shortest_path(SwitchId(1), SwitchId(9), 1, unlimited)
            .unwrap();
        assert_eq!(corner_to_corner.len(), 4);
        assert_eq!(corner_to_corner[0].src_switch, SwitchId(1));
        assert_eq!(corner_to_corner[3].dst_switch, SwitchId(9));
    }

    #[test]
    fn every_shape_generates() {
        assert_eq!(
            Network::generate("mesh:30").unwrap().unwrap().links().len(),
            30 * 29
        );
        assert_eq!(
            Network::generate("ring:4").unwrap().unwrap().links().len(),
            8
        );
        assert_eq!(
            Network::generate("linear:3")
                .unwrap()
                .unwrap()
                .links()
                .len(),
            4
        );
        assert_eq!(Network::generate("some-file.json").unwrap(), None);
        assert!(matches!(
            Network::generate("star:3"),
            Err(NetworkError::UnknownSpec(_))
        ));
        assert!(matches!(
            Network::generate("grid:0x3"),
            Err(NetworkError::InvalidSpec { .. })
        ));
        assert!(matches!(
            Network::generate("mesh:60"),
            Err(NetworkError::InvalidSpec { .. })
        ));
    }

    #[test]
    fn path_search_skips_links_without_bandwidth() {
        let network = Network::generate("ring:4").unwrap().unwrap();
        let direct = network
            .shortest_path(SwitchId(1), SwitchId(2), 5, unlimited)
            .unwrap();
        assert_eq!(direct.len(), 1);
        let full = direct[0];
        let around = network
            .shortest_path(SwitchId(1), SwitchId(2), 5, |isl| {
                if *isl == full || *isl == full.reversed() {
                    Some(4)
                } else {
                    Some(5)
                }
            })
            .unwrap();
        assert_eq!(around.len(), 3);
        let down = |isl: &Isl| (*isl != full && *isl != full.reversed()).then_some(0);
        assert_eq!(
            network
                .shortest_path(SwitchId(1), SwitchId(2), 0, down)
                .map(|p| p.len()),
            Some(3),
            "a down ISL is not used even by a flow that needs no bandwidth"
        );
        assert!(network
            .shortest_path(SwitchId(1), SwitchId(2), 6, |_| Some(5))
            .is_none());
    }

    #[test]
    fn json_networks_are_checked() {
        let good = r#"{"switches":[{"switch_id":"00:00:00:00:00:00:00:01","ports":4},{"switch_id":"00:00:00:00:00:00:00:02","ports":4}],
            "links":[{"src_switch":"00:00:00:00:00:00:00:01","src_port":1,"dst_switch":"00:00:00:00:00:00:00:02","dst_port":1,"capacity":1000}]}"#;
        let network = Network::from_json(good).unwrap();
        assert_eq!(network.links().len(), 2);
        assert!(network.is_isl_port(SwitchId(1), 1));
        assert!((2..=4).all(|port| !network.is_isl_port(SwitchId(1), port)));
        let bad_port = good.replace("\"src_port\":1", "\"src_port\":9");
        assert!(Network::from_json(&bad_port)
            .unwrap_err()
            .to_string()
            .contains("no port 9"));
        assert!(Network::from_json("{").is_err());
    }

    #[test]
    fn a_switch_has_its_ports_gaps_and_all() {
        let mut network = Network::default();
        network.add_switch(SwitchId(1), 13, &[13, 1, 2, 10, 11, 12]);
        network.add_switch(SwitchId(2), 4, &[]);
        let gapped = network.switch(SwitchId(1)).expect("known");
        assert!([1, 2, 10, 13].iter().all(|&p| gapped.has_port(p)));
        assert!([0, 3, 9, 14].iter().all(|&p| !gapped.has_port(p)));
        let whole = network.switch(SwitchId(2)).expect("known");
        assert!((1..=4).all(|p| whole.has_port(p)));
        assert!(!whole.has_port(0) && !whole.has_port(5));
    }
}
