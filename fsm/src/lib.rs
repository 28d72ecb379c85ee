//! The flow model, the bus messages and the per-flow state machines.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock, no threads. Time comes
//! in as a value (`now_ms`) and every side effect goes out as an [`operation::Action`].



pub mod create;
pub mod delete;
pub mod messages;
pub mod model;
pub mod network;
#[cfg(test)]
mod operation_test_support;
pub mod operation;

pub mod segments;
pub mod switch_id;

pub use messages::*;
pub use model::*;
pub use switch_id::SwitchId;
