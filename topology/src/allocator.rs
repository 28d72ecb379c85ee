//! Resource allocation: validates a flow against the network and reserves its path, cookie,
//! transit VLAN, meters and bandwidth. It runs on one worker (its requests are exchanged to
//! worker 0), so two flows can never take the same bandwidth however many workers there are.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use hubspoke_fsm::network::Network;
use hubspoke_fsm::{
    ErrorBody, FlowEndpoint, FlowId, FlowRequest, Isl, Resources, SbEvent, SwitchId, MAX_VLAN,
};
use serde::{Deserialize, Serialize};

use crate::wire::Json;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllocatorRequest {
    Allocate {
        flow_id: FlowId,
        request: FlowRequest,
    },
    Free {
        flow_id: FlowId,
    },
    /// The network changed: paths avoid what is down from now on.
    Network(Json<SbEvent>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationResult {
    pub flow_id: FlowId,
    pub result: Result<Resources, ErrorBody>,
}

/// Lowest-free-first id pool over `first..=last`.
#[derive(Debug)]
struct IdPool {
    next: u64,
    last: u64,
    freed: BTreeSet<u64>,
}

impl IdPool {
    fn new(first: u64, last: u64) -> Self {
        IdPool {
            next: first,
            last,
            freed: BTreeSet::new(),
        }
    }

    fn take(&mut self) -> Option<u64> {
        if let Some(id) = self.freed.pop_first() {
            return Some(id);
        }
        (self.next <= self.last).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn give_back(&mut self, id: u64) {
        self.freed.insert(id);
    }
}

/// OpenKilda's flow meters start at 32; lower ids are for the switch's own use.
const FIRST_FLOW_METER: u64 = 32;
const LAST_METER: u64 = 65_535;
const FIRST_TRANSIT_VLAN: u64 = 2;

struct Allocation {
    request: FlowRequest,
    resources: Resources,
}

pub struct ResourcePool {
    network: Arc<Network>,
    capacity: HashMap<Isl, u64>,
    used_bandwidth: HashMap<Isl, u64>,
    cookies: IdPool,
    transit_vlans: IdPool,
    meters: HashMap<SwitchId, IdPool>,
    endpoints: HashMap<FlowEndpoint, FlowId>,
    allocations: HashMap<FlowId, Allocation>,
    /// ISLs the switches reported down, and switches reported gone.
    down_isls: HashSet<Isl>,
    removed_switches: HashSet<SwitchId>,
}

impl ResourcePool {
    pub fn new(network: Arc<Network>) -> Self {
        let capacity = network
            .links()
            .iter()
            .map(|l| (l.isl, l.capacity))
            .collect();
        ResourcePool {
            network,
            capacity,
            used_bandwidth: HashMap::new(),
            cookies: IdPool::new(1, (1 << 48) - 1),
            transit_vlans: IdPool::new(FIRST_TRANSIT_VLAN, u64::from(MAX_VLAN)),
            meters: HashMap::new(),
            endpoints: HashMap::new(),
            allocations: HashMap::new(),
            down_isls: HashSet::new(),
            removed_switches: HashSet::new(),
        }
    }

    pub fn handle(&mut self, request: AllocatorRequest) -> Option<AllocationResult> {
        match request {
            AllocatorRequest::Allocate { flow_id, request } => {
                let result = self.allocate(&request);
                Some(AllocationResult { flow_id, result })
            }
            AllocatorRequest::Free { flow_id } => {
                self.free(&flow_id);
                None
            }
            AllocatorRequest::Network(Json(event)) => {
                self.apply_network_event(&event);
                None
            }
        }
    }

    /// Records what the switches report. Flows already on a link that went down keep their
    /// reservation until they are moved off it.
    pub fn apply_network_event(&mut self, event: &SbEvent) {
        match event {
            SbEvent::IslUp { isl, .. } => {
                self.down_isls.remove(isl);
            }
            SbEvent::IslDown { isl } => {
                self.down_isls.insert(*isl);
            }
            SbEvent::SwitchAdded { switch_id, .. } => {
                self.removed_switches.remove(switch_id);
            }
            SbEvent::SwitchRemoved { switch_id } => {
                self.removed_switches.insert(*switch_id);
            }
        }
    }

    /// Bandwidth a new path may take on `isl`; `None` if it or one of its switches is down.
    pub fn usable(&self, isl: &Isl) -> Option<u64> {
        let down = self.down_isls.contains(isl)
            || self.removed_switches.contains(&isl.src_switch)
            || self.removed_switches.contains(&isl.dst_switch);
        (!down).then(|| self.available(isl))
    }

    /// Bandwidth not reserved on `isl`.
    pub fn available(&self, isl: &Isl) -> u64 {
        let capacity = self.capacity.get(isl).copied().unwrap_or(0);
        capacity.saturating_sub(self.used_bandwidth.get(isl).copied().unwrap_or(0))
    }

    pub fn allocate(&mut self, request: &FlowRequest) -> Result<Resources, ErrorBody> {
        if self.allocations.contains_key(&request.flow_id) {
            return Err(ErrorBody::new(
                409,
                "already-exists",
                "Flow already exists",
                format!("flow {} already holds resources", request.flow_id),
            ));
        }
        request.validate().map_err(|reason| {
            ErrorBody::new(400, "data-invalid", "Invalid flow request", reason)
        })?;
        for endpoint in [&request.source, &request.destination] {
            self.check_endpoint(endpoint)?;
        }
        let path = self
            .network
            .shortest_path(
                request.source.switch_id,
                request.destination.switch_id,
                request.maximum_bandwidth,
                |isl| self.usable(isl),
            )
            .ok_or_else(|| {
                ErrorBody::new(
                    503,
                    "no-path",
                    "Not enough bandwidth or no path found",
                    format!(
                        "no path from {} to {} has {} kbps available",
                        request.source.switch_id,
                        request.destination.switch_id,
                        request.maximum_bandwidth
                    ),
                )
            })?;
        let exhausted = |what: &str| {
            ErrorBody::new(
                503,
                "resources-exhausted",
                "No resources left",
                format!("no free {what}"),
            )
        };
        let cookie = self.cookies.take().ok_or_else(|| exhausted("cookie"))?;
        let Some(transit_vlan) = self.transit_vlans.take() else {
            self.cookies.give_back(cookie);
            return Err(exhausted("transit VLAN"));
        };
        let metered = request.maximum_bandwidth > 0;
        let forward_meter = metered
            .then(|| self.take_meter(request.source.switch_id))
            .flatten();
        let reverse_meter = metered
            .then(|| self.take_meter(request.destination.switch_id))
            .flatten();
        let resources = Resources {
            cookie,
            transit_vlan: u16::try_from(transit_vlan).unwrap_or(MAX_VLAN),
            forward_meter: forward_meter.map(|m| m as u32),
            reverse_meter: reverse_meter.map(|m| m as u32),
            forward_path: path,
        };
        if metered && (forward_meter.is_none() || reverse_meter.is_none()) {
            self.release(request, &resources);
            return Err(exhausted("meter"));
        }
        for isl in reserved_isls(&resources) {
            *self.used_bandwidth.entry(isl).or_insert(0) += request.maximum_bandwidth;
        }
        for endpoint in [&request.source, &request.destination] {
            self.endpoints
                .insert(endpoint.clone(), request.flow_id.clone());
        }
        self.allocations.insert(
            request.flow_id.clone(),
            Allocation {
                request: request.clone(),
                resources: resources.clone(),
            },
        );
        Ok(resources)
    }

    /// Releases everything the flow holds; freeing a flow twice is harmless.
    pub fn free(&mut self, flow_id: &str) {
        if let Some(allocation) = self.allocations.remove(flow_id) {
            for isl in reserved_isls(&allocation.resources) {
                if let Some(used) = self.used_bandwidth.get_mut(&isl) {
                    *used = used.saturating_sub(allocation.request.maximum_bandwidth);
                }
            }
            for endpoint in [&allocation.request.source, &allocation.request.destination] {
                self.endpoints.remove(endpoint);
            }
            self.release(&allocation.request, &allocation.resources);
        }
    }

    fn release(&mut self, request: &FlowRequest, resources: &Resources) {
        self.cookies.give_back(resources.cookie);
        self.transit_vlans
            .give_back(u64::from(resources.transit_vlan));
        for (switch, meter) in [
            (request.source.switch_id, resources.forward_meter),
            (request.destination.switch_id, resources.reverse_meter),
        ] {
            if let (Some(meter), Some(pool)) = (meter, self.meters.get_mut(&switch)) {
                pool.give_back(u64::from(meter));
            }
        }
    }

    fn take_meter(&mut self, switch: SwitchId) -> Option<u64> {
        self.meters
            .entry(switch)
            .or_insert_with(|| IdPool::new(FIRST_FLOW_METER, LAST_METER))
            .take()
    }

    fn check_endpoint(&self, endpoint: &FlowEndpoint) -> Result<(), ErrorBody> {
        let switch = self.network.switch(endpoint.switch_id).ok_or_else(|| {
            ErrorBody::new(
                404,
                "not-found",
                "Switch not found",
                format!("switch {} is not in the network", endpoint.switch_id),
            )
        })?;
        if self.removed_switches.contains(&endpoint.switch_id) {
            return Err(ErrorBody::new(
                503,
                "switch-unavailable",
                "Switch is not available",
                format!("switch {} does not answer", endpoint.switch_id),
            ));
        }
        let bad_port =
            |reason: String| ErrorBody::new(400, "data-invalid", "Invalid endpoint", reason);
        if endpoint.port_number > switch.ports {
            return Err(bad_port(format!(
                "switch {} has no port {}",
                endpoint.switch_id, endpoint.port_number
            )));
        }
        if self
            .network
            .is_isl_port(endpoint.switch_id, endpoint.port_number)
        {
            return Err(bad_port(format!(
                "port {} of switch {} is an inter-switch link",
                endpoint.port_number, endpoint.switch_id
            )));
        }
        if let Some(owner) = self.endpoints.get(endpoint) {
            return Err(ErrorBody::new(
                409,
                "endpoint-conflict",
                "Endpoint already in use",
                format!(
                    "port {} vlan {} of switch {} is used by flow {owner}",
                    endpoint.port_number, endpoint.vlan_id, endpoint.switch_id
                ),
            ));
        }
        Ok(())
    }
}

/// A flow reserves its bandwidth on every ISL of its path in both directions.
fn reserved_isls(resources: &Resources) -> impl Iterator<Item = Isl> + '_ {
    resources
        .forward_path
        .iter()
        .flat_map(|isl| [*isl, isl.reversed()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(spec: &str) -> ResourcePool {
        ResourcePool::new(Arc::new(Network::generate(spec).unwrap().unwrap()))
    }

    fn request(flow_id: &str, src: u64, dst: u64, port: u32, bandwidth: u64) -> FlowRequest {
        FlowRequest {
            flow_id: flow_id.into(),
            source: FlowEndpoint {
                switch_id: SwitchId(src),
                port_number: port,
                vlan_id: 0,
            },
            destination: FlowEndpoint {
                switch_id: SwitchId(dst),
                port_number: port,
                vlan_id: 0,
            },
            maximum_bandwidth: bandwidth,
            description: String::new(),
        }
    }

    #[test]
    fn allocation_reserves_both_directions_and_free_gives_everything_back() {
        let mut pool = pool("linear:3");
        let resources = pool.allocate(&request("a", 1, 3, 10, 4_000_000)).unwrap();
        assert_eq!(resources.forward_path.len(), 2);
        assert_eq!(
            (
                resources.cookie,
                resources.transit_vlan,
                resources.forward_meter
            ),
            (1, 2, Some(32))
        );
        for isl in reserved_isls(&resources) {
            assert_eq!(pool.available(&isl), 6_000_000);
        }
        pool.free("a");
        pool.free("a");
        for isl in reserved_isls(&resources) {
            assert_eq!(pool.available(&isl), 10_000_000);
        }
        let again = pool.allocate(&request("b", 1, 3, 10, 1)).unwrap();
        assert_eq!(
            (again.cookie, again.transit_vlan, again.forward_meter),
            (1, 2, Some(32)),
            "ids are reused"
        );
    }

    #[test]
    fn bandwidth_is_never_over_committed() {
        let mut pool = pool("linear:2");
        pool.allocate(&request("a", 1, 2, 10, 6_000_000)).unwrap();
        let error = pool
            .allocate(&request("b", 1, 2, 11, 6_000_000))
            .unwrap_err();
        assert_eq!((error.status, error.error_type.as_str()), (503, "no-path"));
        pool.allocate(&request("c", 1, 2, 12, 4_000_000)).unwrap();
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_right_status() {
        let mut pool = pool("linear:2");
        assert_eq!(
            pool.allocate(&request("a", 1, 7, 10, 1))
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            pool.allocate(&request("a", 1, 2, 1, 1)).unwrap_err().status,
            400,
            "ISL port"
        );
        assert_eq!(
            pool.allocate(&request("a", 1, 2, 99, 1))
                .unwrap_err()
                .status,
            400,
            "no such port"
        );
        pool.allocate(&request("a", 1, 2, 10, 1)).unwrap();
        assert_eq!(
            pool.allocate(&request("b", 1, 2, 10, 1))
                .unwrap_err()
                .status,
            409,
            "endpoint in use"
        );
        assert_eq!(
            pool.allocate(&request("a", 1, 2, 20, 1))
                .unwrap_err()
                .status,
            409,
            "flow holds resources"
        );
    }

    #[test]
    fn one_switch_and_best_effort_flows() {
        let mut pool = pool("linear:2");
        let one_switch = pool
            .allocate(&request("a", 1, 1, 10, 5).clone())
            .unwrap_err();
        assert_eq!(one_switch.status, 400, "same endpoint twice");
        let mut flow = request("a", 1, 1, 10, 5);
        flow.destination.port_number = 11;
        let resources = pool.allocate(&flow).unwrap();
        assert!(resources.forward_path.is_empty());
        assert_eq!(
            (resources.forward_meter, resources.reverse_meter),
            (Some(32), Some(33))
        );
        let best_effort = pool.allocate(&request("b", 1, 2, 12, 0)).unwrap();
        assert_eq!(best_effort.forward_meter, None);
    }

    #[test]
    fn paths_avoid_what_the_switches_report_down() {
        let mut pool = pool("ring:4");
        let direct = pool.allocate(&request("a", 1, 2, 10, 0)).unwrap();
        assert_eq!(direct.forward_path.len(), 1);
        for isl in [direct.forward_path[0], direct.forward_path[0].reversed()] {
            pool.apply_network_event(&SbEvent::IslDown { isl });
        }
        let around = pool.allocate(&request("b", 1, 2, 11, 0)).unwrap();
        assert_eq!(
            around.forward_path.len(),
            3,
            "best-effort flows avoid a down link too"
        );
        pool.apply_network_event(&SbEvent::SwitchRemoved {
            switch_id: SwitchId(4),
        });
        assert_eq!(
            pool.allocate(&request("c", 1, 2, 12, 0))
                .unwrap_err()
                .status,
            503,
            "no path left"
        );
        assert_eq!(
            pool.allocate(&request("d", 4, 2, 13, 0))
                .unwrap_err()
                .error_type,
            "switch-unavailable"
        );
        pool.apply_network_event(&SbEvent::IslUp {
            isl: direct.forward_path[0],
            capacity: 1,
        });
        pool.apply_network_event(&SbEvent::IslUp {
            isl: direct.forward_path[0].reversed(),
            capacity: 1,
        });
        assert_eq!(
            pool.allocate(&request("e", 1, 2, 14, 0))
                .unwrap()
                .forward_path
                .len(),
            1
        );
    }
}
