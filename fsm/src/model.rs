//! The flow model: what a northbound client asks for and what the controller records.

use serde::{Deserialize, Serialize};

use crate::segments::FlowSegment;
use crate::SwitchId;

pub type FlowId = String;

/// Highest usable VLAN id; 0 means "untagged".
pub const MAX_VLAN: u16 = 4094;
const MAX_FLOW_ID_LEN: usize = 128;

/// One end of a flow: a port of a switch, optionally a VLAN on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowEndpoint {
    pub switch_id: SwitchId,
    pub port_number: u32,
    #[serde(default)]
    pub vlan_id: u16,
}

/// How a flow's path is chosen (OpenKilda's `path_computation_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathComputationStrategy {
    /// The cheapest path: the lowest sum of ISL costs.
    #[default]
    Cost,
    /// The lowest total latency.
    Latency,
    /// The cheapest path whose latency is at most `max_latency`; failing that, at most
    /// `max_latency_tier2`, and the flow is DEGRADED.
    MaxLatency,
    /// The cheapest path, ties going to the most available bandwidth.
    CostAndAvailableBandwidth,
}

/// What a northbound client asks for (`POST /v2/flows`). Every field is always serialized:
/// between timely processes a request travels as bincode, which has no optional fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRequest {
    pub flow_id: FlowId,
    pub source: FlowEndpoint,
    pub destination: FlowEndpoint,
    /// Kilobits per second; 0 means "best effort": no meter, no reservation.
    pub maximum_bandwidth: u64,
    #[serde(default)]
    pub description: String,
    /// Never moved automatically (OpenKilda's `pinned`): a failure of its path makes it DOWN
    /// on that path until the path is whole again, and a manual reroute is refused.
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub path_computation_strategy: PathComputationStrategy,
    /// Milliseconds, for `MAX_LATENCY`: the highest total latency of a path.
    #[serde(default)]
    pub max_latency: Option<u64>,
    /// Milliseconds, for `MAX_LATENCY`: the limit of a DEGRADED path when no path is within
    /// `max_latency`.
    #[serde(default)]
    pub max_latency_tier2: Option<u64>,
    /// A second path sharing no ISL with the primary, installed beside it and swapped to when
    /// the primary fails.
    #[serde(default)]
    pub allocate_protected_path: bool,
    /// Joins the diversity group of that flow (or forms one with it): the members' paths share
    /// no ISL, and no switch but their endpoints, where the network allows.
    #[serde(default)]
    pub diverse_flow_id: Option<FlowId>,
    /// Lower is more important (OpenKilda's meaning); none is the least important.
    #[serde(default)]
    pub priority: Option<u32>,
    /// Path search ignores available bandwidth for this flow.
    #[serde(default)]
    pub ignore_bandwidth: bool,
    /// A reroute that finds no path with the bandwidth leaves the flow DOWN instead of
    /// DEGRADED on a path without it.
    #[serde(default)]
    pub strict_bandwidth: bool,
}

impl FlowRequest {
    /// Checks what can be checked without the network: the shape of the request.
    pub fn validate(&self) -> Result<(), String> {
        validate_flow_id(&self.flow_id)?;
        for (name, endpoint) in [("source", &self.source), ("destination", &self.destination)] {
            if endpoint.port_number == 0 {
                return Err(format!("{name}.port_number must be at least 1"));
            }
            if endpoint.vlan_id > MAX_VLAN {
                return Err(format!("{name}.vlan_id must be between 0 and {MAX_VLAN}"));
            }
        }
        if self.source == self.destination {
            return Err("source and destination are the same endpoint".to_string());
        }
        self.validate_options()
    }

    /// Whether `other` differs from it only in what neither its rules nor its path depend on
    /// (description, priority, pinned, strict_bandwidth): an update between them moves nothing.
    pub fn same_path_and_rules(&self, other: &FlowRequest) -> bool {
        let bookkeeping_cleared = |r: &FlowRequest| FlowRequest {
            description: String::new(),
            priority: None,
            pinned: false,
            strict_bandwidth: false,
            ..r.clone()
        };
        bookkeeping_cleared(self) == bookkeeping_cleared(other)
    }

    /// The flow options that exclude or need each other.
    fn validate_options(&self) -> Result<(), String> {
        if self.ignore_bandwidth && self.strict_bandwidth {
            return Err("ignore_bandwidth and strict_bandwidth cannot both be set".to_string());
        }
        if self.path_computation_strategy == PathComputationStrategy::MaxLatency
            && self.max_latency.is_none()
        {
            return Err("path_computation_strategy MAX_LATENCY needs max_latency".to_string());
        }
        if let (Some(tier1), Some(tier2)) = (self.max_latency, self.max_latency_tier2) {
            if tier2 < tier1 {
                return Err("max_latency_tier2 must be at least max_latency".to_string());
            }
        }
        if self.diverse_flow_id.as_deref() == Some(self.flow_id.as_str()) {
            return Err("diverse_flow_id names the flow itself".to_string());
        }
        if self.allocate_protected_path {
            if self.source.switch_id == self.destination.switch_id {
                return Err("a one-switch flow cannot have a protected path".to_string());
            }
            if self.pinned {
                return Err("a pinned flow cannot have a protected path".to_string());
            }
        }
        Ok(())
    }
}

/// One end of a flow as a patch changes it: the fields given replace the flow's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_id: Option<SwitchId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
}

impl EndpointPatch {
    fn apply(&self, endpoint: &mut FlowEndpoint) {
        replace(&mut endpoint.switch_id, &self.switch_id);
        replace(&mut endpoint.port_number, &self.port_number);
        replace(&mut endpoint.vlan_id, &self.vlan_id);
    }
}

/// `PATCH /v2/flows/{id}` (OpenKilda's `FlowPatchV2`): the fields given replace the flow's,
/// the others stay. A field it does not know is refused, never ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EndpointPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<EndpointPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_bandwidth: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_computation_strategy: Option<PathComputationStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_tier2: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_protected_path: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverse_flow_id: Option<FlowId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_bandwidth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_bandwidth: Option<bool>,
}

impl FlowPatch {
    /// The request with the patch's fields in place of its own.
    pub fn applied_to(&self, request: &FlowRequest) -> FlowRequest {
        let mut patched = request.clone();
        if let Some(source) = &self.source {
            source.apply(&mut patched.source);
        }
        if let Some(destination) = &self.destination {
            destination.apply(&mut patched.destination);
        }
        replace(&mut patched.maximum_bandwidth, &self.maximum_bandwidth);
        replace(&mut patched.description, &self.description);
        replace(&mut patched.pinned, &self.pinned);
        replace(
            &mut patched.path_computation_strategy,
            &self.path_computation_strategy,
        );
        replace(
            &mut patched.allocate_protected_path,
            &self.allocate_protected_path,
        );
        replace(&mut patched.ignore_bandwidth, &self.ignore_bandwidth);
        replace(&mut patched.strict_bandwidth, &self.strict_bandwidth);
        set(&mut patched.max_latency, &self.max_latency);
        set(&mut patched.max_latency_tier2, &self.max_latency_tier2);
        set(&mut patched.diverse_flow_id, &self.diverse_flow_id);
        set(&mut patched.priority, &self.priority);
        patched
    }
}

/// A field a patch gives replaces the flow's.
fn replace<T: Clone>(field: &mut T, given: &Option<T>) {
    if let Some(value) = given {
        *field = value.clone();
    }
}

/// An optional field a patch gives is set; one it leaves out stays.
fn set<T: Clone>(field: &mut Option<T>, given: &Option<T>) {
    if given.is_some() {
        field.clone_from(given);
    }
}

/// Flow ids become bus keys, URL path segments and rule owners: keep them printable.
pub fn validate_flow_id(flow_id: &str) -> Result<(), String> {
    if flow_id.is_empty() || flow_id.len() > MAX_FLOW_ID_LEN {
        return Err(format!("flow_id must be 1 to {MAX_FLOW_ID_LEN} characters"));
    }
    if !flow_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err("flow_id may only contain letters, digits, '-', '_', '.' and ':'".to_string());
    }
    // A client normalising URLs would turn `/v2/flows/..` into `/v2/`.
    if flow_id.chars().all(|c| c == '.') {
        return Err("flow_id may not be made of dots only".to_string());
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowStatus {
    InProgress,
    Up,
    Down,
    Degraded,
}

/// One direction of an inter-switch link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Isl {
    pub src_switch: SwitchId,
    pub src_port: u32,
    pub dst_switch: SwitchId,
    pub dst_port: u32,
}

impl Isl {
    pub fn reversed(&self) -> Isl {
        Isl {
            src_switch: self.dst_switch,
            src_port: self.dst_port,
            dst_switch: self.src_switch,
            dst_port: self.src_port,
        }
    }
}

/// What the allocator reserved for a flow. The reverse path is the forward one reversed.
/// Every field is always serialized (timely exchanges it as bincode).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// The flow's cookie id; the forward and reverse rules set a direction bit on it.
    pub cookie: u64,
    /// The VLAN that marks the flow's packets on each ISL of the forward path, in path order
    /// (the reverse direction uses the same one per link). Each link has VLANs of its own, so
    /// the number of flows is bounded per link, not network-wide; transit rules swap them.
    pub transit_vlans: Vec<u16>,
    /// Meter on the source switch (forward ingress); none for best-effort flows.
    pub forward_meter: Option<u32>,
    /// Meter on the destination switch (reverse ingress).
    pub reverse_meter: Option<u32>,
    /// ISLs from source to destination; empty for a one-switch flow.
    pub forward_path: Vec<Isl>,
    /// The path was chosen without the flow's bandwidth (`ignore_bandwidth`, or a DEGRADED
    /// reroute): nothing is reserved on its ISLs, so no link is ever over-committed.
    #[serde(default)]
    pub without_bandwidth: bool,
    /// Why the reservation falls short of what the flow asks (no path with its bandwidth, or
    /// within its latency): the flow is DEGRADED while it holds it.
    #[serde(default)]
    pub degraded: Option<String>,
    /// The protected path, when the flow asks for one and the network has one. Always
    /// serialized (bincode between processes); absent in records written before it existed.
    /// Boxed: most flows have none, and a record travels in every answer.
    #[serde(default)]
    pub protected: Option<Box<ProtectedPath>>,
}

/// Why a flow asks for a new reservation next to its current one: what the allocator may
/// settle for, and in which order it serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reallocation {
    /// A client asked (an update, a manual reroute): served at once; without a path that
    /// satisfies the request it fails and the flow stays where it is.
    Requested,
    /// The network broke the flow's path or left it DOWN: served in priority order with the
    /// other repairs of the moment. Without a path with the bandwidth it takes the best path
    /// without it, DEGRADED, unless the flow is `strict_bandwidth`.
    Repair,
    /// A DEGRADED flow tries for a path that satisfies it: served in priority order; without
    /// one it fails, and the flow stays DEGRADED where it is.
    Upgrade,
}

/// A second path between the flow's switches sharing no ISL with the primary. Its transit and
/// egress rules are installed beside the primary's under the same cookie (they stay distinct
/// by match: they arrive on other ports); its ingress rules only once the flow swaps onto it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedPath {
    pub forward_path: Vec<Isl>,
    /// One per ISL of `forward_path`, as `Resources::transit_vlans`.
    pub transit_vlans: Vec<u16>,
}

impl Resources {
    /// The resources with the primary and protected paths exchanged: what a swap commits.
    /// `None` without a protected path.
    pub fn swapped(&self) -> Option<Resources> {
        let protected = self.protected.as_ref()?;
        Some(Resources {
            transit_vlans: protected.transit_vlans.clone(),
            forward_path: protected.forward_path.clone(),
            protected: Some(Box::new(ProtectedPath {
                forward_path: self.forward_path.clone(),
                transit_vlans: self.transit_vlans.clone(),
            })),
            ..self.clone()
        })
    }
}

/// A flow's request and what the allocator reserved for it: what its rules use. A record's
/// `target` is the reservation a reroute or update is moving the flow to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub request: FlowRequest,
    pub resources: Resources,
}

/// Rules that must leave the switches but were not confirmed removed, and the reservation
/// they use: its cookie, VLANs, meters, endpoints and bandwidth stay taken until every one of
/// these rules is confirmed gone, so nothing new can collide with them. Paid off by retrying
/// the removals for as long as it takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalDebt {
    pub reservation: Reservation,
    pub rules: Vec<FlowSegment>,
}

/// The durable record of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    #[serde(flatten)]
    pub request: FlowRequest,
    pub status: FlowStatus,
    #[serde(default)]
    pub status_info: Option<String>,
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Where a reroute or update is moving the flow while it runs: the new rules may be on
    /// switches, so a restart must know them to remove them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Box<Reservation>>,
    pub created_ms: u64,
    pub last_updated_ms: u64,
    /// Grows with every change, so a reader can keep the newest of two copies.
    pub version: u64,
}

impl FlowRecord {
    pub fn new(request: FlowRequest, now_ms: u64) -> Self {
        FlowRecord {
            request,
            status: FlowStatus::InProgress,
            status_info: None,
            resources: None,
            target: None,
            created_ms: now_ms,
            last_updated_ms: now_ms,
            version: 1,
        }
    }

    pub fn flow_id(&self) -> &str {
        &self.request.flow_id
    }

    /// Its rules are in place: UP, or DEGRADED with the reason when its reservation falls
    /// short of its request.
    pub fn mark_in_place(&mut self) {
        let degraded = self.resources.as_ref().and_then(|r| r.degraded.clone());
        self.status = match degraded {
            Some(_) => FlowStatus::Degraded,
            None => FlowStatus::Up,
        };
        self.status_info = degraded;
    }

    /// The record after a change at `now_ms`.
    pub fn changed(&self, now_ms: u64, change: impl FnOnce(&mut FlowRecord)) -> FlowRecord {
        let mut next = self.clone();
        change(&mut next);
        next.last_updated_ms = now_ms;
        next.version += 1;
        next
    }
}

/// One entry of a flow's append-only history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub timestamp_ms: u64,
    pub operation: String,
    pub event: String,
    pub from_state: String,
    pub to_state: String,
    #[serde(default)]
    pub details: String,
    pub correlation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> FlowRequest {
        FlowRequest {
            flow_id: "f1".into(),
            source: FlowEndpoint {
                switch_id: SwitchId(1),
                port_number: 10,
                vlan_id: 100,
            },
            destination: FlowEndpoint {
                switch_id: SwitchId(2),
                port_number: 10,
                vlan_id: 0,
            },
            maximum_bandwidth: 1000,
            description: String::new(),
            ..Default::default()
        }
    }

    #[test]
    fn a_well_formed_request_validates() {
        assert_eq!(request().validate(), Ok(()));
        let diverse = FlowRequest {
            diverse_flow_id: Some("f2".into()),
            ..request()
        };
        assert_eq!(diverse.validate(), Ok(()));
    }

    #[test]
    fn bad_requests_are_explained() {
        let mut r = request();
        r.flow_id = "has space".into();
        assert!(r.validate().unwrap_err().contains("flow_id"));
        for dots in [".", ".."] {
            assert!(
                validate_flow_id(dots).unwrap_err().contains("dots"),
                "{dots}"
            );
        }
        let mut r = request();
        r.source.vlan_id = 5000;
        assert!(r.validate().unwrap_err().contains("source.vlan_id"));
        let mut r = request();
        r.destination.port_number = 0;
        assert!(r
            .validate()
            .unwrap_err()
            .contains("destination.port_number"));
        let mut r = request();
        r.destination = r.source.clone();
        assert!(r.validate().unwrap_err().contains("same endpoint"));
    }

    #[test]
    fn flow_options_that_exclude_or_need_each_other_are_refused() {
        let refused = |change: fn(&mut FlowRequest)| {
            let mut r = request();
            change(&mut r);
            r.validate().unwrap_err()
        };
        assert!(
            refused(|r| (r.ignore_bandwidth, r.strict_bandwidth) = (true, true))
                .contains("cannot both")
        );
        assert!(
            refused(|r| r.path_computation_strategy = PathComputationStrategy::MaxLatency)
                .contains("needs max_latency")
        );
        assert!(
            refused(|r| (r.max_latency, r.max_latency_tier2) = (Some(10), Some(5)))
                .contains("at least max_latency")
        );
        assert!(refused(|r| r.diverse_flow_id = Some("f1".into())).contains("itself"));
        assert!(refused(|r| {
            r.allocate_protected_path = true;
            r.destination.switch_id = r.source.switch_id;
        })
        .contains("one-switch"));
        assert!(
            refused(|r| (r.allocate_protected_path, r.pinned) = (true, true)).contains("pinned")
        );
        let mut latency_bound = request();
        latency_bound.path_computation_strategy = PathComputationStrategy::MaxLatency;
        (latency_bound.max_latency, latency_bound.max_latency_tier2) = (Some(10), Some(20));
        assert_eq!(latency_bound.validate(), Ok(()));
    }

    #[test]
    fn a_patch_replaces_the_fields_it_gives_and_refuses_ones_it_does_not_know() {
        let patch: FlowPatch = serde_json::from_str(
            r#"{"destination": {"vlan_id": 300}, "priority": 2, "description": "new"}"#,
        )
        .expect("a patch");
        let before = request();
        let patched = patch.applied_to(&before);
        assert_eq!(patched.destination.vlan_id, 300);
        assert_eq!(
            patched.destination.port_number,
            before.destination.port_number
        );
        assert_eq!(
            (patched.priority, patched.description.as_str()),
            (Some(2), "new")
        );
        assert_eq!(
            FlowRequest {
                destination: before.destination.clone(),
                priority: None,
                description: String::new(),
                ..patched.clone()
            },
            before
        );
        assert!(
            !patched.same_path_and_rules(&before),
            "a new VLAN is a new rule"
        );
        let bookkeeping = FlowPatch {
            priority: Some(1),
            pinned: Some(true),
            ..FlowPatch::default()
        };
        assert!(bookkeeping.applied_to(&before).same_path_and_rules(&before));
        let unknown = serde_json::from_str::<FlowPatch>(r#"{"periodic_pings": true}"#);
        assert!(unknown.unwrap_err().to_string().contains("periodic_pings"));
    }

    #[test]
    fn record_changes_bump_the_version() {
        let record = FlowRecord::new(request(), 5);
        let next = record.changed(9, |r| r.status = FlowStatus::Up);
        assert_eq!(
            (next.version, next.last_updated_ms, next.status),
            (2, 9, FlowStatus::Up)
        );
    }
}
