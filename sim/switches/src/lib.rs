//! The southbound switch simulator (a Floodlight analog): rule tables, faults, the thread that
//! answers commands, and its control API.

pub mod api;
pub mod fabric;
pub mod faults;
pub mod network_spec;
pub mod simulator;
pub mod store;

pub use api::{sim_router, FaultsRequest, RuleView};
pub use fabric::{FabricError, SwitchFabric, DEFAULT_TABLE_CAPACITY};
pub use faults::{roll, FaultDecision, FaultPlan, Faults, FaultsError};
pub use network_spec::{load_network, NetworkSpecError};
pub use simulator::{Simulator, SimulatorHandle};
pub use store::{StoreError, SWITCH_STORE_FILE};
