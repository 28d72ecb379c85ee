//! The spoke workers and the transports they talk over.

pub mod bus;
pub mod deadline;
pub mod flow_log;
pub mod kafka;
pub mod speaker;
