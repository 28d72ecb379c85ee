//! The durable log of flow events: every flow record change, every state transition and
//! every answer, appended before anything that depends on it leaves the topology. A restart
//! reads it back to rebuild the flows.
//!
//! In the embedded default it is a redb file in the data directory; over Kafka it is the
//! `flow.events` topic itself.

mod group_commit;
mod redb_log;

use hubspoke_fsm::{Envelope, FlowEvent};

pub use group_commit::{GroupCommit, Lane};
pub use redb_log::{RedbFlowLog, FLOW_LOG_FILE};

#[derive(Debug, thiserror::Error)]
pub enum FlowLogError {
    #[error("flow log storage: {0}")]
    Storage(String),
    #[error("flow log entry {position} cannot be read: {reason}")]
    Corrupt { position: u64, reason: String },
    /// The transport the log lives on (Kafka) failed.
    #[error("flow log: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub trait FlowLog: Send + Sync {
    /// Appends `events` durably: when this returns `Ok`, they survive a crash.
    fn append(&self, events: &[Envelope<FlowEvent>]) -> Result<(), FlowLogError>;

    /// Takes `events` once `append` has made them durable, by value, for whoever reads them
    /// next in this process (the embedded read model); over Kafka readers consume the topic.
    fn hand_on(&self, _events: Vec<Envelope<FlowEvent>>) {}

    /// Everything the log holds, in append order.
    fn read_all(&self) -> Result<Vec<Envelope<FlowEvent>>, FlowLogError>;

    /// Marks where generation `epoch` of the topology begins, where readers need it to tell
    /// a dead generation's late appends (over Kafka: in every partition). A log only one live
    /// process writes has nothing to mark.
    fn begin_generation(&self, _epoch: u64) -> Result<(), FlowLogError> {
        Ok(())
    }
}
