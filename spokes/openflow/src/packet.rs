//! Packets between controller and switch: PACKET_IN (a packet the switch sends up, with the
//! match fields of its pipeline) and PACKET_OUT (a packet the controller sends out).

use crate::action::Action;
use crate::error::{DecodeError, EncodeError};
use crate::flow_match::Match;
use crate::wire::{patch_len, Put, Reader};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PacketIn {
    /// Where the switch keeps the whole packet, or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// The packet's full length; `data` may hold less of it.
    pub total_len: u16,
    /// `OFPR_*`: no flow matched, an output action sent it, or a bad TTL.
    pub reason: u8,
    pub table_id: u8,
    /// The cookie of the flow entry that sent it.
    pub cookie: u64,
    /// Where the packet came from (in_port at least).
    pub matching: Match,
    pub data: Vec<u8>,
}

impl PacketIn {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PacketIn, DecodeError> {
        let buffer_id = r.u32()?;
        let total_len = r.u16()?;
        let reason = r.u8()?;
        let table_id = r.u8()?;
        let cookie = r.u64()?;
        let matching = Match::decode(r)?;
        r.skip(2)?;
        Ok(PacketIn {
            buffer_id,
            total_len,
            reason,
            table_id,
            cookie,
            matching,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u32(self.buffer_id);
        out.put_u16(self.total_len);
        out.put_u8(self.reason);
        out.put_u8(self.table_id);
        out.put_u64(self.cookie);
        self.matching.encode(out)?;
        out.put_zeros(2);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PacketOut {
    /// A packet the switch buffered, or `OFP_NO_BUFFER` to send `data`.
    pub buffer_id: u32,
    /// The port the packet counts as coming in on (`OFPP_CONTROLLER` when none).
    pub in_port: u32,
    pub actions: Vec<Action>,
    pub data: Vec<u8>,
}

impl PacketOut {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PacketOut, DecodeError> {
        let buffer_id = r.u32()?;
        let in_port = r.u32()?;
        let actions_len = usize::from(r.u16()?);
        r.skip(6)?;
        let actions = Action::decode_list(r.sub(actions_len, "PACKET_OUT actions")?)?;
        Ok(PacketOut {
            buffer_id,
            in_port,
            actions,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u32(self.buffer_id);
        out.put_u32(self.in_port);
        let actions_len_at = out.len();
        out.put_u16(0);
        out.put_zeros(6);
        let actions_start = out.len();
        Action::encode_list(&self.actions, out)?;
        patch_len(out, actions_len_at, actions_start, "PACKET_OUT actions")?;
        out.extend_from_slice(&self.data);
        Ok(())
    }
}
