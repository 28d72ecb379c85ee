//! Real OpenFlow 1.3 switches as hubspoke's southbound, beside the simulator (`sim/switches`):
//! the speaker. Switches connect to it (`--openflow-listen`); it takes the commands of
//! `sb.commands`, carries them out on the switch they name and answers on `sb.responses`; it
//! finds the network by probe packets and reports it on `sb.events`, as the simulator does.
//!
//! The logic is pure and lives in `hubspoke-of-speaker` (one switch's [`Session`], the
//! [`Discovery`] of ISLs, the probes); this crate owns the sockets and the clock:
//!
//! - a thread with a single-threaded tokio runtime: the listener, one task per connection
//!   (its socket, its session, its inbox), and the discovery round;
//! - a thread that hands the commands over from the bus to the connection of their switch,
//!   and answers those for a switch that is not connected at once (`SWITCH_UNAVAILABLE`).
//!
//! A switch is known from the end of its handshake to the end of its connection: then it is
//! `switch_added`, its ISLs come up as its probes arrive, and when the connection ends it is
//! `switch_removed` with its ISLs down. Whatever one switch does wrong (garbage, silence, a
//! reset in the middle of a command) closes or costs that switch's connection only.
//!
//! [`Session`]: hubspoke_of_speaker::session::Session
//! [`Discovery`]: hubspoke_of_speaker::discovery::Discovery

mod connection;
mod metrics;
mod speaker;

pub use metrics::SpeakerMetrics;
pub use speaker::{OpenFlowSpeaker, SpeakerConfig, SpeakerError};
