//! The links as the allocator knows them: what the switches announce, what operators patch
//! (`PATCH /v2/links/...`), and the questions about the network it answers
//! (`GET /v2/network/paths`).

use hubspoke_fsm::network::{FoundPath, Link};
use hubspoke_fsm::{ErrorBody, Isl, LinkPatch, LinkState, NbRequest, NbResponse, PathsQuery};

use super::{paths, ResourcePool};
use crate::view::{link_state, LinkProps};

impl LinkProps {
    /// What an operator's patch makes of the announced properties. A max bandwidth above
    /// the capacity (the link came back slower) is the capacity.
    fn patched(self, patch: Option<&LinkPatch>) -> LinkProps {
        let Some(patch) = patch else {
            return self;
        };
        LinkProps {
            cost: patch.cost.unwrap_or(self.cost),
            max_bandwidth: patch
                .max_bandwidth
                .map_or(self.max_bandwidth, |kbps| kbps.min(self.capacity)),
            ..self
        }
    }
}

impl ResourcePool {
    /// A directed ISL announced up, with what operators changed of it.
    pub(super) fn link_up(&mut self, isl: Isl, announced: LinkProps) {
        let props = announced.patched(self.link_patches.get(&isl));
        self.set_link(isl, props, true);
    }

    /// The network's search and the view learn the link's properties.
    fn set_link(&mut self, isl: Isl, props: LinkProps, up: bool) {
        self.network.add_isl(Link {
            isl,
            capacity: props.capacity,
            latency_ns: props.latency_ns,
            cost: props.cost,
        });
        self.announce_isl(isl, props, up);
    }

    /// The questions about links and paths it answers; `None` for any other request.
    pub fn answer(&mut self, request: &NbRequest) -> Option<NbResponse> {
        let answer = match request {
            NbRequest::PatchLink { isl, patch } => self
                .patch_link(*isl, patch)
                .map(|links| NbResponse::Links { links }),
            NbRequest::FindPaths { query } => self
                .find_paths(query)
                .map(|paths| NbResponse::Paths { paths }),
            _ => return None,
        };
        Some(answer.unwrap_or_else(|error| NbResponse::Error { error }))
    }

    /// Changes a link's cost and what flows may reserve on it, both directions, as OpenKilda
    /// does; it stays so when the link goes down and comes back. Flows keep what they
    /// reserved: a max bandwidth below it only stops new reservations there.
    pub fn patch_link(&mut self, isl: Isl, patch: &LinkPatch) -> Result<Vec<LinkState>, ErrorBody> {
        let bad = |why: String| ErrorBody::new(400, "data-invalid", "Invalid link patch", why);
        patch.validate().map_err(bad)?;
        let directions = [isl, isl.reversed()];
        let mut known = Vec::new();
        for direction in directions {
            let Some(announced) = self.isls.get(&direction) else {
                return Err(ErrorBody::new(
                    404,
                    "not-found",
                    "Link not found",
                    format!(
                        "no link {}:{} -> {}:{}",
                        direction.src_switch,
                        direction.src_port,
                        direction.dst_switch,
                        direction.dst_port
                    ),
                ));
            };
            known.push((direction, *announced));
        }
        if let Some(kbps) = patch.max_bandwidth {
            if let Some(capacity) = known
                .iter()
                .map(|(_, a)| a.value.capacity)
                .find(|&capacity| kbps > capacity)
            {
                return Err(bad(format!(
                    "max_bandwidth {kbps} kbps is above the link's capacity of {capacity} kbps"
                )));
            }
        }
        let mut states = Vec::new();
        for (direction, announced) in known {
            let stored = self.link_patches.entry(direction).or_default();
            stored.cost = patch.cost.or(stored.cost);
            stored.max_bandwidth = patch.max_bandwidth.or(stored.max_bandwidth);
            let props = announced.value.patched(Some(patch));
            self.set_link(direction, props, announced.up);
            let used = self.used_bandwidth.get(&direction).copied().unwrap_or(0);
            states.push(link_state(&direction, &props, announced.up, used));
        }
        Ok(states)
    }

    /// Candidate paths between two known switches over the links that are up.
    pub fn find_paths(&self, query: &PathsQuery) -> Result<Vec<FoundPath>, ErrorBody> {
        for switch_id in [query.src_switch, query.dst_switch] {
            if self.network.switch(switch_id).is_none() {
                return Err(ErrorBody::new(
                    404,
                    "not-found",
                    "Switch not found",
                    format!("switch {switch_id} is not in the network"),
                ));
            }
        }
        Ok(paths::candidate_paths(&self.network, query, |isl| {
            self.usable(isl)
        }))
    }
}
