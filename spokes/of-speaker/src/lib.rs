//! The OpenFlow 1.3 speaker's core: hubspoke's switch commands ([`SbCommand`]s on
//! `sb.commands`) as the OpenFlow messages that carry them out on a real switch (Open
//! vSwitch), and the switch's answers back as the [`SbOutcome`]s the simulator would give.
//! Pure: no sockets, no threads; the speaker that owns the connections calls these.
//!
//! A switch must behave as the simulator does (`sim/switches`), so each translation follows
//! it: one rule per segment, matched exactly by in_port and VLAN, at one priority.
//!
//! [`SbCommand`]: hubspoke_fsm::SbCommand
//! [`SbOutcome`]: hubspoke_fsm::SbOutcome

mod rule;
mod vlan;

pub use rule::{SwitchRule, TranslateError, Unreadable, PRIORITY};
pub use vlan::ETH_TYPE_8021Q;
