//! The network view, in differential dataflow: switches, links with their capacity, flow
//! reservations and installed paths are collections; available bandwidth per link and the
//! flows whose path uses a down link are maintained from them incrementally.

use hubspoke_fsm::{FlowId, Isl, SwitchId};
use serde::{Deserialize, Serialize};

/// One change to the collections the view is built from. The allocator makes them: it owns
/// the reservations and is the first to hear of every network event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ViewChange {
    Switch {
        switch_id: SwitchId,
        ports: u32,
        up: bool,
        diff: isize,
    },
    /// A directed ISL.
    Link {
        isl: Isl,
        capacity: u64,
        up: bool,
        diff: isize,
    },
    /// `flow_id` reserves `bandwidth` on a directed ISL. During make-before-break a flow holds
    /// two reservations; on an ISL both paths share it counts once, with the larger bandwidth.
    Reservation {
        isl: Isl,
        flow_id: FlowId,
        bandwidth: u64,
        diff: isize,
    },
    /// A directed ISL of the path the flow's rules are installed on (both directions are
    /// listed).
    Path {
        isl: Isl,
        flow_id: FlowId,
        diff: isize,
    },
}
