//! Instructions (`ofp_instruction_*`): what a flow entry does with a packet it matches. Like
//! actions, each is a 16-bit type and a 16-bit length that counts its header; the switch runs
//! them in the spec's order (meter, apply, clear, write, goto), whatever their order here.

use crate::action::Action;
use crate::consts::{
    OFPIT_APPLY_ACTIONS, OFPIT_CLEAR_ACTIONS, OFPIT_GOTO_TABLE, OFPIT_METER, OFPIT_WRITE_ACTIONS,
};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{decode_all, expect_length, put_tlv, Put, Reader};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Instruction {
    /// Go on in this (later) table.
    GotoTable(u8),
    /// Add these actions to the packet's action set.
    WriteActions(Vec<Action>),
    /// Apply these actions now, in order.
    ApplyActions(Vec<Action>),
    /// Empty the packet's action set.
    ClearActions,
    /// Send the packet through this meter first.
    Meter(u32),
    /// An instruction this crate does not type (write_metadata, experimenter): its type and
    /// what follows its 4-byte header.
    Unknown {
        instruction_type: u16,
        body: Vec<u8>,
    },
}

impl Instruction {
    pub(crate) fn decode_list(r: Reader<'_>) -> Result<Vec<Instruction>, DecodeError> {
        decode_all(r, Instruction::decode)
    }

    pub(crate) fn encode_list(
        instructions: &[Instruction],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        instructions.iter().try_for_each(|i| i.encode(out))
    }

    fn decode(r: &mut Reader<'_>) -> Result<Instruction, DecodeError> {
        let (instruction_type, length, mut body) = r.tlv("instruction")?;
        Ok(match instruction_type {
            OFPIT_GOTO_TABLE => {
                expect_length("goto_table instruction", length, 8)?;
                Instruction::GotoTable(body.u8()?)
            }
            OFPIT_WRITE_ACTIONS | OFPIT_APPLY_ACTIONS => {
                body.skip(4)?;
                let actions = Action::decode_list(body)?;
                if instruction_type == OFPIT_WRITE_ACTIONS {
                    Instruction::WriteActions(actions)
                } else {
                    Instruction::ApplyActions(actions)
                }
            }
            OFPIT_CLEAR_ACTIONS => {
                expect_length("clear_actions instruction", length, 8)?;
                Instruction::ClearActions
            }
            OFPIT_METER => {
                expect_length("meter instruction", length, 8)?;
                Instruction::Meter(body.u32()?)
            }
            instruction_type => Instruction::Unknown {
                instruction_type,
                body: body.rest().to_vec(),
            },
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Instruction::GotoTable(table_id) => {
                put_tlv(out, OFPIT_GOTO_TABLE, "goto_table instruction", |out| {
                    out.put_u8(*table_id);
                    out.put_zeros(3);
                    Ok(())
                })
            }
            Instruction::WriteActions(actions) => put_actions(
                out,
                OFPIT_WRITE_ACTIONS,
                "write_actions instruction",
                actions,
            ),
            Instruction::ApplyActions(actions) => put_actions(
                out,
                OFPIT_APPLY_ACTIONS,
                "apply_actions instruction",
                actions,
            ),
            Instruction::ClearActions => put_tlv(
                out,
                OFPIT_CLEAR_ACTIONS,
                "clear_actions instruction",
                |out| {
                    out.put_zeros(4);
                    Ok(())
                },
            ),
            Instruction::Meter(meter_id) => put_tlv(out, OFPIT_METER, "meter instruction", |out| {
                out.put_u32(*meter_id);
                Ok(())
            }),
            Instruction::Unknown {
                instruction_type,
                body,
            } => put_tlv(out, *instruction_type, "instruction", |out| {
                out.extend_from_slice(body);
                Ok(())
            }),
        }
    }
}

fn put_actions(
    out: &mut Vec<u8>,
    instruction_type: u16,
    what: &'static str,
    actions: &[Action],
) -> Result<(), EncodeError> {
    put_tlv(out, instruction_type, what, |out| {
        out.put_zeros(4);
        Action::encode_list(actions, out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_actions_counts_its_header_and_padding_and_its_actions() {
        let apply = Instruction::ApplyActions(vec![Action::PopVlan]);
        let mut out = Vec::new();
        Instruction::encode_list(std::slice::from_ref(&apply), &mut out).unwrap();
        assert_eq!(
            out,
            [0x00, 0x04, 0x00, 0x10, 0, 0, 0, 0, 0x00, 0x12, 0x00, 0x08, 0, 0, 0, 0]
        );
        assert_eq!(
            Instruction::decode_list(Reader::new(&out, "test")),
            Ok(vec![apply])
        );
    }

    #[test]
    fn an_apply_actions_shorter_than_its_header_is_truncated() {
        let bytes = [0x00, 0x04, 0x00, 0x04];
        assert!(matches!(
            Instruction::decode_list(Reader::new(&bytes, "test")),
            Err(DecodeError::Truncated {
                what: "instruction",
                ..
            })
        ));
    }
}
