//! The command line: each subcommand's flags, turned into the library's configurations, and
//! what only a process does (serving until a signal, printing, progress bars).

pub mod kafka_args;
pub mod load;
pub mod openflow_args;
pub mod operation_args;
pub mod parts;
pub mod serve;
pub mod tail;
pub mod up;
