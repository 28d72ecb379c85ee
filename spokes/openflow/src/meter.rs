//! METER_MOD: add, change or delete a meter, the rate limiter a flow's meter instruction sends
//! its packets through. An 8-byte fixed part, then the bands up to the end of the message.

use crate::consts::OFPMBT_DROP;
use crate::error::{DecodeError, EncodeError};
use crate::wire::{decode_all, expect_length, put_tlv, Put, Reader};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
}

impl MeterModCommand {
    fn from_wire(value: u16) -> Result<MeterModCommand, DecodeError> {
        Ok(match value {
            0 => MeterModCommand::Add,
            1 => MeterModCommand::Modify,
            2 => MeterModCommand::Delete,
            value => {
                return Err(DecodeError::UnknownValue {
                    what: "METER_MOD command",
                    value: u32::from(value),
                })
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MeterMod {
    pub command: MeterModCommand,
    /// `OFPMF_*` bits: the rates' unit (`OFPMF_KBPS` or `OFPMF_PKTPS`), whether bursts count
    /// (`OFPMF_BURST`), whether to keep statistics (`OFPMF_STATS`).
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MeterBand {
    /// Drop what goes over `rate`, allowing bursts of `burst_size` (in the meter's unit).
    Drop { rate: u32, burst_size: u32 },
    /// A band this crate does not type (dscp_remark, experimenter): its type and what follows
    /// its 4-byte type and length.
    Unknown { band_type: u16, body: Vec<u8> },
}

impl MeterMod {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MeterMod, DecodeError> {
        Ok(MeterMod {
            command: MeterModCommand::from_wire(r.u16()?)?,
            flags: r.u16()?,
            meter_id: r.u32()?,
            bands: decode_all(r.sub(r.remaining(), "meter bands")?, MeterBand::decode)?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u16(self.command as u16);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        self.bands.iter().try_for_each(|band| band.encode(out))
    }
}

impl MeterBand {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MeterBand, DecodeError> {
        let (band_type, length, mut body) = r.tlv("meter band")?;
        Ok(match band_type {
            OFPMBT_DROP => {
                expect_length("drop band", length, 16)?;
                MeterBand::Drop {
                    rate: body.u32()?,
                    burst_size: body.u32()?,
                }
            }
            band_type => MeterBand::Unknown {
                band_type,
                body: body.rest().to_vec(),
            },
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            MeterBand::Drop { rate, burst_size } => put_tlv(out, OFPMBT_DROP, "drop band", |out| {
                out.put_u32(*rate);
                out.put_u32(*burst_size);
                out.put_zeros(4);
                Ok(())
            }),
            MeterBand::Unknown { band_type, body } => {
                put_tlv(out, *band_type, "meter band", |out| {
                    out.extend_from_slice(body);
                    Ok(())
                })
            }
        }
    }
}
