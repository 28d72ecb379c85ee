//! The OpenFlow 1.3 speaker's core: hubspoke's switch commands ([`SbCommand`]s on
//! `sb.commands`) as the OpenFlow messages that carry them out on a real switch (Open
//! vSwitch), and the switch's answers back as the [`SbOutcome`]s the simulator would give.
//! Pure: no sockets, no threads; the speaker that owns the connections calls these.
//!
//! A switch must behave as the simulator does (`sim/switches`), so each translation follows
//! it: one rule per segment, matched exactly by in_port and VLAN, at one priority.
//!
//! - install: [`install`]; its answer: the barrier reply, or an OFPT_ERROR ([`error_outcome`]).
//! - remove: [`remove`]; answered the same way.
//! - verify: [`verify_request`], then [`verify_outcome`] on the flow stats.
//! - dump: [`dump_request`] (and the switch's meters), then [`dumped`].
//!
//! Around them, also pure: one switch's connection as a state machine ([`session`]), the
//! probes that find the ISLs and ping flows ([`probe`]), the ISLs they find ([`discovery`]),
//! and the flow pings in flight ([`pings`]).
//!
//! [`SbCommand`]: hubspoke_fsm::SbCommand
//! [`SbOutcome`]: hubspoke_fsm::SbOutcome

pub mod discovery;
mod errors;
mod install;
pub mod pings;
pub mod probe;
mod remove;
mod reply;
mod rule;
pub mod session;
mod stats;
mod vlan;

#[cfg(test)]
mod tests;

pub use errors::{error_code, error_outcome};
pub use install::{install, meter_modify};
pub use remove::remove;
pub use reply::{dumped, verify_outcome, Dumped};
pub use rule::{read_rule, rule_of, OpenFlowRule, TranslateError, Unreadable, PRIORITY};
pub use stats::{dump_request, verify_request};
pub use vlan::ETH_TYPE_8021Q;
