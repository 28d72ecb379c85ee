//! MULTIPART_REQUEST and MULTIPART_REPLY: the statistics and descriptions a controller asks a
//! switch for. A reply may come in several messages with the same xid, each but the last with
//! `OFPMPF_REPLY_MORE` set. Typed here: port descriptions, flow statistics and meter
//! configurations; other kinds are kept whole.

use crate::consts::{
    OFPMPF_REPLY_MORE, OFPMPF_REQ_MORE, OFPMP_FLOW, OFPMP_METER_CONFIG, OFPMP_PORT_DESC,
};
use crate::error::{DecodeError, EncodeError};
use crate::flow_match::Match;
use crate::instruction::Instruction;
use crate::meter::MeterBand;
use crate::port::Port;
use crate::wire::{decode_all, patch_len, Put, Reader};

/// A flow stats entry's fixed part, its length field included.
const FLOW_STATS_FIXED_LEN: usize = 48;
/// A meter configuration's fixed part (length, flags, meter id), before its bands.
const METER_CONFIG_FIXED_LEN: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MultipartRequest {
    /// `OFPMPF_REQ_MORE` when more requests of the same xid follow.
    pub flags: u16,
    pub body: MultipartRequestBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MultipartRequestBody {
    /// Every port of the switch.
    PortDesc,
    /// The flow entries that match a filter.
    Flow(FlowStatsRequest),
    /// The configuration of one meter, or of every meter for `OFPM_ALL`.
    MeterConfig { meter_id: u32 },
    /// Another kind of request: its `OFPMP_*` type and body.
    Unknown { mp_type: u16, body: Vec<u8> },
}

/// Which flow entries a flow stats request is about; `OFPTT_ALL`, `OFPP_ANY`, `OFPG_ANY`, a
/// zero cookie mask and an empty match select all of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub matching: Match,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MultipartReply {
    /// `OFPMPF_REPLY_MORE` when more replies of the same xid follow: see [`Self::more`].
    pub flags: u16,
    pub body: MultipartReplyBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MultipartReplyBody {
    PortDesc(Vec<Port>),
    Flow(Vec<FlowStats>),
    MeterConfig(Vec<MeterConfig>),
    /// Another kind of reply: its `OFPMP_*` type and body.
    Unknown {
        mp_type: u16,
        body: Vec<u8>,
    },
}

/// One flow entry, as a switch reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowStats {
    pub table_id: u8,
    /// How long the entry has been installed: seconds, and nanoseconds beyond them.
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// `OFPFF_*` bits.
    pub flags: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub matching: Match,
    pub instructions: Vec<Instruction>,
}

/// A meter as a switch holds it (`ofp_meter_config`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MeterConfig {
    /// `OFPMF_*` bits, as in METER_MOD.
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MultipartRequest {
    /// Whether more requests of the same xid follow.
    pub fn more(&self) -> bool {
        self.flags & OFPMPF_REQ_MORE != 0
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MultipartRequest, DecodeError> {
        let mp_type = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        let body = match mp_type {
            OFPMP_PORT_DESC => MultipartRequestBody::PortDesc,
            OFPMP_FLOW => MultipartRequestBody::Flow(FlowStatsRequest::decode(r)?),
            OFPMP_METER_CONFIG => {
                let meter_id = r.u32()?;
                r.skip(4)?;
                MultipartRequestBody::MeterConfig { meter_id }
            }
            mp_type => MultipartRequestBody::Unknown {
                mp_type,
                body: r.rest().to_vec(),
            },
        };
        Ok(MultipartRequest { flags, body })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mp_type = match &self.body {
            MultipartRequestBody::PortDesc => OFPMP_PORT_DESC,
            MultipartRequestBody::Flow(_) => OFPMP_FLOW,
            MultipartRequestBody::MeterConfig { .. } => OFPMP_METER_CONFIG,
            MultipartRequestBody::Unknown { mp_type, .. } => *mp_type,
        };
        put_multipart_header(out, mp_type, self.flags);
        match &self.body {
            MultipartRequestBody::PortDesc => Ok(()),
            MultipartRequestBody::Flow(request) => request.encode(out),
            MultipartRequestBody::MeterConfig { meter_id } => {
                out.put_u32(*meter_id);
                out.put_zeros(4);
                Ok(())
            }
            MultipartRequestBody::Unknown { body, .. } => {
                out.extend_from_slice(body);
                Ok(())
            }
        }
    }
}

impl MultipartReply {
    /// Whether more replies of the same xid follow.
    pub fn more(&self) -> bool {
        self.flags & OFPMPF_REPLY_MORE != 0
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MultipartReply, DecodeError> {
        let mp_type = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        let body = match mp_type {
            OFPMP_PORT_DESC => MultipartReplyBody::PortDesc(decode_all(
                r.sub(r.remaining(), "ports")?,
                Port::decode,
            )?),
            OFPMP_FLOW => MultipartReplyBody::Flow(decode_all(
                r.sub(r.remaining(), "flow stats")?,
                FlowStats::decode,
            )?),
            OFPMP_METER_CONFIG => MultipartReplyBody::MeterConfig(decode_all(
                r.sub(r.remaining(), "meter configs")?,
                MeterConfig::decode,
            )?),
            mp_type => MultipartReplyBody::Unknown {
                mp_type,
                body: r.rest().to_vec(),
            },
        };
        Ok(MultipartReply { flags, body })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match &self.body {
            MultipartReplyBody::PortDesc(ports) => {
                put_multipart_header(out, OFPMP_PORT_DESC, self.flags);
                ports.iter().for_each(|port| port.encode(out));
                Ok(())
            }
            MultipartReplyBody::Flow(entries) => {
                put_multipart_header(out, OFPMP_FLOW, self.flags);
                entries.iter().try_for_each(|entry| entry.encode(out))
            }
            MultipartReplyBody::MeterConfig(meters) => {
                put_multipart_header(out, OFPMP_METER_CONFIG, self.flags);
                meters.iter().try_for_each(|meter| meter.encode(out))
            }
            MultipartReplyBody::Unknown { mp_type, body } => {
                put_multipart_header(out, *mp_type, self.flags);
                out.extend_from_slice(body);
                Ok(())
            }
        }
    }
}

fn put_multipart_header(out: &mut Vec<u8>, mp_type: u16, flags: u16) {
    out.put_u16(mp_type);
    out.put_u16(flags);
    out.put_zeros(4);
}

impl FlowStatsRequest {
    fn decode(r: &mut Reader<'_>) -> Result<FlowStatsRequest, DecodeError> {
        let table_id = r.u8()?;
        r.skip(3)?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        r.skip(4)?;
        Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie: r.u64()?,
            cookie_mask: r.u64()?,
            matching: Match::decode(r)?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u8(self.table_id);
        out.put_zeros(3);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        out.put_zeros(4);
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        self.matching.encode(out)
    }
}

impl MeterConfig {
    fn decode(r: &mut Reader<'_>) -> Result<MeterConfig, DecodeError> {
        let length = usize::from(r.peek_u16(0)?);
        if length < METER_CONFIG_FIXED_LEN {
            return Err(DecodeError::BadLength {
                what: "meter config",
                length,
                min: METER_CONFIG_FIXED_LEN,
            });
        }
        let mut r = r.sub(length, "meter config")?;
        r.skip(2)?;
        Ok(MeterConfig {
            flags: r.u16()?,
            meter_id: r.u32()?,
            bands: decode_all(r, MeterBand::decode)?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        self.bands.iter().try_for_each(|band| band.encode(out))?;
        patch_len(out, start, start, "meter config")
    }
}

impl FlowStats {
    fn decode(r: &mut Reader<'_>) -> Result<FlowStats, DecodeError> {
        let length = usize::from(r.peek_u16(0)?);
        if length < FLOW_STATS_FIXED_LEN {
            return Err(DecodeError::BadLength {
                what: "flow stats",
                length,
                min: FLOW_STATS_FIXED_LEN,
            });
        }
        let mut r = r.sub(length, "flow stats")?;
        r.skip(2)?;
        let table_id = r.u8()?;
        r.skip(1)?;
        let duration_sec = r.u32()?;
        let duration_nsec = r.u32()?;
        let priority = r.u16()?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie: r.u64()?,
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            matching: Match::decode(&mut r)?,
            instructions: Instruction::decode_list(r)?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.table_id);
        out.put_zeros(1);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.priority);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.flags);
        out.put_zeros(4);
        out.put_u64(self.cookie);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        self.matching.encode(out)?;
        Instruction::encode_list(&self.instructions, out)?;
        patch_len(out, start, start, "flow stats")
    }
}
