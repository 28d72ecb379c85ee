//! FLOW_MOD: add, change or delete flow entries. A 40-byte fixed part, the match, then the
//! instructions up to the end of the message.

use crate::consts::{OFPG_ANY, OFPP_ANY, OFP_DEFAULT_PRIORITY, OFP_NO_BUFFER};
use crate::error::{DecodeError, EncodeError};
use crate::flow_match::Match;
use crate::instruction::Instruction;
use crate::wire::{Put, Reader};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    Add = 0,
    /// Change the instructions of every entry the match covers.
    Modify = 1,
    /// Change the instructions of the entry with exactly this match and priority.
    ModifyStrict = 2,
    /// Delete every entry the match covers (filtered by cookie/mask, out_port, out_group).
    Delete = 3,
    /// Delete the entry with exactly this match and priority.
    DeleteStrict = 4,
}

impl FlowModCommand {
    fn from_wire(value: u8) -> Result<FlowModCommand, DecodeError> {
        Ok(match value {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            value => {
                return Err(DecodeError::UnknownValue {
                    what: "FLOW_MOD command",
                    value: u32::from(value),
                })
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowMod {
    pub cookie: u64,
    /// For modify and delete: which bits of `cookie` an entry's cookie must have (0: any).
    pub cookie_mask: u64,
    /// `OFPTT_ALL` deletes from every table.
    pub table_id: u8,
    pub command: FlowModCommand,
    /// Seconds; 0 for never.
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    /// For delete: only entries that output to this port (`OFPP_ANY`: any).
    pub out_port: u32,
    /// For delete: only entries that output to this group (`OFPG_ANY`: any).
    pub out_group: u32,
    /// `OFPFF_*` bits.
    pub flags: u16,
    pub matching: Match,
    pub instructions: Vec<Instruction>,
}

impl Default for FlowMod {
    /// An add at the default priority into table 0, matching everything, doing nothing, with
    /// the "none" values where a value means "any": no buffer, any port, any group.
    fn default() -> FlowMod {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: OFP_DEFAULT_PRIORITY,
            buffer_id: OFP_NO_BUFFER,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            flags: 0,
            matching: Match::default(),
            instructions: Vec::new(),
        }
    }
}

impl FlowMod {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<FlowMod, DecodeError> {
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table_id = r.u8()?;
        let command = FlowModCommand::from_wire(r.u8()?)?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        let flags = r.u16()?;
        r.skip(2)?;
        let matching = Match::decode(r)?;
        let instructions = Instruction::decode_list(r.sub(r.remaining(), "instructions")?)?;
        Ok(FlowMod {
            cookie,
            cookie_mask,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group,
            flags,
            matching,
            instructions,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        out.put_u8(self.table_id);
        out.put_u8(self.command as u8);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.priority);
        out.put_u32(self.buffer_id);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        out.put_u16(self.flags);
        out.put_zeros(2);
        self.matching.encode(out)?;
        Instruction::encode_list(&self.instructions, out)
    }
}
