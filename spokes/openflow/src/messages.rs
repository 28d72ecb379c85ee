//! Every message this crate knows, and [`decode`] and [`encode`] for one whole message.
//!
//! A message of a type this crate does not know decodes to [`Message::Unknown`], not to an
//! error: a speaker ignores it (or answers `OFPET_BAD_REQUEST`/`OFPBRC_BAD_TYPE`) and goes on.

use crate::consts::*;
use crate::error::{DecodeError, EncodeError};
use crate::flow_mod::FlowMod;
use crate::handshake::{self, SwitchFeatures};
use crate::header::Header;
use crate::meter::MeterMod;
use crate::multipart::{MultipartReply, MultipartRequest};
use crate::packet::{PacketIn, PacketOut};
use crate::port::PortStatus;
use crate::wire::{patch_len, Put, Reader};

/// One message and the transaction id that pairs a request with its answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub xid: u32,
    pub message: Message,
}

impl Frame {
    pub fn new(xid: u32, message: Message) -> Frame {
        Frame { xid, message }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// Sent plain; a switch's elements are read only to agree on the version.
    Hello,
    Error(ErrorMessage),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    FeaturesRequest,
    FeaturesReply(SwitchFeatures),
    PortStatus(PortStatus),
    PacketIn(PacketIn),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    MeterMod(MeterMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    /// A message of a type this crate does not know (a type it knows decodes as its own
    /// variant): its `OFPT_*` type and body.
    Unknown {
        msg_type: u8,
        body: Vec<u8>,
    },
}

/// ERROR: why a switch refused a request. `data` holds at least the start of the request
/// (so its xid and type); for `OFPET_EXPERIMENTER`, `code` is the experimenter's type and
/// `data` starts with the experimenter id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ErrorMessage {
    /// `OFPET_*`
    pub err_type: u16,
    /// The type's own codes: `OFPFMFC_*` for a FLOW_MOD, `OFPMMFC_*` for a meter, …
    pub code: u16,
    pub data: Vec<u8>,
}

impl Message {
    /// The `OFPT_*` type of the message.
    pub fn msg_type(&self) -> u8 {
        match self {
            Message::Hello => OFPT_HELLO,
            Message::Error(_) => OFPT_ERROR,
            Message::EchoRequest(_) => OFPT_ECHO_REQUEST,
            Message::EchoReply(_) => OFPT_ECHO_REPLY,
            Message::FeaturesRequest => OFPT_FEATURES_REQUEST,
            Message::FeaturesReply(_) => OFPT_FEATURES_REPLY,
            Message::PortStatus(_) => OFPT_PORT_STATUS,
            Message::PacketIn(_) => OFPT_PACKET_IN,
            Message::PacketOut(_) => OFPT_PACKET_OUT,
            Message::FlowMod(_) => OFPT_FLOW_MOD,
            Message::MeterMod(_) => OFPT_METER_MOD,
            Message::MultipartRequest(_) => OFPT_MULTIPART_REQUEST,
            Message::MultipartReply(_) => OFPT_MULTIPART_REPLY,
            Message::BarrierRequest => OFPT_BARRIER_REQUEST,
            Message::BarrierReply => OFPT_BARRIER_REPLY,
            Message::Unknown { msg_type, .. } => *msg_type,
        }
    }

    fn decode(header: &Header, body: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(body, type_name(header.msg_type));
        let message = match header.msg_type {
            OFPT_HELLO => {
                handshake::negotiate(header.version, body)?;
                return Ok(Message::Hello);
            }
            OFPT_ERROR => Message::Error(ErrorMessage {
                err_type: r.u16()?,
                code: r.u16()?,
                data: r.rest().to_vec(),
            }),
            OFPT_ECHO_REQUEST => Message::EchoRequest(r.rest().to_vec()),
            OFPT_ECHO_REPLY => Message::EchoReply(r.rest().to_vec()),
            OFPT_FEATURES_REQUEST => Message::FeaturesRequest,
            OFPT_FEATURES_REPLY => Message::FeaturesReply(SwitchFeatures::decode(&mut r)?),
            OFPT_PORT_STATUS => Message::PortStatus(PortStatus::decode(&mut r)?),
            OFPT_PACKET_IN => Message::PacketIn(PacketIn::decode(&mut r)?),
            OFPT_PACKET_OUT => Message::PacketOut(PacketOut::decode(&mut r)?),
            OFPT_FLOW_MOD => Message::FlowMod(FlowMod::decode(&mut r)?),
            OFPT_METER_MOD => Message::MeterMod(MeterMod::decode(&mut r)?),
            OFPT_MULTIPART_REQUEST => Message::MultipartRequest(MultipartRequest::decode(&mut r)?),
            OFPT_MULTIPART_REPLY => Message::MultipartReply(MultipartReply::decode(&mut r)?),
            OFPT_BARRIER_REQUEST => Message::BarrierRequest,
            OFPT_BARRIER_REPLY => Message::BarrierReply,
            msg_type => Message::Unknown {
                msg_type,
                body: r.rest().to_vec(),
            },
        };
        r.finish()?;
        Ok(message)
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Message::Hello
            | Message::FeaturesRequest
            | Message::BarrierRequest
            | Message::BarrierReply => {}
            Message::Error(error) => {
                out.put_u16(error.err_type);
                out.put_u16(error.code);
                out.extend_from_slice(&error.data);
            }
            Message::EchoRequest(data)
            | Message::EchoReply(data)
            | Message::Unknown { body: data, .. } => out.extend_from_slice(data),
            Message::FeaturesReply(features) => features.encode(out),
            Message::PortStatus(status) => status.encode(out),
            Message::PacketIn(packet_in) => packet_in.encode(out)?,
            Message::PacketOut(packet_out) => packet_out.encode(out)?,
            Message::FlowMod(flow_mod) => flow_mod.encode(out)?,
            Message::MeterMod(meter_mod) => meter_mod.encode(out)?,
            Message::MultipartRequest(request) => request.encode(out)?,
            Message::MultipartReply(reply) => reply.encode(out)?,
        }
        Ok(())
    }
}

/// What a message body is called in errors.
fn type_name(msg_type: u8) -> &'static str {
    match msg_type {
        OFPT_ERROR => "ERROR",
        OFPT_FEATURES_REQUEST => "FEATURES_REQUEST",
        OFPT_FEATURES_REPLY => "FEATURES_REPLY",
        OFPT_PORT_STATUS => "PORT_STATUS",
        OFPT_PACKET_IN => "PACKET_IN",
        OFPT_PACKET_OUT => "PACKET_OUT",
        OFPT_FLOW_MOD => "FLOW_MOD",
        OFPT_METER_MOD => "METER_MOD",
        OFPT_MULTIPART_REQUEST => "MULTIPART_REQUEST",
        OFPT_MULTIPART_REPLY => "MULTIPART_REPLY",
        OFPT_BARRIER_REQUEST => "BARRIER_REQUEST",
        OFPT_BARRIER_REPLY => "BARRIER_REPLY",
        _ => "message body",
    }
}

/// Decodes `bytes`, which must be exactly one message (see [`crate::split_frame`] to cut a
/// stream into messages).
pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let header = Header::peek(bytes).ok_or(DecodeError::Truncated {
        what: "message header",
        needed: OFP_HEADER_LEN,
        available: bytes.len(),
    })?;
    header.check()?;
    let length = usize::from(header.length);
    let body = match bytes.len() {
        available if available < length => {
            return Err(DecodeError::Truncated {
                what: "message",
                needed: length,
                available,
            })
        }
        available if available > length => {
            return Err(DecodeError::TrailingBytes {
                what: "message",
                count: available - length,
            })
        }
        _ => &bytes[OFP_HEADER_LEN..],
    };
    Ok(Frame {
        xid: header.xid,
        message: Message::decode(&header, body)?,
    })
}

/// The message's bytes, lengths computed.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    encode_into(frame, &mut out)?;
    Ok(out)
}

/// Appends the message's bytes to `out`; on an error, `out` is left as it was.
pub fn encode_into(frame: &Frame, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    Header::put(out, frame.message.msg_type(), frame.xid);
    let written = frame
        .message
        .encode_body(out)
        .and_then(|()| patch_len(out, start + 2, start, "message"));
    if written.is_err() {
        out.truncate(start);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_wants_exactly_one_message() {
        let barrier = [4, 20, 0, 8, 0, 0, 0, 9];
        assert_eq!(decode(&barrier), Ok(Frame::new(9, Message::BarrierRequest)));
        assert_eq!(
            decode(&barrier[..5]),
            Err(DecodeError::Truncated {
                what: "message header",
                needed: 8,
                available: 5
            })
        );
        let mut two = barrier.to_vec();
        two.extend_from_slice(&barrier);
        assert_eq!(
            decode(&two),
            Err(DecodeError::TrailingBytes {
                what: "message",
                count: 8
            })
        );
        let announced_longer = [4, 20, 0, 12, 0, 0, 0, 9];
        assert_eq!(
            decode(&announced_longer),
            Err(DecodeError::Truncated {
                what: "message",
                needed: 12,
                available: 8
            })
        );
    }

    #[test]
    fn a_body_where_none_belongs_is_refused() {
        let barrier_with_body = [4, 21, 0, 9, 0, 0, 0, 9, 0];
        assert_eq!(
            decode(&barrier_with_body),
            Err(DecodeError::TrailingBytes {
                what: "BARRIER_REPLY",
                count: 1
            })
        );
    }

    #[test]
    fn an_unknown_type_is_a_message_not_an_error() {
        // GET_CONFIG_REPLY: flags, miss_send_len
        let bytes = [4, 8, 0, 12, 0, 0, 0, 3, 0, 0, 0xff, 0xe5];
        assert_eq!(
            decode(&bytes),
            Ok(Frame::new(
                3,
                Message::Unknown {
                    msg_type: OFPT_GET_CONFIG_REPLY,
                    body: vec![0, 0, 0xff, 0xe5]
                }
            ))
        );
    }

    #[test]
    fn a_message_too_long_for_its_length_field_is_refused_and_leaves_the_buffer_alone() {
        let mut out = vec![1, 2, 3];
        let echo = Frame::new(1, Message::EchoRequest(vec![0; 65_535]));
        assert_eq!(
            encode_into(&echo, &mut out),
            Err(EncodeError::TooLong {
                what: "message",
                length: 65_543,
                max: 65_535
            })
        );
        assert_eq!(out, [1, 2, 3]);
    }
}
