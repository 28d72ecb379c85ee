//! The hubspoke topology: a timely dataflow with a hub operator (one state machine per flow),
//! a speaker worker, a coordinator of deadlines and a resource allocator.

pub mod allocator;
pub mod cluster;
pub mod coordinator;
pub mod dataflow;
pub mod hub;
pub mod keeper;
pub mod live;
pub mod metrics;
pub mod recovery;
pub mod replay;
pub mod speaker;
pub mod view;
pub mod wire;
