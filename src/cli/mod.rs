//! The command line's own parts: flags shared by several subcommands, and the commands that
//! only print (`tail`, `load`).

pub mod kafka_args;
pub mod load;
pub mod operation_args;
pub mod tail;
