//! Deadlines as the coordinator sees them: registered and cancelled by key and generation, so
//! a stale deadline (an older generation of the same key) can never fire for a newer one.
//! The key says what the deadline is for; each owner has its own kind of key (the speaker's
//! is [`CommandTimer`]), and the topology puts them side by side in one enum.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadlineRequest<K> {
    Register { key: K, generation: u64, at_ms: u64 },
    Cancel { key: K, generation: u64 },
}

impl<K> DeadlineRequest<K> {
    pub fn key(&self) -> &K {
        match self {
            DeadlineRequest::Register { key, .. } | DeadlineRequest::Cancel { key, .. } => key,
        }
    }

    /// The same request under the key `wrap` makes of this one.
    pub fn map_key<L>(self, wrap: impl FnOnce(K) -> L) -> DeadlineRequest<L> {
        match self {
            DeadlineRequest::Register {
                key,
                generation,
                at_ms,
            } => DeadlineRequest::Register {
                key: wrap(key),
                generation,
                at_ms,
            },
            DeadlineRequest::Cancel { key, generation } => DeadlineRequest::Cancel {
                key: wrap(key),
                generation,
            },
        }
    }
}

/// A deadline that passed while still registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeout<K> {
    pub key: K,
    pub generation: u64,
}

/// The speaker's timer of one command: the wait for its answer, or the back-off before its
/// next attempt (one at a time). `flow_id` routes it to the worker that owns the flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommandTimer {
    pub flow_id: String,
    pub command_id: String,
}
