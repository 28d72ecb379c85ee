//! Deadlines as the coordinator sees them: registered and cancelled by key and generation,
//! so a stale deadline (an older generation of the same key) can never fire for a newer one.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerOwner {
    /// The hub's per-flow operation deadline.
    Hub,
    /// The speaker worker's per-command response or back-off timer.
    Speaker,
}

/// What a deadline is for. `flow_id` routes it to the worker that owns the flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerKey {
    pub owner: TimerOwner,
    pub flow_id: String,
    /// Empty for the hub; the command id for the speaker.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadlineRequest {
    Register {
        key: TimerKey,
        generation: u64,
        at_ms: u64,
    },
    Cancel {
        key: TimerKey,
        generation: u64,
    },
}

impl DeadlineRequest {
    pub fn key(&self) -> &TimerKey {
        match self {
            DeadlineRequest::Register { key, .. } | DeadlineRequest::Cancel { key, .. } => key,
        }
    }
}

/// A deadline that passed while still registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeout {
    pub key: TimerKey,
    pub generation: u64,
}
