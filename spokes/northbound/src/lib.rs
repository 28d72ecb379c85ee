//! The northbound REST shim (OpenKilda v2 style) in front of the bus.

pub mod flow_json;
pub mod paths_json;
pub mod pending;
pub mod routes;
pub mod shim;
pub mod view;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

pub use flow_json::{forward_path, FlowJson, PathNode};
pub use pending::{spawn_reply_dispatcher, CorrelationIdConflict, PendingReplies, PendingReply};
pub use routes::{nb_router, MetricsRender, NbState, DEFAULT_REQUEST_TIMEOUT};
pub use shim::Northbound;
pub use view::{
    spawn_network_view_updater, spawn_view_updater, FlowView, HistoryQuery, NetworkView,
};
