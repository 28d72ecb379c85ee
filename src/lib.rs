//! hubspoke assembled: the library that wires the parts into what runs, and what the `hubspoke`
//! binary, the end-to-end tests and the benchmarks all call.
//!
//! # Layout
//!
//! A request goes REST → bus → topology → bus → switches and back; each crate does one part
//! of that, and dependencies point one way (`fsm` ← `spokes/*` ← `topology`, `sim/*` ← here):
//!
//! - `fsm/` (`hubspoke-fsm`): the flow model, the bus messages, the network and its path
//!   search, and the per-flow state machines. Pure: no I/O, no clock, no threads.
//! - `spokes/speaker` (`hubspoke-speaker`): the speaker worker (pending switch commands,
//!   retries, matching answers) and the deadlines it shares with the hub. Pure too.
//! - `spokes/bus` (`hubspoke-bus`): the transport contract, the in-process bus, the wall
//!   clock, and the flow log (its trait, group commit and the embedded redb log).
//! - `spokes/kafka` (`hubspoke-kafka`): the same contract over Kafka, and the flow log on the
//!   `flow.events` topic. The only crate that builds librdkafka.
//! - `spokes/rest` and `spokes/northbound`: what every REST API shares, and the northbound
//!   shim with the read models it answers queries from.
//! - `topology/` (`hubspoke-topology`): the hub, a timely dataflow (hub, speaker, coordinator,
//!   allocator, differential network view), its live runner and its replay.
//! - `sim/switches` and `sim/load`: the simulators, southbound (switches) and northbound (many
//!   clients).
//! - here: [`embedded`] (`hubspoke up`), [`over_kafka`] (the parts as processes).
//!
//! `ARCHITECTURE.md` follows one create through all of them.

pub mod embedded;
pub mod over_kafka;
