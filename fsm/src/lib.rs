//! The flow model, the bus messages and the per-flow state machines.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock, no threads. Time comes
//! in as a value (`now_ms`) and every side effect goes out as an [`operation::Action`].

pub mod create;
pub mod dataplane;
pub mod delete;
pub mod install;
pub mod messages;
pub mod model;
pub mod network;
pub mod operation;
pub mod ping;
pub mod repair;
pub mod reroute;
pub mod sync;
#[cfg(test)]
mod test_support;
pub mod validation;

pub mod segments;
pub mod swap;
pub mod switch_id;

pub use messages::*;
pub use model::*;
pub use switch_id::SwitchId;

/// A hash that is the same in every process and every run (FNV-1a), for anything that must
/// look random yet replay identically: retry jitter, simulated faults, worker routing.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
