//! The codec against the spec and against hostile bytes: hand-made golden bytes, a round trip
//! for every message kind, and random and mutated input.

mod fuzz;
mod golden;
mod round_trip;
mod strategies;
