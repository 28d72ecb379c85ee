//! Resource allocation: validates a flow against the network and reserves its path, cookie,
//! transit VLAN, meters and bandwidth. It runs on one worker (its requests are exchanged to
//! worker 0), so two flows can never take the same bandwidth however many workers there are.
//!
//! The network it computes paths over is what the switches announce on `sb.events`. Every
//! change it makes to the network or to a reservation is also a [`ViewChange`] for the
//! differential network view.
//!
//! Make-before-break: a flow may hold a second, pending reservation next to its current one.
//! On an ISL both use, the flow counts once, with the larger bandwidth: both rule sets carry
//! the same traffic, and only one ingress is active at a time.
//!
//! Quarantine: a reservation some of whose rules may still be on a switch (their removal was
//! not confirmed: the removal debt) is not given back when the flow lets go of it. Its
//! cookie, VLANs, meters, endpoints and bandwidth stay taken until the last of those rules is
//! confirmed gone, so nothing new can collide with a rule left behind.
//!
//! Diversity: a flow in a diversity group gets a path that shares no ISL and no switch (but
//! its endpoints) with the other members' paths; failing that, no ISL; failing that, the
//! best path there is (the network view reports the ISLs it shares). See `diversity`.

pub mod diversity;
pub mod endpoint_swap;
mod ids;
mod links;
pub mod operator;
pub mod owed;
mod paths;
mod protected;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use hubspoke_fsm::dataplane::LinkEnd;
use hubspoke_fsm::network::Network;
use hubspoke_fsm::operation::PairVote;
use hubspoke_fsm::segments::{flow_segments, FlowSegment, COOKIE_ID_LIMIT};
use hubspoke_fsm::validation::Expectation;
use hubspoke_fsm::{
    ErrorBody, FlowEndpoint, FlowEndpoints, FlowId, FlowRecord, FlowRequest, Isl, LinkPatch,
    ProtectedPath, Reallocation, RemovalDebt, Reservation, Resources, SbEvent, SwitchId, MAX_VLAN,
};
use serde::{Deserialize, Serialize};

use crate::view::{LinkProps, ViewChange};
use crate::wire::Json;
use diversity::{DiversityGroups, GroupId};
use ids::IdPool;
use owed::OwedRules;
use paths::Chosen;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllocatorRequest {
    /// A new flow's first reservation.
    Allocate {
        flow_id: FlowId,
        request: FlowRequest,
    },
    /// A pending reservation next to the flow's current one (reroute, update). Repairs and
    /// upgrades wait for the other requests of their moment, to be served in priority order.
    Reallocate {
        flow_id: FlowId,
        request: FlowRequest,
        kind: Reallocation,
    },
    /// A pending reservation that keeps the flow's primary path if it still can, with a new
    /// protected path beside it.
    Reprotect {
        flow_id: FlowId,
        request: FlowRequest,
    },
    /// The flow's traffic moved onto its protected path: the current reservation's primary
    /// and protected paths exchange.
    Swap { flow_id: FlowId },
    /// An endpoint swap's two pending reservations, made for both or for neither: `first`
    /// (that flow with its new endpoints) and the flow at `second`. The first flow is
    /// answered; the second one's hub is told to start its half.
    SwapEndpoints {
        first: FlowRequest,
        second: FlowEndpoints,
        correlation_id: String,
    },
    /// One flow's word on the endpoint swap `pair` (its correlation id) it is half of (see
    /// `endpoint_swap`).
    PairVote {
        flow_id: FlowId,
        pair: String,
        vote: PairVote,
    },
    /// The pending reservation becomes the current one; the old one is released.
    Commit { flow_id: FlowId },
    /// The pending reservation is released.
    Release { flow_id: FlowId },
    /// Everything the flow holds is released.
    Free { flow_id: FlowId },
    /// Rules of the flow whose removal was not confirmed: the reservation they use stays
    /// taken until they are gone. Comes before the request that lets go of it.
    Owe { flow_id: FlowId, debt: RemovalDebt },
    /// The network changed: paths avoid what is down from now on.
    Network(Json<SbEvent>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationResult {
    pub flow_id: FlowId,
    pub result: Result<Resources, ErrorBody>,
}

/// OpenKilda's flow meters start at 32; lower ids are for the switch's own use.
const FIRST_FLOW_METER: u64 = 32;
const LAST_METER: u64 = 65_535;
const FIRST_TRANSIT_VLAN: u64 = 2;

/// The bandwidth a reservation takes on `isl` (0 if its path does not use it, or was chosen
/// without the bandwidth).
fn bandwidth_on(reservation: &Reservation, isl: &Isl) -> u64 {
    let resources = &reservation.resources;
    if !resources.without_bandwidth && reserved_isls(resources).any(|i| i == *isl) {
        reservation.request.maximum_bandwidth
    } else {
        0
    }
}

fn holds_endpoint(reservation: &Reservation, endpoint: &FlowEndpoint) -> bool {
    reservation.request.source == *endpoint || reservation.request.destination == *endpoint
}

/// The switches a reservation's rules are on.
fn switches_of(reservation: &Reservation) -> impl Iterator<Item = SwitchId> + '_ {
    let request = &reservation.request;
    [request.source.switch_id, request.destination.switch_id]
        .into_iter()
        .chain(all_paths(&reservation.resources).map(|isl| isl.dst_switch))
}

/// What one flow holds: the reservation its rules use, a pending one while it moves, and the
/// ones it let go of while some of their rules are still owed.
#[derive(Debug, Default)]
struct Holding {
    current: Option<Reservation>,
    pending: Option<Reservation>,
    quarantined: Vec<Reservation>,
}

impl Holding {
    fn reservations(&self) -> impl Iterator<Item = &Reservation> {
        self.current
            .iter()
            .chain(&self.pending)
            .chain(&self.quarantined)
    }

    /// The flow's share of `isl`: the largest of its reservations there (their rules carry
    /// the same traffic, through one ingress at a time).
    fn bandwidth_on(&self, isl: &Isl) -> u64 {
        self.reservations()
            .map(|r| bandwidth_on(r, isl))
            .max()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.current.is_none() && self.pending.is_none() && self.quarantined.is_empty()
    }

    /// The switches the rules of its current and pending reservations are on.
    fn switches(&self) -> BTreeSet<SwitchId> {
        self.current
            .iter()
            .chain(&self.pending)
            .flat_map(switches_of)
            .collect()
    }
}

/// The announced state of a switch or ISL, remembered so a change can retract the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Announced<T> {
    value: T,
    up: bool,
}

pub struct ResourcePool {
    network: Network,
    used_bandwidth: HashMap<Isl, u64>,
    cookies: IdPool,
    /// Per link (both directions share one pool): a flow's VLAN on an ISL only has to be
    /// unique on that ISL.
    transit_vlans: HashMap<Isl, IdPool>,
    meters: HashMap<SwitchId, IdPool>,
    /// The flows holding each endpoint: one, but for the two flows of an endpoint swap while
    /// it runs, and a quarantined reservation's.
    endpoints: HashMap<FlowEndpoint, Vec<FlowId>>,
    holdings: HashMap<FlowId, Holding>,
    /// The flows whose current or pending rules are on each switch, for its validation.
    flows_on_switch: HashMap<SwitchId, HashSet<FlowId>>,
    owed: OwedRules,
    /// Cookie ids of owed rules that no reservation holds (found on a switch, no flow's),
    /// taken from the pool until those rules are gone.
    orphan_cookies: HashSet<u64>,
    /// Ordered, so the sweep goes round them in id order without sorting.
    /// Each switch's highest port and port numbers (see `SwitchInfo`), and whether it is up.
    switches: BTreeMap<SwitchId, Announced<(u32, Vec<u32>)>>,
    isls: HashMap<Isl, Announced<LinkProps>>,
    /// What operators changed of each directed ISL: it outlives the ISL going down and up.
    link_patches: HashMap<Isl, LinkPatch>,
    groups: DiversityGroups,
    /// Group changes not yet written to the flow log: (flow, its group now).
    group_changes: Vec<(FlowId, Option<GroupId>)>,
    /// Changes not yet handed to the network view.
    changes: Vec<ViewChange>,
}

/// What a diverse path keeps away from: the other members' ISLs (both directions) and
/// switches (but the flow's own endpoints).
#[derive(Default)]
struct Avoid {
    isls: HashSet<Isl>,
    switches: HashSet<SwitchId>,
}

impl Default for ResourcePool {
    fn default() -> Self {
        ResourcePool {
            network: Network::default(),
            used_bandwidth: HashMap::new(),
            cookies: IdPool::new(1, COOKIE_ID_LIMIT - 1),
            transit_vlans: HashMap::new(),
            meters: HashMap::new(),
            endpoints: HashMap::new(),
            holdings: HashMap::new(),
            flows_on_switch: HashMap::new(),
            owed: OwedRules::default(),
            orphan_cookies: HashSet::new(),
            switches: BTreeMap::new(),
            isls: HashMap::new(),
            link_patches: HashMap::new(),
            groups: DiversityGroups::default(),
            group_changes: Vec::new(),
            changes: Vec::new(),
        }
    }
}

impl ResourcePool {
    /// A pool over an empty network: it learns the network from `sb.events`.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn handle(&mut self, request: AllocatorRequest) -> Option<AllocationResult> {
        match request {
            AllocatorRequest::Allocate { flow_id, request } => {
                let result = self.allocate(&request);
                Some(AllocationResult { flow_id, result })
            }
            AllocatorRequest::Reallocate {
                flow_id,
                request,
                kind,
            } => {
                let result = self.reallocate(&request, kind);
                Some(AllocationResult { flow_id, result })
            }
            AllocatorRequest::Reprotect { flow_id, request } => {
                let result = self.reprotect(&request);
                Some(AllocationResult { flow_id, result })
            }
            AllocatorRequest::Swap { flow_id } => {
                self.swap(&flow_id);
                None
            }
            // The operator carries out endpoint swaps: they answer two flows.
            AllocatorRequest::SwapEndpoints { .. } | AllocatorRequest::PairVote { .. } => None,
            AllocatorRequest::Commit { flow_id } => {
                self.commit(&flow_id);
                None
            }
            AllocatorRequest::Release { flow_id } => {
                self.release_pending(&flow_id);
                None
            }
            AllocatorRequest::Free { flow_id } => {
                self.free(&flow_id);
                None
            }
            AllocatorRequest::Owe { flow_id, debt } => {
                self.owe(&flow_id, debt);
                None
            }
            AllocatorRequest::Network(Json(event)) => {
                self.apply_network_event(&event);
                None
            }
        }
    }

    /// Takes back what a flow held before a restart, exactly as its record says: its
    /// resources as the current reservation, an interrupted move's as the pending one. No
    /// path is searched (the network may not be announced yet).
    pub fn restore(&mut self, record: &FlowRecord) {
        let flow_id = record.flow_id().to_string();
        let reservations = [
            record
                .resources
                .clone()
                .map(|r| (record.request.clone(), r)),
            record
                .target
                .as_deref()
                .map(|t| (t.request.clone(), t.resources.clone())),
        ];
        for (request, resources) in reservations.iter().flatten() {
            self.take_back(&flow_id, request, resources);
        }
        let [current, pending] =
            reservations.map(|r| r.map(|(request, resources)| Reservation { request, resources }));
        let path = current.as_ref().map(|c| c.resources.clone());
        self.update_holding(&flow_id, |h| {
            h.current = current;
            h.pending = pending;
        });
        if let Some(path) = path {
            self.paths_changed(&flow_id, &path, 1);
        }
    }

    /// Puts a flow back in the diversity group the flow log last gave it.
    pub fn restore_group(&mut self, flow_id: &str, group: GroupId) {
        self.set_group(flow_id, Some(group));
        self.group_changes.clear();
    }

    /// Takes a reservation's ids and endpoints back from the pools, as its record holds them.
    fn take_back(&mut self, flow_id: &str, request: &FlowRequest, resources: &Resources) {
        self.cookies.reserve(resources.cookie);
        for (isl, vlan) in path_vlans(resources) {
            self.link_vlans(isl).reserve(u64::from(*vlan));
        }
        for (switch, meter) in [
            (request.source.switch_id, resources.forward_meter),
            (request.destination.switch_id, resources.reverse_meter),
        ] {
            if let Some(meter) = meter {
                self.meters
                    .entry(switch)
                    .or_insert_with(|| IdPool::new(FIRST_FLOW_METER, LAST_METER))
                    .reserve(u64::from(meter));
            }
        }
        for endpoint in [&request.source, &request.destination] {
            self.hold_endpoint(endpoint, flow_id);
        }
    }

    fn hold_endpoint(&mut self, endpoint: &FlowEndpoint, flow_id: &str) {
        let holders = self.endpoints.entry(endpoint.clone()).or_default();
        if !holders.iter().any(|h| h == flow_id) {
            holders.push(flow_id.to_string());
        }
    }

    /// Rules of a flow whose removal was not confirmed. While the flow holds their
    /// reservation nothing changes but the debt; once it lets go of it (or if it already has:
    /// a restart), the reservation is quarantined.
    pub fn owe(&mut self, flow_id: &str, debt: RemovalDebt) {
        for rule in debt.rules {
            self.owed.add(rule, Some(flow_id.to_string()));
        }
        let cookie = debt.reservation.resources.cookie;
        let held = self
            .holdings
            .get(flow_id)
            .is_some_and(|h| h.reservations().any(|r| r.resources.cookie == cookie));
        if !held {
            let reservation = debt.reservation;
            self.take_back(flow_id, &reservation.request, &reservation.resources);
            self.update_holding(flow_id, |h| h.quarantined.push(reservation));
        }
    }

    /// A rule in hubspoke's cookie space that no flow expects, found on a switch: owed. If no
    /// reservation holds its cookie, the cookie is taken until the rule is gone, so no new
    /// flow gets it (a removal names a rule by match and cookie).
    pub fn owe_orphan(&mut self, rule: FlowSegment) -> bool {
        let cookie_id = rule.cookie_id();
        let owner = self.holdings.iter().find_map(|(flow_id, h)| {
            h.reservations()
                .any(|r| r.resources.cookie == cookie_id)
                .then(|| flow_id.clone())
        });
        if owner.is_none() && self.orphan_cookies.insert(cookie_id) {
            self.cookies.reserve(cookie_id);
        }
        self.owed.add(rule, owner)
    }

    /// An owed rule is confirmed gone. A quarantined reservation whose last owed rule it was
    /// is given back, and so is an orphan's cookie.
    pub fn paid(&mut self, rule: &FlowSegment) -> Option<owed::Owed> {
        let paid = self.owed.pay(rule)?;
        let cookie_id = rule.cookie_id();
        if self.owed.owes_cookie(cookie_id) {
            return Some(paid);
        }
        if self.orphan_cookies.remove(&cookie_id) {
            self.cookies.give_back(cookie_id);
        }
        let Some(flow_id) = paid.flow_id.clone() else {
            return Some(paid);
        };
        let mut released = None;
        self.update_holding(&flow_id, |h| {
            if let Some(at) = h
                .quarantined
                .iter()
                .position(|r| r.resources.cookie == cookie_id)
            {
                released = Some(h.quarantined.remove(at));
            }
        });
        if let Some(reservation) = released {
            self.drop_reservation(&flow_id, &reservation);
        }
        Some(paid)
    }

    /// The removal debt, by switch.
    pub fn owed(&self) -> &OwedRules {
        &self.owed
    }

    /// What hubspoke expects on a switch: the rules of the current reservations that use it
    /// (required), of the pending ones (allowed), and the debt there.
    pub fn expectation(&self, switch_id: SwitchId) -> Expectation {
        let mut expectation = Expectation::default();
        for flow_id in self.flows_on_switch.get(&switch_id).into_iter().flatten() {
            let Some(holding) = self.holdings.get(flow_id) else {
                continue;
            };
            let on_switch = |r: &Reservation| {
                flow_segments(&r.request, &r.resources)
                    .into_iter()
                    .filter(|rule| rule.switch_id == switch_id)
                    .map(|rule| (rule, flow_id.clone()))
                    .collect::<Vec<_>>()
            };
            expectation
                .required
                .extend(holding.current.iter().flat_map(on_switch));
            expectation
                .allowed
                .extend(holding.pending.iter().flat_map(on_switch));
        }
        expectation.owed = self
            .owed
            .on(switch_id)
            .map(|owed| (owed.rule.clone(), owed.flow_id.clone()))
            .collect();
        expectation
    }

    /// A flow's current and pending reservations.
    pub fn reservations_of(&self, flow_id: &str) -> (Option<&Reservation>, Option<&Reservation>) {
        self.holdings
            .get(flow_id)
            .map_or((None, None), |h| (h.current.as_ref(), h.pending.as_ref()))
    }

    /// How many switches were ever announced.
    /// The switches up now that hold rules of flows, in id order.
    pub fn switches_holding_flows(&self) -> Vec<SwitchId> {
        let mut switches: Vec<SwitchId> = self
            .flows_on_switch
            .iter()
            .filter(|(switch_id, flows)| !flows.is_empty() && self.switch_up(switch_id))
            .map(|(switch_id, _)| *switch_id)
            .collect();
        switches.sort_unstable();
        switches
    }

    pub fn switch_count(&self) -> usize {
        self.switches.len()
    }

    pub fn knows_switch(&self, switch_id: SwitchId) -> bool {
        self.switches.contains_key(&switch_id)
    }

    /// The `n`th switch ever announced, in id order (wrapping around), for the sweep's round.
    pub fn nth_switch(&self, n: usize) -> Option<SwitchId> {
        let count = self.switches.len();
        (count > 0).then(|| self.switches.keys().nth(n % count).copied())?
    }

    /// Where a port leads, if it is an inter-switch link: for tracing packets.
    pub fn link_end(&self, switch_id: SwitchId, port: u32) -> Option<LinkEnd> {
        let (isl, announced) = self
            .isls
            .iter()
            .find(|(isl, _)| isl.src_switch == switch_id && isl.src_port == port)?;
        Some(LinkEnd {
            switch_id: isl.dst_switch,
            port: isl.dst_port,
            up: announced.up,
        })
    }

    /// The changes made since the last call, for the network view.
    pub fn take_view_changes(&mut self) -> Vec<ViewChange> {
        std::mem::take(&mut self.changes)
    }

    /// Records what the switches report. Flows already on a link that went down keep their
    /// reservation until they are moved off it. Returns a switch that connected again, or
    /// connected holding (or owing) rules of flows: whatever happened to its tables while
    /// nobody watched (a power cycle, a restarted speaker or topology, a hand at its console)
    /// is for the keeper to find and repair. A switch new to an empty topology has nothing
    /// to repair.
    pub fn apply_network_event(&mut self, event: &SbEvent) -> Option<SwitchId> {
        match *event {
            SbEvent::SwitchAdded {
                switch_id,
                ports,
                ref port_numbers,
            } => {
                let seen_before = self.switches.contains_key(&switch_id)
                    || self
                        .flows_on_switch
                        .get(&switch_id)
                        .is_some_and(|f| !f.is_empty())
                    || self.owed.on(switch_id).next().is_some();
                self.network.add_switch(switch_id, ports, port_numbers);
                self.announce_switch(switch_id, (ports, port_numbers.clone()), true);
                return seen_before.then_some(switch_id);
            }
            SbEvent::SwitchRemoved { switch_id } => {
                let ports = self
                    .switches
                    .get(&switch_id)
                    .map_or_else(Default::default, |s| s.value.clone());
                self.announce_switch(switch_id, ports, false);
            }
            SbEvent::IslUp {
                isl,
                capacity,
                latency_ns,
                cost,
            } => {
                let announced = LinkProps {
                    capacity,
                    max_bandwidth: capacity,
                    latency_ns,
                    cost,
                };
                self.link_up(isl, announced);
            }
            SbEvent::IslDown { isl } => {
                if let Some(known) = self.isls.get(&isl).copied() {
                    self.announce_isl(isl, known.value, false);
                }
            }
        }
        None
    }

    fn announce_switch(&mut self, switch_id: SwitchId, ports: (u32, Vec<u32>), up: bool) {
        let new = Announced {
            value: ports.clone(),
            up,
        };
        if let Some(old) = self.switches.insert(switch_id, new.clone()) {
            if old == new {
                return;
            }
            let (highest, numbers) = old.value;
            self.changes.push(ViewChange::Switch {
                switch_id,
                ports: highest,
                port_numbers: numbers,
                up: old.up,
                diff: -1,
            });
        }
        let (highest, numbers) = ports;
        self.changes.push(ViewChange::Switch {
            switch_id,
            ports: highest,
            port_numbers: numbers,
            up,
            diff: 1,
        });
    }

    fn announce_isl(&mut self, isl: Isl, props: LinkProps, up: bool) {
        let new = Announced { value: props, up };
        if let Some(old) = self.isls.insert(isl, new) {
            if old == new {
                return;
            }
            self.changes.push(ViewChange::Link {
                isl,
                props: old.value,
                up: old.up,
                diff: -1,
            });
        }
        self.changes.push(ViewChange::Link {
            isl,
            props,
            up,
            diff: 1,
        });
    }

    fn switch_up(&self, switch_id: &SwitchId) -> bool {
        self.switches.get(switch_id).is_some_and(|s| s.up)
    }

    /// Bandwidth a new path may take on `isl`; `None` if it or one of its switches is down.
    pub fn usable(&self, isl: &Isl) -> Option<u64> {
        let up = self.isls.get(isl).is_some_and(|i| i.up)
            && self.switch_up(&isl.src_switch)
            && self.switch_up(&isl.dst_switch);
        up.then(|| self.available(isl))
    }

    /// Bandwidth flows may still reserve on `isl`: its max bandwidth less what is reserved.
    pub fn available(&self, isl: &Isl) -> u64 {
        let max_bandwidth = self.isls.get(isl).map_or(0, |i| i.value.max_bandwidth);
        max_bandwidth.saturating_sub(self.used_bandwidth.get(isl).copied().unwrap_or(0))
    }

    /// Reserves a new flow's path and resources.
    pub fn allocate(&mut self, request: &FlowRequest) -> Result<Resources, ErrorBody> {
        // A quarantined reservation of a deleted flow does not keep its id from a new one.
        if self
            .holdings
            .get(&request.flow_id)
            .is_some_and(|h| h.current.is_some() || h.pending.is_some())
        {
            return Err(ErrorBody::new(
                409,
                "already-exists",
                "Flow already exists",
                format!("flow {} already holds resources", request.flow_id),
            ));
        }
        self.reserve(request, None, PrimaryPath::Search, None)
    }

    /// Reserves a path and resources for `request` next to what the flow holds now; its own
    /// bandwidth and endpoints count as free for it.
    pub fn reallocate(
        &mut self,
        request: &FlowRequest,
        kind: Reallocation,
    ) -> Result<Resources, ErrorBody> {
        self.reserve_pending(request, kind, PrimaryPath::Search, None)
    }

    /// [`reallocate`](Self::reallocate) for a new protected path: the primary path stays
    /// while it can carry the flow. The network asked for it: a repair.
    pub fn reprotect(&mut self, request: &FlowRequest) -> Result<Resources, ErrorBody> {
        self.reserve_pending(
            request,
            Reallocation::Repair,
            PrimaryPath::KeepIfUsable,
            None,
        )
    }

    /// An endpoint swap's reservations, pending next to what each flow holds: `first` (the
    /// first flow with its new endpoints), and the second flow's current request at
    /// `second`'s endpoints. Each may take endpoints the other holds. Both are made, or
    /// neither. Returns the first's and the second's.
    pub fn reserve_endpoint_swap(
        &mut self,
        first: &FlowRequest,
        second: &FlowEndpoints,
    ) -> Result<(Resources, Resources), ErrorBody> {
        let second_request = self
            .current_request(&second.flow_id)
            .map(|request| second.applied_to(request));
        let (Some(second_request), true) = (
            second_request,
            self.current_request(&first.flow_id).is_some(),
        ) else {
            return Err(ErrorBody::new(
                409,
                "no-path",
                "Flow has no path",
                format!(
                    "flows {} and {} must both hold a path to swap endpoints",
                    first.flow_id, second.flow_id
                ),
            ));
        };
        let requested = Reallocation::Requested;
        let search = PrimaryPath::Search;
        let first_resources = self
            .reserve_pending(first, requested, search, Some(&second.flow_id))
            .map_err(|error| about_flow(&first.flow_id, error))?;
        match self.reserve_pending(&second_request, requested, search, Some(&first.flow_id)) {
            Ok(second_resources) => Ok((first_resources, second_resources)),
            Err(error) => {
                self.release_pending(&first.flow_id);
                Err(about_flow(&second.flow_id, error))
            }
        }
    }

    /// `partner`: a flow whose endpoints the request may take (an endpoint swap's other flow).
    fn reserve_pending(
        &mut self,
        request: &FlowRequest,
        kind: Reallocation,
        primary: PrimaryPath,
        partner: Option<&FlowId>,
    ) -> Result<Resources, ErrorBody> {
        if self
            .holdings
            .get(&request.flow_id)
            .is_some_and(|h| h.pending.is_some())
        {
            return Err(ErrorBody::new(
                409,
                "operation-in-progress",
                "Flow is busy",
                format!("flow {} is already moving", request.flow_id),
            ));
        }
        self.reserve(request, Some(kind), primary, partner)
    }

    /// Reserves for `request` as the flow's current reservation (`reallocation` none), or as
    /// its pending one.
    fn reserve(
        &mut self,
        request: &FlowRequest,
        reallocation: Option<Reallocation>,
        primary: PrimaryPath,
        partner: Option<&FlowId>,
    ) -> Result<Resources, ErrorBody> {
        let pending = reallocation.is_some();
        request.validate().map_err(|reason| {
            ErrorBody::new(400, "data-invalid", "Invalid flow request", reason)
        })?;
        for endpoint in [&request.source, &request.destination] {
            self.check_endpoint(endpoint, &request.flow_id, partner)?;
        }
        let avoid = self.avoid_for(request)?;
        let holding = self.holdings.get(&request.flow_id);
        let usable = |isl: &Isl| {
            let own = holding.map_or(0, |h| h.bandwidth_on(isl));
            self.usable(isl).map(|free| free + own)
        };
        // A pinned flow that holds a path keeps it, or has none; a flow re-protected keeps its
        // primary while it can carry the flow.
        let current = holding.and_then(|h| h.current.as_ref());
        let carries =
            |path: &[Isl]| pinned_path(request, path, request.maximum_bandwidth, usable).is_ok();
        let kept = current
            .map(|current| current.resources.forward_path.as_slice())
            .filter(|path| {
                request.pinned || (primary == PrimaryPath::KeepIfUsable && carries(path))
            });
        let search = |bandwidth: u64| match kept {
            Some(path) => pinned_path(request, path, bandwidth, usable).map(|isls| Chosen {
                isls,
                degraded: None,
            }),
            None => self.diverse_path(request, &avoid, bandwidth, usable),
        };
        let chosen = choose_path(request, reallocation, search)?;
        let protected = request
            .allocate_protected_path
            .then(|| protected::protected_path(&self.network, request, &chosen.path, usable))
            .flatten();
        let resources = self.take_ids(request, chosen, protected)?;
        let reservation = Reservation {
            request: request.clone(),
            resources: resources.clone(),
        };
        let flow_id = request.flow_id.clone();
        self.update_holding(&flow_id, |h| {
            if pending {
                h.pending = Some(reservation);
            } else {
                h.current = Some(reservation);
            }
        });
        if !pending {
            self.paths_changed(&flow_id, &resources, 1);
            self.join_group(request, None);
        }
        for endpoint in [&request.source, &request.destination] {
            self.hold_endpoint(endpoint, &flow_id);
        }
        Ok(resources)
    }

    /// The path for `request` by its strategy, with `bandwidth`, that keeps away from the
    /// other members' switches and ISLs, else from their ISLs, else the best path there is.
    fn diverse_path(
        &self,
        request: &FlowRequest,
        avoid: &Avoid,
        bandwidth: u64,
        usable: impl Fn(&Isl) -> Option<u64>,
    ) -> Result<Chosen, ErrorBody> {
        let search = |isls: bool, switches: bool| {
            paths::path_for(&self.network, request, bandwidth, |isl| {
                let avoided = (isls && avoid.isls.contains(isl))
                    || (switches
                        && (avoid.switches.contains(&isl.src_switch)
                            || avoid.switches.contains(&isl.dst_switch)));
                if avoided {
                    None
                } else {
                    usable(isl)
                }
            })
        };
        // The diverse tiers first, when there is a group to keep away from; the last tier's
        // error (no path at all) is the one to give.
        let diverse = (!avoid.isls.is_empty())
            .then(|| search(true, true).or_else(|_| search(true, false)).ok())
            .flatten();
        let chosen = match diverse {
            Some(chosen) => chosen,
            None => search(false, false)?,
        };
        if chosen.isls.iter().any(|isl| avoid.isls.contains(isl)) {
            tracing::info!(
                flow_id = %request.flow_id,
                "no diverse path: the flow shares ISLs with its diversity group"
            );
        }
        Ok(chosen)
    }

    /// What the request's flow keeps away from: the paths (current and pending) of the
    /// other members of the group the request puts it in.
    fn avoid_for(&self, request: &FlowRequest) -> Result<Avoid, ErrorBody> {
        let mut others: BTreeSet<&FlowId> = BTreeSet::new();
        match membership(request, self.current_request(&request.flow_id)) {
            Membership::Join(partner) => {
                self.check_partner(request, partner)?;
                others.insert(partner);
                others.extend(self.groups.members(&self.groups.group_for(partner)));
            }
            Membership::Stay => {
                if let Some(group) = self.groups.group_of(&request.flow_id) {
                    others.extend(self.groups.members(group));
                }
            }
            Membership::Leave => {}
        }
        let mut avoid = Avoid::default();
        let reservations = others
            .into_iter()
            .filter(|other| **other != request.flow_id)
            .filter_map(|other| self.holdings.get(other))
            .flat_map(|h| h.current.iter().chain(&h.pending));
        for reservation in reservations {
            avoid.isls.extend(reserved_isls(&reservation.resources));
            avoid.switches.extend(switches_of(reservation));
        }
        for endpoint in [&request.source, &request.destination] {
            avoid.switches.remove(&endpoint.switch_id);
        }
        Ok(avoid)
    }

    /// The flow a request names as its diversity partner must exist, and neither may be a
    /// one-switch flow (it has no ISL to keep apart), as in OpenKilda.
    fn check_partner(&self, request: &FlowRequest, partner: &str) -> Result<(), ErrorBody> {
        let Some(partner_request) = self.current_request(partner) else {
            return Err(ErrorBody::new(
                404,
                "not-found",
                "Flow not found",
                format!("diverse_flow_id {partner} names no flow"),
            ));
        };
        let one_switch = [request, partner_request]
            .into_iter()
            .find(|r| r.source.switch_id == r.destination.switch_id);
        if let Some(one_switch) = one_switch {
            return Err(ErrorBody::new(
                400,
                "data-invalid",
                "Invalid flow request",
                format!(
                    "flow {} is a one-switch flow: it cannot be in a diversity group",
                    one_switch.flow_id
                ),
            ));
        }
        Ok(())
    }

    fn current_request(&self, flow_id: &str) -> Option<&FlowRequest> {
        self.holdings
            .get(flow_id)
            .and_then(|h| h.current.as_ref())
            .map(|c| &c.request)
    }

    /// The flow's reservation for `request` took effect (`previous`: the request it
    /// replaces): it joins or leaves a group as the request says. A partner deleted meanwhile
    /// leaves it in none.
    fn join_group(&mut self, request: &FlowRequest, previous: Option<&FlowRequest>) {
        match membership(request, previous) {
            Membership::Join(partner) if self.current_request(partner).is_some() => {
                let group = self.groups.group_for(partner);
                self.set_group(partner, Some(group.clone()));
                self.set_group(&request.flow_id, Some(group));
            }
            Membership::Join(_) | Membership::Leave => self.set_group(&request.flow_id, None),
            Membership::Stay => {}
        }
    }

    fn set_group(&mut self, flow_id: &str, group: Option<GroupId>) {
        let changes = self.groups.set(flow_id, group.clone());
        if changes.is_empty() {
            return;
        }
        for change in changes {
            self.changes.push(ViewChange::GroupMember {
                group: change.group,
                flow_id: change.flow_id,
                diff: if change.joined { 1 } else { -1 },
            });
        }
        self.group_changes.push((flow_id.to_string(), group));
    }

    /// The group changes made since the last call, for the flow log.
    pub fn take_group_changes(&mut self) -> Vec<(FlowId, Option<GroupId>)> {
        std::mem::take(&mut self.group_changes)
    }

    /// The diversity group the flow is in.
    pub fn group_of(&self, flow_id: &str) -> Option<&GroupId> {
        self.groups.group_of(flow_id)
    }

    fn take_ids(
        &mut self,
        request: &FlowRequest,
        chosen: ChosenPath,
        protected_path: Option<Vec<Isl>>,
    ) -> Result<Resources, ErrorBody> {
        let ChosenPath {
            path,
            without_bandwidth,
            degraded,
        } = chosen;
        let exhausted = |what: &str| {
            ErrorBody::new(
                503,
                "resources-exhausted",
                "No resources left",
                format!("no free {what}"),
            )
        };
        let no_vlan = |isl: Isl| {
            exhausted(&format!(
                "transit VLAN on the link {}-{}",
                isl.src_switch, isl.dst_switch
            ))
        };
        let cookie = self.cookies.take().ok_or_else(|| exhausted("cookie"))?;
        let transit_vlans = self.take_vlans(&path).map_err(|isl| {
            self.cookies.give_back(cookie);
            no_vlan(isl)
        })?;
        // No VLAN for the protected path leaves the flow unprotected, like no path for it.
        let protected = protected_path.and_then(|forward_path| {
            let transit_vlans = self.take_vlans(&forward_path).ok()?;
            Some(Box::new(ProtectedPath {
                forward_path,
                transit_vlans,
            }))
        });
        let metered = request.maximum_bandwidth > 0;
        let forward_meter = metered
            .then(|| self.take_meter(request.source.switch_id))
            .flatten();
        let reverse_meter = metered
            .then(|| self.take_meter(request.destination.switch_id))
            .flatten();
        let resources = Resources {
            cookie,
            transit_vlans,
            forward_meter: forward_meter.map(|m| m as u32),
            reverse_meter: reverse_meter.map(|m| m as u32),
            forward_path: path,
            without_bandwidth,
            degraded,
            protected,
        };
        if metered && (forward_meter.is_none() || reverse_meter.is_none()) {
            self.give_back_ids(request, &resources);
            return Err(exhausted("meter"));
        }
        Ok(resources)
    }

    /// One transit VLAN per ISL of `path`, or the ISL that has none left (then none is taken).
    fn take_vlans(&mut self, path: &[Isl]) -> Result<Vec<u16>, Isl> {
        let mut vlans = Vec::with_capacity(path.len());
        for isl in path {
            let Some(vlan) = self.link_vlans(isl).take() else {
                self.give_back_vlans(path, &vlans);
                return Err(*isl);
            };
            vlans.push(u16::try_from(vlan).unwrap_or(MAX_VLAN));
        }
        Ok(vlans)
    }

    /// Changes what a flow holds, keeping `used_bandwidth` and the view's reservations in
    /// step with its share of every ISL either reservation touches.
    fn update_holding(&mut self, flow_id: &str, change: impl FnOnce(&mut Holding)) {
        let holding = self.holdings.entry(flow_id.to_string()).or_default();
        let touched: BTreeSet<Isl> = holding
            .reservations()
            .flat_map(|r| reserved_isls(&r.resources))
            .collect();
        let before: Vec<(Isl, u64)> = touched
            .iter()
            .map(|isl| (*isl, holding.bandwidth_on(isl)))
            .collect();
        let switches_before = holding.switches();
        change(holding);
        let mut after: HashMap<Isl, u64> = holding
            .reservations()
            .flat_map(|r| reserved_isls(&r.resources))
            .map(|isl| (isl, holding.bandwidth_on(&isl)))
            .collect();
        let switches_after = holding.switches();
        if holding.is_empty() {
            self.holdings.remove(flow_id);
        }
        for gone in switches_before.difference(&switches_after) {
            if let Some(flows) = self.flows_on_switch.get_mut(gone) {
                flows.remove(flow_id);
            }
        }
        for new in switches_after.difference(&switches_before) {
            self.flows_on_switch
                .entry(*new)
                .or_default()
                .insert(flow_id.to_string());
        }
        for (isl, old) in before {
            let new = after.remove(&isl).unwrap_or(0);
            self.account(flow_id, isl, old, new);
        }
        for (isl, new) in after {
            self.account(flow_id, isl, 0, new);
        }
    }

    fn account(&mut self, flow_id: &str, isl: Isl, old: u64, new: u64) {
        if old == new {
            return;
        }
        let used = self.used_bandwidth.entry(isl).or_insert(0);
        *used = used.saturating_sub(old) + new;
        for (bandwidth, diff) in [(old, -1), (new, 1)] {
            if bandwidth > 0 {
                self.changes.push(ViewChange::Reservation {
                    isl,
                    flow_id: flow_id.to_string(),
                    bandwidth,
                    diff,
                });
            }
        }
    }

    /// The paths the flow's rules use appear (`diff` 1) or go (-1).
    fn paths_changed(&mut self, flow_id: &str, resources: &Resources, diff: isize) {
        let protected = resources.protected.iter().map(|p| (&p.forward_path, true));
        for (path, protected) in [(&resources.forward_path, false)]
            .into_iter()
            .chain(protected)
        {
            for isl in path.iter().flat_map(|isl| [*isl, isl.reversed()]) {
                self.changes.push(ViewChange::Path {
                    isl,
                    flow_id: flow_id.to_string(),
                    protected,
                    diff,
                });
            }
        }
    }

    /// The flow's traffic moved onto its protected path: its current reservation's paths
    /// exchange. The ISLs, ids and bandwidth it holds stay the same.
    pub fn swap(&mut self, flow_id: &str) {
        let Some(current) = self
            .holdings
            .get_mut(flow_id)
            .and_then(|h| h.current.as_mut())
        else {
            return;
        };
        let Some(swapped) = current.resources.swapped() else {
            return;
        };
        let before = std::mem::replace(&mut current.resources, swapped.clone());
        self.paths_changed(flow_id, &before, -1);
        self.paths_changed(flow_id, &swapped, 1);
    }

    /// The pending reservation becomes the flow's current one.
    pub fn commit(&mut self, flow_id: &str) {
        let Some(holding) = self.holdings.get(flow_id) else {
            return;
        };
        if holding.pending.is_none() {
            return;
        }
        let mut old = None;
        let mut new = None;
        self.update_holding(flow_id, |h| {
            old = h.current.take();
            h.current = h.pending.take();
            new = h.current.clone();
        });
        let previous = old.as_ref().map(|o| o.request.clone());
        if let Some(old) = old {
            self.paths_changed(flow_id, &old.resources, -1);
            self.let_go(flow_id, old);
        }
        if let Some(new) = new {
            self.paths_changed(flow_id, &new.resources, 1);
            self.join_group(&new.request, previous.as_ref());
        }
    }

    /// The pending reservation goes back; the current one stays.
    pub fn release_pending(&mut self, flow_id: &str) {
        let mut pending = None;
        if !self.holdings.contains_key(flow_id) {
            return;
        }
        self.update_holding(flow_id, |h| pending = h.pending.take());
        if let Some(pending) = pending {
            self.let_go(flow_id, pending);
        }
    }

    /// Releases everything the flow holds; freeing a flow twice is harmless.
    pub fn free(&mut self, flow_id: &str) {
        let (mut current, mut pending) = (None, None);
        if !self.holdings.contains_key(flow_id) {
            return;
        }
        self.update_holding(flow_id, |h| {
            current = h.current.take();
            pending = h.pending.take();
        });
        if let Some(current) = current {
            self.paths_changed(flow_id, &current.resources, -1);
            self.let_go(flow_id, current);
        }
        if let Some(pending) = pending {
            self.let_go(flow_id, pending);
        }
        self.set_group(flow_id, None);
    }

    /// A reservation the flow no longer uses goes back, unless some of its rules are owed:
    /// then it is quarantined until they are gone.
    fn let_go(&mut self, flow_id: &str, reservation: Reservation) {
        if self.owed.owes_cookie(reservation.resources.cookie) {
            self.update_holding(flow_id, |h| h.quarantined.push(reservation));
        } else {
            self.drop_reservation(flow_id, &reservation);
        }
    }

    /// Gives back a reservation's ids, and its endpoints unless the flow still holds them.
    fn drop_reservation(&mut self, flow_id: &str, reservation: &Reservation) {
        self.give_back_ids(&reservation.request, &reservation.resources);
        let kept = self.holdings.get(flow_id);
        for endpoint in [
            &reservation.request.source,
            &reservation.request.destination,
        ] {
            let still_held =
                kept.is_some_and(|h| h.reservations().any(|r| holds_endpoint(r, endpoint)));
            if still_held {
                continue;
            }
            if let Some(holders) = self.endpoints.get_mut(endpoint) {
                holders.retain(|h| h != flow_id);
                if holders.is_empty() {
                    self.endpoints.remove(endpoint);
                }
            }
        }
    }

    fn give_back_ids(&mut self, request: &FlowRequest, resources: &Resources) {
        self.cookies.give_back(resources.cookie);
        for (isl, vlan) in path_vlans(resources) {
            self.link_vlans(isl).give_back(u64::from(*vlan));
        }
        for (switch, meter) in [
            (request.source.switch_id, resources.forward_meter),
            (request.destination.switch_id, resources.reverse_meter),
        ] {
            if let (Some(meter), Some(pool)) = (meter, self.meters.get_mut(&switch)) {
                pool.give_back(u64::from(meter));
            }
        }
    }

    fn give_back_vlans(&mut self, path: &[Isl], vlans: &[u16]) {
        for (isl, vlan) in path.iter().zip(vlans) {
            self.link_vlans(isl).give_back(u64::from(*vlan));
        }
    }

    /// The VLAN pool of the link `isl` runs over, whichever way.
    fn link_vlans(&mut self, isl: &Isl) -> &mut IdPool {
        self.transit_vlans
            .entry((*isl).min(isl.reversed()))
            .or_insert_with(|| IdPool::new(FIRST_TRANSIT_VLAN, u64::from(MAX_VLAN)))
    }

    fn take_meter(&mut self, switch: SwitchId) -> Option<u64> {
        self.meters
            .entry(switch)
            .or_insert_with(|| IdPool::new(FIRST_FLOW_METER, LAST_METER))
            .take()
    }

    fn check_endpoint(
        &self,
        endpoint: &FlowEndpoint,
        flow_id: &str,
        partner: Option<&FlowId>,
    ) -> Result<(), ErrorBody> {
        let switch = self.network.switch(endpoint.switch_id).ok_or_else(|| {
            ErrorBody::new(
                404,
                "not-found",
                "Switch not found",
                format!("switch {} is not in the network", endpoint.switch_id),
            )
        })?;
        if !self.switch_up(&endpoint.switch_id) {
            return Err(ErrorBody::new(
                503,
                "switch-unavailable",
                "Switch is not available",
                format!("switch {} does not answer", endpoint.switch_id),
            ));
        }
        let bad_port =
            |reason: String| ErrorBody::new(400, "data-invalid", "Invalid endpoint", reason);
        if !switch.has_port(endpoint.port_number) {
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
        let other = self.endpoints.get(endpoint).and_then(|holders| {
            holders
                .iter()
                .find(|h| *h != flow_id && Some(*h) != partner)
        });
        match other {
            Some(owner) => Err(ErrorBody::new(
                409,
                "endpoint-conflict",
                "Endpoint already in use",
                format!(
                    "port {} vlan {} of switch {} is used by flow {owner}",
                    endpoint.port_number, endpoint.vlan_id, endpoint.switch_id
                ),
            )),
            None => Ok(()),
        }
    }
}

/// `error`, saying which flow it is about.
fn about_flow(flow_id: &str, mut error: ErrorBody) -> ErrorBody {
    error.error_description = format!("flow {flow_id}: {}", error.error_description);
    error
}

/// What a request does to its flow's diversity group.
enum Membership<'a> {
    /// It names a partner the request it replaces did not: it joins the partner's group.
    Join(&'a FlowId),
    /// It names the partner it named (a reroute keeps its group even if the partner is gone
    /// since), or none as before (a flow others joined stays in their group).
    Stay,
    /// It names no partner any more.
    Leave,
}

fn membership<'a>(request: &'a FlowRequest, previous: Option<&FlowRequest>) -> Membership<'a> {
    let named_before = previous.and_then(|p| p.diverse_flow_id.as_ref());
    match &request.diverse_flow_id {
        Some(partner) if named_before != Some(partner) => Membership::Join(partner),
        None if named_before.is_some() => Membership::Leave,
        _ => Membership::Stay,
    }
}

/// Where a reservation's primary path comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrimaryPath {
    /// The best path the network has now.
    Search,
    /// The flow's current primary, while it can still carry the flow (a re-protection).
    KeepIfUsable,
}

/// The forward ISLs of a reservation's primary and protected paths.
fn all_paths(resources: &Resources) -> impl Iterator<Item = &Isl> {
    let protected = resources.protected.iter().flat_map(|p| &p.forward_path);
    resources.forward_path.iter().chain(protected)
}

/// Each ISL of a reservation's paths with the transit VLAN it holds there.
fn path_vlans(resources: &Resources) -> impl Iterator<Item = (&Isl, &u16)> {
    let protected = resources
        .protected
        .iter()
        .flat_map(|p| p.forward_path.iter().zip(&p.transit_vlans));
    resources
        .forward_path
        .iter()
        .zip(&resources.transit_vlans)
        .chain(protected)
}

/// A flow reserves its bandwidth on every ISL of its paths (the protected one too: it must
/// carry the flow the moment it is swapped to) in both directions.
fn reserved_isls(resources: &Resources) -> impl Iterator<Item = Isl> + '_ {
    all_paths(resources).flat_map(|isl| [*isl, isl.reversed()])
}

/// A path, and how it falls short of the request.
struct ChosenPath {
    path: Vec<Isl>,
    without_bandwidth: bool,
    degraded: Option<String>,
}

/// The path for `request` from `search` (a path with at least that much bandwidth): one with
/// the flow's bandwidth if there is one. Otherwise one without it, reserving nothing, for an
/// `ignore_bandwidth` flow (UP) and for a repair the network asked for (DEGRADED, unless the
/// flow is `strict_bandwidth`). An upgrade settles for nothing short.
fn choose_path(
    request: &FlowRequest,
    reallocation: Option<Reallocation>,
    search: impl Fn(u64) -> Result<Chosen, ErrorBody>,
) -> Result<ChosenPath, ErrorBody> {
    let upgrade = reallocation == Some(Reallocation::Upgrade);
    let short = match search(request.maximum_bandwidth) {
        Ok(Chosen {
            degraded: Some(reason),
            ..
        }) if upgrade => {
            return Err(ErrorBody::new(
                503,
                "no-better-path",
                "No better path",
                format!("the flow stays DEGRADED: {reason}"),
            ))
        }
        Ok(Chosen { isls, degraded }) => {
            return Ok(ChosenPath {
                path: isls,
                without_bandwidth: false,
                degraded,
            })
        }
        Err(short) => short,
    };
    let repair = reallocation == Some(Reallocation::Repair) && !request.strict_bandwidth;
    if request.maximum_bandwidth == 0 || !(request.ignore_bandwidth || repair) {
        return Err(short);
    }
    let Chosen { isls, degraded } = search(0)?;
    let short_of_bandwidth = (!request.ignore_bandwidth).then(|| {
        format!(
            "no path has {} kbps available: on a path without the bandwidth until one frees up",
            request.maximum_bandwidth
        )
    });
    let degraded = match (short_of_bandwidth, degraded) {
        (Some(bandwidth), Some(latency)) => Some(format!("{bandwidth}; {latency}")),
        (bandwidth, latency) => bandwidth.or(latency),
    };
    Ok(ChosenPath {
        path: isls,
        without_bandwidth: true,
        degraded,
    })
}

/// The path a pinned flow holds, if it still joins the request's switches and every ISL of it
/// can carry `bandwidth` both ways (`usable`: what each ISL has free for the flow).
fn pinned_path(
    request: &FlowRequest,
    path: &[Isl],
    bandwidth: u64,
    usable: impl Fn(&Isl) -> Option<u64>,
) -> Result<Vec<Isl>, ErrorBody> {
    let (src, dst) = (request.source.switch_id, request.destination.switch_id);
    let joins = match (path.first(), path.last()) {
        (Some(first), Some(last)) => first.src_switch == src && last.dst_switch == dst,
        _ => src == dst,
    };
    if !joins {
        return Err(ErrorBody::new(
            400,
            "flow-pinned",
            "Flow is pinned",
            format!(
                "flow {} is pinned to its path, which does not join {src} and {dst}: unpin it to move its endpoints to other switches",
                request.flow_id
            ),
        ));
    }
    let carries = |isl: &Isl| usable(isl).is_some_and(|kbps| kbps >= bandwidth);
    match path.iter().find(|isl| !carries(isl) || !carries(&isl.reversed())) {
        Some(isl) => Err(ErrorBody::new(
            503,
            "pinned-path-unavailable",
            "The pinned path is unavailable",
            format!(
                "flow {} is pinned to its path, and its ISL {}:{} -> {}:{} is down or lacks {} kbps",
                request.flow_id, isl.src_switch, isl.src_port, isl.dst_switch, isl.dst_port,
                bandwidth
            ),
        )),
        None => Ok(path.to_vec()),
    }
}
#[cfg(test)]
mod tests;
