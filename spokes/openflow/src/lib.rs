//! OpenFlow 1.3 as a controller speaks it to a switch (Open vSwitch first): the messages
//! hubspoke needs to install, verify and remove its rules and meters, encoded and decoded.
//!
//! No maintained crate covers what a controller needs (a vlan_vid match, METER_MOD, flow stats
//! filtered by cookie), and the subset is small: so this one, with no dependency but
//! `thiserror`, and without I/O: bytes in, [`Frame`]s out, and back. A speaker reads its socket
//! into a [`FrameReader`] (or cuts the stream itself with [`split_frame`]) and writes what
//! [`encode`] gives.
//!
//! Decoding trusts nothing. Every length field is checked against the bytes there are and
//! against the smallest its structure can be, so decoding never panics, never loops on a zero
//! length, and never allocates more than the input holds. What this crate does not model (a
//! message type, an OXM field, an action, an instruction, a meter band, a multipart kind)
//! decodes to a raw variant that encodes back to the same bytes, so that a speaker can ignore
//! it and a switch's dump round-trips. Encoding computes every length and refuses one that does
//! not fit its field.
//!
//! Layouts follow the OpenFlow 1.3.5 specification; the golden tests spell out the bytes.
//!
//! ```
//! use hubspoke_openflow::{decode, encode, Action, FlowMod, Frame, Instruction, Match, Message, Oxm};
//!
//! let add = FlowMod {
//!     cookie: 0x4000_0000_0000_0001,
//!     priority: 1000,
//!     matching: Match::new(vec![Oxm::InPort(1), Oxm::vlan(100)]),
//!     instructions: vec![Instruction::ApplyActions(vec![
//!         Action::SetField(Oxm::vlan(200)),
//!         Action::Output { port: 2, max_len: 0 },
//!     ])],
//!     ..FlowMod::default()
//! };
//! let frame = Frame::new(7, Message::FlowMod(add));
//! let bytes = encode(&frame).unwrap();
//! assert_eq!(decode(&bytes), Ok(frame));
//! ```

mod action;
pub mod consts;
mod error;
mod flow_match;
mod flow_mod;
mod framing;
mod handshake;
mod header;
mod instruction;
mod messages;
mod meter;
mod multipart;
mod oxm;
mod packet;
mod port;
mod wire;

pub use action::Action;
pub use error::{DecodeError, EncodeError};
pub use flow_match::Match;
pub use flow_mod::{FlowMod, FlowModCommand};
pub use framing::{split_frame, FrameReader};
pub use handshake::SwitchFeatures;
pub use header::Header;
pub use instruction::Instruction;
pub use messages::{decode, encode, encode_into, ErrorMessage, Frame, Message};
pub use meter::{MeterBand, MeterMod, MeterModCommand};
pub use multipart::{
    FlowStats, FlowStatsRequest, MeterConfig, MultipartReply, MultipartReplyBody, MultipartRequest,
    MultipartRequestBody,
};
pub use oxm::{Oxm, RawOxm};
pub use packet::{PacketIn, PacketOut};
pub use port::{Port, PortName, PortStatus};
