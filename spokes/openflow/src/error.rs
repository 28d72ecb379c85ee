//! What can be wrong with bytes from a switch, and with a message too big to send.
//!
//! Every decode error names the structure it was reading, so that a speaker can log why it
//! dropped a message or closed a connection. [`DecodeError::is_fatal`] tells the two apart.

/// Why bytes are not an OpenFlow 1.3 message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header's version is not 1.3; for a HELLO, the switch cannot speak 1.3.
    #[error("OpenFlow version {version:#04x} where 1.3 (0x04) is needed")]
    BadVersion { version: u8 },
    /// The header's length is below the 8 bytes of the header itself.
    #[error("message length {length} is shorter than the 8-byte header")]
    BadMessageLength { length: u16 },
    /// A structure, or the element a length field announces, runs past the bytes there are.
    #[error("{what} is truncated: it needs {needed} bytes, {available} are left")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// A length field below the smallest its structure can be.
    #[error("{what} has length {length}, below its minimum of {min}")]
    BadLength {
        what: &'static str,
        length: usize,
        min: usize,
    },
    /// A fixed-size structure whose length field says another size.
    #[error("{what} has length {length}, not {expected}")]
    WrongLength {
        what: &'static str,
        length: usize,
        expected: usize,
    },
    /// Bytes left over after a structure that has no room for them.
    #[error("{what} has {count} bytes left over")]
    TrailingBytes { what: &'static str, count: usize },
    /// A match of another type than OXM (the deprecated standard match of OpenFlow 1.1).
    #[error("match type {match_type} is not OXM (1)")]
    BadMatchType { match_type: u16 },
    /// A field this crate types, but with a mask or a length the spec does not give it.
    #[error(
        "OXM field {field} (mask: {has_mask}, length {length}) is not as OpenFlow 1.3 defines it"
    )]
    BadOxm {
        field: u8,
        has_mask: bool,
        length: u8,
    },
    /// An enumerated field (a FLOW_MOD or METER_MOD command) with a value the spec does not
    /// define.
    #[error("{what} {value} is not one OpenFlow 1.3 defines")]
    UnknownValue { what: &'static str, value: u32 },
}

impl DecodeError {
    /// Whether the connection cannot go on: the stream cannot be split into messages any more
    /// (a length below the header's), or the switch does not speak 1.3. Any other error
    /// concerns one message only, whose bytes were all accounted for: the next one can be read.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::BadVersion { .. } | DecodeError::BadMessageLength { .. }
        )
    }
}

/// Why a message cannot be encoded: a part of it does not fit its length field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{what} would take {length} bytes, more than its length field holds ({max})")]
    TooLong {
        what: &'static str,
        length: usize,
        max: usize,
    },
    #[error("{what} {value} does not fit its field (at most {max})")]
    OutOfRange {
        what: &'static str,
        value: u32,
        max: u32,
    },
}
