//! The simulators around the topology: the southbound switch simulator with its control API,
//! the northbound REST shim, and the read models the shim answers queries from.

pub mod clock;
pub mod http;
pub mod load;
pub mod network_spec;
pub mod northbound;
pub mod southbound;
pub mod view;

pub use network_spec::{load_network, NetworkSpecError};
pub use northbound::{nb_router, spawn_reply_dispatcher, FlowJson, NbState, PendingReplies};
pub use southbound::{
    publish_network_events, sim_router, Faults, NetworkEvents, Simulator, SimulatorHandle,
    SwitchFabric, SWITCH_STORE_FILE,
};
pub use view::{
    spawn_network_view_updater, spawn_view_updater, FlowView, HistoryQuery, NetworkView,
};
