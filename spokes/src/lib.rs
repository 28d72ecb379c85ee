//! The spoke workers and the transports they talk over.

pub mod bus;
