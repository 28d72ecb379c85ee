//! Actions (`ofp_action_*`): what apply_actions and write_actions instructions and PACKET_OUT
//! do to a packet. Each is a 16-bit type and a 16-bit length (its header included, padding to
//! 8 bytes included); an action this crate does not type is kept whole.

use crate::consts::{OFPAT_OUTPUT, OFPAT_POP_VLAN, OFPAT_PUSH_VLAN, OFPAT_SET_FIELD};
use crate::error::{DecodeError, EncodeError};
use crate::oxm::Oxm;
use crate::wire::{decode_all, expect_length, put_tlv, round_up8, Put, Reader};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send the packet out of `port` (a number or an `OFPP_*` port); `max_len` is how much of
    /// it goes to the controller when the port is `OFPP_CONTROLLER`.
    Output { port: u32, max_len: u16 },
    /// Push a VLAN tag with this ethertype (0x8100 or 0x88a8); set its id with a set_field.
    PushVlan { ethertype: u16 },
    /// Pop the outer VLAN tag.
    PopVlan,
    /// Set a header field, e.g. `Oxm::vlan(200)` to rewrite the outer VLAN id.
    SetField(Oxm),
    /// An action this crate does not type: its type and what follows its 4-byte header.
    Unknown { action_type: u16, body: Vec<u8> },
}

impl Action {
    pub(crate) fn decode_list(r: Reader<'_>) -> Result<Vec<Action>, DecodeError> {
        decode_all(r, Action::decode)
    }

    pub(crate) fn encode_list(actions: &[Action], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        actions.iter().try_for_each(|action| action.encode(out))
    }

    fn decode(r: &mut Reader<'_>) -> Result<Action, DecodeError> {
        let (action_type, length, mut body) = r.tlv("action")?;
        Ok(match action_type {
            OFPAT_OUTPUT => {
                expect_length("output action", length, 16)?;
                Action::Output {
                    port: body.u32()?,
                    max_len: body.u16()?,
                }
            }
            OFPAT_PUSH_VLAN => {
                expect_length("push_vlan action", length, 8)?;
                Action::PushVlan {
                    ethertype: body.u16()?,
                }
            }
            OFPAT_POP_VLAN => {
                expect_length("pop_vlan action", length, 8)?;
                Action::PopVlan
            }
            // What follows the field is padding.
            OFPAT_SET_FIELD => Action::SetField(Oxm::decode(&mut body)?),
            action_type => Action::Unknown {
                action_type,
                body: body.rest().to_vec(),
            },
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Action::Output { port, max_len } => {
                put_tlv(out, OFPAT_OUTPUT, "output action", |out| {
                    out.put_u32(*port);
                    out.put_u16(*max_len);
                    out.put_zeros(6);
                    Ok(())
                })
            }
            Action::PushVlan { ethertype } => {
                put_tlv(out, OFPAT_PUSH_VLAN, "push_vlan action", |out| {
                    out.put_u16(*ethertype);
                    out.put_zeros(2);
                    Ok(())
                })
            }
            Action::PopVlan => put_tlv(out, OFPAT_POP_VLAN, "pop_vlan action", |out| {
                out.put_zeros(4);
                Ok(())
            }),
            Action::SetField(field) => put_tlv(out, OFPAT_SET_FIELD, "set_field action", |out| {
                let start = out.len();
                field.encode(out)?;
                // The 4-byte action header, then the field, then zeros to 8 bytes.
                let written = 4 + out.len() - start;
                out.put_zeros(round_up8(written) - written);
                Ok(())
            }),
            Action::Unknown { action_type, body } => put_tlv(out, *action_type, "action", |out| {
                out.extend_from_slice(body);
                Ok(())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_field_vlan_vid_is_padded_to_sixteen_bytes() {
        let mut out = Vec::new();
        Action::SetField(Oxm::vlan(200)).encode(&mut out).unwrap();
        assert_eq!(
            out,
            [0x00, 0x19, 0x00, 0x10, 0x80, 0x00, 0x0c, 0x02, 0x10, 0xc8, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn an_output_action_of_the_wrong_length_is_refused() {
        let bytes = [0x00, 0x00, 0x00, 0x08, 0, 0, 0, 2];
        assert_eq!(
            Action::decode_list(Reader::new(&bytes, "test")),
            Err(DecodeError::WrongLength {
                what: "output action",
                length: 8,
                expected: 16
            })
        );
    }

    #[test]
    fn an_unknown_action_is_kept_whole() {
        // group 5
        let bytes = [0x00, 0x16, 0x00, 0x08, 0, 0, 0, 5];
        let actions = Action::decode_list(Reader::new(&bytes, "test")).unwrap();
        assert_eq!(
            actions,
            [Action::Unknown {
                action_type: 22,
                body: vec![0, 0, 0, 5]
            }]
        );
        let mut out = Vec::new();
        Action::encode_list(&actions, &mut out).unwrap();
        assert_eq!(out, bytes);
    }
}
