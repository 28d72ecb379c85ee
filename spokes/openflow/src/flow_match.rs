//! The match of a flow (`ofp_match`): a 4-byte header (type OXM, length), the OXM fields, then
//! zeros up to a multiple of 8 bytes. The length counts the header and the fields, not the
//! padding; what follows a match starts after the padding.

use crate::consts::OFPMT_OXM;
use crate::error::{DecodeError, EncodeError};
use crate::oxm::Oxm;
use crate::wire::{decode_all, patch_len, round_up8, Put, Reader};

/// The fields a packet must have; none matches every packet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub fields: Vec<Oxm>,
}

impl Match {
    pub fn new(fields: Vec<Oxm>) -> Match {
        Match { fields }
    }

    /// The match as Open vSwitch reports it in a dump, so that the match a FLOW_MOD sent and
    /// the match a flow stats reply shows compare equal. OVS reports a masked
    /// `vlan_vid=0/0x1fff` as the exact `vlan_vid=0` (no tag); likewise any mask that keeps
    /// every bit of its field is dropped, a mask that keeps none drops the field, masked-out
    /// value bits are cleared, and the fields are put in (class, field) order, since a switch
    /// reports them in an order of its own.
    pub fn normalized(&self) -> Match {
        let mut fields: Vec<Oxm> = self.fields.iter().filter_map(Oxm::normalized).collect();
        fields.sort_by_key(Oxm::key);
        Match { fields }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
        let match_type = r.peek_u16(0)?;
        if match_type != OFPMT_OXM {
            return Err(DecodeError::BadMatchType { match_type });
        }
        let length = usize::from(r.peek_u16(2)?);
        if length < 4 {
            return Err(DecodeError::BadLength {
                what: "match",
                length,
                min: 4,
            });
        }
        let mut padded = r.sub(round_up8(length), "match")?;
        padded.skip(4)?;
        let fields = padded.sub(length - 4, "match fields")?;
        Ok(Match {
            fields: decode_all(fields, Oxm::decode)?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(OFPMT_OXM);
        out.put_u16(0);
        for field in &self.fields {
            field.encode(out)?;
        }
        patch_len(out, start + 2, start, "match")?;
        let written = out.len() - start;
        out.put_zeros(round_up8(written) - written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_is_padded_to_eight_bytes_and_its_length_leaves_the_padding_out() {
        let matching = Match::new(vec![Oxm::InPort(1), Oxm::vlan(100)]);
        let mut out = Vec::new();
        matching.encode(&mut out).unwrap();
        assert_eq!(out.len(), 24);
        assert_eq!(&out[..4], [0x00, 0x01, 0x00, 0x12]);
        assert_eq!(&out[18..], [0; 6]);
        let mut r = Reader::new(&out, "test");
        assert_eq!(Match::decode(&mut r), Ok(matching));
        assert!(r.is_empty());

        out.clear();
        Match::default().encode(&mut out).unwrap();
        assert_eq!(out, [0, 1, 0, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn a_standard_match_or_a_short_length_is_refused() {
        let standard = [0, 0, 0, 88];
        assert_eq!(
            Match::decode(&mut Reader::new(&standard, "test")),
            Err(DecodeError::BadMatchType { match_type: 0 })
        );
        let short = [0, 1, 0, 2, 0, 0, 0, 0];
        assert!(matches!(
            Match::decode(&mut Reader::new(&short, "test")),
            Err(DecodeError::BadLength { length: 2, .. })
        ));
        let unpadded = [0, 1, 0, 4];
        assert!(matches!(
            Match::decode(&mut Reader::new(&unpadded, "test")),
            Err(DecodeError::Truncated { needed: 8, .. })
        ));
    }

    #[test]
    fn what_ovs_dumps_for_vlan_0_masked_compares_equal_to_what_was_sent() {
        let sent = Match::new(vec![
            Oxm::VlanVid {
                value: 0,
                mask: Some(0x1fff),
            },
            Oxm::InPort(7),
        ]);
        let dumped = Match::new(vec![Oxm::InPort(7), Oxm::no_vlan()]);
        assert_ne!(sent, dumped);
        assert_eq!(sent.normalized(), dumped.normalized());
        assert_eq!(dumped.normalized(), dumped);
    }
}
